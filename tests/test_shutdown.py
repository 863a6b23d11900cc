"""Guarantee 3: shutdown is a drain, not a massacre.

The end-to-end test runs the CLI in a subprocess, holds 100 standalone GET streams and
100 running tool calls, sends SIGTERM, and checks every response on the wire.  The drain
sequence itself is also checked step by step in virtual time, in memory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from helpers import (
    LATEST,
    POST_HEADERS,
    Controller,
    HttpStream,
    InMemoryClient,
    call_tool,
    initialize,
    is_response,
    messages_of,
    notification,
    request,
)

from trio_mcp_http import McpHttpApp, McpServer, TransportConfig

TESTS = Path(__file__).parent
GRACE = 3.0
SHORT = 1.5  # tool calls that finish within the grace period
LONG = 60.0  # tool calls that do not
N = 100


@asynccontextmanager
async def server_process(
    grace: float, *extra: str, spec: str = "helpers_shutdown:server", listening: int = 1
) -> AsyncIterator[tuple[trio.Process, int, list[str]]]:
    """The CLI serving ``spec`` on port 0; yields (process, port, stderr lines) once
    ``listening`` servers (worker processes) have said they serve."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    command = [
        sys.executable, "-m", "trio_mcp_http", "serve", spec,
        "--host", "127.0.0.1", "--port", "0", "--grace-period", str(grace), "--log-level", "INFO", *extra,
    ]  # fmt: skip
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    lines: list[str] = []
    found_url = trio.Event()
    port: list[int] = []

    async def read_stderr() -> None:
        assert process.stderr is not None
        buffer = b""
        while chunk := await process.stderr.receive_some(65536):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                lines.append(line)
                match = re.search(r"serving MCP at http://127\.0\.0\.1:(\d+)/mcp", line)
                if match:
                    port.append(int(match.group(1)))
                    if len(port) >= listening:
                        found_url.set()
        if buffer:
            lines.append(buffer.decode(errors="replace"))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_stderr)
            with trio.fail_after(20):
                await found_url.wait()
            yield process, port[0], lines
            # The stderr reader ends at EOF, once the process has exited.
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


