"""The benchmark harness's newer scenarios, tiny: memory per open GET stream
(``loadgen.py streams``), HTTP/2 load (``h2load.py``) and server CPU summed over a
supervisor and its workers (``loadgen.py --tree``), each against a child server.
Shapes and counts only: figures are not checked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def bench_server(*extra: str) -> Iterator[tuple[str, int]]:
    """The benchmark server on a socket bound and listening here, handed to it: a
    connection made before it serves waits in the socket's queue, so nothing polls
    for it to be ready."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = int(listener.getsockname()[1])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [
        sys.executable, "-m", "benchmarks.servers.ours",
        "--port", str(port), "--fd", str(listener.fileno()), *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=[listener.fileno()],
    )
    listener.close()  # the server holds its own copy
    try:
        yield f"http://127.0.0.1:{port}/mcp", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def run_script(script: str, *argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_streams_scenario_opens_and_keeps_the_requested_streams() -> None:
    with bench_server("--mode", "sse") as (url, pid):
        r = run_script(
            "loadgen.py", "streams", "--url", url, "--pid", str(pid),
            "--streams", "5", "--warm-sessions", "2", "--settle", "0.2", "--deadline", "30",
        )  # fmt: skip
    assert r["available"] is True
    assert (r["target"], r["streams"], r["open_at_reading"]) == (5, 5, 5)
    assert (r["warm_streams"], r["warm_open_at_reading"], r["failed"]) == (2, 2, 0)
    assert r["ended_early"] == {}
    assert r["base_rss_kb"] > 0
    assert r["rss_kb"] > 0
    assert isinstance(r["kb_per_stream"], float)


def test_h2load_sends_exactly_the_requested_calls() -> None:
    with bench_server("--mode", "json") as (url, pid):
        for mode in ("json", "modern"):
            r = run_script(
                "h2load.py", "--url", url, "--pid", str(pid), "--mode", mode,
                "--streams", "4", "--requests", "20", "--deadline", "30",
            )  # fmt: skip
            assert r["available"] is True, r
            assert (r["protocol"], r["mode"], r["streams"]) == ("h2c", mode, 4)
            assert (r["requests"], r["errors"]) == (20, 0)
            assert len(r["reps"]) == 1
            assert r["connections"] >= 1
            assert r["client_errors"] == []
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "loadgen_cpu_us_per_req"):
                assert isinstance(r[key], float), key


def test_throughput_counts_every_worker_process() -> None:
    with bench_server("--mode", "stateless", "--workers", "2") as (url, pid):
        r = run_script(
            "loadgen.py", "throughput", "--url", url, "--pid", str(pid), "--tree",
            "--mode", "modern", "--clients", "4", "--warmup", "0.1", "--duration", "0.3",
            "--reps", "1", "--deadline", "30",
        )  # fmt: skip
    assert r["available"] is True, r
    assert r["server_processes"] == 3  # the supervisor and its two workers
    assert r["errors"] == 0
    assert r["rps"] > 0
    assert isinstance(r["loadgen_cpu_us_per_req"], float)
