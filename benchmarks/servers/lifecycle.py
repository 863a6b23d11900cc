"""The server of ``python -m benchmarks.lifecycle``: one ``MCPServer`` written for the
official MCP Python SDK, nothing in it about the transport that carries it.

Served as each side's users run it (``benchmarks/lifecycle.py`` starts these)::

    trio-mcp-http serve benchmarks.servers.lifecycle:mcp --grace-period 3
    uvicorn benchmarks.servers.lifecycle:sdk_app --factory --timeout-graceful-shutdown 3
    hypercorn -k trio 'benchmarks.servers.lifecycle:ours_middleware_app()'
    uvicorn benchmarks.servers.lifecycle:sdk_middleware_app --factory

The two ``*_middleware_app`` put the app behind Starlette's ``BaseHTTPMiddleware`` (a
trivial one that decorates the response) and, outermost, :class:`Recorder`, which notes
what each tagged HTTP exchange sent at the server's edge and reports it, with the keys
the ``hold`` tool saw, at ``GET /_lifecycle``: the figures come from the server itself,
not from clients that have gone.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

warnings.simplefilter("ignore")  # send_log_message is deprecated in 2026-07-28; fine for 2025-*

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where :class:`Recorder` answers with what it recorded.
STATS_PATH = "/_lifecycle"
#: The request header that tags an exchange for :class:`Recorder`.
TAG_HEADER = b"x-lifecycle-tag"

mcp = MCPServer("lifecycle", log_level="WARNING")

#: Keys of ``hold`` calls whose handler has started / has ended (in this process).
started: set[str] = set()
finished: set[str] = set()


@mcp.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool()
async def work(seconds: float, ctx: Context) -> str:
    """Report that the work started (a progress notification), then take ``seconds``."""
    await ctx.report_progress(0, 1, "started")
    await anyio.sleep(seconds)
    return f"worked {seconds}"


@mcp.tool()
async def hold(key: str, seconds: float, ctx: Context) -> str:
    """Note ``key`` as started, report progress, take ``seconds``; note it as finished."""
    started.add(key)
    try:
        await ctx.report_progress(0, 1, f"holding {key}")
        await anyio.sleep(seconds)
        return f"held {key}"
    finally:
        finished.add(key)


def sdk_app() -> Any:
    """The SDK's own Streamable HTTP app (its defaults: stateful, SSE responses)."""
    return mcp.streamable_http_app()


class Stamp(BaseHTTPMiddleware):
    """A typical user middleware: looks at the request, decorates the response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-through-middleware"] = request.method
        return response


class Recorder:
    """ASGI middleware, outermost: per tagged HTTP exchange, the statuses it sent, how
    many times it ended a body, and what it raised.  Plain ASGI, so it runs on Trio and
    asyncio alike."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.records: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == STATS_PATH:
            await self._report(send)
            return
        tag = dict(scope.get("headers") or []).get(TAG_HEADER)
        if tag is None:
            await self.app(scope, receive, send)
            return
        record: dict[str, Any] = {
            "tag": tag.decode(),
            "statuses": [],
            "body_ends": 0,
            "raised": None,
            "returned": False,
        }
        self.records.append(record)

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record["statuses"].append(int(message["status"]))
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record["body_ends"] += 1
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException as exc:
            record["raised"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record["returned"] = True

    async def _report(self, send: Send) -> None:
        body = json.dumps(
            {"records": self.records, "started": sorted(started), "finished": sorted(finished)}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def ours_middleware_app() -> Recorder:
    """The server on trio_mcp_http's app (default settings), behind the middleware."""
    from trio_mcp_http import McpHttpApp

    return Recorder(Stamp(McpHttpApp(mcp)))  # type: ignore[arg-type]


def sdk_middleware_app() -> Recorder:
    """The SDK's own app, behind the same middleware."""
    return Recorder(Stamp(sdk_app()))
