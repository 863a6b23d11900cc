"""Property-based fuzzing of the sans-IO core: JSON-RPC parsing and encoding, header
rules, DNS-rebinding checks, event ids and the event store, SSE framing, and the
2026-07-28 header decoding.

The contract under test is the same everywhere: whatever a client sends, the pure
functions either succeed or raise :class:`ProtocolError` with a 4xx status and a
JSON-RPC error code.  Any other exception would escape the transport as a 500.

Runs are deterministic (``derandomize``, no example database), so CI sees the same
examples on every run; the explicit ``@example`` cases are inputs found by fuzzing.
"""

from __future__ import annotations

import base64
import json
import math
import string
from typing import Any

import pytest
from helpers import SseParser
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trio_mcp_http import HostPolicy, InMemoryEventStore, ProtocolError
from trio_mcp_http.protocol import jsonrpc as _jsonrpc
from trio_mcp_http.protocol import sse as _sse
from trio_mcp_http.protocol.errors import HEADER_MISMATCH, INVALID_REQUEST, PARSE_ERROR
from trio_mcp_http.protocol.event_store import format_event_id, parse_event_id
from trio_mcp_http.protocol.http import RequestHeaders, accepts, is_valid_session_id, new_session_id
from trio_mcp_http.protocol.jsonrpc import Envelope, Kind, parse_body
from trio_mcp_http.protocol.stateless import _matches
from trio_mcp_http.protocol.stateless import header_value as _header_value

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def strict_json(data: bytes | str) -> Any:
    """``json.loads`` that refuses NaN/Infinity, which RFC 8259 does not allow."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(data, parse_constant=refuse)


# -- strategies --------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
valid_ids = st.integers(min_value=-(2**80), max_value=2**80) | st.text(max_size=16)
any_ids = valid_ids | st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
methods = st.sampled_from(
    ["initialize", "ping", "tools/list", "tools/call", "notifications/initialized", "x"]
) | st.text(max_size=12)


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["request", "notification", "result", "error"]))
    message: dict[str, Any] = {"jsonrpc": "2.0"}
    if kind in ("request", "notification"):
        message["method"] = draw(methods)
        if kind == "request":
            message["id"] = draw(valid_ids)
        if draw(st.booleans()):
            message["params"] = draw(json_objects)
    elif kind == "result":
        message["id"] = draw(valid_ids)
        message["result"] = draw(json_values)
    else:
        message["id"] = draw(valid_ids | st.none())
        error: dict[str, Any] = {"code": draw(st.integers(-(2**31), 2**31)), "message": draw(st.text())}
        if draw(st.booleans()):
            error["data"] = draw(json_values)
        message["error"] = error
    return message


@st.composite
def mutated_messages(draw: st.DrawFn) -> Any:
    """A valid message with a few keys dropped, replaced or added."""
    message = draw(valid_messages())
    keys = ["jsonrpc", "id", "method", "params", "result", "error"]
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        key = draw(st.sampled_from(keys) | st.text(max_size=6))
        if action == "drop":
            message.pop(key, None)
        else:
            message[key] = draw(json_values)
    return message


def check_protocol_error(
    exc: ProtocolError, statuses: tuple[int, ...] | None = None, codes: tuple[int, ...] | None = None
) -> None:
    assert 400 <= exc.status_hint < 500
    if statuses is not None:
        assert exc.status_hint in statuses
    if codes is not None:
        assert exc.code in codes
    assert isinstance(exc.code, int)
    assert isinstance(exc.message, str)
    assert exc.message
    # The error must be encodable as the body of the answer.
    strict_json(_jsonrpc.encode_error(None, exc.code, exc.message, exc.data))


def parse_or_error(body: bytes) -> Envelope | list[Envelope] | ProtocolError:
    try:
        return parse_body(body)
    except ProtocolError as exc:
        check_protocol_error(exc, (400,), (PARSE_ERROR, INVALID_REQUEST))
        return exc


def check_classified(env: Envelope) -> None:
    assert env.jsonrpc == "2.0"
    if env.kind is Kind.REQUEST:
        assert isinstance(env.method, str)
        assert type(env.request_id) in (int, str)
    elif env.kind is Kind.NOTIFICATION:
        assert isinstance(env.method, str)
        assert "id" not in env.model_fields_set
    else:
        assert env.method is None
        assert ("result" in env.model_fields_set) != (env.error is not None)
    if env.params is not None:
        assert isinstance(env.params, dict)


# -- JSON-RPC parsing ----------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
@example(b"\xef\xbb\xbf{}")
@example(b"[" * 5000 + b"]" * 5000)
@example(b"\x0b[]")
@example(b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":' + b"[" * 3000 + b"]" * 3000 + b"}}")
def test_parse_body_on_arbitrary_bytes(body: bytes) -> None:
    result = parse_or_error(body)
    if isinstance(result, list):
        assert result
        for env in result:
            check_classified(env)
    elif isinstance(result, Envelope):
        check_classified(result)


@FUZZ
@given(json_values)
def test_parse_body_on_arbitrary_json_values(value: Any) -> None:
    body = json.dumps(value).encode()
    result = parse_or_error(body)
    if isinstance(result, ProtocolError):
        # The body is JSON: never a parse error, always an invalid request.
        assert result.code == INVALID_REQUEST
    elif isinstance(result, list):
        assert isinstance(value, list)
        assert len(result) == len(value)
        for env in result:
            check_classified(env)
    else:
        assert isinstance(value, dict)
        check_classified(result)


@FUZZ
@given(mutated_messages(), st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_parse_body_on_mutated_messages(message: Any, padding: str) -> None:
    body = (padding + json.dumps(message) + padding).encode()
    result = parse_or_error(body)
    if isinstance(result, ProtocolError):
        assert result.code == INVALID_REQUEST
        return
    assert isinstance(result, Envelope)
    check_classified(result)
    # Whatever was accepted kept its id exactly, with its JSON type.
    if result.kind is not Kind.NOTIFICATION and result.id is not None:
        assert type(result.id) is type(message["id"])
        assert result.id == message["id"]


@FUZZ
@given(st.lists(mutated_messages() | valid_messages(), min_size=1, max_size=6))
def test_parse_body_on_batches(messages: list[Any]) -> None:
    result = parse_or_error(json.dumps(messages).encode())
    if isinstance(result, ProtocolError):
        assert result.code == INVALID_REQUEST
        return
    assert isinstance(result, list)
    assert len(result) == len(messages)
    for env in result:
        check_classified(env)


@FUZZ
@given(any_ids, methods)
def test_ids_keep_their_json_type(request_id: Any, method: str) -> None:
    """``1``, ``"1"``, ``1.0`` and ``true`` are never taken for one another."""
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method}).encode()
    result = parse_or_error(body)
    if type(request_id) is int or type(request_id) is str:
        assert isinstance(result, Envelope)
        assert result.kind is Kind.REQUEST
        assert type(result.request_id) is type(request_id)
        assert result.request_id == request_id
        # The answer echoes the id with its type.
        echoed = strict_json(_jsonrpc.encode_result(result.request_id, None))["id"]
        assert type(echoed) is type(request_id)
        assert echoed == request_id
    else:
        # null, booleans and non-integer numbers are not request ids here.
        assert isinstance(result, ProtocolError)
        assert result.code == INVALID_REQUEST


def test_ids_of_different_types_are_different_keys() -> None:
    bodies = [
        b'{"jsonrpc":"2.0","id":1,"method":"m"}',
        b'{"jsonrpc":"2.0","id":"1","method":"m"}',
        b'{"jsonrpc":"2.0","id":1.0,"method":"m"}',
        b'{"jsonrpc":"2.0","id":true,"method":"m"}',
        b'{"jsonrpc":"2.0","id":" 1","method":"m"}',
    ]
    accepted = []
    for body in bodies:
        result = parse_or_error(body)
        if isinstance(result, Envelope):
            accepted.append(result.request_id)
    assert accepted == [1, "1", " 1"]
    assert len({(type(i), i) for i in accepted}) == len(set(accepted)) == 3


@FUZZ
@given(valid_ids, methods, st.none() | json_objects)
def test_encode_request_round_trips(request_id: int | str, method: str, params: Any) -> None:
    parsed = parse_body(_jsonrpc.encode_request(request_id, method, params))
    assert isinstance(parsed, Envelope)
    assert parsed.kind is Kind.REQUEST
    assert type(parsed.request_id) is type(request_id)
    assert parsed.request_id == request_id
    assert parsed.method == method
    assert parsed.params == params


@FUZZ
@given(methods, st.none() | json_objects)
def test_encode_notification_round_trips(method: str, params: Any) -> None:
    parsed = parse_body(_jsonrpc.encode_notification(method, params))
    assert isinstance(parsed, Envelope)
    assert parsed.kind is Kind.NOTIFICATION
    assert parsed.method == method
    assert parsed.params == params


@FUZZ
@given(valid_ids, json_values)
def test_encode_result_round_trips(request_id: int | str, result: Any) -> None:
    encoded = _jsonrpc.encode_result(request_id, result)
    assert strict_json(encoded) == {"jsonrpc": "2.0", "id": request_id, "result": result}
    parsed = parse_body(encoded)
    assert isinstance(parsed, Envelope)
    assert parsed.kind is Kind.RESPONSE
    assert type(parsed.id) is type(request_id)
    assert parsed.id == request_id
    assert parsed.result == result


@FUZZ
@given(valid_ids | st.none(), st.integers(-(2**31), 2**31), st.text(), st.none() | json_values)
def test_encode_error_round_trips(request_id: Any, code: int, message: str, data: Any) -> None:
    encoded = _jsonrpc.encode_error(request_id, code, message, data)
    decoded = strict_json(encoded)
    assert decoded["jsonrpc"] == "2.0"
    assert decoded["id"] == request_id
    assert decoded["error"]["code"] == code
    assert decoded["error"]["message"] == message
    assert decoded["error"].get("data") == data
    parsed = parse_body(encoded)
    assert isinstance(parsed, Envelope)
    assert parsed.kind is Kind.RESPONSE
    assert parsed.error is not None
    assert parsed.error.code == code


@FUZZ
@given(st.lists(valid_ids, min_size=1, max_size=5, unique_by=lambda i: (type(i), i)))
def test_encode_batch_round_trips(ids: list[int | str]) -> None:
    parsed = parse_body(_jsonrpc.encode_batch([_jsonrpc.encode_result(i, i) for i in ids]))
    assert isinstance(parsed, list)
    assert [(type(m.id), m.id) for m in parsed] == [(type(i), i) for i in ids]


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
def test_accepted_bodies_can_be_echoed_as_json(token: bytes) -> None:
    """RFC 8259 has no NaN or Infinity.  A body carrying them (or a number that only
    fits as infinity) is either refused as a parse error, or what was accepted must
    still encode as JSON when a handler echoes it (progress tokens, arguments)."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":%s}}}' % token
    result = parse_or_error(body)
    if isinstance(result, ProtocolError):
        assert result.code == PARSE_ERROR
        return
    assert isinstance(result, Envelope)
    echoed = _jsonrpc.encode_notification("notifications/progress", {"progressToken": result.params})
    strict_json(echoed)


