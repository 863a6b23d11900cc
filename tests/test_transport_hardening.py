"""Resource bounds under hostile or broken clients: disconnects that must free their
connection, sends that never complete, oversized batches and per-session state."""

from __future__ import annotations

import json
import os
from typing import Any

import h2.settings
import httpx
import pytest
import trio
import trio.testing
from conftest import LogWatch
from helpers import (
    POST_HEADERS,
    Client,
    Controller,
    H2Client,
    InMemoryClient,
    SseParser,
    build_server,
    call_tool,
    hypercorn_serving,
    initialize,
    messages_of,
    raw_request,
    request,
    send_raw,
    wait_idle,
)

from trio_mcp_http import Context, InMemoryEventStore, McpHttpApp, McpServer, TransportConfig
from trio_mcp_http.protocol.input_requests import answer_is_valid

TIMEOUT = 30


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- stateless mode: a disconnect frees the call -------------------------------------------


async def test_stateless_disconnects_free_their_connections(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch
) -> None:
    """60 clients of stateless mode leave mid-request: every call ends, every handler is
    cancelled, and the process is back to its baseline of open file descriptors."""
    app = McpHttpApp(mcp_server, TransportConfig(stateless=True))
    with trio.fail_after(TIMEOUT):
        async with hypercorn_serving(app, app) as port:
            baseline = _open_fds()
            socks = []
            for i in range(60):
                body = json.dumps(call_tool(i, "hold", key=f"gone-{i}")).encode()
                # "close": Hypercorn closes the connection when the call returns, not only
                # keep_alive_timeout later.
                headers = {**POST_HEADERS, "mcp-protocol-version": "2025-11-25", "connection": "close"}
                socks.append(await send_raw(port, raw_request("POST", port, body, headers)))
                await ctl.started[f"gone-{i}"].wait()
            assert app.statistics()["requests_in_flight"] == 60
            for sock in socks:
                await sock.aclose()
            await wait_idle(app)
            for i in range(60):
                await ctl.finished[f"gone-{i}"].wait()
                assert ctl.cancelled[f"gone-{i}"].is_set()
            assert app.statistics()["requests_in_flight"] == 0
            await trio.testing.wait_all_tasks_blocked()
            assert _open_fds() <= baseline
    assert not logs.errors()


# -- a client that takes no data: every send is bounded ------------------------------------


async def _app(nursery: trio.Nursery, server: McpServer, **config: Any) -> tuple[McpHttpApp, InMemoryClient]:
    app = McpHttpApp(server, TransportConfig(**config))
    await nursery.start(app.run)
    return app, InMemoryClient(app, nursery)


@pytest.mark.parametrize("json_response", [True, False])
async def test_sends_to_a_client_that_takes_no_data_are_bounded(
    mcp_server: McpServer, logs: LogWatch, autojump_clock: trio.testing.MockClock, json_response: bool
) -> None:
    """100 calls whose client takes nothing (an HTTP/2 window kept at 0 looks like this
    to the app: the send never returns) all end after send_timeout."""
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server, json_response=json_response, send_timeout=30.0)
            session = await client.open_session()
            start = trio.current_time()
            calls = []
            for i in range(100):
                call = client.call("POST", call_tool(i, "echo", text="x"), session)
                call.stall()
                calls.append(call)
            for call in calls:
                await call.done.wait()
            # One bounded send (30 s), and in SSE mode the bounded final one (1 s).
            assert trio.current_time() - start <= 31.0
            assert app.statistics()["http_calls_in_flight"] == 0
            assert app.statistics()["requests_in_flight"] == 0
            nursery.cancel_scope.cancel()
    assert not logs.warnings()


async def test_a_stream_whose_client_stops_taking_data_ends_and_stays_resumable(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server, send_timeout=5.0, keepalive_interval=None)
            session = await client.open_session()
            call = client.call("POST", call_tool(1, "scripted", key="stall"), session)
            await call.start()
            ctl.send("stall", "notify", "one")
            block = await call.next_block()  # priming event
            assert block is not None
            block = await call.next_block()
            assert block is not None
            assert block.message is not None
            call.stall()
            ctl.send("stall", "notify", "two")
            start = trio.current_time()
            await call.done.wait()
            assert trio.current_time() - start <= 5.0 + 1.0
            assert app.statistics()["open_streams"] == 0
            # The handler runs on (a session-era disconnect is not a cancellation) and its
            # answer can be fetched with Last-Event-ID.
            ctl.send("stall", "return", "done")
            await ctl.finished["stall"].wait()
            resumed = client.call("GET", None, session, last_event_id=block.id or "")
            status, _ = await resumed.start()
            assert status == 200
            messages = [b.message for b in await resumed.read_to_end() if b.message is not None]
            assert messages[-1]["result"]["content"][0]["text"] == "done"
            nursery.cancel_scope.cancel()
    assert not logs.warnings()


