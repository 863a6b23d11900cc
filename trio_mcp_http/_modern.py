"""The stateless 2026-07-28 era: every request stands alone.

No sessions and no GET stream: each request carries its protocol version and client
capabilities in ``_meta``, the ``Mcp-Method`` / ``Mcp-Name`` / ``Mcp-Param-*`` headers
mirror the body, input from the client comes back through *input-required results*,
and server-wide notifications go to ``subscriptions/listen`` streams.

The handler runs inside the ASGI call, in a nursery with a watcher of ``receive()``: a
client disconnect cancels it (T-75).  The response starts as JSON and turns into an
SSE stream only if the handler sends a notification before its result.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

import trio
from pydantic_core import to_json

from . import _jsonrpc, _sse
from ._asgi import JSON_HEADERS, SSE_HEADERS, GuardedResponse, Receive, watch_disconnect
from ._context import (
    Context,
    InputRequest,
    InputRequired,
    answer_is_valid,
    level_rank,
    require_capabilities,
)
from ._errors import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_CLIENT_CAPABILITY,
    RESOURCE_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION,
    McpError,
    ProtocolError,
)
from ._http import accepts
from ._jsonrpc import Envelope, Kind
from ._stream import pump
from ._tasks import EXTENSION as TASKS_EXTENSION
from ._tasks import METHODS as TASK_METHODS
from ._versions import MODERN_VERSIONS

if TYPE_CHECKING:
    from ._http import RequestHeaders
    from ._transport import McpHttpApp

__all__ = ["ModernEra"]

logger = logging.getLogger("trio_mcp_http")

META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION = "io.modelcontextprotocol/subscriptionId"

#: Methods of the 2026-07-28 revision a server answers.
METHODS = (
    frozenset(
        {
            "server/discover",
            "tools/list",
            "tools/call",
            "resources/list",
            "resources/templates/list",
            "resources/read",
            "prompts/list",
            "prompts/get",
            "completion/complete",
            "subscriptions/listen",
        }
    )
    | TASK_METHODS
)  # the tasks extension (SEP-2663; _tasks.py)
#: Results that carry caching hints (SEP-2549).
CACHEABLE = frozenset(
    {
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
    }
)
#: The only methods that may answer with an input-required result (SEP-2322).
MAY_REQUIRE_INPUT = frozenset({"tools/call", "prompts/get", "resources/read"})
#: Where ``Mcp-Name`` comes from, per method (SEP-2243).
NAME_SOURCE = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"} | {
    method: "taskId"
    for method in TASK_METHODS  # SEP-2663: Mcp-Name carries the taskId
}
#: Filter keys of ``subscriptions/listen`` and the notifications they admit.
LIST_CHANGED = {
    "notifications/tools/list_changed": ("toolsListChanged", "tools"),
    "notifications/prompts/list_changed": ("promptsListChanged", "prompts"),
    "notifications/resources/list_changed": ("resourcesListChanged", "resources"),
}

_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
_STATE_TTL = 15 * 60.0


def _header_value(raw: str | None) -> str | None:
    """Trim optional whitespace (RFC 9110 §5.5) and decode the base64 form (SEP-2243)."""
    if raw is None:
        return None
    value = raw.strip(" \t")
    if any(not (0x20 <= ord(ch) <= 0x7E or ch == "\t") for ch in value):
        raise ProtocolError(400, HEADER_MISMATCH, "Header value has characters outside visible ASCII")
    if value.startswith("=?base64?") and value.endswith("?=") and len(value) >= 11:
        encoded = value[9:-2]
        if len(encoded) % 4 or not _B64.match(encoded):
            raise ProtocolError(400, HEADER_MISMATCH, "Header value is not valid base64")
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ProtocolError(400, HEADER_MISMATCH, "Header value is not valid base64 UTF-8") from None
    return value


def _header_params(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """``x-mcp-header`` annotations of a tool's input schema: (property path, header)."""
    found: list[tuple[tuple[str, ...], str]] = []
    if not isinstance(schema, dict):
        return found
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return found
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        header = prop.get("x-mcp-header")
        if isinstance(header, str) and header:
            found.append(((*path, name), header))
        found.extend(_header_params(prop, (*path, name)))
    return found


