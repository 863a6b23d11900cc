"""Request bodies at the edges: slow, oversized, and answered before they were read."""

from __future__ import annotations

import http.client
import json
import math
from typing import Any

import trio
import trio.testing
from helpers import POST_HEADERS, call_tool, http_scope, initialize, serving

from trio_mcp_http import McpHttpApp, McpServer, TransportConfig

TIMEOUT = 10


class TrickledCall:
    """An ASGI call whose body arrives in pieces the test feeds (in memory)."""

    def __init__(self, path: str = "/mcp", method: str = "POST") -> None:
        self.scope = http_scope(method, POST_HEADERS, path)
        self.pieces_send, self.pieces = trio.open_memory_channel[dict[str, Any]](math.inf)
        self.sent: list[dict[str, Any]] = []
        #: How many body messages the app had read when it started its response.
        self.read_before_answer: int | None = None
        self._read = 0

    def feed(self, body: bytes, more: bool = True) -> None:
        self.pieces_send.send_nowait({"type": "http.request", "body": body, "more_body": more})

    async def receive(self) -> dict[str, Any]:
        message = await self.pieces.receive()
        self._read += 1
        return message

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.read_before_answer = self._read
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def error(self) -> dict[str, Any]:
        body = b"".join(m.get("body", b"") for m in self.sent[1:])
        error: dict[str, Any] = json.loads(body)["error"]
        return error


async def test_a_trickling_body_gets_408(
    mcp_server: McpServer, autojump_clock: trio.testing.MockClock
) -> None:
    app = McpHttpApp(mcp_server, TransportConfig(body_timeout=30.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        call = TrickledCall()
        call.feed(b'{"jsonrpc": "2.0", ')
        start = trio.current_time()
        await app(call.scope, call.receive, call.send)
        assert trio.current_time() - start == 30.0
        assert call.status == 408
        assert call.error["code"] == -32600
        assert app.statistics()["http_calls_in_flight"] == 0
        nursery.cancel_scope.cancel()


async def test_an_early_answer_reads_the_rest_of_the_body_first(
    mcp_server: McpServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A request refused before its body was read (wrong path, wrong content type,
    too large) is answered only after the rest of the body has been read and dropped,
    bounded in bytes: the client then reads the answer, not a reset."""
    app = McpHttpApp(mcp_server, TransportConfig(max_body_size=1000))
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        for path, pieces, status in (("/elsewhere", 2, 404), ("/mcp", 5, 413)):
            call = TrickledCall(path)
            for _ in range(pieces):
                call.feed(b"x" * 400)
            call.feed(b"", more=False)
            await app(call.scope, call.receive, call.send)
            assert call.status == status
            assert call.read_before_answer == pieces + 1, path
        # Beyond the bound (four times max_body_size), the server answers without waiting.
        endless = TrickledCall("/elsewhere")
        for _ in range(100):
            endless.feed(b"x" * 400)
        await app(endless.scope, endless.receive, endless.send)
        assert endless.status == 404
        assert endless.read_before_answer is not None
        assert endless.read_before_answer <= 12
        # A body that stops arriving does not hold the answer longer than 5 seconds.
        stuck = TrickledCall("/elsewhere")
        stuck.feed(b"x")
        start = trio.current_time()
        await app(stuck.scope, stuck.receive, stuck.send)
        assert stuck.status == 404
        assert trio.current_time() - start == 5.0
        nursery.cancel_scope.cancel()


async def test_http_client_reads_the_413_of_an_oversized_body(mcp_server: McpServer) -> None:
    """Python's http.client writes its whole body before it reads: it must see the 413
    (with a JSON-RPC error body), not a broken pipe, and the connection stays usable."""
    with trio.fail_after(TIMEOUT):
        async with serving(mcp_server, max_body_size=64 * 1024) as (handle, _):

            def exchange() -> list[tuple[int, bytes]]:
                connection = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=TIMEOUT)
                try:
                    answers = []
                    big = json.dumps(call_tool(1, "echo", text="x" * 150_000)).encode()
                    for body in (big, json.dumps(initialize()).encode()):
                        connection.request("POST", "/mcp", body=body, headers=POST_HEADERS)
                        response = connection.getresponse()
                        answers.append((response.status, response.read()))
                    return answers
                finally:
                    connection.close()

            (status, refused), (status_after, initialized) = await trio.to_thread.run_sync(exchange)
            assert status == 413
            assert json.loads(refused)["error"]["code"] == -32600
            assert status_after == 200
            assert b'"protocolVersion"' in initialized


async def test_an_early_answer_to_a_client_expecting_100_continue_comes_at_once(
    mcp_server: McpServer, autojump_clock: trio.testing.MockClock
) -> None:
    """``Expect: 100-continue``: the client sends its body only once asked for it, so an
    answer decided before the body (404, 415, 413 by Content-Length, 405) reads nothing."""
    app = McpHttpApp(mcp_server, TransportConfig(max_body_size=1000))
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        cases = [
            ("/elsewhere", "POST", {}, 404),
            ("/mcp", "POST", {"content-type": "text/plain"}, 415),
            ("/mcp", "POST", {"content-length": "5000"}, 413),
            ("/mcp", "PUT", {}, 405),
        ]
        for path, method, extra, status in cases:
            call = TrickledCall(path, method)
            headers = dict(call.scope["headers"])
            headers.update({b"expect": b"100-continue"})
            headers.update({k.encode(): v.encode() for k, v in extra.items()})
            call.scope["headers"] = list(headers.items())
            start = trio.current_time()
            await app(call.scope, call.receive, call.send)  # the body never comes
            assert call.status == status, path
            assert trio.current_time() == start, path
            assert call.read_before_answer == 0, path
        nursery.cancel_scope.cancel()


async def test_a_body_is_discarded_at_most_once(
    mcp_server: McpServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A DELETE whose body never ends, for an unknown session: its body is waited for
    once (5 s), not again before the 404."""
    app = McpHttpApp(mcp_server)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        call = TrickledCall(method="DELETE")
        call.scope["headers"] = [*call.scope["headers"], (b"mcp-session-id", b"0" * 32)]
        call.feed(b"x")
        start = trio.current_time()
        await app(call.scope, call.receive, call.send)
        assert call.status == 404
        assert trio.current_time() - start == 5.0
        nursery.cancel_scope.cancel()