async def test_the_final_send_to_a_vanished_client_times_out_quietly(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch, autojump_clock: trio.testing.MockClock
) -> None:
    """A client gone with its connection blocked: the final send's timeout is expected,
    not worth a warning (one client dropping an HTTP/2 connection ends many streams)."""
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, mcp_server)
            session = await client.open_session()
            calls = []
            for i in range(20):
                call = client.call("POST", call_tool(i, "hold", key=f"h{i}"), session)
                await call.start()
                calls.append(call)
            for call in calls:
                call.stall()
                call.disconnect()
            for call in calls:
                await call.done.wait()
            nursery.cancel_scope.cancel()
    assert not logs.warnings()
    assert any("final send of a response timed out" in r.getMessage() for r in logs.records)


async def test_an_http2_client_with_a_zero_window_does_not_hold_calls(
    mcp_server: McpServer, logs: LogWatch
) -> None:
    """SETTINGS_INITIAL_WINDOW_SIZE = 0: the server may send headers but no body byte,
    and the connection stays healthy (TCP acknowledges everything).  Every call ends
    after send_timeout anyway."""
    app = McpHttpApp(mcp_server, TransportConfig(stateless=True, json_response=True, send_timeout=0.5))
    with trio.fail_after(TIMEOUT):
        async with hypercorn_serving(app, app) as port:
            client = await H2Client.open(port)
            client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
            await client._flush()
            headers = {**POST_HEADERS, "mcp-protocol-version": "2025-11-25"}
            bodies = [json.dumps(call_tool(i, "echo", text="x" * 100)).encode() for i in range(20)]
            ids = [await client.request("POST", headers, body) for body in bodies]
            await client.wait(lambda: all(client.streams[i].status == 200 for i in ids))
            assert not any(client.streams[i].data for i in ids)
            await wait_idle(app)
            assert app.statistics()["requests_in_flight"] == 0
            await client.aclose()
    assert not logs.warnings()


# -- 2025-03-26 batches: bounded, and never carrying initialize ------------------------------


@pytest.mark.parametrize("json_response", [True, False])
async def test_a_batch_beyond_the_limit_is_refused_before_anything_runs(
    mcp_server: McpServer, ctl: Controller, json_response: bool
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server, json_response=json_response)
            session = await client.open_session("2025-03-26")
            headers = {"mcp_protocol_version": "2025-03-26"}
            big = [call_tool(i, "hold", key=f"b{i}") for i in range(1000)]
            status, _, body = await client.request("POST", big, session, **headers)
            assert status == 400
            assert json.loads(body)["error"]["code"] == -32600
            assert not ctl.started
            # 64 (the default max_batch_size) is fine, and every request is answered.
            pings = [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(64)]
            status, _, body = await client.request("POST", pings, session, **headers)
            assert status == 200
            answers = json.loads(body) if json_response else messages_of(SseParser().feed(body))
            assert sorted(a["id"] for a in answers) == list(range(64))
            status, _, _ = await client.request("POST", pings + pings[:1], session, **headers)
            assert status == 400
            assert app.statistics()["requests_in_flight"] == 0
            nursery.cancel_scope.cancel()


async def test_an_sse_batch_must_fit_the_stream_buffer(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, mcp_server, stream_buffer_size=16, max_batch_size=64)
            session = await client.open_session("2025-03-26")
            headers = {"mcp_protocol_version": "2025-03-26"}
            pings = [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(16)]
            status, _, body = await client.request("POST", pings, session, **headers)
            assert status == 400
            assert json.loads(body)["error"]["code"] == -32600
            status, _, body = await client.request("POST", pings[:15], session, **headers)
            assert status == 200
            assert body.count(b"data: ") == 15
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("stateless", [True, False])
async def test_initialize_in_a_batch_of_one_is_refused(mcp_server: McpServer, stateless: bool) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server, stateless=stateless)
            status, headers, body = await client.request("POST", [initialize(version="2025-03-26")])
            assert status == 400
            assert json.loads(body)["error"]["code"] == -32600
            assert "mcp-session-id" not in headers
            assert app.statistics()["sessions"] == 0
            nursery.cancel_scope.cancel()


