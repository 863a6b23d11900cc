"""Server-Sent Events framing and parsing (WHATWG HTML §9.2), sans-IO.

Events are framed once, as bytes, and the same bytes are stored for replay and written
to the wire.  :class:`SseParser` reads them back incrementally, for clients.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SseEvent", "SseParser", "SseTooLarge", "comment", "event", "retry"]


def _field(name: bytes, value: bytes) -> bytes:
    # A field value must not contain CR or LF: split into one field per line, which the
    # SSE parser joins again with LF (data) or which would be ambiguous (others).
    if b"\n" in value or b"\r" in value:
        if name != b"data":
            raise ValueError(f"SSE {name.decode()} field must be a single line")
        lines = value.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        return b"".join(b"data: " + line + b"\n" for line in lines)
    return name + b": " + value + b"\n"


def event(
    data: bytes,
    *,
    id: str | None = None,
    event: str | None = "message",
    retry: int | None = None,
) -> bytes:
    """Frame one event; ``data`` is typically one compact JSON-RPC message."""
    parts = []
    if id is not None:
        parts.append(_field(b"id", id.encode()))
    if event is not None:
        parts.append(_field(b"event", event.encode()))
    if retry is not None:
        parts.append(b"retry: %d\n" % retry)
    if b"\n" in data or b"\r" in data:
        parts.append(_field(b"data", data))
    else:
        parts.append(b"data: " + data + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def retry(milliseconds: int) -> bytes:
    """A lone ``retry:`` field: tells the client how long to wait before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


def comment(text: str = "") -> bytes:
    """A comment line; clients ignore it.  Used as a keep-alive."""
    if "\n" in text or "\r" in text:
        raise ValueError("SSE comment must be a single line")
    return b": " + text.encode() + b"\n\n"


# -- parsing (WHATWG HTML §9.2.6, "Interpreting an event stream") ---------------------------


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type, its data (lines joined with LF) and the stream's
    last event id at the time it was dispatched."""

    data: str
    event: str = "message"
    id: str | None = None


class SseTooLarge(ValueError):
    """An event (or a line) larger than the parser's ``max_event_size``."""


class SseParser:
    """An incremental ``text/event-stream`` parser.

    Feed it bytes as they arrive, in chunks of any size; it returns the events completed
    by each chunk.  Besides events it keeps the stream's state a client needs to
    reconnect: :attr:`last_event_id` and :attr:`retry` (the reconnection time in ms, as
    last set by the server), both also set by blocks that dispatch no event.

    Memory is bounded: a line, or an event's accumulated data, longer than
    ``max_event_size`` bytes raises :class:`SseTooLarge` rather than growing without end.
    """

    __slots__ = ("_buffer", "_data", "_data_size", "_event", "_max", "_started", "last_event_id", "retry")

    def __init__(self, *, max_event_size: int = 16 * 1024 * 1024, last_event_id: str | None = None) -> None:
        self._max = max_event_size
        self._buffer = bytearray()
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        #: Whether the first bytes were seen (a leading UTF-8 BOM is skipped once).
        self._started = False
        #: The last event id seen (kept across reconnections when given at creation).
        self.last_event_id = last_event_id
        #: The reconnection time the server asked for, in milliseconds, if it did.
        self.retry: int | None = None

    @property
    def pending(self) -> bool:
        """Whether an event has begun but not been terminated by a blank line."""
        return bool(self._buffer) or bool(self._data) or bool(self._event)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if not self._started and chunk:
            self._started = True
            chunk = chunk.removeprefix(b"\xef\xbb\xbf")
        self._buffer += chunk
        events: list[SseEvent] = []
        start = 0
        buffer = self._buffer
        while True:
            cr = buffer.find(b"\r", start)
            lf = buffer.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, after = lf, lf + 1
            elif cr + 1 == len(buffer):
                break  # a CR at the end of what we have may be the first half of a CRLF
            else:
                end, after = cr, cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
            event = self._line(bytes(buffer[start:end]).decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = after
        del buffer[:start]
        if len(buffer) > self._max:
            raise SseTooLarge(f"an SSE line is longer than {self._max} bytes")
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                raise SseTooLarge(f"an SSE event is larger than {self._max} bytes")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        # Any other field is ignored.
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event
        self._data, self._data_size, self._event = [], 0, ""
        if not data:
            return None  # a block without data sets state only (id, retry)
        return SseEvent("\n".join(data), event or "message", self.last_event_id)
