"""Servers written for the official MCP Python SDK (and FastMCP), served unmodified.

The SDK's own per-connection kernel answers every request: ``ServerRunner.on_request``
for a 2025-era session (one SDK ``Connection`` per transport session, so ``initialize``,
``logging/setLevel``, subscriptions, elicitation and sampling run as the SDK wrote them)
and ``serve_one`` for a 2026-07-28 request (``server/discover``, input-required results,
``subscriptions/listen``).  The SDK is anyio-based, so that code runs on Trio as it is.

What the SDK calls its dispatch context is provided here from the transport's request
context: notifications and progress go on the request's stream, server-to-client
requests through the session (where the protocol allows them), and the request's task
is the transport's, so disconnects, cancellation and the drain reach it as they reach
any handler.

Kinds: ``mcp.server.lowlevel.Server``, ``mcp.server.mcpserver.MCPServer`` and
``fastmcp.FastMCP`` (mcp 2.3 to 2.x, FastMCP 4.x).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from ..protocol.errors import INTERNAL_ERROR, ConfigError, McpError, UsageError
from ..protocol.input_requests import InputRequest
from .context import Context
from .logic import ProtocolServer, ProtocolSession, SessionOutbound

try:
    import anyio
    from mcp.server.connection import Connection
    from mcp.server.lowlevel.server import Server as LowLevelServer
    from mcp.server.runner import ServerRunner, serve_one
    from mcp.shared.exceptions import MCPError, NoBackChannelError
    from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
    from mcp.shared.message import ServerMessageMetadata
    from mcp.shared.transport_context import TransportContext
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise UsageError(
        "serving a server written for the official MCP SDK needs the SDK: "
        "pip install 'trio-mcp-http[sdk]'"
    ) from exc

__all__ = ["SdkServer", "adapt"]

logger = logging.getLogger("trio_mcp_http")

#: Where asyncio-only code fails when it runs on Trio, as the exceptions say it.
_ASYNCIO_ONLY = (
    "no running event loop",
    "no current event loop",
    "unknown async library",
    "written for some other framework like asyncio",
)


def adapt(server: object) -> SdkServer:
    """An :class:`SdkServer` for an SDK ``Server``, an ``MCPServer`` or a FastMCP server."""
    lowlevel, outer, kind = _unwrap(server)
    return SdkServer(lowlevel, outer, kind)


def _unwrap(
    server: object,
) -> tuple[LowLevelServer[Any], Callable[[], AbstractAsyncContextManager[Any]] | None, str]:
    if isinstance(server, LowLevelServer):
        return server, None, "mcp.server.lowlevel.Server"
    modules = [cls.__module__ for cls in type(server).__mro__]
    if any(m.startswith("fastmcp.") for m in modules):
        lowlevel = getattr(server, "_mcp_server", None)
        manager = getattr(server, "_lifespan_manager", None)
        if isinstance(lowlevel, LowLevelServer) and callable(manager):
            return lowlevel, manager, "fastmcp.FastMCP"
    lowlevel = getattr(server, "_lowlevel_server", None)
    if isinstance(lowlevel, LowLevelServer):
        return lowlevel, None, "mcp.server.mcpserver.MCPServer"
    raise UsageError(
        f"cannot serve a {type(server).__module__}.{type(server).__qualname__}: of the official SDK's "
        "objects, a lowlevel Server, an MCPServer or a FastMCP server can be served"
    )


class SdkServer(ProtocolServer):
    """A server written for the official SDK, carried by this transport."""

    def __init__(
        self,
        lowlevel: LowLevelServer[Any],
        outer_lifespan: Callable[[], AbstractAsyncContextManager[Any]] | None,
        kind: str,
    ) -> None:
        self.lowlevel = lowlevel
        self.kind = kind
        self.name = lowlevel.name
        self._outer_lifespan = outer_lifespan
        self._state: Any = None

    def __repr__(self) -> str:
        return f"<SdkServer {self.kind} {self.name!r}>"

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                if self._outer_lifespan is not None:
                    await stack.enter_async_context(self._outer_lifespan())
                self._state = await stack.enter_async_context(self.lowlevel.lifespan(self.lowlevel))
            except Exception as exc:
                if _asyncio_only(exc):
                    raise ConfigError(
                        f"the lifespan of {self.kind} {self.name!r} uses asyncio-only code, which "
                        f"cannot run on Trio: {exc}"
                    ) from exc
                raise
            try:
                yield
            finally:
                self._state = None

    def open_session(
        self, *, session_id: str | None, protocol_version: str, outbound: SessionOutbound
    ) -> ProtocolSession:
        connection = Connection(
            _SessionChannel(outbound), protocol_version=protocol_version, session_id=session_id
        )
        if session_id is None:
            # The 2025 stateless mode: each POST is its own connection, with no
            # handshake before it (the SDK's stateless mode is born ready too).
            connection.initialized.set()
        return _SdkSession(self, ServerRunner(self.lowlevel, connection, self._state))

    async def stateless_request(self, method: str, params: dict[str, Any], ctx: Context) -> Any:
        connection = Connection.from_envelope(ctx.protocol_version, ctx.client_info, ctx.client_capabilities)
        exchange = _Exchange(ctx, can_send_request=False)
        try:
            return await serve_one(
                self.lowlevel, exchange, method, params, connection=connection, lifespan_state=self._state
            )
        except Exception as exc:
            raise self._translate(exc, method) from exc

    def tool_input_schema(self, name: str) -> Mapping[str, Any] | None:
        """The input schema of tool ``name``, for the transport's ``Mcp-Param-*`` header
        check (MCP 2026-07-28, Transports): the SDK makes that check in its own HTTP layer,
        which this transport replaces.  ``None`` for an unknown tool, and for a lowlevel
        ``Server`` built without ``get_tool_input_schema`` (its schemas come only from a
        ``tools/list`` handler, which needs a request to run)."""
        lookup = self.lowlevel.get_tool_input_schema
        if lookup is None:
            return None
        try:
            return lookup(name)
        except Exception:
            # As the SDK's own transport does: a failing lookup skips the check.
            logger.exception("%r: get_tool_input_schema(%r) failed", self, name)
            return None

    def _translate(self, exc: Exception, method: str) -> Exception:
        """The SDK's errors as the transport's; asyncio-only code named as such."""
        error = handler_exception_to_error_data(exc)
        if error is not None:
            return McpError(error.code, error.message, error.data)
        if _asyncio_only(exc):
            logger.error(
                "%s %r: the handler of %s uses asyncio-only code, which cannot run on Trio: %s",
                self.kind,
                self.name,
                method,
                exc,
            )
            return McpError(INTERNAL_ERROR, f"Internal error: the {method} handler cannot run on this server")
        return exc


class _SdkSession:
    """One transport session's SDK connection and kernel."""

    __slots__ = ("_runner", "_server")

    def __init__(self, server: SdkServer, runner: ServerRunner[Any]) -> None:
        self._server = server
        self._runner = runner

    async def request(self, method: str, params: dict[str, Any], ctx: Context) -> Any:
        if method == "initialize":
            # The transport negotiated the version when it made the session.
            params = {**params, "protocolVersion": ctx.protocol_version}
        # A session (not the stateless mode) can carry requests to the client.
        exchange = _Exchange(ctx, can_send_request=ctx.session_id is not None)
        try:
            result = await self._runner.on_request(exchange, method, params)
        except Exception as exc:
            raise self._server._translate(exc, method) from exc
        if method == "initialize":
            result["protocolVersion"] = ctx.protocol_version
        return result

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        exchange = _Notification()
        await self._runner.on_notify(exchange, method, params)

    async def aclose(self) -> None:
        try:
            await self._runner.connection.exit_stack.aclose()
        except Exception:
            logger.exception("%r: session cleanup failed", self._server)


