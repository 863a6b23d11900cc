"""A fleet of worker processes sharing Redis, black-box, behind a round-robin balancer.

tests/test_cluster.py drives in-process servers one request at a time; here real
``trio-mcp-http serve --redis-url`` processes sit behind ``tests/balancer.py`` (a plain
round-robin HTTP/1.1 proxy, balancing per request) and are driven under load:

* the official MCP conformance suite passes through the balancer over three workers
  exactly as it does on one worker;
* a rolling restart (SIGTERM each worker in turn, its replacement registered) under
  load loses no session, no GET stream event, and no response;
* Redis killed and restarted mid-load (an append-only file: its data survives) costs
  in-flight requests at most a 503 with ``Retry-After``, never a hang, a 500 or a
  worker; once it is back everything works without restarting a worker;
* idle expiry holds for the fleet: an idle session is gone on every worker, a session
  kept busy through one worker is not expired by another.

The worker processes serve :data:`worker_app`, defined here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
import trio
from balancer import Balancer
from helpers import LATEST, POST_HEADERS, Client, HttpStream, call_tool, response_messages
from redis_fixture import RedisServer, own_redis
from test_cluster import _CONNECT_NOISE, _SOCKET_NOISE, fleet, open_session

from trio_mcp_http import McpServer

pytestmark = [pytest.mark.filterwarnings(_CONNECT_NOISE), pytest.mark.filterwarnings(_SOCKET_NOISE)]

ROOT = Path(__file__).resolve().parent.parent
_BOUND = re.compile(r"serving MCP at http://127\.0\.0\.1:(\d+)/")
_ERROR_LINE = re.compile(r" (ERROR|CRITICAL) |Traceback \(most recent call last\)")

# -- the workers' server -------------------------------------------------------------------

worker_app = McpServer("fleet-worker", "1.0.0")


@worker_app.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@worker_app.tool()
async def slow(seconds: float) -> str:
    """Answer after `seconds`."""
    await trio.sleep(seconds)
    return "slept"


@worker_app.tool()
async def announce(seq: int) -> str:
    """A log notification numbered `seq` for every session's GET stream."""
    worker_app.broadcast_log("info", {"seq": seq})
    return "announced"


# -- worker processes ----------------------------------------------------------------------


