"""The server run in a subprocess by test_shutdown.py (``helpers_shutdown:server``)."""

from __future__ import annotations

import trio

from trio_mcp_http import Context, McpServer

server = McpServer("shutdown-test", "1.0.0")


@server.tool()
async def work(ctx: Context, seconds: float) -> str:
    """Report that the work started, then take `seconds`."""
    await ctx.report_progress(0, 1, "started")
    await trio.sleep(seconds)
    return f"worked {seconds}"


@server.tool()
async def flood(ctx: Context, count: int, size: int) -> str:
    """Publish `count` notifications of `size` bytes (more than socket buffers hold)."""
    for _ in range(count):
        await ctx.notify("notifications/message", {"level": "debug", "data": "x" * size})
    return "flooded"
