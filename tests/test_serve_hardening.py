"""The connection level of the server: every close is clean, every exit is bounded.

* clients hammering requests across a shutdown see complete responses, or a clean end
  of the connection before any byte of one; never a TCP reset;
* a client that writes its whole body before reading (``http.client``) reads its 413;
* a peer that stops reading cannot hold the process, whatever ``peer_timeout`` is;
* malformed input ends its own connection only.
"""

from __future__ import annotations

import errno
import http.client
import json
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import h11
import httpx
import pytest
import trio
import trio.testing
from conftest import LogWatch
from helpers import LATEST, POST_HEADERS, Controller, HttpStream, call_tool, initialize, request, serving
from test_shutdown import server_process

from trio_mcp_http import McpServer, open_mcp_server
from trio_mcp_http.serving import serve as _serve
from trio_mcp_http.serving.cli import main as cli_main

# -- hammering across a shutdown -----------------------------------------------------


@dataclass
class Tally:
    """What the hammering clients saw, one entry per request sent."""

    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    enough: trio.Event = field(default_factory=trio.Event)

    def add(self, outcome: str, detail: str = "") -> None:
        self.outcomes[outcome] += 1
        if detail:
            self.details.append(f"{outcome}: {detail}")
        if self.outcomes["complete"] >= 300:
            self.enough.set()


