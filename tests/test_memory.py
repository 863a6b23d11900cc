"""Long runs in memory: what one request or one session leaves behind must not add up.

Driven in-process through the ASGI app (no sockets), so tens of thousands of exchanges
take seconds.  Growth is measured between a warmed-up point and the end of the run:
bounded state (the event store, caches) has filled up by then, so anything still
growing is a per-request or per-session leak.
"""

from __future__ import annotations

import gc
import json
import tracemalloc

import trio
import trio.testing
from helpers import (
    Controller,
    InMemoryClient,
    SseParser,
    build_server,
    call_tool,
    initialize,
    messages_of,
)

from trio_mcp_http import McpHttpApp, TransportConfig
from trio_mcp_http.transport.streams import SseStream

CALLS = 20_000
WARM_UP = 5_000
SESSIONS = 10_000


def live(kind: type) -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


def task_count() -> int:
    """Every trio task alive in this run."""
    count = 0
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        count += 1
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


async def test_one_session_over_many_tool_calls_stays_bounded() -> None:
    app = McpHttpApp(build_server(Controller()), TransportConfig(keepalive_interval=None))
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        client = InMemoryClient(app, nursery)
        session = await client.open_session()
        baseline_stats = app.statistics()

        async def call(n: int) -> None:
            status, _, body = await client.request("POST", call_tool(n, "echo", text=f"m{n}"), session)
            assert status == 200, body
            answers = messages_of(SseParser().feed(body))
            assert answers[-1]["id"] == n
            assert answers[-1]["result"]["content"][0]["text"] == f"m{n}"

        for n in range(1, WARM_UP + 1):
            await call(n)
        streams_warm = live(SseStream)
        tracemalloc.start()
        try:
            gc.collect()
            memory_warm = tracemalloc.get_traced_memory()[0]
            for n in range(WARM_UP + 1, CALLS + 1):
                await call(n)
            gc.collect()
            memory_end = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        streams_end = live(SseStream)

        # Finished POST streams are dropped: a handful stay live (the store's replay
        # window may keep a bounded number), never one per call.
        assert streams_end <= streams_warm + 64, (streams_warm, streams_end)
        assert streams_end < 1_000, f"{streams_end} SseStream objects alive after {CALLS} calls"
        growth = memory_end - memory_warm
        per_call = growth / (CALLS - WARM_UP)
        assert growth < 512 * 1024, (
            f"memory grew by {growth / 1024:.0f} KiB ({per_call:.0f} B per call) "
            f"between call {WARM_UP} and call {CALLS}"
        )
        assert app.statistics() == baseline_stats | {"stored_events": app.statistics()["stored_events"]}
        assert app.statistics()["stored_events"] <= 32 * 256
        nursery.cancel_scope.cancel()


async def test_many_sessions_created_and_deleted_leave_nothing_behind() -> None:
    app = McpHttpApp(build_server(Controller()), TransportConfig(keepalive_interval=None))
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        client = InMemoryClient(app, nursery)
        baseline_stats = app.statistics()
        baseline_tasks = task_count()
        seen: set[str] = set()
        for n in range(SESSIONS):
            status, headers, body = await client.request("POST", initialize(n))
            assert status == 200, body
            session = headers["mcp-session-id"]
            assert session not in seen
            seen.add(session)
            status, _, body = await client.request("DELETE", session=session)
            assert status == 204, body
            if n == 0:
                # A deleted session is gone at once: its id answers 404.
                status, _, body = await client.request(
                    "POST", call_tool(1, "echo", text="x"), session, **{"mcp-protocol-version": "2025-11-25"}
                )
                assert status == 404, body
                assert json.loads(body)["error"]["code"] == -32001
        # Every session task ends with its DELETE; no call is left in flight.
        await trio.testing.wait_all_tasks_blocked()
        assert app.statistics() == baseline_stats
        assert app.statistics()["sessions"] == 0
        assert task_count() == baseline_tasks
        nursery.cancel_scope.cancel()


async def test_an_idle_session_costs_a_few_kilobytes() -> None:
    """What an idle session holds (its object, nursery, parked task, records of the
    initialize exchange): allocations per session, by tracemalloc, after warm-up.
    About 6 KB with CPython 3.11 and trio 0.35; the bound leaves room for other
    versions, and catches a regression such as the ~2 KB that ``nursery.start``
    leaves behind per started task."""
    count = 1000
    app = McpHttpApp(build_server(Controller()), TransportConfig(keepalive_interval=None, max_sessions=5000))
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        client = InMemoryClient(app, nursery)
        for _ in range(100):
            await client.open_session()
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for _ in range(count):
                await client.open_session()
            await trio.testing.wait_all_tasks_blocked()
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        per_session = sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count
        assert app.statistics()["sessions"] == count + 100
        assert per_session < 7.5 * 1024, f"{per_session:.0f} bytes per idle session"
        nursery.cancel_scope.cancel()