class WorkerProcess:
    """``trio-mcp-http serve test_cluster_fleet:worker_app --redis-url ...`` on a free
    port, logging to a file."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: trio.Process | None = None
        self.port = 0

    @classmethod
    async def start(cls, redis_url: str, log_path: Path, key_file: Path, *extra: str) -> WorkerProcess:
        worker = cls(log_path)
        argv = [
            sys.executable, "-m", "trio_mcp_http", "serve", "test_cluster_fleet:worker_app",
            "--host", "127.0.0.1", "--port", "0", "--redis-url", redis_url,
            "--request-state-key-file", str(key_file), "--retry-ms", "100", "--grace-period", "5",
            *extra,
        ]  # fmt: skip
        path = os.pathsep.join(
            [str(ROOT / "tests"), str(ROOT / "conformance"), os.environ.get("PYTHONPATH", "")]
        )
        with log_path.open("wb") as log:
            worker.process = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": path},
            )
        # A bounded poll of its log for the port it bound (port 0: no race for a port).
        with trio.fail_after(30):
            while worker.port == 0:
                match = _BOUND.search(worker.log())
                if match:
                    worker.port = int(match.group(1))
                elif worker.process.poll() is not None:
                    raise AssertionError(f"worker exited at start:\n{worker.log()}")
                else:
                    await trio.sleep(0.05)
        return worker

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def errors(self) -> list[str]:
        return [line for line in self.log().splitlines() if _ERROR_LINE.search(line)]

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    async def wait(self, limit: float = 30.0) -> int:
        assert self.process is not None
        with trio.move_on_after(limit):
            return await self.process.wait()
        self.process.kill()
        await self.process.wait()
        raise AssertionError(f"worker on port {self.port} did not exit within {limit}s:\n{self.log()}")

    async def stop(self) -> None:
        if self.process is not None and self.alive:
            self.terminate()
            with trio.move_on_after(20):
                await self.process.wait()
            if self.alive:
                self.process.kill()
                await self.process.wait()


class Fleet:
    """Worker processes sharing one Redis, and the balancer in front of them."""

    def __init__(self, redis_url: str, tmp_path: Path, extra: tuple[str, ...]) -> None:
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        self.extra = extra
        self.key_file = tmp_path / "request-state.key"
        self.key_file.write_text(secrets.token_hex(32))
        self.workers: list[WorkerProcess] = []
        #: Every process ever started, for clean-up and for the log check.
        self.started: list[WorkerProcess] = []
        self.balancer = Balancer([])

    async def spawn(self) -> WorkerProcess:
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        worker = await WorkerProcess.start(self.redis_url, log, self.key_file, *self.extra)
        self.started.append(worker)
        return worker

    def errors(self) -> list[str]:
        return [f"{w.log_path.name}: {line}" for w in self.started for line in w.errors()]


@asynccontextmanager
async def worker_fleet(
    redis_url: str, tmp_path: Path, count: int = 3, *extra: str
) -> AsyncIterator[tuple[Fleet, Client]]:
    """``count`` workers behind a balancer, and an httpx client of the balancer (one
    keep-alive connection at a time is enough: the balancer spreads its requests)."""
    group = Fleet(redis_url, tmp_path, extra)
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                group.workers.append(await group.spawn())
            group.balancer.ports = [w.port for w in group.workers]
            await nursery.start(group.balancer.run)
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=50)
            async with httpx.AsyncClient(timeout=30, limits=limits) as http:
                yield group, Client(http, group.balancer.url)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for worker in group.started:
                await worker.stop()


async def until(predicate: Callable[[], bool], limit: float, what: str, step: float = 0.05) -> None:
    """A bounded poll: until ``predicate()``, for at most ``limit`` seconds."""
    with trio.move_on_after(limit):
        while True:
            if predicate():
                return
            await trio.sleep(step)
    raise AssertionError(f"not within {limit}s: {what}")


def session_headers(session: str, **extra: str) -> dict[str, str]:
    return {**POST_HEADERS, "mcp-session-id": session, "mcp-protocol-version": LATEST, **extra}


def get_headers(session: str, last_event_id: str | None) -> dict[str, str]:
    headers = {"accept": "text/event-stream", "mcp-session-id": session, "mcp-protocol-version": LATEST}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    return headers


_CUT = (EOFError, h11.ProtocolError, OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class Tally:
    """Requests sent through the balancer and the responses they got.

    A call reads its POST's SSE stream; if the stream is cut or ends before the answer,
    it resumes with ``Last-Event-ID`` (a GET through the balancer), as a client must.
    Each JSON-RPC response seen for an id is counted, on whichever connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._ids = itertools.count(1000)
        self.sent: set[int] = set()
        self.answers: Counter[int] = Counter()
        self.statuses: Counter[int] = Counter()
        self.resumed = 0
        self.problems: list[str] = []

    async def call(self, session: str, name: str, **arguments: Any) -> dict[str, Any] | None:
        rid = next(self._ids)
        self.sent.add(rid)
        body = json.dumps(call_tool(rid, name, **arguments)).encode()
        last_id: str | None = None
        answer: dict[str, Any] | None = None
        for attempt in range(10):
            if attempt == 0:
                stream = await HttpStream.open(self.port, "POST", session_headers(session), body)
            elif last_id is None:
                self.problems.append(f"request {rid}: cut before its first event")
                return None
            else:
                self.resumed += 1
                stream = await HttpStream.open(self.port, "GET", get_headers(session, last_id))
            try:
                status = await stream.read_head()
                self.statuses[status] += 1
                if status != 200:
                    self.problems.append(f"request {rid}: HTTP {status} {stream.headers}")
                    return None
                while (block := await stream.next_block()) is not None:
                    if block.id:
                        last_id = block.id
                    message = block.message
                    if message is not None and message.get("id") == rid:
                        self.answers[rid] += 1
                        answer = message
                if answer is not None:
                    return answer
            except _CUT:
                if answer is not None:
                    return answer
            finally:
                await stream.aclose()
        self.problems.append(f"request {rid}: no answer after 10 attempts")
        return None

    def unanswered_or_repeated(self) -> dict[int, int]:
        return {rid: self.answers[rid] for rid in self.sent if self.answers[rid] != 1}


