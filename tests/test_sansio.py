"""The synchronous protocol core, tested without a server: JSON-RPC envelopes, SSE
framing, header rules, session ids, DNS-rebinding policy, the event store's bounds."""

from __future__ import annotations

import json
import re
import tracemalloc

import pytest
from helpers import SseParser

from trio_mcp_http import HostPolicy, InMemoryEventStore, ProtocolError
from trio_mcp_http.protocol import jsonrpc as _jsonrpc
from trio_mcp_http.protocol import sse as _sse
from trio_mcp_http.protocol.event_store import format_event_id, parse_event_id
from trio_mcp_http.protocol.http import (
    RequestHeaders,
    accepts,
    is_json_content_type,
    is_valid_session_id,
    new_session_id,
)
from trio_mcp_http.protocol.jsonrpc import Kind, parse_body

# -- JSON-RPC ----------------------------------------------------------------------------


def test_ids_1_and_string_1_are_different_requests() -> None:
    as_int = parse_body(b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
    as_str = parse_body(b'{"jsonrpc":"2.0","id":"1","method":"ping"}')
    assert not isinstance(as_int, list)
    assert not isinstance(as_str, list)
    assert as_int.kind is Kind.REQUEST
    assert as_str.kind is Kind.REQUEST
    assert as_int.request_id == 1
    assert type(as_int.request_id) is int
    assert as_str.request_id == "1"
    assert type(as_str.request_id) is str
    assert as_int.request_id != as_str.request_id
    # Keys of the in-flight table stay distinct, and answers echo the original type.
    assert len({as_int.request_id: "a", as_str.request_id: "b"}) == 2
    assert json.loads(_jsonrpc.encode_result(as_int.request_id, {}))["id"] == 1
    assert json.loads(_jsonrpc.encode_result(as_str.request_id, {}))["id"] == "1"


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json", b'{"jsonrpc":"2.0","id":1,"method":"ping"', b"\xff\xfe{}", b"[1,", b""],
)
def test_bad_json_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_body(body)
    assert info.value.code == -32700
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "method": 5},
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": True, "method": "ping"},
        {"jsonrpc": "2.0", "id": [1], "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1, 2]},
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": None},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "result": {}, "error": {"code": 1, "message": "x"}},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": "x", "message": "x"}},
        {"jsonrpc": "2.0"},
        5,
        "ping",
        [],
        [{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "method": 7}],
    ],
)
def test_invalid_envelopes_are_invalid_requests(message: object) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_body(json.dumps(message).encode())
    assert info.value.code == -32600
    assert info.value.status_hint == 400


