"""The stateless 2026-07-28 era, served beside the session era on the same endpoint."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing
from helpers import (
    Controller,
    H2Client,
    SseParser,
    call_tool,
    messages_of,
    raw_request,
    response_messages,
    serving,
)

from trio_mcp_http import Context, McpServer

MODERN = "2026-07-28"


def meta(**extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": extra.pop("capabilities", {}),
        "io.modelcontextprotocol/clientInfo": {"name": "modern-tests", "version": "0"},
    }
    value.update(extra)
    return value


def modern_request(
    request_id: int | str, method: str, params: dict[str, Any] | None = None, **m: Any
) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {**(params or {}), "_meta": meta(**m)},
    }


def modern_headers(body: dict[str, Any], **extra: str) -> dict[str, str]:
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": body["method"],
    }
    params = body.get("params", {})
    if body["method"] in ("tools/call", "prompts/get"):
        headers["mcp-name"] = params["name"]
    elif body["method"] == "resources/read":
        headers["mcp-name"] = params["uri"]
    for name, value in extra.items():
        headers.pop(name.lower(), None)
        headers[name] = value
    return headers


async def post_modern(client: Any, body: dict[str, Any], **extra: str) -> Any:
    return await client.http.post(
        client.url, content=json.dumps(body).encode(), headers=modern_headers(body, **extra)
    )


def only_message(response: Any) -> dict[str, Any]:
    messages = response_messages(response)
    assert len(messages) == 1, messages
    return messages[0]


async def test_discover_and_call_carry_result_type_server_info_and_no_session(mcp_server: McpServer) -> None:
    async with serving(mcp_server) as (_handle, client):
        with trio.fail_after(10):
            discover = await post_modern(client, modern_request(1, "server/discover"))
            assert discover.status_code == 200
            assert "mcp-session-id" not in discover.headers
            result = only_message(discover)["result"]
            assert result["supportedVersions"] == [MODERN]
            assert result["resultType"] == "complete"
            assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "lifecycle-test"
            assert isinstance(result["ttlMs"], int)
            assert result["cacheScope"] in ("public", "private")

            body = modern_request(2, "tools/call", {"name": "echo", "arguments": {"text": "世界"}})
            call = await post_modern(client, body)
            assert call.status_code == 200
            answer = only_message(call)
            assert answer["id"] == 2
            assert answer["result"]["content"] == [{"type": "text", "text": "世界"}]
            assert answer["result"]["resultType"] == "complete"
            assert "ttlMs" not in answer["result"]


async def test_header_and_meta_validation(mcp_server: McpServer) -> None:
    async with serving(mcp_server) as (_handle, client):
        with trio.fail_after(10):
            body = modern_request(3, "tools/list")
            mismatch = await post_modern(client, body, **{"mcp-method": "prompts/list"})
            assert mismatch.status_code == 400
            assert only_message(mismatch)["error"]["code"] == -32020
            assert only_message(mismatch)["id"] == 3

            case = await post_modern(client, body, **{"mcp-method": "TOOLS/LIST"})
            assert case.status_code == 400

            unsupported = modern_request(4, "server/discover")
            unsupported["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "1900-01-01"
            refused = await post_modern(client, unsupported, **{"mcp-protocol-version": "1900-01-01"})
            assert refused.status_code == 400
            error = only_message(refused)["error"]
            assert error["code"] == -32022
            assert error["data"] == {"supported": [MODERN], "requested": "1900-01-01"}

            header_vs_meta = modern_request(5, "server/discover")
            header_vs_meta["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2025-11-25"
            refused = await post_modern(client, header_vs_meta)
            assert (refused.status_code, only_message(refused)["error"]["code"]) == (400, -32020)

            no_meta = {"jsonrpc": "2.0", "id": 6, "method": "server/discover", "params": {}}
            refused = await post_modern(client, no_meta)
            assert (refused.status_code, only_message(refused)["error"]["code"]) == (400, -32602)

            for method in ("ping", "initialize", "logging/setLevel", "foo/bar"):
                gone = await post_modern(client, modern_request(7, method))
                assert gone.status_code == 404, method
                assert only_message(gone)["error"]["code"] == -32601

            call = modern_request(8, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
            wrong_name = await post_modern(client, call, **{"mcp-name": "other"})
            assert (wrong_name.status_code, only_message(wrong_name)["error"]["code"]) == (400, -32020)
            # Header names are case-insensitive (2026-07-28 basic/transports/streamable-http
            # §case sensitivity); h11 itself folds them.
            upper = await post_modern(client, call, **{"MCP-NAME": "echo", "MCP-METHOD": "tools/call"})
            assert upper.status_code == 200, upper.text
            base64_name = await post_modern(
                client, call, **{"mcp-name": "=?base64?ZWNobw==?=", "mcp-method": "tools/call"}
            )
            assert base64_name.status_code == 200, base64_name.text


async def test_disconnect_cancels_the_handler_and_leaves_nothing_behind(
    ctl: Controller, mcp_server: McpServer
) -> None:
    """Closing the response is cancellation in 2026-07-28 (2026-07-28
    basic/transports/streamable-http §cancellation)."""
    async with serving(mcp_server) as (handle, _client):
        baseline = handle.statistics()
        body = modern_request(9, "tools/call", {"name": "hold", "arguments": {"key": "m1"}})
        raw = raw_request("POST", handle.port, json.dumps(body).encode(), modern_headers(body))
        with trio.fail_after(10):
            # A raw socket: the response has no headers yet (it starts with the result).
            async with await trio.open_tcp_stream("127.0.0.1", handle.port) as sock:
                await sock.send_all(raw)
                await ctl.started["m1"].wait()
                assert handle.statistics()["requests_in_flight"] == 1
            # Leaving the block closes the connection mid-call.
            await ctl.cancelled["m1"].wait()
            await ctl.finished["m1"].wait()
            while handle.statistics() != baseline:
                await trio.lowlevel.checkpoint()
        assert not ctl.gates["m1"].is_set()


def _tasks_running(function_name: str) -> int:
    """How many tasks of this trio run are in a coroutine function of that name."""
    count = 0
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        count += task.coro.cr_code.co_name == function_name
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


async def test_serve_notices_departures_without_a_watcher_task(
    ctl: Controller, mcp_server: McpServer
) -> None:
    """Under ``serve()`` the connection tells the app that a client has gone, over
    HTTP/1.1 (the connection closes) and HTTP/2 (the stream is reset): the handler is
    cancelled as with a watcher, but no task waits in ``receive()`` for it."""
    async with serving(mcp_server) as (handle, _client):
        baseline = handle.statistics()
        with trio.fail_after(10):
            body = modern_request(1, "tools/call", {"name": "hold", "arguments": {"key": "h1"}})
            raw = raw_request("POST", handle.port, json.dumps(body).encode(), modern_headers(body))
            async with await trio.open_tcp_stream("127.0.0.1", handle.port) as sock:
                await sock.send_all(raw)
                await ctl.started["h1"].wait()
                assert _tasks_running("watch_disconnect") == 0
            await ctl.cancelled["h1"].wait()

            h2 = await H2Client.open(handle.port)
            try:
                body = modern_request(2, "tools/call", {"name": "hold", "arguments": {"key": "h2"}})
                held = await h2.request("POST", modern_headers(body), json.dumps(body).encode())
                await ctl.started["h2"].wait()
                assert _tasks_running("watch_disconnect") == 0
                await h2.reset(held)
                await ctl.cancelled["h2"].wait()
                # The connection and its other streams go on.
                body = modern_request(3, "tools/call", {"name": "echo", "arguments": {"text": "still here"}})
                echo = await h2.request("POST", modern_headers(body), json.dumps(body).encode())
                await h2.wait(lambda: h2.streams[echo].ended)
                assert h2.streams[echo].status == 200
                assert b"still here" in h2.streams[echo].data
            finally:
                await h2.aclose()
            while handle.statistics() != baseline:
                await trio.lowlevel.checkpoint()
    assert not ctl.gates["h1"].is_set()
    assert not ctl.gates["h2"].is_set()


async def test_session_and_stateless_clients_share_one_server(ctl: Controller, mcp_server: McpServer) -> None:
    """A 2025-11-25 session and 2026-07-28 requests at the same time (2026-07-28
    basic/versioning §backward compatibility with initialization-based versions)."""
    async with serving(mcp_server) as (handle, client):
        with trio.fail_after(15):
            session = await client.open_session()
            async with trio.open_nursery() as nursery:
                legacy_answer: list[dict[str, Any]] = []

                async def legacy_call() -> None:
                    response = await client.post(call_tool(1, "hold", key="legacy"), session)
                    legacy_answer.extend(response_messages(response))

                nursery.start_soon(legacy_call)
                await ctl.started["legacy"].wait()
                for i in range(5):
                    body = modern_request(
                        100 + i, "tools/call", {"name": "echo", "arguments": {"text": f"m{i}"}}
                    )
                    response = await post_modern(client, body)
                    assert response.status_code == 200
                    assert "mcp-session-id" not in response.headers
                    assert only_message(response)["result"]["content"][0]["text"] == f"m{i}"
                # The session is untouched by the stateless traffic.
                listed = await client.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
                assert "tools" in response_messages(listed)[-1]["result"]
                ctl.release("legacy")
            assert legacy_answer[-1]["result"]["content"][0]["text"] == "released legacy"
            assert handle.statistics()["sessions"] == 1


async def test_input_required_round_trip_and_tampering(mcp_server: McpServer) -> None:
    async with serving(mcp_server) as (_handle, client):
        with trio.fail_after(10):
            first = modern_request(
                10, "tools/call", {"name": "ask_name", "arguments": {}}, capabilities={"elicitation": {}}
            )
            response = await post_modern(client, first)
            result = only_message(response)["result"]
            assert result["resultType"] == "input_required"
            ((key, ask),) = result["inputRequests"].items()
            assert ask["method"] == "elicitation/create"
            state = result["requestState"]

            retry = modern_request(
                11,
                "tools/call",
                {
                    "name": "ask_name",
                    "arguments": {},
                    "requestState": state,
                    "inputResponses": {key: {"action": "accept", "content": {"name": "Ada"}}},
                },
                capabilities={"elicitation": {}},
            )
            done = only_message(await post_modern(client, retry))
            assert done["result"]["content"][0]["text"] == "Hello, Ada!"

            retry["params"]["requestState"] = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
            tampered = only_message(await post_modern(client, retry))
            assert tampered["error"]["code"] == -32602

            bad_answer = modern_request(
                12,
                "tools/call",
                {"name": "ask_name", "arguments": {}, "inputResponses": {key: 12345}},
                capabilities={"elicitation": {}},
            )
            refused = only_message(await post_modern(client, bad_answer))
            assert refused["error"]["code"] == -32602

            no_capability = modern_request(13, "tools/call", {"name": "ask_name", "arguments": {}})
            response = await post_modern(client, no_capability)
            assert response.status_code == 400
            error = only_message(response)["error"]
            assert error["code"] == -32021
            assert error["data"] == {"requiredCapabilities": {"elicitation": {}}}


def logging_server() -> McpServer:
    server = McpServer("logs", "1")

    @server.tool()
    async def noisy(ctx: Context) -> str:
        """Log at two levels."""
        await ctx.debug("debug line")
        await ctx.warning("warning line")
        return "ok"

    return server


async def test_log_messages_only_when_the_request_asks() -> None:
    async with serving(logging_server()) as (_handle, client):
        with trio.fail_after(10):
            quiet = await post_modern(
                client, modern_request(1, "tools/call", {"name": "noisy", "arguments": {}})
            )
            assert [m.get("method") for m in response_messages(quiet)] == [None]

            body = modern_request(
                2,
                "tools/call",
                {"name": "noisy", "arguments": {}},
                **{"io.modelcontextprotocol/logLevel": "warning"},
            )
            loud = await post_modern(client, body)
            assert loud.headers["content-type"].startswith("text/event-stream")
            messages = response_messages(loud)
            logs = [m["params"]["data"] for m in messages if m.get("method") == "notifications/message"]
            assert logs == ["warning line"]
            assert messages[-1]["result"]["content"][0]["text"] == "ok"


async def test_listen_acknowledges_filters_tags_and_ends_on_shutdown() -> None:
    server = McpServer("listen", "1")

    @server.tool()
    async def change_tools() -> str:
        """Announce a tools change."""
        server.notify_tools_changed()
        return "changed"

    @server.prompt()
    async def hello() -> str:
        """A prompt, so prompts can change too."""
        return "hello"

    async with serving(server, grace_period=0.5) as (handle, client):
        body = modern_request("L1", "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
        parser = SseParser()
        blocks: list[Any] = []
        with trio.fail_after(10):
            async with client.http.stream(
                "POST", client.url, content=json.dumps(body).encode(), headers=modern_headers(body)
            ) as stream:
                chunks = stream.aiter_raw()
                while not messages_of(blocks):
                    blocks += parser.feed(await chunks.__anext__())
                ack = messages_of(blocks)[0]
                assert ack["method"] == "notifications/subscriptions/acknowledged"
                assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L1"
                assert ack["params"]["notifications"] == {"toolsListChanged": True}

                server.notify_prompts_changed()  # not asked for: must not arrive
                trigger = modern_request(2, "tools/call", {"name": "change_tools", "arguments": {}})
                assert (await post_modern(client, trigger)).status_code == 200
                while len(messages_of(blocks)) < 2:
                    blocks += parser.feed(await chunks.__anext__())
                changed = messages_of(blocks)[1]
                assert changed["method"] == "notifications/tools/list_changed"
                assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L1"

                handle.shutdown()
                async for chunk in chunks:
                    blocks += parser.feed(chunk)
        messages = messages_of(blocks)
        assert [m.get("method") for m in messages] == [
            "notifications/subscriptions/acknowledged",
            "notifications/tools/list_changed",
            None,
        ]
        assert messages[-1] == {
            "jsonrpc": "2.0",
            "id": "L1",
            "result": {"resultType": "complete", "_meta": {"io.modelcontextprotocol/subscriptionId": "L1"}},
        }
        assert not parser.pending


async def test_drain_cancels_a_running_stateless_call_with_an_error(
    ctl: Controller, mcp_server: McpServer
) -> None:
    async with serving(mcp_server, grace_period=0.2) as (handle, client):
        body = modern_request(20, "tools/call", {"name": "hold", "arguments": {"key": "d1"}})
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                answers: list[Any] = []

                async def call() -> None:
                    answers.append(await post_modern(client, body))

                nursery.start_soon(call)
                await ctl.started["d1"].wait()
                handle.shutdown()
        (response,) = answers
        assert response.status_code == 200
        error = only_message(response)["error"]
        assert error["code"] == -32603
        assert "shutting down" in error["message"]
        assert ctl.cancelled["d1"].is_set()


async def test_a_slow_stateless_reader_never_blocks_its_handler(
    mcp_server: McpServer, mock_clock: trio.testing.MockClock
) -> None:
    """Notifications of a 2026-07-28 request go through the same bounded channel as
    every stream: a reader that stops reading never blocks the handler; once it falls a
    whole buffer behind, its stream ends and (this era cannot resume) the call with it.
    A reader that keeps up gets every notification, then the result, with keep-alive
    comments while the handler is quiet."""
    from helpers import AsgiCall

    from trio_mcp_http import McpHttpApp, TransportConfig

    @mcp_server.tool()
    async def quiet_then_done(ctx: Context) -> str:
        await ctx.notify("notifications/message", {"level": "info", "data": "started"})
        await trio.sleep(40)
        return "done"

    app = McpHttpApp(mcp_server, TransportConfig(stream_buffer_size=16, keepalive_interval=15.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        body = modern_request(1, "tools/call", {"name": "chatter", "arguments": {"count": 500}})
        stalled = AsgiCall(app, "POST", modern_headers(body), json.dumps(body).encode())
        stalled.stall()
        nursery.start_soon(stalled.run)
        # Virtual time stands still: nothing can time out while everything settles.
        await trio.testing.wait_all_tasks_blocked()
        # The handler was cancelled, not left waiting on its reader.
        assert app.statistics()["requests_in_flight"] == 0
        stalled.resume()
        status, _ = await stalled.start()
        assert status == 200
        frames = await stalled.read_to_end()
        await stalled.done.wait()
        messages = [block.message for block in frames if block.message]
        assert 0 < len(messages) <= 17
        assert not any("result" in m for m in messages)

        mock_clock.autojump_threshold = 0
        body = modern_request(2, "tools/call", {"name": "quiet_then_done", "arguments": {}})
        reader = AsgiCall(app, "POST", modern_headers(body), json.dumps(body).encode())
        nursery.start_soon(reader.run)
        status, headers = await reader.start()
        assert headers["content-type"] == "text/event-stream"
        blocks = await reader.read_to_end()
        assert [b.comment for b in blocks if b.comment is not None] == ["", ""]
        assert blocks[-1].message is not None
        assert blocks[-1].message["id"] == 2
        assert blocks[-1].message["result"]["content"][0]["text"] == "done"
        await reader.done.wait()
        assert app.statistics() == {**app.statistics(), "requests_in_flight": 0, "http_calls_in_flight": 0}
        nursery.cancel_scope.cancel()


async def test_a_handler_catching_exception_cannot_swallow_input_required(mcp_server: McpServer) -> None:
    """Asking for input in this era unwinds the handler with a control-flow signal that,
    like trio.Cancelled, is not an Exception: a broad ``except Exception`` lets it by."""

    @mcp_server.tool()
    async def careless(ctx: Context) -> str:
        try:
            answer = await ctx.elicit("Sure?", {"type": "object", "properties": {}}, key="sure")
        except Exception:
            return "swallowed"
        return f"answered {answer['action']}"

    async with serving(mcp_server) as (_handle, client):
        with trio.fail_after(10):
            ask = modern_request(
                1, "tools/call", {"name": "careless", "arguments": {}}, capabilities={"elicitation": {}}
            )
            result = only_message(await post_modern(client, ask))["result"]
            assert result["resultType"] == "input_required"
            assert list(result["inputRequests"]) == ["sure"]