class Follower:
    """A session's GET stream through the balancer, resumed with ``Last-Event-ID``
    whenever it ends or is cut; records the ``seq`` of each log notification."""

    def __init__(self, port: int, session: str) -> None:
        self.port = port
        self.session = session
        self.seqs: list[int] = []
        self.last_id: str | None = None
        self.connections = 0
        self.statuses: Counter[int] = Counter()

    async def run(self) -> None:
        while True:
            try:
                stream = await HttpStream.open(self.port, "GET", get_headers(self.session, self.last_id))
            except OSError:
                await trio.sleep(0.05)
                continue
            try:
                status = await stream.read_head()
                self.statuses[status] += 1
                if status == 200:
                    self.connections += 1
                    while (block := await stream.next_block()) is not None:
                        if block.id:
                            self.last_id = block.id
                        message = block.message
                        if message is not None and message.get("method") == "notifications/message":
                            self.seqs.append(message["params"]["data"]["seq"])
            except _CUT:
                pass
            finally:
                await stream.aclose()
            await trio.sleep(0.05)  # a client's pause before it reconnects


async def redis_cli(redis: RedisServer, *args: str) -> str:
    return await trio.to_thread.run_sync(lambda: redis.cli(*args))


def record_key(session: str) -> str:
    return f"trio-mcp:s:{session}"


# -- 1. the conformance suite through the balancer -------------------------------------------


async def test_the_conformance_suite_passes_through_a_balancer_over_three_workers(tmp_path: Path) -> None:
    """Every run of ``conformance/run.py`` (both requirement sets and ``--suite all``)
    on one worker, then through the balancer over three workers sharing Redis: the
    same scenarios, the same checks passed, none failed.  The suite's client keeps one
    keep-alive connection, so the balancer balances per request."""
    from test_conformance import load_runner

    runner = load_runner()
    missing = "run `npm ci` in conformance/ (bash .ci/run does it)"
    assert runner.NODE.exists(), missing
    assert runner.SUITE.exists(), missing
    key_file = tmp_path / "request-state.key"
    key_file.write_text(secrets.token_hex(32))

    class FleetServer(runner.ConformanceServer):  # type: ignore[name-defined]
        def command(self) -> list[str]:
            extra = ["--redis-url", redis.url, "--request-state-key-file", str(key_file), "--retry-ms", "200"]
            return [*super().command(), *extra]

    single = argparse.Namespace(server="fixture_server:server", scenario=None, timeout=300)
    (tmp_path / "fleet").mkdir()
    with own_redis() as redis:
        for name in runner.RUNS:
            reference = await trio.to_thread.run_sync(runner.run_on, "ours", single, [name], tmp_path / "one")
            assert reference.ok, reference.outcomes[0].failures + reference.server_errors
            expected = reference.outcomes[0]

            await redis_cli(redis, "FLUSHALL")
            with ExitStack() as stack:
                servers = []
                for n in range(3):
                    server = FleetServer(single.server, tmp_path / f"{name}.worker-{n}.log")
                    servers.append(await trio.to_thread.run_sync(stack.enter_context, server))
                balancer = Balancer([s.port for s in servers])
                async with trio.open_nursery() as nursery:
                    await nursery.start(balancer.run)
                    outcome = await trio.to_thread.run_sync(
                        runner.run_suite, name, balancer.url, tmp_path / "fleet", None, 300.0
                    )
                    nursery.cancel_scope.cancel()
                codes = [await trio.to_thread.run_sync(s.stop) for s in servers]
                errors = [
                    line for s in servers for line in s.log_text().splitlines() if _ERROR_LINE.search(line)
                ]
            print(
                f"{name}: one worker {expected.counts_line()} ({expected.seconds:.0f}s); three workers "
                f"{outcome.counts_line()} ({outcome.seconds:.0f}s); forwarded {dict(balancer.forwarded)}"
            )
            assert outcome.failures == [], name
            assert outcome.scenarios == expected.scenarios, name
            assert outcome.counts["SUCCESS"] == expected.counts["SUCCESS"], name
            assert outcome.counts["FAILURE"] == 0, name
            assert codes == [0, 0, 0], name
            assert errors == [], name
            # Every worker served a share of the requests.
            assert len(balancer.forwarded) == 3, balancer.forwarded
            assert min(balancer.forwarded.values()) > 0.2 * sum(balancer.forwarded.values()) / 3


# -- 2. a rolling restart under load -----------------------------------------------------------


