"""How a request is answered, decided without a server: the sans-IO checks of
``protocol/decisions.py`` and ``protocol/stateless.py``."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from trio_mcp_http import ProtocolError
from trio_mcp_http.protocol import decisions, stateless
from trio_mcp_http.protocol.decisions import Era
from trio_mcp_http.protocol.http import RequestHeaders
from trio_mcp_http.protocol.jsonrpc import parse_body


def headers(**values: str) -> RequestHeaders:
    return RequestHeaders((k.replace("_", "-").encode(), v.encode()) for k, v in values.items())


def parsed(body: Any) -> Any:
    return parse_body(json.dumps(body).encode())


PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
JSON = "application/json"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def status_of(check: Any, *args: Any, **kwargs: Any) -> tuple[int, int] | None:
    try:
        check(*args, **kwargs)
    except ProtocolError as exc:
        return exc.status_hint, exc.code
    return None


@pytest.mark.parametrize(
    ("body", "hdrs", "era"),
    [
        ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {}, Era.SESSION),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"mcp_protocol_version": "2025-06-18"}, Era.SESSION),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"mcp_protocol_version": "2026-07-28"},
            Era.STATELESS,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"mcp_protocol_version": "2099-01-01"},
            Era.STATELESS,
        ),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": MODERN_META}}, {}, Era.STATELESS),
        # A session id always means the session era, whatever the body says.
        (
            {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": MODERN_META}},
            {"mcp_session_id": "abc"},
            Era.SESSION,
        ),
        # Batches exist only in 2025-03-26.
        (
            [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
            {"mcp_protocol_version": "2026-07-28"},
            Era.SESSION,
        ),
    ],
)
def test_the_era_of_a_request(body: Any, hdrs: dict[str, str], era: Era) -> None:
    assert decisions.era_of(parsed(body), headers(**hdrs)) is era


def test_header_checks_answer_with_their_status() -> None:
    assert status_of(decisions.check_content_type, headers(content_type="text/plain")) == (415, -32600)
    assert (
        status_of(decisions.check_content_type, headers(content_type="application/json; charset=utf-8"))
        is None
    )
    assert status_of(decisions.check_declared_size, headers(content_length="101"), 100) == (413, -32600)
    assert status_of(decisions.check_declared_size, headers(content_length="\u0661\u0660"), 5) is None
    both = "application/json, text/event-stream"
    assert status_of(decisions.check_post_accept, headers(accept=both), json_response=False) is None
    assert status_of(
        decisions.check_post_accept, headers(accept="application/json"), json_response=False
    ) == (
        406,
        -32600,
    )
    assert (
        status_of(decisions.check_post_accept, headers(accept="application/json"), json_response=True) is None
    )
    assert status_of(decisions.check_stream_accept, headers(accept="application/json")) == (406, -32600)
    assert status_of(decisions.check_session_version, headers(mcp_protocol_version="2025-03-26")) is None
    assert status_of(decisions.check_session_version, headers(mcp_protocol_version="1999")) == (400, -32600)
    assert status_of(decisions.session_id_of, headers()) == (400, -32600)
    assert status_of(decisions.session_id_of, headers(mcp_session_id="a b")) == (400, -32600)
    assert decisions.session_id_of(headers(mcp_session_id="abc")) == "abc"


def test_initialize_comes_alone() -> None:
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}
    assert decisions.split_initialize(parsed(PING)) is None
    found = decisions.split_initialize(parsed(init))
    assert found is not None
    assert found.method == "initialize"
    # Never in a batch, not even alone in one.
    assert status_of(decisions.split_initialize, parsed([init, PING])) == (400, -32600)
    assert status_of(decisions.split_initialize, parsed([init])) == (400, -32600)


def modern(method: str, params: dict[str, Any] | None = None, **hdrs: str) -> tuple[Any, RequestHeaders]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {}), "_meta": MODERN_META}}
    base = {"accept": "application/json", "mcp_protocol_version": "2026-07-28", "mcp_method": method}
    return parsed(body), headers(**{**base, **hdrs})


def no_annotations(name: str) -> list[tuple[tuple[str, ...], str]]:
    return []


def test_stateless_validation_in_order() -> None:
    message, hdrs = modern("tools/list")
    assert stateless.validate(message, hdrs, no_annotations) == MODERN_META
    # Mcp-Method must mirror the body; Mcp-Name the tool's name (SEP-2243).
    message, hdrs = modern("tools/list", mcp_method="tools/call")
    assert status_of(stateless.validate, message, hdrs, no_annotations) == (400, -32020)
    message, hdrs = modern("tools/call", {"name": "echo"}, mcp_name="other")
    assert status_of(stateless.validate, message, hdrs, no_annotations) == (400, -32020)
    message, hdrs = modern("tools/call", {"name": "echo"}, mcp_name="echo")
    assert stateless.validate(message, hdrs, no_annotations) is not None
    # Unknown methods are 404; an unsupported version names the supported ones.
    message, hdrs = modern("initialize")
    assert status_of(stateless.validate, message, hdrs, no_annotations) == (404, -32601)
    message, hdrs = modern("tools/list", accept="text/html")
    assert status_of(stateless.validate, message, hdrs, no_annotations) == (406, -32600)


def test_param_headers_are_compared_to_the_arguments() -> None:
    def annotated(name: str) -> list[tuple[tuple[str, ...], str]]:
        return [(("region",), "Region"), (("count",), "Count")]

    args = {"name": "t", "arguments": {"region": "eu-west", "count": 10}}
    message, hdrs = modern("tools/call", args, mcp_name="t", mcp_param_region="eu-west", mcp_param_count="10")
    assert stateless.validate(message, hdrs, annotated) is not None
    encoded = "=?base64?" + base64.b64encode(b"eu-west").decode() + "?="
    message, hdrs = modern("tools/call", args, mcp_name="t", mcp_param_region=encoded, mcp_param_count="10.0")
    assert stateless.validate(message, hdrs, annotated) is not None
    message, hdrs = modern("tools/call", args, mcp_name="t", mcp_param_region="us", mcp_param_count="10")
    assert status_of(stateless.validate, message, hdrs, annotated) == (400, -32020)
    huge = {"name": "t", "arguments": {"count": 10**400}}
    message, hdrs = modern("tools/call", huge, mcp_name="t", mcp_param_count="1e400")
    assert status_of(stateless.validate, message, hdrs, annotated) == (400, -32020)


def test_request_state_is_bound_to_its_request() -> None:
    state = stateless.RequestState(b"k" * 32)
    params = {"name": "book"}
    sealed = state.seal("tools/call", params, {"confirm": {"action": "accept"}})
    assert state.unseal("tools/call", params, sealed) == {"confirm": {"action": "accept"}}
    for method, other in (("tools/call", {"name": "other"}), ("prompts/get", params)):
        with pytest.raises(Exception, match="requestState"):
            state.unseal(method, other, sealed)
    with pytest.raises(Exception, match="requestState"):
        stateless.RequestState(b"x" * 32).unseal("tools/call", params, sealed)
    with pytest.raises(Exception, match="requestState"):
        state.unseal("tools/call", params, sealed[:-2] + "AA")


def test_an_overlong_string_id_is_refused() -> None:
    from trio_mcp_http.protocol.jsonrpc import MAX_ID_LENGTH

    fine = {"jsonrpc": "2.0", "id": "x" * MAX_ID_LENGTH, "method": "ping"}
    assert parsed(fine).id == "x" * MAX_ID_LENGTH
    with pytest.raises(ProtocolError, match="id longer than"):
        parsed({**fine, "id": "x" * (MAX_ID_LENGTH + 1)})
