"""Sessions shared through Redis: any worker serves any session.

Two (or three) servers on 127.0.0.1 port 0, each with its own ``McpServer`` as two
worker processes would have, share one real ``redis-server``; the client goes from
one to the other as a round-robin balancer would send it.
"""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from helpers import (
    Client,
    Controller,
    build_server,
    call_tool,
    initialize,
    notification,
    request,
    response_messages,
    serving,
)
from redis_fixture import RedisServer, own_redis

from trio_mcp_http import McpServer

# coredis 6.9 creates each connection's anyio channels before it connects, and closes
# them only once connected: a connection abandoned while connecting (Redis down, or a
# shutdown) warns when collected.  Nothing is left running; the channels hold nothing.
_CONNECT_NOISE = "ignore:Unclosed <MemoryObject:ResourceWarning"
# The same connections' sockets, when collected (seen once on a loaded machine).
_SOCKET_NOISE = "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
pytestmark = [pytest.mark.filterwarnings(_CONNECT_NOISE), pytest.mark.filterwarnings(_SOCKET_NOISE)]


@pytest.fixture(scope="module")
def _redis_process() -> Iterator[RedisServer]:
    with own_redis() as server:
        yield server


@pytest.fixture
def redis(_redis_process: RedisServer) -> RedisServer:
    """The module's server, emptied for this test."""
    _redis_process.cli("FLUSHALL")
    return _redis_process


@dataclass
class Worker:
    """One server of the fleet, its handle and an httpx client bound to it."""

    handle: Any
    client: Client
    server: McpServer
    ctl: Controller


@asynccontextmanager
async def fleet(url: str, count: int = 2, **config: Any) -> AsyncIterator[list[Worker]]:
    async with AsyncExitStack() as stack:
        workers = []
        for n in range(count):
            ctl = Controller()
            server = build_server(ctl, f"worker-{n}")

            @server.resource("memo://note")
            async def note() -> str:
                return "a note"

            handle, client = await stack.enter_async_context(serving(server, redis_url=url, **config))
            workers.append(Worker(handle, client, server, ctl))
        try:
            yield workers
        finally:
            await stack.aclose()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Unclosed <MemoryObject", ResourceWarning)
                gc.collect()


async def open_session(worker: Worker, **capabilities: Any) -> str:
    return await worker.client.open_session(**capabilities)


async def test_any_worker_serves_any_session(redis: RedisServer) -> None:
    async with fleet(redis.url, 3) as (a, b, c):
        session = await open_session(a)
        answered = await b.client.post(call_tool(1, "echo", text="from b"), session)
        assert answered.status_code == 200
        assert response_messages(answered)[-1]["result"]["content"][0]["text"] == "from b"
        listed = await c.client.post(request(2, "tools/list"), session)
        assert listed.status_code == 200
        assert "echo" in [t["name"] for t in response_messages(listed)[-1]["result"]["tools"]]
        deleted = await c.client.delete(session)
        assert deleted.status_code == 204
        # Gone on every worker, the one that created it and the one that restored it.
        for worker in (a, b, c):
            gone = await worker.client.post(call_tool(3, "echo", text="late"), session)
            assert gone.status_code == 404, worker


def _retry_hint(blocks: list[Any]) -> bool:
    return any(block.retry is not None for block in blocks)


