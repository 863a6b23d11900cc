"""The ASGI app behind Starlette's BaseHTTPMiddleware, on Hypercorn's trio worker.

BaseHTTPMiddleware raises "No response returned." when the app it wraps returns without
starting a response; clients that vanish mid-POST are the classic trigger.  Guarantee 1
(a response is always completed, 499 if the client left) must keep it quiet.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio
from conftest import LogWatch
from helpers import (
    LATEST,
    POST_HEADERS,
    Client,
    Controller,
    HttpStream,
    Recorder,
    call_tool,
    hypercorn_serving,
    raw_request,
    response_messages,
    send_raw,
    wait_idle,
)
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

from trio_mcp_http import McpHttpApp, McpServer, TransportConfig

EACH = 30


class Stamp(BaseHTTPMiddleware):
    """A typical user middleware: looks at the request, decorates the response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-through-middleware"] = request.method
        return response


def _no_response_errors(logs: LogWatch) -> list[str]:
    return [
        r.getMessage() + repr(r.exc_info[1] if r.exc_info else None)
        for r in logs.records
        if "No response returned" in r.getMessage()
        or (r.exc_info and "No response returned" in str(r.exc_info[1]))
    ]


async def test_base_http_middleware_survives_disconnects_mid_post(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch
) -> None:
    sse_app = McpHttpApp(mcp_server, TransportConfig(path="/mcp"))
    json_app = McpHttpApp(mcp_server, TransportConfig(path="/json", json_response=True))

    async def route(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await (json_app if scope.get("path") == "/json" else sse_app)(scope, receive, send)

    recorder = Recorder(Stamp(route))
    with trio.fail_after(60):
        async with (
            hypercorn_serving(recorder, sse_app, json_app) as port,
            httpx.AsyncClient(timeout=20) as http,
        ):
            sse_client = Client(http, f"http://127.0.0.1:{port}/mcp")
            json_client = Client(http, f"http://127.0.0.1:{port}/json")
            sse_session = await sse_client.open_session()
            json_session = await json_client.open_session()
            session_headers = {"mcp-protocol-version": LATEST}

            async def mid_body(n: int) -> None:
                body = json.dumps(call_tool(n, "echo", text="y" * 3000)).encode()
                headers = (
                    POST_HEADERS
                    | session_headers
                    | {"mcp-session-id": sse_session, "x-test-tag": f"body-{n}"}
                )
                data = raw_request("POST", port, body, headers, chunked=n % 2 == 0)
                stream = await send_raw(port, data[: len(data) - 1000])
                await stream.aclose()

            async def after_body(n: int) -> None:
                key = f"after-{n}"
                body = json.dumps(call_tool(n, "hold", key=key)).encode()
                headers = (
                    POST_HEADERS
                    | session_headers
                    | {"mcp-session-id": json_session, "x-test-tag": f"after-{n}"}
                )
                stream = await HttpStream.open(port, "POST", headers, body, path="/json")
                await ctl.started[key].wait()
                await stream.aclose()

            async def mid_stream(n: int) -> None:
                key = f"stream-{n}"
                body = json.dumps(call_tool(n, "scripted", key=key)).encode()
                headers = (
                    POST_HEADERS
                    | session_headers
                    | {"mcp-session-id": sse_session, "x-test-tag": f"stream-{n}"}
                )
                stream = await HttpStream.open(port, "POST", headers, body)
                assert await stream.read_head() == 200
                assert stream.headers["x-through-middleware"] == "POST"
                await ctl.started[key].wait()
                ctl.send(key, "notify", "hello")
                _, first = await stream.next_message()
                assert first["params"]["data"] == "hello"
                await stream.aclose()

            async with trio.open_nursery() as nursery:
                for n in range(EACH):
                    nursery.start_soon(mid_body, n)
                    nursery.start_soon(after_body, n)
                    nursery.start_soon(mid_stream, n)

            for call in await recorder.wait_returned("body-", EACH) + await recorder.wait_returned(
                "after-", EACH
            ):
                assert call.statuses == [499], call
                assert call.body_ends == 1, call
            for call in await recorder.wait_returned("stream-", EACH):
                assert call.statuses == [200], call
                assert call.body_ends == 1, call

            for n in range(EACH):
                ctl.release(f"after-{n}")
                ctl.send(f"stream-{n}", "return", "done")
            for n in range(EACH):
                await ctl.finished[f"after-{n}"].wait()
                await ctl.finished[f"stream-{n}"].wait()

            # Still serving through the middleware, on both apps.
            echo = await sse_client.post(call_tool(1, "echo", text="after the storm"), sse_session)
            assert echo.headers["x-through-middleware"] == "POST"
            assert response_messages(echo)[-1]["result"]["content"][0]["text"] == "after the storm"
            ping = await json_client.post({"jsonrpc": "2.0", "id": 2, "method": "ping"}, json_session)
            assert ping.json() == {"jsonrpc": "2.0", "id": 2, "result": {}}
            await wait_idle(sse_app)
            await wait_idle(json_app)
            for app in (sse_app, json_app):
                stats = app.statistics()
                assert (
                    stats["requests_in_flight"],
                    stats["open_streams"],
                    stats["http_calls_in_flight"],
                ) == (0, 0, 0)

    assert _no_response_errors(logs) == []
    assert logs.errors() == []


async def test_the_check_would_see_no_response_returned(logs: LogWatch) -> None:
    """Control: an app that returns without a response on disconnect, behind the same
    middleware and server, does produce the error the test above looks for."""

    async def naive(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # no response: what BaseHTTPMiddleware cannot cope with
            if not message.get("more_body"):
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})
                return

    recorder = Recorder(Stamp(naive))
    with trio.fail_after(20):
        async with hypercorn_serving(recorder) as port:
            data = raw_request(
                "POST", port, b"x" * 500, {"content-type": "application/json", "x-test-tag": "naive"}
            )
            stream = await send_raw(port, data[:-100])
            await stream.aclose()
            await recorder.wait_returned("naive", 1)
    assert _no_response_errors(logs) != []
