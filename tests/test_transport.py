"""The session-era transport over real Hypercorn (127.0.0.1, port 0), plus the timed
behaviour (idle expiry, keep-alives) against the ASGI app in memory with a MockClock."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from conftest import LogWatch
from helpers import (
    ACCEPT_BOTH,
    JSON_CT,
    LATEST,
    POST_HEADERS,
    Client,
    Controller,
    HttpStream,
    InMemoryClient,
    SseParser,
    call_tool,
    initialize,
    is_response,
    messages_of,
    notification,
    request,
    response_messages,
    serving,
    wait_idle,
)
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from trio_mcp_http import InMemoryEventStore, McpHttpApp, McpServer, TransportConfig

TIMEOUT = 15


def _error_code(response: httpx.Response) -> int:
    body = response.json()
    assert body["jsonrpc"] == "2.0", body
    assert "error" in body, body
    return int(body["error"]["code"])


# -- POST ------------------------------------------------------------------------------


async def test_notifications_and_responses_get_202_without_body(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (_, client):
            session = await client.open_session()
            note = await client.post(notification("notifications/roots/list_changed"), session)
            assert note.status_code == 202
            assert note.content == b""
            # A response to a server request (unknown id: ignored, still accepted).
            answer = await client.post({"jsonrpc": "2.0", "id": 999, "result": {}}, session)
            assert answer.status_code == 202
            assert answer.content == b""
            error = await client.post(
                {"jsonrpc": "2.0", "id": 998, "error": {"code": -1, "message": "no"}}, session
            )
            assert error.status_code == 202
            assert error.content == b""


async def test_request_is_answered_on_an_sse_stream(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (_, client):
            session = await client.open_session()
            async with client.stream("POST", call_tool(7, "echo", text="世界"), session) as reader:
                assert reader.status == 200
                assert reader.headers["content-type"] == "text/event-stream"
                assert reader.headers["cache-control"] == "no-cache"
                assert reader.headers["x-accel-buffering"] == "no"
                # A priming event (id, empty data) comes first at 2025-11-25 (2025-11-25
                # basic/transports §sending messages to the server).
                priming = await reader.next_event()
                assert priming.id
                assert priming.data == ""
                blocks = await reader.read_to_end()
            [answer] = messages_of(blocks)
            assert answer == {
                "jsonrpc": "2.0",
                "id": 7,
                "result": {"content": [{"type": "text", "text": "世界"}]},
            }
            # Event ids are unique within the session (2025-11-25 basic/transports
            # §resumability and redelivery).
            assert len({b.id for b in [priming, *blocks] if b.id}) == len(
                [b for b in [priming, *blocks] if b.id]
            )


async def test_older_clients_get_no_priming_event(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (_, client):
            session = await client.open_session(version="2025-03-26")
            response = await client.post(
                call_tool(1, "echo", text="x"), session, headers=client.headers(session, "2025-03-26")
            )
            # Clients before 2025-11-25 choke on empty data: no priming event is sent.
            blocks = SseParser().feed(response.content)
            assert [b.data for b in blocks if b.data is not None and not b.data] == []
            assert [m["id"] for m in response_messages(response)] == [1]


async def test_request_is_answered_with_json_in_json_mode(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, json_response=True) as (handle, client):
            session = await client.open_session()
            response = await client.post(call_tool("a", "echo", text="hi"), session)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {
                "jsonrpc": "2.0",
                "id": "a",
                "result": {"content": [{"type": "text", "text": "hi"}]},
            }
            # JSON mode needs only application/json in Accept.
            only_json = await client.post(request(2, "ping"), headers=client.headers(session, accept=JSON_CT))
            assert only_json.status_code == 200
            assert only_json.json()["result"] == {}
            note = await client.post(notification("notifications/initialized"), session)
            assert note.status_code == 202
            assert note.content == b""
            assert handle.statistics()["requests_in_flight"] == 0


async def test_ids_1_and_string_1_are_separate_requests(mcp_server: McpServer, ctl: Controller) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, json_response=True) as (handle, client):
            session = await client.open_session()
            results: dict[Any, httpx.Response] = {}

            async def call(request_id: int | str, key: str) -> None:
                results[request_id] = await client.post(call_tool(request_id, "hold", key=key), session)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call, 1, "int")
                nursery.start_soon(call, "1", "str")
                await ctl.started["int"].wait()
                await ctl.started["str"].wait()
                assert handle.statistics()["requests_in_flight"] == 2
                # Cancelling "1" must not touch 1.
                cancel = await client.post(
                    notification("notifications/cancelled", {"requestId": "1"}), session
                )
                assert cancel.status_code == 202
                await ctl.cancelled["str"].wait()
                assert not ctl.cancelled["int"].is_set()
                ctl.release("int")
            assert results[1].json() == {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {"content": [{"type": "text", "text": "released int"}]},
            }
            # JSON mode has no stream to stay silent on: the cancelled request is answered with an error.
            assert results["1"].json()["id"] == "1"
            assert "error" in results["1"].json()


async def test_ids_compare_by_json_type_in_cancellation(mcp_server: McpServer, ctl: Controller) -> None:
    """``true`` and ``1.0`` are not the id ``1``; a second request in flight under an id
    already in use is refused on its own, leaving the first untouched."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, json_response=True) as (handle, client):
            session = await client.open_session()
            results: list[httpx.Response] = []

            async def call() -> None:
                results.append(await client.post(call_tool(1, "hold", key="one"), session))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call)
                await ctl.started["one"].wait()
                for wrong in (True, 1.0, "1", [1]):
                    cancel = await client.post(
                        notification("notifications/cancelled", {"requestId": wrong}), session
                    )
                    assert cancel.status_code == 202
                twin = await client.post(call_tool(1, "echo", text="twin"), session)
                assert twin.json()["error"]["code"] == -32600
                assert "already in use" in twin.json()["error"]["message"]
                assert not ctl.cancelled["one"].is_set()
                assert handle.statistics()["requests_in_flight"] == 1
                ctl.release("one")
            assert results[0].json()["result"]["content"][0]["text"] == "released one"