@pytest.mark.parametrize(
    "spec", ["helpers_shutdown:server", "helpers_shutdown_sdk:server"], ids=["ours", "sdk-server"]
)
async def test_sigterm_drains_every_stream_and_answers_every_request(spec: str) -> None:
    with trio.fail_after(90):
        async with (
            server_process(GRACE, spec=spec) as (process, port, stderr_lines),
            httpx.AsyncClient(timeout=20) as http,
        ):
            url = f"http://127.0.0.1:{port}/mcp"
            limiter = trio.CapacityLimiter(25)
            sessions: list[str] = []

            async def open_session() -> None:
                async with limiter:
                    response = await http.post(url, content=json.dumps(initialize()), headers=POST_HEADERS)
                    assert response.status_code == 200
                    session = response.headers["mcp-session-id"]
                    note = await http.post(
                        url,
                        content=json.dumps(notification("notifications/initialized")),
                        headers=POST_HEADERS | {"mcp-session-id": session},
                    )
                    assert note.status_code == 202
                    sessions.append(session)

            async with trio.open_nursery() as nursery:
                for _ in range(N):
                    nursery.start_soon(open_session)
            assert len(set(sessions)) == N

            session_headers = [{"mcp-session-id": s, "mcp-protocol-version": LATEST} for s in sessions]
            gets: list[HttpStream] = []
            posts: dict[int, HttpStream] = {}
            started_at: dict[int, float] = {}
            try:

                async def open_get(i: int) -> None:
                    async with limiter:
                        stream = await HttpStream.open(
                            port, "GET", session_headers[i] | {"accept": "text/event-stream"}
                        )
                        gets.append(stream)
                        assert await stream.read_head() == 200
                        priming = await stream.next_event()  # attached
                        assert priming.id
                        assert priming.data == ""

                async def open_post(i: int, seconds: float) -> None:
                    body = json.dumps(
                        call_tool(i, "work", meta={"progressToken": f"p{i}"}, seconds=seconds)
                    ).encode()
                    async with limiter:
                        stream = await HttpStream.open(port, "POST", session_headers[i] | POST_HEADERS, body)
                        posts[i] = stream
                        assert await stream.read_head() == 200
                        _, started = await stream.next_message()
                        assert started["method"] == "notifications/progress"
                        assert started["params"]["progressToken"] == f"p{i}"
                        started_at[i] = trio.current_time()

                async with trio.open_nursery() as nursery:
                    for i in range(N):
                        nursery.start_soon(open_get, i)
                long_ids = list(range(0, N, 2))
                short_ids = list(range(1, N, 2))
                async with trio.open_nursery() as nursery:
                    for i in long_ids:
                        nursery.start_soon(open_post, i, LONG)
                # The short calls start last and just before the signal, so every one of
                # them is still running when it arrives.
                async with trio.open_nursery() as nursery:
                    for i in short_ids:
                        nursery.start_soon(open_post, i, SHORT)
                assert len(gets) == N
                assert len(posts) == N

                process.send_signal(signal.SIGTERM)
                signalled = trio.current_time()
                assert max(signalled - started_at[i] for i in short_ids) < SHORT - 0.3, "setup too slow"

                get_blocks: dict[int, Any] = {}
                post_messages: dict[int, list[dict[str, Any]]] = {}
                post_finished: dict[int, float] = {}
                exited_after: list[float] = []

                get_finished: dict[int, float] = {}
                first_short_done = trio.Event()

                async def drain_get(i: int, stream: HttpStream) -> None:
                    get_blocks[i] = await stream.read_to_end()  # raises unless chunked EOF is clean
                    get_finished[i] = trio.current_time() - signalled

                async def drain_post(i: int, stream: HttpStream) -> None:
                    post_messages[i] = messages_of(await stream.read_to_end())
                    post_finished[i] = trio.current_time() - signalled
                    if i in short_ids:
                        first_short_done.set()

                async def wait_exit() -> None:
                    await process.wait()
                    exited_after.append(trio.current_time() - signalled)

                refusals: list[httpx.Response] = []

                async def try_new_work() -> None:
                    # Once a short call has finished, the drain has certainly begun: new
                    # sessions and new requests are refused, over kept-alive connections.
                    await first_short_done.wait()
                    refusals.append(
                        await http.post(url, content=json.dumps(initialize()), headers=POST_HEADERS)
                    )
                    refusals.append(
                        await http.post(
                            url,
                            content=json.dumps(request(1, "ping")),
                            headers=POST_HEADERS | session_headers[0],
                        )
                    )

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(wait_exit)
                    nursery.start_soon(try_new_work)
                    for i, stream in enumerate(gets):
                        nursery.start_soon(drain_get, i, stream)
                    for i, stream in posts.items():
                        nursery.start_soon(drain_post, i, stream)
            finally:
                for stream in [*gets, *posts.values()]:
                    await stream.aclose()

        # Every stream ended with a clean chunked EOF.
        assert all(stream.complete for stream in gets)
        assert all(stream.complete for stream in posts.values())
        assert all(
            stream.headers.get("transfer-encoding") == "chunked" for stream in [*gets, *posts.values()]
        )
        # Draining refused new work with 503 + Retry-After.
        assert [r.status_code for r in refusals] == [503, 503]
        assert all(int(r.headers["retry-after"]) > 0 for r in refusals)
        # GET streams stayed open while requests could still finish (step 2), then were
        # closed (step 3), told when to come back (retry:); they never carried a response.
        assert min(get_finished.values()) >= GRACE - 0.2
        for blocks in get_blocks.values():
            assert any(block.retry is not None for block in blocks)
            assert not any(is_response(m) for m in messages_of(blocks))
        # Every POST got exactly one JSON-RPC response: a result if it finished in time.
        for i in short_ids:
            responses = [m for m in post_messages[i] if is_response(m)]
            assert len(responses) == 1, responses
            assert responses[0]["id"] == i
            assert responses[0]["result"]["content"] == [{"type": "text", "text": f"worked {SHORT}"}]
            assert post_finished[i] < GRACE
        for i in long_ids:
            responses = [m for m in post_messages[i] if is_response(m)]
            assert len(responses) == 1, responses
            assert responses[0]["id"] == i
            assert responses[0]["error"]["code"] == -32603
            assert "shutting down" in responses[0]["error"]["message"]
            assert post_finished[i] >= GRACE - 0.1
        # The process exited cleanly within grace + 1 s, with nothing alarming logged.
        assert process.returncode == 0
        assert exited_after[0] <= GRACE + 1.0, (exited_after, max(post_finished.values()))
        text = "\n".join(stderr_lines)
        assert "received SIGTERM" in text
        bad = [line for line in stderr_lines if re.search(r"\b(ERROR|CRITICAL|WARNING)\b|Traceback", line)]
        assert bad == [], bad


