"""MCP over WebSocket: one session of the 2025-* era per connection.

A WebSocket handshake (RFC 6455 §4) on the MCP endpoint's path, offering the
subprotocol ``mcp``, opens one connection, and the connection *is* one session: a
:class:`~trio_mcp_http.transport.session.Session` run in the
:class:`~trio_mcp_http.transport.session_era.SessionEra`'s nursery, so it is counted
against ``max_sessions``, reached by broadcasts and by the app's drain like any other.
What differs from Streamable HTTP is only where the session's messages go: every
message, answers, notifications and server-to-client requests alike, is one JSON-RPC
text frame on the socket, and every message of the client comes in on it.

Ownership::

    McpHttpApp.run()
    └── SessionEra.run()             the nursery of every session, these ones included
        └── Session.run()            a handler task per in-flight request
    the ASGI ``websocket`` call      Hypercorn's task: this connection's reader, and
    └── writer task                  its writer, draining the session's bounded outbox

Guarantees, as over HTTP (docs/websocket.md):

* the outbox is bounded (``stream_buffer_size`` messages): a peer that does not read is
  disconnected (close 1008), it never makes the server buffer without bound;
* each send waits at most ``send_timeout`` for the peer to take data;
* the drain answers in-flight requests within the grace period (cancelled ones with an
  error), writes those answers, then closes with 1001 "going away";
* the peer leaving ends the session: its in-flight requests are cancelled (a socket
  cannot be resumed, unlike an SSE stream with ``Last-Event-ID``).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import trio

from ..protocol import decisions, jsonrpc
from ..protocol.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    UNSUPPORTED_PROTOCOL_VERSION,
    McpError,
    ProtocolError,
)
from ..protocol.http import RequestHeaders
from ..protocol.jsonrpc import Envelope, Kind
from ..protocol.stateless import META_VERSION
from ..protocol.versions import LEGACY_VERSIONS, negotiate_legacy
from .asgi import JSON_HEADERS
from .streams import Attachment, SseStream

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..protocol.auth import Principal
    from ..protocol.http import HostPolicy
    from .asgi import Message, Receive, Send
    from .session import Session
    from .session_era import SessionEra

__all__ = [
    "GOING_AWAY",
    "MESSAGE_TOO_BIG",
    "POLICY_VIOLATION",
    "SUBPROTOCOL",
    "UNSUPPORTED_DATA",
    "serve_websocket",
]

logger = logging.getLogger("trio_mcp_http")

#: The subprotocol a client must offer (``Sec-WebSocket-Protocol: mcp``).
SUBPROTOCOL = "mcp"

# Close codes (RFC 6455 §7.4.1).
#: The server is shutting down (its drain) or the session ended.
GOING_AWAY = 1001
#: A binary frame: MCP messages are JSON text.
UNSUPPORTED_DATA = 1003
#: ``initialize`` did not come in time, or the peer read too slowly.
POLICY_VIOLATION = 1008
#: A message larger than ``max_body_size``.
MESSAGE_TOO_BIG = 1009


class _SocketOutbox(SseStream):
    """The one stream of a WebSocket session: every message it owes, unframed.

    An :class:`SseStream` that is never resumable and standalone (the session's "GET
    stream"), so the session's machinery reaches it unchanged: answers and
    request-related messages through the request's outbox, broadcasts through the
    standalone stream.  Its bounded channel is read by the connection's writer.
    """

    __slots__ = ("closing", "on_overflow", "ready", "too_slow")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The client has sent ``initialize``: notifications and requests of the
        #: server may go out (MCP 2025-11-25, Lifecycle, Initialization).
        self.ready = False
        #: The session has ended: finish once the answers still owed are out.
        self.closing = False
        #: The reader fell a whole buffer behind.
        self.too_slow = False
        self.on_overflow: Callable[[], None] | None = None

    def publish(self, message: bytes) -> None:
        """A notification or a server-to-client request (never waits)."""
        if self.ready:
            self.put(message)

    def publish_final(self, message: bytes | None) -> None:
        """An answer; ``None`` for a request the client cancelled (none is sent)."""
        if message is not None:
            self.put(message)
        self.outstanding -= 1
        if self.closing and self.outstanding <= 0:
            self.finish()

    def put(self, message: bytes) -> None:
        if self.finished:
            return
        current = self._current
        if current is None:
            return
        try:
            current.send.send_nowait(message)
        except trio.WouldBlock:
            # A socket cannot be resumed: a reader a whole buffer behind loses its
            # connection and session (the slow-reader policy of SSE streams, minus
            # the replay).
            self.too_slow = True
            self.detach_connection()
            if self.on_overflow is not None:
                self.on_overflow()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._let_go()


async def serve_websocket(
    scope: Message,
    receive: Receive,
    send: Send,
    era: SessionEra,
    host_policy: HostPolicy,
    *,
    running: bool,
    authenticate: Callable[[str | None], Awaitable[Principal]] | None = None,
    authorize: Callable[[Envelope, Principal], None] | None = None,
) -> None:
    """Serve one ASGI ``websocket`` call on the session era ``era``.

    The handshake is refused before it is accepted, with an HTTP status and a JSON-RPC
    error body where the server supports the ``websocket.http.response`` extension
    (Hypercorn does), else with a close before accepting (the server answers 403):
    404 on another path, 421/403 from the Host/Origin policy, 400 without the ``mcp``
    subprotocol, 503 (with ``Retry-After``) when not running, draining or full.

    ``authenticate``: when the server requires authorization, the handshake's
    ``Authorization`` header is checked as a POST's is (401/403/503 before accepting);
    the session is bound to the principal, which every request of the connection acts
    for (``ctx.auth``), and ``authorize`` refuses each request that needs scopes the
    principal lacks (a JSON-RPC error: the socket has no per-message status).
    """
    if (await receive())["type"] != "websocket.connect":
        return
    config = era.config
    connection = _Connection(era, send)
    connection.authorize = authorize
    try:
        _check_handshake(scope, era, host_policy, running=running)
        if authenticate is not None:
            authorization = RequestHeaders(scope.get("headers", ())).get("authorization")
            connection.principal = await authenticate(authorization)
        await connection.open()
    except ProtocolError as refused:
        await _refuse(scope, send, refused, config.final_send_timeout)
        return
    await connection.run(receive)


def _check_handshake(scope: Message, era: SessionEra, host_policy: HostPolicy, *, running: bool) -> None:
    config = era.config
    if scope.get("path") != config.path:
        raise ProtocolError(404, INVALID_REQUEST, f"Not Found: the MCP endpoint is {config.path}")
    headers = RequestHeaders(scope.get("headers", ()))
    server = scope.get("server")
    # Browsers send Origin on every WebSocket handshake: this is what stops a page of
    # another site from opening a session (cross-site WebSocket hijacking).
    host_policy.check(headers.get("host"), headers.get("origin"), str(server[0]) if server else None)
    if SUBPROTOCOL not in (scope.get("subprotocols") or ()):
        raise ProtocolError(
            400,
            INVALID_REQUEST,
            f"Bad Request: the WebSocket subprotocol {SUBPROTOCOL!r} is required "
            f"(Sec-WebSocket-Protocol: {SUBPROTOCOL})",
        )
    if not running:
        raise ProtocolError(503, INTERNAL_ERROR, "Service Unavailable: server is not running")


async def _refuse(scope: Message, send: Send, refused: ProtocolError, seconds: float) -> None:
    with trio.move_on_after(seconds):
        try:
            if "websocket.http.response" in (scope.get("extensions") or {}):
                body = jsonrpc.encode_error(None, refused.code, refused.message, refused.data)
                headers = [*JSON_HEADERS, *refused.headers, (b"content-length", b"%d" % len(body))]
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": refused.status_hint,
                        "headers": headers,
                    }
                )
                await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
            else:
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            logger.debug("peer left before its handshake was refused", exc_info=True)


class _Connection:
    """One accepted WebSocket connection and its session."""

    def __init__(self, era: SessionEra, send: Send) -> None:
        self.era = era
        self.config = era.config
        self._asgi_send = send
        self.session: Session
        self.outbox: _SocketOutbox | None = None
        self.attachment: Attachment
        #: Set by the reader for a close it decides (protocol violations).
        self.close_code: int | None = None
        self.close_reason = ""
        #: The peer is gone: nothing more can be sent.
        self.gone = False
        self.initialized = False
        #: The reader's scope: its deadline is the time ``initialize`` has to arrive.
        self._reading = trio.CancelScope()
        #: The writer has ended (the outbox let go of the connection).
        self._written = False
        #: Who the connection acts for, when the server requires authorization.
        self.principal: Principal | None = None
        self.authorize: Callable[[Envelope, Principal], None] | None = None

    # -- lifetime ---------------------------------------------------------------------

    async def open(self) -> None:
        """Make the session (the gate's 503 when draining or full) and accept."""
        owner = None if self.principal is None else self.principal.owner
        self.session = await self.era.open_socket_session(self._session_ended, owner=owner)
        try:
            outbox = self.session.carry_standalone(_SocketOutbox)
            assert isinstance(outbox, _SocketOutbox)
            outbox.on_overflow = self._overflow
            self.outbox = outbox
            self.attachment = outbox.attach()
            if self.session.terminated:
                outbox.finish()
            await self._send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        except BaseException:
            self.session.terminate()
            raise

    def _session_ended(self, session: Session) -> None:
        """The session ended (shutdown, or the connection closing): the socket closes
        once the answers still owed are written."""
        outbox = self.outbox
        if outbox is not None:
            outbox.closing = True
            if outbox.outstanding <= 0:
                outbox.finish()

    def _overflow(self) -> None:
        logger.info(
            "closing a WebSocket whose reader fell %d messages behind", self.config.stream_buffer_size
        )
        self.session.terminate()

    async def run(self, receive: Receive) -> None:
        """Read until the peer leaves or the connection is closed; always ends the
        session, and closes the socket unless the peer is gone."""
        completed = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write)
                self._reading.deadline = trio.current_time() + self.config.body_timeout
                with self._reading:
                    await self._read(receive)
                if self._reading.cancelled_caught and not (self.initialized or self._written or self.gone):
                    limit = self.config.body_timeout
                    self._close(POLICY_VIOLATION, f"initialize did not arrive within {limit:g} s")
                if self.gone:
                    nursery.cancel_scope.cancel()
                # Otherwise the writer writes what is queued, then ends.
            completed = True
        finally:
            with trio.CancelScope(shield=True) as last_words:
                last_words.deadline = trio.current_time() + self.config.final_send_timeout
                if not completed and not self.gone:
                    # Cancelled from outside (plain Hypercorn at its graceful timeout,
                    # with no drain first): the requests in flight are cancelled, and
                    # their errors written, shielded and bounded, before the close.
                    await self._last_words()
                self.session.terminate()
                if not self.gone:
                    await self._send({"type": "websocket.close", **self._close_frame()})
            assert self.outbox is not None
            self.outbox.release(self.attachment)

    def _close_frame(self) -> dict[str, Any]:
        assert self.outbox is not None
        if self.close_code is not None:
            return {"code": self.close_code, "reason": self.close_reason}
        if self.outbox.too_slow:
            return {"code": POLICY_VIOLATION, "reason": "too slow reading messages"}
        return {"code": GOING_AWAY, "reason": "server going away"}

    def _close(self, code: int, reason: str) -> None:
        """Close the connection: what is queued goes out, then the close frame."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.session.terminate()
        assert self.outbox is not None
        self.outbox.finish()
        self._reading.cancel()

    async def _last_words(self) -> None:
        outbox = self.outbox
        assert outbox is not None
        outbox.closing = True
        self.session.cancel_all("shutdown")
        if outbox.outstanding <= 0:
            outbox.finish()
        async for message in self.attachment.receive:
            if outbox.too_slow or not await self._send_message(message):
                return

    # -- writing ----------------------------------------------------------------------

    async def _write(self) -> None:
        """Write the outbox's messages until it lets go of the connection (drain,
        session ended, slow reader, a close decided), then stop the reader."""
        outbox = self.outbox
        assert outbox is not None
        async for message in self.attachment.receive:
            if outbox.too_slow:
                break
            if not await self._send_message(message):
                # The peer took no data within send_timeout: as good as gone.
                outbox.too_slow = True
                self.session.terminate()
                break
        self._written = True
        self._reading.cancel()

    async def _send_message(self, message: bytes) -> bool:
        return await self._send({"type": "websocket.send", "text": message.decode()})

    async def _send(self, message: Message) -> bool:
        """Hand ``message`` to the server within ``send_timeout``; ``False`` when it
        could not be (the peer is gone or takes no data)."""
        try:
            with trio.move_on_after(self.config.send_timeout) as bound:
                await self._asgi_send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError, OSError):
            logger.debug("WebSocket connection lost during send", exc_info=True)
            self.gone = True
            return False
        return not bound.cancelled_caught

    # -- reading ----------------------------------------------------------------------

    async def _read(self, receive: Receive) -> None:
        limit = self.config.max_body_size
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                self.gone = True
                return
            if kind != "websocket.receive":
                continue
            if message.get("bytes") is not None:
                self._close(UNSUPPORTED_DATA, "binary frames are not accepted: send JSON-RPC as text")
                return
            text = message.get("text") or ""
            # Characters never outnumber the bytes that encode them: most messages are
            # checked without being encoded twice.
            body = b"" if len(text) > limit else text.encode("utf-8", "surrogatepass")
            if len(text) > limit or len(body) > limit:
                self._close(MESSAGE_TOO_BIG, f"a message may be at most {limit} bytes")
                return
            self._handle(body)

    def _handle(self, body: bytes) -> None:
        try:
            parsed = jsonrpc.parse_body(body)
            if isinstance(parsed, list):
                self._check_batch(parsed)
        except ProtocolError as exc:
            # Invalid JSON or JSON-RPC: an error with a null id; the connection stays up.
            self._reply(jsonrpc.encode_error(None, exc.code, exc.message, exc.data))
            return
        for message in parsed if isinstance(parsed, list) else [parsed]:
            self._deliver(message)

    def _check_batch(self, batch: list[Envelope]) -> None:
        """A batch as over HTTP: only once a 2025-03-26 session is initialized (the
        2025-06-18 changelog removes batching), never with ``initialize`` in it, and
        no larger than what fits the outbox."""
        decisions.split_initialize(batch)
        if not self.initialized or self.session.protocol_version != "2025-03-26":
            raise ProtocolError(
                400, INVALID_REQUEST, "Invalid Request: batches are not supported in this protocol version"
            )
        config = self.config
        limit = decisions.batch_limit(config.max_batch_size, config.stream_buffer_size, json_response=False)
        decisions.check_batch_size(batch, limit)

    def _deliver(self, message: Envelope) -> None:
        session = self.session
        if message.kind is not Kind.REQUEST:
            session.take(message)
            return
        meta = (message.params or {}).get("_meta")
        if isinstance(meta, dict) and META_VERSION in meta:
            # A 2026-07-28 request stands alone over HTTP POST; this connection is a
            # session of the 2025 era, whose versions are the ones it speaks.
            self._refuse_request(
                message,
                McpError(
                    UNSUPPORTED_PROTOCOL_VERSION,
                    "Unsupported protocol version: a WebSocket connection is a session of the "
                    "2025 era; send 2026-07-28 requests over HTTP POST",
                    {"supported": list(LEGACY_VERSIONS), "requested": meta[META_VERSION]},
                ),
            )
            return
        if message.method == "initialize":
            self._initialize(message)
            return
        if not self.initialized and message.method != "ping":
            refused = McpError(INVALID_REQUEST, "Invalid Request: the first request must be initialize")
            self._refuse_request(message, refused)
            return
        if not self.era.gate.admitting:
            # Client replies above are taken during a drain; new requests are not.
            self._refuse_request(message, self.era.gate.refusal())
            return
        self._start(message)

    def _initialize(self, request: Envelope) -> None:
        if self.initialized:
            refused = McpError(
                INVALID_REQUEST, "Invalid Request: this connection's session is already initialized"
            )
            self._refuse_request(request, refused)
            return
        params = request.params or {}
        capabilities = params.get("capabilities", {})
        client_info = params.get("clientInfo")
        client = client_info if isinstance(client_info, dict) else None
        try:
            if not isinstance(params.get("protocolVersion"), str) or not isinstance(capabilities, dict):
                raise McpError(
                    INVALID_PARAMS,
                    "Invalid params: initialize needs protocolVersion (string) and capabilities (object)",
                )
            decisions.check_client_state(capabilities, client)
        except McpError as exc:
            self._refuse_request(request, exc)
            return
        session = self.session
        session.protocol_version = negotiate_legacy(params["protocolVersion"])
        session.client_capabilities = capabilities
        session.client_info = client
        self.initialized = True
        assert self.outbox is not None
        self.outbox.ready = True
        self._reading.deadline = math.inf
        self._start(request)

    def _start(self, request: Envelope) -> None:
        assert self.outbox is not None
        if self.principal is not None and self.authorize is not None:
            try:
                self.authorize(request, self.principal)
            except ProtocolError as refused:  # 403 insufficient_scope over HTTP
                self._refuse_request(request, refused)
                return
        self.outbox.outstanding += 1
        self.session.start(request, self.outbox, self.principal)

    def _refuse_request(self, request: Envelope, error: McpError) -> None:
        self._reply(jsonrpc.encode_error(request.request_id, error.code, error.message, error.data))

    def _reply(self, message: bytes) -> None:
        assert self.outbox is not None
        self.outbox.put(message)