async def test_a_rolling_restart_under_load_loses_nothing(tmp_path: Path) -> None:
    sessions_count = 20
    with own_redis() as redis:
        async with worker_fleet(redis.url, tmp_path) as (group, client):
            balancer = group.balancer
            sessions = [await client.open_session() for _ in range(sessions_count)]
            announcer = await client.open_session()
            tally = Tally(balancer.port)
            followers = [Follower(balancer.port, session) for session in sessions]
            stop = trio.Event()
            announced = [0]

            async def caller(session: str, n: int) -> None:
                delays = (0.02, 0.1, 0.3)
                while not stop.is_set():
                    answer = await tally.call(session, "slow", seconds=delays[n % 3])
                    if answer is not None:
                        assert answer["result"]["content"][0]["text"] == "slept", answer
                    n += 1

            async def announce_loop() -> None:
                while not stop.is_set():
                    answer = await tally.call(announcer, "announce", seq=announced[0] + 1)
                    if answer is not None:
                        announced[0] += 1
                    await trio.sleep(0.1)

            async with trio.open_nursery() as streams:
                for follower in followers:
                    streams.start_soon(follower.run)
                await until(lambda: all(f.connections for f in followers), 20, "every GET stream open")

                # Broadcasts are logged for sessions whose GET stream is marked in
                # Redis: wait for every mark (a bounded poll of Redis, not a sleep).
                async def all_marked() -> bool:
                    for session in sessions:
                        if await redis_cli(redis, "HEXISTS", record_key(session), "get") != "1":
                            return False
                    return True

                with trio.fail_after(10):
                    while True:
                        if await all_marked():
                            break
                        await trio.sleep(0.05)

                async with trio.open_nursery() as load:
                    for n, session in enumerate(sessions):
                        load.start_soon(caller, session, n)
                    load.start_soon(announce_loop)
                    await until(lambda: announced[0] >= 3, 20, "announcements under way")

                    for index in range(3):
                        old = group.workers[index]
                        # Deregistered, then stopped once it has taken what it was
                        # given (its response started): it drains those.
                        balancer.remove(old.port)
                        await until(
                            lambda old=old: not balancer.unacknowledged[old.port], 10, "forwards taken"
                        )
                        old.terminate()
                        new = await group.spawn()
                        # Serving: an existing session answered by the new worker directly.
                        with trio.fail_after(20):
                            while True:
                                direct = await client.http.post(
                                    f"http://127.0.0.1:{new.port}/mcp",
                                    content=json.dumps(call_tool(1, "echo", text="up?")).encode(),
                                    headers=session_headers(sessions[0]),
                                )
                                if direct.status_code == 200:
                                    break
                                await trio.sleep(0.1)
                        balancer.add(new.port)
                        group.workers[index] = new
                        assert await old.wait() == 0, old.log()
                        before = announced[0]
                        await until(
                            lambda before=before: announced[0] >= before + 3, 20, "load on the new fleet"
                        )
                    stop.set()

                # The last announcement, then every stream has heard everything.
                final = announced[0] + 1
                answer = await tally.call(announcer, "announce", seq=final)
                assert answer is not None
                announced[0] = final
                await until(
                    lambda: all(final in f.seqs for f in followers), 20, "the final announcement everywhere"
                )
                streams.cancel_scope.cancel()

            assert tally.problems == []
            assert tally.unanswered_or_repeated() == {}
            assert set(tally.statuses) == {200}, tally.statuses
            # No event lost or repeated on any GET stream, and one order for all (the store's).
            for follower in followers:
                assert sorted(follower.seqs) == list(range(1, final + 1)), follower.seqs
                assert follower.seqs == followers[0].seqs
                assert follower.connections >= 2, "each stream moved to another worker at least once"
                assert set(follower.statuses) == {200}, follower.statuses
            # Every session still works, on every worker of the new fleet.
            for session in [*sessions, announcer]:
                for worker in group.workers:
                    answered = await client.http.post(
                        f"http://127.0.0.1:{worker.port}/mcp",
                        content=json.dumps(call_tool(2, "echo", text="after")).encode(),
                        headers=session_headers(session),
                    )
                    assert answered.status_code == 200, (session, answered.text)
                    assert response_messages(answered)[-1]["result"]["content"][0]["text"] == "after"
            assert balancer.refused == 0
            assert group.errors() == []
            print(
                f"{len(tally.sent)} requests, {tally.resumed} resumed; {final} announcements; "
                f"GET connections per stream {sorted(f.connections for f in followers)}"
            )


# -- 3. Redis restarted mid-load ------------------------------------------------------------------


