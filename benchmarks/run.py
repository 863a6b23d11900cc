# ruff: noqa: E501 - report lines are long on purpose
"""Run the whole benchmark suite: ``python -m benchmarks`` (``--quick`` for a short run).

Every server runs in its own subprocess on 127.0.0.1, pinned to one core; the load
generator (``benchmarks/loadgen.py``, a separate process too) is pinned to the other
(the ``workers`` step pins nothing: two worker processes need both cores).
Prints a table of figures and ratios and writes JSON to ``benchmarks/results/``.

Steps: throughput, sessions (memory per idle session), streams (memory per open GET
stream), fanout, drain, storm, workers (stateless eras on 2 worker processes vs 1),
h2 (HTTP/2 prior-knowledge h2c vs HTTP/1.1).

Servers compared:

* ``ours``          trio_mcp_http, ``serve()`` on Hypercorn's trio worker;
* ``sdk-uvicorn``   the official MCP Python SDK (``mcp``), on uvicorn, as its users run it;
* ``sdk-hypercorn`` the official SDK on Hypercorn's trio worker (the same worker as ours);
* ``sdk-ours``      the very same SDK server object on trio_mcp_http's transport
  (``serve(mcp, ...)``): the SDK's handlers, our HTTP layer, sessions and streams;
* ``canned``        the ceiling: an ASGI app returning a canned JSON-RPC result, on
  Hypercorn's trio worker.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .loadgen import WINDOW_KEYS, medians

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
LOADGEN = BENCH / "loadgen.py"
H2LOAD = BENCH / "h2load.py"
PY = sys.executable

SERVERS = {
    "ours": ["-m", "benchmarks.servers.ours"],
    "sdk-uvicorn": ["-m", "benchmarks.servers.sdk", "--runner", "uvicorn"],
    "sdk-hypercorn": ["-m", "benchmarks.servers.sdk", "--runner", "hypercorn-trio"],
    "sdk-ours": ["-m", "benchmarks.servers.sdk", "--runner", "trio-mcp-http"],
    "canned": ["-m", "benchmarks.servers.canned"],
}
PEERS = ["ours", "sdk-ours", "sdk-uvicorn", "sdk-hypercorn"]
#: Servers of the streams, workers and h2 steps.
STREAM_PEERS = ["ours", "sdk-uvicorn", "sdk-hypercorn"]
WORKER_PEERS = ["ours", "sdk-uvicorn"]
H2_PEERS = ["ours", "sdk-hypercorn"]
#: Column headings of the report.
SHORT = {
    "ours": "ours",
    "sdk-ours": "sdk-ours",
    "sdk-uvicorn": "sdk-uv",
    "sdk-hypercorn": "sdk-hc",
    "canned": "canned",
}
#: Ratio headings: "sdk-ours/uv" is sdk-ours / sdk-uvicorn.
BY = {"ours": "ours", "sdk-uvicorn": "uv", "sdk-hypercorn": "hc", "canned": "cn"}
MODES = ["sse", "json", "stateless", "modern"]
ERROR_LINE = re.compile(r"\bERROR\b|Traceback|CRITICAL|returned without completing")


# -- plumbing ---------------------------------------------------------------------------------


def cores() -> tuple[int | None, int | None]:
    """(server core, load-generator core), or Nones when there is only one core."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(available) < 2:
        return None, None
    return available[0], available[1]


SERVER_CORE, LOADGEN_CORE = cores()
try:
    #: Every core this run may use (the runner pins itself later; children inherit that).
    ALL_CORES: str | None = ",".join(map(str, sorted(os.sched_getaffinity(0))))
except AttributeError:
    ALL_CORES = None


def pinned(argv: list[str], core: int | str | None) -> list[str]:
    """``argv`` under ``taskset -c core`` (a core number, or a list such as "0,1")."""
    if core is None:
        return argv
    if shutil.which("taskset"):
        return ["taskset", "-c", str(core), *argv]
    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A benchmark server in its own process.  ``workers`` > 1: a supervisor and that many
    worker processes (``pid`` is the supervisor's; read the tree).  ``pin=False``: free
    to use every core."""

    def __init__(
        self,
        name: str,
        mode: str = "sse",
        extra: list[str] | None = None,
        tag: str = "",
        *,
        workers: int = 1,
        pin: bool = True,
    ) -> None:
        self.name = name
        self.mode = mode
        self.workers = workers
        self.pin = pin
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        logs = RESULTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{name}-{mode}{tag}.log"
        argv = [PY, *SERVERS[name], "--port", str(self.port), "--mode", mode, *(extra or [])]
        if workers > 1:
            argv += ["--workers", str(workers)]
        self.log = open(self.log_path, "w")  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        # taskset execs the server in place: same pid.
        self.proc = subprocess.Popen(
            pinned(argv, SERVER_CORE if pin else ALL_CORES),
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.pid = self.proc.pid
        self._wait_ready()
        if workers > 1:
            self._wait_workers()

    def _wait_workers(self, limit: float = 30.0) -> None:
        """Until every worker answers: a connection reaching any worker is not enough."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            r = loadgen(
                "throughput",
                self,
                20,
                tree=True,
                pin=False,
                mode="stateless",
                clients=8,
                warmup=0,
                duration=0.3,
                reps=1,
            )
            if r.get("available") and len(proc_children(self.pid)) >= self.workers:
                time.sleep(1.0)  # a worker still importing joins the accept queue soon
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name}: {self.workers} workers did not start; see {self.log_path}")

    def _wait_ready(self, limit: float = 30.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start listening; see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()

    def error_lines(self) -> int:
        if not self.log.closed:
            self.log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if ERROR_LINE.search(line))


