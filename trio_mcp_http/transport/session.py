"""A session of the 2025-* protocol era: one nursery that owns its requests.

Ownership (docs/architecture.md, the ownership tree)::

    McpHttpApp.run()                 nursery owning every session
    └── Session.run()                one task + nursery per session; the task itself is
        │                            the idle-expiry watchdog (a CancelScope deadline)
        └── handler task per in-flight request, in its own CancelScope

Each SSE stream of the session is a
:class:`~trio_mcp_http.transport.streams.SseStream`; the ASGI call currently carrying
it drains its bounded channel.  Disconnection ends the connection, never the request
(2025-11-25 basic/transports §sending messages to the server): the handler keeps
running and its output stays replayable from the session's event store.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, cast

import trio

from ..protocol import jsonrpc
from ..protocol.decisions import MAX_SUBSCRIPTIONS, subscription_size
from ..protocol.errors import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, McpError
from ..protocol.input_requests import InputRequest, answer_is_valid
from ..protocol.jsonrpc import Kind
from ..protocol.levels import level_rank
from ..protocol.versions import at_least
from ..server.context import Context
from ..server.logic import ProtocolServer
from .runner import cancelled, run_handler
from .streams import JsonSlot, SseStream

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..protocol.auth import Principal
    from ..protocol.event_store import EventStore
    from ..protocol.jsonrpc import Envelope
    from ..server.logic import ProtocolSession
    from ..server.mcp_server import McpServer
    from .config import TransportConfig
    from .fleet_hooks import FleetHooks
    from .gate import Gate

__all__ = ["Session"]

logger = logging.getLogger("trio_mcp_http")

Outbox = SseStream | JsonSlot


class _Running:
    """One in-flight request: its scope, why it was cancelled (if it was), and who it
    acts for (its access token's principal, when the server requires one)."""

    __slots__ = ("outbox", "principal", "reason", "scope")

    def __init__(self, outbox: Outbox, principal: Principal | None = None) -> None:
        self.scope = trio.CancelScope()
        self.outbox = outbox
        self.reason: str | None = None
        self.principal = principal

    def cancel(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.scope.cancel()


class _Pending:
    """A server-to-client request waiting for the client's POSTed response."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: dict[str, Any] | None = None



def _parked(_: object) -> trio.lowlevel.Abort:
    """Abort function of a task parked until cancelled."""
    return trio.lowlevel.Abort.SUCCEEDED

class Session:
    """One legacy-era session (or, in stateless mode, one request's worth of one)."""

    # Slots: an idle session is mostly this object, and there may be thousands.
    __slots__ = (
        "_busy",
        "_finished",
        "_in_flight",
        "_next_request_id",
        "_next_stream",
        "_nursery",
        "_on_end",
        "_pending",
        "_scope",
        "_started",
        "_store",
        "_streams",
        "_subscription_bytes",
        "_waiting",
        "client_capabilities",
        "client_info",
        "config",
        "connections",
        "fleet",
        "gate",
        "id",
        "log_level",
        "owner",
        "protocol",
        "protocol_version",
        "server",
        "subscriptions",
        "terminated",
    )

    def __init__(
        self,
        server: McpServer | ProtocolServer,
        config: TransportConfig,
        gate: Gate,
        session_id: str | None,
        *,
        on_end: Callable[[Session], None] | None = None,
        protocol_version: str,
        client_capabilities: dict[str, Any],
        client_info: dict[str, Any] | None,
        owner: tuple[str | None, str] | None = None,
    ) -> None:
        self.server = server
        self.config = config
        self.gate = gate
        self._on_end = on_end
        self.id = session_id
        #: The (issuer, subject) of the principal that created the session, when the
        #: server requires authorization: only that principal may use it.
        self.owner = owner
        self.protocol_version = protocol_version
        self.client_capabilities = client_capabilities
        self.client_info = client_info
        #: The threshold of log notifications: every level until ``logging/setLevel``.
        self.log_level = "debug"
        self.subscriptions: set[str] = set()
        self._subscription_bytes = 0
        self.terminated = False
        self._nursery: trio.Nursery | None = None
        #: The session nursery's cancel scope, once :meth:`run` has started: the
        #: session's lifetime *and* its idle clock (its deadline).
        self._scope: trio.CancelScope | None = None
        #: Set once :meth:`run` has its nursery (or has ended), then dropped.
        self._started: trio.Event | None = None
        self._store: EventStore | None = None
        self._streams: dict[int, SseStream] = {}
        #: Numbers of finished POST streams still kept for resumption, oldest first.
        #: A list, not a deque: a deque costs ~0.6 KB even when nearly empty, and
        #: this list is short (``replayable_streams``).
        self._finished: list[int] = []
        self._next_stream = 1
        self._in_flight: dict[int | str, _Running] = {}
        self._pending: dict[int, _Pending] = {}
        self._next_request_id = 0
        self._busy = 0
        #: Connections currently carrying one of the session's streams.
        self.connections = 0
        #: Requests whose client waits for a JSON answer.
        self._waiting = 0
        #: The fleet sharing this session with other workers (``redis_url``), if any.
        self.fleet: FleetHooks | None = None
        #: A server that speaks the protocol itself keeps its session state here.
        self.protocol: ProtocolSession | None = None
        if isinstance(server, ProtocolServer):
            self.protocol = server.open_session(
                session_id=session_id, protocol_version=protocol_version, outbound=_Standalone(self)
            )

    @property
    def _native(self) -> McpServer:
        """The server as an ``McpServer``: on the paths a server that speaks the
        protocol itself never reaches."""
        return cast("McpServer", self.server)

    # -- lifetime ---------------------------------------------------------------------

    async def launch(self, nursery: trio.Nursery) -> None:
        """Run the session in ``nursery`` and return once it can take requests.

        What ``await nursery.start(session.run)`` does, for ~2 KB less per session
        for as long as it lives (trio's ``start`` leaves a second cancel status
        behind on the started task).  Raises the gate's 503 refusal if the session
        ended before it could start (the server is shutting down).
        """
        self._started = started = trio.Event()
        nursery.start_soon(self.run)
        await started.wait()
        if self._nursery is None:
            raise self.gate.refusal()

    def _now_started(self) -> None:
        started, self._started = self._started, None
        if started is not None:
            started.set()

    async def run(self) -> None:
        """Own the session's tasks until it is terminated or expires (started by
        :meth:`launch`)."""
        # One cancel scope, the nursery's, is the session's scope *and* its idle clock
        # (every entered scope costs ~0.6 KB per idle session).  The idle deadline is
        # finite only while nothing is busy, i.e. when the nursery has no children, so
        # when it passes it ends just the wait below: the session expires.
        try:
            async with trio.open_nursery() as nursery:
                if self.terminated:
                    nursery.cancel_scope.cancel()  # terminated before it ran
                self._scope = nursery.cancel_scope
                self._nursery = nursery
                self._now_started()
                self.touch()
                # trio.sleep_forever(), one coroutine frame lighter (per idle session).
                await trio.lowlevel.wait_task_rescheduled(_parked)
        except Exception:
            # A fault in one session (a bug: handlers' errors are answered, not raised)
            # ends that session, never the server and every other session with it.
            logger.exception("session failed; terminating it")
        finally:
            self.terminate()
            self._now_started()  # a launch() still waiting learns it ended
            await self.close_protocol()

    async def close_protocol(self) -> None:
        """Let a server that speaks the protocol itself release the session's state
        (shielded: it runs as the session ends, cancelled or not; bounded)."""
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self.config.final_send_timeout
                await protocol.aclose()

    def take(self, message: Envelope) -> None:
        """A response or a notification from the client, whichever carried it (a POST,
        a socket)."""
        if message.kind is Kind.RESPONSE:
            self.deliver_response(message)
        elif message.method == "notifications/cancelled":
            request_id = (message.params or {}).get("requestId")
            if request_id is not None:
                self.cancel_request(request_id, "client")
        elif message.method is not None and self.protocol is not None and not self.terminated:
            # notifications/initialized, roots/list_changed ...: nothing to do for our
            # server; a server that speaks the protocol itself takes them, in the
            # session's nursery.
            assert self._nursery is not None
            self._nursery.start_soon(self.protocol.notify, message.method, message.params)

    def attach_nursery(self, nursery: trio.Nursery) -> None:
        """Stateless mode: borrow the HTTP call's nursery for this one-request session."""
        self._nursery = nursery

    def terminate(self) -> None:
        """End the session (DELETE, expiry, shutdown): its id answers 404 from now on."""
        if self.terminated:
            return
        self.terminated = True
        if self._on_end is not None:
            self._on_end(self)
        for running in self._in_flight.values():
            running.cancel("session terminated")
        for stream in list(self._streams.values()):
            # A stream that still owes responses ends after the last one, which each
            # cancelled handler publishes as it unwinds: every request gets its answer.
            if stream.outstanding <= 0:
                stream.finish()
        for pending in self._pending.values():
            pending.error = {"code": INTERNAL_ERROR, "message": "Session terminated"}
            pending.done.set()
        if self._scope is not None:
            self._scope.cancel()

    def join(self, fleet: FleetHooks) -> None:
        """Share the session with the fleet's other workers: the stream numbers and
        server-to-client request ids this worker allocates are prefixed with its tag,
        so none is ever issued twice for one session."""
        self.fleet = fleet
        self._next_stream = (fleet.tag << 32) + 1
        self._next_request_id = fleet.tag << 32

    @property
    def busy(self) -> bool:
        """A request in flight or a connection open (what keeps a session alive)."""
        return self._busy > 0

    @property
    def idle(self) -> bool:
        """No request in flight and no open stream: ending it interrupts no exchange."""
        return not self._in_flight and self.connections == 0

    def _connection_change(self, delta: int) -> None:
        self.connections += delta
        self._busy_change(delta)

    def connection_opened(self) -> None:
        """A client waits on this session for a JSON answer (streams count themselves
        in :attr:`connections`)."""
        self._waiting += 1

    def connection_closed(self) -> None:
        self._waiting -= 1

    @property
    def unattended(self) -> bool:
        """No client is connected to the session: no open stream, no JSON answer
        awaited."""
        return self.connections == 0 and self._waiting == 0

    def _busy_change(self, delta: int) -> None:
        self._busy += delta
        self.touch()

    def touch(self) -> None:
        """Restart the idle clock; a session with work or a connection never expires."""
        scope = self._scope
        timeout = self.config.session_idle_timeout
        if self.fleet is not None:
            self.fleet.touch(self)
        if scope is None or timeout is None:
            return
        if self._busy <= 0:
            scope.deadline = trio.current_time() + timeout
        elif scope.deadline != math.inf:  # (each setting costs a deadline re-registration)
            scope.deadline = math.inf

    # -- streams ----------------------------------------------------------------------

    @property
    def stored_events(self) -> int:
        return 0 if self._store is None else self._store.stored_events()

    @property
    def store(self) -> EventStore | None:
        if self._store is None and self.id is not None:
            factory = self.config.event_store_factory
            if factory is not None:
                self._store = factory()
                if self.fleet is not None:
                    self._store = self.fleet.store(self, self._store)
        return self._store

    def new_stream(self, outstanding: int) -> SseStream:
        number = self._next_stream
        self._next_stream += 1
        stream = SseStream(
            number,
            store=self.store,
            buffer_size=self.config.stream_buffer_size,
            on_change=self._connection_change,
        )
        stream.outstanding = outstanding
        if stream.resumable:
            self._streams[number] = stream
        return stream

    def standalone(self) -> SseStream:
        """The stream of messages unrelated to any request (carried by GET)."""
        stream = self._streams.get(0)
        if stream is None:
            stream = SseStream(
                0,
                store=self.store,
                buffer_size=self.config.stream_buffer_size,
                standalone=True,
                on_change=self._connection_change,
            ) if self.fleet is None else self.fleet.standalone(self, self._connection_change)
            self._streams[0] = stream
        if self.fleet is not None:
            self.fleet.carrying(self, 0)
        return stream

    def carry_standalone(self, stream_class: type[SseStream]) -> SseStream:
        """A standalone stream of ``stream_class``, not resumable, in place of the GET
        stream: a WebSocket connection's outbox (transport/websocket.py), which carries
        every message of its session and, while attached, counts as its open
        connection (so the session neither expires nor makes room)."""
        stream = stream_class(
            0,
            store=None,
            buffer_size=self.config.stream_buffer_size,
            standalone=True,
            on_change=self._connection_change,
        )
        self._streams[0] = stream
        return stream

    def _retire(self, stream: SseStream) -> None:
        """A POST stream has ended: keep it resumable while it is among the session's
        ``replayable_streams`` most recent finished ones, then forget it and its events,
        so a session's memory is bounded by what it holds open, whatever its age."""
        if self._streams.get(stream.number) is not stream:
            return
        self._finished.append(stream.number)
        while len(self._finished) > self.config.replayable_streams:
            number = self._finished.pop(0)
            del self._streams[number]
            if self._store is not None:
                self._store.forget(number)

    def prime(self, stream: SseStream) -> None:
        """A priming event (2025-11-25 basic/transports §sending messages to the server),
        for clients that expect one (older ones choke on empty data)."""
        if stream.resumable and at_least(self.protocol_version, "2025-11-25"):
            stream.prime()

    def find_stream(self, number: int) -> SseStream | None:
        return self._streams.get(number)

    def send_related(self, message: bytes, outbox: Outbox) -> bool:
        """Publish a message related to a request: on its stream while that is open;
        otherwise (JSON-response mode, or the stream ended) on the GET stream."""
        if isinstance(outbox, SseStream) and not outbox.finished:
            outbox.publish(message)
            return True
        return self.send_unrelated(message)

    def send_unrelated(self, message: bytes) -> bool:
        """Publish on the standalone stream; ``False`` if no GET stream ever opened."""
        if self.fleet is not None and self.id is not None:
            # Wherever the GET stream is carried, and logged for it in any case.
            self.fleet.backend.publish(self.id, message)
            return True
        stream = self._streams.get(0)
        if stream is None:
            return False
        stream.publish(message)
        return True

    def close_connections(self, retry_ms: int) -> None:
        """Shutdown step 3: end every open connection cleanly, with a retry hint."""
        for stream in self._streams.values():
            stream.detach_connection(retry_ms)

    # -- requests ---------------------------------------------------------------------

    def start(self, request: Envelope, outbox: Outbox, principal: Principal | None = None) -> None:
        """Run ``request`` in the session's nursery, answering on ``outbox``, for
        ``principal`` (its handler's ``ctx.auth``)."""
        assert self._nursery is not None
        if request.request_id in self._in_flight:
            # Answers are matched to requests by id alone; a second request in flight
            # under the same id would make both ambiguous (and cancellable by mistake).
            refused = f"Invalid Request: id {request.request_id!r} is already in use by a request in flight"
            self._publish_final(outbox, jsonrpc.encode_error(request.request_id, INVALID_REQUEST, refused))
            return
        if len(self._in_flight) >= self.config.max_requests_per_session:
            # Handlers run on after their client left (disconnection is not
            # cancellation in this era), so a client could pile up work without bound.
            limit = self.config.max_requests_per_session
            refused = f"Invalid Request: at most {limit} requests of one session may run at once"
            self._publish_final(outbox, jsonrpc.encode_error(request.request_id, INVALID_REQUEST, refused))
            return
        running = _Running(outbox, principal)
        self._in_flight[request.request_id] = running
        self._busy_change(+1)
        self.gate.handlers.enter()
        self._nursery.start_soon(self._run, request, outbox, running)

    async def _run(self, request: Envelope, outbox: Outbox, running: _Running) -> None:
        message: bytes | None = None
        try:
            with running.scope:
                message = await self._answer(request, outbox)
        finally:
            if self._in_flight.get(request.request_id) is running:
                del self._in_flight[request.request_id]
            self._busy_change(-1)
            self.gate.handlers.leave()
            if message is None:
                message = self._cancelled_answer(request, running, outbox)
            self._publish_final(outbox, message)

    def _publish_final(self, outbox: Outbox, message: bytes | None) -> None:
        """Every answer owed on an outbox goes out here, so a stream it finishes is
        retired (and the session's streams stay bounded) whichever way it was answered."""
        outbox.publish_final(message)
        if isinstance(outbox, SseStream) and outbox.finished:
            if self.fleet is not None:
                self.fleet.finished(self, outbox)
            self._retire(outbox)

    async def _answer(self, request: Envelope, outbox: Outbox) -> bytes:
        """Run one request's handler; returns the encoded response."""
        method = request.method or ""
        params = request.params or {}

        async def call() -> Any:
            if not isinstance(params.get("_meta", {}), dict):
                raise McpError(INVALID_PARAMS, "Invalid params: _meta must be an object")
            if self.protocol is not None:
                # The server speaks the protocol itself, initialize included.
                return await self.protocol.request(method, params, self._context(request, outbox))
            if method == "initialize":
                return self._initialize_result()
            if method == "logging/setLevel":
                level = params.get("level")
                if not isinstance(level, str):
                    raise McpError(INVALID_PARAMS, '"level" must be a string')
                level_rank(level)
                self.log_level = level
                if self.fleet is not None:
                    await self.fleet.save_state(self)
                return {}
            if method in ("resources/subscribe", "resources/unsubscribe"):
                return await self._subscribe(params, method == "resources/subscribe")
            return await self._native.dispatch(method, params, self._context(request, outbox))

        answer = await run_handler(request.request_id, method, call)
        return answer.body

    def _initialize_result(self) -> dict[str, Any]:
        server = self._native
        result: dict[str, Any] = {
            # The version negotiated when the session was made.
            "protocolVersion": self.protocol_version,
            "capabilities": server.capabilities(),
            "serverInfo": server.server_info,
        }
        if server.instructions is not None:
            result["instructions"] = server.instructions
        return result

    async def _subscribe(self, params: dict[str, Any], subscribe: bool) -> dict[str, Any]:
        server = self._native
        if "resources" not in server.capabilities():
            raise McpError(METHOD_NOT_FOUND, "Method not found: server has no resources")
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise McpError(INVALID_PARAMS, '"uri" must be a string')
        if subscribe:
            if uri not in self.subscriptions:
                if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                    raise McpError(
                        INVALID_PARAMS, f"too many subscriptions: at most {MAX_SUBSCRIPTIONS} per session"
                    )
                # Bounded in bytes too: 1024 URIs of 4 MiB each would be 4 GiB.
                self._subscription_bytes += subscription_size(uri, self._subscription_bytes)
                self.subscriptions.add(uri)
        elif uri in self.subscriptions:
            self.subscriptions.discard(uri)
            self._subscription_bytes -= len(uri.encode("utf-8", "surrogatepass"))
        if self.fleet is not None:
            await self.fleet.save_state(self)
        await server.subscribe(uri, subscribe)
        return {}

    def _cancelled_answer(self, request: Envelope, running: _Running, outbox: Outbox) -> bytes | None:
        if running.reason == "client" and isinstance(outbox, SseStream):
            return None  # a request the client cancelled gets no response
        return cancelled(request.request_id, running.reason).body

    def cancel_request(self, request_id: Any, reason: str, *, forward: bool = True) -> None:
        # Ids compare by JSON type: ``true`` is not ``1``, nor ``1.0`` (JSON-RPC 2.0 §4).
        running = self._in_flight.get(request_id) if type(request_id) in (int, str) else None
        if running is not None:
            running.cancel(reason)
        elif forward and self.fleet is not None and type(request_id) in (int, str):
            self.fleet.forward_cancel(self, request_id)  # running on another worker

    def cancel_answering_on(self, outbox: Outbox, reason: str) -> None:
        """Cancel the requests whose answers are owed on ``outbox``."""
        for running in list(self._in_flight.values()):
            if running.outbox is outbox:
                running.cancel(reason)

    def cancel_all(self, reason: str) -> None:
        for running in list(self._in_flight.values()):
            running.cancel(reason)

    def _context(self, request: Envelope, outbox: Outbox) -> Context:
        params = request.params or {}
        running = self._in_flight.get(request.request_id)
        return Context(
            server=self.server,
            outlet=_SessionOutlet(self, outbox),
            method=request.method or "",
            request_id=request.request_id,
            meta=params.get("_meta"),
            protocol_version=self.protocol_version,
            client_capabilities=self.client_capabilities,
            client_info=self.client_info,
            session_id=self.id,
            log_level=self.log_level,
            auth=None if running is None else running.principal,
        )

    # -- server-to-client requests ----------------------------------------------------

    async def request(self, method: str, params: dict[str, Any] | None, via: Outbox | None) -> Any:
        """Send a request to the client and wait for the response it POSTs back; on the
        stream of ``via`` while that is open, else (or with ``None``) on the GET stream."""
        if self.id is None:
            raise McpError(
                INVALID_PARAMS,
                f"{method} needs a session: it is not available in stateless mode",
            )
        self._next_request_id += 1
        request_id = self._next_request_id
        pending = _Pending()
        self._pending[request_id] = pending
        message = jsonrpc.encode_request(request_id, method, params)
        try:
            sent = self.send_unrelated(message) if via is None else self.send_related(message, via)
            if not sent:
                raise McpError(
                    INTERNAL_ERROR,
                    f"cannot send {method}: the client has no open stream to receive it",
                )
            # Waiting on the client is not activity: a session whose client left while
            # it was being asked something still expires when idle.
            self._busy_change(-1)
            try:
                await pending.done.wait()
            finally:
                self._busy_change(+1)
        finally:
            del self._pending[request_id]
        if pending.error is not None:
            error = pending.error
            raise McpError(
                int(error.get("code", INTERNAL_ERROR)), str(error.get("message", "")), error.get("data")
            )
        return pending.result

    def deliver_response(self, response: Envelope, *, forward: bool = True) -> None:
        """A POSTed JSON-RPC response to one of our requests (unknown ids are ignored)."""
        pending = self._pending.get(response.id) if type(response.id) is int else None
        if pending is None and forward and self.fleet is not None and type(response.id) is int:
            self.fleet.forward_response(self, response)  # asked by another worker
            return
        if pending is None or pending.done.is_set():
            return
        if response.error is not None:
            pending.error = response.error.model_dump()
        else:
            pending.result = response.result
        pending.done.set()


class _SessionOutlet:
    """The :class:`~trio_mcp_http.server.context.Outlet` of a request in a session."""

    __slots__ = ("_outbox", "_session")

    def __init__(self, session: Session, outbox: Outbox) -> None:
        self._session = session
        self._outbox = outbox

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        self._session.send_related(jsonrpc.encode_notification(method, params), self._outbox)
        await trio.lowlevel.checkpoint()

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        session = self._session
        answers: dict[str, Any] = {}
        for key, request in requests.items():
            capability = request.capability
            if capability not in session.client_capabilities:
                raise McpError(
                    INVALID_PARAMS,
                    f"the client did not declare the {capability!r} capability",
                )
            method = request["method"]
            answer = await session.request(method, request.get("params"), self._outbox)
            if not answer_is_valid(method, answer):
                # Checked as in the stateless era: a handler reads the answer as the
                # result type it asked for, so a malformed one is the client's error,
                # never a crash inside the handler.
                raise McpError(INVALID_PARAMS, f"the client's answer is not a valid {method} result")
            answers[key] = answer
        return answers

    def close_stream(self, retry_ms: int | None) -> None:
        if isinstance(self._outbox, SseStream) and self._outbox.resumable:
            self._outbox.detach_connection(retry_ms or self._session.config.retry_ms)


class _Standalone:
    """A session's GET stream, for a server that speaks the protocol itself."""

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        self._session.send_unrelated(jsonrpc.encode_notification(method, params))
        await trio.lowlevel.checkpoint()

    async def request(self, method: str, params: dict[str, Any] | None) -> Any:
        return await self._session.request(method, params, None)