def test_classification_of_single_messages() -> None:
    request = parse_body(b'{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{}}')
    note = parse_body(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    result = parse_body(b'{"jsonrpc":"2.0","id":3,"result":{"ok":true}}')
    error = parse_body(b'{"jsonrpc":"2.0","id":4,"error":{"code":-1,"message":"no"}}')
    error_no_id = parse_body(b'{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"no"}}')
    kinds = [m.kind for m in (request, note, result, error, error_no_id)]  # type: ignore[union-attr]
    assert kinds == [Kind.REQUEST, Kind.NOTIFICATION, Kind.RESPONSE, Kind.RESPONSE, Kind.RESPONSE]
    # A request keeps unknown members; leading whitespace does not confuse the parser.
    spaced = parse_body(b'  \n {"jsonrpc":"2.0","id":9,"method":"x","extra":1}')
    assert not isinstance(spaced, list)
    assert spaced.kind is Kind.REQUEST


def test_batches_parse_into_lists_in_order() -> None:
    batch = parse_body(
        b' [{"jsonrpc":"2.0","id":1,"method":"tools/list"},'
        b'{"jsonrpc":"2.0","method":"notifications/x"},'
        b'{"jsonrpc":"2.0","id":"1","method":"ping"},'
        b'{"jsonrpc":"2.0","id":7,"result":{}}]'
    )
    assert isinstance(batch, list)
    assert [(m.kind, m.id) for m in batch] == [
        (Kind.REQUEST, 1),
        (Kind.NOTIFICATION, None),
        (Kind.REQUEST, "1"),
        (Kind.RESPONSE, 7),
    ]
    assert json.loads(_jsonrpc.encode_batch([b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]


def test_error_encoding() -> None:
    with_id = json.loads(_jsonrpc.encode_error("x", -32601, "Method not found", {"m": "q"}))
    assert with_id == {
        "jsonrpc": "2.0",
        "id": "x",
        "error": {"code": -32601, "message": "Method not found", "data": {"m": "q"}},
    }
    # An unreadable id is answered with null (JSON-RPC 2.0 §5).
    without = json.loads(_jsonrpc.encode_error(None, -32700, "Parse error"))
    assert without["id"] is None
    assert without["error"] == {"code": -32700, "message": "Parse error"}
    assert json.loads(_jsonrpc.encode_notification("n")) == {"jsonrpc": "2.0", "method": "n"}
    assert json.loads(_jsonrpc.encode_request(3, "ping")) == {"jsonrpc": "2.0", "id": 3, "method": "ping"}


def test_utf8_round_trips_byte_exact() -> None:
    parsed = parse_body('{"jsonrpc":"2.0","id":1,"method":"echo","params":{"t":"世界"}}'.encode())
    assert not isinstance(parsed, list)
    assert parsed.params == {"t": "世界"}
    encoded = _jsonrpc.encode_result(1, {"t": "世界"})
    assert "世界".encode() in encoded


# -- SSE framing -------------------------------------------------------------------------


def test_sse_event_framing() -> None:
    assert _sse.event(b'{"a":1}', id="2/5") == b'id: 2/5\nevent: message\ndata: {"a":1}\n\n'
    assert _sse.event(b"") == b"event: message\ndata: \n\n"
    assert _sse.event(b"x", event=None, retry=500) == b"retry: 500\ndata: x\n\n"
    assert _sse.retry(1000) == b"retry: 1000\n\n"
    assert _sse.comment() == b": \n\n"
    assert _sse.comment("keep-alive") == b": keep-alive\n\n"


def test_sse_multiline_data_round_trips() -> None:
    frame = _sse.event(b"line one\nline two\r\nline three\rfour", id="1/1")
    assert frame.count(b"data: ") == 4
    assert frame.endswith(b"\n\n")
    assert b"\r" not in frame
    [block] = SseParser().feed(frame)
    assert block.data == "line one\nline two\nline three\nfour"
    assert block.id == "1/1"
    assert block.event == "message"


def test_sse_frames_parse_back_when_split_anywhere() -> None:
    frames = [_sse.event(json.dumps({"i": i}).encode(), id=f"1/{i}") for i in range(20)]
    wire = b"".join(frames) + _sse.comment("ping") + _sse.retry(250)
    for step in (1, 3, 7, 64):
        parser = SseParser()
        blocks = []
        for start in range(0, len(wire), step):
            blocks += parser.feed(wire[start : start + step])
        assert [b.message for b in blocks[:20]] == [{"i": i} for i in range(20)]
        assert [b.id for b in blocks[:20]] == [f"1/{i}" for i in range(20)]
        assert blocks[20].comment == "ping"
        assert blocks[20].data is None
        assert blocks[21].retry == 250
        assert blocks[21].data is None
        assert not parser.pending


def test_sse_single_line_fields_refuse_newlines() -> None:
    with pytest.raises(ValueError, match="single line"):
        _sse.event(b"x", id="1\n2")
    with pytest.raises(ValueError, match="single line"):
        _sse.event(b"x", event="a\rb")
    with pytest.raises(ValueError, match="single line"):
        _sse.comment("a\nb")


def test_event_ids_name_their_stream() -> None:
    assert format_event_id(3, 17) == "3/17"
    assert parse_event_id("3/17") == (3, 17)
    for bad in ("", "3", "3/", "/3", "a/1", "1/b", "-1/2", "1/2/3", " 1/2"):
        assert parse_event_id(bad) is None, bad


# -- header rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "json_ok", "sse_ok"),
    [
        (None, True, True),
        ("application/json, text/event-stream", True, True),
        ("application/json", True, False),
        ("text/event-stream", False, True),
        ("*/*", True, True),
        ("application/*;q=0.5, text/*", True, True),
        ("Application/JSON; q=1 ,TEXT/EVENT-STREAM", True, True),
        ("text/html", False, False),
        ("", False, False),
    ],
)
def test_accept_header(accept: str | None, json_ok: bool, sse_ok: bool) -> None:
    assert accepts(accept, "application/json") is json_ok
    assert accepts(accept, "text/event-stream") is sse_ok


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        (" application/json ;charset=UTF-8", True),
        ("text/plain", False),
        ("application/jsonx", False),
        ("application/x-www-form-urlencoded", False),
        (None, False),
        ("", False),
    ],
)
def test_content_type_must_be_json(content_type: str | None, ok: bool) -> None:
    assert is_json_content_type(content_type) is ok


