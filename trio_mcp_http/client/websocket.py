"""MCP over a WebSocket, from the client's side: one 2025-era session per connection.

The wire is this project's (docs/websocket.md): a WebSocket handshake (RFC 6455 §4)
offering the subprotocol ``mcp``, then every JSON-RPC message, both ways, as one text
frame.  WebSocket is not a standard MCP transport (MCP 2025-11-25, Transports, names
stdio and Streamable HTTP; a WebSocket transport is proposed in SEP-1288), so this wire
is only known to be spoken by servers of this project.

:class:`WebSocket` is a :class:`~trio_mcp_http.client.transport.Transport`, so the
session logic (``session.py``) runs over it unchanged.  Where HTTP gives each message
its own exchange, a socket carries everything on one stream, so a reader task sorts
what comes in:

* the answer to a request, and the progress notifications carrying that request's
  progress token, go to the request's exchange;
* everything else (log messages, list changes, resource updates, the server's own
  requests) goes to the server's stream, the counterpart of a session's GET stream.

Order across the two is kept where it matters: an answer is handed to its caller only
once every notification the server sent before it has been handed to its handler, so a
log callback has seen the tool's log lines by the time ``call_tool`` returns, as over
HTTP where they share the response stream.

The server sends no session id over a socket; the transport names the connection with a
local id (the session's ``session_id``), which the session logic uses to know it has a
session and a server stream to read.

Closing: leaving :func:`open_websocket` closes the socket with 1000 (normal closure).
A close the server starts (1001 at its shutdown, 1008, 1009 ...) fails every call still
waiting, and every later one, with :class:`WebSocketClosed`, which carries the code.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from ..protocol import jsonrpc
from ..protocol.errors import ProtocolError
from ..protocol.jsonrpc import Envelope, Kind
from .errors import HttpStatusError, TransportError
from .transport import _json_rpc_error

__all__ = ["SUBPROTOCOL", "WebSocket", "WebSocketClosed", "open_websocket"]

logger = logging.getLogger("trio_mcp_http.client")

#: The subprotocol offered in the handshake (``Sec-WebSocket-Protocol: mcp``).
SUBPROTOCOL = "mcp"
#: RFC 6455 §7.4.1: the close code of a connection that ended as intended.
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
#: Messages one exchange, or the server's stream, holds before the reader waits for its
#: consumer: the socket's backpressure reaches the server instead of memory growing.
QUEUE_SIZE = 256


class WebSocketClosed(TransportError):
    """The WebSocket closed before an answer came (or before a message could be sent).

    ``code`` and ``reason`` are those of the close frame (RFC 6455 §7.4.1): 1001 when the
    server shut down, 1008 when it judged the client too slow or too late, 1009 for a
    message over its size limit; 1006 when the connection dropped without a close frame.
    """

    def __init__(self, code: int, reason: str | None, doing: str) -> None:
        detail = f"{code} {reason}" if reason else str(code)
        super().__init__(f"the WebSocket closed ({detail}) {doing}")
        self.code = code
        self.reason = reason


class _Order:
    """What keeps an answer behind the notifications the server sent before it.

    Every incoming message gets a sequence number.  The sequence numbers of the
    notifications queued for the server's stream, not yet taken by its reader, are kept
    in order; an exchange hands on a message only once none older is left.  "Taken", not
    "handled": a handler may itself make a request, whose answer must not wait for it.
    """

    def __init__(self) -> None:
        self._last = 0
        self._queued: deque[int] = deque()
        self._changed = trio.Event()
        self._active = True

    def next(self) -> int:
        self._last += 1
        return self._last

    def queued(self, seq: int) -> None:
        if self._active:
            self._queued.append(seq)

    def taken(self, seq: int) -> None:
        if self._queued and self._queued[0] == seq:
            self._queued.popleft()
            self._wake()

    def stop(self) -> None:
        """No reader for the server's stream any more: nothing to wait for."""
        self._active = False
        self._queued.clear()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def after_older(self, seq: int) -> None:
        while self._queued and self._queued[0] < seq:
            await self._changed.wait()


class _Done:
    """The ``Incoming`` of a message that gets no answer (a notification, a response)."""

    headers: Mapping[str, str] = {}

    async def receive(self) -> Envelope | None:
        await trio.lowlevel.checkpoint()
        return None


