"""The two protocol eras as seen from the client, over any :class:`Transport`.

:class:`SessionEra` speaks the 2025 revisions: ``initialize`` then
``notifications/initialized``, the ``Mcp-Session-Id`` and ``MCP-Protocol-Version``
headers on every later request, server requests answered with a POST, the GET stream for
messages the server sends on its own, ``notifications/cancelled`` to cancel, DELETE at
the end (MCP 2025-11-25, Lifecycle; Transports, Streamable HTTP).

:class:`StatelessEra` speaks 2026-07-28: no handshake, every request carries its version,
capabilities and client info in ``_meta`` and mirrors its method and name in headers;
input from the client goes into the retried request (input-required results); server
notifications come on ``subscriptions/listen`` streams; closing a response cancels its
request (MCP 2026-07-28, Base Protocol; Transports, Streamable HTTP).

Both present the same operations to :class:`~trio_mcp_http.client.McpClient`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ..protocol import jsonrpc
from ..protocol.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION,
    McpError,
    McpHttpError,
)
from ..protocol.jsonrpc import Envelope, Kind
from ..protocol.stateless import (
    META_CAPABILITIES,
    META_CLIENT_INFO,
    META_LOG_LEVEL,
    META_SERVER_INFO,
    META_SUBSCRIPTION,
    META_VERSION,
    NAME_SOURCE,
    header_params,
)
from ..protocol.versions import LEGACY_VERSIONS, MODERN_VERSIONS
from .errors import HttpStatusError, ResultValidationError, TransportError
from .handlers import Handlers
from .transport import Incoming, Transport
from .types import Implementation, Notification, Progress, ServerDetails

__all__ = ["Era", "SessionEra", "StatelessEra", "discover_or_initialize"]

logger = logging.getLogger("trio_mcp_http.client")

ProgressCallback = Callable[[Progress], Awaitable[None]]
NotificationSink = Callable[[Notification], Awaitable[None]]

#: How long the last words of a closing client (``notifications/cancelled``, DELETE)
#: may take: they are shielded from cancellation, so they must be bounded.
FAREWELL_TIMEOUT = 5.0
#: Input-required rounds one request may take before the client gives up on a server
#: that keeps asking.
MAX_INPUT_ROUNDS = 16


class _Ids:
    """Request ids: integers, unique within a client."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last += 1
        return self._last


def encode_header(value: str) -> str:
    """A header value as MCP 2026-07-28 sends it (Transports, Streamable HTTP, SEP-2243):
    visible ASCII as it is, anything else ``=?base64?...?=`` of its UTF-8 bytes (as is a
    value that would otherwise read as that form or lose its edge whitespace)."""
    plain = (
        value.isascii()
        and all(0x20 <= ord(ch) <= 0x7E for ch in value)
        and value == value.strip(" ")
        and not (value.startswith("=?base64?") and value.endswith("?="))
    )
    return value if plain else "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