# -- per-session state stays bounded ---------------------------------------------------------


async def test_refused_duplicate_ids_do_not_grow_the_session(mcp_server: McpServer, ctl: Controller) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server, replayable_streams=4)
            session_id = await client.open_session()
            held = client.call("POST", call_tool(1, "hold", key="dup"), session_id)
            await ctl.started["dup"].wait()
            for _ in range(50):
                status, _, body = await client.request("POST", call_tool(1, "echo", text="x"), session_id)
                assert status == 200
                assert b"already in use" in body
            session = app._sessions._sessions[session_id]
            # The held request's stream, and at most replayable_streams finished ones.
            assert len(session._streams) <= 1 + 4
            ctl.release("dup")
            await held.done.wait()
            nursery.cancel_scope.cancel()


# -- answers to the server's questions are checked before the handler sees them ------------


def _asking_server(ctl: Controller) -> McpServer:
    server = build_server(ctl)

    @server.tool()
    async def sample_it(ctx: Context) -> str:
        """Ask the client's model."""
        answer = await ctx.sample([{"role": "user", "content": {"type": "text", "text": "hi"}}], 10)
        return f"{answer['role']}: {answer['content']['text']}"

    @server.tool()
    async def roots_it(ctx: Context) -> str:
        """List the client's roots."""
        answer = await ctx.list_roots()
        return ",".join(root["uri"] for root in answer["roots"])

    return server


GOOD_AND_BAD_ANSWERS = [
    (
        "ask_name",
        "elicitation",
        {"action": "accept", "content": {"name": "Ada"}},
        "Hello, Ada!",
        [{"action": "accept", "content": "s"}, "x", {"action": "maybe"}, [], None],
    ),
    (
        "sample_it",
        "sampling",
        {"role": "assistant", "content": {"type": "text", "text": "yo"}},
        "assistant: yo",
        [{"role": "assistant"}, {"content": {"type": "text", "text": "t"}}, {"role": 1, "content": {}}, "x"],
    ),
    (
        "roots_it",
        "roots",
        {"roots": [{"uri": "file:///a"}, {"uri": "file:///b", "name": "b"}]},
        "file:///a,file:///b",
        [{"roots": "x"}, {"roots": [1]}, {"roots": [{"name": "n"}]}, {"roots": [{"uri": 5}]}, "x"],
    ),
]


@pytest.mark.parametrize(("tool", "capability", "good", "expected", "bad_answers"), GOOD_AND_BAD_ANSWERS)
async def test_session_era_answers_are_validated(
    ctl: Controller,
    logs: LogWatch,
    tool: str,
    capability: str,
    good: Any,
    expected: str,
    bad_answers: list[Any],
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, _asking_server(ctl))
            session = await client.open_session(**{capability: {}})
            for n, answer in enumerate([*bad_answers, good]):
                call = client.call("POST", call_tool(n, tool), session)
                assert (await call.start())[0] == 200
                asked = None
                while asked is None:
                    block = await call.next_block()
                    assert block is not None
                    asked = block.message
                reply = {"jsonrpc": "2.0", "id": asked["id"], "result": answer}
                status, _, _ = await client.request("POST", reply, session)
                assert status == 202
                final = messages_of(await call.read_to_end())[-1]
                if answer is good:
                    assert final["result"]["content"][0]["text"] == expected
                else:
                    assert final["error"]["code"] == -32602, (answer, final)
                    assert "Traceback" not in json.dumps(final)
            nursery.cancel_scope.cancel()
    assert not logs.errors()


@pytest.mark.parametrize(("tool", "capability", "good", "expected", "bad_answers"), GOOD_AND_BAD_ANSWERS)
def test_answer_is_valid(
    tool: str, capability: str, good: Any, expected: str, bad_answers: list[Any]
) -> None:
    method = {
        "elicitation": "elicitation/create",
        "sampling": "sampling/createMessage",
        "roots": "roots/list",
    }
    assert answer_is_valid(method[capability], good)
    for bad in bad_answers:
        assert not answer_is_valid(method[capability], bad), bad


