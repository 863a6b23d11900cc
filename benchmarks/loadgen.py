#!/usr/bin/env python3
"""A black-box load generator for MCP Streamable HTTP servers.

It runs in its own process, imports neither server (standard library only), and speaks
HTTP/1.1 with keep-alive over raw non-blocking sockets multiplexed by one ``selectors``
loop: request bytes are built once, responses are parsed just enough (status line,
``Content-Length`` or chunked framing, a few headers).  That keeps it at a few tens of
microseconds per request, so on a 2-core machine (server on one core, load generator on
the other) it never hides the servers' costs.

Besides wall-clock figures it reads the *server's* ``/proc/<pid>/stat`` (utime + stime)
and ``/proc/<pid>/status`` (VmRSS) at the edges of every measurement window: server CPU
time per request and resident memory.

Scenarios (each prints one JSON object on stdout)::

    loadgen.py throughput --url URL --pid PID --mode sse|json|stateless|modern --clients 16
    loadgen.py sessions   --url URL --pid PID --counts 1000,10000
    loadgen.py fanout     --url URL --pid PID --streams 100
    loadgen.py drain      --url URL --pid PID --streams 1000   # sends SIGTERM to PID
    loadgen.py storm      --url URL --pid PID --streams 300 --inflight 100 --cycles 3
    loadgen.py streams    --url URL --pid PID --streams 1000    # memory per open GET stream

``--pid`` takes a comma-separated list; ``--tree`` adds every descendant of those
processes (a supervisor and its workers): server CPU and RSS are sums over them.

Every loop is bounded in time; ``--deadline`` caps a whole scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import selectors
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import urlsplit

perf = time.perf_counter
CLK_TCK = os.sysconf("SC_CLK_TCK")

LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"

# -- /proc ------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (all threads), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_alive(pid: int) -> bool:
    return proc_cpu(pid) is not None


def proc_tree(pids: list[int]) -> list[int]:
    """``pids`` and every live descendant of theirs (worker processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(b")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = list(pids)
    while todo and len(found) < 10_000:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo.extend(parents.get(pid, ()))
    return found


class Processes:
    """The server's processes: the pids given, plus their descendants with ``tree``
    (a supervisor and its workers).  CPU and RSS are sums over them."""

    def __init__(self, pids: list[int], tree: bool = False) -> None:
        self.pids = pids
        self.tree = tree

    def members(self) -> list[int]:
        return proc_tree(self.pids) if self.tree else self.pids

    def cpu_by_pid(self) -> dict[int, float]:
        out = {}
        for pid in self.members():
            cpu = proc_cpu(pid)
            if cpu is not None:
                out[pid] = cpu
        return out

    def rss_kb(self) -> int | None:
        values = [proc_rss_kb(pid) for pid in self.members()]
        known = [v for v in values if v is not None]
        return sum(known) if known else None


def proc_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# -- HTTP/1.1 client engine -------------------------------------------------------------


class Request:
    """Yielded by a client generator: send these bytes, give me the whole response."""

    __slots__ = ("data", "timed")

    def __init__(self, data: bytes, timed: bool = False) -> None:
        self.data = data
        self.timed = timed


class Stream:
    """Yielded by a client generator: send, then feed the body to callbacks until it ends."""

    __slots__ = ("data", "on_data", "on_start")

    def __init__(
        self,
        data: bytes,
        on_data: Callable[[Conn, bytes], None],
        on_start: Callable[[Conn], None] | None = None,
    ) -> None:
        self.data = data
        self.on_data = on_data
        self.on_start = on_start


class Park:
    """Yielded by a client generator: wait until ``Engine.resume(conn)``."""


PARK = Park()


class Response:
    __slots__ = ("body", "headers", "latency", "status")

    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes, latency: float) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.latency = latency


class StreamEnd:
    """How a streamed response ended: ``clean`` (terminal chunk), ``eof``, ``reset``."""

    __slots__ = ("outcome", "status")

    def __init__(self, status: int, outcome: str) -> None:
        self.status = status
        self.outcome = outcome


ClientGen = Generator[Any, Any, None]

# parser states
_IDLE, _HEAD, _CL, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER = range(7)


def response_ok(status: int, body: bytes) -> bool:
    return status == 200 and b'"result"' in body and b'"isError":true' not in body


class Conn:
    __slots__ = (
        "body",
        "buf",
        "done",
        "engine",
        "gen",
        "headers",
        "need",
        "outcome",
        "parked",
        "reconnect",
        "sock",
        "started",
        "state",
        "status",
        "stream",
        "t_sent",
        "timed",
        "user",
    )

    def __init__(self, engine: Engine, sock: socket.socket, gen: ClientGen) -> None:
        self.engine = engine
        self.sock = sock
        self.gen = gen
        self.buf = bytearray()
        self.state = _IDLE
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.need = 0
        self.t_sent = 0.0
        self.timed = False
        self.stream: Stream | None = None
        self.started = False
        self.parked = False
        self.done = False
        self.reconnect = False
        self.outcome: str | None = None
        self.user: Any = None

    # driving the client generator

    def advance(self, value: Any) -> None:
        try:
            item = self.gen.send(value)
        except StopIteration:
            self.engine.finished(self)
            return
        except Exception as exc:
            self.engine.client_error(self, exc)
            return
        if item is PARK:
            self.parked = True
            return
        if isinstance(item, Request):
            self.stream = None
            self.timed = item.timed
            self._send(item.data)
        elif isinstance(item, Stream):
            self.stream = item
            self.started = False
            self._send(item.data)
        else:
            raise TypeError(f"unexpected {item!r}")

    def _send(self, data: bytes) -> None:
        if self.reconnect:
            # The server said ``Connection: close`` (Hypercorn does after
            # keep_alive_max_requests): open a new connection, as HTTP clients do.
            self.reconnect = False
            if not self.engine.reconnect(self):
                self._broken("connect")
                return
        self.state = _HEAD
        self.body = []
        self.t_sent = perf()
        try:
            sent = self.sock.send(data)
            if sent < len(data):
                self.sock.setblocking(True)
                try:
                    self.sock.sendall(data[sent:])
                finally:
                    self.sock.setblocking(False)
        except OSError as exc:
            self._broken("reset" if exc.errno in (errno.ECONNRESET, errno.EPIPE) else "error")

    # input

    def readable(self) -> None:
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as exc:
            self._broken("reset" if exc.errno == errno.ECONNRESET else "error")
            return
        if not data:
            if self.state == _IDLE and not self.done:
                # An idle keep-alive connection closed by the server: reconnect lazily.
                self.reconnect = True
                self.engine.detach(self)
                return
            self._broken("eof")
            return
        if self.state == _IDLE:
            return  # unsolicited bytes: ignore
        self.buf += data
        self._parse()

    def _parse(self) -> None:
        buf = self.buf
        while True:
            state = self.state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                lines = head.split(b"\r\n")
                self.status = int(lines[0][9:12])
                headers: dict[bytes, bytes] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                self.headers = headers
                if self.status < 200:
                    continue  # 100 Continue and friends
                if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                    self.state = _CHUNK_SIZE
                elif b"content-length" in headers:
                    self.need = int(headers[b"content-length"])
                    self.state = _CL
                elif self.status in (204, 304):
                    self.need = 0
                    self.state = _CL
                else:
                    self.need = 1 << 62  # until close
                    self.state = _CL
                if self.stream is not None:
                    self.started = True
                    if self.stream.on_start is not None:
                        self.stream.on_start(self)
            elif state == _CL:
                if self.need == 0 or len(buf) >= self.need:
                    self._data(bytes(buf[: self.need]))
                    del buf[: self.need]
                    self._complete("clean")
                    return
                return
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";", 1)[0], 16)
                del buf[: end + 2]
                if size == 0:
                    self.state = _TRAILER
                else:
                    self.need = size
                    self.state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                if not buf:
                    return
                take = min(self.need, len(buf))
                self._data(bytes(buf[:take]))
                del buf[:take]
                self.need -= take
                if self.need:
                    return
                self.state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buf) < 2:
                    return
                del buf[:2]
                self.state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:
                    self._complete("clean")
                    return
            else:
                return

    def _data(self, data: bytes) -> None:
        if self.stream is not None:
            if data:
                self.stream.on_data(self, data)
        else:
            self.body.append(data)

    def _complete(self, outcome: str) -> None:
        self.state = _IDLE
        if self.headers.get(b"connection", b"").lower() == b"close":
            self.reconnect = True
        if self.stream is not None:
            self.outcome = outcome
            self.advance(StreamEnd(self.status, outcome))
            return
        now = perf()
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        latency = now - self.t_sent
        if self.timed:
            self.engine.record(latency, response_ok(self.status, body))
        self.advance(Response(self.status, self.headers, body, latency))

    def _broken(self, outcome: str) -> None:
        if self.done:
            return
        self.outcome = outcome
        self.done = True
        self.engine.broken(self, outcome)


