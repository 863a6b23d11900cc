"""Client-side cost of one ``tools/call``: ``python -m benchmarks.client`` (``--quick``).

Two clients call the ``echo`` tool of one trio_mcp_http server, in both eras:

* ``trio-mcp-http``: ``trio_mcp_http.client.open_mcp_client`` on Trio
  (``era="session"``: 2025-11-25; ``era="stateless"``: 2026-07-28);
* ``mcp.Client``: the official Python SDK's client on asyncio
  (``mode="legacy"``: 2025-11-25; ``mode="auto"``: 2026-07-28).

The server (``benchmarks.servers.ours``, served by ``trio-mcp-http serve`` on 127.0.0.1
port 0) runs in a child process pinned to another core than this one where the machine
has two, so the figure is the client's own: CPU time of this process
(``time.process_time``, every thread) per call, after a warm-up, calls one after the
other over one connection.  Each (client, era) is measured ``--repeat`` times,
alternating, and the median is reported with its spread; wall time per call is shown
for reference.  Prints a table with the ratio SDK / ours (above 1: ours costs less).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
SERVER_SPEC = "benchmarks.servers.ours:server"
_BOUND = re.compile(r"serving MCP at (http://127\.0\.0\.1:\d+/mcp)")
ERAS = {"session": ("session", "legacy"), "stateless": ("stateless", "auto")}
CLIENTS = ("trio-mcp-http", "mcp.Client")


@dataclass
class Sample:
    cpu_us: list[float] = field(default_factory=list)
    wall_us: list[float] = field(default_factory=list)


def pin(cores: set[int]) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The server in a child process, on the last core; its URL once it listens."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    child_cores = {cores[-1]} if len(cores) > 1 else None
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_mcp_http", "serve", SERVER_SPEC, "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if child_cores:
        os.sched_setaffinity(process.pid, child_cores)
        pin(set(cores[:-1]))
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    for line in process.stdout:
        match = _BOUND.search(line)
        if match:
            return process, match.group(1)
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit("the benchmark server did not start")


def ours(url: str, era: str, calls: int, warmup: int) -> tuple[float, float]:
    from trio_mcp_http.client import open_mcp_client

    result: list[tuple[float, float]] = []

    async def main() -> None:
        async with open_mcp_client(url, era=era) as client:  # type: ignore[arg-type]
            await client.list_tools()

            async def loop(n: int) -> None:
                for _ in range(n):
                    await client.call_tool("echo", {"text": "hello"})

            result.append(await _timed(calls, warmup, loop))

    trio.run(main)
    return result[0]


def sdk(url: str, mode: str, calls: int, warmup: int) -> tuple[float, float]:
    from mcp import Client

    async def main() -> tuple[float, float]:
        async with Client(url, mode=mode) as client:
            await client.list_tools()

            async def loop(n: int) -> None:
                for _ in range(n):
                    await client.call_tool("echo", {"text": "hello"})

            return await _timed(calls, warmup, loop)

    return asyncio.run(main())


async def _timed(calls: int, warmup: int, loop: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    await loop(warmup)
    cpu, wall = time.process_time(), time.perf_counter()
    await loop(calls)
    return (time.process_time() - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e6


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} ±{(max(values) - min(values)) / 2:4.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per run")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="runs per (client, era), alternating")
    parser.add_argument("--quick", action="store_true", help="300 calls, 50 warm-up, 2 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.warmup, args.repeat = 300, 50, 2
    process, url = start_server()
    samples = {(client, era): Sample() for client in CLIENTS for era in ERAS}
    try:
        for _ in range(args.repeat):
            for era, (our_era, sdk_mode) in ERAS.items():
                for client in CLIENTS:
                    if client == "trio-mcp-http":
                        cpu, wall = ours(url, our_era, args.calls, args.warmup)
                    else:
                        cpu, wall = sdk(url, sdk_mode, args.calls, args.warmup)
                    samples[client, era].cpu_us.append(cpu)
                    samples[client, era].wall_us.append(wall)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    print(
        f"\nclient CPU µs per tools/call echo ({args.calls} calls x {args.repeat} runs; median ±half-range)"
    )
    print(f"{'era':<10} {'trio-mcp-http':>16} {'mcp.Client':>16} {'SDK/ours':>9}   wall µs (ours / SDK)")
    for era in ERAS:
        mine, theirs = samples["trio-mcp-http", era], samples["mcp.Client", era]
        ratio = statistics.median(theirs.cpu_us) / statistics.median(mine.cpu_us)
        print(
            f"{era:<10} {spread(mine.cpu_us):>16} {spread(theirs.cpu_us):>16} {ratio:>8.2f}x"
            f"   {statistics.median(mine.wall_us):.0f} / {statistics.median(theirs.wall_us):.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