def _lookup(arguments: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(arguments, dict):
            return None
        arguments = arguments.get(key)
    return arguments


def _matches(header: str, value: Any) -> bool:
    if isinstance(value, bool):
        return header == ("true" if value else "false")
    if isinstance(value, (int, float)):
        # Compared as numbers, exactly: Python compares int with float without
        # converting (no overflow for huge ints), and int() refuses what is not one.
        try:
            return int(header) == value
        except ValueError:
            pass
        try:
            return float(header) == value
        except ValueError:
            return False
    return header == str(value)


class _Listener:
    """One ``subscriptions/listen`` stream."""

    __slots__ = ("honoured", "listen_id", "resources", "send")

    def __init__(
        self, listen_id: int | str, honoured: dict[str, Any], send: trio.MemorySendChannel[bytes]
    ) -> None:
        self.listen_id = listen_id
        self.honoured = honoured
        resources = honoured.get("resourceSubscriptions") or []
        self.resources: list[str] = [u for u in resources if isinstance(u, str)]
        self.send = send

    def wants(self, method: str, params: dict[str, Any] | None) -> bool:
        if method in LIST_CHANGED:
            return bool(self.honoured.get(LIST_CHANGED[method][0]))
        if method == "notifications/resources/updated" and params:
            uri = params.get("uri")
            return isinstance(uri, str) and any(
                uri == r or uri.startswith(r.rstrip("/") + "/") for r in self.resources
            )
        return False  # progress and log messages never go on a listen stream

    def tagged(self, method: str, params: dict[str, Any] | None) -> bytes:
        body = dict(params or {})
        body["_meta"] = {**body.get("_meta", {}), META_SUBSCRIPTION: self.listen_id}
        return _jsonrpc.encode_notification(method, body)


class ModernEra:
    """Serves 2026-07-28 requests for one :class:`~trio_mcp_http.McpHttpApp`."""

    def __init__(self, app: McpHttpApp) -> None:
        self.app = app
        self.server = app.server
        #: The cancel scope of every request in flight (the drain cancels them).
        self._calls: set[trio.CancelScope] = set()
        self._listeners: set[_Listener] = set()
        self._state_key = app.config.request_state_key or secrets.token_bytes(32)
        self._header_cache: dict[str, tuple[dict[str, Any], list[tuple[tuple[str, ...], str]]]] = {}

    # -- lifecycle hooks used by the app ----------------------------------------------

    def cancel_all(self) -> None:
        for scope in self._calls:
            scope.cancel()

    def close_listeners(self) -> None:
        for listener in self._listeners:
            listener.send.close()

    def broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        for listener in list(self._listeners):
            if listener.wants(method, params):
                try:
                    listener.send.send_nowait(_sse.event(listener.tagged(method, params), event="message"))
                except trio.WouldBlock:
                    # Too slow to keep up with change signals: end its stream, the
                    # client re-listens and re-reads the lists (the slow-reader policy).
                    listener.send.close()
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    pass

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    # -- request handling -------------------------------------------------------------

    async def handle(
        self, message: Envelope, headers: RequestHeaders, receive: Receive, response: GuardedResponse
    ) -> None:
        request_id = message.id if message.kind is Kind.REQUEST else None
        try:
            meta = self._validate(message, headers)
        except ProtocolError as refused:
            # Refused before the handler ran; the error names the request (T-130).
            await response.error(refused, request_id)
            return
        if meta is None:  # an accepted notification
            await response.respond(202, [])
            return
        if not self.app._admitting and message.method not in TASK_METHODS:
            # Polling, answering and cancelling existing tasks goes on during the drain,
            # like client replies in the session era: it starts no new work.
            raise self.app._unavailable()
        if message.method == "subscriptions/listen":
            await self._listen(message, receive, response)
        else:
            await self._run(message, meta, headers, receive, response)

    def _validate(self, message: Envelope, headers: RequestHeaders) -> dict[str, Any] | None:
        """Checks in the order the spec's examples imply (CHECKLIST §16); ``None`` for
        a notification."""
        accept = headers.get("accept")
        if not accepts(accept, "application/json"):
            raise ProtocolError(406, INVALID_REQUEST, "Not Acceptable: Client must accept application/json")
        if message.kind is Kind.RESPONSE:
            raise ProtocolError(
                400, INVALID_REQUEST, "Invalid Request: clients do not send responses in 2026-07-28"
            )
        version_header = _header_value(headers.get("mcp-protocol-version"))
        if version_header is None:
            raise ProtocolError(
                400, HEADER_MISMATCH, "Header mismatch: MCP-Protocol-Version header is required"
            )
        if message.kind is Kind.NOTIFICATION:
            return None
        params = message.params or {}
        meta = params.get("_meta")
        if (
            not isinstance(meta, dict)
            or META_VERSION not in meta
            or not isinstance(meta.get(META_CAPABILITIES), dict)
        ):
            raise ProtocolError(
                400,
                INVALID_PARAMS,
                f"Invalid params: _meta must carry {META_VERSION} and {META_CAPABILITIES}",
            )
        if meta[META_VERSION] != version_header:
            raise ProtocolError(
                400,
                HEADER_MISMATCH,
                "Header mismatch: MCP-Protocol-Version header does not match _meta protocol version",
            )
        if version_header not in MODERN_VERSIONS:
            raise ProtocolError(
                400,
                UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version",
                {"supported": list(MODERN_VERSIONS), "requested": version_header},
            )
        method = message.method or ""
        if _header_value(headers.get("mcp-method")) != method:
            raise ProtocolError(
                400, HEADER_MISMATCH, "Header mismatch: Mcp-Method header must equal the body's method"
            )
        source = NAME_SOURCE.get(method)
        if source is not None:
            expected = params.get(source)
            if _header_value(headers.get("mcp-name")) != expected or not isinstance(expected, str):
                raise ProtocolError(
                    400, HEADER_MISMATCH, f"Header mismatch: Mcp-Name header must equal params.{source}"
                )
        if method == "tools/call":
            self._check_param_headers(params, headers)
        if method not in METHODS:
            raise ProtocolError(404, METHOD_NOT_FOUND, f"Method not found: {method}")
        level = meta.get(META_LOG_LEVEL)
        if level is not None:
            try:
                level_rank(str(level))
            except McpError as exc:
                raise ProtocolError(400, INVALID_PARAMS, exc.message) from None
        return meta

    def _check_param_headers(self, params: dict[str, Any], headers: RequestHeaders) -> None:
        name = params.get("name")
        definition = self.server.tool_definition(name) if isinstance(name, str) else None
        if definition is None:
            return
        assert isinstance(name, str)
        # The annotations are read once per tool (again if it is registered anew).
        cached = self._header_cache.get(name)
        if cached is None or cached[0] is not definition:
            cached = (definition, _header_params(definition.get("inputSchema")))
            self._header_cache[name] = cached
        arguments = params.get("arguments") or {}
        for path, header in cached[1]:
            value = _lookup(arguments, path)
            raw = headers.get("mcp-param-" + header.lower())
            if value is None:
                continue
            decoded = _header_value(raw)
            if decoded is None or not _matches(decoded, value):
                raise ProtocolError(
                    400, HEADER_MISMATCH, f"Header mismatch: Mcp-Param-{header} does not match the argument"
                )

    async def _run(
        self,
        message: Envelope,
        meta: dict[str, Any],
        headers: RequestHeaders,
        receive: Receive,
        response: GuardedResponse,
    ) -> None:
        method = message.method or ""
        request_id = message.request_id
        params = message.params or {}
        call = trio.CancelScope()
        config = self.app.config
        outlet = _ModernOutlet(
            response,
            call,
            accepts_sse=self._accepts_sse(headers),
            buffer_size=config.stream_buffer_size,
            keepalive_interval=config.keepalive_interval,
        )
        answer: tuple[int, bytes] | None = None
        async with trio.open_nursery() as nursery:
            outlet.nursery = nursery
            nursery.start_soon(watch_disconnect, receive, response, call)
            self._calls.add(call)
            self.app._handlers.enter()
            try:
                with call:
                    answer = await self._answer(method, request_id, params, meta, outlet)
            finally:
                # The handler is done; what remains is writing its answer.
                self._calls.discard(call)
                self.app._handlers.leave()
            if answer is None and not outlet.too_slow:  # cancelled by the drain
                cancelled = "Server shutting down: request cancelled"
                answer = (200, _jsonrpc.encode_error(request_id, INTERNAL_ERROR, cancelled))
            if outlet.streaming:
                # The answer is the stream's last event; the writer flushes and ends.
                await outlet.finish(None if answer is None else _sse.event(answer[1]))
            nursery.cancel_scope.cancel()
        if response.client_gone or response.started or answer is None:
            return  # T-75: nothing more is sent; the guard completes the response.
        status, encoded = answer
        await response.respond(status, JSON_HEADERS, encoded)

    @staticmethod
    def _accepts_sse(headers: RequestHeaders) -> bool:
        accept = headers.get("accept")
        return accept is not None and accepts(accept, "text/event-stream")

    async def _answer(
        self,
        method: str,
        request_id: int | str,
        params: dict[str, Any],
        meta: dict[str, Any],
        outlet: _ModernOutlet,
    ) -> tuple[int, bytes]:
        try:
            if method == "server/discover":
                result = self._discover()
            elif method in TASK_METHODS:
                result = self.app.tasks.answer(method, params, meta[META_CAPABILITIES])
            else:
                answers = self._answers(method, params) if method in MAY_REQUIRE_INPUT else {}
                outlet.answers = answers
                outlet.capabilities = meta[META_CAPABILITIES]
                ctx = Context(
                    server=self.server,
                    outlet=outlet,
                    method=method,
                    request_id=request_id,
                    meta=meta,
                    protocol_version=meta[META_VERSION],
                    client_capabilities=meta[META_CAPABILITIES],
                    client_info=(
                        meta.get(META_CLIENT_INFO) if isinstance(meta.get(META_CLIENT_INFO), dict) else None
                    ),
                    session_id=None,
                    # Log gating: no notifications/message unless the request asked.
                    log_level=meta.get(META_LOG_LEVEL),
                )
                try:
                    if method == "tools/call":
                        # Directly, or as a task where the tool and the client allow it.
                        result = await self.app.tasks.call_tool(params, ctx)
                    else:
                        result = await self.server.dispatch(method, params, ctx)
                except InputRequired as needed:
                    if method not in MAY_REQUIRE_INPUT:
                        raise McpError(
                            INTERNAL_ERROR, "handler asked for input where the protocol allows none"
                        ) from None
                    result = {
                        "resultType": "input_required",
                        "inputRequests": {k: dict(v) for k, v in needed.requests.items()},
                        "requestState": self._seal(method, params, answers),
                    }
        except McpError as exc:
            code, data = exc.code, exc.data
            status = 200
            if code == RESOURCE_NOT_FOUND:
                code = INVALID_PARAMS  # SEP-2164: -32002 is retired in 2026-07-28
            elif code == METHOD_NOT_FOUND:
                status = 404
            elif code == MISSING_CLIENT_CAPABILITY:
                status = 400
            return status, _jsonrpc.encode_error(request_id, code, exc.message, data)
        except Exception:
            logger.exception("handler for %s failed", method)
            return 200, _jsonrpc.encode_error(request_id, INTERNAL_ERROR, "Internal error")
        return 200, _jsonrpc.encode_result(request_id, self._decorate(method, result))

    def _decorate(self, method: str, result: Any) -> Any:
        """``resultType``, server identity and caching hints on every result."""
        if not isinstance(result, dict):
            return result
        result = dict(result)
        result.setdefault("resultType", "complete")
        meta = dict(result.get("_meta") or {})
        meta[META_SERVER_INFO] = self.server.server_info
        result["_meta"] = meta
        if method in CACHEABLE and result["resultType"] == "complete":
            result.setdefault("ttlMs", self.server.list_ttl_ms)
            result.setdefault("cacheScope", "private" if method == "resources/read" else "public")
        return result

    async def _listen(self, message: Envelope, receive: Receive, response: GuardedResponse) -> None:
        """``subscriptions/listen``: acknowledge, then carry the requested notifications."""
        listen_id = message.request_id
        wanted = (message.params or {}).get("notifications")
        if not isinstance(wanted, dict):
            refused = ProtocolError(400, INVALID_PARAMS, "Invalid params: notifications must be an object")
            await response.error(refused, listen_id)
            return
        capabilities = self.server.capabilities()
        honoured: dict[str, Any] = {}
        for key, capability in LIST_CHANGED.values():
            if wanted.get(key) is True and capability in capabilities:
                honoured[key] = True
        uris = wanted.get("resourceSubscriptions")
        if isinstance(uris, list) and "resources" in capabilities:
            honoured["resourceSubscriptions"] = [u for u in uris if isinstance(u, str)]
        send, channel = trio.open_memory_channel[bytes](self.app.config.stream_buffer_size)
        listener = _Listener(listen_id, honoured, send)
        self._listeners.add(listener)
        try:
            await response.start(200, SSE_HEADERS)
            ack = listener.tagged("notifications/subscriptions/acknowledged", {"notifications": honoured})
            await response.chunk(_sse.event(ack))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_disconnect, receive, response, nursery.cancel_scope)
                with channel:
                    await pump(channel, response, self.app.config.keepalive_interval)
                # The server ended the subscription (shutdown): say so with its result.
                final = {"resultType": "complete", "_meta": {META_SUBSCRIPTION: listen_id}}
                await response.chunk(_sse.event(_jsonrpc.encode_result(listen_id, final)))
                nursery.cancel_scope.cancel()
        finally:
            self._listeners.discard(listener)
            send.close()

    def _discover(self) -> dict[str, Any]:
        capabilities = self.server.capabilities()
        if self.server.supports_tasks:
            capabilities["extensions"] = {**capabilities.get("extensions", {}), TASKS_EXTENSION: {}}
        result: dict[str, Any] = {
            "supportedVersions": list(MODERN_VERSIONS),
            "capabilities": capabilities,
        }
        if self.server.instructions is not None:
            result["instructions"] = self.server.instructions
        return result

    # -- input-required results (SEP-2322) --------------------------------------------

    def _seal(self, method: str, params: dict[str, Any], answers: dict[str, Any]) -> str:
        """``requestState``: earlier answers, bound to this request, HMAC-protected."""
        payload = {
            "m": method,
            "t": params.get(NAME_SOURCE.get(method, "name")),
            "a": answers,
            "e": int(time.time() + _STATE_TTL),
        }
        body = base64.urlsafe_b64encode(to_json(payload)).rstrip(b"=")
        tag = base64.urlsafe_b64encode(hmac.digest(self._state_key, body, hashlib.sha256)).rstrip(b"=")
        return (body + b"." + tag).decode()

    def _unseal(self, method: str, params: dict[str, Any], state: Any) -> dict[str, Any]:
        invalid = McpError(
            INVALID_PARAMS, "Invalid requestState: it was not issued by this server for this request"
        )
        if not isinstance(state, str) or state.count(".") != 1:
            raise invalid
        body, tag = state.encode().split(b".")
        expected = base64.urlsafe_b64encode(hmac.digest(self._state_key, body, hashlib.sha256)).rstrip(b"=")
        if not hmac.compare_digest(tag, expected):
            raise invalid
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except ValueError:
            raise invalid from None
        if (
            payload.get("m") != method
            or payload.get("t") != params.get(NAME_SOURCE.get(method, "name"))
            or not isinstance(payload.get("a"), dict)
            or payload.get("e", 0) < time.time()
        ):
            raise invalid
        answers: dict[str, Any] = payload["a"]
        return answers

    def _answers(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        if params.get("requestState") is not None:
            answers.update(self._unseal(method, params, params.get("requestState")))
        responses = params.get("inputResponses")
        if isinstance(responses, dict):
            answers.update(responses)
        elif responses is not None:
            raise McpError(INVALID_PARAMS, "inputResponses must be an object")
        return answers


class _ModernOutlet:
    """The :class:`~trio_mcp_http._context.Outlet` of a stateless request.

    The response is JSON unless a notification comes before the result; then it turns
    into an SSE stream written by :func:`~trio_mcp_http._stream.pump` from a bounded
    channel, so a handler never waits on its reader.  A reader that falls a whole
    buffer behind is too slow: as in the session era its connection is ended, and since
    a 2026-07-28 request cannot be resumed, that ends the request (T-75).
    """

    __slots__ = (
        "_buffer_size",
        "_call",
        "_done",
        "_keepalive_interval",
        "_send",
        "accepts_sse",
        "answers",
        "capabilities",
        "nursery",
        "response",
        "too_slow",
    )

    def __init__(
        self,
        response: GuardedResponse,
        call: trio.CancelScope,
        *,
        accepts_sse: bool,
        buffer_size: int,
        keepalive_interval: float | None,
    ) -> None:
        self.response = response
        self._call = call
        self.accepts_sse = accepts_sse
        self._buffer_size = buffer_size
        self._keepalive_interval = keepalive_interval
        self.answers: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        #: The request's nursery, where the stream's writer runs.
        self.nursery: trio.Nursery | None = None
        self._send: trio.MemorySendChannel[bytes] | None = None
        self._done = trio.Event()
        self.too_slow = False

    @property
    def streaming(self) -> bool:
        return self._send is not None

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        await trio.lowlevel.checkpoint()
        if not self.accepts_sse or self.response.client_gone or self.too_slow:
            return
        if self._send is None:
            assert self.nursery is not None
            self._send, receive = trio.open_memory_channel[bytes](self._buffer_size)
            self.nursery.start_soon(self._write, receive)
        self._publish(_sse.event(_jsonrpc.encode_notification(method, params)))

    def _publish(self, frame: bytes) -> None:
        assert self._send is not None
        try:
            self._send.send_nowait(frame)
        except trio.WouldBlock:
            logger.info("ending a 2026-07-28 stream whose reader fell %d events behind", self._buffer_size)
            self.too_slow = True
            self._send.close()
            self._call.cancel()
        except trio.ClosedResourceError:
            pass

    async def finish(self, frame: bytes | None) -> None:
        """End the stream with ``frame`` (the answer) and wait until it is written."""
        assert self._send is not None
        if frame is not None and not self.too_slow:
            self._publish(frame)
        self._send.close()
        await self._done.wait()

    async def _write(self, channel: trio.MemoryReceiveChannel[bytes]) -> None:
        try:
            with channel:
                await self.response.start(200, SSE_HEADERS)
                tail = await pump(channel, self.response, self._keepalive_interval, hold_last=True)
                await self.response.finish(tail)
        finally:
            self._done.set()

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        missing: dict[str, InputRequest] = {}
        answers: dict[str, Any] = {}
        for key, request in requests.items():
            if key in self.answers:
                answer = self.answers[key]
                if not answer_is_valid(request["method"], answer):
                    problem = f"inputResponses[{key!r}] is not a valid answer to {request['method']}"
                    raise McpError(INVALID_PARAMS, problem)
                answers[key] = answer
            else:
                missing[key] = request
        if missing:
            require_capabilities(missing.values(), self.capabilities)
            raise InputRequired(missing)
        await trio.lowlevel.checkpoint()
        return answers

    def close_stream(self, retry_ms: int | None) -> None:
        """No resumable streams in this era: nothing to close."""