def test_request_headers_are_case_insensitive_and_joined() -> None:
    headers = RequestHeaders(
        [(b"MCP-Session-Id", b"abc"), (b"Accept", b"application/json"), (b"accept", b"text/event-stream")]
    )
    assert headers.get("mcp-session-id") == "abc"
    assert headers.get("accept") == "application/json, text/event-stream"
    assert headers.get("missing") is None


# -- session ids -------------------------------------------------------------------------


def test_session_ids_are_visible_ascii_and_unique() -> None:
    ids = [new_session_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for session_id in ids:
        assert re.fullmatch(r"[\x21-\x7E]+", session_id), session_id
        assert is_valid_session_id(session_id)
        # 192 random bits: long enough not to be guessed.
        assert len(session_id) >= 32
    # No shared prefix that would hint at a counter.
    assert len({i[:4] for i in ids}) > 1000


@pytest.mark.parametrize("value", ["", "a b", "tab\there", "\x7f", "caf\u00e9", "new\nline", "\x20"])
def test_session_id_charset_rejects_invisible_characters(value: str) -> None:
    assert not is_valid_session_id(value)


def test_session_id_charset_accepts_all_visible_ascii() -> None:
    assert is_valid_session_id("".join(chr(c) for c in range(0x21, 0x7F)))


# -- DNS-rebinding protection ------------------------------------------------------------


def _status(policy: HostPolicy, host: str | None, origin: str | None) -> int:
    try:
        policy.check(host, origin)
    except ProtocolError as exc:
        return exc.status_hint
    return 200


def test_host_policy_on_loopback() -> None:
    policy = HostPolicy.for_bind("127.0.0.1")
    assert policy.enabled
    for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1", "[::1]:8000", "127.0.0.1"):
        assert _status(policy, host, None) == 200, host
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io:80"):
        assert _status(policy, host, None) == 421, host
    # Origin: absent is fine (non-browser clients), present must be a local origin.
    assert _status(policy, "127.0.0.1:8000", "http://localhost:8000") == 200
    assert _status(policy, "127.0.0.1:8000", "http://127.0.0.1:3000") == 200
    for origin in (
        "http://evil.example",
        "https://evil.example:8000",
        "null",
        "file://",
        "http://localhost@evil.example",
    ):
        assert _status(policy, "127.0.0.1:8000", origin) == 403, origin
    # A bad Host is refused before the Origin is looked at.
    assert _status(policy, "evil.example", "http://evil.example") == 421


def test_host_policy_trusts_configured_names() -> None:
    policy = HostPolicy.for_bind(
        "127.0.0.1",
        allowed_hosts=["mcp.example.com:443"],
        allowed_origins=["https://app.example.com", "http://dev.example.com:*"],
    )
    assert _status(policy, "mcp.example.com", "https://app.example.com") == 200
    assert _status(policy, "mcp.example.com", "https://APP.example.com/") == 200
    assert _status(policy, "mcp.example.com", "http://dev.example.com:5173") == 200
    assert _status(policy, "mcp.example.com", "https://app.example.com:8443") == 403
    assert _status(policy, "other.example.com", None) == 421


def test_host_policy_off_for_public_binds_still_checks_origin() -> None:
    policy = HostPolicy.for_bind("192.0.2.10")
    assert not policy.enabled
    assert _status(policy, "anything.example:8000", None) == 200
    # With protection off the Origin must still be the request's own (2025-11-25
    # basic/transports §security warning).
    assert _status(policy, "mcp.example:8000", "http://mcp.example:8000") == 200
    assert _status(policy, "mcp.example:8000", "http://evil.example") == 403


def test_host_policy_accepts_the_bound_loopback_address() -> None:
    # Binding to another loopback address turns protection on; clients that connect to
    # that very address must not be refused as misdirected.
    policy = HostPolicy.for_bind("127.0.0.2")
    assert policy.enabled
    assert _status(policy, "127.0.0.2:8000", None) == 200
    assert _status(policy, "127.0.0.2:8000", "http://127.0.0.2:8000") == 200
    assert _status(policy, "evil.example", None) == 421


# -- the event store ---------------------------------------------------------------------


def _frame(stream: int, seq: int, size: int = 200) -> bytes:
    return _sse.event(b"x" * size, id=format_event_id(stream, seq))


def test_event_store_replays_after_an_id() -> None:
    store = InMemoryEventStore(max_events_per_stream=10, max_streams=4)
    for seq in range(1, 6):
        store.append(1, seq, _frame(1, seq))
        store.append(2, seq, _frame(2, seq))
    assert store.replay_after(1, 2) == [_frame(1, 3), _frame(1, 4), _frame(1, 5)]
    assert store.replay_after(1, 5) == []
    assert store.replay_after(1, 0) == [_frame(1, s) for s in range(1, 6)]
    # Never another stream's events.
    assert all(b"id: 2/" not in f for f in store.replay_after(1, 0) or [])
    assert store.replay_after(3, 0) is None
    store.forget(1)
    assert store.replay_after(1, 0) is None
    assert store.stored_events() == 5


def test_event_store_refuses_a_resume_with_a_hole() -> None:
    store = InMemoryEventStore(max_events_per_stream=3, max_streams=4)
    for seq in range(1, 6):
        store.append(1, seq, _frame(1, seq))
    # Holds 3, 4, 5: resuming after 2 is complete, after 1 would skip event 2.
    assert store.replay_after(1, 2) == [_frame(1, 3), _frame(1, 4), _frame(1, 5)]
    assert store.replay_after(1, 1) is None
    assert store.replay_after(1, 0) is None


def test_event_store_count_is_bounded_under_a_long_stream() -> None:
    store = InMemoryEventStore(max_events_per_stream=8, max_streams=2)
    for seq in range(1, 20_001):
        store.append(1, seq, _frame(1, seq))
        assert store.stored_events() <= 8
    assert store.replay_after(1, 19_992) == [_frame(1, s) for s in range(19_993, 20_001)]
    assert store.replay_after(1, 19_991) is None


def test_event_store_streams_are_bounded_too() -> None:
    store = InMemoryEventStore(max_events_per_stream=4, max_streams=3)
    for stream in range(1, 5_001):
        for seq in range(1, 6):
            store.append(stream, seq, _frame(stream, seq, 10))
        assert store.stored_events() <= 12
    # Only the three most recently written streams are left; the bookkeeping of
    # evictions is dropped with them.
    assert store.replay_after(5_000, 1) is not None
    assert store.replay_after(4_998, 1) is not None
    assert store.replay_after(4_997, 1) is None
    assert len(store._streams) == 3


def test_event_store_memory_stays_within_its_bound() -> None:
    """Memory held after 40 000 events equals memory held after 500: the bound, not the length."""
    store = InMemoryEventStore(max_events_per_stream=16, max_streams=2)
    tracemalloc.start()
    try:
        for seq in range(1, 501):
            store.append(1, seq, _frame(1, seq, 1000))
            store.append(2, seq, _frame(2, seq, 1000))
        early, _ = tracemalloc.get_traced_memory()
        for seq in range(501, 20_001):
            store.append(1, seq, _frame(1, seq, 1000))
            store.append(2, seq, _frame(2, seq, 1000))
        late, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bound = 2 * 16 * len(_frame(1, 20_000, 1000))
    assert store.stored_events() == 32
    # Growth between the two points is noise, far below even one stored frame per 1000 events.
    assert late - early < 4 * 1024
    assert peak - early < bound


def test_event_store_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        InMemoryEventStore(max_events_per_stream=0)
    with pytest.raises(ValueError, match="positive"):
        InMemoryEventStore(max_streams=0)


def test_host_policy_requires_a_host_when_protection_is_on() -> None:
    # HTTP/1.0 may omit Host; that must not skip the DNS-rebinding check.
    policy = HostPolicy.for_bind("127.0.0.1")
    assert _status(policy, None, None) == 421
    assert _status(policy, "", None) == 421
    assert _status(policy, "localhost:80:80", None) == 421
    assert _status(policy, "user@localhost", None) == 421
    assert _status(HostPolicy.for_bind("192.0.2.10"), None, None) == 200


def test_host_policy_origin_must_match_scheme_host_and_port() -> None:
    policy = HostPolicy.for_bind("192.0.2.10", enabled=True, allowed_hosts=["mcp.example.com"])
    # Same origin as the Host the request names, ports defaulting by scheme.
    assert _status(policy, "mcp.example.com", "https://mcp.example.com") == 200
    assert _status(policy, "mcp.example.com", "http://mcp.example.com") == 200
    assert _status(policy, "mcp.example.com:8443", "https://mcp.example.com:8443") == 200
    # An allowed Host name does not admit every origin on that name.
    for origin in ("http://mcp.example.com:666", "https://mcp.example.com:8443", "ftp://mcp.example.com"):
        assert _status(policy, "mcp.example.com", origin) == 403, origin


def test_host_policy_refuses_malformed_origins_with_403() -> None:
    policy = HostPolicy.for_bind("127.0.0.1")
    for origin in (
        "http://[::1",
        "http://[abc]",
        "http://[::1]:99999",
        "http://",
        "http:///",
        "http://a b",
        "",
    ):
        assert _status(policy, "127.0.0.1:8000", origin) == 403, origin
    off = HostPolicy.for_bind("192.0.2.10")
    for host in ("[::1", "a b", "x:y:z"):
        assert _status(off, host, "http://[::1") == 403, host


def test_host_policy_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="not an origin"):
        HostPolicy(allowed_origins=frozenset({"mcp.example.com"}))
    with pytest.raises(ValueError, match="not a host name"):
        HostPolicy(allowed_hosts=frozenset({"http://mcp.example.com"}))
    policy = HostPolicy(allowed_origins=frozenset({"HTTPS://App.Example.com:443/"}))
    assert policy.allowed_origins == frozenset({"https://app.example.com:443"})


