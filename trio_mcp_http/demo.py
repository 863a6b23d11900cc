"""The built-in demo server: ``trio-mcp-http serve`` runs it on 127.0.0.1:8000.

Also usable as an ASGI app: ``hypercorn -k trio trio_mcp_http.demo:app``.
"""

from __future__ import annotations

import datetime

import trio

from . import Context, McpHttpApp, McpServer, ToolAnnotations

server = McpServer(
    "trio-mcp-http-demo",
    "0.1.0",
    title="trio_mcp_http demo",
    instructions="A small demo server: arithmetic, a clock, a slow task that reports progress.",
)


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def add(a: float, b: float) -> str:
    """Add two numbers."""
    return str(a + b)


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def now() -> str:
    """The server's current time (UTC, ISO 8601)."""
    return datetime.datetime.now(datetime.UTC).isoformat()


@server.tool()
async def count_slowly(ctx: Context, steps: int = 5, interval: float = 0.5) -> str:
    """Count to `steps`, one step every `interval` seconds, reporting progress."""
    for step in range(1, steps + 1):
        await trio.sleep(interval)
        await ctx.report_progress(step, steps, f"step {step} of {steps}")
    return f"counted to {steps}"


@server.tool()
async def ask_name(ctx: Context) -> str:
    """Ask the user for their name (elicitation) and greet them."""
    answer = await ctx.elicit(
        "What is your name?",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    )
    if answer.get("action") != "accept":
        return "No name given."
    return f"Hello, {answer.get('content', {}).get('name', 'stranger')}!"


@server.resource("demo://readme", mime_type="text/markdown")
async def readme() -> str:
    """What this server is."""
    return "# trio_mcp_http demo\n\nTools: add, echo, now, count_slowly, ask_name.\n"


@server.prompt()
async def summarize(text: str) -> str:
    """Ask the model to summarize a text."""
    return f"Summarize this in one sentence:\n\n{text}"


#: An ASGI app for ``hypercorn -k trio trio_mcp_http.demo:app``.
app = McpHttpApp(server)