# -- HTTP header rules -------------------------------------------------------------------

header_bytes = st.binary(max_size=40)
latin1_text = st.text(st.characters(max_codepoint=0xFF), max_size=40)


@FUZZ
@given(st.lists(st.tuples(header_bytes, header_bytes), max_size=8))
def test_request_headers_never_raise_and_join_repeats(raw: list[tuple[bytes, bytes]]) -> None:
    headers = RequestHeaders(raw)
    expected: dict[str, list[str]] = {}
    for name, value in raw:
        expected.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    assert dict(headers.items()) == {k: ", ".join(v) for k, v in expected.items()}
    for name in expected:
        assert headers.get(name) == ", ".join(expected[name])


@FUZZ
@given(st.none() | st.text(max_size=60), st.sampled_from(["application/json", "text/event-stream"]))
def test_accepts_never_raises(accept: str | None, media_type: str) -> None:
    assert isinstance(accepts(accept, media_type), bool)
    if accept is None:
        assert accepts(accept, media_type)


@FUZZ
@given(
    st.lists(st.sampled_from(["text/html", "image/png", "*/*", "application/*", "text/*"]), max_size=3),
    st.sampled_from(["application/json", "text/event-stream"]),
    st.sampled_from(["", ";q=0.5", ";q=1", " ; charset=utf-8", ";Q=0.9"]),
    st.booleans(),
)
def test_accepts_finds_the_media_type_anywhere(
    others: list[str], media_type: str, parameters: str, upper: bool
) -> None:
    listed = media_type.upper() if upper else media_type
    assert accepts(", ".join([*others, listed + parameters]), media_type)


