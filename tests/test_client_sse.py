"""The sans-IO SSE parser (``protocol/sse.py``) the client reads streams with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_mcp_http.protocol import sse
from trio_mcp_http.protocol.sse import SseEvent, SseParser, SseTooLarge


def test_fields_line_endings_and_state() -> None:
    parser = SseParser()
    stream = (
        b"\xef\xbb\xbfid: 1\r\nretry: 250\r\ndata: a\rdata:b\n\n: keep-alive\n\nevent: other\ndata: x\n\n"
    )
    assert parser.feed(stream) == [SseEvent("a\nb", "message", "1"), SseEvent("x", "other", "1")]
    assert (parser.last_event_id, parser.retry) == ("1", 250)
    # A block without data dispatches nothing but still moves the state on.
    assert parser.feed(b"id: 2\nretry: x\nunknown: y\n\n") == []
    assert (parser.last_event_id, parser.retry) == ("2", 250)
    # An id with NUL is ignored (WHATWG HTML §9.2.6); an empty id resets it.
    parser.feed(b"id: a\x00b\n\n")
    assert parser.last_event_id == "2"
    parser.feed(b"id\n\n")
    assert parser.last_event_id == ""
    assert not parser.pending


def test_a_priming_event_has_empty_data() -> None:
    assert SseParser().feed(b"id: 0/0\ndata: \n\n") == [SseEvent("", "message", "0/0")]


def test_a_crlf_split_across_chunks_is_one_line_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.pending
    assert parser.feed(b"\n\r\n") == [SseEvent("a")]


def test_memory_is_bounded() -> None:
    parser = SseParser(max_event_size=64)
    with pytest.raises(SseTooLarge):
        parser.feed(b"data: " + b"x" * 100)  # an unterminated line
    parser = SseParser(max_event_size=64)
    with pytest.raises(SseTooLarge):
        parser.feed(b"data: " + b"x" * 40 + b"\n" + b"data: " + b"y" * 40 + b"\n")


@given(
    st.lists(st.tuples(st.text(max_size=20), st.sampled_from([None, "5", "a/b"])), max_size=5),
    st.integers(min_value=1, max_value=7),
)
def test_what_the_framer_writes_the_parser_reads_in_any_chunking(
    messages: list[tuple[str, str | None]], size: int
) -> None:
    wire = b"".join(sse.event(text.encode(), id=event_id) for text, event_id in messages)
    parser = SseParser()
    events = []
    for start in range(0, len(wire), size):
        events.extend(parser.feed(wire[start : start + size]))
    expected_ids: list[str | None] = []
    last: str | None = None
    for _text, event_id in messages:
        last = event_id if event_id is not None else last
        expected_ids.append(last)
    normalised = [t.replace("\r\n", "\n").replace("\r", "\n") for t, _ in messages]
    assert [e.data for e in events] == normalised
    assert [e.id for e in events] == expected_ids
    assert not parser.pending
