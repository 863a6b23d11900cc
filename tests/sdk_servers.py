"""The same small server written three ways, as users of the official MCP Python SDK and
of FastMCP write them: nothing here knows about trio_mcp_http.

Tools: ``echo(text)``, ``progress(steps)`` (progress and a log message per step),
``ask_name()`` (an elicitation, 2025 sessions), ``slow(seconds)``; a resource
``note://hello``; a prompt ``greet(name)``.  ``events`` records what handlers saw.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from fastmcp import Context as FastContext
from fastmcp import FastMCP
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

events: list[str] = []


class Name(BaseModel):
    name: str


# -- MCPServer ---------------------------------------------------------------------------


@asynccontextmanager
async def _lifespan(server: MCPServer[Any]) -> Any:
    events.append("lifespan start")
    try:
        yield {"greeting": "Hello"}
    finally:
        events.append("lifespan end")


mcpserver: MCPServer[Any] = MCPServer("sdk-mcpserver", lifespan=_lifespan)


@mcpserver.tool()
async def echo(text: str) -> str:
    """Echo the text back."""
    return text


@mcpserver.tool()
async def progress(steps: int, ctx: Context) -> str:
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
        await ctx.info(f"step {step} of {steps}")
    return f"done {steps}"


@mcpserver.tool()
async def ask_name(ctx: Context) -> str:
    answer = await ctx.elicit("What is your name?", Name)
    if answer.action == "accept":
        greeting = ctx.request_context.lifespan_context["greeting"]
        return f"{greeting}, {answer.data.name}!"
    return f"declined: {answer.action}"


@mcpserver.tool()
async def slow(seconds: float) -> str:
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        events.append("slow cancelled")
        raise
    return "slept"


@mcpserver.tool()
async def uses_asyncio() -> str:
    import asyncio

    await asyncio.sleep(0)
    return "unreachable on trio"


@mcpserver.resource("note://hello")
async def hello_note() -> str:
    return "hello from a resource"


@mcpserver.prompt()
async def greet(name: str) -> str:
    return f"Please greet {name}."


# -- the lowlevel Server -------------------------------------------------------------------


async def _list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    return types.ListToolsResult(tools=[types.Tool(name="echo", input_schema=schema)])


async def _call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name != "echo":
        return types.CallToolResult(content=[types.TextContent(text=f"no tool {params.name}")], is_error=True)
    text = str((params.arguments or {}).get("text", ""))
    return types.CallToolResult(content=[types.TextContent(text=text)])


lowlevel: Server[Any] = Server("sdk-lowlevel", on_list_tools=_list_tools, on_call_tool=_call_tool)


# -- FastMCP --------------------------------------------------------------------------------


def make_fastmcp() -> Any:
    """A FastMCP 4 server, new each time."""
    server = FastMCP("sdk-fastmcp")

    @server.tool
    async def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool
    async def progress(steps: int, ctx: FastContext) -> str:
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
            await ctx.info(f"step {step} of {steps}")
        return f"done {steps}"

    @server.tool
    async def ask_name(ctx: FastContext) -> str:
        answer = await ctx.elicit("What is your name?", Name)
        if answer.action == "accept":
            return f"Hello, {answer.data.name}!"
        return f"declined: {answer.action}"

    @server.resource("note://hello")
    async def hello_note() -> str:
        return "hello from a resource"

    @server.prompt
    async def greet(name: str) -> str:
        return f"Please greet {name}."

    return server


# -- for the disconnect storm: tools the test holds and releases ----------------------------

started: dict[str, anyio.Event] = {}
release: dict[str, anyio.Event] = {}
finished: dict[str, anyio.Event] = {}


def _event(table: dict[str, anyio.Event], key: str) -> anyio.Event:
    if key not in table:
        table[key] = anyio.Event()
    return table[key]


@mcpserver.tool()
async def hold(key: str, ctx: Context) -> str:
    """Report progress, then wait until the test releases ``key``."""
    try:
        _event(started, key).set()
        await ctx.report_progress(0, 1, f"holding {key}")
        await _event(release, key).wait()
        return f"released {key}"
    finally:
        _event(finished, key).set()