@contextlib.contextmanager
def server(name: str, mode: str = "sse", extra: list[str] | None = None, tag: str = "") -> Iterator[Server]:
    srv = Server(name, mode, extra, tag)
    try:
        yield srv
    finally:
        srv.stop()


def loadgen(
    scenario: str | None,
    srv: Server,
    deadline: float,
    *,
    tree: bool = False,
    pin: bool = True,
    script: Path = LOADGEN,
    **options: Any,
) -> dict[str, Any]:
    """Run one load-generator scenario (``script=H2LOAD``, ``scenario=None``: HTTP/2) and
    return its JSON.  ``tree``: server CPU and RSS summed over the server's process tree;
    ``pin=False``: the load generator may run on any core."""
    argv = [PY, str(script), *([scenario] if scenario else [])]
    argv += ["--url", srv.url, "--pid", str(srv.pid), "--deadline", str(deadline)]
    if tree:
        argv.append("--tree")
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    try:
        done = subprocess.run(
            pinned(argv, LOADGEN_CORE if pin else ALL_CORES),
            capture_output=True,
            text=True,
            timeout=deadline + 60,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"available": False, "error": "load generator timed out"}
    if done.returncode != 0 or not done.stdout.strip():
        return {"available": False, "error": f"load generator failed: {done.stderr.strip()[-500:]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def say(*parts: Any) -> None:
    print(*parts, flush=True)


# -- scenarios ----------------------------------------------------------------------------------


def run_throughput(p: Profile, results: dict[str, Any]) -> None:
    """Per mode, all four servers are up at once (idle ones cost nothing); each window is
    one load-generator run, and windows rotate over the servers, so background noise
    on the machine falls on every server alike.  Figures are medians over windows."""
    table = results.setdefault("throughput", {})
    names = ["canned", *PEERS]
    for mode in p.modes:
        server_mode = "sse" if mode == "modern" else mode
        servers: dict[str, Server] = {}
        try:
            for name in names:
                servers[name] = Server(name, "json" if name == "canned" else server_mode, tag=f"-tp-{mode}")
            unavailable: dict[str, str] = {}
            for clients in p.clients:
                windows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
                for rep in range(p.reps):
                    order = names[rep % len(names) :] + names[: rep % len(names)]
                    for name in order:
                        if name in unavailable:
                            continue
                        r = loadgen(
                            "throughput",
                            servers[name],
                            deadline=p.warmup + p.duration + 40,
                            mode="json" if name == "canned" else mode,
                            clients=clients,
                            warmup=p.warmup,
                            duration=p.duration,
                            reps=1,
                        )
                        if not r.get("available"):
                            unavailable[name] = str(r.get("error"))
                            continue
                        windows[name].extend(r["reps"])
                for name in names:
                    srv = servers[name]
                    if name in unavailable:
                        summary: dict[str, Any] = {"available": False, "error": unavailable[name]}
                        say(
                            f"  throughput {name:14} {mode:9} c={clients:<3} not available: {unavailable[name][:160]}"
                        )
                    else:
                        reps = windows[name]
                        summary = {
                            "available": True,
                            "clients": clients,
                            "mode": mode,
                            "reps": reps,
                            "rss_kb": proc_rss_kb(srv.pid),
                        }
                        for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "server_cpu_util", "errors"):
                            values = [w[key] for w in reps if w.get(key) is not None]
                            summary[key] = statistics.median(values) if values else None
                        say(
                            f"  throughput {name:14} {mode:9} c={clients:<3} {summary['rps']:8.0f} req/s"
                            f"  p50 {summary['p50_ms']:6.2f} ms  p99 {summary['p99_ms']:6.2f} ms"
                            f"  cpu {fmt(summary['cpu_us_per_req'], '{:.0f}')} us/req"
                            f"  util {summary['server_cpu_util']:.0%}  err {summary['errors']}"
                        )
                    summary["server_error_lines"] = srv.error_lines()
                    table.setdefault(mode, {}).setdefault(name, {})[str(clients)] = summary
        finally:
            for srv in servers.values():
                srv.stop()


