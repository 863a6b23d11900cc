"""WebSocket sessions at scale: the shutdown drain and vanishing peers, with figures.

* SIGTERM to ``trio-mcp-http serve`` holding 100 WebSocket sessions, each with one tool
  call in flight (half finishing within the grace period, half not): every call is
  answered (its result, or the shutdown error), every socket is closed with 1001, the
  server logs no ERROR (nor WARNING, nor traceback), and exits within grace + 1 s.
* 100 peers vanishing mid-call (the TCP connection dropped, no close frame): every
  handler is cancelled, nothing is left behind, and nothing is logged as an error.

The clients are raw ``wsproto`` sockets (``RawSocket`` of test_websocket.py): they read
only when asked and can vanish without a close frame.
"""

from __future__ import annotations

import re
import signal
from typing import Any

import trio
from conftest import LogWatch
from helpers import (
    Controller,
    build_server,
    call_tool,
    initialize,
    is_response,
    notification,
    serving,
    wait_idle,
)
from test_shutdown import server_process
from test_websocket import RawSocket
from wsproto.events import CloseConnection

GRACE = 3.0
SHORT = 1.5  # calls that finish within the grace period
LONG = 60.0  # calls that do not
N = 100
IDLE = {"sessions": 0, "requests_in_flight": 0, "http_calls_in_flight": 0, "open_streams": 0}


async def _open_session(port: int, i: int, seconds: float, limiter: trio.CapacityLimiter) -> RawSocket:
    """A WebSocket session with one ``work`` call running (its first progress seen)."""
    async with limiter:
        raw = await RawSocket.open(port)
        hello = await raw.call(initialize(0))
        assert hello["result"]["protocolVersion"]
        await raw.send(notification("notifications/initialized"))
        await raw.send(call_tool(i, "work", meta={"progressToken": f"p{i}"}, seconds=seconds))
        started = await raw.next_message()
        assert not isinstance(started, CloseConnection)
        assert started["method"] == "notifications/progress"
        assert started["params"]["progressToken"] == f"p{i}"
        return raw


async def _read_to_close(raw: RawSocket) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server's close frame, and its code."""
    messages: list[dict[str, Any]] = []
    while True:
        message = await raw.next_message()
        if isinstance(message, CloseConnection):
            return messages, message.code
        messages.append(message)


async def test_sigterm_answers_every_call_and_closes_every_socket_with_1001() -> None:
    sockets: dict[int, RawSocket] = {}
    started_at: dict[int, float] = {}
    with trio.fail_after(90):
        async with server_process(GRACE) as (process, port, stderr_lines):
            limiter = trio.CapacityLimiter(25)
            long_ids = list(range(0, N, 2))
            short_ids = list(range(1, N, 2))
            try:

                async def open_one(i: int, seconds: float) -> None:
                    sockets[i] = await _open_session(port, i, seconds, limiter)
                    started_at[i] = trio.current_time()

                async with trio.open_nursery() as nursery:
                    for i in long_ids:
                        nursery.start_soon(open_one, i, LONG)
                # The short calls start last, just before the signal: every one of them
                # is still running when it arrives.
                async with trio.open_nursery() as nursery:
                    for i in short_ids:
                        nursery.start_soon(open_one, i, SHORT)
                assert len(sockets) == N

                process.send_signal(signal.SIGTERM)
                signalled = trio.current_time()
                assert max(signalled - started_at[i] for i in short_ids) < SHORT - 0.3, "setup too slow"

                outcomes: dict[int, tuple[list[dict[str, Any]], int | None, float]] = {}
                exited_after: list[float] = []

                async def read(i: int, raw: RawSocket) -> None:
                    messages, code = await _read_to_close(raw)
                    outcomes[i] = (messages, code, trio.current_time() - signalled)

                async def wait_exit() -> None:
                    await process.wait()
                    exited_after.append(trio.current_time() - signalled)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(wait_exit)
                    for i, raw in sockets.items():
                        nursery.start_soon(read, i, raw)
            finally:
                for raw in sockets.values():
                    await raw.stream.aclose()

    # Every call got exactly one answer: its result if it finished within the grace
    # period, the shutdown error if not; then the socket was closed with 1001.
    for i in short_ids:
        messages, code, _ = outcomes[i]
        answers = [m for m in messages if is_response(m)]
        assert [a["id"] for a in answers] == [i]
        assert answers[0]["result"]["content"] == [{"type": "text", "text": f"worked {SHORT}"}]
        assert code == 1001
    for i in long_ids:
        messages, code, closed_after = outcomes[i]
        answers = [m for m in messages if is_response(m)]
        assert [a["id"] for a in answers] == [i]
        assert answers[0]["error"]["code"] == -32603
        assert "shutting down" in answers[0]["error"]["message"]
        assert code == 1001
        assert closed_after >= GRACE - 0.1
    # The process exited cleanly within grace + 1 s, with nothing alarming logged.
    assert process.returncode == 0
    last_close = max(closed_after for _, _, closed_after in outcomes.values())
    assert exited_after[0] <= GRACE + 1.0, (exited_after, last_close)
    text = "\n".join(stderr_lines)
    assert "received SIGTERM" in text
    bad = [line for line in stderr_lines if re.search(r"\b(ERROR|CRITICAL|WARNING)\b|Traceback", line)]
    assert bad == [], bad


async def test_a_hundred_peers_vanishing_mid_call_cancel_their_handlers(logs: LogWatch) -> None:
    ctl = Controller()
    server = build_server(ctl, "vanishing")
    limiter = trio.CapacityLimiter(25)
    with trio.fail_after(60):
        async with serving(server) as (handle, _):
            sockets: list[RawSocket] = []
            try:

                async def open_one(i: int) -> None:
                    async with limiter:
                        raw = await RawSocket.open(handle.port)
                        sockets.append(raw)
                        await raw.call(initialize(0))
                        await raw.send(call_tool(1, "hold", key=f"held-{i}"))
                        await ctl.started[f"held-{i}"].wait()

                async with trio.open_nursery() as nursery:
                    for i in range(N):
                        nursery.start_soon(open_one, i)
                stats = handle.statistics()
                assert (stats["sessions"], stats["requests_in_flight"]) == (N, N)
            finally:
                for raw in sockets:
                    await raw.stream.aclose()  # no close frame: the peers are just gone
            for i in range(N):
                await ctl.cancelled[f"held-{i}"].wait()
                assert ctl.finished[f"held-{i}"].is_set()
            await wait_idle(handle.app)
            assert {k: handle.statistics()[k] for k in IDLE} == IDLE
    assert logs.errors() == []
    assert [w for w in logs.warnings() if "Traceback" in w or "rror" in w] == []