@pytest.mark.parametrize(
    "event_id", ["\xb2/1", "1/\xb2", "1/" + "9" * 5000, "9" * 4301 + "/1", "\u0661/\u0661", "-1/2", "1/2/3"]
)
def test_unusable_event_ids_are_unknown(event_id: str) -> None:
    assert parse_event_id(event_id) is None


def test_a_wildcard_bind_protects_the_connections_that_arrive_on_loopback() -> None:
    """Listening on every address: a browser on this machine reaches the server over
    loopback (where DNS rebinding strikes), other hosts over the network."""
    policy = HostPolicy.for_bind("0.0.0.0", allowed_hosts=["mcp.example.com"])
    assert policy.enabled is None

    def status(host: str | None, origin: str | None, local: str | None) -> int:
        try:
            policy.check(host, origin, local)
        except ProtocolError as exc:
            return exc.status_hint
        return 200

    assert status("evil.example", None, "127.0.0.1") == 421
    assert status("evil.example", None, "::1") == 421
    assert status("evil.example", None, None) == 421  # a Unix socket is local
    assert status("localhost:8000", "http://localhost:5173", "127.0.0.1") == 200
    assert status("mcp.example.com", None, "127.0.0.1") == 200
    # From the network: any Host, but the Origin must still be the request's own.
    assert status("anything.example", None, "192.0.2.10") == 200
    assert status("anything.example", "http://evil.example", "192.0.2.10") == 403
    # A Host that is the very address the connection arrived on cannot be rebound.
    assert status("127.0.0.2:8000", None, "127.0.0.2") == 200
    assert status("[::1]:8000", None, "::1") == 200
    # A dual-stack socket reports an IPv4 peer's local address as IPv4-mapped IPv6.
    assert status("evil.example", None, "::ffff:127.0.0.1") == 421
    assert status("127.0.0.1:8000", None, "::ffff:127.0.0.1") == 200
    assert status("evil.example", None, "::ffff:192.0.2.10") == 200