# -- a client that half-closes after its request still learns to resume ---------------------


async def test_a_half_closed_client_gets_a_retry_hint_and_can_resume(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch
) -> None:
    app = McpHttpApp(mcp_server, TransportConfig(retry_ms=1500))
    with trio.fail_after(TIMEOUT):
        async with hypercorn_serving(app, app) as port, httpx.AsyncClient() as http:
            client = Client(http, f"http://127.0.0.1:{port}/mcp")
            session = await client.open_session()
            async with client.stream("POST", call_tool(1, "hold", key="half"), session) as reader:
                priming = await reader.next_event()
                assert priming.id is not None
                await ctl.started["half"].wait()
                # shutdown(SHUT_WR): Hypercorn reports http.disconnect, the socket still reads.
                await reader.stream.send_eof()
                rest = await reader.read_to_end()
                assert reader.complete
                assert [b.retry for b in rest if b.retry is not None] == [1500]
            ctl.release("half")
            await ctl.finished["half"].wait()
            async with client.stream("GET", None, session, last_event_id=priming.id) as resumed:
                _, message = await resumed.next_message()
                assert message["result"]["content"][0]["text"] == "released half"
    assert not logs.errors()


# -- a WebSocket upgrade without the mcp subprotocol is refused, not failed ------------------