class _Exchange:
    """The messages meant for one request: its progress, then its answer."""

    def __init__(self, transport: WebSocket, request: Envelope, headers: Mapping[str, str]) -> None:
        self._transport = transport
        self.request_id = request.request_id
        self.method = request.method or "the request"
        meta = (request.params or {}).get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        self.progress_token: int | str | None = token if isinstance(token, (int, str)) else None
        self.send, self._receive = trio.open_memory_channel[tuple[int, Envelope]](QUEUE_SIZE)
        self.headers = headers
        self._answered = False

    async def receive(self) -> Envelope | None:
        if self._answered:
            await trio.lowlevel.checkpoint()
            return None
        try:
            seq, message = await self._receive.receive()
        except trio.EndOfChannel:
            raise self._transport.closed_error(f"before answering {self.method}") from None
        await self._transport.order.after_older(seq)
        if message.kind is Kind.RESPONSE:
            self._answered = True
        return message

    def close(self) -> None:
        self._receive.close()


class _ServerStream:
    """What the server sends on its own: its notifications and requests, in order."""

    headers: Mapping[str, str] = {}

    def __init__(
        self, transport: WebSocket, receive: trio.MemoryReceiveChannel[tuple[int, Envelope]]
    ) -> None:
        self._transport = transport
        self._receive = receive

    async def receive(self) -> Envelope | None:
        try:
            seq, message = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            # The socket closed: quietly when it closed as intended, else an error
            # with the close code (the session logic logs it).
            error = self._transport.unexpected_close()
            if error is not None:
                raise error from None
            return None
        self._transport.order.taken(seq)
        return message


