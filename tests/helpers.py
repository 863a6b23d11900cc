"""Test plumbing: a scriptable MCP server, an SSE parser, HTTP clients (httpx, raw h11,
in-memory ASGI) and a Hypercorn harness that records what the app sent.

Nothing here sleeps to wait for something: tests synchronise on events the tools set,
on bytes the client reads, or on the app's own idle events.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h11
import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.utils import wrap_app

from trio_mcp_http import Context, McpHttpApp, McpServer, TransportConfig, open_mcp_server
from trio_mcp_http.serving import serve as _serve

ACCEPT_BOTH = "application/json, text/event-stream"
JSON_CT = "application/json"
LATEST = "2025-11-25"
POST_HEADERS = {"accept": ACCEPT_BOTH, "content-type": JSON_CT}


# -- a scriptable server -----------------------------------------------------------------


class Controller:
    """Lets a test drive running tool handlers step by step.

    ``scripted(key)`` runs commands sent with :meth:`send`; ``hold(key)`` waits for
    :meth:`release`.  Each handler records when it started, whether it was cancelled
    and whether it finished.
    """

    def __init__(self) -> None:
        self._channels: dict[str, tuple[trio.MemorySendChannel[Any], trio.MemoryReceiveChannel[Any]]] = {}
        self.started: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self.cancelled: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self.finished: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self.gates: defaultdict[str, trio.Event] = defaultdict(trio.Event)

    def _channel(self, key: str) -> tuple[trio.MemorySendChannel[Any], trio.MemoryReceiveChannel[Any]]:
        if key not in self._channels:
            self._channels[key] = trio.open_memory_channel[Any](math.inf)
        return self._channels[key]

    def send(self, key: str, *command: Any) -> None:
        self._channel(key)[0].send_nowait(command)

    def commands(self, key: str) -> trio.MemoryReceiveChannel[Any]:
        return self._channel(key)[1]

    def release(self, key: str) -> None:
        self.gates[key].set()

    @contextmanager
    def track(self, key: str) -> Iterator[None]:
        """Record that a handler for ``key`` started, was cancelled, and finished."""
        self.started[key].set()
        try:
            yield
        except trio.Cancelled:
            self.cancelled[key].set()
            raise
        finally:
            self.finished[key].set()


def build_server(ctl: Controller, name: str = "lifecycle-test") -> McpServer:
    server = McpServer(name, "1.0.0")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    async def scripted(ctx: Context, key: str) -> str:
        """Run the commands the test sends for `key`: notify, progress, close, return."""
        with ctl.track(key):
            async for command in ctl.commands(key):
                verb = command[0]
                if verb == "notify":
                    await ctx.notify("notifications/message", {"level": "info", "data": command[1]})
                elif verb == "close":
                    ctx.close_sse_stream()
                elif verb == "return":
                    return str(command[1])
            return "channel closed"

    @server.tool()
    async def hold(key: str) -> str:
        """Wait until the test releases `key`."""
        with ctl.track(key):
            await ctl.gates[key].wait()
            return f"released {key}"

    @server.tool()
    async def progress(ctx: Context, steps: int = 3) -> str:
        """Report `steps` progress notifications, then return."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
        return f"done {steps}"

    @server.tool()
    async def chatter(ctx: Context, count: int, size: int = 100) -> str:
        """Publish `count` notifications of about `size` bytes as fast as possible."""
        for i in range(count):
            await ctx.notify("notifications/message", {"level": "debug", "data": f"{i}:" + "x" * size})
        return f"sent {count}"

    @server.tool()
    async def ask_name(ctx: Context) -> str:
        """Elicit a name from the user."""
        answer = await ctx.elicit(
            "What is your name?",
            {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        )
        if answer.get("action") != "accept":
            return f"declined: {answer.get('action')}"
        return f"Hello, {answer['content']['name']}!"

    return server


# -- JSON-RPC messages -------------------------------------------------------------------


def initialize(request_id: int | str = 0, version: str = LATEST, **capabilities: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": capabilities,
            "clientInfo": {"name": "lifecycle-tests", "version": "0"},
        },
    }