async def test_a_redis_restart_mid_load_is_a_503_at_worst_and_heals_by_itself(tmp_path: Path) -> None:
    """Redis with an append-only file, killed (SIGKILL) and restarted on the same data:
    docs/scaling.md promises bounded calls, 503 with ``Retry-After`` for what needs
    Redis, no hang and no crash, and reconnection by itself; with persistence the
    sessions are still there afterwards, even for a worker that never held them."""
    data = tmp_path / "redis-data"
    data.mkdir()
    with own_redis(data) as redis:
        async with worker_fleet(redis.url, tmp_path, 3, "--retry-after", "1") as (group, client):
            sessions = [await client.open_session() for _ in range(8)]
            outcomes: Counter[str] = Counter()
            problems: list[str] = []
            stop = trio.Event()

            def judge(what: str, response: httpx.Response) -> None:
                if response.status_code == 200:
                    messages = response_messages(response)
                    if not messages or "result" not in messages[-1]:
                        problems.append(f"{what}: 200 without a result: {response.text[:200]}")
                    outcomes[f"{what} answered"] += 1
                elif response.status_code == 503 and response.headers.get("retry-after") == "1":
                    outcomes[f"{what} refused"] += 1
                else:
                    problems.append(f"{what}: HTTP {response.status_code} {response.text[:200]}")

            async def caller(session: str) -> None:
                while not stop.is_set():
                    with trio.fail_after(10):  # never a hang
                        response = await client.post(call_tool(1, "slow", seconds=0.05), session)
                    judge("call", response)

            async def opener() -> None:
                while not stop.is_set():
                    with trio.fail_after(10):
                        response = await client.post(
                            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                                "protocolVersion": LATEST, "capabilities": {},
                                "clientInfo": {"name": "t", "version": "0"}}},
                            headers=client.headers(version=None),
                        )  # fmt: skip
                    judge("initialize", response)
                    await trio.sleep(0.05)

            async with trio.open_nursery() as load:
                for session in sessions:
                    load.start_soon(caller, session)
                load.start_soon(opener)
                await until(lambda: outcomes["call answered"] >= 50, 20, "load under way")
                await trio.to_thread.run_sync(redis.stop)
                await until(lambda: outcomes["initialize refused"] >= 3, 20, "refusals while Redis is down")
                answered_while_down = outcomes["call answered"]
                await trio.to_thread.run_sync(redis.start)
                opened = outcomes["initialize answered"]
                await until(
                    lambda: outcomes["initialize answered"] >= opened + 3, 30, "new sessions once it is back"
                )
                stop.set()

            assert problems == []
            assert all(worker.alive for worker in group.workers)
            print(dict(outcomes), f"calls answered before the restart ended: {answered_while_down}")
            # New sessions and requests work, through every worker, none restarted.
            for _ in range(3):
                fresh = await client.open_session()
                for _ in range(3):
                    answered = await client.post(call_tool(2, "echo", text="fresh"), fresh)
                    assert answered.status_code == 200, answered.text
            # The old sessions were kept on disk: a worker that never held them restores them.
            newcomer = await group.spawn()
            for session in sessions:
                answered = await client.http.post(
                    f"http://127.0.0.1:{newcomer.port}/mcp",
                    content=json.dumps(call_tool(3, "echo", text="kept")).encode(),
                    headers=session_headers(session),
                )
                assert answered.status_code == 200, answered.text
            assert group.errors() == []


# -- 4. idle expiry across the fleet ---------------------------------------------------------------

#: The idle timeout of these tests, short; the fleet refreshes the shared expiry at
#: most every quarter of it.
IDLE = 1.0


@pytest.fixture
async def redis() -> AsyncIterator[RedisServer]:
    with own_redis() as server:
        yield server


async def test_an_idle_session_is_gone_on_every_worker(redis: RedisServer) -> None:
    async with fleet(redis.url, 3, session_idle_timeout=IDLE) as workers:
        a, b, c = workers
        session = await open_session(a)
        for worker in (b, c):
            assert (await worker.client.post(call_tool(1, "echo", text="x"), session)).status_code == 200
        # The last activity, on a: one request the shared expiry certainly records (none
        # for a quarter of the timeout), and one just after, within that quarter.
        await trio.sleep(IDLE / 4 + 0.05)
        assert (await a.client.post(call_tool(2, "echo", text="x"), session)).status_code == 200
        await trio.sleep(IDLE / 8)
        assert (await a.client.post(call_tool(3, "echo", text="x"), session)).status_code == 200
        last = trio.current_time()
        # Watch Redis, not the session (asking a worker would be activity).
        with trio.fail_after(3 * IDLE + 5):
            while True:
                if await redis_cli(redis, "EXISTS", record_key(session)) == "0":
                    break
                await trio.sleep(0.02)
        idle_for = trio.current_time() - last
        # Gone from the fleet only once idle past the timeout; and then gone everywhere,
        # on the worker of the last activity too.
        assert idle_for >= IDLE, idle_for
        for worker in workers:
            gone = await worker.client.post(call_tool(4, "echo", text="late"), session)
            assert gone.status_code == 404, (worker.server.name, idle_for)