@pytest.mark.parametrize("json_response", [False, True])
async def test_delete_during_a_call_still_answers_it(
    mcp_server: McpServer, ctl: Controller, json_response: bool
) -> None:
    """DELETE while a tool runs: its request still gets exactly one JSON-RPC answer (an
    error saying the session ended), then its stream ends cleanly."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, json_response=json_response) as (handle, client):
            session = await client.open_session()
            if json_response:
                async with trio.open_nursery() as nursery:
                    answer: list[httpx.Response] = []

                    async def call() -> None:
                        answer.append(await client.post(call_tool(5, "hold", key="d"), session))

                    nursery.start_soon(call)
                    await ctl.started["d"].wait()
                    assert (await client.delete(session)).status_code == 204
                messages = [answer[0].json()]
            else:
                async with client.stream("POST", call_tool(5, "scripted", key="d"), session) as reader:
                    await ctl.started["d"].wait()
                    ctl.send("d", "notify", "working")
                    await reader.next_message()
                    assert (await client.delete(session)).status_code == 204
                    messages = messages_of(await reader.read_to_end())
                    assert reader.eof
            assert len(messages) == 1
            assert messages[0]["id"] == 5
            assert messages[0]["error"]["code"] == -32603
            assert "session terminated" in messages[0]["error"]["message"]
            await ctl.cancelled["d"].wait()
            assert handle.statistics()["requests_in_flight"] == 0
            gone = await client.post(request(6, "ping"), session)
            assert gone.status_code == 404


# -- header rules on the wire ------------------------------------------------------------


async def test_header_rules(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (_, client):
            session = await client.open_session()
            ping = request(1, "ping")
            # Accept must list both media types for SSE-mode POSTs, and SSE for GET (2025-11-25
            # basic/transports §sending messages to the server, §listening for messages
            # from the server).
            for accept in ("application/json", "text/event-stream", "text/html"):
                response = await client.post(ping, headers=client.headers(session, accept=accept))
                assert response.status_code == 406, accept
            get = await client.http.get(
                client.url, headers={"accept": "application/json", "mcp-session-id": session}
            )
            assert get.status_code == 406
            # Content-Type must be JSON (415, RFC 9110 §15.5.16).
            for content_type in ("text/plain", "application/x-www-form-urlencoded"):
                response = await client.post(ping, headers=client.headers(session, content_type=content_type))
                assert response.status_code == 415, content_type
            no_ct = client.headers(session)
            del no_ct["content-type"]
            assert (await client.post(ping, headers=no_ct)).status_code == 415
            # MCP-Protocol-Version: unsupported → 400 on every method; absent → OK (2025-11-25
            # basic/transports §protocol version header).
            for method in ("POST", "GET", "DELETE"):
                bad = await client.http.request(
                    method,
                    client.url,
                    content=json.dumps(ping).encode() if method == "POST" else None,
                    headers=client.headers(session, version="1999-01-01")
                    | ({"accept": "text/event-stream"} if method == "GET" else {}),
                )
                assert bad.status_code == 400, method
            absent = await client.post(ping, headers=client.headers(session, version=None))
            assert absent.status_code == 200
            assert response_messages(absent)[-1] == {"jsonrpc": "2.0", "id": 1, "result": {}}
            # Parse and envelope errors: 400 with -32700 / -32600.
            garbage = await client.post(b"{nope", session)
            assert garbage.status_code == 400
            assert _error_code(garbage) == -32700
            invalid = await client.post({"jsonrpc": "2.0", "method": 5}, session)
            assert invalid.status_code == 400
            assert _error_code(invalid) == -32600
            # The session survived all of it.
            assert (await client.post(ping, session)).status_code == 200


async def test_origin_and_host_are_checked(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (handle, client):
            body = json.dumps(initialize()).encode()
            evil_origin = await client.http.post(
                client.url, content=body, headers=client.headers(version=None, origin="http://evil.example")
            )
            assert evil_origin.status_code == 403
            assert _error_code(evil_origin) == -32600
            evil_host = await client.http.post(
                client.url, content=body, headers=client.headers(version=None, host="evil.example")
            )
            assert evil_host.status_code == 421
            assert handle.statistics()["sessions"] == 0
            local = await client.http.post(
                client.url,
                content=body,
                headers=client.headers(version=None, origin=f"http://localhost:{handle.port}"),
            )
            assert local.status_code == 200
            assert "mcp-session-id" in local.headers


# -- sessions --------------------------------------------------------------------------


async def test_unknown_and_missing_session_ids(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (handle, client):
            await client.open_session()
            ping = json.dumps(request(1, "ping")).encode()
            for method in ("POST", "GET", "DELETE"):
                extra = {"accept": "text/event-stream"} if method == "GET" else {}
                content = ping if method == "POST" else None
                unknown = await client.http.request(
                    method, client.url, content=content, headers=client.headers("no-such-session") | extra
                )
                assert unknown.status_code == 404, method
                assert _error_code(unknown) == -32001
                missing = await client.http.request(
                    method, client.url, content=content, headers=client.headers() | extra
                )
                assert missing.status_code == 400, method
                malformed = await client.http.request(
                    method, client.url, content=content, headers=client.headers("not an id") | extra
                )
                assert malformed.status_code == 400, method
                assert _error_code(malformed) == -32600
            assert handle.statistics()["sessions"] == 1


async def test_delete_then_404_for_every_method(mcp_server: McpServer, ctl: Controller) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (handle, client):
            session = await client.open_session()
            other = await client.open_session()
            async with (
                client.stream("GET", session=session) as get,
                client.stream("POST", call_tool(1, "hold", key="held"), session) as reader,
            ):
                await get.next_event()
                await reader.next_event()
                await ctl.started["held"].wait()
                deleted = await client.delete(session)
                assert deleted.status_code == 204
                # The in-flight handler is cancelled and both streams end cleanly.
                await ctl.cancelled["held"].wait()
                await reader.read_to_end()
                await get.read_to_end()
                assert reader.complete
                assert get.complete
            for method in ("POST", "GET", "DELETE"):
                extra = {"accept": "text/event-stream"} if method == "GET" else {}
                response = await client.http.request(
                    method,
                    client.url,
                    content=json.dumps(request(2, "ping")).encode() if method == "POST" else None,
                    headers=client.headers(session) | extra,
                )
                assert response.status_code == 404, method
            # The client starts over and gets a new id; the other session is intact
            # (2025-11-25 basic/transports §session management).
            again = await client.open_session()
            assert again not in (session, other)
            assert (await client.post(request(3, "ping"), other)).status_code == 200
            assert handle.statistics()["sessions"] == 2
            assert handle.statistics()["requests_in_flight"] == 0


async def test_rejected_initialize_leaves_no_session(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (handle, client):
            bad = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
            response = await client.post(bad, headers=client.headers(version=None))
            assert response.status_code == 400
            assert "mcp-session-id" not in response.headers
            batched = await client.post(
                [initialize(1), request(2, "ping")], headers=client.headers(version=None)
            )
            assert batched.status_code == 400
            assert handle.statistics()["sessions"] == 0


async def test_session_cap_answers_503_when_every_session_is_busy(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, max_sessions=2) as (handle, client):
            first = await client.open_session()
            second = await client.open_session()
            # Each session holds an open GET stream: none can be ended to make room.
            async with client.stream("GET", None, first), client.stream("GET", None, second):
                full = await client.post(initialize(), headers=client.headers(version=None))
                assert full.status_code == 503
                assert int(full.headers["retry-after"]) > 0
                assert "mcp-session-id" not in full.headers
                assert full.json()["id"] == 0
                assert handle.statistics()["sessions"] == 2
            assert (await client.delete(first)).status_code == 204
            await client.open_session()
            assert handle.statistics()["sessions"] == 2


async def test_stateless_mode(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, stateless=True) as (handle, client):
            init = await client.post(initialize(), headers=client.headers(version=None))
            assert init.status_code == 200
            assert "mcp-session-id" not in init.headers
            assert response_messages(init)[-1]["result"]["protocolVersion"] == "2025-11-25"
            # No session needed on a fresh connection.
            async with httpx.AsyncClient() as fresh:
                call = await fresh.post(
                    client.url, content=json.dumps(call_tool(2, "echo", text="s")), headers=client.headers()
                )
            assert call.status_code == 200
            assert response_messages(call)[-1]["result"]["content"][0]["text"] == "s"
            assert (await client.post(notification("notifications/initialized"))).status_code == 202
            assert (
                await client.http.get(client.url, headers={"accept": "text/event-stream"})
            ).status_code == 405
            assert (await client.http.delete(client.url)).status_code == 405
            assert handle.statistics()["sessions"] == 0
            assert handle.statistics()["requests_in_flight"] == 0


async def test_body_limit_answers_413(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, max_body_size=1024) as (handle, client):
            session = await client.open_session()
            big = call_tool(1, "echo", text="x" * 4096)
            declared = await client.post(big, session)
            assert declared.status_code == 413
            assert _error_code(declared) == -32600

            async def chunks() -> Any:
                payload = json.dumps(big).encode()
                for start in range(0, len(payload), 256):
                    yield payload[start : start + 256]

            # Chunked (no Content-Length): refused while reading, before parsing.
            streamed = await client.http.post(client.url, content=chunks(), headers=client.headers(session))
            assert "content-length" not in streamed.request.headers
            assert streamed.status_code == 413
            fits = await client.post(call_tool(2, "echo", text="x" * 100), session)
            assert fits.status_code == 200
            assert handle.statistics()["requests_in_flight"] == 0


# -- GET streams -----------------------------------------------------------------------


async def test_a_new_get_takes_over_the_standalone_stream(mcp_server: McpServer) -> None:
    """One connection carries the GET stream at a time and the newest wins, with or
    without Last-Event-ID; the one it replaces ends cleanly with a retry hint."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (handle, client):
            session = await client.open_session()
            other = await client.open_session()
            async with client.stream("GET", session=session) as first:
                assert first.status == 200
                assert first.headers["content-type"] == "text/event-stream"
                primed = await first.next_event()  # priming: the stream is attached
                async with client.stream("GET", session=session) as second:
                    assert second.status == 200
                    await second.next_event()
                    ended = await first.read_to_end()
                    assert first.eof  # a clean end of the chunked body
                    assert any(block.retry is not None for block in ended)
                    # Resuming with Last-Event-ID follows the same rule.
                    resume = {"last-event-id": primed.id or ""}
                    async with client.stream("GET", session=session, **resume) as third:
                        assert third.status == 200
                        await second.read_to_end()
                        assert second.eof
                        # Another session has its own stream.
                        async with client.stream("GET", session=other) as elsewhere:
                            assert elsewhere.status == 200
                            await elsewhere.next_event()
                            assert handle.statistics()["open_streams"] == 2
            await _wait_streams(handle, 0)


