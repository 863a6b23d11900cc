"""A/B of two checkouts over real HTTP: which one costs the server less per request.

    git worktree add /tmp/base HEAD~1
    python -m benchmarks.ab /tmp/base . --modes json,modern --reps 6

For each mode and repetition, each checkout's benchmark server (``benchmarks/servers``)
is started pinned to one core and driven by the load generator on the other for one
window; the order of the two alternates between repetitions, so a slow spell of the
machine falls on both.  Prints the medians of server CPU per request and of requests
per second, with every window's CPU figure.  Loopback only; each window is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _window(root: Path, server: str, mode: str, clients: int, seconds: float) -> dict[str, float]:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONUNBUFFERED="1")
    server_mode = "sse" if mode == "modern" else mode  # 2026-07-28 requests need no mode
    argv = [sys.executable, "-m", f"benchmarks.servers.{server}", "--port", str(port), "--mode", server_mode]
    process = subprocess.Popen(
        ["taskset", "-c", "0", *argv], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{root}: the {server} server did not start") from None
                time.sleep(0.1)
        loadgen = [
            sys.executable, str(root / "benchmarks" / "loadgen.py"), "throughput",
            "--url", f"http://127.0.0.1:{port}/mcp", "--pid", str(process.pid), "--mode", mode,
            "--clients", str(clients), "--duration", str(seconds), "--reps", "1", "--warmup", "1",
            "--deadline", str(seconds * 10 + 30),
        ]  # fmt: skip
        out = subprocess.run(["taskset", "-c", "1", *loadgen], capture_output=True, text=True, check=True)
        result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("a", type=Path, help="checkout A (the baseline)")
    parser.add_argument("b", type=Path, help="checkout B (the change)")
    parser.add_argument("--modes", default="json,modern", help="comma-separated: sse,json,stateless,modern")
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--server", default="ours", help="benchmarks/servers module (ours, sdk, canned)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0, help="each window's length")
    args = parser.parse_args(argv)
    roots = {"A": args.a.resolve(), "B": args.b.resolve()}
    for mode in [m for m in args.modes.split(",") if m]:
        figures: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
        for rep in range(args.reps):
            order = ["A", "B"] if rep % 2 == 0 else ["B", "A"]
            for name in order:
                figures[name].append(_window(roots[name], args.server, mode, args.clients, args.seconds))
        cpu = {name: statistics.median(w["cpu_us_per_req"] for w in figures[name]) for name in figures}
        for name in ("A", "B"):
            rps = statistics.median(w["rps"] for w in figures[name])
            windows = [round(w["cpu_us_per_req"]) for w in figures[name]]
            print(f"{mode:9} {name} {roots[name]}: {cpu[name]:6.0f} us CPU/req, {rps:6.0f} req/s  {windows}")
        print(f"{mode:9} B/A CPU per request: {cpu['B'] / cpu['A']:.2f}", flush=True)


if __name__ == "__main__":
    main()
