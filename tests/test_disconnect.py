"""Guarantees 1 and 2 under client disconnects, through real Hypercorn.

200 raw-socket clients vanish mid-body, after the body (before any answer) and
mid-stream.  Every ASGI call must complete its response exactly once: 499 where nothing
had been sent, a final empty chunk where a stream had started.  Nothing is logged as an
error, the server keeps serving, and its statistics return to the baseline.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
from conftest import LogWatch
from helpers import (
    LATEST,
    POST_HEADERS,
    Client,
    Controller,
    H2Client,
    HttpStream,
    Recorder,
    call_tool,
    hypercorn_serving,
    initialize,
    raw_request,
    request,
    response_messages,
    send_raw,
    wait_idle,
)

from trio_mcp_http import McpHttpApp, McpServer, TransportConfig

MID_BODY = 70
AFTER_BODY = 70
MID_STREAM_POST = 30
MID_STREAM_GET = 30


@pytest.fixture(params=["hypercorn", "serve"])
def accept_loop(request: pytest.FixtureRequest) -> str:
    """Each test runs on Hypercorn's own trio worker (the app watches ``receive()`` for
    ``http.disconnect``) and on ``serve()``'s (which tells the app of a departure
    directly, with no task of the app's waiting for it)."""
    value: str = request.param
    return value


class Router:
    """``/mcp`` → the SSE-mode app, ``/json`` → the JSON-mode app (same McpServer)."""

    def __init__(self, sse: McpHttpApp, json_mode: McpHttpApp) -> None:
        self.sse = sse
        self.json = json_mode

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = self.json if scope.get("path") == "/json" else self.sse
        await app(scope, receive, send)