def _is_reset(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


async def hammer(port: int, tally: Tally, keep_alive: bool) -> None:
    """Send requests until the server refuses connections; record each outcome."""
    body = json.dumps(initialize()).encode()
    headers = [
        ("host", f"127.0.0.1:{port}"),
        ("content-type", "application/json"),
        ("accept", POST_HEADERS["accept"]),
        ("content-length", str(len(body))),
    ]
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            return  # refused: nothing was sent, the server is gone
        conn = h11.Connection(h11.CLIENT)
        try:
            for _ in range(5 if keep_alive else 1):
                request = conn.send(h11.Request(method="POST", target="/mcp", headers=headers))
                request += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
                received = 0
                try:
                    await stream.send_all(request)
                    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
                        if event is h11.NEED_DATA:
                            data = await stream.receive_some(65536)
                            if not data and not received:
                                raise EOFError
                            received += len(data)
                            conn.receive_data(data)
                        elif isinstance(event, h11.Response):
                            tally.statuses[event.status_code] += 1
                except EOFError:
                    tally.add("clean EOF")
                    break
                except (trio.BrokenResourceError, OSError) as exc:
                    tally.add("reset" if _is_reset(exc) else "error", repr(exc))
                    break
                except h11.RemoteProtocolError as exc:
                    tally.add("truncated", f"{exc!r} after {received} bytes")
                    break
                tally.add("complete")
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        finally:
            await stream.aclose()


async def test_no_resets_across_a_shutdown(ctl: Controller, mcp_server: McpServer) -> None:
    """Clients keep sending through the drain and the close: each request is answered
    (503 + Retry-After while draining) or sees its connection end before any byte of
    a response.  Unread requests in a closed socket, or connections left in a closed
    listener's queue, would be reset by the kernel instead."""
    tally = Tally()
    with trio.fail_after(30):
        async with serving(mcp_server, grace_period=0.5) as (handle, client):
            session = await client.open_session()
            held = HttpStream.open(
                handle.port,
                "POST",
                POST_HEADERS | {"mcp-session-id": session, "mcp-protocol-version": LATEST},
                json.dumps(call_tool(1, "hold", key="held")).encode(),
            )
            stream = await held
            try:
                # A call in flight, so the drain waits out its grace period.
                assert await stream.read_head() == 200
                await ctl.started["held"].wait()
                async with trio.open_nursery() as nursery:
                    for i in range(40):
                        nursery.start_soon(hammer, handle.port, tally, i % 2 == 0)
                    await tally.enough.wait()
                    handle.shutdown()
                    # The clients stop once connections are refused: after the exit.
            finally:
                await stream.aclose()

    assert tally.outcomes["reset"] == 0, tally.details[:5]
    assert tally.outcomes["truncated"] == 0, tally.details[:5]
    assert tally.outcomes["error"] == 0, tally.details[:5]
    assert tally.outcomes["complete"] >= 300
    assert tally.statuses[503] > 0
    assert set(tally.statuses) <= {200, 503}


# -- an oversized body, written whole before the response is read ----------------------


def post_with_http_client(port: int, body: bytes, *, chunked: bool = False) -> tuple[int, bytes]:
    """``http.client`` writes the whole request before it reads anything."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"content-type": "application/json", "accept": POST_HEADERS["accept"]}
        if chunked:
            chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
            conn.request("POST", "/mcp", body=chunks, headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/mcp", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_http_client_reads_its_413(mcp_server: McpServer, logs: LogWatch, chunked: bool) -> None:
    """The app reads at most 4 x its limit of a refused body; the connection's
    lingering close takes the rest (up to 16 MiB), so the client can finish writing and
    read the answer: here 8 MiB, twice the default limit, against a 64 KiB limit."""
    body = b" " * (8 * 1024 * 1024)
    with trio.fail_after(30):
        async with serving(mcp_server, max_body_size=65536) as (handle, client):
            status, answer = await trio.to_thread.run_sync(
                lambda: post_with_http_client(handle.port, body, chunked=chunked)
            )
            assert status == 413
            assert json.loads(answer)["error"]["message"].startswith("Payload Too Large")
            # The server is unharmed.
            response = await client.http.post(
                handle.url, content=json.dumps(initialize()), headers=POST_HEADERS
            )
            assert response.status_code == 200
    assert logs.errors() == []


# -- peers that stop reading ---------------------------------------------------------


async def test_a_stalled_reader_without_peer_timeout_does_not_hold_the_exit(mcp_server: McpServer) -> None:
    """``peer_timeout=None``: no per-write limit while serving, but the shutdown still
    ends: connections left after the drain are aborted at its hard deadline, a write
    blocked under Hypercorn's shield included."""
    grace, final = 0.2, 0.3
    with trio.fail_after(30):
        async with trio.open_nursery() as guard:
            async with serving(
                mcp_server, grace_period=grace, final_send_timeout=final, peer_timeout=None
            ) as (handle, client):
                session = await client.open_session()
                headers = POST_HEADERS | {"mcp-session-id": session, "mcp-protocol-version": LATEST}
                # ~25 MB of notifications, never read: far more than the socket buffers hold.
                body = json.dumps(call_tool(1, "chatter", count=400, size=65536)).encode()
                stalled = await HttpStream.open(handle.port, "POST", headers, body)
                # Should the bound fail, the server's shielded write would block even
                # fail_after: closing the socket then ends the test, as a failure.
                guard.start_soon(_close_after, 10.0, stalled)
                assert await stalled.read_head() == 200
                ping = await client.post(request(2, "ping"), session)
                assert ping.status_code == 200
                began = trio.current_time()
                handle.shutdown()
            took = trio.current_time() - began
            guard.cancel_scope.cancel()
        await stalled.aclose()
    # The drain's bound (grace + 2 x final send), the close deadline (final send),
    # and the handshake settle time.
    assert took <= grace + 3 * final + _serve.HANDSHAKE_SETTLE + 0.5, took


async def test_cancelling_the_server_does_not_wait_for_a_stalled_reader(mcp_server: McpServer) -> None:
    """Cancellation stops the server at once, writes blocked under Hypercorn's shield
    included, even with ``peer_timeout=None``."""
    with trio.fail_after(30):
        async with trio.open_nursery() as guard:
            with trio.CancelScope() as scope:
                async with serving(mcp_server, peer_timeout=None) as (handle, client):
                    session = await client.open_session()
                    headers = POST_HEADERS | {"mcp-session-id": session, "mcp-protocol-version": LATEST}
                    body = json.dumps(call_tool(1, "chatter", count=400, size=65536)).encode()
                    stalled = await HttpStream.open(handle.port, "POST", headers, body)
                    guard.start_soon(_close_after, 10.0, stalled)
                    assert await stalled.read_head() == 200
                    # The server's writer has filled the socket buffers by now.
                    assert (await client.post(request(2, "ping"), session)).status_code == 200
                    began = trio.current_time()
                    scope.cancel()
                    await trio.sleep_forever()
            took = trio.current_time() - began
            guard.cancel_scope.cancel()
        await stalled.aclose()
    assert took < 1.0, took


async def _close_after(seconds: float, stream: HttpStream) -> None:
    await trio.sleep(seconds)
    await stream.aclose()


async def test_a_stalled_reader_with_no_peer_timeout_on_the_command_line() -> None:
    """``--peer-timeout none`` (never): the process still exits, within its bound."""
    grace = 0.5
    with trio.fail_after(30):
        async with server_process(grace, "--peer-timeout", "none") as (process, port, lines):
            url = f"http://127.0.0.1:{port}/mcp"
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(url, content=json.dumps(initialize()), headers=POST_HEADERS)
                headers = POST_HEADERS | {
                    "mcp-session-id": response.headers["mcp-session-id"],
                    "mcp-protocol-version": LATEST,
                }
                body = json.dumps(call_tool(1, "flood", count=400, size=65536)).encode()
                stalled = await HttpStream.open(port, "POST", headers, body)
                try:
                    assert await stalled.read_head() == 200
                    await stalled.next_event()  # then never read again
                    ping = await http.post(url, content=json.dumps(request(2, "ping")), headers=headers)
                    assert ping.status_code == 200
                    signalled = time.monotonic()
                    process.send_signal(signal.SIGTERM)
                    await process.wait()
                    took = time.monotonic() - signalled
                finally:
                    await stalled.aclose()
    assert process.returncode == 0, "\n".join(lines)
    # grace + 2 x final_send_timeout (1 s) for the drain, 1 s to close, and slack.
    assert took <= grace + 3.0 + 1.0, took


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf")])
async def test_peer_timeout_is_positive_or_none(mcp_server: McpServer, value: float) -> None:
    with pytest.raises(ValueError, match="peer_timeout"):
        async with open_mcp_server(mcp_server, port=0, peer_timeout=value):
            pass


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "never"])
def test_the_command_line_refuses_a_bad_peer_timeout(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["serve", "--port", "0", "--peer-timeout", value])
    assert exit_info.value.code == 2
    assert "--peer-timeout" in capsys.readouterr().err


