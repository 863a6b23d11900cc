"""The Trio client over a WebSocket (``open_mcp_client("ws://...")``) against this
project's server, over real Hypercorn on 127.0.0.1.

The session logic is the one that runs over Streamable HTTP; what these tests prove is
the wire: one socket carries the whole session, the answers find their callers, the
notifications their callbacks (in the order the server sent them), cancellation and the
server's own close are seen on both sides, and nothing (task, socket, warning) outlives
the block.  pytest runs with warnings as errors: a TCP stream left to the garbage
collector would fail the test that leaked it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
import trio
from conftest import LogWatch
from helpers import Controller, serving, wait_idle
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from trio_mcp_http import Context, McpError, McpServer, ProtocolError, UsageError
from trio_mcp_http.client import (
    ElicitationRequest,
    LogMessage,
    Notification,
    Progress,
    SamplingRequest,
    TransportError,
    open_mcp_client,
)
from trio_mcp_http.client.websocket import WebSocketClosed

NOTES = "file:///notes/"
IDLE = {"sessions": 0, "requests_in_flight": 0, "http_calls_in_flight": 0, "open_streams": 0}


def build(ctl: Controller) -> McpServer:
    server = McpServer("ws-client-test", "3.0.0", instructions="Over a socket.", page_size=2)

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text."""
        return text

    @server.tool()
    async def steps(ctx: Context, count: int) -> str:
        """Report progress and log each step."""
        for step in range(1, count + 1):
            await ctx.report_progress(step, count, f"step {step}")
            await ctx.info(f"did step {step}")
        return f"{count} steps"

    @server.tool()
    async def interview(ctx: Context) -> str:
        """Elicit, sample and list roots, then summarise."""
        answer = await ctx.elicit(
            "Name?", {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        )
        sampled = await ctx.sample([{"role": "user", "content": {"type": "text", "text": "hi"}}], 10)
        roots = await ctx.list_roots()
        uris = ",".join(root["uri"] for root in roots["roots"])
        return f"{answer['content']['name']}|{sampled['content']['text']}|{uris}"

    @server.tool()
    async def hold(key: str) -> str:
        """Wait until the test releases `key`."""
        with ctl.track(key):
            await ctl.gates[key].wait()
            return f"released {key}"

    @server.resource(NOTES + "a.txt", mime_type="text/plain")
    async def note_a() -> str:
        return "A"

    @server.resource(NOTES + "b.bin")
    async def note_b() -> bytes:
        return b"\x00\x01"

    @server.resource(NOTES + "{name}.md")
    async def note(name: str) -> str:
        return f"# {name}"

    @server.prompt()
    async def greet(name: str) -> str:
        """Greet someone."""
        return f"Hello {name}"

    @server.completion()
    async def complete(ref: dict[str, Any], argument: dict[str, Any], context: dict[str, Any]) -> list[str]:
        return [n for n in ("Ada", "Alan", "Grace") if n.startswith(argument["value"])]

    return server


@pytest.fixture
def server(ctl: Controller) -> McpServer:
    return build(ctl)


def ws_url(handle: Any) -> str:
    return "ws://" + handle.url.split("://", 1)[1]


def _client_tasks() -> set[str]:
    """The live tasks of the client and of trio-websocket (the server uses neither)."""
    found: set[str] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is not None:
            if task.name.startswith(("trio_mcp_http.client", "trio_websocket")):
                found.add(task.name)
            pending.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return found


# -- the client's surface over one socket ----------------------------------------------------


async def test_the_whole_surface_over_one_socket(server: McpServer, logs: LogWatch) -> None:
    progress: list[Progress] = []
    logged: list[str] = []
    asked: list[Any] = []

    async def on_progress(update: Progress) -> None:
        progress.append(update)

    async def on_log(message: LogMessage) -> None:
        logged.append(str(message.data))

    async def elicitation(request: ElicitationRequest) -> dict[str, Any]:
        asked.append(request)
        return {"action": "accept", "content": {"name": "Ada"}}

    async def sampling(request: SamplingRequest) -> dict[str, Any]:
        asked.append(request)
        return {"role": "assistant", "content": {"type": "text", "text": "sampled"}, "model": "m"}

    async def roots() -> list[dict[str, str]]:
        return [{"uri": "file:///work", "name": "work"}]

    async with serving(server) as (handle, _):
        with trio.fail_after(15):
            async with open_mcp_client(
                ws_url(handle), elicitation=elicitation, sampling=sampling, roots=roots, on_log=on_log
            ) as client:
                # A socket is a session: no server/discover, straight to initialize.
                assert (client.era, client.protocol_version) == ("session", "2025-11-25")
                assert client.server_info is not None
                assert client.server_info.name == "ws-client-test"
                assert client.details.instructions == "Over a socket."
                assert handle.statistics()["sessions"] == 1
                assert handle.statistics()["open_streams"] == 1  # the socket, and no GET stream

                tools = await client.list_tools()  # 4 tools over 2 pages
                assert [t.name for t in tools] == ["echo", "steps", "interview", "hold"]
                echoed = await client.call_tool("echo", {"text": "héllo 世界"})
                assert echoed.content[0].text == "héllo 世界"  # type: ignore[union-attr]

                await client.set_logging_level("info")
                stepped = await client.call_tool("steps", {"count": 3}, progress=on_progress)
                assert stepped.content[0].text == "3 steps"  # type: ignore[union-attr]
                assert [(p.progress, p.total, p.message) for p in progress] == [
                    (1, 3, "step 1"),
                    (2, 3, "step 2"),
                    (3, 3, "step 3"),
                ]
                # The log lines came on the socket before the answer: their callback has
                # seen them all by the time call_tool returns.
                assert logged == ["did step 1", "did step 2", "did step 3"]

                interviewed = await client.call_tool("interview")
                assert interviewed.content[0].text == "Ada|sampled|file:///work"  # type: ignore[union-attr]
                assert isinstance(asked[0], ElicitationRequest)
                assert asked[0].message == "Name?"
                assert isinstance(asked[1], SamplingRequest)

                resources = await client.list_resources()
                assert [r.uri for r in resources] == [NOTES + "a.txt", NOTES + "b.bin"]
                templates = await client.list_resource_templates()
                assert [t.uri_template for t in templates] == [NOTES + "{name}.md"]
                read = await client.read_resource(NOTES + "a.txt")
                assert read.contents[0].text == "A"  # type: ignore[union-attr]
                blob = await client.read_resource(NOTES + "b.bin")
                assert blob.contents[0].blob == "AAE="  # type: ignore[union-attr]
                templated = await client.read_resource(NOTES + "ünïcode.md")
                assert templated.contents[0].text == "# ünïcode"  # type: ignore[union-attr]

                prompts = await client.list_prompts()
                assert [p.name for p in prompts] == ["greet"]
                prompt = await client.get_prompt("greet", {"name": "Ada"})
                assert prompt.messages[0].content.text == "Hello Ada"  # type: ignore[union-attr]
                completion = await client.complete({"type": "ref/prompt", "name": "greet"}, "name", "A")
                assert completion.values == ["Ada", "Alan"]

                with pytest.raises(McpError) as unknown:
                    await client.call_tool("missing")
                assert unknown.value.code == -32602
                await client.ping()
        await wait_idle(handle.app)
        assert {k: handle.statistics()[k] for k in IDLE} == IDLE
    assert logs.warnings() == []


async def test_list_changes_and_resource_updates_reach_callbacks_and_listen_blocks(
    server: McpServer,
) -> None:
    changed: list[str] = []
    updated: list[str] = []
    seen: list[Notification] = []
    both = trio.Event()

    async def on_list_changed(kind: str) -> None:
        changed.append(kind)

    async def on_resource_updated(uri: str) -> None:
        updated.append(uri)
        both.set()

    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(
                ws_url(handle), on_list_changed=on_list_changed, on_resource_updated=on_resource_updated
            ) as client:
                await client.subscribe_resource(NOTES + "a.txt")
                async with client.listen(tools=True, resource_uris=[NOTES]) as subscription:
                    assert subscription.honoured["toolsListChanged"] is True
                    server.notify_tools_changed()
                    server.notify_resource_updated(NOTES + "a.txt")
                    async for notification in subscription:
                        seen.append(notification)
                        if len(seen) == 2:
                            break
                    await both.wait()
                assert [n.method for n in seen] == [
                    "notifications/tools/list_changed",
                    "notifications/resources/updated",
                ]
                assert changed == ["tools"]
                assert updated == [NOTES + "a.txt"]
                await client.unsubscribe_resource(NOTES + "a.txt")


async def test_a_callback_may_call_the_server_while_the_socket_is_busy(server: McpServer) -> None:
    """A list-changed callback that lists the tools: its answer comes on the same socket
    as the notification being handled, and must not wait for that handler to finish."""
    relisted: list[list[str]] = []
    done = trio.Event()

    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            client_box: list[Any] = []

            async def on_list_changed(kind: str) -> None:
                relisted.append([t.name for t in await client_box[0].list_tools()])
                done.set()

            async with open_mcp_client(ws_url(handle), on_list_changed=on_list_changed) as client:
                client_box.append(client)
                server.notify_tools_changed()
                await done.wait()
                assert relisted == [["echo", "steps", "interview", "hold"]]


# -- cancellation, closing, the server going away ----------------------------------------------


async def test_cancelling_a_call_cancels_it_on_the_server(ctl: Controller, server: McpServer) -> None:
    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(ws_url(handle)) as client:
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(client.call_tool, "hold", {"key": "cancelled"})
                        await ctl.started["cancelled"].wait()
                        scope.cancel()
                assert scope.cancelled_caught
                await ctl.cancelled["cancelled"].wait()  # notifications/cancelled arrived
                # The socket is still good for the next call.
                assert (await client.call_tool("echo", {"text": "after"})).content[0].text == "after"  # type: ignore[union-attr]
                assert handle.statistics()["sessions"] == 1
            await wait_idle(handle.app)
            assert {k: handle.statistics()[k] for k in IDLE} == IDLE


async def test_leaving_the_block_ends_everything(ctl: Controller, server: McpServer) -> None:
    async def on_list_changed(kind: str) -> None:
        pass

    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(ws_url(handle), on_list_changed=on_list_changed) as client:
                await client.ping()
                assert _client_tasks()  # the reader of the socket (and trio-websocket's)
            assert _client_tasks() == set()
            await wait_idle(handle.app)
            assert {k: handle.statistics()[k] for k in IDLE} == IDLE
            # Cancelling the block while a call is in flight ends it all the same.
            with trio.CancelScope() as scope:
                async with open_mcp_client(ws_url(handle)) as client, trio.open_nursery() as nursery:
                    nursery.start_soon(client.call_tool, "hold", {"key": "abandoned"})
                    await ctl.started["abandoned"].wait()
                    scope.cancel()
            assert scope.cancelled_caught
            await ctl.cancelled["abandoned"].wait()
            assert _client_tasks() == set()
            await wait_idle(handle.app)
            assert {k: handle.statistics()[k] for k in IDLE} == IDLE


async def test_the_client_closes_with_1000_even_when_cancelled() -> None:
    """Against a minimal trio-websocket server that records the close it receives: the
    block left normally, then cancelled from outside (the close frame is still sent)."""
    subprotocols: list[tuple[str, ...]] = []
    send_close, closes = trio.open_memory_channel[int](2)

    async def handler(request: WebSocketRequest) -> None:
        subprotocols.append(request.proposed_subprotocols)
        ws = await request.accept(subprotocol="mcp")
        try:
            while True:
                message = await ws.get_message()
                if '"initialize"' in str(message):
                    await ws.send_message(
                        '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25",'
                        '"capabilities":{},"serverInfo":{"name":"mini","version":"0"}}}'
                    )
        except ConnectionClosed as closed:
            send_close.send_nowait(closed.reason.code if closed.reason is not None else -1)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
            url = f"ws://127.0.0.1:{server.port}/mcp"
            async with open_mcp_client(url) as client:
                assert client.server_info is not None
                assert client.server_info.name == "mini"
            assert await closes.receive() == 1000
            with trio.CancelScope() as scope:
                async with open_mcp_client(url):
                    scope.cancel()
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            assert await closes.receive() == 1000
            nursery.cancel_scope.cancel()
    assert subprotocols == [("mcp",), ("mcp",)]


async def test_a_server_shutdown_answers_or_fails_each_call_then_closes_with_1001(
    ctl: Controller, server: McpServer, logs: LogWatch
) -> None:
    outcomes: dict[str, Any] = {}

    async with serving(server, grace_period=0.5) as (handle, _):
        with trio.fail_after(15):
            async with open_mcp_client(ws_url(handle)) as client:

                async def call(key: str) -> None:
                    try:
                        outcomes[key] = (await client.call_tool("hold", {"key": key})).content[0].text  # type: ignore[union-attr]
                    except McpError as exc:
                        outcomes[key] = exc

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(call, "finishes")
                    nursery.start_soon(call, "overruns")
                    await ctl.started["finishes"].wait()
                    await ctl.started["overruns"].wait()
                    handle.shutdown()
                    ctl.release("finishes")
                assert outcomes["finishes"] == "released finishes"
                overran = outcomes["overruns"]
                assert isinstance(overran, McpError)
                assert overran.code == -32603
                assert "shutting down" in overran.message
                # Then the close: every later call fails clearly, with the close code.
                with pytest.raises(WebSocketClosed) as closed:
                    await client.ping()
                assert closed.value.code == 1001
                assert "1001" in str(closed.value)
            assert _client_tasks() == set()
    assert ctl.cancelled["overruns"].is_set()
    assert logs.errors() == []


async def test_a_close_with_1009_fails_every_pending_call_with_its_code(
    ctl: Controller, server: McpServer
) -> None:
    failures: list[WebSocketClosed] = []

    async with serving(server, max_body_size=2048) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(ws_url(handle)) as client:

                async def pending() -> None:
                    with pytest.raises(WebSocketClosed) as closed:
                        await client.call_tool("hold", {"key": "pending"})
                    failures.append(closed.value)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pending)
                    await ctl.started["pending"].wait()
                    with pytest.raises(WebSocketClosed) as too_big:
                        await client.call_tool("echo", {"text": "x" * 4096})
                assert too_big.value.code == 1009
                assert isinstance(too_big.value, TransportError)
                assert [failure.code for failure in failures] == [1009]
            assert _client_tasks() == set()
        await ctl.cancelled["pending"].wait()  # the server ended the session with the socket