async def test_vanishing_clients(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch, accept_loop: str
) -> None:
    sse_app = McpHttpApp(mcp_server, TransportConfig(path="/mcp"))
    json_app = McpHttpApp(mcp_server, TransportConfig(path="/json", json_response=True))
    recorder = Recorder(Router(sse_app, json_app))
    with trio.fail_after(60):
        async with hypercorn_serving(recorder, sse_app, json_app, accept_loop=accept_loop) as port:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(timeout=20) as http:
                sse_client = Client(http, base + "/mcp")
                json_client = Client(http, base + "/json")
                sse_sessions = [await sse_client.open_session() for _ in range(MID_STREAM_GET)]
                json_session = await json_client.open_session()
                await wait_idle(sse_app)
                await wait_idle(json_app)
                baseline = (sse_app.statistics(), json_app.statistics())
                assert baseline[0]["sessions"] == MID_STREAM_GET
                assert baseline[0]["open_streams"] == 0

                limiter = trio.CapacityLimiter(40)

                async def mid_body(n: int) -> None:
                    body = json.dumps(call_tool(n, "echo", text="x" * 2000)).encode()
                    headers = POST_HEADERS | {
                        "mcp-session-id": sse_sessions[0],
                        "x-test-tag": f"mid-body-{n}",
                    }
                    # Content-Length or chunked framing; either way only half the body is sent.
                    data = raw_request("POST", port, body, headers, chunked=n % 2 == 0)
                    async with limiter:
                        stream = await send_raw(port, data[: len(data) - len(body) // 2])
                        await stream.aclose()

                async def after_body(n: int) -> None:
                    key = f"after-{n}"
                    body = json.dumps(call_tool(n, "hold", key=key)).encode()
                    headers = POST_HEADERS | {
                        "mcp-session-id": json_session,
                        "mcp-protocol-version": LATEST,
                        "x-test-tag": f"after-body-{n}",
                    }
                    async with limiter:
                        stream = await HttpStream.open(port, "POST", headers, body, path="/json")
                        await ctl.started[key].wait()  # the request is being handled
                        await stream.aclose()

                async def mid_stream_post(n: int) -> None:
                    key = f"stream-{n}"
                    body = json.dumps(call_tool(n, "scripted", key=key)).encode()
                    headers = POST_HEADERS | {
                        "mcp-session-id": sse_sessions[n % len(sse_sessions)],
                        "mcp-protocol-version": LATEST,
                        "x-test-tag": f"mid-stream-post-{n}",
                    }
                    async with limiter:
                        stream = await HttpStream.open(port, "POST", headers, body)
                        assert await stream.read_head() == 200
                        await ctl.started[key].wait()
                        ctl.send(key, "notify", "first")
                        _, first = await stream.next_message()
                        assert first["params"]["data"] == "first"
                        await stream.aclose()

                async def mid_stream_get(n: int) -> None:
                    headers = {
                        "accept": "text/event-stream",
                        "mcp-session-id": sse_sessions[n],
                        "mcp-protocol-version": LATEST,
                        "x-test-tag": f"mid-stream-get-{n}",
                    }
                    async with limiter:
                        stream = await HttpStream.open(port, "GET", headers)
                        assert await stream.read_head() == 200
                        assert (await stream.next_event()).data == ""
                        await stream.aclose()

                async with trio.open_nursery() as nursery:
                    for n in range(MID_BODY):
                        nursery.start_soon(mid_body, n)
                    for n in range(AFTER_BODY):
                        nursery.start_soon(after_body, n)
                    for n in range(MID_STREAM_POST):
                        nursery.start_soon(mid_stream_post, n)
                    for n in range(MID_STREAM_GET):
                        nursery.start_soon(mid_stream_get, n)

                # Every call has noticed its client is gone and returned.
                mid_body_calls = await recorder.wait_returned("mid-body-", MID_BODY)
                after_calls = await recorder.wait_returned("after-body-", AFTER_BODY)
                stream_calls = await recorder.wait_returned("mid-stream-", MID_STREAM_POST + MID_STREAM_GET)

                # Guarantee 1: one complete response per call; 499 where none had started.
                for call in mid_body_calls + after_calls:
                    assert call.statuses == [499], call
                    assert call.body_ends == 1, call
                for call in stream_calls:
                    assert call.statuses == [200], call
                    assert call.body_ends == 1, call

                # Disconnection is not cancellation (2025-11-25 basic/transports §sending
                # messages to the server): no request was cancelled; finish them now.
                assert not any(ctl.cancelled[f"after-{n}"].is_set() for n in range(AFTER_BODY))
                assert not any(ctl.cancelled[f"stream-{n}"].is_set() for n in range(MID_STREAM_POST))
                for n in range(AFTER_BODY):
                    ctl.release(f"after-{n}")
                for n in range(MID_STREAM_POST):
                    ctl.send(f"stream-{n}", "return", "ok")
                for key in [f"after-{n}" for n in range(AFTER_BODY)] + [
                    f"stream-{n}" for n in range(MID_STREAM_POST)
                ]:
                    await ctl.finished[key].wait()

                # Healthy: a follow-up exchange works on both apps.
                fresh = await sse_client.open_session()
                echo = await sse_client.post(call_tool(1, "echo", text="still here"), fresh)
                assert response_messages(echo)[-1]["result"]["content"][0]["text"] == "still here"
                ping = await json_client.post(request(2, "ping"), json_session)
                assert ping.json() == {"jsonrpc": "2.0", "id": 2, "result": {}}
                assert (await sse_client.delete(fresh)).status_code == 204

                # Back to the baseline: no session, stream, request or call leaked.
                await wait_idle(sse_app)
                await wait_idle(json_app)
                for stats, before in zip(
                    (sse_app.statistics(), json_app.statistics()), baseline, strict=True
                ):
                    for key in ("sessions", "requests_in_flight", "http_calls_in_flight", "open_streams"):
                        assert stats[key] == before[key], (key, stats, before)
                for session in sse_sessions:
                    assert (await sse_client.delete(session)).status_code == 204
                assert (await json_client.delete(json_session)).status_code == 204
                await wait_idle(sse_app)
                await wait_idle(json_app)
                for stats in (sse_app.statistics(), json_app.statistics()):
                    assert stats == {
                        "sessions": 0,
                        "requests_in_flight": 0,
                        "http_calls_in_flight": 0,
                        "open_streams": 0,
                        "stored_events": 0,
                    }, stats

    # Every call the server saw completed exactly once, including the set-up calls.
    assert all(call.returned and len(call.statuses) == 1 and call.body_ends == 1 for call in recorder.calls)
    assert logs.errors() == []
    assert not [r for r in logs.records if "without completing response" in r.getMessage()]


async def test_client_gone_before_the_answer_in_sse_mode_is_not_cancellation(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch, accept_loop: str
) -> None:
    """The POST's SSE stream is dropped; the request finishes and its answer stays
    replayable, and the session is not held busy by the dead connection."""
    app = McpHttpApp(mcp_server, TransportConfig())
    recorder = Recorder(app)
    with trio.fail_after(20):
        async with (
            hypercorn_serving(recorder, app, accept_loop=accept_loop) as port,
            httpx.AsyncClient(timeout=20) as http,
        ):
            client = Client(http, f"http://127.0.0.1:{port}/mcp")
            session = await client.open_session()
            async with client.stream(
                "POST", call_tool(1, "hold", key="k"), session, x_test_tag="drop"
            ) as stream:
                priming = await stream.next_event()
                await ctl.started["k"].wait()
            [dropped] = await recorder.wait_returned("drop", 1)
            assert dropped.statuses == [200]
            assert dropped.body_ends == 1
            assert app.statistics()["open_streams"] == 0
            assert app.statistics()["requests_in_flight"] == 1
            ctl.release("k")
            await ctl.finished["k"].wait()
            assert priming.id is not None
            async with client.stream("GET", session=session, last_event_id=priming.id) as resumed:
                blocks = await resumed.read_to_end()
            assert response_messages_from(blocks) == [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "result": {"content": [{"type": "text", "text": "released k"}]},
                }
            ]
    assert logs.errors() == []


def response_messages_from(blocks: list[Any]) -> list[dict[str, Any]]:
    return [m for b in blocks if (m := b.message) is not None]


async def test_http2_stream_resets_are_disconnects(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch, accept_loop: str
) -> None:
    """Over HTTP/2 a client can drop one stream (RST_STREAM) and keep the connection:
    the app must notice that too, complete each response once, and keep serving the
    other streams of the same connection."""
    app = McpHttpApp(mcp_server, TransportConfig())
    recorder = Recorder(app)
    with trio.fail_after(20):
        async with hypercorn_serving(recorder, app, accept_loop=accept_loop) as port:
            client = await H2Client.open(port)
            try:
                init = await client.request("POST", POST_HEADERS, json.dumps(initialize()).encode())
                await client.wait(lambda: client.streams[init].ended)
                assert client.streams[init].status == 200
                session = client.streams[init].headers["mcp-session-id"]
                headers = {"mcp-session-id": session, "mcp-protocol-version": LATEST}
                await wait_idle(app)
                baseline = app.statistics()

                get = await client.request(
                    "GET", headers | {"accept": "text/event-stream", "x-test-tag": "h2-get"}
                )
                post = await client.request(
                    "POST",
                    POST_HEADERS | headers | {"x-test-tag": "h2-post"},
                    json.dumps(call_tool(1, "hold", key="h2")).encode(),
                )
                partial_body = await client.request(
                    "POST",
                    POST_HEADERS | headers | {"x-test-tag": "h2-body"},
                    b'{"jsonrpc": "2.0", ',
                    end=False,
                )
                await client.wait(
                    lambda: bool(client.streams[get].blocks) and bool(client.streams[post].blocks)
                )
                await ctl.started["h2"].wait()
                for stream_id in (get, post, partial_body):
                    await client.reset(stream_id)

                [get_call] = await recorder.wait_returned("h2-get", 1)
                [post_call] = await recorder.wait_returned("h2-post", 1)
                [body_call] = await recorder.wait_returned("h2-body", 1)
                assert get_call.statuses == [200]
                assert post_call.statuses == [200]
                assert body_call.statuses == [499]
                assert all(c.body_ends == 1 for c in (get_call, post_call, body_call))
                assert not ctl.cancelled["h2"].is_set()  # a disconnect is no cancellation

                # The connection itself is fine: another stream on it is served.
                echo = await client.request(
                    "POST", POST_HEADERS | headers, json.dumps(call_tool(2, "echo", text="h2 ok")).encode()
                )
                await client.wait(lambda: client.streams[echo].ended)
                assert client.streams[echo].status == 200
                [answer] = [m for b in client.streams[echo].blocks if (m := b.message) is not None]
                assert answer["result"]["content"][0]["text"] == "h2 ok"

                ctl.release("h2")
                await ctl.finished["h2"].wait()
                await wait_idle(app)
                stats = app.statistics()
                for key in ("sessions", "requests_in_flight", "http_calls_in_flight", "open_streams"):
                    assert stats[key] == baseline[key], (key, stats, baseline)
            finally:
                await client.aclose()
    assert logs.errors() == []
