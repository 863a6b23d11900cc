"""Interop: the Trio client against a server written with the official TypeScript SDK
(npm ``@modelcontextprotocol/sdk``, ``tests/js/ts_server.cjs``), on Node 22 in a
subprocess on 127.0.0.1.

That SDK speaks the 2025 revisions only, so the client's discovery (``server/discover``,
refused) falls back to a session, as it would with any 2025 server.  Covered: calls with
structured output checked against the output schema, elicitation answered by the callback
(with the schema's defaults filled in), a response stream the server ends mid-call
resumed with ``Last-Event-ID``, and a cancelled call seen cancelled by the server.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from helpers import child_server
from test_typescript_client import NODE_MODULES, node_or_fail

from trio_mcp_http.client import ElicitationRequest, Progress, open_mcp_client

SERVER_SCRIPT = os.path.join(os.path.dirname(__file__), "js", "ts_server.cjs")


@asynccontextmanager
async def ts_server() -> AsyncIterator[str]:
    """The TypeScript SDK server in a subprocess; its URL (the port is printed once it listens)."""
    argv = [str(node_or_fail()), SERVER_SCRIPT]
    async with child_server(argv, "TypeScript server", {**os.environ, "NODE_PATH": str(NODE_MODULES)}) as url:
        yield url


async def test_calls_and_elicitation() -> None:
    asked: list[ElicitationRequest] = []

    async def elicitation(request: ElicitationRequest) -> dict[str, Any]:
        asked.append(request)
        return {"action": "accept", "content": {"name": "Ada"}}  # "title" left to its default

    async with ts_server() as url:
        with trio.fail_after(20):
            async with open_mcp_client(url, elicitation=elicitation) as client:
                assert (client.era, client.protocol_version) == ("session", "2025-11-25")
                assert client.server_info is not None
                assert client.server_info.name == "ts-peer"
                assert client.session_id
                tools = {tool.name for tool in await client.list_tools()}
                assert {"echo", "add", "ask", "poll", "hold"} <= tools
                echoed = await client.call_tool("echo", {"text": "héllo"})
                assert echoed.content[0].text == "héllo"  # type: ignore[union-attr]
                added = await client.call_tool("add", {"a": 2, "b": 3})  # checked against its schema
                assert added.structured_content == {"sum": 5}
                answered = await client.call_tool("ask")
                assert answered.content[0].text == "Hello Dr Ada"  # type: ignore[union-attr]
                assert asked[0].message == "Name?"


async def test_a_stream_the_server_ends_mid_call_is_resumed() -> None:
    """The SDK's ``closeSSEStream()``: the client waits the priming event's ``retry:``,
    GETs with ``Last-Event-ID``, and gets the later progress and the result once."""
    progress: list[str | None] = []

    async def on_progress(update: Progress) -> None:
        progress.append(update.message)

    async with ts_server() as url:
        with trio.fail_after(20):
            async with open_mcp_client(url) as client:
                started = trio.current_time()
                result = await client.call_tool("poll", progress=on_progress)
                assert trio.current_time() - started >= 0.2  # the server's retry hint (200 ms)
                assert result.content[0].text == "polled"  # type: ignore[union-attr]
                assert progress == ["before", "after"]


async def test_a_cancelled_call_is_cancelled_on_the_server() -> None:
    """Cancelling the caller's scope sends ``notifications/cancelled``: the SDK aborts the
    handler, which ``wait_cancelled`` (another call) then reports."""
    async with ts_server() as url:
        with trio.fail_after(20):
            async with open_mcp_client(url) as client:
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(client.call_tool, "hold", {"key": "k1"})
                        await client.call_tool("wait_started", {"key": "k1"})
                        scope.cancel()
                assert scope.cancelled_caught
                seen = await client.call_tool("wait_cancelled", {"key": "k1"})
                assert seen.content[0].text == "k1 was cancelled"  # type: ignore[union-attr]
                # The session is still good for more calls.
                after = await client.call_tool("echo", {"text": "after"})
                assert after.content[0].text == "after"  # type: ignore[union-attr]