ENGINES: list[Engine] = []


class Engine:
    """One selectors loop carrying every connection."""

    def __init__(self, url: str) -> None:
        ENGINES.append(self)
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.authority = f"{self.host}:{self.port}"
        self.sel = selectors.DefaultSelector()
        self.conns: set[Conn] = set()
        self.recording = False
        self.latencies: list[float] = []
        self.ok = 0
        self.errors = 0
        self.broken_count: dict[str, int] = {}
        self.finished_count = 0
        self.client_errors: list[str] = []
        self.reconnects = 0

    # connections

    def open(self, gen: ClientGen, user: Any = None) -> Conn | None:
        sock = self._connect()
        if sock is None:
            return None
        conn = Conn(self, sock, gen)
        conn.user = user
        self.conns.add(conn)
        self.sel.register(sock, selectors.EVENT_READ, conn)
        conn.advance(None)
        return conn

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(5.0)
        try:
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            self.broken_count["connect"] = self.broken_count.get("connect", 0) + 1
            return None
        sock.setblocking(False)
        return sock

    def detach(self, conn: Conn) -> None:
        """Stop watching a connection's socket (closed by the server while idle)."""
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        conn.sock.close()

    def reconnect(self, conn: Conn) -> bool:
        self.reconnects += 1
        self.detach(conn)
        sock = self._connect()
        if sock is None:
            return False
        conn.sock = sock
        conn.buf.clear()
        self.sel.register(sock, selectors.EVENT_READ, conn)
        return True

    def close(self, conn: Conn, *, reset: bool = False) -> None:
        if conn not in self.conns:
            return
        self.conns.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        if reset:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.sock.close()
        conn.done = True

    def close_all(self, *, reset: bool = False) -> None:
        for conn in list(self.conns):
            self.close(conn, reset=reset)

    def resume(self, conn: Conn, value: Any = None) -> None:
        if conn.parked and not conn.done:
            conn.parked = False
            conn.advance(value)

    def finished(self, conn: Conn) -> None:
        self.finished_count += 1
        self.close(conn)

    def client_error(self, conn: Conn, exc: Exception) -> None:
        self.client_errors.append(f"{type(exc).__name__}: {exc}")
        self.close(conn)

    def broken(self, conn: Conn, outcome: str) -> None:
        """The server closed or reset the connection: tell the client script, then drop it."""
        self.broken_count[outcome] = self.broken_count.get(outcome, 0) + 1
        waiting = conn.state != _IDLE
        self.close(conn)
        if not waiting:
            conn.gen.close()
            return
        if conn.timed and self.recording:
            self.errors += 1
        try:
            if conn.stream is not None:
                conn.gen.send(StreamEnd(conn.status, outcome))
            else:
                conn.gen.throw(ConnectionBroken(outcome))
        except StopIteration:
            pass
        except Exception as exc:
            self.client_errors.append(f"{type(exc).__name__}: {exc}")
        conn.gen.close()

    # measurement

    def record(self, latency: float, ok: bool) -> None:
        if self.recording:
            if ok:
                self.ok += 1
                self.latencies.append(latency)
            else:
                self.errors += 1

    def start_window(self) -> None:
        self.latencies = []
        self.ok = 0
        self.errors = 0
        self.recording = True

    # running

    def step(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            conn = key.data
            if conn.done:
                self.close(conn)
            else:
                conn.readable()

    def run_until(self, deadline: float, until: Callable[[], bool] | None = None) -> bool:
        """Run the loop until ``deadline`` (perf_counter) or ``until()``; True if the latter."""
        while True:
            if until is not None and until():
                return True
            now = perf()
            if now >= deadline:
                return False
            if not self.conns:
                time.sleep(min(0.02, deadline - now))
                continue
            self.step(min(0.02, deadline - now))

    # request bytes

    def post(self, body: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
        if isinstance(body, dict):
            body = json.dumps(body, separators=(",", ":")).encode()
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.authority}",
            "Content-Type: application/json",
            "Accept: application/json, text/event-stream",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def get(self, headers: dict[str, str]) -> bytes:
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.authority}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- MCP messages ---------------------------------------------------------------------------