@pytest.mark.parametrize(
    "accept", ["application/json;q=0", "application/json; q=0.0", "text/html, application/json;q=0"]
)
def test_accepts_honours_q_zero(accept: str) -> None:
    """RFC 9110 §12.4.2: a weight of 0 means "not acceptable"."""
    assert not accepts(accept, "application/json")


@FUZZ
@given(st.text(max_size=40))
@example("")
@example("abc def")
@example("\x7f")
def test_session_id_validity_is_visible_ascii(value: str) -> None:
    expected = bool(value) and all(0x21 <= ord(c) <= 0x7E for c in value)
    assert is_valid_session_id(value) is expected


def test_new_session_ids_are_valid_and_distinct() -> None:
    ids = {new_session_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(is_valid_session_id(i) for i in ids)


url_parts = st.sampled_from(
    [
        "http://",
        "https://",
        "ftp://",
        "//",
        "[",
        "]",
        "::1",
        "[::1",
        "[::1]",
        "[abc]",
        "[v1.x]",
        "127.0.0.1",
        "localhost",
        ":",
        ":80",
        ":*",
        ":99999",
        ":x",
        "@",
        "/",
        "?",
        "#",
        "%",
        "\u00bd",
        "\u2100",
        "\uff0f",
        "evil.example",
        " ",
        "",
    ]
)
hosts_and_origins = st.none() | st.text(max_size=30) | st.lists(url_parts, max_size=6).map("".join)
policies = st.sampled_from(
    [
        HostPolicy(),
        HostPolicy(enabled=False),
        HostPolicy.for_bind("127.0.0.1", allowed_origins=["https://app.example:*", "http://[::1]:8000"]),
        HostPolicy.for_bind("0.0.0.0"),
    ]
)


@FUZZ
@given(policies, hosts_and_origins, hosts_and_origins)
@example(HostPolicy(), "127.0.0.1:8000", "http://[::1")
@example(HostPolicy(), "127.0.0.1:8000", "http://[abc]")
@example(HostPolicy(enabled=False), "127.0.0.1:8000", "http://[::1")
@example(HostPolicy(), "[::1", None)
@example(HostPolicy(), "", "")
@example(HostPolicy(), "localhost", "http://\u2100")
def test_host_policy_only_refuses_with_421_or_403(
    policy: HostPolicy, host: str | None, origin: str | None
) -> None:
    try:
        policy.check(host, origin)
    except ProtocolError as exc:
        check_protocol_error(exc, (421, 403) if origin is not None else (421,))


@FUZZ
@given(st.sampled_from(["127.0.0.1", "localhost", "[::1]"]), st.integers(1, 65535))
def test_host_policy_admits_loopback_origins(name: str, port: int) -> None:
    policy = HostPolicy.for_bind("127.0.0.1")
    policy.check(f"{name}:{port}", f"http://{name}:{port}")
    policy.check(name, None)
    with pytest.raises(ProtocolError) as info:
        policy.check(f"{name}:{port}", f"http://evil.example:{port}")
    assert info.value.status_hint == 403


# -- event ids and the event store ---------------------------------------------------------


@FUZZ
@given(
    st.text(max_size=30) | st.lists(st.sampled_from(["1", "0", "/", "\xb2", "\u0661", "-", " "])).map("".join)
)
@example("\xb2/1")
@example("1/\xb2")
@example("\u0661/1")
@example("1/" + "9" * 5000)
@example("9" * 5000 + "/1")
@example("/")
@example("1/2/3")
def test_parse_event_id_never_raises(event_id: str) -> None:
    parsed = parse_event_id(event_id)
    if parsed is None:
        return
    stream, seq = parsed
    assert type(stream) is int
    assert type(seq) is int
    assert stream >= 0
    assert seq >= 0
    # Only ids in the form we issue name a stream (no other digit scripts).
    assert set(event_id) <= set(string.digits + "/")


@FUZZ
@given(st.integers(0, 2**63), st.integers(0, 2**63))
def test_event_ids_round_trip(stream: int, seq: int) -> None:
    assert parse_event_id(format_event_id(stream, seq)) == (stream, seq)


class EventStoreMachine(RuleBasedStateMachine):
    """Arbitrary append/replay/forget sequences against a model that keeps everything.

    The store may forget, but a replay it does answer must be exactly the events after
    the given one (no hole, no duplicate), and it never holds more than its bounds.
    """

    @initialize(per_stream=st.integers(1, 4), streams=st.integers(1, 4))
    def setup(self, per_stream: int, streams: int) -> None:
        self.store = InMemoryEventStore(max_events_per_stream=per_stream, max_streams=streams)
        self.history: dict[int, list[tuple[int, bytes]]] = {}
        self.next_seq: dict[int, int] = {}

    @rule(stream=st.integers(0, 5), gap=st.integers(1, 3))
    def append(self, stream: int, gap: int) -> None:
        seq = self.next_seq.get(stream, 0) + gap
        self.next_seq[stream] = seq
        frame = b"%d/%d" % (stream, seq)
        self.store.append(stream, seq, frame)
        self.history.setdefault(stream, []).append((seq, frame))

    @rule(stream=st.integers(0, 5), back=st.integers(0, 8))
    def replay(self, stream: int, back: int) -> None:
        seq = max(0, self.next_seq.get(stream, 0) - back)
        frames = self.store.replay_after(stream, seq)
        if frames is None:
            return
        expected = [f for s, f in self.history.get(stream, []) if s > seq]
        assert frames == expected, (stream, seq, frames, expected)

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        stream = data.draw(st.sampled_from(sorted(self.history)))
        self.store.forget(stream)
        # A forgotten stream starts over: its old events can no longer be replayed.
        self.history[stream] = []

    @invariant()
    def bounded(self) -> None:
        store = self.store
        held = store.stored_events()
        assert held <= store.max_streams * store.max_events_per_stream
        assert len(store._streams) <= store.max_streams
        assert all(len(events) <= store.max_events_per_stream for events in store._streams.values())


EventStoreMachine.TestCase.settings = settings(FUZZ, max_examples=60, stateful_step_count=20)
test_event_store_state_machine = EventStoreMachine.TestCase


def test_event_store_refuses_a_replay_of_a_stream_evicted_and_written_again() -> None:
    """A stream dropped as least recently written, then written again, must not be
    replayed from before the drop: the events in between are gone."""
    store = InMemoryEventStore(max_events_per_stream=8, max_streams=1)
    store.append(0, 1, b"a")
    store.append(1, 1, b"b")  # evicts stream 0
    store.append(0, 2, b"c")
    assert store.replay_after(0, 0) in (None, [b"a", b"c"])


# -- SSE framing -------------------------------------------------------------------------

single_line = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)


