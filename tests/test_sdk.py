"""Servers written for the official MCP Python SDK and for FastMCP, served unmodified.

The servers are in ``sdk_servers.py``; the client is the official Python client (on
asyncio in a worker thread, as its users run it), over real HTTP to our Hypercorn
server on 127.0.0.1, in the 2025 session era (``mode="legacy"``) and the 2026-07-28
era (``mode="auto"``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
import sdk_servers
import trio
from conftest import LogWatch
from helpers import (
    LATEST,
    POST_HEADERS,
    HttpStream,
    Recorder,
    call_tool,
    hypercorn_serving,
    initialize,
    raw_request,
    response_messages,
    send_raw,
    wait_idle,
)
from helpers import Client as HelperClient
from mcp import Client
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

from trio_mcp_http import ConfigError, McpHttpApp, TransportConfig, UsageError, open_mcp_server
from trio_mcp_http.serving.cli import load_server

KINDS: dict[str, Callable[[], Any]] = {
    "mcpserver": lambda: sdk_servers.mcpserver,
    "lowlevel": lambda: sdk_servers.lowlevel,
    "fastmcp": sdk_servers.make_fastmcp,
}
EXPECTED_VERSION = {"legacy": "2025-11-25", "auto": "2026-07-28"}

#: The SDK warns that logging is deprecated as of 2026-07-28 whenever a handler logs.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


def _texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


async def _in_asyncio(body: Callable[[], Any]) -> None:
    """Run the official client's coroutine on asyncio, in a worker thread."""

    async def main() -> None:
        async with asyncio.timeout(20):
            await body()

    await trio.to_thread.run_sync(asyncio.run, main())


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("kind", ["mcpserver", "fastmcp"])
async def test_official_client_round_trip(kind: str, mode: str, logs: LogWatch) -> None:
    server = KINDS[kind]()
    progress: list[tuple[float, float | None, str | None]] = []
    log_lines: list[Any] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        # FastMCP logs {"msg": ..., "extra": ...}; the SDK logs the text.
        data = params.data
        log_lines.append(data["msg"] if isinstance(data, dict) else data)

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def use(url: str) -> None:
        async with Client(url, mode=mode, elicitation_callback=on_elicit, logging_callback=on_log) as client:
            assert client.protocol_version == EXPECTED_VERSION[mode]
            assert client.server_info is not None
            assert client.server_info.name == f"sdk-{kind}"
            listed = await client.list_tools()
            assert {"echo", "progress", "ask_name"} <= {t.name for t in listed.tools}
            assert _texts(await client.call_tool("echo", {"text": "héllo 世界"})) == ["héllo 世界"]
            done = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
            assert _texts(done) == ["done 3"]
            if mode == "legacy":
                # A server-to-client request, answered by the client's POST.
                greeted = await client.call_tool("ask_name", {})
                assert _texts(greeted)[0].endswith(", Ada!")
            read = await client.read_resource("note://hello")
            assert [c.text for c in read.contents if isinstance(c, types.TextResourceContents)] == [
                "hello from a resource"
            ]
            prompt = await client.get_prompt("greet", {"name": "Bob"})
            assert "Please greet Bob." in str(prompt.messages[0].content)

    with trio.fail_after(40):
        async with open_mcp_server(server, port=0) as handle:
            await _in_asyncio(lambda: use(handle.url))
            assert progress == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]
            if mode == "legacy":
                # Log messages reach a session (2026-07-28 retires the logging capability).
                assert [line for line in log_lines if "of 3" in str(line)] == [
                    f"step {n} of 3" for n in (1, 2, 3)
                ]
            await wait_idle(handle.app)
            stats = handle.statistics()
            assert stats["sessions"] == 0, stats
            assert stats["requests_in_flight"] == 0
    assert logs.errors() == []


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_lowlevel_server(mode: str, logs: LogWatch) -> None:
    async def use(url: str) -> None:
        async with Client(url, mode=mode) as client:
            assert client.protocol_version == EXPECTED_VERSION[mode]
            assert [t.name for t in (await client.list_tools()).tools] == ["echo"]
            assert _texts(await client.call_tool("echo", {"text": "low"})) == ["low"]
            missing = await client.call_tool("nope", {})
            assert missing.is_error

    with trio.fail_after(30):
        async with open_mcp_server(sdk_servers.lowlevel, port=0) as handle:
            await _in_asyncio(lambda: use(handle.url))
    assert logs.errors() == []


