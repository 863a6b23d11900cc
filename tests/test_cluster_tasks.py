"""The tasks extension (2026-07-28) in a fleet: any worker answers for any task.

Two servers on 127.0.0.1 port 0, each with its own ``McpServer``, share one real
``redis-server`` (the fleet of tests/test_cluster.py); the client polls, answers and
cancels a task on the worker that does not run it.

Synchronisation: a record is in Redis before the task's id is given out, so a poll
elsewhere right after creation is deterministic; a later change is in Redis once the
running worker's writer is flushed (``_fleet.flush()``); a cancel or an answer given
on the other worker reaches the running one through the bus, awaited with the tool's
own events under ``trio.fail_after``.  Only the expiry of keys, Redis's clock, is
polled, with a deadline.

Read your writes: the running worker's writer is held (:func:`hold_writer`), so its
record stays behind its memory until the test lets it go, which it does only once
the acknowledging worker is waiting for that write (:func:`entered`); a ``tasks/get``
right after the acknowledgement then tells whether the acknowledgement waited.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import test_cluster
import trio
from helpers import Controller
from redis_fixture import RedisServer, own_redis
from test_cluster import Worker, fleet
from test_tasks import (
    ISSUER,
    NAME_SCHEMA,
    WITH_TASKS,
    TasksClient,
    assert_create_task_result,
    body,
    headers_for,
    with_authorization,
)

from trio_mcp_http import Context

pytestmark = test_cluster.pytestmark
# The module's redis-server, emptied before each test (test_cluster.py's fixtures).
_redis_process = test_cluster._redis_process
redis = test_cluster.redis

ADA = {"action": "accept", "content": {"name": "Ada"}}

#: The one key that outlives sessions and tasks: the counter worker tags come from.
TAGS_KEY = "trio-mcp:tags"


def add_task_tools(worker: Worker) -> None:
    """Tools that run as tasks, driven by the worker's controller: ``job`` waits for
    its gate (``ctl.finished`` only when it returns), ``late`` too but starts its task
    itself, ``consent`` asks for a name."""
    ctl: Controller = worker.ctl

    @worker.server.tool(task_support="optional")
    async def job(key: str) -> str:
        """Wait until the test releases `key`."""
        ctl.started[key].set()
        try:
            await ctl.gates[key].wait()
        except trio.Cancelled:
            ctl.cancelled[key].set()
            raise
        ctl.finished[key].set()
        return f"job {key} done"

    @worker.server.tool(task_support="required", task_start="explicit")
    async def late(ctx: Context, key: str) -> str:
        """Start the task, then wait until the test releases `key`."""
        await ctx.start_task()
        ctl.started[key].set()
        await ctl.gates[key].wait()
        ctl.finished[key].set()
        return f"late {key} done"

    @worker.server.tool(task_support="optional")
    async def consent(ctx: Context, key: str) -> str:
        """One elicitation, inside the task."""
        ctl.started[key].set()
        answer = await ctx.elicit("Who?", NAME_SCHEMA, key="who")
        ctl.finished[key].set()
        return f"{answer['action']} {answer.get('content', {}).get('name')}"


def tasks_of(worker: Worker, token: str | None = None) -> TasksClient:
    return TasksClient(worker.client, token=token)


async def settled(worker: Worker) -> None:
    """Until the worker's tasks are idle and what they changed is in Redis."""
    await worker.handle.app.tasks.wait_idle()
    await worker.handle.app._fleet.flush()


def without_meta(result: dict[str, Any]) -> dict[str, Any]:
    """A result without its ``_meta`` (which names the worker that answered)."""
    return {k: v for k, v in result.items() if k != "_meta"}