async def _wait_streams(handle: Any, count: int) -> None:
    """Wait until the app has noticed the disconnects (its HTTP calls are done)."""
    await wait_idle(handle.app)
    assert handle.statistics()["open_streams"] == count


async def test_every_message_goes_to_exactly_one_stream(mcp_server: McpServer, ctl: Controller) -> None:
    """Unrelated messages on the GET stream only, request-related ones and the response
    on the request's stream only (2025-11-25 basic/transports §multiple connections,
    §listening for messages from the server)."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (_, client):
            session = await client.open_session()
            async with (
                client.stream("GET", session=session) as get,
                client.stream("POST", call_tool(5, "scripted", key="s"), session) as post,
            ):
                await get.next_event()
                await post.next_event()
                await ctl.started["s"].wait()
                mcp_server.notify_tools_changed()
                ctl.send("s", "notify", "from the tool")
                _, on_get = await get.next_message()
                _, on_post = await post.next_message()
                assert on_get["method"] == "notifications/tools/list_changed"
                assert on_post["method"] == "notifications/message"
                assert on_post["params"]["data"] == "from the tool"
                ctl.send("s", "return", "bye")
                post_rest = await post.read_to_end()
                # A sentinel after everything else: anything misrouted would come before it.
                mcp_server.notify_prompts_changed()
                _, sentinel = await get.next_message()
                assert sentinel["method"] == "notifications/prompts/list_changed"
            get_messages = messages_of(get.seen)
            post_messages = messages_of(post.seen)
            assert [m["method"] for m in get_messages] == [
                "notifications/tools/list_changed",
                "notifications/prompts/list_changed",
            ]
            assert not any(is_response(m) for m in get_messages)
            assert [m for m in messages_of(post_rest) if is_response(m)] == [
                {"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text", "text": "bye"}]}}
            ]
            every = Counter(json.dumps(m, sort_keys=True) for m in get_messages + post_messages)
            assert set(every.values()) == {1}
            assert not any(m.get("method", "").endswith("list_changed") for m in post_messages)


# -- cancellation ----------------------------------------------------------------------


async def test_cancelled_request_gets_no_response(mcp_server: McpServer, ctl: Controller) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (handle, client):
            session = await client.open_session()
            async with client.stream("POST", call_tool(11, "scripted", key="c"), session) as reader:
                await reader.next_event()
                await ctl.started["c"].wait()
                ctl.send("c", "notify", "working")
                _, first = await reader.next_message()
                assert first["method"] == "notifications/message"
                cancel = await client.post(
                    notification("notifications/cancelled", {"requestId": 11, "reason": "t"}), session
                )
                assert cancel.status_code == 202
                assert cancel.content == b""
                await ctl.cancelled["c"].wait()
                rest = await reader.read_to_end()
            assert reader.eof
            assert messages_of(rest) == []
            assert not reader.sse.pending
            # Cancelling something unknown or finished is harmless (2025-11-25
            # basic/utilities/cancellation).
            again = await client.post(notification("notifications/cancelled", {"requestId": 11}), session)
            assert again.status_code == 202
            junk = await client.post(
                notification("notifications/cancelled", {"requestId": {"x": 1}}), session
            )
            assert junk.status_code == 202
            ping = await client.post(request(12, "ping"), session)
            assert response_messages(ping)[-1] == {"jsonrpc": "2.0", "id": 12, "result": {}}
            assert handle.statistics()["requests_in_flight"] == 0


# -- disconnection is not cancellation; resumption ---------------------------------------


async def test_resume_after_dropping_a_post_stream(mcp_server: McpServer, ctl: Controller) -> None:
    """Drop a POST stream after its first event.  GET with Last-Event-ID gets every
    remaining event and the response exactly once (2025-11-25 basic/transports
    §resumability and redelivery), while another
    stream of the same session and a stream of another session are untouched."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (handle, client):
            session = await client.open_session()
            other_session = await client.open_session()
            async with (
                client.stream("POST", call_tool(2, "scripted", key="sibling"), session) as sibling,
                client.stream("POST", call_tool(3, "scripted", key="foreign"), other_session) as foreign,
            ):
                await sibling.next_event()
                await foreign.next_event()
                await ctl.started["sibling"].wait()
                await ctl.started["foreign"].wait()

                # The stream to drop.
                async with client.stream("POST", call_tool(1, "scripted", key="main"), session) as dropped:
                    await ctl.started["main"].wait()
                    ctl.send("main", "notify", "m1")
                    first = await dropped.next_event()  # priming
                    _, m1 = await dropped.next_message()
                    assert m1["params"]["data"] == "m1"
                    last_seen = dropped.seen[-1].id
                    assert first.id
                    assert last_seen
                # The connection is gone; the request carries on.
                for i in range(2, 6):
                    ctl.send("main", "notify", f"m{i}")
                    ctl.send("sibling", "notify", f"s{i}")
                    ctl.send("foreign", "notify", f"f{i}")
                ctl.send("main", "return", "main done")
                await ctl.finished["main"].wait()
                assert not ctl.cancelled["main"].is_set()

                async with client.stream("GET", session=session, last_event_id=last_seen) as resuming:
                    assert resuming.status == 200
                    resumed = await resuming.read_to_end()
                resumed_messages = messages_of(resumed)
                assert [m.get("params", {}).get("data") for m in resumed_messages[:-1]] == [
                    "m2",
                    "m3",
                    "m4",
                    "m5",
                ]
                assert resumed_messages[-1] == {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "result": {"content": [{"type": "text", "text": "main done"}]},
                }
                # Nothing seen before the drop is repeated; ids continue the dropped stream's.
                stream_prefix = last_seen.split("/")[0]
                assert all(
                    b.id is not None and b.id.split("/")[0] == stream_prefix
                    for b in resumed
                    if b.data is not None
                )
                assert all(b.id not in {e.id for e in dropped.seen} for b in resumed if b.id)

                # The untouched streams got exactly their own events, in order, live.
                for reader, key, prefix, request_id in (
                    (sibling, "sibling", "s", 2),
                    (foreign, "foreign", "f", 3),
                ):
                    got = [(await reader.next_message())[1]["params"]["data"] for _ in range(4)]
                    assert got == [f"{prefix}{i}" for i in range(2, 6)]
                    ctl.send(key, "return", key)
                    tail = messages_of(await reader.read_to_end())
                    assert tail == [
                        {
                            "jsonrpc": "2.0",
                            "id": request_id,
                            "result": {"content": [{"type": "text", "text": key}]},
                        }
                    ]

            # A resume of another session's stream id is refused; so is an unknown one.
            # Event ids are scoped to their session: another session's id never reaches
            # that session's events, whatever stream of ours it happens to name.
            foreign_id = next(b.id for b in foreign.seen if b.id)
            async with client.stream("GET", session=session, last_event_id=foreign_id) as crossing:
                crossed = await crossing.read_to_end() if crossing.status == 200 else []
            crossed_data = [m.get("params", {}).get("data") for m in messages_of(crossed)]
            assert not any(str(d).startswith("f") for d in crossed_data), crossed_data
            assert all(m.get("id") != 3 for m in messages_of(crossed))
            for bad in ("999/1", "garbage", "1/999999"):
                refused = await client.http.get(
                    client.url,
                    headers=client.headers(session) | {"accept": "text/event-stream", "last-event-id": bad},
                )
                assert refused.status_code == 400, bad
            assert handle.statistics()["requests_in_flight"] == 0