async def test_the_lifespan_spans_the_app_and_its_state_reaches_handlers() -> None:
    sdk_servers.events.clear()
    app = McpHttpApp(sdk_servers.mcpserver)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        assert sdk_servers.events == ["lifespan start"]
        nursery.cancel_scope.cancel()
    assert sdk_servers.events == ["lifespan start", "lifespan end"]


async def test_a_disconnect_cancels_an_sdk_handler_and_the_drain_answers_in_flight_calls() -> None:
    sdk_servers.events.clear()
    for table in (sdk_servers.started, sdk_servers.release, sdk_servers.finished):
        table.clear()
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }

    def call(request_id: int, name: str, **arguments: Any) -> dict[str, Any]:
        params = {"name": name, "arguments": arguments, "_meta": meta}
        return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}

    def modern(name: str) -> dict[str, str]:
        return {**headers, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": name}

    with trio.fail_after(30):
        async with (
            open_mcp_server(sdk_servers.mcpserver, port=0, grace_period=0.2) as handle,
            httpx.AsyncClient(timeout=10) as http,
        ):
            # A client that leaves: its handler is cancelled (2026-07-28: a disconnect
            # cancels the request).
            with trio.move_on_after(0.3):
                await http.post(handle.url, headers=modern("slow"), json=call(1, "slow", seconds=60))
            await wait_idle(handle.app)
            assert "slow cancelled" in sdk_servers.events
            # A call in flight at shutdown: answered (with an error, after the grace
            # period), never cut off.
            answers: list[httpx.Response] = []

            async def in_flight() -> None:
                body = call(2, "hold", key="shutdown")
                answers.append(await http.post(handle.url, headers=modern("hold"), json=body))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(in_flight)
                await sdk_servers._event(sdk_servers.started, "shutdown").wait()
                handle.shutdown()
            assert len(answers) == 1
            assert answers[0].json()["error"]["message"] == "Server shutting down: request cancelled"


async def test_asyncio_only_handler_code_is_a_clear_error_not_a_hang(logs: LogWatch) -> None:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with trio.fail_after(20):
        async with (
            open_mcp_server(sdk_servers.mcpserver, port=0, json_response=True) as handle,
            httpx.AsyncClient(timeout=10) as http,
        ):
            opened = await http.post(handle.url, headers=headers, json=initialize(0))
            session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "uses_asyncio"}}
            answer = (await http.post(handle.url, headers=session, json=body)).json()
            body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo"}}
            body["params"]["arguments"] = {"text": "still here"}
            echoed = (await http.post(handle.url, headers=session, json=body)).json()
            assert echoed["result"]["content"][0]["text"] == "still here"
    # MCPServer reports a failing tool as a tool error (and logs its traceback, where
    # Trio names the cause); the server goes on serving.
    assert answer["result"]["isError"] is True, answer
    assert "uses_asyncio" in answer["result"]["content"][0]["text"]
    causes = [str(r.exc_info[1].__cause__) for r in logs.records if r.exc_info and r.exc_info[1]]
    assert any("like asyncio" in cause for cause in causes), causes


def test_what_cannot_be_served_is_a_type_error() -> None:
    for thing in (object(), "server", sdk_servers.Name(name="x")):
        with pytest.raises(UsageError, match="cannot serve") as caught:
            McpHttpApp(thing)
        assert isinstance(caught.value, TypeError)


def test_the_command_line_loads_sdk_servers(tmp_path: Path) -> None:
    (tmp_path / "my_sdk_server.py").write_text(
        "from mcp.server.mcpserver import MCPServer\n"
        "mcp = MCPServer('from-the-cli')\n"
        "@mcp.tool()\n"
        "async def hi() -> str:\n"
        "    return 'hi'\n"
    )
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trio_mcp_http.serving.cli import load_server; print(load_server('my_sdk_server:mcp'))",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "MCPServer 'from-the-cli'" in loaded.stdout
    assert "lowlevel.Server 'sdk-lowlevel'" in repr(load_server("sdk_servers:lowlevel"))