# -- the handshake and misuse ------------------------------------------------------------------


async def test_headers_go_on_the_handshake_and_a_refusal_is_a_clear_error(server: McpServer) -> None:
    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            # The Origin check applies to the handshake: a header given here reaches it.
            with pytest.raises(ProtocolError) as forbidden:
                async with open_mcp_client(ws_url(handle), headers={"origin": "http://evil.example"}):
                    pass
            assert forbidden.value.status_hint == 403
            with pytest.raises(ProtocolError) as missing:
                async with open_mcp_client(ws_url(handle).replace("/mcp", "/elsewhere")):
                    pass
            assert missing.value.status_hint == 404
            assert "Not Found" in missing.value.message
            assert _client_tasks() == set()
            assert handle.statistics()["sessions"] == 0


async def test_an_unreachable_server_is_a_transport_error_with_its_cause() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with trio.fail_after(10), pytest.raises(TransportError, match="connecting to ws://") as failed:
        async with open_mcp_client(f"ws://127.0.0.1:{port}/mcp"):
            pass
    assert failed.value.__cause__ is not None


async def test_a_socket_is_a_session_and_other_misuse_is_refused() -> None:
    url = "ws://127.0.0.1:1/mcp"
    with pytest.raises(UsageError, match="session era"):
        async with open_mcp_client(url, era="stateless"):
            pass
    with pytest.raises(UsageError, match="session era"):
        async with open_mcp_client("wss://127.0.0.1:1/mcp", protocol_version="2026-07-28"):
            pass
    with pytest.raises(UsageError, match="http2"):
        async with open_mcp_client(url, http2=True):
            pass


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
async def test_a_refused_handshake_leaves_no_connection_open(server: McpServer) -> None:
    """The client's TCP connection of a refused handshake is closed, not left to the
    garbage collector: the process holds no more sockets after the refusals, before
    any collection (and none is found unclosed by one)."""

    def open_sockets() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        return count

    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            with pytest.raises(ProtocolError):  # warm-up: the server's own sockets exist
                async with open_mcp_client(ws_url(handle), headers={"origin": "http://evil.example"}):
                    pass
            before = open_sockets()
            for _ in range(5):
                with pytest.raises(ProtocolError):
                    async with open_mcp_client(ws_url(handle), headers={"origin": "http://evil.example"}):
                        pass
            await trio.testing.wait_all_tasks_blocked()
            assert open_sockets() <= before