# -- the connection stream, in virtual time ------------------------------------------


async def _connection_pair(peer_timeout: float | None) -> tuple[_serve._Connection, trio.SocketStream]:
    left, right = trio.socket.socketpair()
    return _serve._Connection(trio.SocketStream(left), peer_timeout), trio.SocketStream(right)


async def test_a_write_the_peer_takes_nothing_of_fails_after_peer_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connection, peer = await _connection_pair(5.0)
    began = trio.current_time()
    # Shielded, as Hypercorn writes: the deadline still fires.
    with trio.CancelScope(shield=True), pytest.raises(trio.BrokenResourceError, match="no data for 5 s"):
        await connection.send_all(b"x" * 10_000_000)
    assert trio.current_time() - began == pytest.approx(5.0)
    assert connection.broken
    await connection.close_lingering()
    await peer.aclose()


async def test_a_slow_reader_is_not_a_stalled_one(autojump_clock: trio.testing.MockClock) -> None:
    """The limit is on time without progress, not on the whole write."""
    connection, peer = await _connection_pair(5.0)
    size = 4_000_000
    received = 0

    async def slow_reader() -> None:
        nonlocal received
        while received < size:
            await trio.sleep(4.0)
            received += len(await peer.receive_some(1_000_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        began = trio.current_time()
        await connection.send_all(b"x" * size)
    assert received == size
    assert trio.current_time() - began > 5.0
    await connection.close_lingering()
    await peer.aclose()


async def test_the_shutdown_deadline_aborts_a_write_without_peer_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connection, peer = await _connection_pair(None)

    async def write() -> None:
        with trio.CancelScope(shield=True), pytest.raises(trio.BrokenResourceError, match="shutdown"):
            await connection.send_all(b"x" * 10_000_000)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        await trio.sleep(100.0)  # nothing bounds the write while serving
        deadline = trio.current_time() + 3.0
        connection.set_deadline(deadline)
    assert trio.current_time() == pytest.approx(deadline)
    await connection.close_lingering()
    await peer.aclose()


async def test_closing_wakes_pending_operations(autojump_clock: trio.testing.MockClock) -> None:
    """Hypercorn closes the stream from one task while another reads or writes it."""
    connection, peer = await _connection_pair(None)
    outcomes: list[str] = []

    async def read() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await connection.receive_some()
        outcomes.append("read")

    async def write() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await connection.send_all(b"x" * 10_000_000)
        outcomes.append("write")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        nursery.start_soon(write)
        await trio.testing.wait_all_tasks_blocked()
        await connection.aclose()
    assert sorted(outcomes) == ["read", "write"]
    await connection.close_lingering()
    await peer.aclose()


# -- malformed input -----------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

MALFORMED = {
    "garbage": b"\x00\xff" * 100 + b"\r\n\r\n",
    "bad request line": b"GET\r\n\r\n",
    "bad chunk size": b"POST /mcp HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    "huge header": b"GET /mcp HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 100_000 + b"\r\n\r\n",
    "content-length and chunked": (
        b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "h2 preface then garbage": H2_PREFACE + b"\x00\x00\x04\x09\x00\x00\x00\x00\x07garbage",
    "h2 malformed settings": H2_PREFACE + b"\x00\x00\x05\x04\x00\x00\x00\x00\x00" + b"\x00" * 5,
    "h2c upgrade with a body": (
        b"POST /mcp HTTP/1.1\r\nhost: x\r\nupgrade: h2c\r\nconnection: upgrade, http2-settings\r\n"
        b"http2-settings: AAMAAABkAAQAAP__\r\ncontent-length: 2\r\n\r\n{}"
    ),
    "h2c upgrade then garbage": (
        b"GET /mcp HTTP/1.1\r\nhost: x\r\nupgrade: h2c\r\nconnection: upgrade, http2-settings\r\n"
        b"http2-settings: AAMAAABkAAQAAP__\r\n\r\n" + b"\x01" * 50
    ),
}


async def _send_and_read_to_eof(port: int, data: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    try:
        await stream.send_all(data)
        while chunk := await stream.receive_some(65536):
            received += chunk
    except trio.BrokenResourceError:
        pass  # reset: allowed for input this broken
    finally:
        await stream.aclose()
    return received


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_input_ends_its_own_connection_only(
    mcp_server: McpServer, logs: LogWatch, payload: bytes
) -> None:
    with trio.fail_after(20):
        async with serving(mcp_server, hypercorn={"keep_alive_timeout": 1.0}) as (handle, client):
            before = await client.http.post(
                handle.url, content=json.dumps(initialize()), headers=POST_HEADERS
            )
            assert before.status_code == 200
            await _send_and_read_to_eof(handle.port, payload)
            # The same keep-alive connection, and new ones, still work.
            after = await client.http.post(handle.url, content=json.dumps(initialize()), headers=POST_HEADERS)
            assert after.status_code == 200
            async with httpx.AsyncClient(timeout=5) as fresh:
                response = await fresh.post(
                    handle.url, content=json.dumps(initialize()), headers=POST_HEADERS
                )
                assert response.status_code == 200
    assert logs.errors() == []


# -- the keep-alive clock --------------------------------------------------------------


async def _exchange(stream: trio.SocketStream, connection: h11.Connection, port: int, seconds: float) -> int:
    """One stateless ``tools/call`` of ``slow`` on a kept-alive connection; its status."""
    body = json.dumps(call_tool(1, "slow", seconds=seconds)).encode()
    headers = [
        ("host", f"127.0.0.1:{port}"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
        ("content-length", str(len(body))),
    ]
    if connection.our_state is h11.DONE:
        connection.start_next_cycle()
    await stream.send_all(connection.send(h11.Request(method="POST", target="/mcp", headers=headers)) or b"")
    await stream.send_all(connection.send(h11.Data(data=body)) or b"")
    await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
    status = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.EndOfMessage):
            return status


async def test_keep_alive_closes_idle_connections_not_busy_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Hypercorn's keep-alive rule, on the server's own clock: a connection idle for
    ``keep_alive_timeout`` is closed; one busy with a longer request, or used again
    before the timeout, is not."""
    server = McpServer("keep-alive", "1.0")

    @server.tool()
    async def slow(seconds: float) -> str:
        await trio.sleep(seconds)
        return "done"

    async with serving(
        server, stateless=True, json_response=True, hypercorn={"keep_alive_timeout": 5.0}
    ) as (handle, _):
        stream = await trio.open_tcp_stream("127.0.0.1", handle.port)
        connection = h11.Connection(h11.CLIENT)
        began = trio.current_time()
        assert await _exchange(stream, connection, handle.port, 12.0) == 200
        assert trio.current_time() - began == pytest.approx(12.0)
        for _ in range(3):
            await trio.sleep(4.0)  # idle, but less than the timeout
            assert await _exchange(stream, connection, handle.port, 0.0) == 200
        idle_since = trio.current_time()
        assert await stream.receive_some(65536) == b""  # the server's FIN
        assert trio.current_time() - idle_since == pytest.approx(5.0)
        await stream.aclose()