def initialize_body(rid: int = 0) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "loadgen", "version": "1.0"},
        },
    }


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def tool_call_body(rid: int, name: str, arguments: dict[str, Any], modern: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if modern:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "loadgen", "version": "1.0"},
        }
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}


class SetupError(Exception):
    pass


class ConnectionBroken(SetupError):
    """Thrown into a client script whose connection the server closed or reset."""


def open_session(engine: Engine) -> Generator[Any, Any, str]:
    """``initialize`` + ``notifications/initialized``; returns the session id."""
    resp = yield Request(engine.post(initialize_body()))
    if not response_ok(resp.status, resp.body):
        raise SetupError(f"initialize: HTTP {resp.status} {resp.body[:200]!r}")
    sid = resp.headers.get(b"mcp-session-id", b"").decode()
    headers = {"MCP-Protocol-Version": LEGACY_VERSION}
    if sid:
        headers["Mcp-Session-Id"] = sid
    resp = yield Request(engine.post(INITIALIZED, headers))
    if resp.status not in (200, 202, 204):
        raise SetupError(f"notifications/initialized: HTTP {resp.status}")
    return sid


def session_headers(sid: str) -> dict[str, str]:
    return {"MCP-Protocol-Version": LEGACY_VERSION, "Mcp-Session-Id": sid}


