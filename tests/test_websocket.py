"""MCP over WebSocket: one session per connection, on the MCP path, subprotocol ``mcp``.

Every test runs the real stack: ``open_mcp_server`` (Hypercorn) on 127.0.0.1 port 0,
and a real client, ``trio_websocket`` or, where a test needs to misbehave at the TCP
level (vanish, stop reading), a few lines of ``wsproto`` over a plain socket.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from helpers import (
    LATEST,
    Controller,
    build_server,
    call_tool,
    initialize,
    notification,
    request,
    serving,
    wait_idle,
)
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from trio_mcp_http import Context, McpHttpApp, McpServer, TransportConfig

IDLE = {
    "sessions": 0,
    "requests_in_flight": 0,
    "http_calls_in_flight": 0,
    "open_streams": 0,
    "stored_events": 0,
}


def ws_server(ctl: Controller) -> McpServer:
    """The shared test server plus tools for logging and for flooding a reader."""
    server = build_server(ctl, "websocket-test")

    @server.tool()
    async def log_both(ctx: Context) -> str:
        """Log one info and one debug message."""
        await ctx.info("an info line")
        await ctx.debug("a debug line")
        return "logged"

    @server.tool()
    async def flood(ctx: Context, key: str, size: int = 65536) -> str:
        """Send large notifications until cancelled; counts them in ``ctl.sent``."""
        with ctl.track(key):
            while True:
                await ctx.notify("notifications/message", {"level": "info", "data": "x" * size})
                ctl.sent[key] = ctl.sent.get(key, 0) + 1

    return server


@pytest.fixture
def ctl() -> Controller:
    controller = Controller()
    controller.sent = {}  # type: ignore[attr-defined]
    return controller


def ws_url(handle: Any) -> str:
    return "ws://" + handle.url.split("://", 1)[1]


class Peer:
    """A ``trio_websocket`` connection speaking JSON-RPC."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, message: Any) -> None:
        await self.ws.send_message(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.ws.get_message())
        return message

    async def answer(self, request_id: int | str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read up to the response to ``request_id``; returns it and what came before."""
        before = []
        while True:
            message = await self.receive()
            if message.get("id") == request_id and "method" not in message:
                return message, before
            before.append(message)

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        answer, _ = await self.answer(message["id"])
        return answer

    async def initialize(self, **capabilities: Any) -> dict[str, Any]:
        answer = await self.call(initialize(0, **capabilities))
        await self.send(notification("notifications/initialized"))
        return answer

    async def _read_forever(self) -> None:
        while True:
            await self.ws.get_message()

    async def close_code(self) -> int | None:
        """Read until the server closes; its close code."""
        with pytest.raises(ConnectionClosed) as closed:
            await self._read_forever()
        # trio_websocket 0.12 never closes its TCP stream after a close the server
        # started (its aclose() returns early once a close reason is set): close it here.
        await self.ws._stream.aclose()
        return None if closed.value.reason is None else closed.value.reason.code


@asynccontextmanager
async def peer(handle: Any, **options: Any) -> AsyncIterator[Peer]:
    async with open_websocket_url(ws_url(handle), subprotocols=["mcp"], **options) as ws:
        yield Peer(ws)


class RawSocket:
    """A minimal WebSocket client on a plain TCP stream (``wsproto``): it reads only
    when asked, and can vanish without a close frame."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: deque[Event] = deque()

    @classmethod
    async def open(cls, port: int) -> RawSocket:
        raw = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await raw.handshake(port)
        assert isinstance(await raw.next_event(), AcceptConnection)
        return raw

    async def handshake(
        self,
        port: int,
        path: str = "/mcp",
        subprotocols: list[str] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        target = Request(
            host=f"127.0.0.1:{port}",
            target=path,
            subprotocols=["mcp"] if subprotocols is None else subprotocols,
            extra_headers=headers or [],
        )
        await self._send(target)

    async def rejection(self) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body of a refused handshake."""
        refused = await self.next_event()
        assert isinstance(refused, RejectConnection), refused
        head = {k.decode().lower(): v.decode() for k, v in refused.headers}
        body = b""
        while refused.has_body:
            data = await self.next_event()
            assert isinstance(data, RejectData)
            body += data.data
            if data.body_finished:
                break
        return refused.status_code, head, body

    async def _send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def send(self, message: Any) -> None:
        await self._send(TextMessage(data=json.dumps(message)))

    async def next_event(self) -> Event:
        while not self.events:
            data = await self.stream.receive_some(1 << 16)
            self.ws.receive_data(data or None)
            self.events.extend(self.ws.events())
        return self.events.popleft()

    async def next_message(self) -> dict[str, Any] | CloseConnection:
        """The next JSON-RPC message, or the server's close."""
        parts: list[str] = []
        while True:
            event = await self.next_event()
            if isinstance(event, CloseConnection):
                return event
            if isinstance(event, Ping):
                await self._send(event.response())
            elif isinstance(event, TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    message: dict[str, Any] = json.loads("".join(parts))
                    return message

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        while True:
            answer = await self.next_message()
            assert not isinstance(answer, CloseConnection), answer
            if answer.get("id") == message["id"] and "method" not in answer:
                return answer


# -- the session over one socket -----------------------------------------------------------


async def test_initialize_call_and_ping(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _), peer(handle) as client:
        assert client.ws.subprotocol == "mcp"
        pong = await client.call(request("p0", "ping"))  # allowed before initialize
        assert pong == {"jsonrpc": "2.0", "id": "p0", "result": {}}
        answer = await client.initialize()
        assert answer["result"]["protocolVersion"] == LATEST
        assert answer["result"]["serverInfo"]["name"] == "websocket-test"
        assert handle.statistics()["sessions"] == 1
        echoed = await client.call(call_tool(1, "echo", text="over a socket"))
        assert echoed["result"]["content"] == [{"type": "text", "text": "over a socket"}]
        assert (await client.call(request(2, "ping")))["result"] == {}
        listed = await client.call(request(3, "tools/list"))
        assert "echo" in {tool["name"] for tool in listed["result"]["tools"]}


async def test_requests_before_initialize_and_a_second_initialize_are_errors(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _), peer(handle) as client:
        early = await client.call(call_tool(1, "echo", text="too early"))
        assert early["error"]["code"] == -32600
        assert "initialize" in early["error"]["message"]
        await client.initialize(version="2025-06-18")
        again = await client.call(initialize(5))
        assert again["error"]["code"] == -32600
        assert (await client.call(call_tool(2, "echo", text="now")))["result"]["content"][0]["text"] == "now"


async def test_elicitation_goes_out_and_the_answer_comes_back_on_the_socket(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _), peer(handle) as client:
        await client.initialize(elicitation={})
        await client.send(call_tool(1, "ask_name"))
        asked = await client.receive()
        assert asked["method"] == "elicitation/create"
        assert asked["params"]["message"] == "What is your name?"
        reply = {"action": "accept", "content": {"name": "Ada"}}
        await client.send({"jsonrpc": "2.0", "id": asked["id"], "result": reply})
        answer, _ = await client.answer(1)
        assert answer["result"]["content"][0]["text"] == "Hello, Ada!"


async def test_progress_and_logging_notifications_precede_the_answer(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _), peer(handle) as client:
        await client.initialize()
        await client.send(call_tool(1, "progress", meta={"progressToken": "t"}, steps=3))
        answer, before = await client.answer(1)
        assert answer["result"]["content"][0]["text"] == "done 3"
        progress = [m["params"]["progress"] for m in before if m["method"] == "notifications/progress"]
        assert progress == [1, 2, 3]
        assert {m["params"]["progressToken"] for m in before} == {"t"}
        # logging/setLevel is per session, as over HTTP.
        assert (await client.call(request(2, "logging/setLevel", {"level": "info"})))["result"] == {}
        await client.send(call_tool(3, "log_both"))
        answer, before = await client.answer(3)
        assert answer["result"]["content"][0]["text"] == "logged"
        logged = [(m["method"], m["params"]["data"]) for m in before]
        assert logged == [("notifications/message", "an info line")]


async def test_list_changed_is_broadcast_to_initialized_sockets_only(ctl: Controller) -> None:
    server = ws_server(ctl)
    changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    async with (
        serving(server) as (handle, _),
        peer(handle) as first,
        peer(handle) as second,
        peer(handle) as late,
    ):
        await first.initialize()
        await second.initialize()
        assert (await late.call(request("p", "ping")))["result"] == {}  # connected, not initialized
        server.notify_tools_changed()
        for client in (first, second):
            assert await client.receive() == changed
        # The broadcast came before `late` initialized: it never reached it.
        await late.send(initialize(0))
        first_message = await late.receive()
        assert first_message["id"] == 0
        assert "result" in first_message


async def test_a_2026_request_on_a_socket_is_a_clear_error(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _), peer(handle) as client:
        await client.initialize()
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
        answer = await client.call(request(7, "tools/list", {"_meta": meta}))
        assert answer["error"]["code"] == -32022
        assert answer["error"]["data"]["requested"] == "2026-07-28"
        assert "2025-11-25" in answer["error"]["data"]["supported"]
        assert (await client.call(request(8, "ping")))["result"] == {}


async def test_batches_only_where_the_version_has_them(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _):
        async with peer(handle) as old:
            await old.initialize(version="2025-03-26")
            await old.send([call_tool(1, "echo", text="a"), request(2, "ping")])
            answers = [await old.receive(), await old.receive()]
            assert sorted(a["id"] for a in answers) == [1, 2]
        async with peer(handle) as new:
            await new.initialize()
            await new.send([request(1, "ping")])
            refused = await new.receive()
            assert refused["id"] is None
            assert refused["error"]["code"] == -32600


# -- bad input --------------------------------------------------------------------------------


async def test_bad_json_gets_an_error_and_the_connection_stays_up(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _), peer(handle) as client:
        await client.initialize()
        await client.ws.send_message("{not json")
        parsed = await client.receive()
        assert parsed["id"] is None
        assert parsed["error"]["code"] == -32700
        await client.send({"jsonrpc": "2.0", "nothing": True})
        invalid = await client.receive()
        assert invalid["id"] is None
        assert invalid["error"]["code"] == -32600
        assert (await client.call(request(1, "ping")))["result"] == {}


async def test_a_message_over_max_body_size_closes_with_1009(ctl: Controller) -> None:
    async with serving(ws_server(ctl), max_body_size=2048) as (handle, _), peer(handle) as client:
        await client.initialize()
        fits = await client.call(call_tool(1, "echo", text="x" * 1500))
        assert fits["result"]["content"][0]["text"] == "x" * 1500
        await client.send(call_tool(2, "echo", text="x" * 3000))
        assert await client.close_code() == 1009
    assert handle.statistics()["sessions"] == 0


async def test_a_binary_frame_closes_with_1003(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _), peer(handle) as client:
        await client.initialize()
        await client.ws.send_message(json.dumps(request(1, "ping")).encode())
        assert await client.close_code() == 1003


async def test_a_connection_that_never_initializes_is_closed_with_1008(ctl: Controller) -> None:
    async with serving(ws_server(ctl), body_timeout=0.2) as (handle, _), peer(handle) as client:
        assert await client.close_code() == 1008
        await wait_idle(handle.app)
        assert handle.statistics() == IDLE


@pytest.mark.parametrize(
    ("headers", "path", "subprotocols", "status"),
    [
        ([(b"origin", b"http://evil.example")], "/mcp", ["mcp"], 403),
        ([], "/elsewhere", ["mcp"], 404),
        ([], "/mcp", ["graphql-ws"], 400),
        ([], "/mcp", [], 400),
    ],
)
async def test_handshakes_are_refused_before_accepting(
    ctl: Controller, headers: list[tuple[bytes, bytes]], path: str, subprotocols: list[str], status: int
) -> None:
    async with serving(ws_server(ctl)) as (handle, _):
        async with await trio.open_tcp_stream("127.0.0.1", handle.port) as stream:
            raw = RawSocket(stream)
            await raw.handshake(handle.port, path, subprotocols, headers)
            code, head, body = await raw.rejection()
        assert code == status
        assert head["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == -32600
        assert handle.statistics()["sessions"] == 0


async def test_a_full_server_refuses_the_handshake_with_503(ctl: Controller) -> None:
    async with serving(ws_server(ctl), max_sessions=1) as (handle, _), peer(handle) as client:
        await client.initialize()
        async with await trio.open_tcp_stream("127.0.0.1", handle.port) as stream:
            raw = RawSocket(stream)
            await raw.handshake(handle.port)
            code, head, body = await raw.rejection()
        assert code == 503
        assert head["retry-after"] == "5"
        assert "too many sessions" in json.loads(body)["error"]["message"]
        assert (await client.call(request(1, "ping")))["result"] == {}


# -- lifecycle --------------------------------------------------------------------------------


async def test_shutdown_answers_in_flight_requests_then_closes_with_1001(ctl: Controller) -> None:
    async with serving(ws_server(ctl), grace_period=0.5) as (handle, _), peer(handle) as client:
        await client.initialize()
        await client.send(call_tool(1, "hold", key="finishes"))
        await client.send(call_tool(2, "hold", key="overruns"))
        await ctl.started["finishes"].wait()
        await ctl.started["overruns"].wait()
        handle.shutdown()
        ctl.release("finishes")
        answers = {}
        for _ in range(2):
            message = await client.receive()
            answers[message["id"]] = message
        assert answers[1]["result"]["content"][0]["text"] == "released finishes"
        assert answers[2]["error"]["message"] == "Server shutting down: request cancelled"
        assert ctl.cancelled["overruns"].is_set()
        assert await client.close_code() == 1001


async def test_a_vanished_peer_cancels_its_requests(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _):
        raw = await RawSocket.open(handle.port)
        await raw.call(initialize(0))
        await raw.send(call_tool(1, "hold", key="orphan"))
        await ctl.started["orphan"].wait()
        await raw.stream.aclose()  # no close frame: the peer is just gone
        await ctl.cancelled["orphan"].wait()
        assert ctl.finished["orphan"].is_set()
        await wait_idle(handle.app)
        assert handle.statistics() == IDLE


async def test_a_reader_that_stops_reading_is_disconnected_and_memory_stays_bounded(ctl: Controller) -> None:
    buffer = 8
    async with serving(ws_server(ctl), stream_buffer_size=buffer) as (handle, _):
        raw = await RawSocket.open(handle.port)
        await raw.call(initialize(0))
        await raw.send(call_tool(1, "flood", key="flood"))
        # Not reading: the kernel's buffers fill, then the outbox's few slots, then the
        # server gives up on this reader and ends the session (and the flood with it).
        await ctl.cancelled["flood"].wait()
        assert handle.statistics()["sessions"] == 0
        received = 0
        while True:
            message = await raw.next_message()
            if isinstance(message, CloseConnection):
                break
            received += 1
        assert message.code == 1008
        # Nothing published was held back beyond the outbox: what was sent but never
        # delivered is at most its capacity (plus the one that found it full).
        sent: int = ctl.sent["flood"]  # type: ignore[attr-defined]
        assert sent - received <= buffer + 1
        await raw.stream.aclose()
        await wait_idle(handle.app)
        assert handle.statistics() == IDLE


async def test_many_connections_leave_nothing_behind(ctl: Controller) -> None:
    async with serving(ws_server(ctl)) as (handle, _):
        for round_ in range(20):
            async with peer(handle) as client:
                if round_ % 2:
                    await client.initialize()
                    await client.send(call_tool(1, "hold", key=f"held-{round_}"))
                    await ctl.started[f"held-{round_}"].wait()
                await client.call(request("p", "ping"))
        for round_ in range(1, 20, 2):
            await ctl.cancelled[f"held-{round_}"].wait()
        await wait_idle(handle.app)
        assert handle.statistics() == IDLE


# -- the drain, step by step, in memory (virtual time) --------------------------------------


class AsgiSocket:
    """One ASGI ``websocket`` call to an app, in memory: no sockets, so MockClock works."""

    def __init__(self) -> None:
        self.to_app, self._app_receive = trio.open_memory_channel[dict[str, Any]](16)
        self._app_send, self.from_app = trio.open_memory_channel[dict[str, Any]](16)
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "path": "/mcp",
            "headers": [(b"host", b"127.0.0.1:8000")],
            "server": ("127.0.0.1", 8000),
            "subprotocols": ["mcp"],
            "extensions": {"websocket.http.response": {}},
        }

    async def run(self, app: McpHttpApp) -> None:
        await app(self.scope, self._app_receive.receive, self._app_send.send)

    async def send(self, message: Any) -> None:
        await self.to_app.send({"type": "websocket.receive", "text": json.dumps(message), "bytes": None})

    async def receive(self) -> dict[str, Any]:
        """The next JSON-RPC message, or the ASGI event when it is not one."""
        event = await self.from_app.receive()
        if event["type"] != "websocket.send":
            return event
        message: dict[str, Any] = json.loads(event["text"])
        return message


async def test_the_drain_refuses_new_requests_answers_old_ones_then_closes_with_1001(
    ctl: Controller, autojump_clock: trio.testing.MockClock
) -> None:
    app = McpHttpApp(ws_server(ctl), TransportConfig(grace_period=5.0))
    socket = AsgiSocket()
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        nursery.start_soon(socket.run, app)
        await socket.to_app.send({"type": "websocket.connect"})
        assert (await socket.receive()) == {"type": "websocket.accept", "subprotocol": "mcp"}
        await socket.send(initialize(0))
        assert (await socket.receive())["id"] == 0
        await socket.send(call_tool(1, "hold", key="old"))
        await ctl.started["old"].wait()
        drained = trio.Event()

        async def drain() -> None:
            await app.drain()
            drained.set()

        nursery.start_soon(drain)
        await trio.testing.wait_all_tasks_blocked()
        await socket.send(call_tool(2, "echo", text="new"))
        refused = await socket.receive()
        assert refused["id"] == 2
        assert refused["error"]["message"] == "Service Unavailable: server is shutting down"
        await socket.send(request(3, "ping"))  # also new work: refused
        assert (await socket.receive())["id"] == 3
        await trio.sleep(1.0)  # virtual time, well inside the grace period
        ctl.release("old")
        assert (await socket.receive())["result"]["content"][0]["text"] == "released old"
        assert (await socket.receive()) == {
            "type": "websocket.close",
            "code": 1001,
            "reason": "server going away",
        }
        await drained.wait()
        assert trio.current_time() < 5.0  # closed as soon as the answer was out, not at the grace's end
        assert app.statistics() == IDLE
        nursery.cancel_scope.cancel()
