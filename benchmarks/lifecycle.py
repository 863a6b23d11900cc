"""The two lifecycle guarantees, side by side: ``python -m benchmarks.lifecycle`` (``--quick``).

One MCP server written for the official MCP Python SDK (``benchmarks/servers/lifecycle.py``,
an ``MCPServer``), served unmodified two ways, each in a child process on 127.0.0.1 port 0:

* ``trio-mcp-http``  by trio_mcp_http: ``trio-mcp-http serve module:mcp`` (the CLI), and
  ``hypercorn -k trio`` for the app behind middleware;
* ``sdk-uvicorn``    by the SDK's own Streamable HTTP app under uvicorn, as its users run it.

Scenarios (each side sees the same clients, one side after the other):

* ``shutdown``: 100 sessions (2025-11-25), each with its standalone GET stream open and a
  ``tools/call`` in flight on an SSE response; half of the calls finish within the grace
  period, half do not.  Then SIGTERM, with the same grace on both sides (``--grace-period``
  / ``--timeout-graceful-shutdown``).  Per side: GET streams that ended with a clean EOF
  (the chunked terminator), POSTs that got exactly one JSON-RPC response, ERROR/Traceback
  lines in the server's log, time from SIGTERM to exit, exit status.
* ``vanish``: 200 clients (each its own session) vanish mid-body, after the body (while
  the handler runs) and mid-stream, with Starlette's ``BaseHTTPMiddleware`` in front of
  the app.  Per side, counted at the server's edge: exchanges completed with a status
  (499 or 200) and one end of body, "No response returned" errors, tracebacks in the
  log, and whether the server still answers a new client afterwards.

Nothing here fails when a side misbehaves: what a side does is the figure.  Every wait is
bounded; a child that outlives its bound is killed (and reported so).  Prints a table and
writes JSON to ``benchmarks/results/lifecycle-<UTC time>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import trio

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PY = sys.executable
SERVER = "benchmarks.servers.lifecycle"
VERSION = "2025-11-25"
POST_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
ERROR_LINE = re.compile(r"\bERROR\b|Traceback|CRITICAL")
SIDES = ["trio-mcp-http", "sdk-uvicorn"]
#: Concurrent connections while setting up (sessions, streams, calls).
SETUP_CONCURRENCY = 25


@dataclass
class Profile:
    """Sizes and times of one run."""

    streams: int = 100  # shutdown: sessions, each with a GET stream and one call in flight
    grace: int = 3  # seconds (uvicorn takes whole seconds)
    short: float = 1.5  # calls that finish within the grace period
    long: float = 60.0  # calls that do not
    clients: int = 200  # vanish: clients, a third of each kind
    hold: float = 5.0  # vanish: how long the held handlers run

    @classmethod
    def quick(cls) -> Profile:
        return cls(streams=20, grace=2, short=1.0, clients=60, hold=2.0)


# -- JSON-RPC ---------------------------------------------------------------------------


def initialize(request_id: int = 0) -> dict[str, Any]:
    params = {
        "protocolVersion": VERSION,
        "capabilities": {},
        "clientInfo": {"name": "lifecycle", "version": "0"},
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}


def call_tool(request_id: int, name: str, token: str | None = None, **arguments: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def is_response(message: dict[str, Any]) -> bool:
    return "id" in message and "method" not in message and ("result" in message or "error" in message)


# -- one HTTP/1.1 exchange per connection, read with h11 -----------------------------------


class Exchange:
    """One HTTP/1.1 request on its own TCP connection.

    The response is read with h11, which checks the framing: a chunked body that ends
    without its terminating 0-chunk raises instead of passing for a clean end.  Closing
    the socket is how a client vanishes.  Bodies are JSON or SSE; every JSON-RPC message
    read is kept in ``messages``.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.messages: list[dict[str, Any]] = []
        self.ended = False  # the body ended with a proper end of message
        self._body = b""
        self._sse = b""
        self._unread: list[dict[str, Any]] = []

    @classmethod
    async def open(
        cls,
        port: int,
        method: str,
        headers: dict[str, str],
        body: bytes | None = None,
        path: str = "/mcp",
        *,
        cut: int = 0,
    ) -> Exchange:
        """Send the request (all but its last ``cut`` bytes: a client vanishing mid-body)."""
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        exchange = cls(stream)
        all_headers = {"host": f"127.0.0.1:{port}", **headers}
        if body is not None and "transfer-encoding" not in all_headers:
            all_headers["content-length"] = str(len(body))
        data = exchange.conn.send(h11.Request(method=method, target=path, headers=list(all_headers.items())))
        if body:
            data += exchange.conn.send(h11.Data(data=body)) or b""
        data += exchange.conn.send(h11.EndOfMessage()) or b""
        try:
            await stream.send_all(data[: len(data) - cut])
        except BaseException:
            await stream.aclose()
            raise
        return exchange

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def _event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                # b"" at EOF: h11 then raises if the message is not complete.
                self.conn.receive_data(await self.stream.receive_some(65536))
                continue
            return event

    async def head(self) -> int:
        if self.status is None:
            event = await self._event()
            while isinstance(event, h11.InformationalResponse):
                event = await self._event()
            if not isinstance(event, h11.Response):
                raise h11.RemoteProtocolError(f"expected a response, got {event!r}")
            self.status = event.status_code
            self.headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        return self.status

    def _feed(self, data: bytes) -> None:
        if not self.headers.get("content-type", "").startswith("text/event-stream"):
            self._body += data
            return
        # Normalised as a whole: a CRLF may straddle two reads.
        self._sse = (self._sse + data).replace(b"\r\n", b"\n")
        while b"\n\n" in self._sse:
            block, self._sse = self._sse.split(b"\n\n", 1)
            lines = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
            if lines and b"".join(lines).strip():
                self._add(json.loads(b"\n".join(lines)))

    def _add(self, message: Any) -> None:
        for one in message if isinstance(message, list) else [message]:
            self.messages.append(one)
            self._unread.append(one)

    async def next_message(self) -> dict[str, Any] | None:
        """The next JSON-RPC message of the body; None once the body has ended."""
        await self.head()
        while not self._unread:
            if self.ended:
                return None
            event = await self._event()
            if isinstance(event, h11.Data):
                self._feed(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self.ended = True
                if self._body.strip():
                    self._add(json.loads(self._body))
        return self._unread.pop(0)

    async def finish(self) -> str:
        """Read to the end: ``clean`` (a proper end of message), ``eof`` (the connection
        closed before it), ``reset`` (by the peer)."""
        try:
            while await self.next_message() is not None:
                pass
        except h11.RemoteProtocolError:
            return "eof"
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return "reset"
        return "clean"


async def http_json(port: int, method: str, path: str = "/mcp", body: Any = None, **headers: str) -> Exchange:
    """One whole exchange (its body read to the end)."""
    raw = None if body is None else json.dumps(body).encode()
    exchange = await Exchange.open(port, method, headers, raw, path)
    try:
        await exchange.finish()
    finally:
        await exchange.aclose()
    return exchange


async def open_session(port: int, limiter: trio.CapacityLimiter, **extra: str) -> str | None:
    """initialize + notifications/initialized; the session id, or None if refused."""
    async with limiter:
        opened = await http_json(port, "POST", body=initialize(), **POST_HEADERS, **extra)
        session = opened.headers.get("mcp-session-id")
        if opened.status != 200 or session is None:
            return None
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        headers = POST_HEADERS | {"mcp-session-id": session, "mcp-protocol-version": VERSION}
        done = await http_json(port, "POST", body=note, **headers, **extra)
        return session if done.status == 202 else None


async def open_sessions(port: int, count: int) -> list[str]:
    limiter = trio.CapacityLimiter(SETUP_CONCURRENCY)
    sessions: list[str | None] = [None] * count

    async def one(i: int) -> None:
        sessions[i] = await open_session(port, limiter)

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
    return [s for s in sessions if s is not None]


# -- child processes -----------------------------------------------------------------------


class Child:
    """A server in a child process; its stdout and stderr are kept, line by line."""

    def __init__(self, process: trio.Process, lines: list[str]) -> None:
        self.process = process
        self.lines = lines
        self.port = 0
        self.killed = False

    def count(self, pattern: str | re.Pattern[str]) -> int:
        return sum(1 for line in self.lines if re.search(pattern, line))

    def error_lines(self) -> int:
        return self.count(ERROR_LINE)

    async def stop(self, limit: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``limit`` seconds."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(limit):
                await self.process.wait()
        if self.process.returncode is None:
            self.killed = True
            self.process.kill()
            with trio.CancelScope(shield=True):
                await self.process.wait()


@asynccontextmanager
async def child(argv: list[str], ready: str) -> AsyncIterator[Child]:
    """Start ``argv``; ready once a line matches ``ready`` (whose group 1 is the port)."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    env["PYTHONUNBUFFERED"] = "1"
    process = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT
    )
    lines: list[str] = []
    found = trio.Event()
    handle = Child(process, lines)

    async def read_output() -> None:
        assert process.stdout is not None
        buffer = b""
        while chunk := await process.stdout.receive_some(65536):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                lines.append(line)
                match = re.search(ready, line)
                if match and not found.is_set():
                    handle.port = int(match.group(1))
                    found.set()
        if buffer:
            lines.append(buffer.decode(errors="replace"))
        found.set()  # at EOF: it exited (port 0 if it never got ready)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_output)
            with trio.move_on_after(30):
                await found.wait()
            if not handle.port:
                raise RuntimeError(f"{argv[2:4]} did not start: {lines[-5:]}")
            yield handle
            await handle.stop()
    finally:
        if process.returncode is None:
            handle.killed = True
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


OURS_READY = r"serving MCP at http://127\.0\.0\.1:(\d+)/mcp"
UVICORN_READY = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"
HYPERCORN_READY = r"Running on http://127\.0\.0\.1:(\d+)"


def shutdown_server(side: str, grace: int) -> tuple[list[str], str]:
    if side == "trio-mcp-http":
        argv = [PY, "-m", "trio_mcp_http", "serve", f"{SERVER}:mcp", "--host", "127.0.0.1", "--port", "0"]
        return [*argv, "--grace-period", str(grace), "--log-level", "INFO"], OURS_READY
    argv = [PY, "-m", "uvicorn", f"{SERVER}:sdk_app", "--factory", "--host", "127.0.0.1", "--port", "0"]
    return [*argv, "--timeout-graceful-shutdown", str(grace), "--no-access-log"], UVICORN_READY


def middleware_server(side: str) -> tuple[list[str], str]:
    if side == "trio-mcp-http":
        argv = [PY, "-m", "hypercorn", "-k", "trio", "--bind", "127.0.0.1:0", "--error-logfile", "-"]
        return [*argv, f"{SERVER}:ours_middleware_app()"], HYPERCORN_READY
    argv = [PY, "-m", "uvicorn", f"{SERVER}:sdk_middleware_app", "--factory", "--host", "127.0.0.1"]
    return [*argv, "--port", "0", "--no-access-log"], UVICORN_READY


# -- scenario: SIGTERM with streams and calls in flight ------------------------------------


async def bounded(limit: float, work: Callable[[], Awaitable[Any]]) -> Any:
    """``work()``, or None if it takes longer than ``limit`` seconds."""
    with trio.move_on_after(limit):
        return await work()
    return None


async def run_shutdown(side: str, p: Profile) -> dict[str, Any]:
    argv, ready = shutdown_server(side, p.grace)
    async with child(argv, ready) as server:
        port = server.port
        sessions = await bounded(60, lambda: open_sessions(port, p.streams)) or []
        headers = [{"mcp-session-id": s, "mcp-protocol-version": VERSION} for s in sessions]
        gets: list[Exchange] = []
        posts: dict[int, Exchange] = {}
        started_at: dict[int, float] = {}
        limiter = trio.CapacityLimiter(SETUP_CONCURRENCY)
        long_ids = list(range(0, len(sessions), 2))
        short_ids = list(range(1, len(sessions), 2))

        async def open_get(i: int) -> None:
            async with limiter:
                stream = await Exchange.open(port, "GET", headers[i] | {"accept": "text/event-stream"})
                gets.append(stream)
                await bounded(10, stream.head)

        async def open_post(i: int, seconds: float) -> None:
            body = json.dumps(call_tool(i, "work", token=f"p{i}", seconds=seconds)).encode()
            async with limiter:
                stream = await Exchange.open(port, "POST", headers[i] | POST_HEADERS, body)
                posts[i] = stream
                if await bounded(10, stream.next_message) is not None:  # "started" (progress)
                    started_at[i] = trio.current_time()

        async def setup() -> None:
            # Streams first, then the long calls, then the short ones: these start just
            # before the signal, so each is still running when it arrives.
            async with trio.open_nursery() as nursery:
                for i in range(len(sessions)):
                    nursery.start_soon(open_get, i)
            for ids, seconds in ((long_ids, p.long), (short_ids, p.short)):
                async with trio.open_nursery() as nursery:
                    for i in ids:
                        nursery.start_soon(open_post, i, seconds)

        try:
            await bounded(60, setup)
            signalled = trio.current_time()
            server.process.send_signal(signal.SIGTERM)
            short_running = sum(1 for i in short_ids if started_at.get(i, -1e9) + p.short > signalled)
            get_outcomes: list[str] = []
            post_outcomes: dict[int, str] = {}
            exit_after: list[float] = []
            read_limit = p.grace + 10.0

            get_ended: list[float] = []
            post_ended: list[float] = []

            async def drain_get(stream: Exchange) -> None:
                get_outcomes.append(await bounded(read_limit, stream.finish) or "still open")
                get_ended.append(trio.current_time() - signalled)

            async def drain_post(i: int, stream: Exchange) -> None:
                post_outcomes[i] = await bounded(read_limit, stream.finish) or "still open"
                post_ended.append(trio.current_time() - signalled)

            async def wait_exit() -> None:
                if await bounded(p.grace + 15.0, server.process.wait) is not None:
                    exit_after.append(trio.current_time() - signalled)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_exit)
                for stream in gets:
                    nursery.start_soon(drain_get, stream)
                for i, stream in posts.items():
                    nursery.start_soon(drain_post, i, stream)
        finally:
            for stream in [*gets, *posts.values()]:
                await stream.aclose()
        await server.stop(limit=0.1)

    def answers(ids: list[int]) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for i in ids:
            stream = posts.get(i)
            responses = [m for m in (stream.messages if stream else []) if is_response(m)]
            if len(responses) != 1:
                kinds[f"{len(responses)} responses"] += 1
            else:
                kinds["result" if "result" in responses[0] else "error"] += 1
        return kinds

    one_response = sum(
        1 for stream in posts.values() if len([m for m in stream.messages if is_response(m)]) == 1
    )
    return {
        "sessions": len(sessions),
        "get_streams": len(gets),
        "get_streams_opened": sum(1 for s in gets if s.status == 200),
        "get_outcomes": dict(Counter(get_outcomes)),
        "get_clean": get_outcomes.count("clean"),
        "gets_ended_s": [min(get_ended, default=None), max(get_ended, default=None)],
        "posts_ended_s": [min(post_ended, default=None), max(post_ended, default=None)],
        "posts": len(posts),
        "posts_started": len(started_at),
        "short_running_at_sigterm": short_running,
        "post_outcomes": dict(Counter(post_outcomes.values())),
        "posts_one_response": one_response,
        "short_answers": dict(answers(short_ids)),
        "long_answers": dict(answers(long_ids)),
        "error_lines": server.error_lines(),
        "warning_lines": server.count(r"\bWARNING\b"),
        "exit_s": exit_after[0] if exit_after else None,
        "returncode": server.process.returncode,
        "killed": server.killed,
        "log_tail": [line for line in server.lines if ERROR_LINE.search(line)][:5],
        "log_lines": server.lines[-30:],
    }


# -- scenario: clients vanishing behind BaseHTTPMiddleware ---------------------------------


async def server_stats(port: int) -> dict[str, Any]:
    exchange = await http_json(port, "GET", "/_lifecycle")
    stats: dict[str, Any] = exchange.messages[0] if exchange.messages else {}
    return stats


async def wait_for(port: int, limit: float, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the server's own record until ``done(stats)``, at most ``limit`` seconds."""
    stats: dict[str, Any] = {}
    with trio.move_on_after(limit):
        # The state is in another process, which has no way to wake us: poll it.
        while not done(stats := await server_stats(port)):  # noqa: ASYNC110
            await trio.sleep(0.1)
    return stats


async def run_vanish(side: str, p: Profile) -> dict[str, Any]:
    argv, ready = middleware_server(side)
    async with child(argv, ready) as server:
        port = server.port
        sessions = await bounded(60, lambda: open_sessions(port, p.clients)) or []
        kinds = ["body", "after", "stream"]
        tags = [f"{kinds[n % 3]}-{n}" for n in range(len(sessions))]
        after_streams: list[Exchange] = []
        mid_stream_heads: list[str | None] = []
        limiter = trio.CapacityLimiter(SETUP_CONCURRENCY)

        def headers(n: int) -> dict[str, str]:
            return POST_HEADERS | {
                "mcp-session-id": sessions[n],
                "mcp-protocol-version": VERSION,
                "x-lifecycle-tag": tags[n],
            }

        async def mid_body(n: int) -> None:
            body = json.dumps(call_tool(n, "echo", text="y" * 3000)).encode()
            chunked = {"transfer-encoding": "chunked"} if n % 2 == 0 else {}
            async with limiter:
                stream = await Exchange.open(port, "POST", headers(n) | chunked, body, cut=1000)
                await stream.aclose()

        async def after_body(n: int) -> None:
            body = json.dumps(call_tool(n, "hold", key=tags[n], seconds=p.hold)).encode()
            async with limiter:
                after_streams.append(await Exchange.open(port, "POST", headers(n), body))

        async def mid_stream(n: int) -> None:
            body = json.dumps(call_tool(n, "hold", token=tags[n], key=tags[n], seconds=p.hold)).encode()
            async with limiter:
                stream = await Exchange.open(port, "POST", headers(n), body)
                try:
                    await stream.next_message()  # the first progress notification
                    mid_stream_heads.append(stream.headers.get("x-through-middleware"))
                finally:
                    await stream.aclose()

        async def vanish() -> None:
            async with trio.open_nursery() as nursery:
                for n, tag in enumerate(tags):
                    kind = {"body": mid_body, "after": after_body, "stream": mid_stream}[tag.split("-")[0]]
                    nursery.start_soon(kind, n)
            # The clients that sent a whole body leave once their handler runs.
            after = {t for t in tags if t.startswith("after-")}
            await wait_for(port, 10.0, lambda s: after <= set(s.get("started", [])))
            for stream in after_streams:
                await stream.aclose()

        await bounded(60, vanish)
        tagged = set(tags)
        stats = await wait_for(
            port,
            p.hold + 10.0,
            lambda s: (
                sum(1 for r in s.get("records", []) if r["tag"] in tagged and r["returned"]) >= len(tags)
            ),
        )
        records = [r for r in stats.get("records", []) if r["tag"] in tagged]
        answered, header = await bounded(15, lambda: probe(port)) or (False, None)
        await server.stop()

    def completed(record: dict[str, Any]) -> bool:
        return record["statuses"] in ([499], [200]) and record["body_ends"] == 1

    statuses = Counter(
        "/".join(map(str, r["statuses"])) or ("none, raised" if r["raised"] else "none") for r in records
    )
    return {
        "clients": len(tags),
        "returned": sum(1 for r in records if r["returned"]),
        "completed": sum(1 for r in records if completed(r)),
        "completed_by_kind": {
            kind: sum(1 for r in records if r["tag"].startswith(kind + "-") and completed(r))
            for kind in kinds
        },
        "statuses": dict(statuses),
        "no_response_returned": sum(1 for r in records if "No response returned" in (r["raised"] or "")),
        "no_response_returned_log_lines": server.count("No response returned"),
        "tracebacks": server.count("Traceback"),
        "error_lines": server.error_lines(),
        "middleware_header_seen": mid_stream_heads.count("POST"),
        "answers_afterwards": answered,
        "afterwards_through_middleware": header == "POST",
        "log_tail": [line for line in server.lines if ERROR_LINE.search(line)][:5],
        "log_lines": server.lines[-30:],
    }


async def probe(port: int) -> tuple[bool, str | None]:
    """A new client after the storm: a session and an ``echo`` call, answered?"""
    session = await open_session(port, trio.CapacityLimiter(1))
    if session is None:
        return False, None
    headers = POST_HEADERS | {"mcp-session-id": session, "mcp-protocol-version": VERSION}
    echoed = await http_json(port, "POST", body=call_tool(1, "echo", text="still there"), **headers)
    texts = [
        c.get("text")
        for m in echoed.messages
        if is_response(m)
        for c in m.get("result", {}).get("content", [])
    ]
    return echoed.status == 200 and texts == ["still there"], echoed.headers.get("x-through-middleware")


# -- report ------------------------------------------------------------------------------


def fraction(part: Any, whole: Any) -> str:
    return "n/a" if part is None else f"{part}/{whole}"


def span(times: list[float | None]) -> str:
    first, last = times
    return "n/a" if first is None or last is None else f"{first:.2f}-{last:.2f} s"


def table(
    title: str, rows: list[tuple[str, Callable[[dict[str, Any]], str]]], by_side: dict[str, Any]
) -> str:
    sides = [s for s in SIDES if s in by_side]
    width = max(len(label) for label, _ in rows)
    lines = [title, f"  {'':{width}}  " + "  ".join(f"{s:>20}" for s in sides)]
    for label, cell in rows:
        values = []
        for s in sides:
            r = by_side[s]
            values.append(f"failed: {r['failed']}"[:20] if "failed" in r else cell(r))
        lines.append(f"  {label:{width}}  " + "  ".join(f"{v:>20}" for v in values))
    return "\n".join(lines)


def report(results: dict[str, Any], p: Profile) -> str:
    out: list[str] = []
    if "shutdown" in results:
        half = p.streams // 2
        out.append(
            table(
                f"SIGTERM with {p.streams} GET streams + {p.streams} tools/call in flight"
                f" ({half} take {p.short} s, {half} take {p.long:.0f} s), grace {p.grace} s on both sides",
                [
                    (
                        "GET streams ended with a clean EOF",
                        lambda r: fraction(r["get_clean"], r["get_streams"]),
                    ),
                    (
                        "  how they ended",
                        lambda r: ", ".join(f"{k} {v}" for k, v in r["get_outcomes"].items()),
                    ),
                    (
                        "POSTs with exactly one JSON-RPC response",
                        lambda r: fraction(r["posts_one_response"], r["posts"]),
                    ),
                    (
                        "  short calls: answers",
                        lambda r: ", ".join(f"{k} {v}" for k, v in r["short_answers"].items()),
                    ),
                    (
                        "  long calls: answers",
                        lambda r: ", ".join(f"{k} {v}" for k, v in r["long_answers"].items()),
                    ),
                    ("  GET streams ended after (first-last)", lambda r: span(r["gets_ended_s"])),
                    ("  POSTs ended after (first-last)", lambda r: span(r["posts_ended_s"])),
                    ("ERROR/Traceback lines in the log", lambda r: str(r["error_lines"])),
                    ("  WARNING lines", lambda r: str(r["warning_lines"])),
                    (
                        "SIGTERM to exit (interpreter teardown included)",
                        lambda r: "not exited" if r["exit_s"] is None else f"{r['exit_s']:.2f} s",
                    ),
                    ("exit status", lambda r: "killed" if r["killed"] else str(r["returncode"])),
                ],
                results["shutdown"],
            )
        )
    if "vanish" in results:
        out.append(
            table(
                f"{p.clients} clients vanishing mid-body / after the body / mid-stream,"
                " behind BaseHTTPMiddleware",
                [
                    ("exchanges completed (499 or 200)", lambda r: fraction(r["completed"], r["clients"])),
                    (
                        "  body / after / stream",
                        lambda r: "/".join(
                            str(r["completed_by_kind"][k]) for k in ("body", "after", "stream")
                        ),
                    ),
                    (
                        "  statuses sent",
                        lambda r: ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())),
                    ),
                    ('"No response returned" errors', lambda r: str(r["no_response_returned"])),
                    ("tracebacks in the log", lambda r: str(r["tracebacks"])),
                    ("answers a new client afterwards", lambda r: "yes" if r["answers_afterwards"] else "no"),
                ],
                results["vanish"],
            )
        )
    return "\n\n".join(out)