async def test_get_stream_hears_every_worker_and_resumes_on_another(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        session = await open_session(a)
        last_id = None
        async with a.client.stream("GET", session=session) as get:
            assert get.status == 200
            priming = await get.next_event()
            assert priming.id is not None
            assert priming.id.startswith("0/")
            # Raised on the other worker: numbered by the store, carried by this one.
            b.server.notify_tools_changed()
            block, message = await get.next_message()
            assert message["method"] == "notifications/tools/list_changed"
            last_id = block.id
        # The client is away while both workers raise notifications.
        a.server.notify_prompts_changed()
        b.server.notify_resources_changed()
        assert last_id is not None
        async with b.client.stream("GET", session=session, last_event_id=last_id) as resumed:
            assert resumed.status == 200
            _, first = await resumed.next_message()
            _, second = await resumed.next_message()
            # Raised on two workers at once: the store's order is the one order.
            assert {first["method"], second["method"]} == {
                "notifications/prompts/list_changed",
                "notifications/resources/list_changed",
            }
            # Then live, each event once: the next one is the next raised.
            a.server.notify_tools_changed()
            block, third = await resumed.next_message()
            assert third["method"] == "notifications/tools/list_changed"
            seqs = [int(b.id.split("/")[1]) for b in resumed.seen if b.id is not None]
            assert seqs == sorted(set(seqs)), seqs


async def test_a_handlers_question_is_answered_through_another_worker(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        session = await open_session(a, elicitation={})
        async with a.client.stream("POST", call_tool(5, "ask_name"), session=session) as call:
            _, asked = await call.next_message()
            assert asked["method"] == "elicitation/create"
            answer = {
                "jsonrpc": "2.0",
                "id": asked["id"],
                "result": {"action": "accept", "content": {"name": "Ada"}},
            }
            posted = await b.client.post(answer, session)
            assert posted.status_code == 202
            _, result = await call.next_message()
            assert result["id"] == 5
            assert result["result"]["content"][0]["text"] == "Hello, Ada!"


async def test_cancellation_reaches_the_worker_running_the_request(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        session = await open_session(a)
        async with a.client.stream("POST", call_tool(7, "hold", key="k"), session=session):
            with trio.fail_after(10):
                await a.ctl.started["k"].wait()
            cancel = notification("notifications/cancelled", {"requestId": 7, "reason": "changed my mind"})
            posted = await b.client.post(cancel, session)
            assert posted.status_code == 202
            with trio.fail_after(10):
                await a.ctl.cancelled["k"].wait()


async def test_delete_on_one_worker_ends_the_session_everywhere(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        session = await open_session(a)
        async with (
            a.client.stream("GET", session=session) as get,
            a.client.stream("POST", call_tool(8, "hold", key="d"), session=session) as call,
        ):
            await get.next_event()
            with trio.fail_after(10):
                await a.ctl.started["d"].wait()
            deleted = await b.client.delete(session)
            assert deleted.status_code == 204
            with trio.fail_after(10):
                await a.ctl.cancelled["d"].wait()
                await get.read_to_end()  # the GET stream ends cleanly
                _, answer = await call.next_message()
            assert answer["id"] == 8
            assert "error" in answer
        assert (await a.client.post(call_tool(9, "echo", text="x"), session)).status_code == 404


async def test_the_session_cap_holds_across_the_fleet(redis: RedisServer) -> None:
    async with fleet(redis.url, max_sessions=2) as (a, b):
        await open_session(a)
        await open_session(b)
        refused = await a.client.post(initialize(), headers=a.client.headers(version=None))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["message"].endswith("too many sessions")


async def test_an_unknown_or_foreign_session_id_is_not_found(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        session = await open_session(a)
        for other in (
            "x" * 32,
            session[:-1] + ("A" if session[-1] != "A" else "B"),
            "*:s:" + "a" * 28,
            "nope",
        ):
            answered = await b.client.post(call_tool(1, "echo", text="x"), other)
            assert answered.status_code == 404, other
        # Nothing was created for the ids that were looked up.
        keys = (await trio.to_thread.run_sync(redis.cli, "--raw", "KEYS", "*")).split()
        assert "trio-mcp:sessions" in keys
        shared = ("trio-mcp:sessions", "trio-mcp:tags")
        assert all(key in shared or session in key for key in keys), keys


async def test_keys_expire_with_their_sessions(redis: RedisServer) -> None:
    async with fleet(redis.url, session_idle_timeout=60.0) as (a, b):
        sessions = []
        for n in range(10):
            worker = (a, b)[n % 2]
            session = await open_session(worker)
            sessions.append(session)
            async with worker.client.stream("GET", session=session) as get:
                await get.next_event()
            called = await (a, b)[(n + 1) % 2].client.post(call_tool(1, "progress", steps=2), session)
            assert called.status_code == 200
        await a.handle.app._fleet.flush()
        await b.handle.app._fleet.flush()
        keys = (await trio.to_thread.run_sync(redis.cli, "--raw", "KEYS", "*")).split()
        assert len(keys) > 10
        for key in keys:
            if key == "trio-mcp:sessions":
                continue  # trimmed of expired ids; deleted with its last member
            if key == "trio-mcp:tags":
                continue  # the workers' tag counter: one small key, for good
            ttl = int(await trio.to_thread.run_sync(redis.cli, "PTTL", key))
            assert 0 < ttl <= 65_000, (key, ttl)  # the timeout and a refresh interval (5 s)
        for n, session in enumerate(sessions):
            assert (await (a, b)[n % 2].client.delete(session)).status_code == 204
        await a.handle.app._fleet.flush()
        await b.handle.app._fleet.flush()
        keys = (await trio.to_thread.run_sync(redis.cli, "--raw", "KEYS", "*")).split()
        assert keys == ["trio-mcp:tags"]


async def test_a_draining_worker_hands_its_clients_to_the_others(redis: RedisServer) -> None:
    """A rolling restart: the worker carrying a GET stream is shut down; its client
    resumes on another worker and misses nothing, and its session lives on."""
    async with fleet(redis.url, grace_period=0.5) as (a, b):
        session = await open_session(a)
        async with a.client.stream("GET", session=session) as get:
            await get.next_event()
            b.server.notify_tools_changed()
            block, _ = await get.next_message()
            last_id = block.id
            a.handle.shutdown()
            rest = await get.read_to_end()
            assert _retry_hint(rest), "the drained stream ends with a retry: hint"
            last_id = next((blk.id for blk in reversed(rest) if blk.id), last_id)
        b.server.notify_prompts_changed()
        async with b.client.stream("GET", session=session, last_event_id=last_id) as resumed:
            _, message = await resumed.next_message()
            assert message["method"] == "notifications/prompts/list_changed"
        answered = await b.client.post(call_tool(2, "echo", text="still here"), session)
        assert answered.status_code == 200


async def test_redis_down_is_a_503_never_a_hang_and_recovery_is_automatic() -> None:
    with own_redis() as server:
        async with fleet(server.url) as (a, b):
            session = await open_session(a)
            await trio.to_thread.run_sync(server.stop)
            with trio.fail_after(10):
                restore = await b.client.post(call_tool(1, "echo", text="x"), session)
                created = await a.client.post(initialize(), headers=a.client.headers(version=None))
            for refused in (restore, created):
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "5"
                assert "shared session store" in refused.json()["error"]["message"]
            # The worker holding the session still serves it from memory.
            assert (await a.client.post(call_tool(2, "echo", text="x"), session)).status_code == 200
            await trio.to_thread.run_sync(server.start)
            # Back by itself: a client retrying as Retry-After says gets in.
            with trio.fail_after(15):
                while True:
                    fresh = await b.client.post(initialize(), headers=b.client.headers(version=None))
                    if fresh.status_code == 200:
                        break
                    assert fresh.status_code == 503
                    await trio.sleep(0.2)
            new_session = fresh.headers["mcp-session-id"]
            assert (await a.client.post(call_tool(3, "echo", text="y"), new_session)).status_code == 200


async def test_a_listen_stream_hears_notifications_raised_on_another_worker(redis: RedisServer) -> None:
    """2026-07-28: ``subscriptions/listen`` on one worker, ``notify_*`` on another."""
    from helpers import HttpStream
    from test_modern import modern_headers, modern_request

    async with fleet(redis.url) as (a, b):
        body = modern_request("L1", "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
        listen = await HttpStream.open(a.handle.port, "POST", modern_headers(body), json.dumps(body).encode())
        try:
            with trio.fail_after(10):
                _, ack = await listen.next_message()
                assert ack["method"] == "notifications/subscriptions/acknowledged"
                b.server.notify_prompts_changed()  # not asked for: must not arrive
                b.server.notify_tools_changed()
                _, changed = await listen.next_message()
            assert changed["method"] == "notifications/tools/list_changed"
            assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L1"
        finally:
            await listen.aclose()


async def test_a_tools_call_costs_at_most_one_round_trip(redis: RedisServer) -> None:
    """An established session's ``tools/call``: SSE answers are logged (the stream's
    first event, the answer, its end) in one round trip; JSON answers in none."""
    calls = 20
    for json_response, most in ((False, calls), (True, 0)):
        async with fleet(redis.url, 1, json_response=json_response) as (a,):
            session = await open_session(a)
            # Established: restored, touched, the scripts loaded.
            assert (await a.client.post(call_tool(1, "echo", text="x"), session)).status_code == 200
            await a.handle.app._fleet.flush()
            await trio.to_thread.run_sync(redis.reset_stats)
            for n in range(calls):
                answered = await a.client.post(call_tool(10 + n, "echo", text=f"call {n}"), session)
                assert answered.status_code == 200
                assert response_messages(answered)[-1]["result"]["content"][0]["text"] == f"call {n}"
            await a.handle.app._fleet.flush()
            trips = await trio.to_thread.run_sync(redis.round_trips)
            assert trips <= most, (json_response, await trio.to_thread.run_sync(redis.command_calls))
            if not json_response:
                # Logged all the same: each call's stream resumes from the log.
                keys = (await trio.to_thread.run_sync(redis.cli, "--raw", "KEYS", f"*e:{session}:*")).split()
                assert len(keys) >= calls


@asynccontextmanager
async def held_restore(worker: Worker, session: str) -> AsyncIterator[tuple[trio.Event, trio.Event]]:
    """``worker``'s next restore of ``session`` waits, once it has read the record,
    until the second event is set; the first is set when it gets there."""
    backend = worker.handle.app._fleet.backend
    load = backend.load_session
    loaded, release = trio.Event(), trio.Event()

    async def held(session_id: str) -> Any:
        record = await load(session_id)
        if session_id == session:
            loaded.set()
            await release.wait()
        return record

    backend.load_session = held
    try:
        yield loaded, release
    finally:
        del backend.load_session


@asynccontextmanager
async def bus_watch(worker: Worker, session: str, kind: str) -> AsyncIterator[trio.Event]:
    """Set once ``worker``'s bus has brought a ``kind`` signal for ``session``."""
    fleet_hooks = worker.handle.app._fleet
    signal = fleet_hooks.signal
    seen = trio.Event()

    def watched(session_id: str, sig: Any) -> None:
        signal(session_id, sig)
        if session_id == session and sig.kind == kind:
            seen.set()

    fleet_hooks.signal = watched
    try:
        yield seen
    finally:
        del fleet_hooks.signal


async def test_a_delete_during_a_restore_on_another_worker_is_not_lost(redis: RedisServer) -> None:
    """B reads the record, then A deletes the session and B's bus brings the end
    before B's copy is listed: B's copy ends too (the request gets 404)."""
    async with fleet(redis.url) as (a, b):
        session = await open_session(a)
        answers: list[Any] = []
        async with (
            held_restore(b, session) as (loaded, release),
            bus_watch(b, session, "end") as ended,
            trio.open_nursery() as nursery,
        ):

            async def call_on_b() -> None:
                answers.append(await b.client.post(call_tool(1, "echo", text="x"), session))

            nursery.start_soon(call_on_b)
            with trio.fail_after(10):
                await loaded.wait()
                assert (await a.client.delete(session)).status_code == 204
                await ended.wait()
            release.set()
        assert answers[0].status_code == 404
        assert session not in b.handle.app._sessions._sessions
        assert (await b.client.post(call_tool(2, "echo", text="x"), session)).status_code == 404


async def test_a_state_change_during_a_restore_on_another_worker_is_not_lost(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        session = await open_session(a)
        async with (
            held_restore(b, session) as (loaded, release),
            bus_watch(b, session, "state") as changed,
            trio.open_nursery() as nursery,
        ):
            answers: list[Any] = []

            async def call_on_b() -> None:
                answers.append(await b.client.post(call_tool(1, "echo", text="x"), session))

            nursery.start_soon(call_on_b)
            with trio.fail_after(10):
                await loaded.wait()
                level = await a.client.post(request(2, "logging/setLevel", {"level": "error"}), session)
                assert level.status_code == 200
                await changed.wait()
            release.set()
        assert answers[0].status_code == 200
        restored = b.handle.app._sessions._sessions[session]
        assert restored.log_level == "error"
