"""Interop: the Trio client against the official Python SDK's server (PyPI ``mcp``),
an ``MCPServer`` served by uvicorn in a subprocess on 127.0.0.1, in both eras."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import child_server

from trio_mcp_http import McpError
from trio_mcp_http.client import ElicitationRequest, Progress, open_mcp_client

SDK_SERVER = '''
import socket
import warnings

warnings.simplefilter("ignore")

from typing import Any

import anyio
import uvicorn
from pydantic import BaseModel
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventMessage, EventStore

mcp = MCPServer("sdk-peer", log_level="WARNING")


class Name(BaseModel):
    name: str


class Sum(BaseModel):
    sum: int


@mcp.tool()
async def echo(text: str) -> str:
    """Return the text."""
    return text


@mcp.tool()
async def add(a: int, b: int) -> Sum:
    """Add two integers (structured output, with an output schema)."""
    return Sum(sum=a + b)


@mcp.tool()
async def steps(ctx: Context, count: int) -> str:
    for step in range(1, count + 1):
        await ctx.report_progress(step, count, f"step {step}")
    return f"{count} steps"


@mcp.tool()
async def ask(ctx: Context) -> str:
    result = await ctx.elicit("Name?", Name)
    return f"Hello {result.data.name}" if result.action == "accept" else result.action


moments: dict[str, anyio.Event] = {}


def moment(name: str) -> anyio.Event:
    return moments.setdefault(name, anyio.Event())


@mcp.tool()
async def poll(ctx: Context) -> str:
    """End this call's SSE stream mid-call (the event store keeps the rest)."""
    await ctx.report_progress(1, 2, "before")
    await ctx.close_sse_stream()
    await anyio.sleep(0.05)
    await ctx.report_progress(2, 2, "after")
    return "polled"


@mcp.tool()
async def hold(key: str) -> str:
    try:
        moment("started " + key).set()
        await anyio.sleep_forever()
    finally:
        moment("cancelled " + key).set()
    return "unreachable"


@mcp.tool()
async def wait_started(key: str) -> str:
    await moment("started " + key).wait()
    return key + " started"


@mcp.tool()
async def wait_cancelled(key: str) -> str:
    await moment("cancelled " + key).wait()
    return key + " was cancelled"


class MemoryEventStore(EventStore):
    """Every event in order, replayed per stream after a Last-Event-ID."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    async def store_event(self, stream_id: str, message: Any) -> str:
        self.events.append((str(len(self.events) + 1), stream_id, message))
        return self.events[-1][0]

    async def replay_events_after(self, last_event_id: str, send_callback: Any) -> str | None:
        index = next((i for i, event in enumerate(self.events) if event[0] == last_event_id), None)
        if index is None:
            return None
        stream_id = self.events[index][1]
        for event_id, stream, message in self.events[index + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


@mcp.resource("file:///sdk/readme.txt")
async def readme() -> str:
    return "read me"


@mcp.prompt()
async def greet(name: str) -> str:
    return f"Hello {name}"


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
app = mcp.streamable_http_app(host="127.0.0.1", event_store=MemoryEventStore(), retry_interval=200)
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(
    sockets=[sock]
)
'''


@asynccontextmanager
async def sdk_server(tmp_path: Path) -> AsyncIterator[str]:
    """The SDK server in a subprocess; its URL.  The port is the child's to choose (0),
    and the socket listens before the port is printed, so no connection is refused."""
    script = tmp_path / "sdk_server.py"
    script.write_text(SDK_SERVER)
    async with child_server([sys.executable, str(script)], "SDK server") as url:
        yield url


async def test_the_client_speaks_to_the_official_sdk_server(tmp_path: Path) -> None:
    """Both eras against one server process (importing the SDK takes seconds): calls,
    cancellation seen by the server, and (in a session) a stream resumed mid-call."""
    async with sdk_server(tmp_path) as url:
        for era in (None, "session"):
            await _round_trip(url, era)
            await _cancel(url, era)
        await _resume(url)


async def _cancel(url: str, era: str | None) -> None:
    """Cancelling a call cancels its handler: ``notifications/cancelled`` in a session,
    the closed response in the stateless era."""
    key = f"cancel-{era}"
    with trio.fail_after(20):
        async with open_mcp_client(url, era=era) as client:  # type: ignore[arg-type]
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.call_tool, "hold", {"key": key})
                    await client.call_tool("wait_started", {"key": key})
                    scope.cancel()
            assert scope.cancelled_caught
            seen = await client.call_tool("wait_cancelled", {"key": key})
            assert seen.content[0].text == f"{key} was cancelled"  # type: ignore[union-attr]


async def _resume(url: str) -> None:
    """``ctx.close_sse_stream()`` ends the call's stream after one progress event; the
    client waits the ``retry:`` hint (200 ms), resumes with ``Last-Event-ID`` and gets
    the rest from the SDK's event store, each event once."""
    progress: list[str | None] = []

    async def on_progress(update: Progress) -> None:
        progress.append(update.message)

    with trio.fail_after(20):
        async with open_mcp_client(url, era="session") as client:
            started = trio.current_time()
            result = await client.call_tool("poll", progress=on_progress)
            assert trio.current_time() - started >= 0.2
            assert result.content[0].text == "polled"  # type: ignore[union-attr]
            assert progress == ["before", "after"]


async def _round_trip(url: str, era: str | None) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(update: Progress) -> None:
        progress.append((update.progress, update.total, update.message))

    async def elicitation(request: ElicitationRequest) -> dict[str, Any]:
        assert request.requested_schema["required"] == ["name"]
        return {"action": "accept", "content": {"name": "Ada"}}

    with trio.fail_after(20):
        async with open_mcp_client(url, era=era, elicitation=elicitation) as client:  # type: ignore[arg-type]
            # Discovery finds the SDK's 2026-07-28 support; era="session" initializes.
            expected = ("stateless", "2026-07-28") if era is None else ("session", "2025-11-25")
            assert (client.era, client.protocol_version) == expected
            assert client.server_info is not None
            assert client.server_info.name == "sdk-peer"
            tools = {tool.name: tool for tool in await client.list_tools()}
            assert {"echo", "add", "steps", "ask", "poll", "hold"} <= set(tools)
            assert tools["add"].output_schema is not None

            echoed = await client.call_tool("echo", {"text": "héllo"})
            assert echoed.content[0].text == "héllo"  # type: ignore[union-attr]
            added = await client.call_tool("add", {"a": 2, "b": 3})  # checked against its schema
            assert added.structured_content == {"sum": 5}
            stepped = await client.call_tool("steps", {"count": 2}, progress=on_progress)
            assert stepped.content[0].text == "2 steps"  # type: ignore[union-attr]
            assert progress == [(1, 2, "step 1"), (2, 2, "step 2")]

            if client.era == "session":
                asked = await client.call_tool("ask")
                assert asked.content[0].text == "Hello Ada"  # type: ignore[union-attr]
            else:
                # The SDK's ctx.elicit needs a session's back-channel; its refusal
                # arrives as a JSON-RPC error, not a transport failure.
                with pytest.raises(McpError, match="back-channel"):
                    await client.call_tool("ask")

            read = await client.read_resource("file:///sdk/readme.txt")
            assert read.contents[0].text == "read me"  # type: ignore[union-attr]
            prompt = await client.get_prompt("greet", {"name": "Ada"})
            assert prompt.messages[0].content.text == "Hello Ada"  # type: ignore[union-attr]
            with pytest.raises(McpError):
                await client.get_prompt("missing")