@pytest.mark.parametrize("tool", ["job", "late"])
async def test_a_task_created_on_one_worker_is_polled_on_another(redis: RedisServer, tool: str) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            task_id = assert_create_task_result(await on_a.call(tool, key="g"))
            # Stored before its id was given out: right away, B knows it.
            working = await on_b.get(task_id)
            assert working["status"] == "working"
            assert working["taskId"] == task_id
            assert "result" not in working
            assert working["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "worker-1"
            assert b.handle.app.tasks.statistics() == {"tasks": 0, "tasks_running": 0}

            a.ctl.release("g")
            await a.ctl.finished["g"].wait()
            await settled(a)
            done = await on_b.get(task_id)
            assert done["status"] == "completed"
            assert done["result"] == {"content": [{"type": "text", "text": f"{tool} g done"}]}
            # The same record on both workers, timestamps and all.
            assert without_meta(done) == without_meta(await on_a.get(task_id))
            assert done["createdAt"] == working["createdAt"]


async def test_tasks_update_on_another_worker_answers_the_running_task(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            task_id = assert_create_task_result(await on_a.call("consent", key="u"))
            await a.ctl.started["u"].wait()
            await a.handle.app._fleet.flush()
            parked = await on_b.get(task_id)
            assert parked["status"] == "input_required"
            assert parked["inputRequests"] == {
                "who": {
                    "method": "elicitation/create",
                    "params": {"message": "Who?", "requestedSchema": NAME_SCHEMA},
                }
            }
            # B checks answers against the record as A would: malformed is -32602, and
            # nothing of the update is applied.
            status, error = await on_b.error("tasks/update", taskId=task_id, inputResponses={"who": {"x": 1}})
            assert (status, error["code"]) == (200, -32602)
            status, error = await on_b.error("tasks/update", taskId=task_id, inputResponses=["who"])
            assert (status, error["code"]) == (200, -32602)
            ack = await on_b.result("tasks/update", taskId=task_id, inputResponses={"who": ADA, "other": {}})
            assert without_meta(ack) == {"resultType": "complete"}
            await a.ctl.finished["u"].wait()  # the answer crossed the bus to A
            await settled(a)
            done = await on_b.get(task_id)
            assert done["status"] == "completed"
            assert done["result"]["content"][0]["text"] == "accept Ada"
            # Finished: another answer is acknowledged and goes nowhere, as on A.
            assert (await on_b.result("tasks/update", taskId=task_id, inputResponses={"who": ADA}))[
                "resultType"
            ] == "complete"


async def test_tasks_cancel_on_another_worker_stops_the_work(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            task_id = assert_create_task_result(await on_a.call("job", key="c"))
            await a.ctl.started["c"].wait()
            # An update to a task not waiting for input is acknowledged, as on A.
            await on_b.result("tasks/update", taskId=task_id, inputResponses={"who": ADA})
            ack = await on_b.result("tasks/cancel", taskId=task_id)
            assert without_meta(ack) == {"resultType": "complete"}
            await a.ctl.cancelled["c"].wait()  # the cancel crossed the bus to A
            await settled(a)
            cancelled = await on_b.get(task_id)
            assert cancelled["status"] == "cancelled"
            assert cancelled["statusMessage"] == "Cancelled by the client"
            assert "result" not in cancelled
            assert not a.ctl.finished["c"].is_set()  # the work never completed
            assert (await on_a.get(task_id))["status"] == "cancelled"
            # Idempotent on either worker.
            assert (await on_b.result("tasks/cancel", taskId=task_id))["resultType"] == "complete"
            assert (await on_a.result("tasks/cancel", taskId=task_id))["resultType"] == "complete"


def _get_calls(redis: RedisServer) -> int:
    """How many GET commands Redis has served (INFO commandstats)."""
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_get:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


async def test_unknown_and_malformed_task_ids_are_unknown_on_every_worker(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            task_id = assert_create_task_result(await on_a.call("job", key="k"))
            before = await trio.to_thread.run_sync(_get_calls, redis)
            unknown = task_id[:-1] + ("A" if task_id[-1] != "A" else "B")
            for method, params in (
                ("tasks/get", {}),
                ("tasks/update", {"inputResponses": {}}),
                ("tasks/cancel", {}),
            ):
                for worker in (on_a, on_b):
                    status, error = await worker.error(method, taskId=unknown, **params)
                    assert (status, error["code"]) == (200, -32602), (method, unknown)
                    assert error["message"] == f"Unknown task: {unknown}"
            # Six lookups of an id of our shape: each one round trip.
            assert await trio.to_thread.run_sync(_get_calls, redis) == before + 6
            for other in ("nope", "*", "t:" + "a" * 30, "a" * 33, "a=" * 16):
                for worker in (on_a, on_b):
                    status, error = await worker.error("tasks/get", taskId=other)
                    assert (status, error["code"]) == (200, -32602), other
            # Ids not of our shape never reach Redis, nor a key name.
            assert await trio.to_thread.run_sync(_get_calls, redis) == before + 6
            keys = (await trio.to_thread.run_sync(redis.cli, "--raw", "KEYS", "*")).split()
            # Besides the task: the counter the workers' tags come from.
            assert sorted(keys) == sorted([f"trio-mcp:t:{task_id}", TAGS_KEY])
            a.ctl.release("k")


async def test_a_task_is_bound_to_its_principal_across_workers(redis: RedisServer) -> None:
    async with fleet(redis.url, **with_authorization()) as (a, b):
        add_task_tools(a)
        alice_a, alice_b = tasks_of(a, "alice"), tasks_of(b, "alice")
        with trio.fail_after(10):
            task_id = assert_create_task_result(await alice_a.call("consent", key="p"))
            await a.ctl.started["p"].wait()
            await a.handle.app._fleet.flush()
            mallory = {"action": "accept", "content": {"name": "Mallory"}}
            for token in ("bob", "other.alice"):
                intruder = tasks_of(b, token)
                for method, params in (
                    ("tasks/get", {}),
                    ("tasks/update", {"inputResponses": {"who": mallory}}),
                    ("tasks/cancel", {}),
                ):
                    status, error = await intruder.error(method, taskId=task_id, **params)
                    assert (status, error["code"]) == (200, -32602), (token, method)
                    assert error["message"] == f"Unknown task: {task_id}"
            assert (await alice_b.get(task_id))["status"] == "input_required"
            # Had an intruder's answer been sent, it would have reached A first (one
            # bus, in order) and been the one applied.
            await alice_b.result("tasks/update", taskId=task_id, inputResponses={"who": ADA})
            await a.ctl.finished["p"].wait()
            await settled(a)
            done = await alice_b.get(task_id)
            assert done["result"]["content"][0]["text"] == "accept Ada"
            kept = a.handle.app.tasks.get(task_id)
            assert kept is not None
            assert kept.owner == (ISSUER, "alice")


async def test_task_records_expire_with_their_ttl(redis: RedisServer) -> None:
    async with fleet(redis.url, task_ttl=1.0) as (a, b):
        add_task_tools(a)
        add_task_tools(b)
        with trio.fail_after(10):
            ids = []
            for n, worker in enumerate((a, b, a)):
                worker.ctl.release(f"e{n}")
                ids.append(assert_create_task_result(await tasks_of(worker).call("job", key=f"e{n}")))
            unfinished = assert_create_task_result(await tasks_of(b).call("job", key="never"))
            await settled(a)
            await b.handle.app._fleet.flush()
            keys = (await trio.to_thread.run_sync(redis.cli, "--raw", "KEYS", "*")).split()
            records = [f"trio-mcp:t:{task_id}" for task_id in [*ids, unfinished]]
            assert sorted(keys) == sorted([*records, TAGS_KEY])
            for key in records:
                ttl = int(await trio.to_thread.run_sync(redis.cli, "PTTL", key))
                assert 0 < ttl <= 1000, (key, ttl)
            # Expiry is Redis's clock: polled, with a deadline.
            while True:
                left = (await trio.to_thread.run_sync(redis.cli, "--raw", "KEYS", "*")).split()
                if left == [TAGS_KEY]:
                    break
                await trio.sleep(0.05)
            for worker in (a, b):
                status, error = await tasks_of(worker).error("tasks/get", taskId=ids[1])
                assert (status, error["code"]) == (200, -32602)


async def test_a_draining_worker_leaves_its_tasks_final_states_in_redis(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            a.ctl.release("quick")
            quick = assert_create_task_result(await on_a.call("job", key="quick"))
            running = assert_create_task_result(await on_a.call("job", key="slow"))
            await a.ctl.started["slow"].wait()
            # What SIGTERM starts: the drain, which returns once the writer is flushed.
            await a.handle.app.drain(grace_period=0)
            assert a.ctl.cancelled["slow"].is_set()
            failed = await on_b.get(running)
            assert failed["status"] == "failed"
            assert failed["error"] == {"code": -32603, "message": "Server shutting down: task cancelled"}
            assert (await on_b.get(quick))["result"]["content"][0]["text"] == "job quick done"


async def test_redis_down_is_a_503_for_another_workers_task_never_a_hang() -> None:
    with own_redis() as server:
        async with fleet(server.url) as (a, b):
            add_task_tools(a)
            add_task_tools(b)
            on_a, on_b = tasks_of(a), tasks_of(b)
            task_id = assert_create_task_result(await on_a.call("job", key="d"))
            await trio.to_thread.run_sync(server.stop)
            with trio.fail_after(10):
                message = body(1, "tasks/get", {"taskId": task_id}, WITH_TASKS)
                refused = await b.client.http.post(
                    b.client.url, content=json.dumps(message).encode(), headers=headers_for(message)
                )
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "5"
                assert refused.json()["id"] == 1
                assert "shared session store" in refused.json()["error"]["message"]
                # The worker running it answers from memory.
                assert (await on_a.get(task_id))["status"] == "working"
                # A new task cannot be announced before its record is stored.
                status, error = await on_b.error("tools/call", name="job", arguments={"key": "x"})
                assert (status, error["code"]) == (200, -32603)
                assert "retry later" in error["message"]
                assert b.handle.app.tasks.statistics() == {"tasks": 0, "tasks_running": 0}
                assert not b.ctl.started["x"].is_set()
            a.ctl.release("d")
            await trio.to_thread.run_sync(server.start)  # so that the fleet shuts down quickly


# -- read your writes -----------------------------------------------------------------


def hold_writer(worker: Worker) -> trio.Event:
    """Hold the worker's writer: its queued writes reach Redis only once the event
    returned is set (in order, as ever)."""
    backend = worker.handle.app._fleet.backend
    release = trio.Event()
    apply: Callable[[list[Any]], Awaitable[list[bool]]] = backend._apply

    async def held(batch: list[Any]) -> list[bool]:
        await release.wait()
        return await apply(batch)

    backend._apply = held
    return release


def entered(worker: Worker, name: str) -> trio.Event:
    """Set when the worker's fleet next enters its coroutine method ``name``:
    ``send_task`` (waiting for the running worker's confirmation) or
    ``task_written`` (waiting for its own write of a record)."""
    fleet_ = worker.handle.app._fleet
    event = trio.Event()
    method: Callable[..., Awaitable[Any]] = getattr(fleet_, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        event.set()
        return await method(*args, **kwargs)

    setattr(fleet_, name, wrapper)
    return event


async def acknowledged_then_read(
    release: trio.Event,
    once: list[trio.Event],
    acknowledge: Callable[[], Awaitable[Any]],
    readers: list[TasksClient],
    task_id: str,
) -> list[dict[str, Any]]:
    """``acknowledge()``, then ``tasks/get`` right away on each of ``readers``.  The
    held writer is released once every event of ``once`` is set (the acknowledging
    worker waits for the write, and the running worker has applied the change), or
    after the reads, whichever comes first."""

    async def release_when_waited_for() -> None:
        for event in once:
            await event.wait()
        release.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release_when_waited_for)
        try:
            await acknowledge()
            seen = [await reader.get(task_id) for reader in readers]
        finally:
            release.set()
            nursery.cancel_scope.cancel()
    return seen


async def parked(a: Worker, b: Worker, key: str) -> str:
    """A ``consent`` task on A, parked on its question, as every worker reads it."""
    task_id = assert_create_task_result(await tasks_of(a).call("consent", key=key))
    await a.ctl.started[key].wait()
    await a.handle.app._fleet.flush()
    assert "who" in (await tasks_of(b).get(task_id))["inputRequests"]
    return task_id


def assert_answered(seen: dict[str, Any]) -> None:
    assert seen["status"] in ("working", "completed"), seen
    assert "who" not in seen.get("inputRequests", {}), seen


async def test_an_update_acknowledged_on_another_worker_shows_on_every_worker(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            task_id = await parked(a, b, "r")
            release = hold_writer(a)
            confirming = entered(b, "send_task")

            async def update() -> None:
                ack = await on_b.result("tasks/update", taskId=task_id, inputResponses={"who": ADA})
                assert without_meta(ack) == {"resultType": "complete"}

            # Released once B waits for A's confirmation and A has the answer (its
            # record's writes held): B's acknowledgement waited for them.
            seen = await acknowledged_then_read(
                release, [confirming, a.ctl.finished["r"]], update, [on_b, on_a], task_id
            )
            for one in seen:
                assert_answered(one)


async def test_a_cancel_acknowledged_on_another_worker_shows_on_every_worker(redis: RedisServer) -> None:
    async with fleet(redis.url, 3) as (a, b, c):
        add_task_tools(a)
        on_a, on_b, on_c = tasks_of(a), tasks_of(b), tasks_of(c)
        with trio.fail_after(10):
            task_id = assert_create_task_result(await on_a.call("job", key="x"))
            await a.ctl.started["x"].wait()
            release = hold_writer(a)
            confirming = entered(b, "send_task")

            async def cancel() -> None:
                assert (await on_b.result("tasks/cancel", taskId=task_id))["resultType"] == "complete"

            seen = await acknowledged_then_read(
                release, [confirming, a.ctl.cancelled["x"]], cancel, [on_c, on_a, on_b], task_id
            )
            assert [one["status"] for one in seen] == ["cancelled"] * 3
            assert not a.ctl.finished["x"].is_set()


async def test_an_update_acknowledged_on_the_running_worker_shows_on_another(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            task_id = await parked(a, b, "l")
            release = hold_writer(a)
            writing = entered(a, "task_written")

            async def update() -> None:
                ack = await on_a.result("tasks/update", taskId=task_id, inputResponses={"who": ADA})
                assert without_meta(ack) == {"resultType": "complete"}

            (seen,) = await acknowledged_then_read(release, [writing], update, [on_b], task_id)
            assert_answered(seen)


async def test_a_cancel_acknowledged_on_the_running_worker_shows_on_another(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            task_id = assert_create_task_result(await on_a.call("job", key="y"))
            await a.ctl.started["y"].wait()
            release = hold_writer(a)
            writing = entered(a, "task_written")

            async def cancel() -> None:
                assert (await on_a.result("tasks/cancel", taskId=task_id))["resultType"] == "complete"

            (seen,) = await acknowledged_then_read(release, [writing], cancel, [on_b], task_id)
            assert seen["status"] == "cancelled"


async def test_a_completion_read_on_the_running_worker_is_never_older_elsewhere(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a, on_b = tasks_of(a), tasks_of(b)
        with trio.fail_after(10):
            task_id = assert_create_task_result(await on_a.call("job", key="f"))
            await a.ctl.started["f"].wait()
            release = hold_writer(a)
            writing = entered(a, "task_written")
            a.ctl.release("f")
            await a.handle.app.tasks.wait_idle()  # completed in A's memory, not in Redis
            (done, elsewhere) = await acknowledged_then_read(
                release, [writing], trio.lowlevel.checkpoint, [on_a, on_b], task_id
            )
            assert done["status"] == elsewhere["status"] == "completed"
            assert elsewhere["result"] == done["result"]


async def test_a_change_the_running_worker_never_confirms_is_a_503_never_a_hang(redis: RedisServer) -> None:
    async with fleet(redis.url) as (a, b):
        add_task_tools(a)
        on_a = tasks_of(a)
        with trio.fail_after(10):
            task_id = await parked(a, b, "n")
            # A no longer hears the bus (as if it had crashed): nothing confirms.
            a.handle.app._fleet.task_signal = lambda task_id, signal: None
            b.handle.app._fleet.backend.timeout = 0.2
            for method, params in (("tasks/update", {"inputResponses": {"who": ADA}}), ("tasks/cancel", {})):
                message = body(1, method, {"taskId": task_id, **params}, WITH_TASKS)
                refused = await b.client.http.post(
                    b.client.url, content=json.dumps(message).encode(), headers=headers_for(message)
                )
                assert refused.status_code == 503, method
                assert refused.headers["retry-after"] == "5"
                assert refused.json()["id"] == 1
                assert "did not answer" in refused.json()["error"]["message"]
            assert (await on_a.get(task_id))["status"] == "input_required"
            del a.handle.app._fleet.task_signal  # A hears the bus again
            await on_a.result("tasks/update", taskId=task_id, inputResponses={"who": ADA})
            await a.ctl.finished["n"].wait()
