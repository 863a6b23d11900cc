# ruff: noqa: E501 - report lines are long on purpose
"""What sharing sessions through Redis costs: ``python -m benchmarks.cluster [--quick]``.

For ``tools/call echo`` (the benchmark server's tool, ``benchmarks/servers/ours.py``),
driven by the load generator's engine (``benchmarks/loadgen.py``) in its own process:

* one worker, in-memory vs Redis: requests per second and server CPU per request, in
  the session era (JSON answers and SSE answers) and the 2026-07-28 era;
* two workers vs one: the same, with each keep-alive connection going to the next
  worker (round-robin per connection, as an L4 balancer does) and each session used
  on a worker other than the one that created it; the machine has two cores, so the
  load generator's and Redis's CPU per request are printed alongside;
* Redis round trips per ``tools/call`` on an established session (counted with
  ``MONITOR``: commands sent by clients, not those a script runs; a worker's queued
  writes go together in one script call);
* Redis memory per idle session (``INFO memory`` used_memory over N sessions).

Every process is on 127.0.0.1; redis-server is started here on a free port with no
persistence.  With one worker, the worker is pinned to one core and the load
generator and Redis to the other; with two, each worker has a core and the load
generator and Redis float.  Numbers only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from benchmarks import loadgen
from benchmarks.run import LOADGEN_CORE, PY, RESULTS, ROOT, SERVER_CORE, free_port, pinned

#: The mode names of this report -> (the server's mode, the load generator's mode).
MODES = {"json": ("json", "json"), "sse": ("sse", "sse"), "2026-07-28": ("sse", "modern")}


# -- the worker: the benchmark server's tools, with or without redis_url ---------------------


def serve(port: int, mode: str, redis_url: str | None) -> None:
    import logging

    import trio

    from benchmarks.servers.ours import server
    from trio_mcp_http import TransportConfig
    from trio_mcp_http import serve as serve_mcp

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = TransportConfig(json_response=mode == "json", max_sessions=100_000, redis_url=redis_url)
    trio.run(lambda: serve_mcp(server, host="127.0.0.1", port=port, config=config))


class Worker:
    def __init__(self, mode: str, redis_url: str | None, core: int | None, tag: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        logs = RESULTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"cluster-{tag}.log"
        argv = [PY, "-m", "benchmarks.cluster", "--serve", str(self.port), "--mode", mode]
        if redis_url:
            argv += ["--redis-url", redis_url]
        self.log = self.log_path.open("w")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            pinned(argv, core), cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        self.pid = self.proc.pid  # taskset execs the server in place: the same pid
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the worker did not start; see {self.log_path}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@contextlib.contextmanager
def workers(count: int, mode: str, redis_url: str | None, tag: str) -> Iterator[list[Worker]]:
    cores = [SERVER_CORE] if count == 1 else [SERVER_CORE, LOADGEN_CORE]
    started: list[Worker] = []
    try:
        for n in range(count):
            started.append(Worker(mode, redis_url, cores[n % len(cores)], f"{tag}-{n}"))
        yield started
    finally:
        for worker in started:
            worker.stop()


# -- redis-server --------------------------------------------------------------------------


class Redis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--loglevel", "warning", "--logfile", ""]
        self.proc = subprocess.Popen(
            pinned(argv, LOADGEN_CORE), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip()

    def info(self, section: str) -> dict[str, str]:
        lines = self.cli("INFO", section).splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[Redis]:
    server = Redis()
    try:
        yield server
    finally:
        server.stop()


# -- the load: loadgen's engine, one connection per client, round-robin over workers -----------


class RoundRobinEngine(loadgen.Engine):
    """The load generator's engine, each new connection to the next worker."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(urls[0])
        self.ports = [int(url.split(":")[2].split("/")[0]) for url in urls]
        self._turn = 0

    def _connect(self) -> socket.socket | None:
        self.port = self.ports[self._turn % len(self.ports)]
        self._turn += 1
        return super()._connect()