async def test_handler_can_close_its_connection_and_client_resumes(
    mcp_server: McpServer, ctl: Controller
) -> None:
    """SSE polling (SEP-1699; 2025-11-25 basic/transports §sending messages to the
    server): retry: before the close, the rest after a resume."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, retry_ms=1234) as (_, client):
            session = await client.open_session()
            async with client.stream("POST", call_tool(1, "scripted", key="p"), session) as reader:
                await ctl.started["p"].wait()
                ctl.send("p", "notify", "before")
                ctl.send("p", "close")
                blocks = await reader.read_to_end()
            assert [m["params"]["data"] for m in messages_of(blocks)] == ["before"]
            assert blocks[-1].retry == 1234
            assert blocks[-1].data is None
            last_id = [b.id for b in [*reader.seen] if b.id][-1]
            ctl.send("p", "notify", "after")
            ctl.send("p", "return", "finished")
            await ctl.finished["p"].wait()
            assert last_id is not None
            async with client.stream("GET", session=session, last_event_id=last_id) as resuming:
                resumed = messages_of(await resuming.read_to_end())
            assert resumed == [
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/message",
                    "params": {"level": "info", "data": "after"},
                },
                {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "finished"}]}},
            ]


# -- in memory, in virtual time ----------------------------------------------------------


async def _running_app(
    nursery: trio.Nursery, server: McpServer, **config: Any
) -> tuple[McpHttpApp, InMemoryClient]:
    app = McpHttpApp(server, TransportConfig(**config))
    await nursery.start(app.run)
    return app, InMemoryClient(app, nursery)


async def test_idle_session_expires(mcp_server: McpServer, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            app, client = await _running_app(nursery, mcp_server, session_idle_timeout=60.0)
            session = await client.open_session()
            busy = await client.open_session()
            await trio.sleep(59)
            # A request restarts the clock of its session only.
            status, _, _ = await client.request(
                "POST", request(1, "ping"), busy, mcp_protocol_version="2025-11-25"
            )
            assert status == 200
            await trio.sleep(2)
            status, _, body = await client.request("POST", request(2, "ping"), session)
            assert status == 404
            assert json.loads(body)["error"]["code"] == -32001
            assert app.statistics()["sessions"] == 1
            await trio.sleep(57)  # t = 118: 59 s since the ping
            assert app.statistics()["sessions"] == 1
            await trio.sleep(2)
            assert app.statistics()["sessions"] == 0
            nursery.cancel_scope.cancel()


async def test_open_stream_keeps_a_session_alive_but_keepalives_do_not(
    mcp_server: McpServer, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            app, client = await _running_app(
                nursery, mcp_server, session_idle_timeout=60.0, keepalive_interval=15.0
            )
            session = await client.open_session()
            get = client.call("GET", session=session)
            status, headers = await get.start()
            assert status == 200
            assert headers["content-type"] == "text/event-stream"
            priming = await get.next_block()
            assert priming is not None
            assert priming.id
            start = trio.current_time()
            comments = []
            while trio.current_time() - start < 600:
                block = await get.next_block()
                assert block is not None
                assert block.comment is not None
                assert block.data is None
                comments.append(trio.current_time() - start)
            # A keep-alive every 15 s of silence, and the session outlived its timeout tenfold.
            assert comments[:3] == pytest.approx([15.0, 30.0, 45.0])
            assert len(comments) == 40
            assert app.statistics()["sessions"] == 1
            # The client vanishes: keep-alives stop, and the session expires a timeout later.
            get.disconnect()
            await get.done.wait()
            assert app.statistics()["open_streams"] == 0
            await trio.sleep(59)
            assert app.statistics()["sessions"] == 1
            await trio.sleep(2)
            assert app.statistics()["sessions"] == 0
            nursery.cancel_scope.cancel()


async def test_running_request_keeps_a_session_alive(
    mcp_server: McpServer, ctl: Controller, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            app, client = await _running_app(
                nursery, mcp_server, session_idle_timeout=60.0, json_response=True
            )
            session = await client.open_session()
            call = client.call("POST", call_tool(1, "hold", key="long"), session)
            await ctl.started["long"].wait()
            # Even with the client gone, a running request is activity.
            call.disconnect()
            status, _ = await call.start()
            assert status == 499
            await trio.sleep(3600)
            assert app.statistics()["sessions"] == 1
            assert not ctl.cancelled["long"].is_set()
            ctl.release("long")
            await ctl.finished["long"].wait()
            await trio.sleep(61)
            assert app.statistics()["sessions"] == 0
            nursery.cancel_scope.cancel()


async def test_stored_events_stay_bounded_under_a_long_stream(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _running_app(
                nursery,
                mcp_server,
                event_store_factory=lambda: InMemoryEventStore(max_events_per_stream=16, max_streams=2),
                stream_buffer_size=100_000,
            )
            session = await client.open_session()
            for request_id in range(1, 4):
                status, _, body = await client.request(
                    "POST", call_tool(request_id, "chatter", count=1000, size=200), session
                )
                assert status == 200
                messages = [m for m in _sse_messages(body)]
                assert len(messages) == 1001
                assert messages[-1]["id"] == request_id
                assert app.statistics()["stored_events"] <= 2 * 16
            nursery.cancel_scope.cancel()


def _sse_messages(body: bytes) -> list[dict[str, Any]]:
    return messages_of(SseParser().feed(body))


async def test_accept_header_with_wildcards_is_enough(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _running_app(nursery, mcp_server)
            session = await client.open_session()
            for accept in ("*/*", "application/*, text/*", ACCEPT_BOTH):
                status, _, _ = await client.request("POST", request(1, "ping"), session, accept=accept)
                assert status == 200, accept
            nursery.cancel_scope.cancel()


async def test_slow_reader_is_cut_loose_and_resumes_without_loss(
    mcp_server: McpServer, ctl: Controller
) -> None:
    """A reader that stops reading is detached once its bounded buffer is full: the
    publisher never blocks, the connection ends with retry:, and a resume delivers the
    rest, every event exactly once."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _running_app(nursery, mcp_server, stream_buffer_size=4, retry_ms=250)
            session = await client.open_session()
            call = client.call("POST", call_tool(1, "scripted", key="slow"), session)
            assert (await call.start())[0] == 200
            priming = await call.next_block()
            assert priming is not None
            assert priming.id is not None
            call.stall()
            await ctl.started["slow"].wait()
            for i in range(40):
                ctl.send("slow", "notify", f"n{i}")
            ctl.send("slow", "return", "fin")
            await ctl.finished["slow"].wait()  # the publisher was never held up
            call.resume()
            blocks = await call.read_to_end()
            first_part = messages_of(blocks)
            assert len(first_part) < 40, "the stalled connection should have been cut loose"
            assert blocks[-1].retry == 250
            assert not any(is_response(m) for m in first_part)
            last_id = [b.id for b in [priming, *blocks] if b.id][-1]
            resumed = client.call("GET", session=session, last_event_id=last_id)
            assert (await resumed.start())[0] == 200
            rest = messages_of(await resumed.read_to_end())
            everything = first_part + rest
            assert [m["params"]["data"] for m in everything[:-1]] == [f"n{i}" for i in range(40)]
            assert everything[-1] == {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {"content": [{"type": "text", "text": "fin"}]},
            }
            assert app.statistics()["open_streams"] == 0
            nursery.cancel_scope.cancel()