@FUZZ
@given(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
    | st.lists(st.sampled_from(["a", "\n", "\r", "\r\n", " ", ":", "data: x", ""])).map("".join),
    st.none() | single_line,
    st.none() | single_line,
    st.none() | st.integers(0, 10**6),
    st.lists(st.integers(1, 7), max_size=4),
)
@example("x\r", None, "message", None, [])
@example("\r\n\r\n", "1/1", None, 5, [1])
def test_sse_event_frames_read_back_to_the_same_data(
    text: str, event_id: str | None, event_name: str | None, retry_ms: int | None, cuts: list[int]
) -> None:
    frame = _sse.event(text.encode(), id=event_id, event=event_name, retry=retry_ms)
    assert frame.endswith(b"\n\n")
    # Fed in arbitrary pieces, the frame is exactly one block, fully terminated.
    parser = SseParser()
    blocks = []
    start = 0
    for cut in cuts:
        blocks += parser.feed(frame[start : start + cut])
        start += cut
    blocks += parser.feed(frame[start:])
    assert not parser.pending
    assert len(blocks) == 1
    block = blocks[0]
    # SSE has only LF line ends inside data: CR and CRLF arrive as LF.
    assert block.data == text.replace("\r\n", "\n").replace("\r", "\n")
    assert block.id == event_id
    assert block.event == event_name
    assert block.retry == retry_ms