def open_session_on(url: str) -> str:
    """initialize + notifications/initialized, blocking; the session id."""
    port = int(url.split(":")[2].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    conn.request("POST", "/mcp", json.dumps(loadgen.initialize_body()), headers)
    response = conn.getresponse()
    response.read()
    sid = response.getheader("mcp-session-id") or ""
    headers.update(loadgen.session_headers(sid))
    conn.request("POST", "/mcp", json.dumps(loadgen.INITIALIZED), headers)
    conn.getresponse().read()
    conn.close()
    return sid


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement, in the driver process: ``clients`` keep-alive connections, each
    calling echo back to back; CPU of the given pids and of this process per request."""
    urls: list[str] = spec["urls"]
    mode: str = spec["mode"]
    clients: int = spec["clients"]
    engine = RoundRobinEngine(urls)
    # Client i's connection goes to worker i % W; its session was created on the next
    # worker, so with two workers every session is served by one that restored it.
    sids = [
        open_session_on(urls[(i + 1) % len(urls)]) if mode in ("sse", "json") else "" for i in range(clients)
    ]
    ready = [0]
    errors: list[str] = []

    def client(sid: str) -> loadgen.ClientGen:
        requests = loadgen.call_requests(engine, mode, sid, "echo", {"text": "hello"})
        resp = yield loadgen.Request(requests[0])
        if not loadgen.response_ok(resp.status, resp.body):
            errors.append(f"HTTP {resp.status} {resp.body[:200]!r}")
            return
        ready[0] += 1
        i = 0
        while True:
            i += 1
            yield loadgen.Request(requests[i % len(requests)], timed=True)

    for sid in sids:
        engine.open(client(sid))
    engine.run_until(loadgen.perf() + 30, lambda: ready[0] + len(errors) >= clients)
    if errors or ready[0] < clients:
        return {"error": (errors or ["setup timed out"])[0]}
    engine.run_until(loadgen.perf() + spec["warmup"])
    pids: dict[str, list[int]] = spec["pids"]
    windows = []
    for _ in range(spec["reps"]):
        engine.start_window()
        cpu0 = {pid: loadgen.proc_cpu(pid) or 0.0 for group in pids.values() for pid in group}
        own0 = time.process_time()
        t0 = loadgen.perf()
        engine.run_until(t0 + spec["duration"])
        elapsed = loadgen.perf() - t0
        own = time.process_time() - own0
        engine.recording = False
        done = max(1, engine.ok)
        window: dict[str, Any] = {"rps": engine.ok / elapsed, "errors": engine.errors}
        for name, group in pids.items():
            used = sum((loadgen.proc_cpu(pid) or cpu0[pid]) - cpu0[pid] for pid in group)
            window[f"{name}_us"] = used / done * 1e6
            if name == "server":  # busy share of the workers' cores (< 1: something else ran)
                window["server_util"] = used / elapsed / len(group)
        window["loadgen_us"] = own / done * 1e6
        lat = sorted(engine.latencies)
        window["p50_ms"] = (loadgen.percentile(lat, 0.5) or 0) * 1e3
        windows.append(window)
    engine.close_all()
    return {key: statistics.median(w[key] for w in windows) for key in windows[0]}


def measure(p: Profile, found: list[Worker], mode: str, redis: Redis | None) -> dict[str, Any]:
    pids = {"server": [w.pid for w in found]}
    if redis is not None:
        pids["redis"] = [redis.pid]
    spec = {
        "urls": [w.url for w in found],
        "mode": mode,
        "clients": p.clients,
        "warmup": p.warmup,
        "duration": p.duration,
        "reps": p.reps,
        "pids": pids,
    }
    argv = [PY, "-m", "benchmarks.cluster", "--drive", json.dumps(spec)]
    # One worker: the driver on the other core.  Two: a core each, the driver floats.
    core = LOADGEN_CORE if len(found) == 1 else None
    done = subprocess.run(pinned(argv, core), capture_output=True, text=True, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def line(label: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"  {label:34} not available: {r['error'][:120]}"
    redis = f"  redis {r['redis_us']:5.0f}" if "redis_us" in r else " " * 13
    return (
        f"  {label:34} {r['rps']:7.0f} req/s  p50 {r['p50_ms']:5.2f} ms  CPU us/req: "
        f"server {r['server_us']:5.0f}{redis}  loadgen {r['loadgen_us']:4.0f}  "
        f"workers busy {r['server_util']:4.0%}  err {r['errors']}"
    )


# -- Redis round trips per call, and memory per session ----------------------------------------

_MONITOR = re.compile(r'^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"')


def count_round_trips(monitor_output: str, start: str, end: str) -> Counter[str]:
    """Commands clients sent between two ``ECHO`` markers in ``MONITOR`` output (a
    script's own commands, shown as ``[0 lua]``, are not round trips)."""
    counted: Counter[str] = Counter()
    inside = False
    for text in monitor_output.splitlines():
        match = _MONITOR.match(text)
        if match is None:
            continue
        source, command = match.group(1), match.group(2).lower()
        if command == "echo" and start in text:
            inside = True
        elif command == "echo" and end in text:
            break
        elif inside and source != "lua":
            counted[command] += 1
    return counted


def round_trips(redis: Redis, url: str, mode: str, calls: int) -> tuple[float, Counter[str]]:
    port = int(url.split(":")[2].split("/")[0])
    sid = open_session_on(url) if mode in ("sse", "json") else ""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if mode == "modern":
        headers = {
            "MCP-Protocol-Version": loadgen.MODERN_VERSION,
            "Mcp-Method": "tools/call",
            "Mcp-Name": "echo",
        }
    else:
        headers = loadgen.session_headers(sid)
    headers |= {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

    def call(rid: int) -> None:
        body = loadgen.tool_call_body(rid, "echo", {"text": "hello"}, modern=mode == "modern")
        conn.request("POST", "/mcp", json.dumps(body), headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status

    for rid in range(20):  # established: restored, touched, scripts loaded
        call(rid)
    time.sleep(0.3)
    out_path = RESULTS / "logs" / "cluster-monitor.txt"
    with out_path.open("w") as out:
        monitor = subprocess.Popen(["redis-cli", "-p", str(redis.port), "MONITOR"], stdout=out, text=True)
        try:
            deadline = time.monotonic() + 5
            while "OK" not in out_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.02)
            redis.cli("ECHO", "bench-start")
            for rid in range(100, 100 + calls):
                call(rid)
            # The writer applies queued writes after the answers: wait until it is done
            # (the monitor's output stops growing), then mark the end.
            size = -1
            while size != out_path.stat().st_size and time.monotonic() < deadline + 10:
                size = out_path.stat().st_size
                time.sleep(0.3)
            redis.cli("ECHO", "bench-end")
            while "bench-end" not in out_path.read_text() and time.monotonic() < deadline + 10:
                time.sleep(0.02)
        finally:
            monitor.terminate()
            monitor.wait()
    conn.close()
    counted = count_round_trips(out_path.read_text(), "bench-start", "bench-end")
    return sum(counted.values()) / calls, counted


def memory_per_session(redis: Redis, url: str, pid: int, sessions: int) -> dict[str, Any]:
    """Idle sessions opened by the load generator's ``sessions`` scenario, twice: Redis's
    used_memory grown by the second batch over its size (fixed costs and warm-up left
    out), and ``MEMORY USAGE`` of one session's record; the worker's RSS per session."""

    def batch(warm: int) -> dict[str, Any]:
        argv = [
            PY,
            str(loadgen.__file__),
            "sessions",
            "--url",
            url,
            "--pid",
            str(pid),
            "--counts",
            str(sessions),
        ]
        argv += ["--warm-sessions", str(warm), "--settle", "0.5", "--deadline", "120"]
        done = subprocess.run(
            pinned(argv, LOADGEN_CORE), capture_output=True, text=True, timeout=180, cwd=ROOT
        )
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    batch(100)
    before = int(redis.info("memory")["used_memory"])
    second = batch(1)
    after = int(redis.info("memory")["used_memory"])
    point = second["points"][0] if second["points"] else {}
    made = 1 + int(point.get("sessions", 0))
    sample = redis.cli("--raw", "ZRANGE", "trio-mcp:sessions", "0", "0")
    record = redis.cli("MEMORY", "USAGE", f"trio-mcp:s:{sample}") if sample else ""
    return {
        "sessions": made,
        "redis_bytes_per_session": (after - before) / made,
        "record_bytes": record,
        "worker_kb_per_session": point.get("kb_per_session"),
        "keys": redis.cli("DBSIZE"),
    }


# -- the report -----------------------------------------------------------------------------


class Profile:
    def __init__(self, quick: bool) -> None:
        self.clients = 16
        self.warmup = 0.3 if quick else 0.5
        self.duration = 1.0 if quick else 3.0
        self.reps = 1 if quick else 3
        self.calls = 200 if quick else 1000
        self.sessions = 500 if quick else 2000


def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> str:
    if "error" in a or "error" in b or not b.get(key):
        return "n/a"
    return f"{a[key] / b[key]:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer calls and sessions")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="sse", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--drive", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.mode, args.redis_url)
        return
    if args.drive:
        print(json.dumps(drive(json.loads(args.drive))))
        return

    p = Profile(args.quick)
    started = time.monotonic()
    print(f"# tools/call echo, {p.clients} keep-alive clients, {p.reps} x {p.duration}s windows; cores: "
          f"worker {SERVER_CORE}, load generator and redis {LOADGEN_CORE}", flush=True)  # fmt: skip
    one: dict[tuple[str, str], dict[str, Any]] = {}
    with redis_server() as redis:
        print("\n## one worker: in-memory vs Redis")
        for name, (server_mode, load_mode) in MODES.items():
            for backend in ("memory", "redis"):
                redis.cli("FLUSHALL")
                url = redis.url if backend == "redis" else None
                with workers(1, server_mode, url, f"{name}-{backend}-1") as found:
                    r = measure(p, found, load_mode, redis if url else None)
                one[(name, backend)] = r
                print(line(f"{name:10} {backend}", r), flush=True)
            print(f"  {name:10} redis/memory: req/s {ratio(one[(name, 'redis')], one[(name, 'memory')], 'rps')}, "
                  f"server CPU/req {ratio(one[(name, 'redis')], one[(name, 'memory')], 'server_us')}")  # fmt: skip

        print(
            "\n## two workers vs one (round-robin per connection; each worker pinned to a core, the rest floats)"
        )
        for name, backend in (
            ("json", "redis"),
            ("sse", "redis"),
            ("2026-07-28", "redis"),
            ("2026-07-28", "memory"),
        ):
            server_mode, load_mode = MODES[name]
            redis.cli("FLUSHALL")
            url = redis.url if backend == "redis" else None
            with workers(2, server_mode, url, f"{name}-{backend}-2") as found:
                r = measure(p, found, load_mode, redis if url else None)
            print(line(f"{name:10} {backend} x2", r), flush=True)
            print(f"  {name:10} {backend} 2 workers / 1: req/s {ratio(r, one[(name, backend)], 'rps')}")

        print("\n## Redis round trips per tools/call, established session, one worker (MONITOR)")
        for name, (server_mode, load_mode) in MODES.items():
            redis.cli("FLUSHALL")
            with workers(1, server_mode, redis.url, f"{name}-trips") as found:
                per_call, counted = round_trips(redis, found[0].url, load_mode, p.calls)
            print(f"  {name:10} {per_call:.2f} per call  ({p.calls} calls: {dict(counted)})", flush=True)

        print("\n## Redis memory per idle session (JSON mode, one worker)")
        redis.cli("FLUSHALL")
        with workers(1, "json", redis.url, "memory") as found:
            mem = memory_per_session(redis, found[0].url, found[0].pid, p.sessions)
        print(f"  {mem['sessions']} more sessions: used_memory {mem['redis_bytes_per_session']:.0f} bytes each "
              f"(MEMORY USAGE of a record: {mem['record_bytes']} bytes; {mem['keys']} keys in all); "
              f"the worker's RSS {mem['worker_kb_per_session']:.1f} KB each")  # fmt: skip
    print(f"\n(took {time.monotonic() - started:.0f}s)")


if __name__ == "__main__":
    main(sys.argv[1:])
