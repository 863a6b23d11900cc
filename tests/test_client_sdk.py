"""Interop: the Trio client against the official Python SDK's server (PyPI ``mcp``),
an ``MCPServer`` served by uvicorn in a subprocess on 127.0.0.1, in both eras."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_mcp_http import McpError
from trio_mcp_http.client import ElicitationRequest, Progress, open_mcp_client

SDK_SERVER = '''
import socket
import warnings

warnings.simplefilter("ignore")

import uvicorn
from pydantic import BaseModel
from mcp.server.mcpserver import Context, MCPServer

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
uvicorn.Server(uvicorn.Config(mcp.streamable_http_app(host="127.0.0.1"), log_level="warning")).run(
    sockets=[sock]
)
'''


@asynccontextmanager
async def sdk_server(tmp_path: Path) -> AsyncIterator[str]:
    """The SDK server in a subprocess; its URL.  The port is the child's to choose (0),
    and the socket listens before the port is printed, so no connection is refused."""
    script = tmp_path / "sdk_server.py"
    script.write_text(SDK_SERVER)
    process = await trio.lowlevel.open_process(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(64)
                assert chunk, "the SDK server exited before it listened"
                line += chunk
        yield f"http://127.0.0.1:{int(line)}/mcp"
    finally:
        process.terminate()
        with trio.move_on_after(10):
            await process.wait()
        process.kill()
        await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


async def test_the_client_speaks_to_the_official_sdk_server(tmp_path: Path) -> None:
    """Both eras against one server process (importing the SDK takes seconds)."""
    async with sdk_server(tmp_path) as url:
        for era in (None, "session"):
            await _round_trip(url, era)


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
            assert set(tools) == {"echo", "add", "steps", "ask"}
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