async def test_app_started_by_the_lifespan_protocol(mcp_server: McpServer, logs: LogWatch) -> None:
    """``hypercorn -k trio module:app``: the app is run by lifespan startup and stopped
    by lifespan shutdown."""
    app = McpHttpApp(mcp_server, TransportConfig())
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    stop = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(hypercorn_serve, app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
            assert app.running
            async with httpx.AsyncClient() as http:
                client = Client(http, binds[0] + "/mcp")
                session = await client.open_session()
                echo = await client.post(call_tool(1, "echo", text="lifespan"), session)
                assert response_messages(echo)[-1]["result"]["content"][0]["text"] == "lifespan"
            assert app.statistics()["sessions"] == 1
            stop.set()
        assert not app.running
        assert app.statistics()["sessions"] == 0
    assert logs.errors() == []


@pytest.mark.parametrize("json_response", [False, True])
async def test_plain_hypercorn_cancelling_calls_still_answers_them(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch, json_response: bool
) -> None:
    """Under plain Hypercorn (no drain before it stops), Hypercorn cancels the app's
    calls at its graceful timeout: each request in flight still gets exactly one
    JSON-RPC error, written in the shielded final send, in both eras."""
    from test_modern import modern_headers, modern_request

    app = McpHttpApp(mcp_server, TransportConfig(json_response=json_response))
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    answers: dict[str, list[dict[str, Any]]] = {}
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(hypercorn_serve, app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
            port = int(binds[0].rsplit(":", 1)[1])
            async with httpx.AsyncClient() as http:
                session = await Client(http, binds[0] + "/mcp").open_session()

            async def call(name: str, body: dict[str, Any], headers: dict[str, str]) -> None:
                reader = await HttpStream.open(port, "POST", headers, json.dumps(body).encode())
                try:
                    await reader.read_head()
                    blocks = await reader.read_to_end()
                    assert reader.eof  # a complete response, not a cut connection
                    sse = reader.headers.get("content-type", "").startswith("text/event-stream")
                    answers[name] = messages_of(blocks) if sse else [json.loads(reader.body)]
                finally:
                    await reader.aclose()

            session_headers = {**POST_HEADERS, "mcp-session-id": session, "mcp-protocol-version": LATEST}
            stateless = modern_request(8, "tools/call", {"name": "hold", "arguments": {"key": "s"}})
            async with trio.open_nursery() as calls:
                calls.start_soon(call, "session", call_tool(7, "hold", key="h"), session_headers)
                calls.start_soon(call, "stateless", stateless, modern_headers(stateless))
                await ctl.started["h"].wait()
                await ctl.started["s"].wait()
                stop.set()
    for name, request_id in (("session", 7), ("stateless", 8)):
        responses = [m for m in answers[name] if "id" in m]
        assert len(responses) == 1, (name, answers[name])
        assert responses[0]["id"] == request_id
        assert responses[0]["error"]["code"] == -32603
        assert "shutting down" in responses[0]["error"]["message"]
    assert logs.errors() == []


async def test_other_methods_and_paths(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (_, client):
            for method in ("PUT", "PATCH", "OPTIONS"):
                response = await client.http.request(method, client.url)
                assert response.status_code == 405, method
                assert "POST" in response.headers["allow"]
            wrong_path = await client.http.post(
                client.url.replace("/mcp", "/other"),
                content=json.dumps(initialize()),
                headers=client.headers(),
            )
            assert wrong_path.status_code == 404


async def test_origin_is_checked_on_every_method(mcp_server: McpServer) -> None:
    """A cross-origin page can neither read a session's stream nor end it (2025-11-25
    basic/transports §security warning)."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server) as (handle, client):
            session = await client.open_session()
            evil = {"origin": "http://evil.example"}
            get = await client.http.get(
                client.url, headers=client.headers(session) | {"accept": "text/event-stream"} | evil
            )
            assert get.status_code == 403
            delete = await client.http.delete(client.url, headers=client.headers(session) | evil)
            assert delete.status_code == 403
            post = await client.http.post(
                client.url, content=json.dumps(request(1, "ping")), headers=client.headers(session) | evil
            )
            assert post.status_code == 403
            assert handle.statistics()["sessions"] == 1
            assert (await client.post(request(2, "ping"), session)).status_code == 200


@pytest.mark.parametrize("json_response", [False, True])
async def test_batches_in_a_2025_03_26_session(mcp_server: McpServer, json_response: bool) -> None:
    """Batches exist only in 2025-03-26 (2025-03-26 basic/index §batching); every request
    of a batch is answered."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, json_response=json_response) as (handle, client):
            old = await client.open_session(version="2025-03-26")
            headers = client.headers(old, version="2025-03-26")
            batch = [
                call_tool(1, "echo", text="one"),
                notification("notifications/progress", {"progressToken": "x", "progress": 1}),
                request("1", "ping"),
            ]
            response = await client.post(batch, headers=headers)
            assert response.status_code == 200
            answers = sorted(response_messages(response), key=lambda m: isinstance(m["id"], str))
            assert answers == [
                {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "one"}]}},
                {"jsonrpc": "2.0", "id": "1", "result": {}},
            ]
            only_notes = await client.post(
                [notification("notifications/initialized"), {"jsonrpc": "2.0", "id": 77, "result": {}}],
                headers=headers,
            )
            assert only_notes.status_code == 202
            assert only_notes.content == b""
            # Later revisions refuse arrays.
            new = await client.open_session(version="2025-06-18")
            refused = await client.post(
                [request(1, "ping")], headers=client.headers(new, version="2025-06-18")
            )
            assert refused.status_code == 400
            assert _error_code(refused) == -32600
            assert handle.statistics()["requests_in_flight"] == 0