def _param_header(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return encode_header(str(value))
    return None


def _result_of(message: Envelope, method: str) -> dict[str, Any]:
    if message.error is not None:
        error = message.error
        raise McpError(error.code, error.message, error.data)
    if not isinstance(message.result, dict):
        raise ResultValidationError(f"the result of {method} is not an object")
    return message.result


class Era:
    """What both eras offer; see the subclasses."""

    details: ServerDetails

    def __init__(self, transport: Transport, handlers: Handlers, client_info: dict[str, Any]) -> None:
        self.transport = transport
        self.handlers = handlers
        self.client_info = client_info
        self.ids = _Ids()
        #: Progress callbacks of the requests in flight, by progress token.
        self._progress: dict[int | str, ProgressCallback] = {}
        #: Where notifications go: the handlers, and the ``listen()`` blocks of a session.
        self.sink: NotificationSink = self.handlers.deliver

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
        tool_schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def start(self, nursery: trio.Nursery) -> None:
        """Start what runs beside the requests (a session's GET stream)."""

    async def close(self) -> None:
        """The era's last words (shielded by the caller)."""

    async def _read_answer(
        self, incoming: Incoming, request_id: int, method: str, answer_requests: bool
    ) -> dict[str, Any]:
        """Read an exchange until the response to ``request_id``; deliver what comes
        before it (progress, log messages, server requests)."""
        while True:
            message = await incoming.receive()
            if message is None:
                raise TransportError(f"the server ended the response to {method} without answering it")
            if message.kind is Kind.RESPONSE:
                if message.id == request_id:
                    return _result_of(message, method)
                continue  # not ours: nothing to do with it
            if message.kind is Kind.REQUEST:
                if answer_requests:
                    await self.answer_server_request(message)
                continue
            await self.notification(message)

    async def answer_server_request(self, message: Envelope) -> None:
        """Session era only (see :class:`SessionEra`)."""

    async def notification(self, message: Envelope, sink: NotificationSink | None = None) -> None:
        params = dict(message.params or {})
        method = message.method or ""
        if method == "notifications/progress":
            callback = self._progress.get(params.get("progressToken"))  # type: ignore[arg-type]
            if callback is not None and isinstance(params.get("progress"), (int, float)):
                await callback(Progress.model_validate(params))
            return
        meta = params.get("_meta")
        if isinstance(meta, dict) and META_SUBSCRIPTION in meta:
            meta = {k: v for k, v in meta.items() if k != META_SUBSCRIPTION}
            if meta:
                params["_meta"] = meta
            else:
                del params["_meta"]
        await (sink or self.sink)(Notification(method=method, params=params))

    def _progress_scope(self, token: int, progress: ProgressCallback | None) -> _ProgressScope:
        return _ProgressScope(self._progress, token, progress)


class _ProgressScope:
    def __init__(
        self, table: dict[int | str, ProgressCallback], token: int, callback: ProgressCallback | None
    ) -> None:
        self._table, self._token, self._callback = table, token, callback

    def __enter__(self) -> None:
        if self._callback is not None:
            self._table[self._token] = self._callback

    def __exit__(self, *exc: object) -> None:
        self._table.pop(self._token, None)


# -- the session era (2025-03-26 ... 2025-11-25) -----------------------------------------


class SessionEra(Era):
    def __init__(
        self,
        transport: Transport,
        handlers: Handlers,
        client_info: dict[str, Any],
    ) -> None:
        super().__init__(transport, handlers, client_info)
        self.session_id: str | None = None
        self.version = LEGACY_VERSIONS[-1]

    def headers(self) -> dict[str, str]:
        headers = {"mcp-protocol-version": self.version}
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
        return headers

    async def initialize(self, version: str) -> ServerDetails:
        """``initialize``, then ``notifications/initialized`` (MCP 2025-11-25, Lifecycle)."""
        request_id = self.ids.next()
        params = {
            "protocolVersion": version,
            "capabilities": self.handlers.capabilities(),
            "clientInfo": self.client_info,
        }
        body = jsonrpc.encode_request(request_id, "initialize", params)
        async with self.transport.exchange(body, {}, resumable=True) as incoming:
            self.session_id = incoming.headers.get("mcp-session-id")
            result = await self._read_answer(incoming, request_id, "initialize", answer_requests=False)
        chosen = result.get("protocolVersion")
        if chosen not in LEGACY_VERSIONS:
            # MCP 2025-11-25, Lifecycle, Version Negotiation: a client that does not
            # support the server's version SHOULD disconnect.
            await self.close()
            raise McpError(
                UNSUPPORTED_PROTOCOL_VERSION,
                f"the server chose protocol version {chosen!r}, which this client does not speak",
                {"supported": list(LEGACY_VERSIONS), "requested": chosen},
            )
        self.version = str(chosen)
        await self.notify("notifications/initialized")
        info = result.get("serverInfo")
        capabilities = result.get("capabilities")
        self.details = ServerDetails(
            era="session",
            protocol_version=self.version,
            capabilities=capabilities if isinstance(capabilities, dict) else {},
            server_info=Implementation.model_validate(info) if isinstance(info, dict) else None,
            instructions=result.get("instructions") if isinstance(result.get("instructions"), str) else None,
            session_id=self.session_id,
        )
        return self.details

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self._post(jsonrpc.encode_notification(method, params))

    async def _post(self, body: bytes) -> None:
        """A message that gets no answer (a notification, a response): 202 expected."""
        async with self.transport.exchange(body, self.headers(), resumable=False) as incoming:
            while await incoming.receive() is not None:
                pass  # a notification or response is answered with 202 and no body

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
        tool_schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        request_id = self.ids.next()
        params = dict(params or {})
        if progress is not None:
            params["_meta"] = {**params.get("_meta", {}), "progressToken": request_id}
        body = jsonrpc.encode_request(request_id, method, params)
        try:
            with self._progress_scope(request_id, progress):
                async with self.transport.exchange(body, self.headers(), resumable=True) as incoming:
                    return await self._read_answer(incoming, request_id, method, answer_requests=True)
        except trio.Cancelled:
            # Closing the stream is not cancellation in this era (MCP 2025-11-25,
            # Transports, Streamable HTTP): the server is told (Utilities, Cancellation).
            with trio.CancelScope(shield=True):
                await self._cancel_on_wire(request_id)
            raise

    async def _cancel_on_wire(self, request_id: int) -> None:
        with trio.move_on_after(FAREWELL_TIMEOUT):
            try:
                await self.notify(
                    "notifications/cancelled", {"requestId": request_id, "reason": "cancelled by the client"}
                )
            except McpHttpError as exc:
                logger.info("could not tell the server of a cancelled request: %s", exc)

    async def answer_server_request(self, message: Envelope) -> None:
        """Answer an elicitation, sampling or roots request with a POST."""
        params = dict(message.params or {})
        request_id = message.request_id
        try:
            result = await self.handlers.answer(message.method or "", params)
        except McpError as exc:
            reply = jsonrpc.encode_error(request_id, exc.code, exc.message, exc.data)
        except Exception as exc:
            logger.exception("the client's handler for %s failed", message.method)
            reply = jsonrpc.encode_error(request_id, INTERNAL_ERROR, f"the client's handler failed: {exc}")
        else:
            reply = jsonrpc.encode_result(request_id, result)
        await self._post(reply)

    async def start(self, nursery: trio.Nursery) -> None:
        """Open the GET stream; returns once the server has accepted (or refused) it, so
        what the server sends from then on is not missed."""
        if self.session_id is not None:
            await nursery.start(self._server_stream)

    async def _server_stream(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The GET stream: what the server sends outside any request (MCP 2025-11-25,
        Transports, Listening for Messages from the Server), resumed when it drops."""
        started = False
        try:
            async with self.transport.server_stream(self.headers()) as incoming:
                task_status.started()
                started = True
                while (message := await incoming.receive()) is not None:
                    try:
                        if message.kind is Kind.REQUEST:
                            await self.answer_server_request(message)
                        elif message.kind is Kind.NOTIFICATION:
                            await self.notification(message)
                    except McpHttpError:
                        raise
                    except Exception:
                        logger.exception("a notification handler failed on %s", message.method)
        except HttpStatusError as exc:
            if exc.status != 405:  # 405: the server offers no GET stream
                logger.warning("the server's GET stream is unavailable: %s", exc)
        except McpHttpError as exc:
            logger.warning("the server's GET stream ended: %s", exc)
        if not started:
            task_status.started()  # refused: nothing to wait for

    async def close(self) -> None:
        """DELETE the session (MCP 2025-11-25, Transports, Session Management)."""
        if self.session_id is None:
            return
        with trio.move_on_after(FAREWELL_TIMEOUT):
            try:
                await self.transport.end_session(self.headers())
            except McpHttpError as exc:
                logger.info("ending the session failed: %s", exc)
        self.session_id = None


# -- the stateless era (2026-07-28) ------------------------------------------------------


class StatelessEra(Era):
    def __init__(
        self,
        transport: Transport,
        handlers: Handlers,
        client_info: dict[str, Any],
        version: str = MODERN_VERSIONS[-1],
    ) -> None:
        super().__init__(transport, handlers, client_info)
        self.version = version
        #: ``io.modelcontextprotocol/logLevel`` of every request, once set.
        self.log_level: str | None = None

    def meta(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            META_VERSION: self.version,
            META_CAPABILITIES: self.handlers.capabilities(),
            META_CLIENT_INFO: self.client_info,
        }
        if self.log_level is not None:
            meta[META_LOG_LEVEL] = self.log_level
        meta.update(extra or {})
        return meta

    def headers(self, method: str, params: Mapping[str, Any], tool_schema: Any = None) -> dict[str, str]:
        """``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` and ``Mcp-Param-*``."""
        headers = {"mcp-protocol-version": self.version, "mcp-method": method}
        source = NAME_SOURCE.get(method)
        if source is not None and isinstance(params.get(source), str):
            headers["mcp-name"] = encode_header(params[source])
        if method == "tools/call" and tool_schema is not None:
            arguments = params.get("arguments") or {}
            for path, header in header_params(tool_schema):
                value: Any = arguments
                for key in path:
                    value = value.get(key) if isinstance(value, dict) else None
                encoded = None if value is None else _param_header(value)
                if encoded is not None:
                    headers["mcp-param-" + header.lower()] = encoded
        return headers

    async def discover(self) -> dict[str, Any]:
        """``server/discover``: versions, capabilities, identity."""
        return await self.request("server/discover")

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
        tool_schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        params = dict(params or {})
        for _round in range(MAX_INPUT_ROUNDS):
            request_id = self.ids.next()
            extra = {"progressToken": request_id} if progress is not None else None
            sent = {**params, "_meta": {**params.get("_meta", {}), **self.meta(extra)}}
            body = jsonrpc.encode_request(request_id, method, sent)
            headers = self.headers(method, params, tool_schema)
            # Leaving this block, by cancellation too, closes the response: the
            # cancellation of a 2026-07-28 request (Transports, Streamable HTTP).
            with self._progress_scope(request_id, progress):
                async with self.transport.exchange(body, headers, resumable=False) as incoming:
                    result = await self._read_answer(incoming, request_id, method, answer_requests=False)
            if result.get("resultType") != "input_required":
                return result
            params = await self._with_answers(params, result)
        raise McpError(INVALID_REQUEST, f"the server asked for input more than {MAX_INPUT_ROUNDS} times")

    async def _with_answers(self, params: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        """The request to retry: the answers to the server's input requests, got from the
        same callbacks a session would call, and its ``requestState`` unchanged."""
        requests = result.get("inputRequests")
        if not isinstance(requests, dict):
            raise ResultValidationError("an input-required result without inputRequests")
        answers: dict[str, Any] = {}
        for key, asked in requests.items():
            if not isinstance(asked, dict) or not isinstance(asked.get("method"), str):
                raise ResultValidationError(f"input request {key!r} names no method")
            asked_params = asked.get("params")
            answers[key] = await self.handlers.answer(
                asked["method"], asked_params if isinstance(asked_params, dict) else {}
            )
        retried = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
        retried["inputResponses"] = answers
        if result.get("requestState") is not None:
            retried["requestState"] = result["requestState"]
        return retried

    async def listen(
        self,
        notifications: dict[str, Any],
        sink: NotificationSink,
        *,
        task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """One ``subscriptions/listen`` stream (MCP 2026-07-28, Subscriptions): started
        once the server acknowledges it (with what it honours); returns when the server
        ends it."""
        request_id = self.ids.next()
        params = {"notifications": notifications, "_meta": self.meta()}
        body = jsonrpc.encode_request(request_id, "subscriptions/listen", params)
        headers = self.headers("subscriptions/listen", params)
        async with self.transport.exchange(body, headers, resumable=False) as incoming:
            first = await incoming.receive()
            if first is None:
                raise TransportError("the server ended subscriptions/listen without acknowledging it")
            if first.kind is Kind.RESPONSE:
                _result_of(first, "subscriptions/listen")
                raise TransportError("the server answered subscriptions/listen without a stream")
            acknowledged = (first.params or {}).get("notifications")
            task_status.started(acknowledged if isinstance(acknowledged, dict) else {})
            while (message := await incoming.receive()) is not None:
                if message.kind is Kind.RESPONSE and message.id == request_id:
                    return  # the server ended the subscription
                if message.kind is Kind.NOTIFICATION:
                    await self.notification(message, sink)


async def discover_or_initialize(
    transport: Transport,
    handlers: Handlers,
    client_info: dict[str, Any],
    *,
    era: str | None,
    version: str | None,
) -> Era:
    """Connect in the era asked for, or find the server's (MCP 2026-07-28, Versioning,
    backward compatibility): ``server/discover`` first; a server that answers it with a
    version we share is stateless; any other refusal, short of a server speaking only
    revisions we do not (-32022 naming no 2025 revision), means a 2025 server, which is
    then initialized."""
    if era != "session":
        modern = StatelessEra(transport, handlers, client_info, version or MODERN_VERSIONS[-1])
        try:
            result = await _discover(modern, (version,) if version else MODERN_VERSIONS)
        except McpError as exc:
            if era == "stateless" or _modern_only(exc):
                raise
        except HttpStatusError as exc:
            if era == "stateless" or exc.status >= 500:
                raise
        else:
            supported = result.get("supportedVersions")
            if isinstance(supported, list) and modern.version in supported:
                modern.details = _discovered(modern.version, result)
                return modern
            if era == "stateless":
                raise McpError(
                    UNSUPPORTED_PROTOCOL_VERSION,
                    f"the server does not support {modern.version}",
                    {"supported": supported, "requested": modern.version},
                )
    legacy = SessionEra(transport, handlers, client_info)
    await legacy.initialize(version or LEGACY_VERSIONS[-1])
    return legacy


async def _discover(era: StatelessEra, ours: tuple[str, ...]) -> dict[str, Any]:
    """``server/discover``; refused as an unsupported version (-32022) whose data lists
    one we speak, asked once more in the newest such (MCP 2026-07-28, Lifecycle, Version
    Negotiation: the error names the server's versions so that the client can retry)."""
    try:
        return await era.discover()
    except McpError as exc:
        if exc.code != UNSUPPORTED_PROTOCOL_VERSION:
            raise
        supported = exc.data.get("supported") if isinstance(exc.data, dict) else None
        shared = [v for v in ours if isinstance(supported, list) and v in supported]
        if not shared:
            raise
        era.version = shared[-1]
        return await era.discover()


def _modern_only(exc: McpError) -> bool:
    """-32022 with a list of versions of which none is a 2025 one: no fallback helps."""
    if exc.code == METHOD_NOT_FOUND or exc.code != UNSUPPORTED_PROTOCOL_VERSION:
        return False
    supported = exc.data.get("supported") if isinstance(exc.data, dict) else None
    return isinstance(supported, list) and not any(v in LEGACY_VERSIONS for v in supported)


def _discovered(version: str, result: dict[str, Any]) -> ServerDetails:
    meta = result.get("_meta")
    info = meta.get(META_SERVER_INFO) if isinstance(meta, dict) else None
    capabilities = result.get("capabilities")
    instructions = result.get("instructions")
    return ServerDetails(
        era="stateless",
        protocol_version=version,
        capabilities=capabilities if isinstance(capabilities, dict) else {},
        server_info=Implementation.model_validate(info) if isinstance(info, dict) else None,
        instructions=instructions if isinstance(instructions, str) else None,
    )