# -- main --------------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[str, Profile], Awaitable[dict[str, Any]]]] = {
    "shutdown": run_shutdown,
    "vanish": run_vanish,
}


def describe(exc: BaseException) -> str:
    """The first leaf of an exception group, as ``Type: message``."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def run(scenarios: list[str], sides: list[str], p: Profile) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for scenario in scenarios:
        for side in sides:
            print(f"[{scenario}] {side} ...", flush=True)
            t0 = trio.current_time()
            try:
                result = await SCENARIOS[scenario](side, p)
            except Exception as exc:  # a side that cannot run the scenario is a figure too
                result = {"failed": describe(exc), "traceback": traceback.format_exception(exc)}
            result["elapsed_s"] = round(trio.current_time() - t0, 2)
            results.setdefault(scenario, {})[side] = result
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lifecycle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer streams and clients, a shorter grace")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"subset of {','.join(SIDES)}")
    parser.add_argument(
        "--streams", type=int, default=None, help="shutdown: sessions with a stream and a call"
    )
    parser.add_argument("--clients", type=int, default=None, help="vanish: clients (a third of each kind)")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = parser.parse_args(argv)
    p = Profile.quick() if args.quick else Profile()
    for size in ("streams", "clients"):
        value = getattr(args, size)
        if value is not None:
            if value < 3:
                parser.error(f"--{size} must be at least 3")
            setattr(p, size, value)
    scenarios = [s for s in args.only.split(",") if s]
    sides = [s for s in args.sides.split(",") if s]
    for name, known in ((scenarios, SCENARIOS), (sides, SIDES)):
        unknown = [n for n in name if n not in known]
        if unknown:
            parser.error(f"unknown: {', '.join(unknown)} (choose from {', '.join(known)})")
    results = trio.run(run, scenarios, sides, p)
    text = report(results, p)
    print("\n" + text, flush=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    doc = {"when": stamp, "profile": vars(p), "results": results, "table": text}
    out = args.out or RESULTS / f"lifecycle-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {out}", flush=True)


if __name__ == "__main__":
    main()