async def test_waiting_on_a_vanished_client_is_not_activity(
    mcp_server: McpServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A handler blocked on an elicitation answer from a client that left does not keep
    the session alive forever: the session expires and the handler is cancelled."""
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            app, client = await _running_app(nursery, mcp_server, session_idle_timeout=60.0)
            session = await client.open_session(elicitation={})
            call = client.call("POST", call_tool(1, "ask_name"), session)
            assert (await call.start())[0] == 200
            asked = None
            while asked is None:
                block = await call.next_block()
                assert block is not None
                asked = block.message
            assert asked["method"] == "elicitation/create"
            call.disconnect()
            await call.done.wait()
            await trio.sleep(59)
            assert app.statistics()["sessions"] == 1
            await trio.sleep(2)
            assert app.statistics() == {
                "sessions": 0,
                "requests_in_flight": 0,
                "http_calls_in_flight": 0,
                "open_streams": 0,
                "stored_events": 0,
            }
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("json_response", [True, False])
async def test_stateless_mode_answers_499_at_once_and_cancels_the_handler(
    mcp_server: McpServer, ctl: Controller, autojump_clock: trio.testing.MockClock, json_response: bool
) -> None:
    """Without a session nothing can resume the request or cancel it explicitly: a
    disconnect cancels it, and the call (with its connection) ends at once."""
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            app, client = await _running_app(nursery, mcp_server, stateless=True, json_response=json_response)
            key = f"stateless-{json_response}"
            call = client.call("POST", call_tool(1, "hold", key=key))
            await ctl.started[key].wait()
            if not json_response:
                status, _ = await call.start()
                assert status == 200
            start = trio.current_time()
            call.disconnect()
            if json_response:
                status, _ = await call.start()
                assert status == 499
            await call.done.wait()
            assert trio.current_time() == start
            assert ctl.cancelled[key].is_set()
            assert app.statistics()["requests_in_flight"] == 0
            assert app.statistics()["http_calls_in_flight"] == 0
            nursery.cancel_scope.cancel()


async def test_a_send_that_fails_under_a_lost_connection_means_the_client_is_gone() -> None:
    """Hypercorn can fail a send with a trio resource error when the connection goes
    away under it; that is a vanished client, never an exception in handler code."""
    from trio_mcp_http.transport.asgi import GuardedResponse

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        raise trio.BusyResourceError("another task is using this stream")

    response = GuardedResponse(send, 1.0)
    await response.start(200, [])
    assert response.client_gone
    await response.chunk(b"data: {}\n\n")  # not even tried, does not raise
    await response.complete(failed=False)
    assert response.completed
    # After the loss only the final send (bounded) is still tried.
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[-1]["more_body"] is False
