"""The serving boundary: open_mcp_server and serve as a user sees them."""

from __future__ import annotations

import httpx
import pytest
import trio

from trio_mcp_http import McpServer, open_mcp_server


async def test_an_error_inside_the_block_comes_out_as_itself(mcp_server: McpServer) -> None:
    """Public context managers raise one exception, not an ExceptionGroup."""
    with trio.fail_after(10), pytest.raises(LookupError, match="from the block"):
        async with open_mcp_server(mcp_server, host="127.0.0.1", port=0):
            raise LookupError("from the block")


async def test_leaving_the_block_stops_listening(mcp_server: McpServer) -> None:
    with trio.fail_after(10):
        async with open_mcp_server(mcp_server, host="127.0.0.1", port=0) as handle:
            url = handle.url
            assert url.startswith("http://127.0.0.1:")
            assert url.endswith("/mcp")
            assert handle.statistics()["sessions"] == 0
        async with httpx.AsyncClient(timeout=5) as http:
            with pytest.raises(httpx.ConnectError):
                await http.post(url, json={})
