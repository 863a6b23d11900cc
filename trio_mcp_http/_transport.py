"""The ASGI application: MCP Streamable HTTP on one endpoint, both protocol eras."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from . import _jsonrpc, _sse
from ._asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    ClientGone,
    GuardedResponse,
    Message,
    Receive,
    Send,
    discard_body,
    read_body,
    watch_disconnect,
)
from ._context import level_rank
from ._errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    ProtocolError,
    SessionNotFound,
)
from ._event_store import EventStore, InMemoryEventStore, parse_event_id
from ._http import (
    HostPolicy,
    RequestHeaders,
    accepts,
    is_json_content_type,
    is_valid_session_id,
    new_session_id,
)
from ._inflight import InFlight
from ._jsonrpc import Envelope, Kind
from ._modern import META_VERSION, ModernEra
from ._server import McpServer
from ._session import Session
from ._stream import Attachment, JsonSlot, drain_nowait, pump
from ._tasks import TaskRegistry
from ._versions import DEFAULT_LEGACY_VERSION, LEGACY_VERSIONS, negotiate_legacy

__all__ = ["McpHttpApp", "TransportConfig"]

logger = logging.getLogger("trio_mcp_http")


@dataclass
class TransportConfig:
    """Settings of :class:`McpHttpApp`; every limit has a default and can be changed."""

    #: The MCP endpoint path.
    path: str = "/mcp"
    #: Answer requests with one JSON body instead of an SSE stream (session era).
    json_response: bool = False
    #: Session era without sessions: no ``Mcp-Session-Id``, no GET stream.
    stateless: bool = False
    #: Largest accepted request body; larger ones get 413 while they are read.
    max_body_size: int = 4 * 1024 * 1024
    #: Seconds a request body may take to arrive; a slower one gets 408.
    body_timeout: float = 30.0
    #: A session with no request in flight and no open stream expires after this
    #: many seconds (``None``: never).  Keep-alive comments do not count as activity.
    session_idle_timeout: float | None = 30 * 60.0
    #: Cap on live sessions; ``initialize`` beyond it gets 503.
    max_sessions: int = 10_000
    #: Events buffered for one connection before it counts as too slow (see
    #: ``_stream.py``: the connection is ended, the client resumes from the store).
    stream_buffer_size: int = 256
    #: Seconds between ``:`` keep-alive comments on an idle stream (``None``: off).
    keepalive_interval: float | None = 15.0
    #: Finished POST streams of one session that stay resumable with ``Last-Event-ID``;
    #: older ones are forgotten with their events.
    replayable_streams: int = 32
    #: Creates each session's event store; ``None`` disables resumability.
    event_store_factory: Callable[[], EventStore] | None = InMemoryEventStore
    #: The ``retry:`` hint (ms) sent before the server closes a resumable stream.
    retry_ms: int = 1000
    #: DNS-rebinding protection; see :class:`HostPolicy`.
    host_policy: HostPolicy = field(default_factory=HostPolicy)
    #: Shutdown: how long in-flight requests may run before they are cancelled.
    grace_period: float = 10.0
    #: Bound on each response's final send, and on waiting for responses to finish.
    final_send_timeout: float = 1.0
    #: ``Retry-After`` (seconds) on 503 answers while shutting down or full.
    retry_after: int = 5
    #: HMAC key protecting 2026-07-28 ``requestState``; random per process if unset.
    #: Give every worker of one deployment the same key.
    request_state_key: bytes | None = None
    #: Tasks extension (2026-07-28): cap on task records, running or finished; beyond
    #: it ``optional`` task tools answer directly and ``required`` ones are refused.
    max_tasks: int = 1000
    #: Seconds a task stays reachable with ``tasks/get`` (its ``ttlMs``); its work is
    #: cancelled if still running then.  ``None``: until shutdown.
    task_ttl: float | None = 600.0
    #: The ``pollIntervalMs`` suggested to clients, in seconds.
    task_poll_interval: float = 1.0


class McpHttpApp:
    """An ASGI application serving an :class:`McpServer` over Streamable HTTP.

    It must be *running* to serve requests: either inside your nursery with
    ``await nursery.start(app.run)`` (what :func:`~trio_mcp_http.serve` does), or
    started by the ASGI lifespan protocol, as under ``hypercorn -k trio module:app``.
    """

    def __init__(self, server: McpServer, config: TransportConfig | None = None) -> None:
        self.server = server
        self.config = config or TransportConfig()
        self._nursery: trio.Nursery | None = None
        self._sessions: dict[str, Session] = {}
        self._transient: set[Session] = set()
        self._admitting = True
        #: Requests whose handlers run (both eras), and HTTP calls not yet answered.
        self._handlers = InFlight()
        self._calls = InFlight()
        #: The tasks of the 2026-07-28 tasks extension, owned by :meth:`run`.
        self.tasks = TaskRegistry(
            server,
            max_tasks=self.config.max_tasks,
            ttl=self.config.task_ttl,
            poll_interval=self.config.task_poll_interval,
        )
        #: The stateless 2026-07-28 era, served on the same endpoint (T-00).
        self._modern = ModernEra(self)

    # -- lifetime ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own every session until cancelled.  Use with ``nursery.start``."""
        if self._nursery is not None:
            raise RuntimeError("McpHttpApp.run() is already running")
        self.server.add_listener(self._broadcast)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.tasks.run)
                self._nursery = nursery
                self._admitting = True
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self.server.remove_listener(self._broadcast)
            for session in list(self._sessions.values()):
                session.terminate()

    @property
    def running(self) -> bool:
        return self._nursery is not None

    async def drain(self, grace_period: float | None = None) -> None:
        """Shut down gracefully (DESIGN.md, guarantee 3); returns when all is quiet.

        1. stop admitting: new sessions and requests get 503 + ``Retry-After``;
        2. let in-flight requests and running tasks finish within the grace period;
        3. cancel what is still running (each gets a JSON-RPC error on its stream;
           each task fails with one, for ``tasks/get``);
        4. close every stream's connection, so each response ends cleanly;
        5. wait (bounded) until every HTTP response is complete.
        """
        grace = self.config.grace_period if grace_period is None else grace_period
        self._admitting = False
        with trio.move_on_after(grace):
            await self._handlers.wait_idle()
            await self.tasks.wait_idle()
        for session in self._all_sessions():
            session.cancel_all("shutdown")
        self._modern.cancel_all()
        self.tasks.cancel_all()
        with trio.move_on_after(self.config.final_send_timeout):
            await self._handlers.wait_idle()
            await self.tasks.wait_idle()
        for session in self._all_sessions():
            session.close_connections(self.config.retry_ms)
        self._modern.close_listeners()
        with trio.move_on_after(self.config.final_send_timeout):
            await self._calls.wait_idle()

    def statistics(self) -> dict[str, int]:
        """A snapshot of what is live: for monitoring and for leak tests."""
        sessions = self._all_sessions()
        listeners = self._modern.listeners
        return {
            "sessions": len(self._sessions),
            "requests_in_flight": self._handlers.count,
            "http_calls_in_flight": self._calls.count,
            "open_streams": sum(s.connections for s in sessions) + listeners,
            "stored_events": sum(s.stored_events for s in sessions),
        }

    async def _deliver_stateless(
        self,
        version: str,
        capabilities: dict[str, Any],
        client_info: dict[str, Any] | None,
        messages: list[Envelope],
        receive: Receive,
        response: GuardedResponse,
        batch: bool = False,
    ) -> None:
        """Stateless mode: a session that lives for one POST, its nursery in the call.

        It stays registered until its handlers are done, so a drain can cancel them.
        """
        session = Session(
            self, None, protocol_version=version, client_capabilities=capabilities, client_info=client_info
        )
        self._transient.add(session)
        try:
            async with trio.open_nursery() as nursery:
                session.attach_nursery(nursery)
                await self._deliver(session, messages, receive, response, batch=batch)
                # Finish the HTTP exchange now (a 499 at once if the client left); the
                # handler may run on in this call's nursery (T-34).
                await response.complete(failed=False)
        finally:
            self._transient.discard(session)

    def _all_sessions(self) -> list[Session]:
        return [*self._sessions.values(), *self._transient]

    def _forget(self, session: Session) -> None:
        if session.id is not None and self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    def _broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        """A server-wide notification: to each session's GET stream, exactly once."""
        message = _jsonrpc.encode_notification(method, params)
        uri = params.get("uri") if params else None
        level = params.get("level") if method == "notifications/message" and params else None
        for session in self._sessions.values():
            if method == "notifications/resources/updated" and uri not in session.subscriptions:
                continue
            if level is not None and level_rank(level) < level_rank(session.log_level):
                continue
            session.send_unrelated(message)
        self._modern.broadcast(method, params)

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websocket and others: not ours; returning without accepting closes them.

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        # Run by serve() already, or to be run here for ``hypercorn -k trio module:app``.
        owner = not self.running
        async with trio.open_nursery() as nursery:
            if owner:
                await nursery.start(self.run)
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            if owner:
                # Hypercorn only sends this after it has stopped the connections; what
                # is left to drain are the sessions' tasks.
                await self.drain(grace_period=0)
                nursery.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Message, receive: Receive, send: Send) -> None:
        response = GuardedResponse(send, self.config.final_send_timeout)
        with self._calls:
            failed = False
            try:
                await self._route(scope, receive, response)
            except ClientGone:
                pass
            except ProtocolError as exc:
                if not response.started:
                    if exc.status_hint != 408:  # a body too slow to read is not waited for again
                        await self._discard_body(receive, response)
                    await response.error(exc)
            except Exception:
                failed = True
                logger.exception("unexpected error serving %s %s", scope.get("method"), scope.get("path"))
            finally:
                await response.complete(failed=failed)

    async def _discard_body(self, receive: Receive, response: GuardedResponse) -> None:
        # Generous in bytes (a client sending a little more than the limit still reads
        # its 413) and short in time (a trickler is not waited for).
        config = self.config
        await discard_body(receive, 4 * config.max_body_size, min(config.body_timeout, 5.0), response)

    async def _route(self, scope: Message, receive: Receive, response: GuardedResponse) -> None:
        if scope.get("path") != self.config.path:
            raise ProtocolError(404, INVALID_REQUEST, f"Not Found: the MCP endpoint is {self.config.path}")
        headers = RequestHeaders(scope.get("headers", ()))
        self.config.host_policy.check(headers.get("host"), headers.get("origin"))
        if not self.running:
            raise ProtocolError(503, INTERNAL_ERROR, "Service Unavailable: server is not running")
        method = scope.get("method")
        if method == "POST":
            await self._post(headers, receive, response)
        elif method == "GET":
            await self._get(headers, receive, response)
        elif method == "DELETE":
            await self._delete(headers, receive, response)
        else:
            raise ProtocolError(
                405,
                INVALID_REQUEST,
                "Method Not Allowed",
                headers=[(b"allow", b"GET, POST, DELETE")],
            )

    def _unavailable(self, reason: str = "server is shutting down") -> ProtocolError:
        return ProtocolError(
            503,
            INTERNAL_ERROR,
            f"Service Unavailable: {reason}",
            headers=[(b"retry-after", str(self.config.retry_after).encode())],
        )

    # -- POST -------------------------------------------------------------------------

    async def _post(self, headers: RequestHeaders, receive: Receive, response: GuardedResponse) -> None:
        if not is_json_content_type(headers.get("content-type")):
            raise ProtocolError(
                415, INVALID_REQUEST, "Unsupported Media Type: Content-Type must be application/json"
            )
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.config.max_body_size:
            raise ProtocolError(
                413, INVALID_REQUEST, f"Payload Too Large: the body exceeds {self.config.max_body_size} bytes"
            )
        body = await read_body(receive, self.config.max_body_size, self.config.body_timeout, response)
        parsed = _jsonrpc.parse_body(body)
        version_header = headers.get("mcp-protocol-version")
        if isinstance(parsed, Envelope) and self._is_modern(parsed, headers, version_header):
            await self._modern.handle(parsed, headers, receive, response)
            return
        await self._post_legacy(parsed, headers, version_header, receive, response)

    @staticmethod
    def _is_modern(message: Envelope, headers: RequestHeaders, version_header: str | None) -> bool:
        """T-00: a session id means the session era; modern ``_meta`` or a version
        header naming no legacy revision means the stateless era."""
        if headers.get("mcp-session-id") is not None:
            return False
        meta = (message.params or {}).get("_meta")
        if isinstance(meta, dict) and META_VERSION in meta:
            return True
        return (
            version_header is not None
            and version_header not in LEGACY_VERSIONS
            and version_header != "2024-11-05"
        )

    def _check_accept(self, headers: RequestHeaders) -> None:
        accept = headers.get("accept")
        ok = accepts(accept, "application/json") and (
            self.config.json_response or accepts(accept, "text/event-stream")
        )
        if not ok:
            raise ProtocolError(
                406,
                INVALID_REQUEST,
                "Not Acceptable: Client must accept both application/json and text/event-stream",
            )

    async def _post_legacy(
        self,
        parsed: Envelope | list[Envelope],
        headers: RequestHeaders,
        version_header: str | None,
        receive: Receive,
        response: GuardedResponse,
    ) -> None:
        self._check_accept(headers)
        batch = isinstance(parsed, list)
        messages = parsed if isinstance(parsed, list) else [parsed]
        initialize = [m for m in messages if m.kind is Kind.REQUEST and m.method == "initialize"]
        if initialize:
            if len(messages) > 1:
                raise ProtocolError(
                    400, INVALID_REQUEST, "Invalid Request: initialize must not be part of a batch"
                )
            await self._initialize(initialize[0], headers, receive, response)
            return
        # T-71 (initialize itself may name any version: T-101 negotiates).
        self._check_version(headers)
        if self.config.stateless:
            version = version_header or DEFAULT_LEGACY_VERSION
            await self._deliver_stateless(version, {}, None, messages, receive, response, batch)
            return
        session = self._session_for(headers)
        if batch and session.protocol_version != "2025-03-26":
            # T-23: batching exists only in 2025-03-26.
            raise ProtocolError(
                400, INVALID_REQUEST, "Invalid Request: batches are not supported in this protocol version"
            )
        session.touch()
        await self._deliver(session, messages, receive, response, batch=batch)

    def _session_for(self, headers: RequestHeaders) -> Session:
        session_id = headers.get("mcp-session-id")
        if session_id is None:
            raise ProtocolError(400, INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required")
        if not is_valid_session_id(session_id):
            # T-62: ids are visible ASCII; anything else cannot be one we issued.
            raise ProtocolError(400, INVALID_REQUEST, "Bad Request: malformed Mcp-Session-Id")
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound
        return session

    async def _deliver(
        self,
        session: Session,
        messages: list[Envelope],
        receive: Receive,
        response: GuardedResponse,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        *,
        batch: bool = False,
    ) -> None:
        requests = []
        for message in messages:
            if message.kind is Kind.REQUEST:
                requests.append(message)
            elif message.kind is Kind.RESPONSE:
                session.deliver_response(message)
            else:
                self._notification(session, message)
        if not requests:
            await response.respond(202, [])
            return
        if not self._admitting:
            raise self._unavailable()
        if self.config.json_response:
            await self._answer_json(session, requests, receive, response, extra_headers, batch)
        else:
            await self._answer_sse(session, requests, receive, response, extra_headers)

    def _notification(self, session: Session, message: Envelope) -> None:
        params = message.params or {}
        if message.method == "notifications/cancelled":
            request_id = params.get("requestId")
            if request_id is not None:
                session.cancel_request(request_id, "client")
        # notifications/initialized, roots/list_changed and unknown ones: nothing to do.

    async def _answer_json(
        self,
        session: Session,
        requests: list[Envelope],
        receive: Receive,
        response: GuardedResponse,
        extra_headers: list[tuple[bytes, bytes]] | None,
        batch: bool,
    ) -> None:
        slot = JsonSlot(len(requests))
        for request in requests:
            session.start(request, slot)
        if not slot.done:
            # Wait for the answer or for the client to leave, whichever is first; the
            # handler wakes us by cancelling ``waiter`` (no watcher task needed).
            with trio.CancelScope() as waiter:
                slot.waiter = waiter
                while True:
                    if (await receive())["type"] == "http.disconnect":
                        response.client_gone = True
                        return
        headers = JSON_HEADERS + (extra_headers or [])
        # A batch (2025-03-26) is answered with an array, as JSON-RPC 2.0 §6 says.
        body = _jsonrpc.encode_batch(slot.messages) if batch else slot.messages[0]
        await response.respond(200, headers, body)

    async def _answer_sse(
        self,
        session: Session,
        requests: list[Envelope],
        receive: Receive,
        response: GuardedResponse,
        extra_headers: list[tuple[bytes, bytes]] | None,
    ) -> None:
        stream = session.new_stream(len(requests))
        attachment = stream.attach()
        session.prime(stream)
        for request in requests:
            session.start(request, stream)
        await self._stream_out(attachment, receive, response, extra_headers)

    async def _stream_out(
        self,
        attachment: Attachment,
        receive: Receive,
        response: GuardedResponse,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Carry one stream on this response until its channel closes or the client leaves."""
        stream = attachment.stream
        try:
            await response.start(200, SSE_HEADERS + (extra_headers or []))
            if attachment.prelude:
                await response.chunk(b"".join(attachment.prelude))
            # Fast path: a quick handler has usually finished while the head was being
            # sent, leaving the whole stream queued.  Then there is nothing to wait for,
            # so no disconnect watcher to spawn: write it all and end.
            queued, ended = drain_nowait(attachment.receive)
            if ended:
                await self._finish_stream(attachment, response, queued)
                return
            if queued:
                await response.chunk(queued)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_disconnect, receive, response, nursery.cancel_scope)
                tail = await pump(
                    attachment.receive, response, self.config.keepalive_interval, hold_last=True
                )
                await self._finish_stream(attachment, response, tail)
                nursery.cancel_scope.cancel()
        finally:
            stream.release(attachment)

    async def _finish_stream(self, attachment: Attachment, response: GuardedResponse, tail: bytes) -> None:
        stream = attachment.stream
        if attachment.detached and stream.resumable:
            # The connection ends but the stream did not end on it: tell the client when
            # to come back for the rest (T-55).
            tail += _sse.retry(stream.retry_ms or self.config.retry_ms)
        # The last frames and the end of the body in one message: for a typical POST
        # stream (priming event + response) one send per response fewer, ~10-15 % of its
        # server CPU (benchmarks/, docs/benchmarks.md).
        await response.finish(tail)

    # -- initialize -------------------------------------------------------------------

    async def _initialize(
        self, request: Envelope, headers: RequestHeaders, receive: Receive, response: GuardedResponse
    ) -> None:
        if not self._admitting:
            raise self._unavailable()
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
        if self.config.stateless:
            client = client_info if isinstance(client_info, dict) else None
            await self._deliver_stateless(version, capabilities, client, [request], receive, response)
            return
        if len(self._sessions) >= self.config.max_sessions:
            raise self._unavailable("too many sessions")
        assert self._nursery is not None
        session_id = new_session_id()
        session = Session(
            self,
            session_id,
            protocol_version=version,
            client_capabilities=capabilities,
            client_info=client_info if isinstance(client_info, dict) else None,
        )
        self._sessions[session_id] = session
        await self._nursery.start(session.run)
        await self._deliver(session, [request], receive, response, [(b"mcp-session-id", session_id.encode())])

    # -- GET and DELETE ---------------------------------------------------------------

    async def _get(self, headers: RequestHeaders, receive: Receive, response: GuardedResponse) -> None:
        if self.config.stateless:
            raise ProtocolError(
                405,
                INVALID_REQUEST,
                "Method Not Allowed: no GET stream in stateless mode",
                headers=[(b"allow", b"POST")],
            )
        if not accepts(headers.get("accept"), "text/event-stream"):
            raise ProtocolError(406, INVALID_REQUEST, "Not Acceptable: Client must accept text/event-stream")
        session = self._session_for(headers)
        self._check_version(headers)
        if not self._admitting:
            raise self._unavailable()
        last_event_id = headers.get("last-event-id")
        if last_event_id is not None:
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
        """T-51/T-52: replay one stream's events after ``last_event_id``, then go live.

        Replay and attach happen with no checkpoint in between, so no event can fall
        into a gap or be sent twice.
        """
        parsed = parse_event_id(last_event_id)
        stream = session.find_stream(parsed[0]) if parsed is not None else None
        frames = stream.replay_after(parsed[1]) if stream is not None and parsed is not None else None
        if stream is None or frames is None:
            # T-57: we refuse rather than resume with a hole in the stream.
            raise ProtocolError(
                400,
                INVALID_REQUEST,
                f"Bad Request: cannot resume after event {last_event_id!r}: unknown or no longer stored",
            )
        return stream.attach(frames)

    def _check_version(self, headers: RequestHeaders) -> None:
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in LEGACY_VERSIONS:
            raise ProtocolError(
                400, INVALID_REQUEST, f"Bad Request: unsupported MCP-Protocol-Version: {version}"
            )

    async def _delete(self, headers: RequestHeaders, receive: Receive, response: GuardedResponse) -> None:
        if self.config.stateless:
            raise ProtocolError(
                405,
                INVALID_REQUEST,
                "Method Not Allowed: no sessions in stateless mode",
                headers=[(b"allow", b"POST")],
            )
        session = self._session_for(headers)
        self._check_version(headers)
        session.terminate()
        await self._discard_body(receive, response)
        await response.respond(204, [])