def request(request_id: int | str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def call_tool(
    request_id: int | str, name: str, meta: dict[str, Any] | None = None, **arguments: Any
) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    return request(request_id, "tools/call", params)


def is_response(message: dict[str, Any]) -> bool:
    return "id" in message and ("result" in message or "error" in message) and "method" not in message


# -- SSE ---------------------------------------------------------------------------------


@dataclass
class SseEvent:
    """One SSE block (fields up to a blank line); ``data`` is None if it had none."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: int | None = None
    comment: str | None = None

    @property
    def message(self) -> dict[str, Any] | None:
        """The JSON-RPC message carried, if any (priming events carry none)."""
        if not self.data:
            return None
        value: dict[str, Any] = json.loads(self.data)
        return value


class SseParser:
    """An incremental parser of an ``text/event-stream`` body (WHATWG HTML §9.2.6)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._current: dict[str, Any] = {}
        self._data: list[str] | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        out: list[SseEvent] = []
        while True:
            positions = [p for p in (self._buffer.find(b"\n"), self._buffer.find(b"\r")) if p != -1]
            if not positions:
                return out
            end = min(positions)
            if self._buffer[end : end + 2] == b"\r\n":
                line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            elif self._buffer[end : end + 1] == b"\r" and end + 1 == len(self._buffer):
                return out  # a CR at the end of the buffer may be half of a CRLF
            else:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            block = self._line(line.decode("utf-8"))
            if block is not None:
                out.append(block)

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._current and self._data is None:
                return None
            block = SseEvent(data="\n".join(self._data) if self._data is not None else None, **self._current)
            self._current = {}
            self._data = None
            return block
        if line.startswith(":"):
            self._current["comment"] = line[1:].strip()
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data = [*(self._data or []), value]
        elif name in ("id", "event"):
            self._current[name] = value
        elif name == "retry" and value.isdigit():
            self._current["retry"] = int(value)
        return None

    @property
    def pending(self) -> bool:
        """Whether a block has started but not been terminated by a blank line."""
        return bool(self._buffer) or bool(self._current) or self._data is not None


class HttpStream:
    """One HTTP/1.1 exchange on its own TCP connection, the response read with h11.

    h11 checks the framing: a chunked body that ends without its terminating 0-chunk
    raises instead of looking like a clean end.  Closing the socket is how a test
    client "vanishes".
    """

    def __init__(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        self.stream = stream
        self.conn = conn
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.sse = SseParser()
        self.body = b""
        #: The response ended with a proper end of message (for chunked: the 0-chunk).
        self.complete = False
        #: Every SSE block read so far, in order.
        self.seen: list[SseEvent] = []
        self._ready: list[SseEvent] = []

    @classmethod
    async def open(
        cls, port: int, method: str, headers: dict[str, str], body: bytes | None = None, path: str = "/mcp"
    ) -> HttpStream:
        conn = h11.Connection(h11.CLIENT)
        all_headers = {"host": f"127.0.0.1:{port}", **headers}
        if body is not None:
            all_headers["content-length"] = str(len(body))
        data = conn.send(h11.Request(method=method, target=path, headers=list(all_headers.items())))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            await stream.send_all(data)
        except BaseException:
            await stream.aclose()
            raise
        return cls(stream, conn)

    @property
    def eof(self) -> bool:
        return self.complete

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def _next(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                # b"" at EOF: h11 then raises if the message is not complete.
                self.conn.receive_data(await self.stream.receive_some(65536))
                continue
            return event

    async def read_head(self) -> int:
        if self.status is None:
            event = await self._next()
            assert isinstance(event, h11.Response), event
            self.status = event.status_code
            self.headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        return self.status

    async def next_block(self) -> SseEvent | None:
        """The next SSE block (event, comment or lone retry); None once the body ended."""
        await self.read_head()
        while not self._ready:
            if self.complete:
                return None
            event = await self._next()
            if isinstance(event, h11.Data):
                self.body += event.data
                self._ready.extend(self.sse.feed(bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
            else:
                raise AssertionError(f"unexpected h11 event {event!r}")
        block = self._ready.pop(0)
        self.seen.append(block)
        return block

    async def next_event(self) -> SseEvent:
        """The next block that carries a ``data`` field (priming events included)."""
        while True:
            block = await self.next_block()
            if block is None:
                raise EOFError("stream ended")
            if block.data is not None:
                return block

    async def next_message(self) -> tuple[SseEvent, dict[str, Any]]:
        """The next event carrying a JSON-RPC message."""
        while True:
            block = await self.next_event()
            message = block.message
            if message is not None:
                return block, message

    async def read_to_end(self) -> list[SseEvent]:
        """Every remaining block; raises if the body is not properly terminated."""
        out = []
        while (block := await self.next_block()) is not None:
            out.append(block)
        return out


def messages_of(blocks: list[SseEvent]) -> list[dict[str, Any]]:
    return [m for b in blocks if (m := b.message) is not None]


# -- an httpx MCP client -----------------------------------------------------------------


class Client:
    """A thin httpx client for raw MCP Streamable HTTP exchanges."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    def headers(
        self, session: str | None = None, version: str | None = LATEST, **extra: str
    ) -> dict[str, str]:
        headers = dict(POST_HEADERS)
        if session is not None:
            headers["mcp-session-id"] = session
        if version is not None:
            headers["mcp-protocol-version"] = version
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    async def post(self, body: Any, session: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", None) or self.headers(session)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post(self.url, content=content, headers=headers, **kwargs)

    async def open_session(self, version: str = LATEST, **capabilities: Any) -> str:
        response = await self.post(
            initialize(version=version, **capabilities), headers=self.headers(version=None)
        )
        assert response.status_code == 200, response.text
        session_id = response.headers["mcp-session-id"]
        answers = response_messages(response)
        assert answers
        assert answers[-1]["result"]["protocolVersion"] == version
        initialized = await self.post(notification("notifications/initialized"), session_id)
        assert initialized.status_code == 202
        return session_id

    async def delete(self, session: str) -> httpx.Response:
        return await self.http.delete(self.url, headers={"mcp-session-id": session})

    @asynccontextmanager
    async def stream(
        self, method: str, body: Any = None, session: str | None = None, **headers: str
    ) -> AsyncIterator[HttpStream]:
        """A streaming exchange on its own connection; leaving the block closes it."""
        all_headers = self.headers(session, **headers)
        if method == "GET":
            all_headers["accept"] = "text/event-stream"
            del all_headers["content-type"]
        content = None if body is None else json.dumps(body).encode()
        port = int(self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        reader = await HttpStream.open(port, method, all_headers, content)
        try:
            await reader.read_head()
            yield reader
        finally:
            await reader.aclose()


def response_messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages in a complete (JSON or SSE) response."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        value = response.json()
        return value if isinstance(value, list) else [value]
    assert content_type.startswith("text/event-stream"), content_type
    parser = SseParser()
    blocks = parser.feed(response.content)
    assert not parser.pending, "SSE body ended inside an event"
    return messages_of(blocks)


@asynccontextmanager
async def serving(server: McpServer, **config: Any) -> AsyncIterator[tuple[Any, Client]]:
    """``open_mcp_server`` on 127.0.0.1 port 0, plus an httpx client for it."""
    hypercorn_options = config.pop("hypercorn", {})
    peer_timeout = config.pop("peer_timeout", 10.0)
    transport = replace(TransportConfig(), **config)
    async with open_mcp_server(
        server,
        host="127.0.0.1",
        port=0,
        config=transport,
        peer_timeout=peer_timeout,
        hypercorn=hypercorn_options,
    ) as handle:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            yield handle, Client(http, handle.url)


# -- in-memory ASGI ----------------------------------------------------------------------


def http_scope(method: str, headers: dict[str, str], path: str = "/mcp") -> dict[str, Any]:
    """The ASGI scope of an HTTP/1.1 request to 127.0.0.1:8000 over loopback."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class AsgiCall:
    """One HTTP request to an ASGI app, in memory: no sockets, so MockClock works."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        method: str,
        headers: dict[str, str],
        body: bytes = b"",
        path: str = "/mcp",
    ) -> None:
        self.app = app
        self.scope = http_scope(method, headers, path)
        self._body = body
        self._body_sent = False
        self.gone = trio.Event()
        self.done = trio.Event()
        self.sent: list[dict[str, Any]] = []
        self._send_out, self._recv_out = trio.open_memory_channel[dict[str, Any]](math.inf)
        self._parser = SseParser()
        self._ready_blocks: list[SseEvent] = []
        self._body_ended = False
        self._stalled: trio.Event | None = None

    async def _receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if self._stalled is not None:
            # A client that stopped reading: the server's send blocks (full socket buffers).
            await self._stalled.wait()
        self.sent.append(message)
        self._send_out.send_nowait(message)

    def stall(self) -> None:
        """From now on, the app's sends block until :meth:`resume`."""
        self._stalled = trio.Event()

    def resume(self) -> None:
        if self._stalled is not None:
            self._stalled.set()
            self._stalled = None

    async def run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        finally:
            self.done.set()
            self._send_out.close()

    def disconnect(self) -> None:
        self.gone.set()

    async def start(self) -> tuple[int, dict[str, str]]:
        message = await self._recv_out.receive()
        assert message["type"] == "http.response.start", message
        headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        return message["status"], headers

    async def next_chunk(self) -> tuple[bytes, bool]:
        message = await self._recv_out.receive()
        assert message["type"] == "http.response.body", message
        return message.get("body", b""), bool(message.get("more_body", False))

    async def next_block(self) -> SseEvent | None:
        """The next SSE block of a streaming response; None at the end of the body."""
        while True:
            if self._ready_blocks:
                return self._ready_blocks.pop(0)
            if self._body_ended:
                return None
            chunk, more = await self.next_chunk()
            # The last body message may carry data too (ASGI allows it).
            self._body_ended = not more
            self._ready_blocks.extend(self._parser.feed(chunk))
            if not more and not self._ready_blocks:
                return None

    async def read_to_end(self) -> list[SseEvent]:
        """Every remaining SSE block of the response."""
        out = []
        while (block := await self.next_block()) is not None:
            out.append(block)
        return out

    async def body(self) -> bytes:
        chunks = []
        while True:
            chunk, more = await self.next_chunk()
            chunks.append(chunk)
            if not more:
                return b"".join(chunks)


class InMemoryClient:
    """Drives an :class:`McpHttpApp` through fake ASGI calls, inside a nursery."""

    def __init__(self, app: Any, nursery: trio.Nursery) -> None:
        self.app = app
        self.nursery = nursery

    def call(self, method: str, body: Any = None, session: str | None = None, **headers: str) -> AsgiCall:
        all_headers = dict(POST_HEADERS) if method == "POST" else {"accept": "text/event-stream"}
        if session is not None:
            all_headers["mcp-session-id"] = session
        all_headers.update({k.replace("_", "-"): v for k, v in headers.items()})
        raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        call = AsgiCall(self.app, method, all_headers, raw)
        self.nursery.start_soon(call.run)
        return call

    async def request(
        self, method: str, body: Any = None, session: str | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        call = self.call(method, body, session, **headers)
        status, response_headers = await call.start()
        content = await call.body()
        await call.done.wait()
        return status, response_headers, content

    async def open_session(self, version: str = LATEST, **capabilities: Any) -> str:
        status, headers, body = await self.request("POST", initialize(version=version, **capabilities))
        assert status == 200, body
        return headers["mcp-session-id"]


# -- raw HTTP/1.1 over trio sockets, with h11 ------------------------------------------


def raw_request(
    method: str,
    port: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    path: str = "/mcp",
    *,
    chunked: bool = False,
) -> bytes:
    """The bytes of one HTTP/1.1 request: Content-Length framing, or 100-byte chunks."""
    lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{port}"]
    all_headers = dict(headers or {})
    if chunked:
        all_headers["transfer-encoding"] = "chunked"
        framed = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 100]), body[i : i + 100]) for i in range(0, len(body), 100)
        )
        body = framed + b"0\r\n\r\n"
    elif body or method == "POST":
        all_headers.setdefault("content-length", str(len(body)))
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def send_raw(port: int, data: bytes) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(data)
    return stream


# -- HTTP/2 with prior knowledge (h2c), to reset single streams -------------------------


@dataclass
class H2Stream:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    ended: bool = False
    reset: bool = False

    @property
    def done(self) -> bool:
        return self.ended or self.reset

    @property
    def blocks(self) -> list[SseEvent]:
        return SseParser().feed(self.data)


class H2Client:
    """A minimal HTTP/2 client over one TCP connection (h2c, prior knowledge)."""

    def __init__(self, sock: trio.SocketStream, port: int) -> None:
        self.sock = sock
        self.port = port
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.streams: dict[int, H2Stream] = {}
        self.closed = False
        #: Connection-level events in arrival order: "goaway", "eof".
        self.timeline: list[str] = []

    @classmethod
    async def open(cls, port: int) -> H2Client:
        client = cls(await trio.open_tcp_stream("127.0.0.1", port), port)
        client.conn.initiate_connection()
        await client._flush()
        return client

    async def aclose(self) -> None:
        await self.sock.aclose()

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.sock.send_all(data)

    async def request(
        self, method: str, headers: dict[str, str], body: bytes | None = None, *, end: bool = True
    ) -> int:
        """Start a request; with ``end=False`` the body is sent but the stream left open."""
        stream_id = self.conn.get_next_available_stream_id()
        pseudo = [
            (":method", method),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{self.port}"),
            (":path", "/mcp"),
        ]
        self.conn.send_headers(stream_id, pseudo + list(headers.items()), end_stream=body is None and end)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.streams[stream_id] = H2Stream()
        await self._flush()
        return stream_id

    async def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
        await self._flush()

    async def _pump(self) -> None:
        data = await self.sock.receive_some(65536)
        if not data:
            self.closed = True
            self.timeline.append("eof")
            raise EOFError("connection closed")
        for event in self.conn.receive_data(data):
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and stream is not None:
                headers = {str(k): str(v) for k, v in event.headers}
                stream.status = int(headers.pop(":status"))
                stream.headers = headers
            elif isinstance(event, h2.events.DataReceived):
                if stream is not None:
                    stream.data += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and stream is not None:
                stream.ended = True
            elif isinstance(event, h2.events.StreamReset) and stream is not None:
                stream.reset = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.timeline.append("goaway")
        await self._flush()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._pump()


# -- serving an arbitrary ASGI app on Hypercorn, recording what it sent ----------------


@dataclass
class Recorded:
    """What an ASGI call sent, as seen at the server's edge."""

    tag: str | None
    statuses: list[int] = field(default_factory=list)
    body_ends: int = 0
    returned: bool = False


class Recorder:
    """ASGI middleware that records, per HTTP call, the statuses and final body sends."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.calls: list[Recorded] = []
        self._changed = trio.Event()

    def returned(self, prefix: str) -> list[Recorded]:
        return [c for c in self.calls if c.returned and c.tag is not None and c.tag.startswith(prefix)]

    async def wait_returned(self, prefix: str, count: int) -> list[Recorded]:
        """Until ``count`` calls tagged ``prefix...`` have returned (woken on each return)."""
        while len(done := self.returned(prefix)) < count:
            await self._changed.wait()
        return done

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        tag = headers.get(b"x-test-tag")
        record = Recorded(tag.decode() if tag is not None else None)
        self.calls.append(record)

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.statuses.append(int(message["status"]))
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record.body_ends += 1
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            record.returned = True
            self._changed.set()
            self._changed = trio.Event()


@asynccontextmanager
async def hypercorn_serving(
    asgi_app: Callable[..., Awaitable[None]],
    *mcp_apps: McpHttpApp,
    accept_loop: str = "hypercorn",
    **options: Any,
) -> AsyncIterator[int]:
    """Run ``mcp_apps`` and serve ``asgi_app`` (which wraps them) on Hypercorn; yields the port.

    ``accept_loop="hypercorn"``: Hypercorn's own trio worker, as ``hypercorn -k trio``
    runs an app.  ``accept_loop="serve"``: the accept loop and connection handling of
    ``serve()``/``open_mcp_server()`` (Hypercorn's protocol stack under our own loop),
    for any ASGI app.  Leaving the block drains every McpHttpApp before Hypercorn is
    stopped.
    """
    if accept_loop not in ("hypercorn", "serve"):
        raise ValueError(f"unknown accept loop {accept_loop!r}")
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 1.0
    config.accesslog = None
    for key, value in options.items():
        setattr(config, key, value)
    stop = trio.Event()

    async def drained() -> None:
        await stop.wait()
        for app in mcp_apps:
            await app.drain(grace_period=0)

    hypercorn_done = trio.Event()

    async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            if accept_loop == "serve":
                app = wrap_app(asgi_app, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
                await _serve._Worker(app, config, 10.0).run(drained, task_status)
            else:
                await hypercorn_serve(asgi_app, config, shutdown_trigger=drained, task_status=task_status)  # type: ignore[arg-type]
        finally:
            hypercorn_done.set()

    async with trio.open_nursery() as nursery:
        for app in mcp_apps:
            await nursery.start(app.run)
        binds: list[str] = await nursery.start(run_hypercorn)
        try:
            yield int(binds[0].rsplit(":", 1)[1])
        finally:
            stop.set()
            await hypercorn_done.wait()
            nursery.cancel_scope.cancel()


async def wait_idle(app: McpHttpApp) -> None:
    """Until no HTTP call is being served by ``app`` (no polling: the app's own event)."""
    while app.statistics()["http_calls_in_flight"]:
        await app._calls.wait_idle()


@asynccontextmanager
async def child_server(argv: list[str], what: str, env: dict[str, str] | None = None) -> AsyncIterator[str]:
    """A server in a child process that prints its port (chosen by it: 0) on stdout once
    it listens; yields its MCP URL, and ends the process on the way out."""
    process = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(64)
                assert chunk, f"the {what} exited before it listened"
                line += chunk
        yield f"http://127.0.0.1:{int(line)}/mcp"
    finally:
        process.terminate()
        with trio.move_on_after(10):
            await process.wait()
        process.kill()
        await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
