"""Server-Sent Events framing (WHATWG HTML §9.2), sans-IO.

Events are framed once, as bytes, and the same bytes are stored for replay and written
to the wire.
"""

from __future__ import annotations

__all__ = ["comment", "event", "retry"]


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
