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

import math
from typing import TYPE_CHECKING

import trio

from ..protocol import sse
from ..protocol.event_store import EventStore, format_event_id
from .asgi import GuardedResponse

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Attachment", "JsonSlot", "SseStream", "drain_nowait", "pump"]


class Attachment:
    """One connection carrying a stream: frames to replay first, then a bounded channel
    whose send side the stream holds while the connection is attached."""

    __slots__ = ("detached", "prelude", "receive", "send", "stream")

    def __init__(self, stream: SseStream, prelude: list[bytes]) -> None:
        self.stream = stream
        self.prelude = prelude
        # (Not ``open_memory_channel[bytes](...)``: subscripting at run time goes
        # through typing's cache on every call, one per POST stream.)
        self.send: trio.MemorySendChannel[bytes]
        self.receive: trio.MemoryReceiveChannel[bytes]
        self.send, self.receive = trio.open_memory_channel(stream.buffer_size)
        #: The stream let go of this connection before it finished: the client must
        #: come back for the rest.  (The stream may finish meanwhile, before the
        #: writer notices; only this flag says which way its channel was closed.)
        self.detached = False


class SseStream:
    """One logical SSE stream; outlives the connections that carry it."""

    __slots__ = (
        "_current",
        "_on_change",
        "_seq",
        "_store",
        "buffer_size",
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
        #: The connection attached now, if any.
        self._current: Attachment | None = None
        self._on_change = on_change
        #: Responses still owed on this stream (a POST stream ends after the last one).
        self.outstanding = 0
        #: No more events will ever be published.
        self.finished = False
        #: The ``retry:`` hint written when a connection ends but the stream does not.
        self.retry_ms: int | None = None

    @property
    def attached(self) -> bool:
        return self._current is not None

    @property
    def resumable(self) -> bool:
        return self._store is not None

    def prime(self) -> None:
        """A priming event: an id and empty data, so the client has a resume point
        (2025-11-25 basic/transports §sending messages to the server)."""
        self.publish(b"")

    def publish(self, message: bytes) -> None:
        """Send one JSON-RPC message on this stream (never waits)."""
        if self.finished:
            return
        if self._store is not None:
            self._seq += 1
            frame = sse.event(message, id=format_event_id(self.number, self._seq))
            self._store.append(self.number, self._seq, frame)
        else:
            frame = sse.event(message)
        current = self._current
        if current is not None:
            try:
                current.send.send_nowait(frame)
            except trio.WouldBlock:
                # The reader fell behind by a whole buffer: end its connection; it
                # resumes from the event store (see the module docstring).
                self.detach_connection()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._let_go()

    def publish_final(self, message: bytes | None) -> None:
        """Send a response owed on this stream; the stream ends after the last one."""
        if message is not None:
            self.publish(message)
        self.outstanding -= 1
        if self.outstanding <= 0 and not self.standalone:
            self.finish()

    def attach(self, prelude: list[bytes] | None = None) -> Attachment:
        """Attach a new connection, replacing (and ending) any current one."""
        self.detach_connection()
        attachment = Attachment(self, prelude or [])
        if self.finished:
            attachment.send.close()
        else:
            self._current = attachment
            if self._on_change is not None:
                self._on_change(+1)
        return attachment

    def release(self, attachment: Attachment) -> None:
        """The connection of ``attachment`` has ended (called by its writer)."""
        attachment.receive.close()
        if self._current is attachment:
            self._let_go()

    def detach_connection(self, retry_ms: int | None = None) -> None:
        """End the current connection but not the stream (SSE polling, SEP-1699;
        2025-11-25 basic/transports §sending messages to the server)."""
        if retry_ms is not None:
            self.retry_ms = retry_ms
        if self._current is not None:
            self._current.detached = True
            self._let_go()

    def finish(self) -> None:
        """No more events: the attached connection flushes and ends."""
        self.finished = True
        self._let_go()

    def _let_go(self) -> None:
        """Close the current connection's channel: it flushes what it holds and ends."""
        current, self._current = self._current, None
        if current is not None:
            current.send.close()
            if self._on_change is not None:
                self._on_change(-1)

    def replay_after(self, seq: int) -> list[bytes] | None:
        if self._store is None or seq > self._seq:
            # An id this stream never issued is unknown, not a resume point.
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


def drain_nowait(channel: trio.MemoryReceiveChannel[bytes]) -> tuple[bytes, bool]:
    """Everything queued on ``channel``, joined, and whether the channel has ended."""
    frames: list[bytes] = []
    while True:
        try:
            frames.append(channel.receive_nowait())
        except trio.WouldBlock:
            return b"".join(frames), False
        except trio.EndOfChannel:
            return b"".join(frames), True


async def pump(
    channel: trio.MemoryReceiveChannel[bytes],
    response: GuardedResponse,
    keepalive_interval: float | None,
    *,
    hold_last: bool = False,
) -> bytes:
    """The SSE writer of every stream: write the channel's frames until it ends (or the
    client is found gone), with a ``:`` comment after every ``keepalive_interval``
    seconds of silence.

    With ``hold_last``, the frames read together with the end of the channel are
    returned unwritten, so the caller can end the body with them in one message.
    """
    timeout = math.inf if keepalive_interval is None else keepalive_interval
    while not response.client_gone:
        frame = None
        with trio.move_on_after(timeout):
            try:
                frame = await channel.receive()
            except trio.EndOfChannel:
                return b""
        if frame is None:
            await response.chunk(sse.comment())
        else:
            # Write everything already queued in one chunk: fewer sends under load.
            queued, ended = drain_nowait(channel)
            data = frame + queued if queued else frame
            if ended and hold_last:
                return data
            await response.chunk(data)
    # A send found the client gone (or too slow to take data within the send timeout):
    # nothing more can reach it on this connection.
    return b""
