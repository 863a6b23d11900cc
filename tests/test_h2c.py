"""HTTP/2 with prior knowledge (h2c) against a real server: nothing a client sends on
one connection ends the server or another connection, and shutdown ends every stream
cleanly.

The client is the ``h2`` library over a raw trio socket, so each test decides exactly
which frames go out and when.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
import trio
from conftest import LogWatch
from h2.connection import ConnectionState
from helpers import (
    LATEST,
    POST_HEADERS,
    Controller,
    H2Client,
    H2Stream,
    SseParser,
    call_tool,
    initialize,
    is_response,
    messages_of,
    request,
    serving,
    wait_idle,
)
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.utils import wrap_app

from trio_mcp_http import McpServer, TransportConfig
from trio_mcp_http.serving import serve as _serve

BODY = b"x" * 200_000
MAX_BODY = 65_536
#: Larger than what the MCP app reads of a body it refuses (4 x MAX_BODY).
LARGE = b"x" * (8 * MAX_BODY)


#: One stream's response, as the helpers' HTTP/2 client records it.
Exchange = H2Stream


class H2c(H2Client):
    """One h2c connection (prior knowledge), driven frame by frame: the helpers' client,
    plus requests to any path with a body sent as flow control allows."""

    @property
    def exchanges(self) -> dict[int, H2Stream]:
        return self.streams

    @property
    def eof(self) -> bool:
        return "eof" in self.timeline

    async def flush(self) -> None:
        await self._flush()

    async def pump(self) -> None:
        await self._pump()

    async def start(
        self, method: str, path: str = "/mcp", headers: dict[str, str] | None = None, *, end: bool = False
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        pseudo = [
            (":method", method),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{self.port}"),
            (":path", path),
        ]
        self.conn.send_headers(stream_id, pseudo + list((headers or {}).items()), end_stream=end)
        self.streams[stream_id] = H2Stream()
        await self.flush()
        return stream_id

    async def send_body(self, stream_id: int, body: bytes, *, end: bool = True) -> None:
        """Send ``body`` as flow control allows, reading the peer's frames meanwhile."""
        sent = 0
        while sent < len(body):
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                await self.pump()
                continue
            chunk = body[sent : sent + window]
            sent += len(chunk)
            self.conn.send_data(stream_id, chunk, end_stream=end and sent == len(body))
            await self.flush()
        if not body and end:
            self.conn.end_stream(stream_id)
            await self.flush()

    async def fetch(
        self, method: str, path: str = "/mcp", headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Exchange:
        """A whole request; returns its response once the stream is done."""
        stream_id = await self.start(method, path, headers, end=not body)
        if body:
            await self.send_body(stream_id, body)
        exchange = self.exchanges[stream_id]
        await self.wait(lambda: exchange.done)
        return exchange


async def answer_at_once(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that answers 404 without reading the request body."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def worker_serving(app: Any, **options: Any) -> AsyncIterator[int]:
    """The server's connection handling (no MCP app) on 127.0.0.1 port 0; yields the port."""
    config = _serve._hypercorn_config("127.0.0.1", 0, TransportConfig(), 5.0, options)
    worker = _serve._Worker(wrap_app(app, config.wsgi_max_body_size, "asgi"), config, peer_timeout=5.0)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(worker.run, stop.wait)
        try:
            yield int(binds[0].rsplit(":", 1)[1])
        finally:
            stop.set()


async def trailing_data_exchange(port: int) -> None:
    """A request's headers, its complete answer, and only then its body (RFC 9113 §8.1
    allows both); then a second request on the same connection."""
    client = await H2c.open(port)
    try:
        stream_id = await client.start("POST", "/", {"content-type": "application/json"})
        exchange = client.exchanges[stream_id]
        await client.wait(lambda: exchange.done)
        assert (exchange.status, exchange.ended) == (404, True)
        # Ignored, but acknowledged: otherwise 200 KB could not pass a 64 KB window.
        await client.send_body(stream_id, BODY)
        again = await client.fetch("GET", "/again")
        assert (again.status, again.ended) == (404, True)
    finally:
        await client.aclose()


async def test_trailing_data_after_a_complete_answer(logs: LogWatch) -> None:
    """Hypercorn 0.18 raised KeyError here, which ended the whole server."""
    runs = 200
    with trio.fail_after(30):
        async with worker_serving(answer_at_once) as port:
            limit = trio.CapacityLimiter(10)
            done: list[int] = []

            async def one(i: int) -> None:
                async with limit:
                    await trailing_data_exchange(port)
                    done.append(i)

            async with trio.open_nursery() as nursery:
                for i in range(runs):
                    nursery.start_soon(one, i)
            assert len(done) == runs
            # A new connection is served too.
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 404
    assert logs.errors() == []


async def test_a_failing_connection_is_closed_alone(logs: LogWatch, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong inside one connection ends that connection only, logged once.

    Hypercorn's own handling of trailing DATA (a ``KeyError``) stands in for any fault
    inside the protocol stack.
    """
    monkeypatch.setattr(_serve._H2Protocol, "_handle_events", H2Protocol._handle_events)
    with trio.fail_after(30):
        async with worker_serving(answer_at_once) as port, httpx.AsyncClient(timeout=10) as http:
            bystander = await H2c.open(port)
            try:
                assert (await bystander.fetch("GET", "/")).status == 404
                # An HTTP/1.1 keep-alive connection, open across the fault.
                assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 404

                victim = await H2c.open(port)
                try:
                    stream_id = await victim.start("POST", "/", {"content-type": "application/json"})
                    exchange = victim.exchanges[stream_id]
                    await victim.wait(lambda: exchange.done)
                    victim.conn.send_data(stream_id, b"x" * 1000, end_stream=True)
                    await victim.flush()
                    await read_to_eof(victim)
                finally:
                    await victim.aclose()

                assert (await bystander.fetch("GET", "/")).status == 404
                assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 404
                async with httpx.AsyncClient(timeout=10) as fresh:
                    assert (await fresh.get(f"http://127.0.0.1:{port}/")).status_code == 404
            finally:
                await bystander.aclose()
    failures = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1, logs.errors()
    assert failures[0].name == "trio_mcp_http"
    assert failures[0].exc_info is not None
    assert "KeyError" in repr(failures[0].exc_info[1])


async def read_to_eof(client: H2c) -> None:
    while not client.eof:
        try:
            await client.pump()
        except EOFError:
            return


def early_answers() -> list[tuple[str, dict[str, str], int]]:
    """MCP requests answered before their body is read: (path, headers, status)."""
    json_post = {"content-type": "application/json", "accept": POST_HEADERS["accept"]}
    return [
        ("/wrong", json_post, 404),
        ("/mcp", {**json_post, "content-type": "text/plain"}, 415),
        ("/mcp", {**json_post, "content-length": str(len(LARGE))}, 413),
        ("/mcp", {**json_post, "origin": "http://evil.example"}, 403),
    ]


async def test_early_answers_with_trailing_data(mcp_server: McpServer, logs: LogWatch) -> None:
    """The MCP app reads a bounded part of a refused body (4 x the limit) before it
    answers; these bodies are larger, so their rest arrives after the answer."""
    runs = 200
    with trio.fail_after(60):
        async with serving(mcp_server, max_body_size=MAX_BODY) as (handle, client):
            cases = early_answers()
            limit = trio.CapacityLimiter(10)
            done: list[int] = []

            async def one(i: int) -> None:
                path, headers, status = cases[i % len(cases)]
                async with limit:
                    peer = await H2c.open(handle.port)
                    try:
                        exchange = await peer.fetch("POST", path, headers, LARGE)
                        assert (exchange.status, exchange.ended) == (status, True)
                        again = await peer.fetch("GET", "/wrong")
                        assert (again.status, again.ended) == (404, True)
                    finally:
                        await peer.aclose()
                    done.append(i)

            async with trio.open_nursery() as nursery:
                for i in range(runs):
                    nursery.start_soon(one, i)
            assert len(done) == runs
            # The server is still there, for new connections too.
            response = await client.http.post(
                handle.url, content=json.dumps(initialize()), headers=POST_HEADERS
            )
            assert response.status_code == 200
    assert logs.errors() == []


async def test_stream_reset_in_the_middle_of_a_body(ctl: Controller, mcp_server: McpServer) -> None:
    with trio.fail_after(30):
        async with serving(mcp_server) as (handle, _):
            peer = await H2c.open(handle.port)
            try:
                headers = {**POST_HEADERS, "content-length": str(len(BODY))}
                stream_id = await peer.start("POST", "/mcp", headers)
                await peer.send_body(stream_id, BODY[:50_000], end=False)
                peer.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
                await peer.flush()
                await wait_idle(handle.app)
                # The connection goes on serving.
                answer = await peer.fetch("POST", "/mcp", POST_HEADERS, json.dumps(initialize()).encode())
                assert answer.status == 200
                assert [m["id"] for m in messages_of(SseParser().feed(answer.data))] == [0]
            finally:
                await peer.aclose()
            assert handle.statistics()["requests_in_flight"] == 0


async def test_shutdown_ends_every_stream_then_sends_goaway(ctl: Controller, mcp_server: McpServer) -> None:
    """Many streams on one connection at shutdown: each one ends with a complete
    response, and the connection ends with GOAWAY before the close."""
    count = 20
    with trio.fail_after(30):
        async with serving(mcp_server, grace_period=0.2) as (handle, client):
            session = await client.open_session()
            headers = {**POST_HEADERS, "mcp-session-id": session, "mcp-protocol-version": LATEST}
            peer = await H2c.open(handle.port)
            try:
                get = await peer.start("GET", "/mcp", {**headers, "accept": "text/event-stream"}, end=True)
                posts = []
                for i in range(count):
                    posts.append(await peer.start("POST", "/mcp", headers))
                    await peer.send_body(posts[-1], json.dumps(call_tool(i, "hold", key=f"k{i}")).encode())
                await peer.wait(lambda: all(peer.exchanges[s].status is not None for s in [get, *posts]))
                for i in range(count):
                    while not ctl.started[f"k{i}"].is_set():
                        await peer.pump()
                handle.shutdown()
                await read_to_eof(peer)
            finally:
                await peer.aclose()

    assert peer.timeline == ["goaway", "eof"]
    assert peer.exchanges[get].status == 200
    assert peer.exchanges[get].ended
    for i, stream_id in enumerate(posts):
        exchange = peer.exchanges[stream_id]
        assert (exchange.status, exchange.ended, exchange.reset) == (200, True, False)
        parser = SseParser()
        answers = [m for m in messages_of(parser.feed(exchange.data)) if is_response(m)]
        assert not parser.pending
        assert len(answers) == 1
        assert answers[0]["id"] == i
        assert answers[0]["error"]["code"] == -32603


class GoawayTolerant(h2.connection.H2Connection):
    """python-h2's client connection, taking frames after a GOAWAY as RFC 9113 §6.8
    allows (the streams up to its last-stream-id may still complete), as nghttp2 and
    browsers do.  python-h2 itself moves the connection to CLOSED on a GOAWAY and
    refuses any frame after it (python-hyper/h2#1181): here frames are fed one at a
    time and the state is put back to open after each GOAWAY.  Records every GOAWAY
    and every stream reset (with its error code)."""

    def __init__(self) -> None:
        super().__init__(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.goaways: list[h2.events.ConnectionTerminated] = []
        self.resets: dict[int, int] = {}
        self._inbox = bytearray()

    def receive_data(self, data: bytes) -> list[h2.events.Event]:
        self._inbox += data
        events: list[h2.events.Event] = []
        # A frame: 9 bytes of header, the first 3 its payload's length (RFC 9113 §4.1).
        while len(self._inbox) >= 9:
            end = 9 + int.from_bytes(self._inbox[:3], "big")
            if len(self._inbox) < end:
                break
            frame = bytes(self._inbox[:end])
            del self._inbox[:end]
            for event in super().receive_data(frame):
                if isinstance(event, h2.events.ConnectionTerminated):
                    self.goaways.append(event)
                    self.state_machine.state = ConnectionState.CLIENT_OPEN
                elif isinstance(event, h2.events.StreamReset):
                    self.resets[event.stream_id] = event.error_code
                events.append(event)
        return events


class H2cAfterGoaway(H2c):
    """The h2c client, reading on after a GOAWAY (:class:`GoawayTolerant`)."""

    def __init__(self, sock: trio.SocketStream, port: int) -> None:
        super().__init__(sock, port)
        self.conn = self.tolerant = GoawayTolerant()


async def test_request_limit_goaway_lets_accepted_streams_finish(
    ctl: Controller, mcp_server: McpServer, logs: LogWatch
) -> None:
    """Past ``keep_alive_max_requests`` the server says GOAWAY (NO_ERROR), refuses the
    streams opened after it (REFUSED_STREAM: safe to retry, RFC 9113 §8.7), completes
    every stream it had accepted, and only then closes the connection.

    Hypercorn 0.18 closed h2's side at once (GOAWAY, then nothing for the open
    streams): the requests in flight at the limit were never answered."""
    limit = 5
    with trio.fail_after(30):
        async with serving(mcp_server, hypercorn={"keep_alive_max_requests": limit}) as (handle, client):
            session = await client.open_session()
            headers = {**POST_HEADERS, "mcp-session-id": session, "mcp-protocol-version": LATEST}
            peer = await H2cAfterGoaway.open(handle.port)
            conn = peer.tolerant  # type: ignore[attr-defined]
            pseudo = [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", f"127.0.0.1:{handle.port}"),
                (":path", "/mcp"),
            ]
            streams: dict[str, int] = {}

            async def hold(keys: list[str]) -> None:
                """Requests for ``keys``, all in one write."""
                for key in keys:
                    body = json.dumps(call_tool(key, "hold", key=key)).encode()
                    stream_id = streams[key] = conn.get_next_available_stream_id()
                    conn.send_headers(
                        stream_id, [*pseudo, *headers.items(), ("content-length", str(len(body)))]
                    )
                    conn.send_data(stream_id, body, end_stream=True)
                    peer.exchanges[stream_id] = Exchange()
                await peer.flush()

            try:
                # Four requests in flight; one answered (4 taken of the 5).
                await hold(["k1", "k2", "k3", "k4"])
                for key in ("k1", "k2", "k3", "k4"):
                    while not ctl.started[key].is_set():
                        await peer.pump()
                ctl.release("k1")
                await peer.wait(lambda: peer.exchanges[streams["k1"]].done)
                # Four more at once, with three still in flight: the fifth request
                # crosses the limit, the three after it arrive after the GOAWAY.
                await hold(["k5", "k6", "k7", "k8"])
                await peer.wait(lambda: bool(conn.goaways))
                last = conn.goaways[0].last_stream_id
                assert last == streams["k5"]
                late = [streams[k] for k in ("k6", "k7", "k8")]
                await peer.wait(lambda: all(peer.exchanges[s].done for s in late))
                while not ctl.started["k5"].is_set():
                    await peer.pump()
                for key in ("k2", "k3", "k4", "k5"):
                    ctl.release(key)
                await read_to_eof(peer)
            finally:
                await peer.aclose()
            assert handle.statistics()["requests_in_flight"] == 0

    for goaway in conn.goaways:
        assert (goaway.error_code, goaway.last_stream_id) == (h2.errors.ErrorCodes.NO_ERROR, last)
    assert peer.timeline[-1] == "eof"
    assert set(peer.timeline[:-1]) == {"goaway"}
    for key in ("k6", "k7", "k8"):
        exchange = peer.exchanges[streams[key]]
        assert (exchange.status, exchange.reset) == (None, True)
        assert conn.resets[streams[key]] == h2.errors.ErrorCodes.REFUSED_STREAM
        assert not ctl.started[key].is_set()
    for key in ("k1", "k2", "k3", "k4", "k5"):
        exchange = peer.exchanges[streams[key]]
        assert streams[key] <= last
        assert (exchange.status, exchange.ended, exchange.reset) == (200, True, False), key
        if exchange.headers.get("content-type", "").startswith("text/event-stream"):
            parser = SseParser()
            answers = [m for m in messages_of(parser.feed(exchange.data)) if is_response(m)]
            assert not parser.pending
        else:
            answers = [json.loads(exchange.data)]
        assert [a["id"] for a in answers] == [key]
        assert answers[0]["result"]["content"][0]["text"] == f"released {key}"
    assert logs.errors() == []


async def test_requests_during_the_drain_get_503(ctl: Controller, mcp_server: McpServer) -> None:
    with trio.fail_after(30):
        async with serving(mcp_server, grace_period=5.0) as (handle, client):
            session = await client.open_session()
            peer = await H2c.open(handle.port)
            try:
                headers = {**POST_HEADERS, "mcp-session-id": session, "mcp-protocol-version": LATEST}
                running = await peer.start("POST", "/mcp", headers)
                await peer.send_body(running, json.dumps(call_tool(1, "hold", key="held")).encode())
                await peer.wait(lambda: peer.exchanges[running].status is not None)
                handle.shutdown()
                ping = json.dumps(request(2, "ping")).encode()
                # Admission stops as soon as the drain task runs.
                while (refused := await peer.fetch("POST", "/mcp", headers, ping)).status != 503:
                    assert refused.status == 200
                assert refused.ended
                assert int(refused.headers["retry-after"]) > 0
                ctl.release("held")
                await peer.wait(lambda: peer.exchanges[running].ended)
            finally:
                await peer.aclose()


async def test_follow_up_with_httpx_over_h2c(mcp_server: McpServer) -> None:
    """An ordinary HTTP/2 client (httpx, prior knowledge) gets early answers and goes on."""
    with trio.fail_after(30):
        async with (
            serving(mcp_server) as (handle, _),
            httpx.AsyncClient(http1=False, http2=True, timeout=10) as http,
        ):
            wrong = await http.post(handle.url.replace("/mcp", "/wrong"), content=BODY)
            assert (wrong.http_version, wrong.status_code) == ("HTTP/2", 404)
            ok = await http.post(handle.url, content=json.dumps(initialize()), headers=POST_HEADERS)
            assert ok.status_code == 200


async def test_repeated_connection_faults_are_reported_once_a_minute(
    logs: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that trips the same fault over and over gets one full report; the rest
    are one-line debug records (no log flood from a hostile client)."""
    monkeypatch.setattr(_serve._H2Protocol, "_handle_events", H2Protocol._handle_events)
    with trio.fail_after(30):
        async with worker_serving(answer_at_once) as port:
            for _ in range(20):
                victim = await H2c.open(port)
                try:
                    stream_id = await victim.start("POST", "/", {"content-type": "application/json"})
                    exchange = victim.exchanges[stream_id]
                    await victim.wait(lambda exchange=exchange: exchange.done)
                    victim.conn.send_data(stream_id, b"x" * 1000, end_stream=True)
                    await victim.flush()
                    await read_to_eof(victim)
                finally:
                    await victim.aclose()
            async with httpx.AsyncClient(timeout=10) as fresh:
                assert (await fresh.get(f"http://127.0.0.1:{port}/")).status_code == 404
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    held_back = [
        r for r in logs.records if r.levelno == logging.DEBUG and "failed; closed it" in r.getMessage()
    ]
    assert len(errors) == 1, logs.errors()
    assert len(held_back) == 19
