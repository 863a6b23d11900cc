"""The ``work`` tool of helpers_shutdown.py written for the official MCP SDK: the server
run in a subprocess by test_shutdown.py (``helpers_shutdown_sdk:server``)."""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("shutdown-test-sdk")


@server.tool()
async def work(seconds: float, ctx: Context) -> str:
    """Report that the work started, then take `seconds`."""
    await ctx.report_progress(0, 1, "started")
    await anyio.sleep(seconds)
    return f"worked {seconds}"