class WebSocket:
    """MCP over one open WebSocket connection; made by :func:`open_websocket`."""

    def __init__(self, ws: WebSocketConnection, url: str, *, send_timeout: float) -> None:
        self._ws = ws
        self.url = url
        self.send_timeout = send_timeout
        self.order = _Order()
        #: The local name of the connection, given as the session's id.
        self.connection_id = "ws-" + secrets.token_hex(8)
        self._exchanges: dict[int | str, _Exchange] = {}
        self._by_token: dict[int | str, _Exchange] = {}
        self._stream_send, self._stream_receive = trio.open_memory_channel[tuple[int, Envelope]](QUEUE_SIZE)
        self._stream_taken = False
        #: Set once the socket is closed: by us (1000), by the server, or dropped.
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._closed_by_us = False

    # -- the Transport protocol -------------------------------------------------------

    @asynccontextmanager
    async def exchange(
        self, message: bytes, headers: Mapping[str, str], *, resumable: bool
    ) -> AsyncIterator[_Exchange | _Done]:
        try:
            parsed = jsonrpc.parse_body(message)
        except ProtocolError as exc:
            raise TransportError(f"not a JSON-RPC message: {exc.message}") from exc
        if isinstance(parsed, list) or parsed.kind is not Kind.REQUEST:
            await self._send(message, "before the message could be sent")
            yield _Done()
            return
        exchange = _Exchange(self, parsed, {"mcp-session-id": self.connection_id})
        if parsed.request_id in self._exchanges:
            raise TransportError(f"request id {parsed.request_id!r} is already in flight")
        self._exchanges[exchange.request_id] = exchange
        if exchange.progress_token is not None:
            self._by_token[exchange.progress_token] = exchange
        try:
            await self._send(message, f"before {exchange.method} could be sent")
            yield exchange
        finally:
            self._forget(exchange)

    @asynccontextmanager
    async def server_stream(self, headers: Mapping[str, str]) -> AsyncIterator[_ServerStream]:
        if self._stream_taken:
            raise TransportError("the server's stream of a WebSocket is read once")
        self._stream_taken = True
        try:
            yield _ServerStream(self, self._stream_receive)
        finally:
            self._stream_receive.close()
            self.order.stop()

    async def end_session(self, headers: Mapping[str, str]) -> None:
        """The session is the connection: it ends with the close (1000) that leaving
        :func:`open_websocket` sends, right after this."""
        await trio.lowlevel.checkpoint()

    # -- sending and closing ----------------------------------------------------------

    async def _send(self, message: bytes, doing: str) -> None:
        """Send one frame, shielded and bounded: a frame cut off by a cancellation would
        leave the socket unusable for every other request."""
        if self.close_code is not None:
            raise self.closed_error(doing)
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self.send_timeout) as bound:
                try:
                    await self._ws.send_message(message.decode())
                except ConnectionClosed as exc:
                    self._closed(exc)
                    raise self.closed_error(doing) from exc
            if bound.cancelled_caught:
                await self._abort()
                raise TransportError(f"the server took no data for {self.send_timeout:g} s {doing}")
        await trio.lowlevel.checkpoint_if_cancelled()

    async def aclose(self) -> None:
        """Close the socket with 1000, once, shielded and bounded by the send timeout.

        Called in a cancelled scope (the block was cancelled from outside), the close
        frame is sent but its answer not waited for: trio-websocket's reader, which
        would receive it, has been cancelled with everything else in that scope."""
        if self.close_code is None:
            self._closed_by_us = True
            self._set_closed(NORMAL_CLOSURE, None)
        if trio.current_effective_deadline() == -math.inf:
            # trio-websocket 0.12 has no public way to close without waiting for the
            # peer's close frame: mark the closing handshake done, as its reader would.
            self._ws._close_handshake.set()
        with trio.CancelScope(shield=True), trio.move_on_after(self.send_timeout):
            await self._ws.aclose(NORMAL_CLOSURE)
        await self._release_stream()

    async def _abort(self) -> None:
        if self.close_code is None:
            self._set_closed(1006, "the connection was abandoned")
        await self._release_stream()

    async def _release_stream(self) -> None:
        # trio-websocket 0.12 closes its TCP stream only when the client starts the
        # close: after a close the server started, its aclose() returns at once and the
        # socket would be left for the garbage collector (a ResourceWarning).  Closing
        # an already closed stream does nothing.
        with trio.CancelScope(shield=True):
            await self._ws._stream.aclose()

    def closed_error(self, doing: str) -> WebSocketClosed:
        code = self.close_code if self.close_code is not None else 1006
        return WebSocketClosed(code, self.close_reason, doing)

    def unexpected_close(self) -> WebSocketClosed | None:
        """The error of a close nobody here asked for; ``None`` for an orderly one."""
        if self._closed_by_us or self.close_code in (None, NORMAL_CLOSURE, GOING_AWAY):
            return None
        return self.closed_error("")

    def _closed(self, exc: ConnectionClosed) -> None:
        if self.close_code is None:
            reason = exc.reason
            if reason is None:
                self._set_closed(1006, None)
            else:
                self._set_closed(reason.code, reason.reason)

    def _set_closed(self, code: int, reason: str | None) -> None:
        self.close_code, self.close_reason = code, reason
        for exchange in list(self._exchanges.values()):
            exchange.send.close()
        self._stream_send.close()

    def _forget(self, exchange: _Exchange) -> None:
        self._exchanges.pop(exchange.request_id, None)
        if exchange.progress_token is not None and self._by_token.get(exchange.progress_token) is exchange:
            del self._by_token[exchange.progress_token]
        exchange.send.close()
        exchange.close()

    # -- reading ----------------------------------------------------------------------

    async def read(self) -> None:
        """Sort every incoming message until the socket closes (the reader task)."""
        try:
            while True:
                frame = await self._ws.get_message()
                if isinstance(frame, bytes):
                    logger.warning("the server sent a binary WebSocket frame; closing (1003)")
                    self._set_closed(1003, "binary frames are not MCP")
                    with trio.move_on_after(self.send_timeout):
                        await self._ws.aclose(1003, "binary frames are not MCP")
                    return
                await self._dispatch(frame)
        except ConnectionClosed as exc:
            self._closed(exc)

    async def _dispatch(self, frame: str) -> None:
        try:
            parsed = jsonrpc.parse_body(frame.encode("utf-8", "surrogatepass"))
        except ProtocolError as exc:
            logger.warning("ignoring a WebSocket message that is not JSON-RPC: %s", exc.message)
            return
        for message in parsed if isinstance(parsed, list) else [parsed]:
            seq = self.order.next()
            target = self._route(message)
            if target is None:
                continue
            if target is self._stream_send and message.kind is Kind.NOTIFICATION:
                self.order.queued(seq)
            # Its reader may have gone (a cancelled call): then nothing waits for it.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await target.send((seq, message))

    def _route(self, message: Envelope) -> trio.MemorySendChannel[tuple[int, Envelope]] | None:
        if message.kind is Kind.RESPONSE:
            exchange = self._exchanges.get(message.id) if isinstance(message.id, (int, str)) else None
            if exchange is None:
                logger.debug("ignoring an answer to no request in flight: id %r", message.id)
                return None
            return exchange.send
        if message.kind is Kind.NOTIFICATION and message.method == "notifications/progress":
            token = (message.params or {}).get("progressToken")
            exchange = self._by_token.get(token) if isinstance(token, (int, str)) else None
            if exchange is not None:
                return exchange.send
        return self._stream_send


