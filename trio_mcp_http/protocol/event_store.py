"""Event storage for resumable SSE streams (2025-11-25 basic/transports
§resumability and redelivery).

An :class:`EventStore` belongs to one session, so a ``Last-Event-ID`` can only ever
replay that session's events.  Event ids name their stream: ``"<stream>/<seq>"``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Protocol

from .errors import ConfigError

__all__ = ["EventStore", "InMemoryEventStore", "format_event_id", "parse_event_id"]


def format_event_id(stream: int, seq: int) -> str:
    return f"{stream}/{seq}"


# ASCII digits only (``str.isdigit`` also admits "²" and other digits ``int`` refuses),
# and no more of them than a 64-bit counter has: a resume point we never issued is
# unknown, not a reason to convert a 5,000-digit number.
_EVENT_ID = re.compile(r"([0-9]{1,19})/([0-9]{1,19})\Z")


def parse_event_id(event_id: str) -> tuple[int, int] | None:
    """Split an event id into (stream, seq); ``None`` if it is not one of ours."""
    match = _EVENT_ID.match(event_id)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


class EventStore(Protocol):
    """Storage of framed SSE events of one session, for replay after a disconnect.

    Methods are synchronous: they run on the publishing path, which never waits.
    """

    def append(self, stream: int, seq: int, frame: bytes) -> None:
        """Remember the framed event ``seq`` of ``stream``.

        The seqs of one stream are consecutive (1, 2, 3, ...), so a store can tell
        a gap left by eviction from the start of a stream.
        """

    def replay_after(self, stream: int, seq: int) -> list[bytes] | None:
        """The frames of ``stream`` after ``seq``, oldest first.

        ``None`` when the store can no longer replay from there (the stream is unknown
        or events after ``seq`` were evicted), so the caller can refuse the resume
        rather than deliver a stream with a hole in it.
        """

    def forget(self, stream: int) -> None:
        """Drop everything stored for ``stream``."""

    def stored_events(self) -> int:
        """How many events are held (for statistics)."""


class InMemoryEventStore:
    """A bounded in-memory :class:`EventStore`.

    Holds at most ``max_events_per_stream`` events of each stream (the oldest are
    evicted first), at most ``max_streams`` streams (the least recently written stream
    is dropped first) and at most ``max_bytes`` of frames in all: counts alone would
    let a session that publishes large events hold ``max_streams *
    max_events_per_stream`` of them.  Over the byte budget the oldest events are
    evicted first, whichever stream they belong to; an event larger than the whole
    budget is kept alone.
    """

    def __init__(
        self, *, max_events_per_stream: int = 256, max_streams: int = 32, max_bytes: int = 4 * 1024 * 1024
    ) -> None:
        if max_events_per_stream < 1 or max_streams < 1 or max_bytes < 1:
            raise ConfigError("event store bounds must be positive")
        self.max_events_per_stream = max_events_per_stream
        self.max_streams = max_streams
        self.max_bytes = max_bytes
        # Lists, not deques: a deque costs ~0.6 KB even for the two events of a typical
        # finished POST stream, and eviction (a bounded ``del events[0]``) is rare.
        # Each event is (seq, frame, order): ``order`` counts appends across streams,
        # so the oldest event of the store is the first of some stream's list.
        self._streams: OrderedDict[int, list[tuple[int, bytes, int]]] = OrderedDict()
        self._order = 0
        self._bytes = 0

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def append(self, stream: int, seq: int, frame: bytes) -> None:
        events = self._streams.get(stream)
        if events is None:
            events = self._streams[stream] = []
            while len(self._streams) > self.max_streams:
                self._drop(self._streams.popitem(last=False)[1])
        else:
            self._streams.move_to_end(stream)
        if len(events) >= self.max_events_per_stream:
            self._bytes -= len(events.pop(0)[1])
        size = len(frame)
        while self._bytes + size > self.max_bytes and self._bytes > 0:
            self._evict_oldest()
        self._order += 1
        events.append((seq, frame, self._order))
        self._bytes += size

    def _evict_oldest(self) -> None:
        oldest = min((events[0][2], stream) for stream, events in self._streams.items() if events)[1]
        events = self._streams[oldest]
        self._bytes -= len(events.pop(0)[1])
        if not events and oldest != next(reversed(self._streams)):
            # Emptied, and not the stream being written: forget it (a replay from it
            # would be refused anyway, as from any unknown stream).
            del self._streams[oldest]

    def _drop(self, events: list[tuple[int, bytes, int]]) -> None:
        self._bytes -= sum(len(frame) for _, frame, _ in events)

    def replay_after(self, stream: int, seq: int) -> list[bytes] | None:
        events = self._streams.get(stream)
        if not events:
            return None
        if events[0][0] > seq + 1:
            # Events after ``seq`` were evicted (or the whole stream was, and it has
            # been written again since): a replay would have a hole in it.
            return None
        return [frame for s, frame, _ in events if s > seq]

    def forget(self, stream: int) -> None:
        events = self._streams.pop(stream, None)
        if events is not None:
            self._drop(events)

    def stored_events(self) -> int:
        return sum(len(events) for events in self._streams.values())