async def test_a_websocket_upgrade_without_the_mcp_subprotocol_is_refused_with_400(
    mcp_server: McpServer, logs: LogWatch
) -> None:
    app = McpHttpApp(mcp_server)
    with trio.fail_after(TIMEOUT):
        async with hypercorn_serving(app, app) as port:
            headers = {
                "connection": "Upgrade",
                "upgrade": "websocket",
                "sec-websocket-version": "13",
                "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            }
            sock = await send_raw(port, raw_request("GET", port, headers=headers))
            head = b""
            while b"\r\n\r\n" not in head:
                data = await sock.receive_some(65536)
                assert data, head
                head += data
            await sock.aclose()
            assert head.split(b" ", 2)[1] == b"400", head
            await wait_idle(app)
            assert app.statistics()["sessions"] == 0
    assert not logs.errors()


# -- the session cap: the least recently used idle session makes room ------------------------


async def test_a_full_server_ends_its_least_recently_used_idle_session(
    mcp_server: McpServer, ctl: Controller
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server, max_sessions=3)
            first, second, third = [await client.open_session() for _ in range(3)]
            # ``first`` is used again: ``second`` is now the least recently used.
            assert (await client.request("POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, first))[
                0
            ] == 200
            fourth = await client.open_session()
            assert app.statistics()["sessions"] == 3
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            assert (await client.request("POST", ping, second))[0] == 404
            for session in (first, third, fourth):
                assert (await client.request("POST", ping, session))[0] == 200
            # Every session busy (a request in flight, or an open stream): 503, naming
            # the refused request.
            held = client.call("POST", call_tool(3, "hold", key="busy"), first)
            await ctl.started["busy"].wait()
            listening = [client.call("GET", None, s) for s in (third, fourth)]
            for call in listening:
                assert (await call.start())[0] == 200
            status, headers, body = await client.request("POST", initialize(request_id="init-7"))
            assert status == 503
            assert int(headers["retry-after"]) > 0
            assert json.loads(body)["id"] == "init-7"
            assert app.statistics()["sessions"] == 3
            ctl.release("busy")
            await held.done.wait()
            # ``first`` is idle again: it makes room.
            assert (await client.request("POST", initialize(request_id=8)))[0] == 200
            assert (await client.request("POST", ping, first))[0] == 404
            nursery.cancel_scope.cancel()


async def test_refusals_name_the_request_when_its_id_was_readable(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, mcp_server)
            ping = {"jsonrpc": "2.0", "id": "p-1", "method": "ping"}
            status, _, body = await client.request("POST", ping, "0" * 32)
            assert status == 404
            assert json.loads(body)["id"] == "p-1"
            status, _, body = await client.request("POST", ping)  # no session id
            assert status == 400
            assert json.loads(body)["id"] == "p-1"
            # A batch, or a body that is no request: no id to name.
            status, _, body = await client.request("POST", [ping], "0" * 32)
            assert status == 404
            assert json.loads(body)["id"] is None
            nursery.cancel_scope.cancel()


# -- per-session memory is bounded in bytes -------------------------------------------------


def test_the_event_store_is_bounded_in_bytes() -> None:
    store = InMemoryEventStore(max_bytes=1000)
    for seq in range(1, 6):
        store.append(1, seq, b"a" * 100)
        store.append(2, seq, b"b" * 100)
    assert store.stored_bytes == 1000
    # Over the budget, the oldest events go first, whichever stream they belong to.
    store.append(3, 1, b"c" * 250)
    assert store.stored_bytes <= 1000
    assert store.replay_after(1, 0) is None  # stream 1 lost its first events
    assert store.replay_after(1, 2) == [b"a" * 100] * 3
    assert store.replay_after(2, 1) == [b"b" * 100] * 4
    assert store.replay_after(3, 0) == [b"c" * 250]
    # An event larger than the whole budget is kept, alone.
    store.append(4, 1, b"d" * 5000)
    assert store.stored_events() == 1
    assert store.stored_bytes == 5000
    assert store.replay_after(4, 0) == [b"d" * 5000]
    store.append(4, 2, b"e")
    assert store.replay_after(4, 1) == [b"e"]
    store.forget(4)
    assert store.stored_bytes == 0
    assert store.stored_events() == 0


async def test_a_session_publishing_large_events_stays_within_its_byte_budget(
    mcp_server: McpServer,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server, stream_buffer_size=1024)
            session_id = await client.open_session()
            for n in range(4):
                status, _, _ = await client.request(
                    "POST", call_tool(n, "chatter", count=100, size=50_000), session_id
                )
                assert status == 200
            store = app._sessions._sessions[session_id]._store
            assert isinstance(store, InMemoryEventStore)
            # 20 MB published; the default budget is 4 MiB.
            assert store.stored_bytes <= 4 * 1024 * 1024
            nursery.cancel_scope.cancel()


def _resource_server(ctl: Controller) -> McpServer:
    server = build_server(ctl)

    @server.resource("file:///{path}")
    async def files(path: str) -> str:
        """Any file."""
        return path

    return server


async def test_resource_subscriptions_are_bounded_in_bytes(ctl: Controller) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, _resource_server(ctl), json_response=True)
            session = await client.open_session()

            async def subscribe(n: int, uri: str, method: str = "resources/subscribe") -> dict[str, Any]:
                status, _, body = await client.request("POST", request(n, method, {"uri": uri}), session)
                assert status == 200
                answer: dict[str, Any] = json.loads(body)
                return answer

            too_long = await subscribe(1, "file:///" + "x" * (8 * 1024))
            assert too_long["error"]["code"] == -32602
            # URIs of 8 KiB each: 32 fit in 256 KiB, the 33rd does not.
            uris = [f"file:///{n:04d}" + "x" * (8 * 1024 - 12) for n in range(40)]
            answers = [await subscribe(10 + n, uri) for n, uri in enumerate(uris)]
            assert all("result" in a for a in answers[:32])
            assert answers[32]["error"]["code"] == -32602
            # Unsubscribing gives the room back; subscribing again costs nothing more.
            assert "result" in await subscribe(100, uris[0], "resources/unsubscribe")
            assert "result" in await subscribe(101, uris[32])
            assert "result" in await subscribe(102, uris[32])
            assert "error" in await subscribe(103, uris[33])
            nursery.cancel_scope.cancel()


async def test_a_listen_stream_with_oversized_subscriptions_is_refused(ctl: Controller) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, _resource_server(ctl))
            uris = [f"file:///{i}" + "y" * 8000 for i in range(40)]
            body = {
                "jsonrpc": "2.0",
                "id": "L1",
                "method": "subscriptions/listen",
                "params": {
                    "notifications": {"resourceSubscriptions": uris},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            }
            status, _, answer = await client.request(
                "POST", body, mcp_protocol_version="2026-07-28", mcp_method="subscriptions/listen"
            )
            assert status == 400
            assert json.loads(answer)["error"]["code"] == -32602
            nursery.cancel_scope.cancel()


async def test_initialize_with_oversized_client_state_is_refused(mcp_server: McpServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server)
            big = initialize(request_id=5, experimental={"blob": "z" * (64 * 1024)})
            status, headers, body = await client.request("POST", big)
            assert status == 400
            assert "mcp-session-id" not in headers
            assert json.loads(body)["error"]["code"] == -32602
            assert json.loads(body)["id"] == 5
            assert app.statistics()["sessions"] == 0
            fine = initialize(request_id=6, experimental={"blob": "z" * (60 * 1024)})
            assert (await client.request("POST", fine))[0] == 200
            nursery.cancel_scope.cancel()


async def test_a_session_whose_client_left_makes_room_when_none_is_idle(
    mcp_server: McpServer, ctl: Controller
) -> None:
    """Work whose client went away (a tool still running) does not hold a session slot
    for good: at the cap it is the one ended, not the session of a connected client."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            app, client = await _app(nursery, mcp_server, max_sessions=2)
            left, present = await client.open_session(), await client.open_session()
            abandoned = client.call("POST", call_tool(1, "hold", key="abandoned"), left)
            await ctl.started["abandoned"].wait()
            abandoned.disconnect()
            await abandoned.done.wait()
            listening = client.call("GET", None, present)
            assert (await listening.start())[0] == 200
            assert (await client.request("POST", initialize(request_id="new")))[0] == 200
            await ctl.cancelled["abandoned"].wait()
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            assert (await client.request("POST", ping, left))[0] == 404
            assert app.statistics()["sessions"] == 2
            nursery.cancel_scope.cancel()


async def test_requests_in_flight_per_session_are_capped(mcp_server: McpServer, ctl: Controller) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, mcp_server, json_response=True, max_requests_per_session=2)
            session = await client.open_session()
            held = [client.call("POST", call_tool(i, "hold", key=f"h{i}"), session) for i in (1, 2)]
            for i in (1, 2):
                await ctl.started[f"h{i}"].wait()
            status, _, body = await client.request("POST", call_tool(3, "echo", text="x"), session)
            assert status == 200
            assert json.loads(body)["error"]["code"] == -32600
            assert "at most 2" in json.loads(body)["error"]["message"]
            for i in (1, 2):
                ctl.release(f"h{i}")
            for call in held:
                await call.done.wait()
            status, _, body = await client.request("POST", call_tool(4, "echo", text="y"), session)
            assert json.loads(body)["result"]["content"][0]["text"] == "y"
            nursery.cancel_scope.cancel()


def _listen(request_id: str, notifications: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "subscriptions/listen",
        "params": {
            "notifications": notifications,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }


async def test_listen_streams_are_bounded_in_count_and_subscriptions(ctl: Controller) -> None:
    headers = {"mcp_protocol_version": "2026-07-28", "mcp_method": "subscriptions/listen"}
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, _resource_server(ctl), max_listeners=1)
            for uris in ([""], [f"file:///{i}" for i in range(1025)]):
                status, _, body = await client.request(
                    "POST", _listen("L", {"resourceSubscriptions": uris}), **headers
                )
                assert status == 400
                assert json.loads(body)["error"]["code"] == -32602
            first = client.call("POST", _listen("L1", {"toolsListChanged": True}), **headers)
            assert (await first.start())[0] == 200
            status, _, body = await client.request(
                "POST", _listen("L2", {"toolsListChanged": True}), **headers
            )
            assert status == 503
            assert json.loads(body)["id"] == "L2"
            first.disconnect()
            await first.done.wait()
            second = client.call("POST", _listen("L3", {"toolsListChanged": True}), **headers)
            assert (await second.start())[0] == 200
            nursery.cancel_scope.cancel()


async def test_a_client_waiting_for_a_json_answer_keeps_its_session(
    mcp_server: McpServer, ctl: Controller
) -> None:
    """JSON mode: a client waiting for its answer is connected, as a stream reader is;
    at the session cap the session whose client left is the one ended."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            _, client = await _app(nursery, mcp_server, json_response=True, max_sessions=2)
            waiting, left = await client.open_session(), await client.open_session()
            waiter = client.call("POST", call_tool(1, "hold", key="waiting"), waiting)
            abandoned = client.call("POST", call_tool(2, "hold", key="left"), left)
            await ctl.started["waiting"].wait()
            await ctl.started["left"].wait()
            abandoned.disconnect()
            await abandoned.done.wait()
            assert (await client.request("POST", initialize(request_id="a")))[0] == 200
            await ctl.cancelled["left"].wait()
            assert not ctl.cancelled["waiting"].is_set()
            ctl.release("waiting")
            status, _ = await waiter.start()
            assert status == 200
            assert json.loads(await waiter.body())["result"]["content"][0]["text"] == "released waiting"
            nursery.cancel_scope.cancel()
