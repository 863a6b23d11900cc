"""Ours: the same tools on trio_mcp_http, served by ``serve()`` on Hypercorn's trio worker.

python -m benchmarks.servers.ours --port 8000 --mode sse
python -m benchmarks.servers.ours --port 8000 --mode stateless --workers 2

``--workers N`` (N > 1) does what ``trio-mcp-http serve --workers N`` does: bind the
socket once, then run N copies of this very server on it (``--fd``), one shared
``request_state_key``, SIGTERM passed on to each.  Each worker is the 1-worker server.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys

import trio

from trio_mcp_http import McpServer, TransportConfig, serve
from trio_mcp_http.serving.cli import follow_supervisor, supervise

from ._common import parse_args

server = McpServer("bench", "1.0")


@server.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then answer."""
    await trio.sleep(seconds)
    return "slept"


@server.tool()
async def register() -> str:
    """Ask for broadcasts (a no-op here: every GET stream hears server-wide ones)."""
    return "ok"


@server.tool()
async def broadcast(start: int, count: int = 1) -> str:
    """Send ``count`` log notifications (seq start...) to every session's GET stream."""
    for seq in range(start, start + count):
        server.broadcast_log("info", {"seq": seq})
    return "ok"


def run_workers(n: int, host: str, port: int, rest: list[str], fd: int | None = None) -> int:
    """Bind once (or take the inherited socket ``fd``), run ``n`` workers of this module
    on the socket, supervised as ``trio-mcp-http serve --workers N`` supervises its own."""
    if fd is not None:
        sock = socket.socket(fileno=fd)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    env = dict(os.environ, BENCH_REQUEST_STATE_KEY=secrets.token_hex(32))
    command = [sys.executable, "-m", "benchmarks.servers.ours", *rest, "--fd", str(sock.fileno())]
    with sock:
        return supervise(n, command, sock, where=f"{host} port {port}", env=env)


def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--workers", type=int, default=1)
    pre.add_argument("--fd", type=int, default=None)
    extra, rest = pre.parse_known_args()
    sys.argv[1:] = rest
    args = parse_args(__doc__ or "")
    if extra.workers > 1:
        sys.exit(run_workers(extra.workers, args.host, args.port, rest, extra.fd))
    key = os.environ.get("BENCH_REQUEST_STATE_KEY")
    config = TransportConfig(
        json_response=args.mode == "json",
        stateless=args.mode == "stateless",
        max_sessions=args.max_sessions,
        grace_period=args.grace,
        **({"request_state_key": key.encode()} if key else {}),
    )
    follow_supervisor()
    sock = None if extra.fd is None else socket.socket(fileno=extra.fd)
    trio.run(lambda: serve(server, host=args.host, port=args.port, config=config, sock=sock))


if __name__ == "__main__":
    main()