async def test_a_stalled_reader_does_not_hold_up_the_exit() -> None:
    """A client that stops reading a stream (its socket stays open, its window at zero)
    must not keep the server from exiting.

    Hypercorn's trio worker writes inside a shielded cancel scope with no timeout, so
    nothing in the process can interrupt that write; the kernel can: ``--peer-timeout``
    (TCP_USER_TIMEOUT) aborts the stalled connection, the write fails, and the exit
    follows within grace + peer timeout + 1 s.
    """
    grace = 1.0
    peer_timeout = 1.0
    with trio.fail_after(30):
        async with (
            server_process(grace, "--peer-timeout", str(peer_timeout)) as (process, port, _),
            httpx.AsyncClient(timeout=10) as http,
        ):
            url = f"http://127.0.0.1:{port}/mcp"
            response = await http.post(url, content=json.dumps(initialize()), headers=POST_HEADERS)
            headers = POST_HEADERS | {
                "mcp-session-id": response.headers["mcp-session-id"],
                "mcp-protocol-version": LATEST,
            }
            # ~25 MB of events: far more than the loopback socket buffers hold.
            body = json.dumps(call_tool(1, "flood", count=400, size=65536)).encode()
            stalled = await HttpStream.open(port, "POST", headers, body)
            try:
                assert await stalled.read_head() == 200
                await stalled.next_event()  # then never read again: the server's writer
                # fills the socket buffers and blocks, while the server stays responsive.
                ping = await http.post(url, content=json.dumps(request(2, "ping")), headers=headers)
                assert ping.status_code == 200
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(grace + peer_timeout + 1.0):
                    await process.wait()
                assert process.returncode == 0
            finally:
                await stalled.aclose()


# -- the drain, step by step, in virtual time --------------------------------------------


async def test_drain_sequence(
    ctl: Controller, mcp_server: McpServer, autojump_clock: trio.testing.MockClock
) -> None:
    config = TransportConfig(grace_period=10.0, final_send_timeout=1.0, retry_ms=500, retry_after=7)
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            app = McpHttpApp(mcp_server, config)
            await nursery.start(app.run)
            client = InMemoryClient(app, nursery)
            first = await client.open_session(elicitation={})
            second = await client.open_session(elicitation={})

            get = client.call("GET", session=first)
            assert (await get.start())[0] == 200
            assert (await get.next_block()) is not None  # priming
            finishing = client.call("POST", call_tool(1, "hold", key="finishing"), first)
            lingering = client.call("POST", call_tool(2, "hold", key="lingering"), second)
            asking = client.call("POST", call_tool(3, "ask_name"), second)
            for call in (finishing, lingering, asking):
                assert (await call.start())[0] == 200
            await ctl.started["finishing"].wait()
            await ctl.started["lingering"].wait()
            elicitation = None
            while elicitation is None:
                block = await asking.next_block()
                assert block is not None
                message = block.message
                if message is not None and message.get("method") == "elicitation/create":
                    elicitation = message

            drained = trio.Event()
            began = trio.current_time()

            async def drain() -> None:
                await app.drain()
                drained.set()

            nursery.start_soon(drain)
            await trio.testing.wait_all_tasks_blocked()

            # 1. Nothing new is admitted: new sessions, requests and streams get 503.
            for status, headers, _ in (
                await client.request("POST", initialize()),
                await client.request("POST", request(9, "ping"), first),
                await client.request("GET", None, second),
            ):
                assert status == 503
                assert headers["retry-after"] == "7"
            # ... but notifications and answers to the server's own requests still are.
            status, _, body = await client.request("POST", notification("notifications/initialized"), first)
            assert (status, body) == (202, b"")
            answer = {
                "jsonrpc": "2.0",
                "id": elicitation["id"],
                "result": {"action": "accept", "content": {"name": "Ada"}},
            }
            status, _, _ = await client.request("POST", answer, second)
            assert status == 202
            asked = messages_of(await asking.read_to_end())
            assert asked == [
                {"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "Hello, Ada!"}]}}
            ]

            # 2. In-flight requests may finish within the grace period.
            await trio.sleep(4)
            ctl.release("finishing")
            finished = messages_of(await finishing.read_to_end())
            assert finished == [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "result": {"content": [{"type": "text", "text": "released finishing"}]},
                }
            ]
            assert not drained.is_set()

            # 3/4. At the end of the grace period the rest is cancelled, with an error answer.
            rest = await lingering.read_to_end()
            assert trio.current_time() - began >= 10.0
            assert ctl.cancelled["lingering"].is_set()
            [error] = [m for m in messages_of(rest) if is_response(m)]
            assert error["id"] == 2
            assert error["error"]["code"] == -32603

            # 5. Streams end cleanly with a retry hint, and the drain returns, bounded.
            get_rest = await get.read_to_end()
            assert get_rest
            assert get_rest[-1].retry == 500
            await drained.wait()
            assert trio.current_time() - began <= 10.0 + 2 * config.final_send_timeout
            for call in (get, finishing, lingering, asking):
                assert call.done.is_set()
                assert [m["type"] for m in call.sent].count("http.response.start") == 1
                assert [m for m in call.sent if m["type"] == "http.response.body" and not m.get("more_body")]
            stats = app.statistics()
            assert stats["requests_in_flight"] == 0
            assert stats["http_calls_in_flight"] == 0
            assert stats["open_streams"] == 0
            nursery.cancel_scope.cancel()