def proc_children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc: ``task/*/children`` is not always there)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = Path(f"/proc/{entry}/stat").read_bytes()
                if int(raw[raw.rindex(b")") + 2 :].split()[1]) == pid:
                    out.append(int(entry))
    return out


def proc_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_sessions(p: Profile, results: dict[str, Any]) -> None:
    table = results.setdefault("sessions", {})
    for name in PEERS:
        with server(
            name, "sse", ["--max-sessions", str(max(p.session_counts) * 2 + 1000)], tag="-mem"
        ) as srv:
            r = loadgen(
                "sessions", srv, deadline=p.session_deadline, counts=",".join(map(str, p.session_counts))
            )
            r["server_error_lines"] = srv.error_lines()
        table[name] = r
        pts = ", ".join(
            f"{pt['sessions']}: {fmt(pt['kb_per_session'], '{:.1f}')} KB/session"
            for pt in r.get("points", [])
        )
        say(f"  sessions   {name:14} base {r.get('base_rss_kb')} KB; {pts or r.get('error')}")


def run_streams(p: Profile, results: dict[str, Any]) -> None:
    """Memory per open GET stream: N sessions, each with its standalone GET stream open
    (kept open until RSS is read); RSS growth / N, after warm-up streams."""
    table = results.setdefault("streams", {})
    for name in STREAM_PEERS:
        with server(name, "sse", ["--max-sessions", str(p.stream_count * 2 + 1000)], tag="-streams") as srv:
            r = loadgen(
                "streams",
                srv,
                deadline=p.session_deadline,
                streams=p.stream_count,
                warm_sessions=p.stream_warm,
                settle=1.0,
            )
            r["server_error_lines"] = srv.error_lines()
        idle = idle_session_kb(results, name)
        if r.get("kb_per_stream") is not None and idle is not None:
            r["idle_session_kb"] = idle
            r["kb_beyond_idle_session"] = r["kb_per_stream"] - idle
        table[name] = r
        if r.get("available"):
            say(
                f"  streams    {name:14} {r['streams']}/{r['target']} streams (open at reading {r['open_at_reading']})"
                f"  {fmt(r['kb_per_stream'], '{:.1f}')} KB per session with stream"
                f"  ({fmt(r.get('kb_beyond_idle_session'), '{:+.1f}')} KB beyond an idle session)"
            )
        else:
            say(f"  streams    {name:14} not available: {r.get('error')}")


def idle_session_kb(results: dict[str, Any], name: str) -> float | None:
    """KB per idle session at the largest count of the sessions step, if it ran."""
    pts = get(results, "sessions", name, "points") or []
    return pts[-1].get("kb_per_session") if pts else None


def rotate(
    p: Profile,
    cells: list[tuple[str, ...]],
    measure: Callable[[tuple[str, ...]], dict[str, Any]],
) -> dict[tuple[str, ...], dict[str, Any]]:
    """``p.reps`` windows per cell, rotating over the cells (noise falls on all alike);
    per cell the medians over its windows, or why it is not available."""
    windows: dict[tuple[str, ...], list[dict[str, Any]]] = {cell: [] for cell in cells}
    unavailable: dict[tuple[str, ...], str] = {}
    extra: dict[tuple[str, ...], dict[str, Any]] = {}
    for rep in range(p.reps):
        order = cells[rep % len(cells) :] + cells[: rep % len(cells)]
        for cell in order:
            if cell in unavailable:
                continue
            r = measure(cell)
            if not r.get("available"):
                unavailable[cell] = str(r.get("error"))
                continue
            windows[cell].extend(r["reps"])
            totals = extra.setdefault(cell, {})
            for key in ("connections", "goaways", "resent", "unanswered_after_goaway"):
                if key in r:  # HTTP/2 connection events, summed over windows
                    totals[key] = totals.get(key, 0) + (r[key] or 0)
            totals["rss_kb"] = r.get("rss_kb")
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for cell in cells:
        if cell in unavailable:
            out[cell] = {"available": False, "error": unavailable[cell]}
        else:
            out[cell] = {
                "available": True,
                "reps": windows[cell],
                **medians(windows[cell], WINDOW_KEYS),
                **extra.get(cell, {}),
            }
    return out


def run_workers(p: Profile, results: dict[str, Any]) -> None:
    """The stateless eras on 2 worker processes against 1.  Nothing is pinned (2 workers
    need both cores; the 1-worker servers run the same way): the load generator shares
    the cores, so its own CPU per request is reported beside the server's (summed over
    the supervisor and every worker)."""
    table = results.setdefault("workers", {})
    for mode in p.worker_modes:
        servers: dict[tuple[str, int], Server] = {}
        try:
            for name in WORKER_PEERS:
                for n in p.worker_counts:
                    # Server mode: stateless, as ``serve --workers N`` needs; it serves
                    # both eras (2025 stateless and 2026-07-28) on one endpoint.
                    servers[(name, n)] = Server(name, "stateless", tag=f"-w{n}-{mode}", workers=n, pin=False)
            for clients in p.worker_clients:
                cells = [(name, str(n)) for name, n in servers]

                def measure(
                    cell: tuple[str, ...],
                    clients: int = clients,
                    mode: str = mode,
                    servers: dict[tuple[str, int], Server] = servers,
                ) -> dict[str, Any]:
                    srv = servers[(cell[0], int(cell[1]))]
                    return loadgen(
                        "throughput",
                        srv,
                        deadline=p.warmup + p.duration + 40,
                        tree=True,
                        pin=False,
                        mode=mode,
                        clients=clients,
                        warmup=p.warmup,
                        duration=p.duration,
                        reps=1,
                    )

                for (name, n), summary in rotate(p, cells, measure).items():
                    srv = servers[(name, int(n))]
                    summary["server_error_lines"] = srv.error_lines()
                    summary["server_processes"] = 1 + len(proc_children(srv.pid))
                    table.setdefault(mode, {}).setdefault(name, {}).setdefault(n, {})[str(clients)] = summary
                    if summary["available"]:
                        say(
                            f"  workers    {name:14} {mode:9} w={n} c={clients:<3} {summary['rps']:8.0f} req/s"
                            f"  p50 {summary['p50_ms']:6.2f} ms  p99 {summary['p99_ms']:6.2f} ms"
                            f"  server cpu {fmt(summary['cpu_us_per_req'], '{:.0f}')} us/req"
                            f"  loadgen cpu {fmt(summary['loadgen_cpu_us_per_req'], '{:.0f}')} us/req"
                            f"  err {summary['errors']}"
                        )
                    else:
                        say(
                            f"  workers    {name:14} {mode:9} w={n} c={clients:<3} not available: {summary['error'][:160]}"
                        )
        finally:
            for srv in servers.values():
                srv.stop()


def run_h2(p: Profile, results: dict[str, Any]) -> None:
    """HTTP/2 (prior-knowledge h2c: ``p.h2_streams`` concurrent streams on one connection)
    against HTTP/1.1 (as many keep-alive connections, one request in flight on each),
    on the same server; pinned as in the throughput step."""
    table = results.setdefault("h2", {})
    for mode in p.h2_modes:
        server_mode = "sse" if mode == "modern" else mode
        servers: dict[str, Server] = {}
        try:
            for name in H2_PEERS:
                servers[name] = Server(name, server_mode, tag=f"-h2-{mode}")
            cells = [(name, proto) for name in H2_PEERS for proto in ("h1", "h2")]

            def measure(
                cell: tuple[str, ...], mode: str = mode, servers: dict[str, Server] = servers
            ) -> dict[str, Any]:
                srv = servers[cell[0]]
                timing = {"warmup": p.warmup, "duration": p.duration, "reps": 1}
                if cell[1] == "h2":
                    return loadgen(
                        None,
                        srv,
                        p.warmup + p.duration + 40,
                        script=H2LOAD,
                        mode=mode,
                        streams=p.h2_streams,
                        **timing,
                    )
                return loadgen(
                    "throughput", srv, p.warmup + p.duration + 40, mode=mode, clients=p.h2_streams, **timing
                )

            for (name, proto), summary in rotate(p, cells, measure).items():
                summary["server_error_lines"] = servers[name].error_lines()
                table.setdefault(mode, {}).setdefault(name, {})[proto] = summary
                if summary["available"]:
                    say(
                        f"  h2         {name:14} {mode:9} {proto} x{p.h2_streams} {summary['rps']:8.0f} req/s"
                        f"  p50 {summary['p50_ms']:6.2f} ms  p99 {summary['p99_ms']:6.2f} ms"
                        f"  cpu {fmt(summary['cpu_us_per_req'], '{:.0f}')} us/req  err {summary['errors']}"
                        + (f"  connections {summary.get('connections')}" if proto == "h2" else "")
                    )
                else:
                    say(f"  h2         {name:14} {mode:9} {proto} not available: {summary['error'][:160]}")
        finally:
            for srv in servers.values():
                srv.stop()


def run_fanout(p: Profile, results: dict[str, Any]) -> None:
    table = results.setdefault("fanout", {})
    for streams in p.fanout_streams:
        for name in PEERS:
            with server(name, "sse", tag=f"-fan{streams}") as srv:
                r = loadgen(
                    "fanout",
                    srv,
                    deadline=p.warmup + p.reps * p.duration + 90,
                    streams=streams,
                    warmup=p.warmup,
                    duration=p.duration,
                    reps=p.reps,
                )
                r["server_error_lines"] = srv.error_lines()
            table.setdefault(str(streams), {})[name] = r
            if r.get("available") and r.get("notifications_per_s") is not None:
                say(
                    f"  fanout     {name:14} streams={streams:<4} {r['notifications_per_s']:9.0f} notif/s"
                    f"  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                    f"{'  STALLED' if r.get('stalled') else ''}"
                )
            else:
                say(f"  fanout     {name:14} streams={streams:<4} not available: {r.get('error')}")


def run_drain(p: Profile, results: dict[str, Any]) -> None:
    table = results.setdefault("drain", {})
    for name in PEERS:
        srv = Server(name, "sse", ["--grace", str(p.grace)], tag="-drain")
        try:
            r = loadgen(
                "drain",
                srv,
                deadline=240,
                streams=p.drain_streams,
                inflight=20,
                inflight_seconds=1.0,
                timeout=p.grace + p.drain_extra,
            )
        finally:
            srv.kill()
        r["grace_s"] = p.grace
        r["server_error_lines"] = srv.error_lines()
        table[name] = r
        if r.get("available"):
            say(
                f"  drain      {name:14} {r['streams']} streams -> {r['outcomes']}"
                f"  exit {fmt(r['exit_s'], '{:.2f}')} s  in-flight {r['inflight_outcomes']}"
                f"  error lines {r['server_error_lines']}"
            )
        else:
            say(f"  drain      {name:14} not available: {r.get('error')}")


def run_storm(p: Profile, results: dict[str, Any]) -> None:
    table = results.setdefault("storm", {})
    for name in PEERS:
        with server(name, "sse", tag="-storm") as srv:
            r = loadgen(
                "storm",
                srv,
                deadline=p.storm_cycles * 40 + 30,
                streams=300,
                inflight=100,
                cycles=p.storm_cycles,
            )
            r["server_error_lines"] = srv.error_lines()
        table[name] = r
        if r.get("available"):
            say(
                f"  storm      {name:14} alive={r['alive']} cpu {fmt(r['cpu_us_per_disconnect'], '{:.0f}')} us/disconnect"
                f"  quiet after {fmt(r['quiet_after_s'], '{:.2f}')} s  probe p50 {r['probe_before_p50_ms']:.2f}"
                f" -> {r['probe_after_p50_ms']:.2f} ms  RSS {r['rss_kb_before']} -> {r['rss_kb_after']} KB"
                f"  error lines {r['server_error_lines']}"
            )
        else:
            say(f"  storm      {name:14} not available: {r.get('error')}")


# -- report -------------------------------------------------------------------------------------


def fmt(value: Any, pattern: str = "{:.0f}", missing: str = "n/a") -> str:
    return missing if value is None else pattern.format(value)


def ratio(a: Any, b: Any) -> float | None:
    if a is None or b in (None, 0):
        return None
    return float(a) / float(b)


def get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def tp(results: dict[str, Any], mode: str, name: str, clients: int, key: str) -> Any:
    r = get(results, "throughput", mode, name, str(clients))
    if not r or not r.get("available"):
        return None
    return r.get(key)


def report(results: dict[str, Any], p: Profile) -> tuple[str, list[dict[str, Any]]]:
    lines: list[str] = []
    out = lines.append
    if "throughput" in results:
        report_throughput(results, p, out)
    if "sessions" in results:
        out("")
        out("memory per idle session (RSS growth / sessions, after warm-up sessions)")
        for name in PEERS:
            r = results["sessions"].get(name) or {}
            pts = "  ".join(
                f"{pt['sessions']:>6} sessions: {fmt(pt['kb_per_session'], '{:6.1f}')} KB"
                for pt in r.get("points", [])
            )
            out(f"  {name:14} base RSS {fmt(r.get('base_rss_kb'), '{:>7}')} KB  {pts or r.get('error', '')}")
    if "streams" in results:
        out("")
        out(
            f"memory per open GET stream: {p.stream_count} sessions, each with its standalone GET stream open"
            " (RSS growth / streams, after warm-up streams)"
        )
        for name in STREAM_PEERS:
            r = results["streams"].get(name) or {}
            if not r.get("available"):
                out(f"  {name:14} not available: {r.get('error')}")
                continue
            out(
                f"  {name:14} {r['streams']:>5}/{r['target']} streams (open at reading {r['open_at_reading']}):"
                f" {fmt(r['kb_per_stream'], '{:6.1f}')} KB per session with stream;"
                f" idle session {fmt(r.get('idle_session_kb'), '{:.1f}', 'n/a (sessions step not run)')} KB;"
                f" stream beyond it {fmt(r.get('kb_beyond_idle_session'), '{:+.1f}')} KB"
            )
    if "fanout" in results:
        report_fanout(results, p, out)
    if "workers" in results:
        report_workers(results, p, out)
    if "h2" in results:
        report_h2(results, p, out)
    if "drain" in results:
        out("")
        out(
            f"shutdown drain: SIGTERM with {p.drain_streams} live GET streams + 20 in-flight tools/call (1 s), grace {p.grace} s"
        )
        for name in PEERS:
            r = results["drain"].get(name) or {}
            if not r.get("available"):
                out(f"  {name:14} not available: {r.get('error')}")
                continue
            out(
                f"  {name:14} streams {r['streams']}: {r['outcomes']}; streams ended after"
                f" {fmt(r['streams_drained_s'], '{:.2f}')} s; process exit {fmt(r['exit_s'], '{:.2f}', 'no (killed)')} s;"
                f" in-flight {r['inflight_outcomes']}; error lines {r['server_error_lines']}"
            )
    if "storm" in results:
        out("")
        out("disconnect storm: 300 GET streams + 100 in-flight tools/call reset at once, per cycle")
        for name in PEERS:
            r = results["storm"].get(name) or {}
            if not r.get("available"):
                out(f"  {name:14} not available: {r.get('error')}")
                continue
            out(
                f"  {name:14} alive {r['alive']}; CPU {fmt(r['cpu_us_per_disconnect'], '{:.0f}')} us/disconnect;"
                f" quiet after {fmt(r['quiet_after_s'], '{:.2f}')} s; probe p50 {r['probe_before_p50_ms']:.2f}"
                f" -> {r['probe_after_p50_ms']:.2f} ms; RSS {r['rss_kb_before']} -> {r['rss_kb_after']} KB"
                f" over {len(r['cycles'])} cycles; error lines {r['server_error_lines']}"
            )
    targets = evaluate(results, p)
    if targets:
        out("")
        out("targets")
        for t in targets:
            status = {True: "MET   ", False: "MISSED", None: "n/a   "}[t["met"]]
            out(f"  {status} {t['target']}: {t['measured']}")
    return "\n".join(lines), targets


def report_throughput(results: dict[str, Any], p: Profile, out: Callable[[str], None]) -> None:
    """Three tables, one figure per server in each: req/s, server CPU per request, and
    client latency; each row also carries the ratios read from it."""
    names = [*PEERS, "canned"]
    head = f"{'mode':9} {'c':>3} | " + " ".join(f"{SHORT[n]:>8}" for n in names) + " | "
    rows = [(mode, c) for mode in p.modes for c in p.clients]

    def cells(mode: str, c: int, key: str, pattern: str) -> str:
        return " ".join(fmt(tp(results, mode, n, c, key), pattern, "     n/a") for n in names)

    def ratios(mode: str, c: int, key: str, pairs: list[tuple[str, str]]) -> str:
        return " ".join(
            fmt(ratio(tp(results, mode, a, c, key), tp(results, mode, b, c, key)), "{:10.2f}x", "       n/a ")
            for a, b in pairs
        )

    rps_pairs = [
        ("ours", "sdk-uvicorn"),
        ("sdk-ours", "sdk-uvicorn"),
        ("ours", "sdk-hypercorn"),
        ("ours", "canned"),
    ]
    out("")
    out(
        "tools/call throughput, req/s (median of repeated windows; server pinned to one core; higher is better)"
    )
    out(head + " ".join(f"{SHORT[a] + '/' + BY[b]:>11}" for a, b in rps_pairs))
    for mode, c in rows:
        out(f"{mode:9} {c:>3} | {cells(mode, c, 'rps', '{:8.0f}')} | {ratios(mode, c, 'rps', rps_pairs)}")
    cpu_pairs = [("ours", "canned"), ("sdk-ours", "sdk-uvicorn"), ("sdk-ours", "ours")]
    out("")
    out("server CPU per tools/call, us (same windows; lower is better)")
    out(head + " ".join(f"{SHORT[a] + '/' + BY[b]:>11}" for a, b in cpu_pairs))
    for mode, c in rows:
        out(
            f"{mode:9} {c:>3} | {cells(mode, c, 'cpu_us_per_req', '{:8.0f}')} | {ratios(mode, c, 'cpu_us_per_req', cpu_pairs)}"
        )
    out("")
    out("client latency per tools/call, p50 / p99 ms")
    out(f"{'mode':9} {'c':>3} | " + " ".join(f"{SHORT[n]:>17}" for n in PEERS))
    for mode, c in rows:
        out(
            f"{mode:9} {c:>3} | "
            + " ".join(
                f"{fmt(tp(results, mode, n, c, 'p50_ms'), '{:.2f}')} / {fmt(tp(results, mode, n, c, 'p99_ms'), '{:.2f}')}".rjust(
                    17
                )
                for n in PEERS
            )
        )


def report_workers(results: dict[str, Any], p: Profile, out: Callable[[str], None]) -> None:
    out("")
    out(
        "stateless eras on worker processes (server mode stateless; nothing pinned: the load generator"
        " shares both cores; CPU per request: server = supervisor + workers, loadgen = its own)"
    )
    out(
        f"  {'server':14} {'mode':9} {'c':>3} {'workers':>7} | {'req/s':>7} {'x1':>6} | {'p50 ms':>7} {'p99 ms':>7}"
        f" | {'srv us':>6} {'lg us':>6}"
    )
    for mode in p.worker_modes:
        for name in WORKER_PEERS:
            for c in p.worker_clients:
                one = get(results, "workers", mode, name, "1", str(c)) or {}
                for n in p.worker_counts:
                    r = get(results, "workers", mode, name, str(n), str(c)) or {}
                    if not r.get("available"):
                        out(
                            f"  {name:14} {mode:9} {c:>3} {n:>7} | not available: {str(r.get('error'))[:120]}"
                        )
                        continue
                    scale = ratio(r.get("rps"), one.get("rps")) if one.get("available") else None
                    out(
                        f"  {name:14} {mode:9} {c:>3} {n:>7} | {fmt(r['rps'], '{:7.0f}')} {fmt(scale, '{:5.2f}x')} |"
                        f" {fmt(r['p50_ms'], '{:7.2f}')} {fmt(r['p99_ms'], '{:7.2f}')} |"
                        f" {fmt(r['cpu_us_per_req'], '{:6.0f}')} {fmt(r['loadgen_cpu_us_per_req'], '{:6.0f}')}"
                    )


def report_h2(results: dict[str, Any], p: Profile, out: Callable[[str], None]) -> None:
    out("")
    out(
        f"HTTP/2 (h2c prior knowledge, {p.h2_streams} concurrent streams on one connection) vs HTTP/1.1"
        f" ({p.h2_streams} keep-alive connections); server pinned"
    )
    out(
        f"  {'server':14} {'mode':7} {'proto':5} | {'req/s':>7} {'h2/h1':>6} | {'cpu us':>6} {'h2/h1':>6} |"
        f" {'p50 ms':>7} {'p99 ms':>7} | h2 connections, streams unanswered at GOAWAY"
    )
    for mode in p.h2_modes:
        for name in H2_PEERS:
            h1 = get(results, "h2", mode, name, "h1") or {}
            for proto in ("h1", "h2"):
                r = get(results, "h2", mode, name, proto) or {}
                if not r.get("available"):
                    out(f"  {name:14} {mode:7} {proto:5} | not available: {str(r.get('error'))[:120]}")
                    continue
                rel = proto == "h2" and h1.get("available")
                out(
                    f"  {name:14} {mode:7} {proto:5} | {fmt(r['rps'], '{:7.0f}')}"
                    f" {fmt(ratio(r['rps'], h1.get('rps')) if rel else None, '{:5.2f}x', '      ')} |"
                    f" {fmt(r['cpu_us_per_req'], '{:6.0f}')}"
                    f" {fmt(ratio(r['cpu_us_per_req'], h1.get('cpu_us_per_req')) if rel else None, '{:5.2f}x', '      ')} |"
                    f" {fmt(r['p50_ms'], '{:7.2f}')} {fmt(r['p99_ms'], '{:7.2f}')} |"
                    + (
                        f" {r.get('connections')}, {r.get('unanswered_after_goaway')}"
                        if proto == "h2"
                        else ""
                    )
                )


def report_fanout(results: dict[str, Any], p: Profile, out: Callable[[str], None]) -> None:
    out("")
    out("notification fan-out over live GET streams (notifications/message to every stream)")
    out(
        f"  {'streams':>7} | "
        + " ".join(f"{SHORT[n]:>9}" for n in PEERS)
        + f" notif/s | {'ours/uv':>7} {'sdk-ours/uv':>11} {'ours/hc':>7} | p50 / p99 ms: "
        + ", ".join(SHORT[n] for n in PEERS)
    )
    for streams in p.fanout_streams:
        row = results["fanout"].get(str(streams), {})
        nps = {n: (row.get(n) or {}).get("notifications_per_s") for n in PEERS}
        out(
            f"  {streams:>7} | "
            + " ".join(fmt(nps[n], "{:9.0f}", "      n/a") for n in PEERS)
            + "         | "
            + fmt(ratio(nps["ours"], nps["sdk-uvicorn"]), "{:6.2f}x", "    n/a")
            + " "
            + fmt(ratio(nps["sdk-ours"], nps["sdk-uvicorn"]), "{:10.2f}x", "        n/a")
            + " "
            + fmt(ratio(nps["ours"], nps["sdk-hypercorn"]), "{:6.2f}x", "    n/a")
            + " | "
            + ", ".join(
                f"{fmt((row.get(n) or {}).get('p50_ms'), '{:.1f}')} / {fmt((row.get(n) or {}).get('p99_ms'), '{:.1f}')}"
                for n in PEERS
            )
        )


def sdk_comparison(results: dict[str, Any], p: Profile) -> dict[str, Any]:
    """The same SDK server on our transport against it on uvicorn, per mode and client
    count: req/s and server CPU per request of each, and sdk-ours / sdk-uvicorn."""
    table: dict[str, Any] = {}
    for mode in p.modes if "throughput" in results else []:
        for c in p.clients:
            cell: dict[str, Any] = {}
            for key in ("rps", "cpu_us_per_req"):
                ours, theirs = tp(results, mode, "sdk-ours", c, key), tp(results, mode, "sdk-uvicorn", c, key)
                cell[key] = {"sdk-ours": ours, "sdk-uvicorn": theirs, "ratio": ratio(ours, theirs)}
            table.setdefault(mode, {})[str(c)] = cell
    fanout = {}
    for streams in p.fanout_streams if "fanout" in results else []:
        row = results["fanout"].get(str(streams), {})
        ours = (row.get("sdk-ours") or {}).get("notifications_per_s")
        theirs = (row.get("sdk-uvicorn") or {}).get("notifications_per_s")
        fanout[str(streams)] = {"sdk-ours": ours, "sdk-uvicorn": theirs, "ratio": ratio(ours, theirs)}
    return {"throughput": table, "fanout_notifications_per_s": fanout}


def evaluate(results: dict[str, Any], p: Profile) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []

    def add(target: str, value: float | None, limit: float, *, at_most: bool, unit: str = "x") -> None:
        met = None if value is None else (value <= limit if at_most else value >= limit)
        targets.append(
            {
                "target": target,
                "value": value,
                "limit": limit,
                "met": met,
                "measured": fmt(value, "{:.2f}" + unit)
                + (f" (target {'<=' if at_most else '>='} {limit}{unit})"),
            }
        )

    c = 16
    if "throughput" in results:
        for mode, limit in (("json", 1.3), ("modern", 1.3), ("sse", 1.5)):
            add(
                f"server CPU per tools/call vs canned, {mode}, {c} clients",
                ratio(
                    tp(results, mode, "ours", c, "cpu_us_per_req"),
                    tp(results, mode, "canned", c, "cpu_us_per_req"),
                ),
                limit,
                at_most=True,
            )
        for mode, limit in (("sse", 2.2), ("stateless", 2.5), ("json", 1.2), ("modern", 1.5)):
            add(
                f"throughput vs sdk-uvicorn, {mode}, {c} clients",
                ratio(tp(results, mode, "ours", c, "rps"), tp(results, mode, "sdk-uvicorn", c, "rps")),
                limit,
                at_most=False,
            )
        for mode in p.modes:
            if get(results, "throughput", mode, "ours", "64") is None:
                continue  # 64 clients not measured in this run
            add(
                f"p99 latency vs sdk-uvicorn, {mode}, 64 clients (lower)",
                ratio(
                    tp(results, mode, "ours", 64, "p99_ms"), tp(results, mode, "sdk-uvicorn", 64, "p99_ms")
                ),
                1.0,
                at_most=True,
            )
        for mode in p.modes:
            add(
                f"throughput vs sdk-hypercorn, {mode}, {c} clients",
                ratio(tp(results, mode, "ours", c, "rps"), tp(results, mode, "sdk-hypercorn", c, "rps")),
                1.0,
                at_most=False,
            )
    if "sessions" in results:
        pts = get(results, "sessions", "ours", "points") or []
        if pts:
            add(
                f"memory per idle session at {pts[-1]['sessions']} sessions",
                pts[-1]["kb_per_session"],
                8.0,
                at_most=True,
                unit=" KB",
            )
    if "fanout" in results:
        ours = get(results, "fanout", "100", "ours") or {}
        sdk = get(results, "fanout", "100", "sdk-uvicorn") or {}
        add(
            "fan-out notifications/s vs sdk-uvicorn, 100 streams",
            ratio(ours.get("notifications_per_s"), sdk.get("notifications_per_s")),
            2.0,
            at_most=False,
        )
        add(
            "fan-out p99 latency vs sdk-uvicorn, 100 streams (lower)",
            ratio(ours.get("p99_ms"), sdk.get("p99_ms")),
            1.0,
            at_most=True,
        )
    if "drain" in results:
        r = get(results, "drain", "ours") or {}
        if r.get("available"):
            clean = (
                r.get("clean", 0) == r.get("streams")
                and r.get("exited")
                and (r.get("exit_s") or 1e9) <= p.grace
            )
            targets.append(
                {
                    "target": f"{p.drain_streams} streams drained cleanly within the grace period",
                    "met": bool(clean),
                    "value": r.get("exit_s"),
                    "limit": p.grace,
                    "measured": f"{r.get('clean')}/{r.get('streams')} clean, exit {fmt(r.get('exit_s'), '{:.2f}')} s"
                    f" (grace {p.grace} s), in-flight {r.get('inflight_outcomes')}",
                }
            )
    return targets


# -- profiles -----------------------------------------------------------------------------------


class Profile:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.modes = list(MODES)
        self.clients = [1, 16, 64]
        self.warmup = 0.3 if quick else 0.5
        self.duration = 0.8 if quick else 2.0
        self.reps = 2 if quick else 3
        self.session_counts = [1000, 4000] if quick else [1000, 10000]
        self.session_deadline = 120 if quick else 240
        self.fanout_streams = [10, 100, 500]
        self.drain_streams = 1000
        self.grace = 10.0
        self.drain_extra = 5.0 if quick else 10.0
        self.storm_cycles = 2 if quick else 3
        self.stream_count = 200 if quick else 1000
        self.stream_warm = 50 if quick else 200
        self.worker_modes = ["stateless", "modern"]
        self.worker_counts = [1, 2]
        self.worker_clients = [16, 64]
        self.h2_modes = ["json", "modern"]
        self.h2_streams = 16


STEPS = {
    "throughput": run_throughput,
    "sessions": run_sessions,
    "streams": run_streams,
    "fanout": run_fanout,
    "drain": run_drain,
    "storm": run_storm,
    "workers": run_workers,
    "h2": run_h2,
}


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in (
        "trio-mcp-http",
        "mcp",
        "trio",
        "hypercorn",
        "uvicorn",
        "starlette",
        "anyio",
        "pydantic",
        "h11",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[pkg] = importlib.metadata.version(pkg)
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "server_core": SERVER_CORE,
        "loadgen_core": LOADGEN_CORE,
        "versions": versions,
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short windows, a few minutes in all")
    parser.add_argument(
        "--only", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}"
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="throughput modes (sse,json,stateless,modern)"
    )
    parser.add_argument("--clients", default="1,16,64", help="throughput concurrency levels")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = parser.parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so every server started so far is stopped

    signal.signal(signal.SIGTERM, interrupted)
    p = Profile(args.quick)
    p.modes = [m for m in args.modes.split(",") if m]
    p.clients = [int(c) for c in args.clients.split(",") if c]
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    info = machine()
    say(
        f"machine: {info['cpu']} x{info['cpus']}, Python {info['python']}, cores server={SERVER_CORE} loadgen={LOADGEN_CORE}"
    )
    say(f"versions: {info['versions']}  ({'quick' if args.quick else 'full'} run)")
    if LOADGEN_CORE is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {LOADGEN_CORE})  # keep this orchestrator off the server's core
    results: dict[str, Any] = {}
    for step in [s for s in args.only.split(",") if s]:
        say(f"[{step}]")
        t0 = time.monotonic()
        STEPS[step](p, results)
        say(f"  ({time.monotonic() - t0:.0f} s)")
    text, targets = report(results, p)
    say(text)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    doc = {
        "when": stamp,
        "profile": "quick" if args.quick else "full",
        "settings": {k: v for k, v in vars(p).items()},
        "machine": info,
        "elapsed_s": time.monotonic() - started,
        "results": results,
        # The same SDK server object on our transport against it on uvicorn.
        "sdk_ours_vs_sdk_uvicorn": sdk_comparison(results, p),
        "targets": targets,
        "table": text,
    }
    out = args.out or RESULTS / f"bench-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    (RESULTS / "latest.json").write_text(json.dumps(doc, indent=1))
    say(f"\nwrote {out} ({doc['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
