"""The ASGI edge: a response that is always completed exactly once, and body reading.

Guarantee 1 (docs/architecture.md): whatever way a handler leaves — return, exception,
cancellation, client disconnect — :meth:`GuardedResponse.complete` finishes the
response.  Nothing sent and the client gone: **499**.  Nothing sent and the server
failed: **500** with a JSON-RPC error body.  Headers sent: a final empty body chunk.
That last send is shielded from cancellation and bounded in time, so a sender is never
cancelled inside its final ``send(more_body=False)`` (Hypercorn does its connection
bookkeeping in that call).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import trio

from ..protocol import jsonrpc
from ..protocol.errors import INTERNAL_ERROR, INVALID_REQUEST, ProtocolError, StateError

__all__ = [
    "JSON_HEADERS",
    "SSE_HEADERS",
    "ClientGone",
    "GuardedResponse",
    "discard_body",
    "read_body",
    "watch_disconnect",
]

logger = logging.getLogger("trio_mcp_http")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: nginx's "Client Closed Request": logged for requests whose client left first.
CLIENT_CLOSED_REQUEST = 499

JSON_HEADERS: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    # Stop reverse proxies from buffering the stream (2026-07-28
    # basic/transports/streamable-http §receiving messages).
    (b"x-accel-buffering", b"no"),
]


class ClientGone(Exception):
    """The client disconnected; raised by :func:`read_body` and caught by the app."""


class _State(enum.Enum):
    NOT_STARTED = 0
    STREAMING = 1
    COMPLETE = 2


class Cork(Protocol):
    """A server's offer to hold a connection's writes and send them as one."""

    #: What is held since :meth:`hold` (``None``: not holding; writes go out at once).
    held: list[bytes] | None

    def hold(self) -> None: ...

    async def flush(self) -> None: ...


class Departure(Protocol):
    """A server's offer to call the app back, synchronously, when a request's client
    has gone (instead of the app waiting in ``receive()`` for ``http.disconnect``)."""

    def add(self, callback: Callable[[], None]) -> None: ...


class GuardedResponse:
    """Wraps the ASGI ``send`` of one HTTP request; see the module docstring."""

    __slots__ = (
        "_cork",
        "_departure",
        "_head_tried",
        "_send",
        "_state",
        "_watched",
        "body_discarded",
        "body_read",
        "body_started",
        "client_gone",
        "final_send_timeout",
        "send_timeout",
    )

    def __init__(
        self,
        send: Send,
        final_send_timeout: float = 1.0,
        send_timeout: float = 30.0,
        cork: Cork | None = None,
        departure: Departure | None = None,
    ) -> None:
        self._send = send
        #: The server's notice of the client leaving, where it has one (``serve()``:
        #: the scope's ``trio_mcp_http.departure`` extension); see :meth:`watch`.
        self._departure = departure
        self._watched: list[trio.CancelScope] | None = None
        #: The server's way to hold a response's writes together, where it has one
        #: (``serve()``, HTTP/1.1: the scope's ``trio_mcp_http.cork`` extension).
        self._cork = cork
        #: Bound on the final, shielded send of :meth:`complete`.
        self.final_send_timeout = final_send_timeout
        #: Bound on every other send: TCP keepalives and acknowledgements do not
        #: notice a peer that takes no data (an HTTP/2 client keeping its
        #: flow-control window at 0, RFC 9113 §6.9), so without it a send could wait
        #: forever.
        self.send_timeout = send_timeout
        self._state = _State.NOT_STARTED
        #: ``http.response.start`` has been handed to the server (or tried).
        self._head_tried = False
        self.client_gone = False
        #: The request body has been asked for (see :func:`read_body`).
        self.body_started = False
        #: The request body has been read to its end (see :func:`discard_body`).
        self.body_read = False
        #: :func:`discard_body` has run: a request's body is discarded at most once.
        self.body_discarded = False

    @property
    def started(self) -> bool:
        return self._state is not _State.NOT_STARTED

    @property
    def completed(self) -> bool:
        return self._state is _State.COMPLETE

    async def _raw(self, message: Message, *, bounded: bool = True) -> None:
        """Hand ``message`` to the server.  ``bounded=False`` where the caller already
        bounds the send (one cancel scope per response, not per message: each costs
        ~5 µs on every request)."""
        head = message["type"] == "http.response.start"
        final = message["type"] == "http.response.body" and not message.get("more_body", False)
        first_head = head and not self._head_tried
        if head:
            self._head_tried = True
        if self.client_gone:
            # Sends after a disconnect go nowhere.  Only what ends the response is still
            # tried (the server does its bookkeeping there; the head first if it never
            # went, so the end is well-formed); never raise into the caller.
            if final or first_head:
                try:
                    with trio.move_on_after(self.final_send_timeout) as bound:
                        await self._send(message)
                except Exception:
                    logger.debug("send after disconnect failed", exc_info=True)
                    return
                if bound.cancelled_caught:
                    # Expected of a client that is gone (a dropped HTTP/2 connection
                    # ends all its streams at once): not worth a warning.
                    logger.debug("final send of a response timed out after %.1fs", self.final_send_timeout)
            return
        try:
            if not bounded or (self._cork is not None and self._cork.held is not None):
                # Unbounded: the caller bounds it, or the write is held (it only queues;
                # :meth:`release` writes it, bounded).
                await self._send(message)
                return
            with trio.move_on_after(self.send_timeout) as bound:
                await self._send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            # The connection went away under the send (e.g. Hypercorn closing a
            # connection at keep_alive_max_requests while the client already sent its
            # next request): that is the client being gone, not a server failure.
            logger.debug("connection lost during send", exc_info=True)
            self.client_gone = True
            return
        if bound.cancelled_caught:
            logger.debug("a send waited %.1fs for the client to take data: client gone", self.send_timeout)
            self.client_gone = True

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self._state is not _State.NOT_STARTED:
            raise StateError("response already started")
        self._state = _State.STREAMING
        await self._raw({"type": "http.response.start", "status": status, "headers": headers})

    async def chunk(self, data: bytes) -> None:
        """One body chunk of a streaming response (``more_body=True``)."""
        if self._state is not _State.STREAMING:
            raise StateError("response not streaming")
        await self._raw({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, data: bytes) -> None:
        """End a streaming response with its last chunk, in one message.

        One send (and one pass through the server) fewer than :meth:`chunk` followed
        by :meth:`complete`; like the latter, shielded and bounded.
        """
        if self._state is not _State.STREAMING:
            raise StateError("response not streaming")
        self._state = _State.COMPLETE
        await self._final(self._unbounded, {"type": "http.response.body", "body": data, "more_body": False})

    async def _unbounded(self, message: Message) -> None:
        await self._raw(message, bounded=False)

    async def _final(self, send: Callable[..., Awaitable[None]], *args: Any) -> None:
        """The last send of a response: shielded from cancellation, bounded in time,
        and never raising (the client may be gone)."""
        gone = self.client_gone
        with trio.CancelScope(shield=True) as scope:
            if self._cork is None or self._cork.held is None:
                # (Held, the send only queues: the bound is :meth:`release`'s.)
                scope.deadline = trio.current_time() + self.final_send_timeout
            try:
                await send(*args)
            except Exception:
                logger.debug("could not complete response", exc_info=True)
        if scope.cancelled_caught:
            # Only a live client's stall is worth a warning (see :meth:`_raw`).
            level = logging.DEBUG if gone or self.client_gone else logging.WARNING
            logger.log(level, "final send of a response timed out after %.1fs", self.final_send_timeout)
            self.client_gone = True

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        """A whole response in one go, both of its messages under one bound."""
        if self._state is not _State.NOT_STARTED:
            raise StateError("response already started")
        self._state = _State.COMPLETE
        head = {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", b"%d" % len(body))],
        }
        last_message = {"type": "http.response.body", "body": body, "more_body": False}
        if self._cork is not None:
            # Held, both messages only queue; the one write is :meth:`release`'s,
            # bounded there.
            self._cork.hold()
            try:
                await self._raw(head, bounded=False)
                await self._raw(last_message, bounded=False)
            finally:
                await self.release()
            return
        with trio.move_on_after(self.send_timeout) as bound:
            await self._raw(head, bounded=False)
            await self._raw(last_message, bounded=False)
        if bound.cancelled_caught:
            logger.debug("a send waited %.1fs for the client to take data: client gone", self.send_timeout)
            self.client_gone = True

    def watch(self, nursery: trio.Nursery, receive: Receive, scope: trio.CancelScope) -> None:
        """From now on, the client leaving marks the response ``client_gone`` and
        cancels ``scope`` (guarantee 2), until the response is complete.

        Where the server offers a departure notice, that is all it takes: no task.
        Otherwise a task in ``nursery`` waits in ``receive()`` for ``http.disconnect``
        (the body must have been read: nothing else may still arrive there), and ends
        with ``nursery``.
        """
        if self._departure is None:
            nursery.start_soon(watch_disconnect, receive, self, scope)
        elif self._watched is None:
            self._watched = [scope]
            self._departure.add(self._departed)
        else:
            self._watched.append(scope)

    def _departed(self) -> None:
        # Called by the server when the stream closes, which it also does once the
        # response is complete: only a departure before that is the client leaving.
        if self._state is not _State.COMPLETE:
            self.client_gone = True
            for scope in self._watched or ():
                scope.cancel()

    def hold(self) -> None:
        """Hold what is sent from now on, to go out in one write at :meth:`release`
        (where the server offers it; else sends go out as they come).  Only around
        sends that follow one another without waiting on anything else."""
        if self._cork is not None:
            self._cork.hold()

    async def release(self) -> None:
        """Send what :meth:`hold` held: shielded and bounded, as the server's own
        writes are (a response cut short there would be lost whole)."""
        if self._cork is not None:
            with trio.CancelScope(shield=True) as last:
                last.deadline = trio.current_time() + self.final_send_timeout
                await self._cork.flush()

    async def error(self, exc: ProtocolError, request_id: int | str | None = None) -> None:
        if request_id is None:
            request_id = exc.request_id
        body = jsonrpc.encode_error(request_id, exc.code, exc.message, exc.data)
        await self.respond(exc.status_hint, JSON_HEADERS + exc.headers, body)

    async def complete(self, *, failed: bool) -> None:
        """Finish the response if the handler did not; shielded and bounded."""
        if self._state is _State.STREAMING:
            await self.finish(b"")
        elif self._state is _State.NOT_STARTED:
            if self.client_gone:
                status, message = CLIENT_CLOSED_REQUEST, "Client Closed Request"
            else:
                status, message = 500, "Internal error" if failed else "Request ended without a response"
            body = jsonrpc.encode_error(None, INTERNAL_ERROR, message)
            await self._final(self.respond, status, JSON_HEADERS, body)


async def read_body(receive: Receive, limit: int, seconds: float, response: GuardedResponse) -> bytes:
    """Read the request body, refusing it with 413 as soon as it exceeds ``limit`` and
    with 408 when it has not arrived within ``seconds`` (a trickling client
    must not hold a request open forever)."""
    chunks: list[bytes] = []
    size = 0
    response.body_started = True
    with trio.move_on_after(seconds):
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "http.disconnect":
                response.client_gone = True
                raise ClientGone
            if kind != "http.request":
                continue
            body = message.get("body", b"")
            if body:
                size += len(body)
                if size > limit:
                    raise ProtocolError(
                        413, INVALID_REQUEST, f"Payload Too Large: the body exceeds {limit} bytes"
                    )
                chunks.append(body)
            if not message.get("more_body", False):
                response.body_read = True
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    raise ProtocolError(
        408, INVALID_REQUEST, f"Request Timeout: the body did not arrive within {seconds:g} seconds"
    )


async def discard_body(receive: Receive, limit: int, seconds: float, response: GuardedResponse) -> None:
    """Before an early answer (an error decided before the body was read), read and
    drop the rest of the body, at most ``limit`` bytes and ``seconds``.

    A client that writes its whole body before reading (Python's ``http.client``, many
    others) then sees the answer instead of a reset connection, the connection stays
    usable, and no request data arrives for a stream the server has already finished
    (which HTTP/2 servers are known to mishandle).  Beyond the bounds the server
    answers anyway and the connection is closed.
    """
    if response.body_read or response.client_gone or response.body_discarded:
        return
    response.body_discarded = response.body_started = True
    size = 0
    with trio.move_on_after(seconds):
        while size <= limit:
            message = await receive()
            kind = message["type"]
            if kind == "http.disconnect":
                response.client_gone = True
                return
            if kind == "http.request":
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    response.body_read = True
                    return


async def watch_disconnect(
    receive: Receive, response: GuardedResponse, on_disconnect: trio.CancelScope
) -> None:
    """Wait for ``http.disconnect`` and cancel ``on_disconnect`` (guarantee 2)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            response.client_gone = True
            on_disconnect.cancel()
            return