class _Exchange:
    """The SDK's per-request dispatch context, on the transport's request context."""

    __slots__ = ("_ctx", "can_send_request", "cancel_requested", "message_metadata", "transport")

    def __init__(self, ctx: Context, *, can_send_request: bool) -> None:
        self._ctx = ctx
        self.can_send_request = can_send_request
        self.transport = TransportContext(kind="streamable-http", can_send_request=can_send_request)
        self.message_metadata = ServerMessageMetadata(
            related_request_id=ctx.request_id,
            can_send_request=can_send_request,
            close_sse_stream=self._close_stream,
        )
        self.cancel_requested = anyio.Event()

    @property
    def request_id(self) -> int | str | None:
        return self._ctx.request_id

    async def _close_stream(self) -> None:
        self._ctx.close_sse_stream()

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: Any = None
    ) -> dict[str, Any]:
        if not self.can_send_request:
            raise NoBackChannelError(method)
        try:
            answers = await self._ctx.ask({"answer": InputRequest(method=method, params=dict(params or {}))})
        except McpError as exc:
            raise MCPError(exc.code, exc.message, exc.data) from exc
        answer = answers["answer"]
        return answer if isinstance(answer, dict) else {}

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        await self._ctx.notify(method, dict(params) if params is not None else None)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        meta = self._ctx.meta or {}
        token = meta.get("progressToken")
        if token is None or isinstance(token, bool):
            return
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._ctx.notify("notifications/progress", params)


class _Notification:
    """The dispatch context of a client notification: it has no back-channel."""

    __slots__ = ("cancel_requested", "message_metadata", "transport")
    can_send_request = False
    request_id = None

    def __init__(self) -> None:
        self.transport = TransportContext(kind="streamable-http", can_send_request=False)
        self.message_metadata = ServerMessageMetadata(can_send_request=False)
        self.cancel_requested = anyio.Event()

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: Any = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        return None

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None


class _SessionChannel:
    """The SDK connection's standalone channel: the session's GET stream."""

    __slots__ = ("_outbound",)

    def __init__(self, outbound: SessionOutbound) -> None:
        self._outbound = outbound

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: Any = None
    ) -> dict[str, Any]:
        try:
            answer = await self._outbound.request(method, dict(params) if params is not None else None)
        except McpError as exc:
            raise MCPError(exc.code, exc.message, exc.data) from exc
        return answer if isinstance(answer, dict) else {}

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        await self._outbound.notify(method, dict(params) if params is not None else None)


def _asyncio_only(exc: BaseException) -> bool:
    """Whether ``exc`` is asyncio-only code failing for want of an asyncio loop."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if isinstance(current, RuntimeError | TypeError) and any(marker in text for marker in _ASYNCIO_ONLY):
            return True
        if type(current).__name__ == "AsyncLibraryNotFoundError":
            return True
        current = current.__cause__ or current.__context__
    return False
