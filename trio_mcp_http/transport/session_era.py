"""The session era (2025-03-26 ... 2025-11-25): POST, GET and DELETE with sessions.

A peer of the stateless era: the app routes a request here and hands over the
:class:`~trio_mcp_http.transport.gate.Gate` (admission, in-flight accounting,
refusal); this module never sees the app.  It owns the live sessions, each a nursery
started in the nursery :meth:`SessionEra.run` holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..protocol import decisions, jsonrpc, sse
from ..protocol.auth import Principal
from ..protocol.errors import INVALID_PARAMS, INVALID_REQUEST, ProtocolError, SessionNotFound
from ..protocol.event_store import parse_event_id
from ..protocol.http import RequestHeaders, new_session_id
from ..protocol.jsonrpc import Envelope, Kind
from ..protocol.levels import level_rank
from ..protocol.versions import DEFAULT_LEGACY_VERSION, LATEST_LEGACY_VERSION, negotiate_legacy
from ..server.logic import ProtocolServer
from ..server.mcp_server import McpServer
from .asgi import JSON_HEADERS, SSE_HEADERS, GuardedResponse, Receive
from .config import TransportConfig
from .gate import Gate
from .session import Session

if TYPE_CHECKING:
    from .fleet_hooks import FleetHooks
from .streams import Attachment, JsonSlot, drain_nowait, pump

__all__ = ["SessionEra"]

logger = logging.getLogger("trio_mcp_http")

ExtraHeaders = list[tuple[bytes, bytes]]


class SessionEra:
    """Serves session-era requests of one app; see the module docstring."""

    def __init__(self, server: McpServer | ProtocolServer, config: TransportConfig, gate: Gate) -> None:
        self.server = server
        self.config = config
        self.gate = gate
        self._nursery: trio.Nursery | None = None
        self._sessions: dict[str, Session] = {}
        #: Stateless mode: the one-request sessions whose handlers still run.
        self._transient: set[Session] = set()
        #: Sessions carried by one WebSocket connection each (transport/websocket.py):
        #: counted, drained and broadcast to like the others, never found by id.
        self._sockets: set[Session] = set()
        #: Workers sharing the sessions (``redis_url``): set by the app, else ``None``.
        self.fleet: FleetHooks | None = None

    # -- lifetime and what the app asks of it -------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own every session until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for session in list(self._sessions.values()):
                session.terminate()

    def _all(self) -> list[Session]:
        return [*self._sessions.values(), *self._transient, *self._sockets]

    def cancel_all(self) -> None:
        """Drain step: cancel every running request (each still gets its answer)."""
        for session in self._all():
            session.cancel_all("shutdown")

    def close_connections(self) -> None:
        """Drain step: end every open stream's connection cleanly, with a retry hint."""
        for session in self._all():
            session.close_connections(self.config.retry_ms)

    def statistics(self) -> dict[str, int]:
        sessions = self._all()
        return {
            "sessions": len(self._sessions) + len(self._sockets),
            "open_streams": sum(s.connections for s in sessions),
            "stored_events": sum(s.stored_events for s in sessions),
        }

    def broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        """A server-wide notification: to each session's GET stream, exactly once."""
        message = jsonrpc.encode_notification(method, params)
        uri = params.get("uri") if params else None
        level = params.get("level") if method == "notifications/message" and params else None
        sessions = [*self._sessions.values(), *self._sockets] if self._sockets else self._sessions.values()
        if self.fleet is not None:
            # The fleet's store logs it for every session (transport/fleet.py); what
            # is left here are the sessions of this worker's WebSocket connections.
            sessions = list(self._sockets)
        for session in sessions:
            if method == "notifications/resources/updated" and uri not in session.subscriptions:
                continue
            if level is not None and level_rank(level) < level_rank(session.log_level):
                continue
            session.send_unrelated(message)

    def _forget(self, session: Session) -> None:
        if session.id is not None and self._sessions.get(session.id) is session:
            del self._sessions[session.id]
            if self.fleet is not None:
                self.fleet.forgotten(session)

    async def _shared_session_for(self, headers: RequestHeaders, principal: Principal | None) -> Session:
        """:meth:`_session_for`, after restoring a session another worker of the fleet
        created (when there is a fleet and this worker does not hold the session)."""
        if self.fleet is not None:
            session_id = decisions.session_id_of(headers)
            if session_id not in self._sessions:
                await self.fleet.restore(self, session_id)
        return self._session_for(headers, principal)

    def _session_for(self, headers: RequestHeaders, principal: Principal | None = None) -> Session:
        session_id = decisions.session_id_of(headers)
        found = self._sessions.get(session_id)
        if found is not None and found.owner != (None if principal is None else principal.owner):
            # Bound to the principal that created it: anyone else's token, valid as it may
            # be, finds no such session, exactly as for an unknown id (MCP 2025-11-25,
            # Security Best Practices, Session Hijacking: sessions bound to the user).
            logger.info("session refused: presented with another principal's token")
            raise SessionNotFound
        # Popped and put back: the dict's order is the order of last use, least recent
        # first, which is what making room evicts by.
        session = self._sessions.pop(session_id, None)
        if session is None:
            raise SessionNotFound
        self._sessions[session_id] = session
        return session

    def _make_room(self) -> None:
        """At ``max_sessions``: end the least recently used idle session (no request in
        flight, no open stream), so that one client creating sessions cannot lock every
        other out until they expire.  Its client gets 404 on its next request and
        starts a new session (MCP 2025-11-25, Transports, Session Management: the
        server MAY terminate a session at any time).  Failing that, the least recently
        used session with no open connection: work whose client left (a tool still
        running, a question nobody will answer) must not hold a slot for good.  503
        only when every session has a client connected."""
        if len(self._sessions) + len(self._sockets) < self.config.max_sessions:
            return
        sessions = self._sessions.values()
        victim = next((s for s in sessions if s.idle), None) or next(
            (s for s in sessions if s.unattended), None
        )
        if victim is None:
            raise self.gate.refusal("too many sessions")
        logger.debug(
            "session limit (%d) reached: ending a least recently used session", self.config.max_sessions
        )
        victim.terminate()  # leaves self._sessions at once (on_end)

    async def open_socket_session(
        self,
        on_end: Callable[[Session], None],
        *,
        protocol_version: str = LATEST_LEGACY_VERSION,
        owner: tuple[str | None, str] | None = None,
    ) -> Session:
        """A session for one WebSocket connection (transport/websocket.py), running in
        this era's nursery: counted against ``max_sessions`` (making room as
        ``initialize`` does), cancelled and closed by the drain, reached by broadcasts,
        never found by ``Mcp-Session-Id``.  Raises the gate's refusal (503) when
        draining or full.  ``on_end`` is called when the session ends."""
        self.gate.admit()
        self._make_room()
        assert self._nursery is not None

        def ended(session: Session) -> None:
            self._sockets.discard(session)
            on_end(session)

        session = Session(
            self.server,
            self.config,
            self.gate,
            new_session_id(),
            on_end=ended,
            protocol_version=protocol_version,
            client_capabilities={},
            client_info=None,
            owner=owner,
        )
        self._sockets.add(session)
        await session.launch(self._nursery)
        return session

    # -- POST -------------------------------------------------------------------------

    async def post(
        self,
        parsed: Envelope | list[Envelope],
        headers: RequestHeaders,
        receive: Receive,
        response: GuardedResponse,
        principal: Principal | None = None,
    ) -> None:
        decisions.check_post_accept(headers, json_response=self.config.json_response)
        batch = isinstance(parsed, list)
        config = self.config
        limit = decisions.batch_limit(
            config.max_batch_size, config.stream_buffer_size, json_response=config.json_response
        )
        decisions.check_batch_size(parsed, limit)
        messages = parsed if isinstance(parsed, list) else [parsed]
        initialize = decisions.split_initialize(parsed)
        if initialize is not None:
            await self._initialize(initialize, receive, response, principal)
            return
        # An unsupported version header is refused (2025-11-25 basic/transports §protocol
        # version header); initialize itself may name any version and gets one negotiated.
        decisions.check_session_version(headers)
        if self.config.stateless:
            version = headers.get("mcp-protocol-version") or DEFAULT_LEGACY_VERSION
            await self._deliver_stateless(
                version, {}, None, messages, receive, response, batch, principal=principal
            )
            return
        session = await self._shared_session_for(headers, principal)
        if batch and session.protocol_version != "2025-03-26":
            # Batching exists only in 2025-03-26 (the 2025-06-18 changelog removes it).
            raise ProtocolError(
                400, INVALID_REQUEST, "Invalid Request: batches are not supported in this protocol version"
            )
        await self._deliver(session, messages, receive, response, batch=batch, principal=principal)

    async def _initialize(
        self, request: Envelope, receive: Receive, response: GuardedResponse, principal: Principal | None
    ) -> None:
        self.gate.admit()
        params = request.params or {}
        capabilities = params.get("capabilities", {})
        client_info = params.get("clientInfo")
        if not isinstance(params.get("protocolVersion"), str) or not isinstance(capabilities, dict):
            # Rejected before a session exists, so none is left behind.
            raise ProtocolError(
                400,
                INVALID_PARAMS,
                "Invalid params: initialize needs protocolVersion (string) and capabilities (object)",
            )
        version = negotiate_legacy(params["protocolVersion"])
        client = client_info if isinstance(client_info, dict) else None
        # Kept for the session's lifetime: bounded before the session exists.
        decisions.check_client_state(capabilities, client)
        if self.config.stateless:
            await self._deliver_stateless(
                version, capabilities, client, [request], receive, response, principal=principal
            )
            return
        self._make_room()
        assert self._nursery is not None
        session_id = new_session_id()
        session = Session(
            self.server,
            self.config,
            self.gate,
            session_id,
            on_end=self._forget,
            protocol_version=version,
            client_capabilities=capabilities,
            client_info=client,
            owner=None if principal is None else principal.owner,
        )
        if self.fleet is not None:
            await self.fleet.created(session)
        self._sessions[session_id] = session
        await session.launch(self._nursery)
        session_header = [(b"mcp-session-id", session_id.encode())]
        await self._deliver(session, [request], receive, response, session_header, principal=principal)

    async def _deliver_stateless(
        self,
        version: str,
        capabilities: dict[str, Any],
        client_info: dict[str, Any] | None,
        messages: list[Envelope],
        receive: Receive,
        response: GuardedResponse,
        batch: bool = False,
        *,
        principal: Principal | None = None,
    ) -> None:
        """Stateless mode: a session that lives for one POST, its nursery in the call.

        It stays registered until its handlers are done, so a drain can cancel them.
        """
        session = Session(
            self.server,
            self.config,
            self.gate,
            None,
            protocol_version=version,
            client_capabilities=capabilities,
            client_info=client_info,
        )
        self._transient.add(session)
        try:
            async with trio.open_nursery() as nursery:
                session.attach_nursery(nursery)
                await self._deliver(session, messages, receive, response, batch=batch, principal=principal)
                # Finish the HTTP exchange now (a 499 at once if the client left).
                await response.complete(failed=False)
                # The exchange is over: whatever still runs can never deliver its output.
                # The rule that a disconnect is not a cancellation (MCP 2025-11-25,
                # Transports, Streamable HTTP, "Sending Messages to the Server") exists
                # so that a client can resume the stream or cancel explicitly; without a
                # session there is neither an event store to resume from nor a session
                # a notifications/cancelled could reach.  Running on would only hold
                # this call (and its connection) open until the handler ends, so the
                # handlers are cancelled, as a disconnect does in the 2026-07-28 era.
                session.cancel_all("client")
        finally:
            self._transient.discard(session)
            await session.close_protocol()

    async def _deliver(
        self,
        session: Session,
        messages: list[Envelope],
        receive: Receive,
        response: GuardedResponse,
        extra_headers: ExtraHeaders | None = None,
        *,
        batch: bool = False,
        principal: Principal | None = None,
    ) -> None:
        requests = []
        for message in messages:
            if message.kind is Kind.REQUEST:
                requests.append(message)
            else:
                session.take(message)
        if not requests:
            session.touch()  # (requests touch it as they start and end)
            await response.respond(202, [])
            return
        # Client replies above are taken during a drain; new requests are not.
        self.gate.admit()
        if self.config.json_response:
            await self._answer_json(session, requests, receive, response, extra_headers, batch, principal)
        else:
            await self._answer_sse(session, requests, receive, response, extra_headers, principal)

    async def _answer_json(
        self,
        session: Session,
        requests: list[Envelope],
        receive: Receive,
        response: GuardedResponse,
        extra_headers: ExtraHeaders | None,
        batch: bool,
        principal: Principal | None = None,
    ) -> None:
        slot = JsonSlot(len(requests))
        for request in requests:
            session.start(request, slot, principal)
        # One pass of the scheduler: the handlers were spawned just now, and quick ones
        # finish in it, leaving nothing to wait for.  (Shielded: a cancellation is taken
        # below, where the requests still get their last words.)
        await trio.lowlevel.cancel_shielded_checkpoint()
        if not slot.done:
            # Wait for the answer or for the client to leave, whichever is first; the
            # handler wakes us by cancelling ``waiter`` (no watcher task needed).
            answered = False
            # A client waiting for its JSON answer is connected, as one reading a stream
            # is: its session is not among those that make room at the session cap.
            session.connection_opened()
            try:
                with trio.CancelScope() as waiter:
                    slot.waiter = waiter
                    while True:
                        if (await receive())["type"] == "http.disconnect":
                            response.client_gone = True
                            return
                answered = True
            finally:
                session.connection_closed()
                if not answered and not response.client_gone:
                    # Cancelled from outside (see _stream_out): answer with the
                    # requests' errors, shielded and bounded.
                    await self._last_json_words(session, slot, response, extra_headers, batch)
        await self._json_answer(slot, response, extra_headers, batch)

    async def _last_json_words(
        self,
        session: Session,
        slot: JsonSlot,
        response: GuardedResponse,
        extra_headers: ExtraHeaders | None,
        batch: bool,
    ) -> None:
        with trio.CancelScope(shield=True) as last_words:
            last_words.deadline = trio.current_time() + self.config.final_send_timeout
            with trio.CancelScope() as waiter:
                slot.waiter = waiter
                session.cancel_answering_on(slot, "shutdown")
                if not slot.done:
                    await trio.sleep_forever()
            if slot.done:
                await self._json_answer(slot, response, extra_headers, batch)

    async def _json_answer(
        self, slot: JsonSlot, response: GuardedResponse, extra_headers: ExtraHeaders | None, batch: bool
    ) -> None:
        headers = JSON_HEADERS + (extra_headers or [])
        # A batch (2025-03-26) is answered with an array, as JSON-RPC 2.0 §6 says.
        body = jsonrpc.encode_batch(slot.messages) if batch else slot.messages[0]
        await response.respond(200, headers, body)

    async def _answer_sse(
        self,
        session: Session,
        requests: list[Envelope],
        receive: Receive,
        response: GuardedResponse,
        extra_headers: ExtraHeaders | None,
        principal: Principal | None = None,
    ) -> None:
        stream = session.new_stream(len(requests))
        attachment = stream.attach()
        session.prime(stream)
        for request in requests:
            session.start(request, stream, principal)
        await self._stream_out(attachment, receive, response, extra_headers, session)

    async def _stream_out(
        self,
        attachment: Attachment,
        receive: Receive,
        response: GuardedResponse,
        extra_headers: ExtraHeaders | None = None,
        session: Session | None = None,
    ) -> None:
        """Carry one stream on this response until its channel closes or the client leaves."""
        stream = attachment.stream
        try:
            # What is ready now goes out in one write: the head, the prelude and, for a
            # quick handler, the whole stream.
            response.hold()
            try:
                await response.start(200, SSE_HEADERS + (extra_headers or []))
                # Fast path: a quick handler has usually finished while the head was
                # being sent, leaving the whole stream queued.  Then there is nothing to
                # wait for, so no disconnect watcher: the prelude and the whole stream
                # end the body in one message.
                prelude = b"".join(attachment.prelude) if attachment.prelude else b""
                # One pass of the scheduler first: the handlers were spawned just now,
                # and a quick one finishes in it.
                await trio.lowlevel.checkpoint()
                queued, ended = drain_nowait(attachment.receive)
                if ended:
                    await self._finish_stream(attachment, response, prelude + queued)
                elif prelude or queued:
                    await response.chunk(prelude + queued)
            finally:
                await response.release()
            if ended:
                return
            async with trio.open_nursery() as nursery:
                response.watch(nursery, receive, nursery.cancel_scope)
                interval = self.config.keepalive_interval
                tail = await pump(attachment.receive, response, interval, hold_last=True)
                await self._finish_stream(attachment, response, tail)
                nursery.cancel_scope.cancel()
        finally:
            # Left without completing (cancelled from outside, e.g. plain Hypercorn at
            # its graceful timeout, with no drain first): the requests owed on this
            # stream are cancelled now and their JSON-RPC errors written, shielded and
            # bounded, so each still gets its one answer.
            if session is not None and not response.client_gone and not response.completed:
                with trio.CancelScope(shield=True) as last_words:
                    last_words.deadline = trio.current_time() + self.config.final_send_timeout
                    session.cancel_answering_on(stream, "shutdown")
                    tail = await pump(attachment.receive, response, None, hold_last=True)
                    await self._finish_stream(attachment, response, tail)
            elif response.client_gone and response.started and not response.completed and stream.resumable:
                await self._last_hint(attachment, response)
            stream.release(attachment)

    async def _last_hint(self, attachment: Attachment, response: GuardedResponse) -> None:
        """The client is gone as far as the server can tell, but may still be reading: a
        client that half-closed its connection after its request (Hypercorn reports
        that as ``http.disconnect``) or one too slow to take data in time.  If the
        stream still owes it something, end the body with what is queued and a
        ``retry:`` hint (SSE polling), so a client that still reads knows to resume with
        Last-Event-ID rather than take a clean end for the whole answer.  The final
        send is shielded, bounded and never raises."""
        stream = attachment.stream
        queued, _ = drain_nowait(attachment.receive)
        if stream.finished and not attachment.detached:
            # The stream ended on this connection: what is queued is all it owes.
            if queued:
                await response.finish(queued)
            return
        await response.finish(queued + sse.retry(stream.retry_ms or self.config.retry_ms))

    async def _finish_stream(self, attachment: Attachment, response: GuardedResponse, tail: bytes) -> None:
        stream = attachment.stream
        if attachment.detached and stream.resumable:
            # The connection ends but the stream did not end on it: tell the client when
            # to come back for the rest (2025-11-25 basic/transports §sending messages to
            # the server).
            tail += sse.retry(stream.retry_ms or self.config.retry_ms)
        # The last frames and the end of the body in one message: for a typical POST
        # stream (priming event + response) one send per response fewer, ~10-15 % of its
        # server CPU (see docs/benchmarks.md).
        await response.finish(tail)

    # -- GET and DELETE ---------------------------------------------------------------

    async def get(
        self,
        headers: RequestHeaders,
        receive: Receive,
        response: GuardedResponse,
        principal: Principal | None = None,
    ) -> None:
        if self.config.stateless:
            raise ProtocolError(
                405,
                INVALID_REQUEST,
                "Method Not Allowed: no GET stream in stateless mode",
                headers=[(b"allow", b"POST")],
            )
        decisions.check_stream_accept(headers)
        session = await self._shared_session_for(headers, principal)
        decisions.check_session_version(headers)
        self.gate.admit()
        last_event_id = headers.get("last-event-id")
        if last_event_id is not None:
            if self.fleet is not None:
                attachment = await self.fleet.resume(session, last_event_id.strip())
            else:
                attachment = self._resume(session, last_event_id.strip())
        else:
            # One connection carries a stream at a time, and the newest wins, with or
            # without Last-Event-ID: a client reconnecting after a drop the server has
            # not noticed yet must not be locked out.  The replaced connection ends
            # cleanly with a retry hint.
            stream = session.standalone()
            attachment = stream.attach()
            session.prime(stream)
        session.touch()
        await self._stream_out(attachment, receive, response)

    def _resume(self, session: Session, last_event_id: str) -> Attachment:
        """Replay one stream's events after ``last_event_id``, then go live (2025-11-25
        basic/transports §resumability and redelivery).

        Replay and attach happen with no checkpoint in between, so no event can fall
        into a gap or be sent twice.
        """
        parsed = parse_event_id(last_event_id)
        stream = session.find_stream(parsed[0]) if parsed is not None else None
        frames = stream.replay_after(parsed[1]) if stream is not None and parsed is not None else None
        if stream is None or frames is None:
            # The spec defines no answer to an unknown id; we refuse rather than resume
            # with a hole in the stream.
            raise ProtocolError(
                400,
                INVALID_REQUEST,
                f"Bad Request: cannot resume after event {last_event_id!r}: unknown or no longer stored",
            )
        return stream.attach(frames)

    async def delete(
        self, headers: RequestHeaders, response: GuardedResponse, principal: Principal | None = None
    ) -> None:
        if self.config.stateless:
            raise ProtocolError(
                405,
                INVALID_REQUEST,
                "Method Not Allowed: no sessions in stateless mode",
                headers=[(b"allow", b"POST")],
            )
        session = await self._shared_session_for(headers, principal)
        decisions.check_session_version(headers)
        if self.fleet is not None:
            await self.fleet.delete(session)
        session.terminate()
        await response.respond(204, [])