class _Stamp(BaseHTTPMiddleware):
    """A typical user middleware: looks at the request, decorates the response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-through-middleware"] = request.method
        return response


EACH = 30


@pytest.mark.parametrize("json_response", [False, True], ids=["sse", "json"])
async def test_clients_vanishing_behind_base_http_middleware(json_response: bool, logs: LogWatch) -> None:
    """200 clients vanish mid-body, after the body and mid-stream: each exchange is
    completed (499 where the client left), the middleware never sees a missing response,
    and the SDK server goes on serving."""
    for table in (sdk_servers.started, sdk_servers.release, sdk_servers.finished):
        table.clear()
    config = TransportConfig(json_response=json_response, max_requests_per_session=500)
    app = McpHttpApp(sdk_servers.mcpserver, config)
    recorder = Recorder(_Stamp(app))
    n_each = 200 // 3 + 1
    with trio.fail_after(60):
        async with hypercorn_serving(recorder, app) as port, httpx.AsyncClient(timeout=20) as http:
            client = HelperClient(http, f"http://127.0.0.1:{port}/mcp")
            session = await client.open_session()
            headers = POST_HEADERS | {"mcp-protocol-version": LATEST, "mcp-session-id": session}

            async def mid_body(n: int) -> None:
                body = json.dumps(call_tool(n, "echo", text="y" * 3000)).encode()
                data = raw_request(
                    "POST", port, body, headers | {"x-test-tag": f"body-{n}"}, chunked=n % 2 == 0
                )
                stream = await send_raw(port, data[: len(data) - 1000])
                await stream.aclose()

            async def after_body(n: int) -> None:
                key = f"after-{n}"
                body = json.dumps(call_tool(10_000 + n, "hold", key=key)).encode()
                stream = await HttpStream.open(port, "POST", headers | {"x-test-tag": key}, body)
                await sdk_servers._event(sdk_servers.started, key).wait()
                await stream.aclose()

            async def mid_stream(n: int) -> None:
                key = f"stream-{n}"
                call = call_tool(20_000 + n, "hold", meta={"progressToken": key}, key=key)
                stream = await HttpStream.open(
                    port, "POST", headers | {"x-test-tag": key}, json.dumps(call).encode()
                )
                assert await stream.read_head() == 200
                assert stream.headers["x-through-middleware"] == "POST"
                _, first = await stream.next_message()
                assert first.get("params", {}).get("progressToken") == key, first
                await stream.aclose()

            async with trio.open_nursery() as nursery:
                for n in range(n_each):
                    nursery.start_soon(mid_body, n)
                    nursery.start_soon(after_body, n)
                    if not json_response:
                        nursery.start_soon(mid_stream, n)

            for call in await recorder.wait_returned("body-", n_each):
                assert call.statuses == [499], call
                assert call.body_ends == 1, call
            for call in await recorder.wait_returned("after-", n_each):
                # In JSON mode the client waited for the answer: 499.  With SSE the
                # stream had started (200) and ends when the client leaves.
                assert call.statuses == ([499] if json_response else [200]), call
                assert call.body_ends == 1, call
            if not json_response:
                for call in await recorder.wait_returned("stream-", n_each):
                    assert call.statuses == [200], call
                    assert call.body_ends == 1, call
            for key in list(sdk_servers.started):
                sdk_servers._event(sdk_servers.release, key).set()
            for key in list(sdk_servers.started):
                await sdk_servers._event(sdk_servers.finished, key).wait()

            echo = await client.post(call_tool(1, "echo", text="after the storm"), session)
            assert echo.headers["x-through-middleware"] == "POST"
            assert response_messages(echo)[-1]["result"]["content"][0]["text"] == "after the storm"
            await wait_idle(app)
            stats = app.statistics()
            assert (stats["requests_in_flight"], stats["open_streams"], stats["http_calls_in_flight"]) == (
                0,
                0,
                0,
            )
    no_response = [r for r in logs.records if "No response returned" in r.getMessage()]
    assert no_response == []
    assert logs.errors() == []


async def test_asyncio_only_code_in_a_lowlevel_handler_or_a_lifespan_is_named(logs: LogWatch) -> None:
    import asyncio
    from contextlib import asynccontextmanager

    from mcp.server.lowlevel import Server

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        await asyncio.sleep(0)
        raise AssertionError("unreachable on trio")

    server: Server[Any] = Server("asyncio-handler", on_call_tool=call_tool)
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with trio.fail_after(20):
        async with (
            open_mcp_server(server, port=0, json_response=True) as handle,
            httpx.AsyncClient(timeout=10) as http,
        ):
            opened = await http.post(handle.url, headers=headers, json=initialize(0))
            session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}
            answer = (await http.post(handle.url, headers=session, json=body)).json()
    assert answer["error"] == {
        "code": -32603,
        "message": "Internal error: the tools/call handler cannot run on this server",
    }
    assert any("asyncio-only code, which cannot run on Trio" in line for line in logs.errors())

    @asynccontextmanager
    async def lifespan(server: Any) -> Any:
        await asyncio.sleep(0)
        yield {}

    with pytest.raises(ConfigError, match=r"lifespan of mcp\.server\.lowlevel\.Server 'asyncio-life'"):
        async with open_mcp_server(Server("asyncio-life", lifespan=lifespan), port=0):
            pass
