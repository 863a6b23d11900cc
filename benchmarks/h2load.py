#!/usr/bin/env python3
"""HTTP/2 load for MCP Streamable HTTP: prior-knowledge h2c, ``--streams`` concurrent
``tools/call`` requests multiplexed on one connection.

The counterpart of ``loadgen.py throughput`` (16 keep-alive HTTP/1.1 connections, one
request in flight on each): here one TCP connection carries ``--streams`` closed-loop
clients, each with one request (stream) in flight, and, in the stateful modes, its own
session.  One ``selectors`` loop, the ``h2`` package for framing (Hypercorn's own
dependency), the server's CPU read from ``/proc`` at the edges of every window, as
``loadgen.py`` does.  When the server ends the connection (GOAWAY: Hypercorn does after
``keep_alive_max_requests`` requests), the streams it did not take are sent again on a
new connection, as clients do, and those it accepted are waited for on the old one
until it closes.  python-h2 refuses every frame after a GOAWAY (python-hyper/h2#1181),
so the client's connection here takes frames one at a time and reopens its state after
one.  Accepted streams still unanswered when the connection closes are sent again
(counted: ``unanswered_after_goaway``; their latency runs from the first send).

    h2load.py --url URL --pid PID --mode json|modern|sse|stateless --streams 16
    h2load.py --url URL --pid PID --mode modern --requests 20    # exactly 20 timed calls

Prints one JSON object on stdout.  Bounded by ``--deadline``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import socket
import sys
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

# A script, run by path as loadgen.py is (its folder is then on sys.path).
from loadgen import (
    INITIALIZED,
    LEGACY_VERSION,
    MODERN_VERSION,
    WINDOW_KEYS,
    Processes,
    Window,
    initialize_body,
    medians,
    response_ok,
    tool_call_body,
    window_figures,
)

perf = time.perf_counter
CLOSED = h2.connection.ConnectionState.CLOSED


class Call:
    """One request (stream): what to send, and what came back."""

    __slots__ = ("body", "client", "data", "headers", "resp_headers", "status", "t_sent", "timed")

    def __init__(self, client: Client, headers: list[tuple[bytes, bytes]], body: bytes, timed: bool) -> None:
        self.client = client
        self.headers = headers
        self.body = body
        self.timed = timed
        self.t_sent = 0.0
        self.status = 0
        self.resp_headers: dict[bytes, bytes] = {}
        self.data: list[bytes] = []


class Client:
    """A closed-loop client: a generator yielding (headers, body, timed), sent
    (status, headers, body) back."""

    def __init__(self, gen: Generator[Any, Any, None]) -> None:
        self.gen = gen
        self.done = False


class Tolerant(h2.connection.H2Connection):
    """Takes frames after a GOAWAY (python-hyper/h2#1181): one frame at a time, state reopened."""

    def receive_data(self, data: bytes) -> list[h2.events.Event]:
        buf = getattr(self, "_inbox", bytearray()) + data
        events = []
        while len(buf) >= 9:
            end = 9 + int.from_bytes(buf[:3], "big")
            if len(buf) < end:
                break
            frame, buf = bytes(buf[:end]), buf[end:]
            for event in super().receive_data(frame):
                if isinstance(event, h2.events.ConnectionTerminated):
                    self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
                events.append(event)
        self._inbox = buf
        return events


class Connection:
    def __init__(self, load: H2Load) -> None:
        self.sock = socket.create_connection((load.host, load.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.h2 = Tolerant(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.calls: dict[int, Call] = {}
        self.blocked: list[Call] = []
        self.goaway: int | None = None  # last stream id the server will process
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True


class H2Load:
    def __init__(self, url: str, mode: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = (parts.path or "/").encode()
        self.authority = f"{self.host}:{self.port}".encode()
        self.mode = mode
        self.sel = selectors.DefaultSelector()
        self.conn = self._open()
        self.connections = 1
        self.goaways = 0
        self.resent = 0
        self.unanswered_after_goaway = 0
        self.recording = False
        self.latencies: list[float] = []
        self.ok = 0
        self.errors = 0
        self.timed_budget: int | None = None  # --requests: timed calls left to send
        self.client_errors: list[str] = []

    def _open(self) -> Connection:
        conn = Connection(self)
        self.sel.register(conn.sock, selectors.EVENT_READ, conn)
        return conn

    # requests

    def post_headers(self, extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", self.authority),
            (b":path", self.path),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
        ]
        return headers + [(k.lower().encode(), v.encode()) for k, v in extra.items()]

    def start(self, client: Client, value: Any = None) -> None:
        """Advance a client to its next request and send it."""
        if client.done:
            return
        try:
            item = client.gen.send(value)
        except StopIteration:
            client.done = True
            return
        except Exception as exc:
            client.done = True
            self.client_errors.append(f"{type(exc).__name__}: {exc}")
            return
        extra, body, timed = item
        if timed and self.timed_budget is not None:
            if self.timed_budget <= 0:
                client.done = True
                return
            self.timed_budget -= 1
        call = Call(client, self.post_headers({**extra, "content-length": str(len(body))}), body, timed)
        call.t_sent = perf()
        self.send(call)

    def send(self, call: Call) -> None:
        conn = self.conn
        if conn.closed or conn.goaway is not None or conn.h2.state_machine.state == CLOSED:
            conn = self.conn = self._open()
            self.connections += 1
        sid = conn.h2.get_next_available_stream_id()
        conn.h2.send_headers(sid, call.headers)
        conn.calls[sid] = call
        if conn.h2.local_flow_control_window(sid) >= len(call.body):
            conn.h2.send_data(sid, call.body, end_stream=True)
        else:
            conn.blocked.append(call)
        conn.flush()

    def resend(self, calls: list[Call]) -> None:
        for call in calls:
            self.resent += 1
            call.status, call.resp_headers, call.data = 0, {}, []
            self.send(call)

    # responses

    def readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        try:
            events = conn.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.client_errors.append(f"ProtocolError: {exc}")
            self.close(conn)
            return
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                call = conn.calls.get(event.stream_id)
                if call is not None:
                    headers = dict(event.headers)
                    call.status = int(headers.get(b":status", b"0"))
                    call.resp_headers = headers
            elif isinstance(event, h2.events.DataReceived):
                call = conn.calls.get(event.stream_id)
                if call is not None:
                    call.data.append(event.data)
                conn.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                call = conn.calls.pop(event.stream_id, None)
                if call is not None:
                    self.complete(call)
            elif isinstance(event, h2.events.StreamReset):
                call = conn.calls.pop(event.stream_id, None)
                if call is not None:
                    self.resend([call])
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaways += 1
                conn.goaway = event.last_stream_id if event.last_stream_id is not None else 0
            elif isinstance(event, h2.events.WindowUpdated) and conn.blocked:
                blocked, conn.blocked = conn.blocked, []
                for call in blocked:
                    sid = next((s for s, c in conn.calls.items() if c is call), None)
                    if sid is None:
                        continue
                    if conn.h2.local_flow_control_window(sid) >= len(call.body):
                        conn.h2.send_data(sid, call.body, end_stream=True)
                    else:
                        conn.blocked.append(call)
        conn.flush()
        if conn.goaway is not None:
            later = [sid for sid in conn.calls if sid > conn.goaway]
            if later:
                self.resend([conn.calls.pop(sid) for sid in sorted(later)])
            if not conn.calls:
                self.close(conn)

    def complete(self, call: Call) -> None:
        body = b"".join(call.data)
        latency = perf() - call.t_sent
        if call.timed and self.recording:
            if response_ok(call.status, body):
                self.ok += 1
                self.latencies.append(latency)
            else:
                self.errors += 1
        self.start(call.client, (call.status, call.resp_headers, body))

    def close(self, conn: Connection) -> None:
        if conn.closed and conn.sock.fileno() < 0:
            return
        conn.closed = True
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        conn.sock.close()
        if conn.goaway is not None:
            self.unanswered_after_goaway += sum(1 for sid in conn.calls if sid <= conn.goaway)
        left = [conn.calls[sid] for sid in sorted(conn.calls)]
        conn.calls.clear()
        if left:
            self.resend(left)

    def run_until(self, deadline: float, until: Any = None) -> bool:
        while True:
            if until is not None and until():
                return True
            now = perf()
            if now >= deadline:
                return False
            for key, _ in self.sel.select(min(0.02, deadline - now)):
                self.readable(key.data)


class SetupError(Exception):
    pass


def client_script(load: H2Load, ready: list[int]) -> Generator[Any, Any, None]:
    mode = load.mode
    headers: dict[str, str] = {}
    if mode in ("sse", "json"):
        status, resp_headers, body = yield ({}, dumps(initialize_body()), False)
        if not response_ok(status, body):
            raise SetupError(f"initialize: HTTP {status} {body[:200]!r}")
        headers = {"mcp-protocol-version": LEGACY_VERSION}
        sid = resp_headers.get(b"mcp-session-id", b"").decode()
        if sid:
            headers["mcp-session-id"] = sid
        status, _, _ = yield (headers, dumps(INITIALIZED), False)
        if status not in (200, 202, 204):
            raise SetupError(f"notifications/initialized: HTTP {status}")
    elif mode == "stateless":
        headers = {"mcp-protocol-version": LEGACY_VERSION}
    else:
        headers = {"mcp-protocol-version": MODERN_VERSION, "mcp-method": "tools/call", "mcp-name": "echo"}
    modern = mode == "modern"
    bodies = [dumps(tool_call_body(rid, "echo", {"text": "hello"}, modern=modern)) for rid in range(1, 33)]
    status, _, body = yield (headers, bodies[0], False)
    if not response_ok(status, body):
        raise SetupError(f"tools/call: HTTP {status} {body[:200]!r}")
    ready[0] += 1
    i = 0
    while True:
        i += 1
        yield (headers, bodies[i % len(bodies)], True)


def dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def run(args: argparse.Namespace) -> dict[str, Any]:
    pids = [int(p) for p in str(args.pid).split(",") if p]
    procs = Processes(pids, tree=args.tree)
    hard = perf() + args.deadline
    try:
        load = H2Load(args.url, args.mode)
    except OSError as exc:
        return {"available": False, "error": f"connect: {exc}"}
    ready = [0]
    clients = [Client(client_script(load, ready)) for _ in range(args.streams)]
    for client in clients:
        load.start(client)
    load.run_until(min(hard, perf() + 30), lambda: ready[0] >= args.streams or all(c.done for c in clients))
    if ready[0] < args.streams:
        return {
            "available": False,
            "error": (load.client_errors or ["setup timed out"])[0],
            "ready": ready[0],
        }
    reps = []
    if args.requests:
        # Exactly ``--requests`` timed calls (the previous, untimed probes are done).
        in_flight = sum(1 for key in load.sel.get_map().values() for c in key.data.calls.values() if c.timed)
        load.timed_budget = args.requests - in_flight  # those already in flight count
        load.recording = True
        window = Window(procs)
        load.run_until(hard, lambda: load.ok + load.errors >= args.requests)
        windows = [window]
    else:
        load.run_until(min(hard, perf() + args.warmup))
        windows = []
        for _ in range(args.reps):
            if perf() + args.duration > hard:
                break
            load.latencies, load.ok, load.errors = [], 0, 0
            load.recording = True
            window = Window(procs)
            load.run_until(perf() + args.duration)
            windows.append(window)
            reps.append(summary(load, window))
            load.recording = False
    if args.requests:
        reps.append(summary(load, windows[0]))
    result: dict[str, Any] = {
        "available": True,
        "protocol": "h2c",
        "mode": args.mode,
        "streams": args.streams,
        "connections": load.connections,
        "goaways": load.goaways,
        "resent": load.resent,
        # Accepted (stream id <= GOAWAY's last id), not answered before it: sent again.
        "unanswered_after_goaway": load.unanswered_after_goaway,
        "rss_kb": procs.rss_kb(),
        "reps": reps,
        "client_errors": load.client_errors[:5],
    }
    result.update(medians(reps, ("requests", *WINDOW_KEYS)))
    for conn in [key.data for key in list(load.sel.get_map().values())]:
        conn.sock.close()
    return result


def summary(load: H2Load, window: Window) -> dict[str, Any]:
    elapsed, cpu = window.close()
    return window_figures(load.latencies, load.ok, load.errors, elapsed, cpu, window.own_cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", required=True, help="server process id(s), comma-separated")
    parser.add_argument("--tree", action="store_true", help="also count the descendants of --pid")
    parser.add_argument("--mode", default="modern", choices=["sse", "json", "stateless", "modern"])
    parser.add_argument("--streams", type=int, default=16, help="concurrent requests on the connection")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--requests", type=int, default=0, help="exactly this many timed calls, one window")
    parser.add_argument("--deadline", type=float, default=120.0, help="hard cap (s)")
    args = parser.parse_args(argv)
    result = run(args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
