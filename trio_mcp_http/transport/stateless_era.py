"""The stateless 2026-07-28 era: every request stands alone.

No sessions and no GET stream: each request carries its protocol version and client
capabilities in ``_meta``, the ``Mcp-Method`` / ``Mcp-Name`` / ``Mcp-Param-*`` headers
mirror the body, input from the client comes back through *input-required results*,
and server-wide notifications go to ``subscriptions/listen`` streams.

The handler runs inside the ASGI call, in a nursery with a watcher of ``receive()``: a
client disconnect cancels it (2026-07-28 basic/transports/streamable-http
§cancellation).  The response starts as JSON and turns into an SSE stream only if the
handler sends a notification before its result.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any, Protocol, cast, runtime_checkable

import trio

from ..protocol import jsonrpc, sse
from ..protocol.auth import Principal
from ..protocol.decisions import MAX_SUBSCRIPTIONS, subscription_size
from ..protocol.errors import INTERNAL_ERROR, INVALID_PARAMS, McpError, ProtocolError
from ..protocol.http import RequestHeaders, accepts
from ..protocol.input_requests import InputRequest, answer_is_valid, require_capabilities
from ..protocol.jsonrpc import Envelope, Kind
from ..protocol.stateless import (
    CACHEABLE,
    LIST_CHANGED,
    MAY_REQUIRE_INPUT,
    META_CAPABILITIES,
    META_CLIENT_INFO,
    META_LOG_LEVEL,
    META_SERVER_INFO,
    META_SUBSCRIPTION,
    META_VERSION,
    RequestState,
    header_params,
    validate,
)
from ..protocol.tasks import EXTENSION as TASKS_EXTENSION
from ..protocol.tasks import METHODS as TASK_METHODS
from ..protocol.versions import MODERN_VERSIONS
from ..server.context import Context, InputRequired
from ..server.logic import ProtocolServer
from ..server.mcp_server import McpServer
from .asgi import JSON_HEADERS, SSE_HEADERS, GuardedResponse, Receive
from .config import TransportConfig
from .gate import Gate
from .runner import Answer, cancelled, run_handler
from .streams import pump
from .tasks import TaskRegistry

__all__ = ["StatelessEra"]

logger = logging.getLogger("trio_mcp_http")


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
        return jsonrpc.encode_notification(method, body)


class StatelessEra:
    """Serves 2026-07-28 requests for one :class:`~trio_mcp_http.McpHttpApp`."""

    def __init__(
        self, server: McpServer | ProtocolServer, config: TransportConfig, gate: Gate, tasks: TaskRegistry
    ) -> None:
        self.server = server
        self.config = config
        self.gate = gate
        self.tasks = tasks
        #: The cancel scope of every request in flight (the drain cancels them).
        self._calls: set[trio.CancelScope] = set()
        #: ``subscriptions/listen`` requests a server that speaks the protocol itself
        #: is answering: they end when the drain closes the listen streams.
        self._listen_calls: set[trio.CancelScope] = set()
        self._listeners: set[_Listener] = set()
        self._state = RequestState(config.request_state_key or secrets.token_bytes(32))
        self._header_cache: dict[str, tuple[Mapping[str, Any], list[tuple[tuple[str, ...], str]]]] = {}

    @property
    def _native(self) -> McpServer:
        """The server as an ``McpServer``: on the paths a server that speaks the
        protocol itself never reaches."""
        return cast("McpServer", self.server)

    # -- lifecycle hooks used by the app ----------------------------------------------

    def cancel_all(self) -> None:
        for scope in self._calls:
            scope.cancel()

    def close_listeners(self) -> None:
        for listener in self._listeners:
            listener.send.close()
        for scope in self._listen_calls:
            scope.cancel()

    def broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        for listener in list(self._listeners):
            if listener.wants(method, params):
                try:
                    listener.send.send_nowait(sse.event(listener.tagged(method, params), event="message"))
                except trio.WouldBlock:
                    # Too slow to keep up with change signals: end its stream, the
                    # client re-listens and re-reads the lists (the slow-reader policy).
                    listener.send.close()
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    pass

    @property
    def listeners(self) -> int:
        return len(self._listeners) + len(self._listen_calls)

    # -- request handling -------------------------------------------------------------

    async def handle(
        self,
        message: Envelope,
        headers: RequestHeaders,
        receive: Receive,
        response: GuardedResponse,
        principal: Principal | None = None,
    ) -> None:
        request_id = message.id if message.kind is Kind.REQUEST else None
        try:
            meta = validate(message, headers, self._param_headers)
        except ProtocolError as refused:
            # Refused before the handler ran; the error names the request.
            await response.error(refused, request_id)
            return
        if meta is None:  # an accepted notification
            await response.respond(202, [])
            return
        if message.method not in TASK_METHODS:
            # Polling, answering and cancelling existing tasks goes on during the drain,
            # like client replies in the session era: it starts no new work.
            self.gate.admit()
        if message.method == "subscriptions/listen" and isinstance(self.server, McpServer):
            await self._listen(message, receive, response)
        elif message.method in TASK_METHODS and self.tasks.shared and isinstance(self.server, McpServer):
            await self._shared_task(message, meta, response, principal)
        else:
            await self._run(message, meta, headers, receive, response, principal)

    def _param_headers(self, name: str) -> list[tuple[tuple[str, ...], str]]:
        """The ``x-mcp-header`` annotations of a tool, read once per definition."""
        definition: Mapping[str, Any] | None = None
        if isinstance(self.server, McpServer):
            definition = self.server.tool_definition(name)
            schema = None if definition is None else definition.get("inputSchema")
        elif isinstance(self.server, _DeclaresToolSchemas):
            # A server that speaks the protocol itself still leaves the HTTP headers to
            # the transport, as its own HTTP layer would check them.
            definition = schema = self.server.tool_input_schema(name)
        if definition is None:
            return []
        cached = self._header_cache.get(name)
        if cached is None or cached[0] is not definition:
            cached = (definition, header_params(schema))
            self._header_cache[name] = cached
        return cached[1]

    async def _run(
        self,
        message: Envelope,
        meta: dict[str, Any],
        headers: RequestHeaders,
        receive: Receive,
        response: GuardedResponse,
        principal: Principal | None = None,
    ) -> None:
        method = message.method or ""
        request_id = message.request_id
        params = message.params or {}
        # Only a server that speaks the protocol itself answers listen requests here.
        listen = method == "subscriptions/listen"
        if listen and len(self._listen_calls) >= self.config.max_listeners:
            await response.error(self.gate.refusal("too many subscriptions/listen streams"), request_id)
            return
        calls = self._listen_calls if listen else self._calls
        call = trio.CancelScope()
        config = self.config
        outlet = _StatelessOutlet(
            response,
            call,
            accepts_sse=self._accepts_sse(headers),
            buffer_size=config.stream_buffer_size,
            keepalive_interval=config.keepalive_interval,
        )
        answer: Answer | None = None
        left = True
        try:
            async with trio.open_nursery() as nursery:
                outlet.nursery = nursery
                response.watch(nursery, receive, call)
                calls.add(call)
                if not listen:  # a listen stream is not work the drain waits for
                    self.gate.handlers.enter()
                try:
                    with call:
                        answer = await self._answer(method, request_id, params, meta, outlet, principal)
                finally:
                    # The handler is done; what remains is writing its answer.
                    calls.discard(call)
                    if not listen:
                        self.gate.handlers.leave()
                if answer is None and not outlet.too_slow:  # cancelled by the drain
                    answer = _listen_ended(request_id) if listen else cancelled(request_id, "shutdown")
                if outlet.streaming:
                    # The answer is the stream's last event; the writer flushes and ends.
                    await outlet.finish(None if answer is None else sse.event(answer.body))
                nursery.cancel_scope.cancel()
            left = False
        finally:
            # Left without an answer (cancelled from outside, e.g. plain Hypercorn at
            # its graceful timeout, with no drain first): the request still gets its
            # error, shielded and bounded.
            if left and not response.client_gone and not outlet.too_slow and not response.completed:
                with trio.CancelScope(shield=True) as last_words:
                    last_words.deadline = trio.current_time() + self.config.final_send_timeout
                    final = cancelled(request_id, "shutdown")
                    if response.started:
                        await response.finish(sse.event(final.body))
                    else:
                        await response.respond(final.status, JSON_HEADERS, final.body)
        if response.client_gone or response.started or answer is None:
            return  # nothing more is sent; the guard completes the response.
        await response.respond(answer.status, JSON_HEADERS, answer.body)

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
        outlet: _StatelessOutlet,
        principal: Principal | None = None,
    ) -> Answer:
        async def call() -> Any:
            if isinstance(self.server, ProtocolServer):
                ctx = self._context(method, request_id, meta, outlet, principal)
                return await self.server.stateless_request(method, params, ctx)
            if method == "server/discover":
                return self._decorate(method, self._discover())
            if method in TASK_METHODS:
                answered = self.tasks.answer(method, params, meta[META_CAPABILITIES], principal)
                return self._decorate(method, answered)
            answers = self._answers(method, params) if method in MAY_REQUIRE_INPUT else {}
            outlet.answers = answers
            outlet.capabilities = meta[META_CAPABILITIES]
            ctx = self._context(method, request_id, meta, outlet, principal)
            try:
                if method == "tools/call":
                    # Directly, or as a task where the tool and the client allow it.
                    result = await self.tasks.call_tool(params, ctx)
                else:
                    result = await self._native.dispatch(method, params, ctx)
            except InputRequired as needed:
                if method not in MAY_REQUIRE_INPUT:
                    raise McpError(
                        INTERNAL_ERROR, "handler asked for input where the protocol allows none"
                    ) from None
                result = {
                    "resultType": "input_required",
                    "inputRequests": {k: dict(v) for k, v in needed.requests.items()},
                    "requestState": self._state.seal(method, params, answers),
                }
            return self._decorate(method, result)

        return await run_handler(request_id, method, call, stateless=True)

    async def _shared_task(
        self, message: Envelope, meta: dict[str, Any], response: GuardedResponse, principal: Principal | None
    ) -> None:
        """``tasks/*`` in a fleet: a task another worker runs is answered from its shared
        record, read first (transport/tasks.py).  A store that does not answer is a 503
        with ``Retry-After``, raised to the app as the session era's are."""
        method = message.method or ""
        params = message.params or {}
        capabilities = meta[META_CAPABILITIES]
        shared = await self.tasks.find(params, capabilities)
        unavailable: list[ProtocolError] = []

        async def call() -> Any:
            try:
                answered = await self.tasks.answer_in_fleet(method, params, capabilities, principal, shared)
            except ProtocolError as refused:  # not acknowledged in time: 503, as find's
                unavailable.append(refused)
                raise
            return self._decorate(method, answered)

        answer = await run_handler(message.request_id, method, call, stateless=True)
        if unavailable:
            raise unavailable[0]
        await response.respond(answer.status, JSON_HEADERS, answer.body)

    def _context(
        self,
        method: str,
        request_id: int | str,
        meta: dict[str, Any],
        outlet: _StatelessOutlet,
        principal: Principal | None = None,
    ) -> Context:
        client_info = meta.get(META_CLIENT_INFO)
        return Context(
            server=self.server,
            outlet=outlet,
            method=method,
            request_id=request_id,
            meta=meta,
            protocol_version=meta[META_VERSION],
            client_capabilities=meta[META_CAPABILITIES],
            client_info=client_info if isinstance(client_info, dict) else None,
            session_id=None,
            # Log gating: no notifications/message unless the request asked.
            log_level=meta.get(META_LOG_LEVEL),
            auth=principal,
        )

    def _decorate(self, method: str, result: Any) -> Any:
        """``resultType``, server identity and caching hints on every result."""
        if not isinstance(result, dict):
            return result
        result = dict(result)
        result.setdefault("resultType", "complete")
        meta = dict(result.get("_meta") or {})
        meta[META_SERVER_INFO] = self._native.server_info
        result["_meta"] = meta
        if method in CACHEABLE and result["resultType"] == "complete":
            result.setdefault("ttlMs", self._native.list_ttl_ms)
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
        capabilities = self._native.capabilities()
        honoured: dict[str, Any] = {}
        for key, capability in LIST_CHANGED.values():
            if wanted.get(key) is True and capability in capabilities:
                honoured[key] = True
        uris = wanted.get("resourceSubscriptions")
        if isinstance(uris, list) and "resources" in capabilities:
            kept = list(dict.fromkeys(u for u in uris if isinstance(u, str)))
            try:
                if len(kept) > MAX_SUBSCRIPTIONS:
                    raise McpError(
                        INVALID_PARAMS, f"Invalid params: at most {MAX_SUBSCRIPTIONS} resource subscriptions"
                    )
                # Held for as long as the stream is open: bounded as a session's are.
                held = 0
                for uri in kept:
                    held += subscription_size(uri, held)
            except McpError as exc:
                await response.error(ProtocolError(400, exc.code, exc.message), listen_id)
                return
            honoured["resourceSubscriptions"] = kept
        if len(self._listeners) >= self.config.max_listeners:
            await response.error(self.gate.refusal("too many subscriptions/listen streams"), listen_id)
            return
        send, channel = trio.open_memory_channel[bytes](self.config.stream_buffer_size)
        listener = _Listener(listen_id, honoured, send)
        self._listeners.add(listener)
        try:
            await response.start(200, SSE_HEADERS)
            ack = listener.tagged("notifications/subscriptions/acknowledged", {"notifications": honoured})
            await response.chunk(sse.event(ack))
            async with trio.open_nursery() as nursery:
                response.watch(nursery, receive, nursery.cancel_scope)
                with channel:
                    await pump(channel, response, self.config.keepalive_interval)
                # The server ended the subscription (shutdown): say so with its result.
                final = {"resultType": "complete", "_meta": {META_SUBSCRIPTION: listen_id}}
                await response.chunk(sse.event(jsonrpc.encode_result(listen_id, final)))
                nursery.cancel_scope.cancel()
        finally:
            self._listeners.discard(listener)
            send.close()

    def _discover(self) -> dict[str, Any]:
        capabilities = self._native.capabilities()
        if self._native.supports_tasks:
            capabilities["extensions"] = {**capabilities.get("extensions", {}), TASKS_EXTENSION: {}}
        result: dict[str, Any] = {
            "supportedVersions": list(MODERN_VERSIONS),
            "capabilities": capabilities,
        }
        if self._native.instructions is not None:
            result["instructions"] = self._native.instructions
        return result

    def _answers(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The client's answers so far: sealed earlier ones plus ``inputResponses``."""
        answers: dict[str, Any] = {}
        if params.get("requestState") is not None:
            answers.update(self._state.unseal(method, params, params.get("requestState")))
        responses = params.get("inputResponses")
        if isinstance(responses, dict):
            answers.update(responses)
        elif responses is not None:
            raise McpError(INVALID_PARAMS, "inputResponses must be an object")
        return answers


@runtime_checkable
class _DeclaresToolSchemas(Protocol):
    """A server that speaks the protocol itself and can say a tool's input schema
    without a request (``server/sdk.py``), so ``Mcp-Param-*`` headers can be checked."""

    def tool_input_schema(self, name: str) -> Mapping[str, Any] | None: ...


def _listen_ended(listen_id: int | str) -> Answer:
    """The result that ends a listen stream the server closed (at shutdown)."""
    final = {"resultType": "complete", "_meta": {META_SUBSCRIPTION: listen_id}}
    return Answer(200, jsonrpc.encode_result(listen_id, final))


class _StatelessOutlet:
    """The :class:`~trio_mcp_http.server.context.Outlet` of a stateless request.

    The response is JSON unless a notification comes before the result; then it turns
    into an SSE stream written by :func:`~trio_mcp_http.transport.streams.pump` from a
    bounded channel, so a handler never waits on its reader.  A reader that falls a
    whole buffer behind is too slow: as in the session era its connection is ended,
    and since a 2026-07-28 request cannot be resumed, that ends the request (2026-07-28
    basic/transports/streamable-http §cancellation).
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
        self._publish(sse.event(jsonrpc.encode_notification(method, params)))

    def _publish(self, frame: bytes) -> None:
        assert self._send is not None
        try:
            self._send.send_nowait(frame)
        except trio.WouldBlock:
            logger.info("ending a 2026-07-28 stream whose reader fell %d events behind", self._buffer_size)
            self.too_slow = True
            self._send.close()
            self._call.cancel()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the writer has ended (the client is gone)

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
            if self.response.client_gone:
                # Found gone by a send (no http.disconnect came): as with a disconnect,
                # the request cannot be resumed, so it ends.
                self._call.cancel()
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