def call_requests(
    engine: Engine, mode: str, sid: str, name: str, arguments: dict[str, Any], n: int = 32
) -> list[bytes]:
    """Pre-built ``tools/call`` requests (ids cycle so no id is reused while in flight)."""
    out = []
    for rid in range(1, n + 1):
        if mode == "modern":
            headers = {"MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "tools/call", "Mcp-Name": name}
            out.append(engine.post(tool_call_body(rid, name, arguments, modern=True), headers))
        elif mode == "stateless":
            out.append(
                engine.post(tool_call_body(rid, name, arguments), {"MCP-Protocol-Version": LEGACY_VERSION})
            )
        else:
            out.append(engine.post(tool_call_body(rid, name, arguments), session_headers(sid)))
    return out


# -- statistics -----------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def median_of(reps: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in reps if r.get(key) is not None]
    return statistics.median(values) if values else None


def medians(reps: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """The median over ``reps`` of each of ``keys`` (``None`` where no window has it)."""
    return {key: median_of(reps, key) for key in keys}


#: The figures of a request window (:func:`window_figures`) that a scenario reports as
#: medians over its windows.
WINDOW_KEYS = (
    "rps",
    "p50_ms",
    "p99_ms",
    "cpu_us_per_req",
    "server_cpu_util",
    "errors",
    "loadgen_cpu_us_per_req",
)


def window_figures(
    latencies: list[float], completed: int, errors: int, elapsed: float, cpu: float, own_cpu: float
) -> dict[str, Any]:
    """One request window's figures: throughput, latency percentiles, the server's CPU
    (``cpu`` seconds) and this process's (``own_cpu``) per completed request."""
    lat = sorted(latencies)
    return {
        "requests": completed,
        "errors": errors,
        "elapsed_s": round(elapsed, 4),
        "rps": completed / elapsed if elapsed else 0.0,
        "p50_ms": (percentile(lat, 0.50) or 0) * 1e3,
        "p99_ms": (percentile(lat, 0.99) or 0) * 1e3,
        "server_cpu_s": cpu,
        "server_cpu_util": cpu / elapsed if elapsed else 0.0,
        "cpu_us_per_req": cpu / completed * 1e6 if completed else None,
        "loadgen_cpu_us_per_req": own_cpu / completed * 1e6 if completed else None,
    }


class Window:
    """Server CPU (summed over its processes) and wall clock over one measurement
    window; also this process's own CPU time (``own_cpu``)."""

    def __init__(self, pid: int | Processes) -> None:
        self.procs = pid if isinstance(pid, Processes) else Processes([pid])
        self.t0 = perf()
        self.own0 = time.process_time()
        self.cpu0 = self.procs.cpu_by_pid()
        self.own_cpu = 0.0
        self.processes = len(self.cpu0)

    def close(self) -> tuple[float, float]:
        elapsed = perf() - self.t0
        self.own_cpu = time.process_time() - self.own0
        cpu1 = self.procs.cpu_by_pid()
        # A process that is gone at the end counts what it had at the start (nothing
        # more is known); one that appeared during the window counts from zero.
        cpu = sum(cpu1.get(pid, c0) - c0 for pid, c0 in self.cpu0.items())
        cpu += sum(c1 for pid, c1 in cpu1.items() if pid not in self.cpu0)
        self.processes = max(self.processes, len(cpu1))
        return elapsed, cpu


# -- scenario: throughput -------------------------------------------------------------------


def scenario_throughput(args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine(args.url)
    mode = args.mode
    ready = [0]
    setup_errors: list[str] = []

    def client() -> ClientGen:
        sid = ""
        try:
            if mode in ("sse", "json"):
                sid = yield from open_session(engine)
        except SetupError as exc:
            setup_errors.append(str(exc))
            return
        requests = call_requests(engine, mode, sid, "echo", {"text": "hello"})
        # One untimed probe: is this scenario served at all?
        resp = yield Request(requests[0])
        if not response_ok(resp.status, resp.body):
            setup_errors.append(f"tools/call: HTTP {resp.status} {resp.body[:200]!r}")
            return
        ready[0] += 1
        i = 0
        n = len(requests)
        while True:
            i += 1
            yield Request(requests[i % n], timed=True)

    hard = perf() + args.deadline
    for _ in range(args.clients):
        if engine.open(client()) is None:
            setup_errors.append("connect failed")
    engine.run_until(min(hard, perf() + 30), lambda: ready[0] + len(setup_errors) >= args.clients)
    if setup_errors or ready[0] < args.clients:
        engine.close_all()
        return {
            "available": False,
            "error": (setup_errors or ["setup timed out"])[0],
            "setup_errors": len(setup_errors),
        }
    engine.run_until(perf() + args.warmup)
    reps = []
    for _ in range(args.reps):
        if perf() + args.duration > hard:
            break
        engine.start_window()
        window = Window(args.procs)
        engine.run_until(perf() + args.duration)
        elapsed, cpu = window.close()
        engine.recording = False
        figures = window_figures(engine.latencies, engine.ok, engine.errors, elapsed, cpu, window.own_cpu)
        reps.append({**figures, "server_processes": window.processes})
    rss = args.procs.rss_kb()
    engine.close_all()
    result: dict[str, Any] = {
        "available": True,
        "clients": args.clients,
        "mode": mode,
        "rss_kb": rss,
        "reps": reps,
    }
    result.update(medians(reps, (*WINDOW_KEYS, "server_processes")))
    return result


# -- scenario: memory per idle session -------------------------------------------------------


def scenario_sessions(args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine(args.url)
    created = [0]
    target = [0]
    failures: list[str] = []

    def client() -> ClientGen:
        while True:
            while created[0] < target[0] and len(failures) <= 20:
                created[0] += 1  # claimed before the request, so the total is exact
                try:
                    yield from open_session(engine)
                except SetupError as exc:
                    failures.append(str(exc))
                    return
            yield PARK

    def grow(to: int, limit: float) -> float:
        target[0] = to
        window = Window(args.pid)
        t0 = perf()
        for conn in list(engine.conns):
            engine.resume(conn)
        engine.run_until(
            perf() + limit,
            lambda: (
                len(failures) > 20 or (created[0] >= to and all(c.parked or c.done for c in engine.conns))
            ),
        )
        _, cpu = window.close()
        return perf() - t0, cpu

    hard = perf() + args.deadline
    counts = [int(c) for c in args.counts.split(",")]
    conns = [engine.open(client()) for _ in range(args.connections)]
    # Warm-up sessions: lazy imports, first-use caches and allocator pools are not
    # per-session costs.
    warm = args.warm_sessions
    grow(warm, 30)
    time.sleep(0.5)
    base_rss = proc_rss_kb(args.pid) or 0
    points = []
    for count in counts:
        remaining = hard - perf()
        if remaining <= 1:
            break
        elapsed, _cpu = grow(warm + count, remaining)
        time.sleep(args.settle)
        rss = proc_rss_kb(args.pid) or 0
        made = created[0] - warm - len(failures)
        points.append(
            {
                "sessions": made,
                "target": count,
                "rss_kb": rss,
                "delta_kb": rss - base_rss,
                "kb_per_session": (rss - base_rss) / made if made > 0 else None,
                "create_elapsed_s": elapsed,
            }
        )
        if len(failures) > 20:
            break
    engine.close_all()
    del conns
    return {
        "available": not failures or bool(points),
        "base_rss_kb": base_rss,
        "warm_sessions": warm,
        "points": points,
        "failures": failures[:3],
        "failed": len(failures),
    }


# -- live GET streams -----------------------------------------------------------------------

SEQ = re.compile(rb'"seq":\s*(\d+)[^\d]')


class StreamSet:
    """N sessions, each with its GET stream open (opened at most ``parallel`` at a time)."""

    def __init__(self, engine: Engine, on_seq: Callable[[Conn, int], None] | None = None) -> None:
        self.engine = engine
        self.on_seq = on_seq
        self.started = 0
        self.failed: list[str] = []
        self.ended: dict[str, int] = {}
        self.conns: list[Conn] = []
        self.in_setup = 0
        self.register = False

    def _on_start(self, conn: Conn) -> None:
        self.in_setup -= 1
        if conn.status == 200:
            self.started += 1
        else:
            self.failed.append(f"GET: HTTP {conn.status}")

    def _on_data(self, conn: Conn, data: bytes) -> None:
        if self.on_seq is None:
            return
        buf = conn.user + data if conn.user else data
        last = 0
        for match in SEQ.finditer(buf):
            self.on_seq(conn, int(match.group(1)))
            last = match.end() - 1
        tail = buf[last:]
        conn.user = tail[-32:]

    def client(self) -> ClientGen:
        engine = self.engine
        try:
            sid = yield from open_session(engine)
            if self.register:
                resp = yield Request(engine.post(tool_call_body(1, "register", {}), session_headers(sid)))
                if not response_ok(resp.status, resp.body):
                    raise SetupError(f"register: HTTP {resp.status}")
        except SetupError as exc:
            self.in_setup -= 1
            self.failed.append(str(exc))
            return
        end = yield Stream(engine.get(session_headers(sid)), self._on_data, self._on_start)
        self.ended[end.outcome] = self.ended.get(end.outcome, 0) + 1

    def open(self, n: int, limit: float, parallel: int = 48) -> bool:
        deadline = perf() + limit
        opened = 0
        while perf() < deadline:
            while opened < n and self.in_setup < parallel:
                self.in_setup += 1
                opened += 1
                conn = self.engine.open(self.client(), b"")
                if conn is None:
                    self.in_setup -= 1
                    self.failed.append("connect failed")
                else:
                    self.conns.append(conn)
            if self.started + len(self.failed) >= n:
                break
            self.engine.step(0.02)
        return self.started >= n


# -- scenario: memory per open GET stream -----------------------------------------------------


def scenario_streams(args: argparse.Namespace) -> dict[str, Any]:
    """``--streams`` sessions, each with its standalone GET stream open and kept open:
    RSS growth / streams, after ``--warm-sessions`` warm-up ones (first-use costs)."""
    engine = Engine(args.url)
    hard = perf() + args.deadline
    warm = StreamSet(engine)
    warm_n = min(args.warm_sessions, args.streams)
    if warm_n and not warm.open(warm_n, min(30, args.deadline / 4)):
        engine.close_all()
        return {"available": False, "error": (warm.failed or ["streams did not open"])[0]}
    engine.run_until(perf() + 0.5)
    base_rss = proc_rss_kb(args.pid) or 0
    streams = StreamSet(engine)
    t0 = perf()
    opened = streams.open(args.streams, max(1.0, min(120, hard - perf() - args.settle - 5)))
    elapsed = perf() - t0
    # Keep the loop turning while the server settles (its first events are read).
    engine.run_until(min(hard, perf() + args.settle))
    rss = proc_rss_kb(args.pid) or 0
    live = sum(1 for c in streams.conns if not c.done and c.started and c.outcome is None)
    warm_live = sum(1 for c in warm.conns if not c.done and c.started and c.outcome is None)
    engine.close_all()
    result: dict[str, Any] = {
        "available": opened or streams.started > 0,
        "target": args.streams,
        "streams": streams.started,
        "open_at_reading": live,
        "warm_streams": warm.started,
        "warm_open_at_reading": warm_live,
        "failed": len(streams.failed),
        "failures": streams.failed[:3],
        "ended_early": dict(streams.ended),
        "base_rss_kb": base_rss,
        "rss_kb": rss,
        "delta_kb": rss - base_rss,
        "kb_per_stream": (rss - base_rss) / streams.started if streams.started else None,
        "open_elapsed_s": elapsed,
    }
    if not result["available"]:
        result["error"] = (streams.failed or ["streams did not open"])[0]
    return result


# -- scenario: notification fan-out ----------------------------------------------------------


def scenario_fanout(args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine(args.url)
    n = args.streams
    batch = args.batch
    sent_at: dict[int, float] = {}
    delivered: dict[int, int] = {}
    state = {"complete_upto": 0, "next": 0, "received": 0, "last_progress": perf()}
    latencies: list[float] = []
    trigger_conn: list[Conn] = []

    def on_seq(conn: Conn, seq: int) -> None:
        now = perf()
        t = sent_at.get(seq)
        if t is None:
            return
        state["received"] += 1
        if engine.recording:
            latencies.append(now - t)
        count = delivered.get(seq, 0) + 1
        delivered[seq] = count
        if count >= n:
            del delivered[seq]
            del sent_at[seq]
            state["complete_upto"] = max(state["complete_upto"], seq + 1)
            state["last_progress"] = now
            if (
                trigger_conn
                and trigger_conn[0].parked
                and state["next"] - state["complete_upto"] < args.window * batch
            ):
                engine.resume(trigger_conn[0])

    streams = StreamSet(engine, on_seq)
    streams.register = True
    hard = perf() + args.deadline
    if not streams.open(n, min(60, args.deadline / 2)):
        engine.close_all()
        return {
            "available": False,
            "error": (streams.failed or ["streams did not open"])[0],
            "streams_open": streams.started,
        }

    def trigger() -> ClientGen:
        sid = yield from open_session(engine)
        while True:
            if state["next"] - state["complete_upto"] >= args.window * batch:
                yield PARK
                continue
            start = state["next"]
            body = engine.post(
                tool_call_body(start % 1000 + 1, "broadcast", {"start": start, "count": batch}),
                session_headers(sid),
            )
            t = perf()
            for seq in range(start, start + batch):
                sent_at[seq] = t
            state["next"] = start + batch
            resp = yield Request(body)
            if not response_ok(resp.status, resp.body):
                raise SetupError(f"broadcast: HTTP {resp.status} {resp.body[:200]!r}")

    tconn = engine.open(trigger())
    if tconn is None:
        return {"available": False, "error": "connect failed"}
    trigger_conn.append(tconn)
    stalled = lambda: perf() - state["last_progress"] > args.stall  # noqa: E731
    state["last_progress"] = perf()
    engine.run_until(perf() + args.warmup, stalled)
    reps = []
    for _ in range(args.reps):
        if stalled() or perf() + args.duration > hard:
            break
        latencies.clear()
        engine.recording = True
        received0 = state["received"]
        window = Window(args.pid)
        engine.run_until(perf() + args.duration, stalled)
        elapsed, cpu = window.close()
        engine.recording = False
        got = state["received"] - received0
        lat = sorted(latencies)
        reps.append(
            {
                "notifications": got,
                "elapsed_s": elapsed,
                "notifications_per_s": got / elapsed if elapsed else 0,
                "p50_ms": (percentile(lat, 0.5) or 0) * 1e3,
                "p99_ms": (percentile(lat, 0.99) or 0) * 1e3,
                "server_cpu_util": cpu / elapsed if elapsed else 0,
                "cpu_us_per_notification": cpu / got * 1e6 if got else None,
            }
        )
    is_stalled = stalled()
    rss = proc_rss_kb(args.pid)
    engine.close_all()
    result: dict[str, Any] = {
        "available": True,
        "streams": n,
        "batch": batch,
        "window": args.window,
        "stalled": is_stalled,
        "streams_ended_early": dict(streams.ended),
        "rss_kb": rss,
        "reps": reps,
    }
    for key in ("notifications_per_s", "p50_ms", "p99_ms", "cpu_us_per_notification", "server_cpu_util"):
        result[key] = median_of(reps, key)
    return result


# -- scenario: shutdown drain ---------------------------------------------------------------


def scenario_drain(args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine(args.url)
    streams = StreamSet(engine)
    inflight_results: dict[str, int] = {}

    def slow_call() -> ClientGen:
        try:
            sid = yield from open_session(engine)
        except SetupError:
            inflight_results["setup_failed"] = inflight_results.get("setup_failed", 0) + 1
            return
        body = engine.post(
            tool_call_body(7, "sleep", {"seconds": args.inflight_seconds}), session_headers(sid)
        )
        try:
            resp = yield Request(body)
        except ConnectionBroken as exc:
            key = f"connection_{exc}_no_response"
            inflight_results[key] = inflight_results.get(key, 0) + 1
            return
        if response_ok(resp.status, resp.body):
            key = "result"
        elif b'"error"' in resp.body:
            key = "jsonrpc_error"
        else:
            key = f"http_{resp.status}_no_jsonrpc"
        inflight_results[key] = inflight_results.get(key, 0) + 1

    if not streams.open(args.streams, min(90, args.deadline / 2)):
        engine.close_all()
        return {
            "available": False,
            "error": (streams.failed or ["streams did not open"])[0],
            "streams_open": streams.started,
        }
    slow = [engine.open(slow_call()) for _ in range(args.inflight)]
    engine.run_until(perf() + 0.5)
    live = sum(1 for c in streams.conns if not c.done)
    rss = proc_rss_kb(args.pid)
    t0 = perf()
    os.kill(args.pid, signal.SIGTERM)
    exited_at: list[float] = []
    last_stream_end = [t0]
    ended_before = sum(streams.ended.values())

    def all_done() -> bool:
        if not exited_at and not proc_alive(args.pid):
            exited_at.append(perf())
        return bool(exited_at) and not engine.conns

    deadline = t0 + args.timeout
    while perf() < deadline and not all_done():
        before = sum(streams.ended.values())
        engine.step(0.02)
        if sum(streams.ended.values()) != before:
            last_stream_end[0] = perf()
    open_at_end = sum(1 for c in streams.conns if not c.done and c.outcome is None)
    unanswered = sum(1 for c in slow if c is not None and not c.done)
    engine.close_all()
    outcomes = dict(streams.ended)
    if open_at_end:
        outcomes["still_open"] = open_at_end
    return {
        "available": True,
        "streams": live,
        "ended_before_sigterm": ended_before,
        "rss_kb_before": rss,
        "outcomes": outcomes,
        "clean": outcomes.get("clean", 0),
        "streams_drained_s": last_stream_end[0] - t0 if sum(outcomes.values()) else None,
        "exit_s": exited_at[0] - t0 if exited_at else None,
        "exited": bool(exited_at),
        "inflight": args.inflight,
        "inflight_outcomes": {**inflight_results, **({"no_response": unanswered} if unanswered else {})},
    }


# -- scenario: disconnect storm -------------------------------------------------------------


def probe_latency(engine: Engine, limit: float, count: int = 20) -> dict[str, Any]:
    """A fresh session doing ``count`` sequential tools/call: time to first success, p50."""
    lat: list[float] = []
    t0 = perf()
    first: list[float] = []

    def client() -> ClientGen:
        try:
            sid = yield from open_session(engine)
        except SetupError:
            return
        req = engine.post(tool_call_body(1, "echo", {"text": "probe"}), session_headers(sid))
        for _ in range(count):
            resp = yield Request(req)
            if response_ok(resp.status, resp.body):
                if not first:
                    first.append(perf() - t0)
                lat.append(resp.latency)

    conn = engine.open(client())
    engine.run_until(perf() + limit, lambda: conn is None or conn.done)
    if conn is not None:
        engine.close(conn)
    lat.sort()
    return {
        "first_ok_s": first[0] if first else None,
        "p50_ms": (percentile(lat, 0.5) or 0) * 1e3,
        "ok": len(lat),
    }


def scenario_storm(args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine(args.url)
    before = probe_latency(engine, 10)
    if not before["ok"]:
        return {"available": False, "error": "server does not answer tools/call"}
    rss0 = proc_rss_kb(args.pid)
    cycles = []
    hard = perf() + args.deadline
    for _ in range(args.cycles):
        if perf() > hard - 15:
            break
        streams = StreamSet(engine)
        streams.open(args.streams, 30)
        sent = [0]

        def slow_call() -> ClientGen:
            try:
                sid = yield from open_session(engine)
            except SetupError:
                return
            sent[0] += 1  # noqa: B023 - used within this cycle only
            yield Request(engine.post(tool_call_body(7, "sleep", {"seconds": 30}), session_headers(sid)))

        slow = [engine.open(slow_call()) for _ in range(args.inflight)]
        engine.run_until(perf() + 10, lambda: sent[0] >= args.inflight)  # noqa: B023
        engine.run_until(perf() + 0.3)
        victims = [c for c in streams.conns + slow if c is not None and not c.done]
        cpu0 = proc_cpu(args.pid) or 0.0
        t0 = perf()
        for conn in victims:  # all at once, with RST
            engine.close(conn, reset=True)
        # Wait until the server goes quiet: two 100 ms samples under 5 % CPU (max 10 s).
        quiet = 0
        last = cpu0
        t_quiet = None
        while perf() - t0 < 10:
            time.sleep(0.1)
            cpu = proc_cpu(args.pid) or last
            if cpu - last < 0.005:
                quiet += 1
                if quiet >= 2:
                    t_quiet = perf() - t0 - 0.2
                    break
            else:
                quiet = 0
            last = cpu
        storm_cpu = (proc_cpu(args.pid) or last) - cpu0
        after = probe_latency(engine, 10)
        cycles.append(
            {
                "disconnected": len(victims),
                "streams": streams.started,
                "inflight": sent[0],
                "server_cpu_s": storm_cpu,
                "cpu_us_per_disconnect": storm_cpu / len(victims) * 1e6 if victims else None,
                "quiet_after_s": t_quiet,
                "probe_first_ok_s": after["first_ok_s"],
                "probe_p50_ms": after["p50_ms"],
                "rss_kb": proc_rss_kb(args.pid),
            }
        )
    engine.close_all()
    final = probe_latency(engine, 10)
    return {
        "available": True,
        "alive": proc_alive(args.pid) and bool(final["ok"]),
        "probe_before_p50_ms": before["p50_ms"],
        "probe_after_p50_ms": final["p50_ms"],
        "rss_kb_before": rss0,
        "rss_kb_after": proc_rss_kb(args.pid),
        "cycles": cycles,
        "cpu_us_per_disconnect": median_of(cycles, "cpu_us_per_disconnect"),
        "quiet_after_s": median_of(cycles, "quiet_after_s"),
    }


# -- CLI --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=["throughput", "sessions", "fanout", "drain", "storm", "streams"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", required=True, help="server process id(s) for /proc, comma-separated")
    parser.add_argument("--tree", action="store_true", help="also count the descendants of --pid")
    parser.add_argument("--deadline", type=float, default=300.0, help="hard cap on the scenario (s)")
    parser.add_argument("--mode", default="sse", choices=["sse", "json", "stateless", "modern"])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warm-sessions", type=int, default=200)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10, help="notifications per broadcast call")
    parser.add_argument("--window", type=int, default=2, help="broadcast calls not yet fully delivered")
    parser.add_argument("--stall", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--inflight-seconds", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args(argv)
    pids = [int(p) for p in str(args.pid).split(",") if p]
    args.pid = pids[0]
    args.procs = Processes(pids, tree=args.tree)
    scenario = {
        "throughput": scenario_throughput,
        "sessions": scenario_sessions,
        "fanout": scenario_fanout,
        "drain": scenario_drain,
        "storm": scenario_storm,
        "streams": scenario_streams,
    }[args.scenario]
    cpu0 = time.process_time()
    result = scenario(args)
    result["loadgen_cpu_s"] = time.process_time() - cpu0
    result["reconnects"] = sum(e.reconnects for e in ENGINES)
    result["connections_broken"] = {
        k: sum(e.broken_count.get(k, 0) for e in ENGINES)
        for k in {k for e in ENGINES for k in e.broken_count}
    }
    result["client_errors"] = [m for e in ENGINES for m in e.client_errors][:5]
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