async def test_a_session_busy_through_one_worker_is_not_expired_by_another(redis: RedisServer) -> None:
    async with fleet(redis.url, 3, session_idle_timeout=IDLE) as workers:
        a, b, c = workers
        session = await open_session(a)
        assert (await b.client.post(call_tool(1, "echo", text="x"), session)).status_code == 200
        exists: list[str] = []

        async def watch(seconds: float) -> None:
            """Redis's record of the session, sampled until ``seconds`` have passed."""
            with trio.move_on_after(seconds):
                while True:
                    exists.append(await redis_cli(redis, "EXISTS", record_key(session)))
                    await trio.sleep(0.05)

        # Requests through a only, more often than the shared expiry is refreshed, for
        # three timeouts: b's own copy idles out meanwhile; the session does not.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, 3 * IDLE)
            with trio.move_on_after(3 * IDLE):
                while True:
                    assert (await a.client.post(call_tool(2, "echo", text="x"), session)).status_code == 200
                    await trio.sleep(IDLE / 10)
        assert (await b.client.post(call_tool(3, "echo", text="x"), session)).status_code == 200
        assert (await c.client.post(call_tool(4, "echo", text="x"), session)).status_code == 200

        # A GET stream open on a, and no request at all for three timeouts.
        async with a.client.stream("GET", session=session) as get:
            await get.next_event()
            await watch(3 * IDLE)
            assert (await c.client.post(call_tool(5, "echo", text="x"), session)).status_code == 200
        assert exists
        assert set(exists) == {"1"}, exists


# -- found by the rolling restart ------------------------------------------------------------------


async def test_concurrent_first_requests_on_a_worker_restore_the_session_once(redis: RedisServer) -> None:
    """Several requests reach a worker that does not hold their session at once: one
    restores it, the others wait for nothing and find it ready to run handlers (they
    used to find it listed but not yet running: 500)."""
    async with fleet(redis.url) as (a, b):
        session = await open_session(a)
        statuses: list[int] = []

        async def call(n: int) -> None:
            answered = await b.client.post(call_tool(n, "echo", text=str(n)), session)
            statuses.append(answered.status_code)

        async with trio.open_nursery() as nursery:
            for n in range(8):
                nursery.start_soon(call, n)
        assert statuses == [200] * 8
        assert list(b.handle.app._sessions._sessions) == [session]


async def test_server_to_client_request_ids_are_exact_in_javascript(redis: RedisServer) -> None:
    """A fleet's worker prefixes the ids of its server-to-client requests with its tag:
    they stay below 2**53, the integers a JavaScript client (the conformance suite's)
    reads exactly; beyond it the client answered a rounded id and the handler waited
    forever."""
    async with fleet(redis.url) as (a, b):
        session = await open_session(a, elicitation={})
        async with a.client.stream("POST", call_tool(5, "ask_name"), session=session) as call:
            _, asked = await call.next_message()
            assert asked["method"] == "elicitation/create"
            assert 0 < asked["id"] < 2**53
            answer = {"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "decline"}}
            assert (await b.client.post(answer, session)).status_code == 202
            _, result = await call.next_message()
            assert result["id"] == 5


# -- benchmarks/cluster.py -------------------------------------------------------------------------


def test_the_cluster_benchmark_parses_its_options_and_counts_round_trips() -> None:
    """``python -m benchmarks.cluster --quick`` takes ~40 s: too long for the suite.  Its
    options and its reading of ``MONITOR`` output are checked here."""
    check = """if True:
        from benchmarks.cluster import count_round_trips
        sample = '''OK
1.000001 [0 127.0.0.1:5000] "ECHO" "bench-start"
1.000002 [0 127.0.0.1:6000] "EVALSHA" "abc" "3" "k1"
1.000003 [0 lua] "XADD" "k1" "*"
1.000004 [0 127.0.0.1:6000] "hgetall" "k2"
1.000005 [0 127.0.0.1:5001] "ECHO" "bench-end"
1.000006 [0 127.0.0.1:6000] "EVALSHA" "late"
'''
        counted = count_round_trips(sample, "bench-start", "bench-end")
        assert counted == {"evalsha": 1, "hgetall": 1}, counted
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 0, usage.stderr
    assert "--quick" in usage.stdout