def _handshake_error(url: str, exc: BaseException) -> BaseException:
    """The library's exception for a handshake that failed."""
    if isinstance(exc, ConnectionRejected):
        body = exc.body or b""
        error = _json_rpc_error(exc.status_code, body)
        if error is not None:
            return error
        text = body.decode("utf-8", "replace").strip()[:200]
        return HttpStatusError(exc.status_code, f"WebSocket handshake refused: {text or 'no body'}", body)
    if isinstance(exc, ConnectionTimeout):
        return TransportError(f"the WebSocket handshake with {url} timed out")
    cause = exc.__cause__ or exc
    return TransportError(f"connecting to {url} failed: {cause or type(cause).__name__}")


@asynccontextmanager
async def open_websocket(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_message_size: int = 16 * 1024 * 1024,
    io_timeout: float = 30.0,
) -> AsyncIterator[WebSocket]:
    """Connect to ``url`` (``ws://`` or ``wss://``) offering the subprotocol ``mcp``;
    the transport lives for the block, and leaving it closes the socket with 1000.

    ``headers`` go on the handshake (``Authorization``, say).  ``io_timeout`` bounds the
    handshake, each send and the closing handshake.  ``max_message_size`` bounds one
    incoming message (in characters, as trio-websocket counts it); a larger one closes
    the socket with 1009.
    """
    extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    # The connection is ours, and closed whatever happens: the library's own
    # open_websocket_url leaves the TCP connection of a refused handshake open
    # (trio-websocket 0.12).
    stream, authority, resource = await _open_stream(url, io_timeout)
    failure: BaseException | None = None
    refused: BaseException | None = None
    try:
        try:
            async with trio.open_nursery() as nursery:
                try:
                    with trio.fail_after(io_timeout):
                        ws = await wrap_client_stream(
                            nursery,
                            stream,
                            authority,
                            resource,
                            subprotocols=[SUBPROTOCOL],
                            extra_headers=extra,
                            max_message_size=max_message_size,
                        )
                except (HandshakeError, trio.TooSlowError, OSError, trio.BrokenResourceError) as exc:
                    refused = exc
                    nursery.cancel_scope.cancel()
                else:
                    transport = WebSocket(ws, url, send_timeout=io_timeout)
                    nursery.start_soon(transport.read, name="trio_mcp_http.client.websocket.read")
                    try:
                        if ws.subprotocol != SUBPROTOCOL:
                            raise TransportError(
                                f"the server at {url} did not accept the WebSocket subprotocol "
                                f"{SUBPROTOCOL!r}: it does not speak MCP over WebSocket"
                            )
                        yield transport
                    except BaseException as exc:
                        # Raised below, outside the nursery, as it is: not wrapped in an
                        # ExceptionGroup.
                        failure = exc
                    finally:
                        # Closed while the readers still run, so that the server's answer
                        # to the close frame is read.
                        await transport.aclose()
                        nursery.cancel_scope.cancel()
        except* HandshakeError as group:
            # The library's reader task raises the refusal too, in the nursery.
            if refused is None:
                refused = group.exceptions[0]
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
    if refused is not None:
        timed_out = ConnectionTimeout() if isinstance(refused, trio.TooSlowError) else refused
        raise _handshake_error(url, timed_out) from refused
    if failure is not None:
        raise failure


async def _open_stream(
    url: str, io_timeout: float
) -> tuple[trio.SocketStream | trio.SSLStream[trio.SocketStream], str, str]:
    """A connection to ``url``'s host, with the Host header value and the resource."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise TransportError(f"not a ws:// or wss:// URL: {url!r}")
    secure = parts.scheme == "wss"
    host = parts.hostname
    authority = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        authority = f"{authority}:{parts.port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = parts.port or (443 if secure else 80)
    try:
        with trio.fail_after(io_timeout):
            if secure:
                secured = await trio.open_ssl_over_tcp_stream(host, port, https_compatible=True)
                return secured, authority, resource
            return await trio.open_tcp_stream(host, port), authority, resource
    except trio.TooSlowError as exc:
        raise TransportError(f"connecting to {url} timed out") from exc
    except OSError as exc:
        raise _handshake_error(url, exc) from exc
