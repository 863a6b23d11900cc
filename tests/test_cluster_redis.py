"""The Redis backend on its own, in-process, against a real ``redis-server``: the
writer's round trips, worker tags."""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import test_cluster
import trio
from redis_fixture import RedisServer

from trio_mcp_http.cluster.backend import SessionRecord, Signal
from trio_mcp_http.cluster.redis import RedisBackend

pytestmark = test_cluster.pytestmark
# The module's redis-server, emptied before each test (test_cluster.py's fixtures).
_redis_process = test_cluster._redis_process
redis = test_cluster.redis

SID = "S" * 32


class Heard:
    """A :class:`~trio_mcp_http.cluster.backend.Receiver` that keeps what the bus brings."""

    def __init__(self) -> None:
        self.signals: list[tuple[str, Signal]] = []
        self.arrived = trio.Event()

    def signal(self, session_id: str, signal: Signal) -> None:
        self.signals.append((session_id, signal))
        self.arrived.set()

    def broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        pass

    def busy_sessions(self) -> Iterable[str]:
        return []

    def bus_lost(self) -> None:
        pass

    def task_signal(self, task_id: str, signal: Signal) -> None:
        pass


@asynccontextmanager
async def backend(url: str, **options: Any) -> AsyncIterator[tuple[RedisBackend, Heard]]:
    heard = Heard()
    store = RedisBackend(url, session_ttl=60.0, **options)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run, heard)
            try:
                yield store, heard
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with warnings.catch_warnings():
            # coredis's connections abandoned while connecting (test_cluster.py's noise).
            warnings.filterwarnings("ignore", "Unclosed <MemoryObject", ResourceWarning)
            gc.collect()


async def created(store: RedisBackend, session_id: str = SID) -> None:
    record = SessionRecord(session_id, "2025-11-25", {}, None)
    assert await store.create_session(record, 100)


async def test_what_is_queued_together_goes_in_one_round_trip(redis: RedisServer) -> None:
    async with backend(redis.url) as (store, heard):
        with trio.fail_after(10):
            await created(store)
            store.touch(SID, force=True)
            await store.flush()  # the batch script is loaded
            await trio.to_thread.run_sync(redis.reset_stats)
            # A stream's first event, an answer, the stream's end, a GET stream message,
            # a signal, a task's record written then deleted, in this order.
            store.append(SID, 5, 1, b"id: 5/1\ndata: \n\n")
            store.append(SID, 5, 2, b"id: 5/2\ndata: {}\n\n")
            store.finish(SID, 5, 2)
            store.publish(SID, b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}')
            store.send(SID, Signal("cancel", 999, body=b"7"))
            store.save_task("T" * 32, b'{"status":"working"}', 60_000)
            store.save_task("U" * 32, b'{"status":"working"}', 60_000)
            store.delete_task("U" * 32)
            await store.flush()
            calls = await trio.to_thread.run_sync(redis.command_calls)
            assert await trio.to_thread.run_sync(redis.round_trips) == 1, calls
            assert calls["evalsha"] == 1
            replay = await store.replay(SID, 5, 0)
            assert replay is not None
            assert [seq for seq, _ in replay.frames] == [1, 2]
            assert replay.finished
            replay0 = await store.replay(SID, 0, 0)
            assert replay0 is not None
            assert len(replay0.frames) == 1
            assert await store.load_task("T" * 32) == b'{"status":"working"}'
            assert await store.load_task("U" * 32) is None
            # The bus, in the order written: the stream's events, its end, the GET
            # stream's message, the signal.
            while len(heard.signals) < 5:
                heard.arrived = trio.Event()
                await heard.arrived.wait()
            kinds = [(s.kind, s.stream, s.seq) for _, s in heard.signals]
            assert kinds == [
                ("event", 5, 1),
                ("event", 5, 2),
                ("finish", 5, 2),
                ("event", 0, 1),
                ("cancel", 0, 0),
            ]
            assert store.dropped_writes == 0


async def test_a_write_redis_refuses_is_dropped_alone(redis: RedisServer) -> None:
    async with backend(redis.url) as (store, _):
        with trio.fail_after(10):
            await created(store)
            # Stream 7's log is not a stream: Redis refuses the write to it.
            await trio.to_thread.run_sync(redis.cli, "SET", f"trio-mcp:e:{SID}:7", "not a stream")
            store.append(SID, 6, 1, b"id: 6/1\ndata: a\n\n")
            store.append(SID, 7, 1, b"id: 7/1\ndata: b\n\n")
            store.append(SID, 8, 1, b"id: 8/1\ndata: c\n\n")
            await store.flush()
            assert store.dropped_writes == 1
            for applied in (6, 8):
                replay = await store.replay(SID, applied, 0)
                assert replay is not None, applied
                assert len(replay.frames) == 1, applied


async def test_the_queue_and_each_round_trip_are_bounded(redis: RedisServer) -> None:
    async with backend(redis.url, max_batch=3, max_queued=8) as (store, _):
        with trio.fail_after(10):
            await created(store)
            store.touch(SID, force=True)
            await store.flush()
            await trio.to_thread.run_sync(redis.reset_stats)
            for seq in range(1, 11):
                store.append(SID, 9, seq, b"id: 9/%d\ndata: x\n\n" % seq)
            # The idle writer took the first; the queue holds 8 more.
            assert store.dropped_writes == 1
            await store.flush()
            assert await trio.to_thread.run_sync(redis.round_trips) == 3  # 3 + 3 + 3
            replay = await store.replay(SID, 9, 0)
            assert replay is not None
            assert [seq for seq, _ in replay.frames] == list(range(1, 10))


async def test_workers_connecting_to_one_redis_get_distinct_tags(redis: RedisServer) -> None:
    tags: list[int] = []
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def worker() -> None:
            async with backend(redis.url) as (store, _):
                assert store.tag_allocated
                tags.append(store.tag)
                if len(tags) == 6:
                    done.set()
                await done.wait()  # all six are live at once

        for _ in range(6):
            nursery.start_soon(worker)
        with trio.fail_after(10):
            await done.wait()
    assert len(set(tags)) == 6, tags
    assert all(0 < tag < 2**21 for tag in tags), tags
    # Ids a worker issues, (tag << 32) + n, stay exact in a JavaScript number.
    assert max(tags) << 32 < 2**53


async def test_tags_wrap_below_2_to_the_21(redis: RedisServer) -> None:
    await trio.to_thread.run_sync(redis.cli, "SET", "trio-mcp:tags", str(2**21 - 3))
    seen = []
    for _ in range(3):
        async with backend(redis.url) as (store, _):
            seen.append(store.tag)
    assert seen == [2**21 - 2, 2**21 - 1, 1]


async def test_a_worker_starts_with_redis_down_and_takes_its_tag_later() -> None:
    server = RedisServer()  # not started yet: nothing listens on its port
    try:
        async with backend(server.url, timeout=0.5) as (store, _):
            assert not store.tag_allocated  # started all the same; serves from memory
            await trio.to_thread.run_sync(server.start)
            with trio.fail_after(10):
                # The first session to join the fleet here takes the tag first.
                await created(store)
            assert store.tag_allocated
            assert store.tag == 1
            assert json.loads(await trio.to_thread.run_sync(server.cli, "GET", "trio-mcp:tags")) == 1
    finally:
        server.stop()