@FUZZ
@given(st.text(max_size=20), st.text(max_size=20))
def test_sse_single_line_fields_refuse_line_breaks(event_id: str, event_name: str) -> None:
    try:
        frame = _sse.event(b"{}", id=event_id, event=event_name)
    except ValueError:
        assert any(c in event_id + event_name for c in "\r\n")
        return
    blocks = SseParser().feed(frame)
    assert len(blocks) == 1
    assert (blocks[0].id, blocks[0].event, blocks[0].data) == (event_id, event_name, "{}")


@FUZZ
@given(single_line, st.integers(0, 10**9))
def test_sse_comments_and_retry_are_inert(text: str, milliseconds: int) -> None:
    blocks = SseParser().feed(_sse.comment(text) + _sse.retry(milliseconds) + _sse.event(b"1"))
    assert [b.data for b in blocks if b.data is not None] == ["1"]
    assert [b.retry for b in blocks if b.retry is not None] == [milliseconds]


# -- 2026-07-28 header values (SEP-2243) ---------------------------------------------------


@FUZZ
@given(
    st.none()
    | latin1_text
    | st.text(max_size=40)
    | st.builds(lambda s: "=?base64?" + s + "?=", st.text(string.ascii_letters + "+/=_-*?", max_size=16))
)
@example("=?base64??=")
@example("=?base64?=")
@example("=?base64?/w==?=")
@example("=?base64?AAA?=")
@example("=?base64?A===?=")
@example("\t tools/call \t")
@example("caf\xe9")
def test_header_value_only_raises_protocol_errors(raw: str | None) -> None:
    try:
        value = _header_value(raw)
    except ProtocolError as exc:
        check_protocol_error(exc, (400,), (HEADER_MISMATCH,))
        return
    if raw is None:
        assert value is None
    else:
        assert isinstance(value, str)


@FUZZ
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_header_value_base64_round_trips(text: str) -> None:
    encoded = "=?base64?" + base64.b64encode(text.encode()).decode() + "?="
    assert _header_value(encoded) == text
    assert _header_value(" \t" + encoded + "\t ") == text


@FUZZ
@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40))
def test_header_value_plain_visible_ascii_is_kept(text: str) -> None:
    assume(not (text.startswith("=?base64?") and text.endswith("?=")))
    assert _header_value(text) == text


@FUZZ
@given(
    latin1_text,
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=10),
)
@example("1", 10**400)
@example("inf", 10**400)
@example("nan", math.nan)
def test_param_header_matching_never_raises(header: str, value: Any) -> None:
    """``Mcp-Param-*`` against an argument of any JSON type: a mismatch, never a crash
    (an exception here would be a 500 instead of a -32020 answer)."""
    assert isinstance(_matches(header, value), bool)
