"""Where the server's messages go: SSE streams and JSON response slots.

A :class:`SseStream` is one logical stream of a session (a POST's response stream, or the
standalone GET stream).  Publishing never waits: each event is framed once, kept in the
session's :class:`~trio_mcp_http.EventStore`, and handed to the connection currently
attached to the stream, if any, through a *bounded* memory channel.  The connection is
the ASGI call writing the response; when its channel's send side closes it flushes what
is buffered and ends its body cleanly.

Slow readers: when a connection's buffer is full, the stream detaches it (its channel is
closed, it writes ``retry:`` and ends).  No event is lost while the event store still
holds it: the client reconnects with ``Last-Event-ID`` and gets the rest.  Publishers
never block on a slow client and memory stays bounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from . import _sse
from ._event_store import EventStore, format_event_id

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Attachment", "JsonSlot", "SseStream"]


class Attachment:
    """A connection's view of a stream: frames to replay first, then the live channel."""

    __slots__ = ("detached", "prelude", "receive", "stream")

    def __init__(
        self, stream: SseStream, prelude: list[bytes], receive: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        self.stream = stream
        self.prelude = prelude
        self.receive = receive
        #: The stream let go of this connection before it finished: the client must
        #: come back for the rest.  (The stream may finish meanwhile, before the
        #: writer notices; only this flag says which way its channel was closed.)
        self.detached = False


class SseStream:
    """One logical SSE stream; outlives the connections that carry it."""

    __slots__ = (
        "_current",
        "_on_change",
        "_send",
        "_seq",
        "_store",
        "buffer_size",
        "closed_connections",
        "finished",
        "number",
        "outstanding",
        "retry_ms",
        "standalone",
    )

    def __init__(
        self,
        number: int,
        *,
        store: EventStore | None,
        buffer_size: int,
        standalone: bool = False,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.number = number
        self.standalone = standalone
        self.buffer_size = buffer_size
        self._store = store
        self._seq = 0
        self._send: trio.MemorySendChannel[bytes] | None = None
        self._current: Attachment | None = None
        self._on_change = on_change
        #: Responses still owed on this stream (a POST stream ends after the last one).
        self.outstanding = 0
        #: No more events will ever be published.
        self.finished = False
        #: The ``retry:`` hint written when a connection ends but the stream does not.
        self.retry_ms: int | None = None
        self.closed_connections = 0

    @property
    def attached(self) -> bool:
        return self._send is not None

    @property
    def resumable(self) -> bool:
        return self._store is not None

    def prime(self) -> None:
        """T-53: an event with an id and empty data, so the client has a resume point."""
        self._publish(b"")

    def publish(self, message: bytes) -> None:
        """Send one JSON-RPC message on this stream (never waits)."""
        self._publish(message)

    def publish_final(self, message: bytes | None) -> None:
        """Send a response owed on this stream; the stream ends after the last one."""
        if message is not None:
            self._publish(message)
        self.outstanding -= 1
        if self.outstanding <= 0 and not self.standalone:
            self.finish()

    def _publish(self, data: bytes) -> None:
        if self.finished:
            return
        if self._store is not None:
            self._seq += 1
            frame = _sse.event(data, id=format_event_id(self.number, self._seq))
            self._store.append(self.number, self._seq, frame)
        else:
            frame = _sse.event(data)
        send = self._send
        if send is not None:
            try:
                send.send_nowait(frame)
            except trio.WouldBlock:
                # The reader fell behind by a whole buffer: end its connection; it
                # resumes from the event store (see the module docstring).
                self.detach_connection()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._drop_send()

    def attach(self, prelude: list[bytes] | None = None) -> Attachment:
        """Attach a new connection, replacing (and ending) any current one."""
        if self._send is not None:
            self.detach_connection()
        send, receive = trio.open_memory_channel[bytes](self.buffer_size)
        attachment = Attachment(self, prelude or [], receive)
        if self.finished:
            send.close()
        else:
            self._send = send
            self._current = attachment
            if self._on_change is not None:
                self._on_change(+1)
        return attachment

    def release(self, attachment: Attachment) -> None:
        """The connection of ``attachment`` has ended (called by its writer)."""
        attachment.receive.close()
        if self._current is attachment:
            assert self._send is not None
            self._send.close()
            self._drop_send()

    def detach_connection(self, retry_ms: int | None = None) -> None:
        """End the current connection but not the stream (SSE polling, T-54/T-55)."""
        if retry_ms is not None:
            self.retry_ms = retry_ms
        if self._send is not None:
            self.closed_connections += 1
            if self._current is not None:
                self._current.detached = True
            self._send.close()
            self._drop_send()

    def finish(self) -> None:
        """No more events: the attached connection flushes and ends."""
        self.finished = True
        if self._send is not None:
            self._send.close()
            self._drop_send()

    def _drop_send(self) -> None:
        self._send = None
        self._current = None
        if self._on_change is not None:
            self._on_change(-1)

    def replay_after(self, seq: int) -> list[bytes] | None:
        if self._store is None or seq > self._seq:
            # T-57: an id this stream never issued is unknown, not a resume point.
            return None
        return self._store.replay_after(self.number, seq)


class JsonSlot:
    """The single JSON body owed to a POST in JSON-response mode.

    The ASGI call waits on it inside ``waiter``; delivering cancels that scope, which
    wakes the call without a task of its own.
    """

    __slots__ = ("messages", "outstanding", "waiter")

    def __init__(self, outstanding: int = 1) -> None:
        self.messages: list[bytes] = []
        self.outstanding = outstanding
        self.waiter: trio.CancelScope | None = None

    @property
    def done(self) -> bool:
        return self.outstanding <= 0

    def publish_final(self, message: bytes | None) -> None:
        if message is not None:
            self.messages.append(message)
        self.outstanding -= 1
        if self.outstanding <= 0 and self.waiter is not None:
            self.waiter.cancel()
