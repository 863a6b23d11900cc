"""Ours: the same tools on trio_mcp_http, served by ``serve()`` on Hypercorn's trio worker.

python -m benchmarks.servers.ours --port 8000 --mode sse
"""

from __future__ import annotations

import trio

from trio_mcp_http import McpServer, TransportConfig, serve

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


def main() -> None:
    args = parse_args(__doc__ or "")
    config = TransportConfig(
        json_response=args.mode == "json",
        stateless=args.mode == "stateless",
        max_sessions=args.max_sessions,
        grace_period=args.grace,
    )
    trio.run(lambda: serve(server, host=args.host, port=args.port, config=config))


if __name__ == "__main__":
    main()