async def test_drain_answers_json_mode_requests(
    ctl: Controller, mcp_server: McpServer, autojump_clock: trio.testing.MockClock
) -> None:
    """JSON-response mode has no stream to carry an error later: the cancelled request's
    JSON body is the error, and the one that finished in time gets its result."""
    config = TransportConfig(json_response=True, grace_period=5.0)
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            app = McpHttpApp(mcp_server, config)
            await nursery.start(app.run)
            client = InMemoryClient(app, nursery)
            session = await client.open_session()
            quick = client.call("POST", call_tool(1, "hold", key="quick"), session)
            slow = client.call("POST", call_tool("two", "hold", key="slow"), session)
            await ctl.started["quick"].wait()
            await ctl.started["slow"].wait()
            began = trio.current_time()
            nursery.start_soon(app.drain)
            await trio.sleep(2)
            ctl.release("quick")
            assert (await quick.start())[0] == 200
            assert json.loads(await quick.body()) == {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {"content": [{"type": "text", "text": "released quick"}]},
            }
            assert (await slow.start())[0] == 200
            answer = json.loads(await slow.body())
            assert trio.current_time() - began >= 5.0
            assert answer["id"] == "two"
            assert answer["error"]["code"] == -32603
            assert ctl.cancelled["slow"].is_set()
            await quick.done.wait()
            await slow.done.wait()
            assert app.statistics()["requests_in_flight"] == 0
            nursery.cancel_scope.cancel()


# -- several worker processes on one socket ------------------------------------------------


async def test_workers_share_one_socket_and_drain_together() -> None:
    """``--workers 2``: one bound port, two whole servers on it; a SIGTERM to the parent
    drains both (a call in flight is answered) and the parent exits 0."""
    workers = server_process(5.0, "--workers", "2", "--stateless", listening=2)
    async with workers as (process, port, lines):
        with trio.fail_after(20):
            async with httpx.AsyncClient(timeout=10) as http:
                headers = {**POST_HEADERS, "mcp-protocol-version": "2025-11-25"}
                url = f"http://127.0.0.1:{port}/mcp"
                for i in range(10):
                    quick = await http.post(url, json=call_tool(i, "work", seconds=0.0), headers=headers)
                    assert quick.status_code == 200
                    assert "worked 0.0" in quick.text
                # A call in flight when the parent is told to stop: its worker answers it.
                body = call_tool(99, "work", meta={"progressToken": "slow"}, seconds=1.0)
                async with http.stream("POST", url, json=body, headers=headers) as slow:
                    seen = ""
                    async for line in slow.aiter_lines():
                        seen += line
                        if "notifications/progress" in line:
                            process.send_signal(signal.SIGTERM)
                assert "worked 1.0" in seen
            assert await process.wait() == 0
    assert sum("draining" in line for line in lines) == 2


async def test_workers_need_shared_or_no_sessions() -> None:
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    result = await trio.run_process(
        [sys.executable, "-m", "trio_mcp_http", "serve", "--port", "0", "--workers", "2"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert b"--workers > 1 needs --stateless or --redis-url" in result.stderr


async def test_workers_do_not_outlive_their_supervisor() -> None:
    """Killed outright (no chance to pass the signal on), the supervisor still takes its
    workers with it: each gets SIGTERM, drains and exits.  The workers write to the
    supervisor's stderr: the pipe reaches its end only once both have exited."""
    with trio.fail_after(20):
        async with server_process(5.0, "--workers", "2", "--stateless", listening=2) as (process, _, lines):
            process.kill()
            assert await process.wait() == -signal.SIGKILL
        # Leaving the block waited for the end of stderr: every worker has exited.
    assert sum("draining" in line for line in lines) == 2
    assert sum("received SIGTERM" in line for line in lines) == 2
