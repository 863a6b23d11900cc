"""A seeded black-box fuzzer against the real server (Hypercorn, HTTP/1.1 and h2c).

A few hundred random and mutated requests per protocol: JSON-RPC bodies of both eras,
batches, ids of every JSON type, odd and oversized headers, wrong content types, known,
unknown and malformed session ids, ``Last-Event-ID`` junk, every method, random paths,
``Host``/``Origin`` junk.  Every answer must be a well-formed HTTP response with an
expected status (2xx or 4xx; never 499 to a live client, never 5xx), every 4xx body a
JSON-RPC error, every JSON or SSE body strict JSON (RFC 8259: no NaN), nothing logged
at ERROR; afterwards the server still works and its statistics are back to baseline.

The seed is fixed (``TRIO_MCP_FUZZ_SEED`` overrides it) and printed with every failure;
all problems of a run are collected and reported together.
"""

from __future__ import annotations

import base64
import json
import os
import random
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
from conftest import LogWatch
from helpers import SseParser, wait_idle

from trio_mcp_http import Context, McpServer, ToolError, TransportConfig, open_mcp_server

SEED = int(os.environ.get("TRIO_MCP_FUZZ_SEED", "20260728"))
REQUESTS_PER_PROTOCOL = 400
#: Bound on any one exchange, and on how long an open SSE stream is read when idle.
REQUEST_TIMEOUT = 10.0
STREAM_IDLE = 0.25
MAX_BODY = 64 * 1024

MODERN = "2026-07-28"
LEGACY = ("2025-03-26", "2025-06-18", "2025-11-25")
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


def fuzz_server() -> McpServer:
    server = McpServer("fuzz-target", "1.0.0")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    async def add(a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)

    @server.tool()
    async def progress(ctx: Context, steps: int = 2) -> str:
        """Report up to five progress notifications."""
        steps = max(0, min(steps, 5))
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps)
            await ctx.log("info", f"step {step}")
        return f"done {steps}"

    @server.tool()
    async def fail() -> str:
        """Always a tool error."""
        raise ToolError("this tool always fails")

    @server.tool(
        input_schema={
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "count": {"type": "integer", "x-mcp-header": "Count"},
            },
        }
    )
    async def located(region: Any = None, count: Any = None) -> str:
        """Arguments mirrored in Mcp-Param-* headers."""
        return f"{region!s:.40} {count!s:.40}"

    @server.tool()
    async def ask_name(ctx: Context) -> str:
        """Elicit a name."""
        answer = await ctx.elicit(
            "Name?", {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        )
        return str(answer.get("action"))

    @server.resource("fuzz://readme", mime_type="text/plain")
    async def readme() -> str:
        """A resource."""
        return "readme"

    @server.prompt()
    async def greet(name: str) -> str:
        """A prompt."""
        return f"Hello {name}"

    return server


# -- request generation --------------------------------------------------------------------


@dataclass
class Sent:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    note: str
    #: The single JSON-RPC message the body carries, if it is one object.
    message: dict[str, Any] | None = None

    def describe(self) -> str:
        body = self.body if self.body is None or len(self.body) < 300 else self.body[:300] + b"..."
        headers = [(k, v if len(v) < 120 else v[:120] + b"...") for k, v in self.headers]
        return f"{self.note}: {self.method} {self.path} headers={headers!r} body={body!r}"


NAN = float("nan")
IDS: list[Any] = [
    0,
    1,
    -1,
    7,
    2**53 + 1,
    2**63,
    2**80,
    "1",
    "",
    "id-\u00e9",
    "a" * 300,
    1.0,
    1.5,
    True,
    False,
    None,
    [],
    {},
]
METHODS = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "no/such/method",
    "",
]
TOOLS = ["echo", "add", "progress", "fail", "located", "ask_name", "nope", ""]
JUNK_TEXT = ["", " ", "x", "\u00e9", "\u2603", "\x00", "\\", '"', "a" * 2000, "\U0001f600", "null"]


class Fuzzer:
    """Draws requests from one ``random.Random``."""

    def __init__(self, rng: random.Random, sessions: dict[str, str], port: int) -> None:
        self.rng = rng
        self.sessions = sessions  # id -> protocol version
        self.port = port
        self.event_ids: list[str] = ["0/1", "1/1", "1/2"]

    # -- JSON values ------------------------------------------------------------------

    def scalar(self) -> Any:
        r = self.rng
        return r.choice(
            [
                None,
                True,
                False,
                r.randint(-(2**70), 2**70),
                r.randint(-5, 5),
                r.uniform(-1e6, 1e6),
                10**400,
                NAN,
                float("inf"),
                r.choice(JUNK_TEXT),
                "".join(chr(r.randint(1, 0x2FF)) for _ in range(r.randint(0, 12))),
            ]
        )

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.random()
        if depth > 3 or kind < 0.6:
            return self.scalar()
        if kind < 0.8:
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        return {self.key(): self.value(depth + 1) for _ in range(r.randint(0, 4))}

    def key(self) -> str:
        return self.rng.choice(["a", "name", "uri", "_meta", "arguments", "id", "", "\u00e9", "x" * 50])

    def request_id(self) -> Any:
        return self.rng.choice(IDS)

    # -- messages ---------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        r = self.rng
        meta: dict[str, Any] = {
            META_VERSION: r.choice([MODERN, MODERN, MODERN, "2025-11-25", "1999-01-01", "", 2026]),
            META_CAPABILITIES: r.choice([{}, {}, {"elicitation": {}}, None, [], "x"]),
        }
        if r.random() < 0.2:
            del meta[r.choice(list(meta))]
        if r.random() < 0.5:
            meta["progressToken"] = r.choice([1, "tok", 2**80, NAN, float("-inf"), None, [1], {"a": 1}, True])
        if r.random() < 0.2:
            meta["io.modelcontextprotocol/logLevel"] = r.choice(["debug", "info", "nope", 3, None])
        if r.random() < 0.1:
            meta["io.modelcontextprotocol/clientInfo"] = self.value()
        return meta

    def params(self, method: str, modern: bool) -> dict[str, Any]:
        r = self.rng
        params: dict[str, Any] = {}
        if method == "initialize":
            params = {
                "protocolVersion": r.choice([*LEGACY, MODERN, "2024-11-05", "junk", 5, None]),
                "capabilities": r.choice([{}, {"elicitation": {}}, {"sampling": {}}, None, [], "x"]),
                "clientInfo": r.choice([{"name": "fuzz", "version": "0"}, None, "x", self.value()]),
            }
        elif method == "tools/call":
            tool = r.choice([*TOOLS, "progress", "progress", "located", "located"])
            arguments: Any = {
                "echo": {"text": r.choice(["hi", *JUNK_TEXT, 5, None])},
                "add": {"a": r.choice([1, 10**400, -(2**70), "1", 1.5, None]), "b": r.randint(-3, 3)},
                "progress": {"steps": r.choice([0, 1, 2, 3, 10**12, -1, "2", None])},
                "located": {
                    "region": r.choice(["eu", "\u00e9t\u00e9", "", 5, None]),
                    "count": r.choice(
                        [1, 0, -3, 10**400, 10**400, -(10**400), 2**80, 1.5, "1", True, NAN, None]
                    ),
                },
            }.get(tool, {})
            if r.random() < 0.15:
                arguments = self.value()
            params = {"name": tool, "arguments": arguments}
        elif method in ("resources/read", "resources/subscribe"):
            params = {"uri": r.choice(["fuzz://readme", "fuzz://nope", "", 5, None, "\u00e9://x"])}
        elif method == "prompts/get":
            params = {
                "name": r.choice(["greet", "nope", 5]),
                "arguments": r.choice([{"name": "x"}, {}, None, []]),
            }
        elif method == "logging/setLevel":
            params = {"level": r.choice(["debug", "error", "emergency", "loud", 5, None])}
        elif method == "subscriptions/listen":
            params = {"notifications": r.choice([{"toolsListChanged": True}, {}, None, "x"])}
        elif method == "notifications/cancelled":
            params = {"requestId": self.request_id()}
        elif method in ("tasks/get", "tasks/cancel"):
            params = {"taskId": r.choice(["t", "", 5, None])}
        elif method == "completion/complete":
            params = {
                "ref": r.choice([{"type": "ref/prompt", "name": "greet"}, None]),
                "argument": {"name": "name"},
            }
        if modern or r.random() < 0.2:
            params["_meta"] = self.meta() if r.random() < 0.9 else self.value()
        if r.random() < 0.1:
            params[self.key()] = self.value()
        return params

    def message(self, modern: bool) -> dict[str, Any]:
        r = self.rng
        method = r.choice([*METHODS, *["tools/call"] * 8])
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if not method.startswith("notifications/") or r.random() < 0.1:
            message["id"] = (
                self.request_id()
                if r.random() < 0.2
                else r.choice([r.randint(1, 10**6), f"s{r.randint(1, 10**6)}"])
            )
        if r.random() < 0.9:
            message["params"] = self.params(method, modern)
        return message

    def response_message(self) -> dict[str, Any]:
        r = self.rng
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.request_id()}
        if r.random() < 0.5:
            message["result"] = self.value()
        else:
            message["error"] = r.choice(
                [{"code": -1, "message": "no"}, {"code": "x", "message": 1}, None, self.value()]
            )
        return message

    def mutate(self, message: dict[str, Any]) -> Any:
        r = self.rng
        message = dict(message)
        for _ in range(r.randint(1, 3)):
            action = r.random()
            key = r.choice(["jsonrpc", "id", "method", "params", "result", "error", self.key()])
            if action < 0.4:
                message.pop(key, None)
            else:
                message[key] = self.value()
        return message

    def body(self, modern: bool) -> tuple[bytes, dict[str, Any] | None, str]:
        """The body bytes, the single message it carries (if any), and a note."""
        r = self.rng
        kind = r.random()
        if kind < 0.6:
            message = self.message(modern)
            return json.dumps(message).encode(), message, "message"
        if kind < 0.7:
            message = self.mutate(self.message(modern))
            return json.dumps(message).encode(), message if isinstance(message, dict) else None, "mutated"
        if kind < 0.76:
            batch = [
                r.choice([self.message(False), self.response_message(), self.value()])
                for _ in range(r.randint(0, 4))
            ]
            return json.dumps(batch).encode(), None, "batch"
        if kind < 0.8:
            message = self.response_message()
            return json.dumps(message).encode(), None, "response"
        if kind < 0.84:
            return json.dumps(self.value()).encode(), None, "json value"
        if kind < 0.88:
            data = bytes(r.randint(0, 255) for _ in range(r.randint(0, 200)))
            return data, None, "random bytes"
        if kind < 0.9:
            good = json.dumps(self.message(modern)).encode()
            cut = r.randint(0, len(good))
            flipped = bytearray(good)
            if flipped and r.random() < 0.5:
                flipped[r.randrange(len(flipped))] = r.randint(0, 255)
            return bytes(flipped[:cut] if r.random() < 0.5 else flipped), None, "truncated/flipped"
        if kind < 0.93:
            return b"", None, "empty"
        if kind < 0.96:
            padding = b" " * r.choice([MAX_BODY + 1, MAX_BODY * 2])
            return json.dumps(self.message(modern)).encode() + padding, None, "oversized"
        nested = r.randint(100, 5000)
        return b"[" * nested + b"]" * nested, None, "deeply nested"

    # -- headers ----------------------------------------------------------------------

    def header_value(self) -> bytes:
        r = self.rng
        choice = r.random()
        if choice < 0.5:
            alphabet = [*range(0x21, 0x7F), *range(0x80, 0x100)]
            value = bytes(r.choice(alphabet) for _ in range(r.randint(0, 40)))
        elif choice < 0.7:
            value = r.choice([b"1", b"0", b"true", b"null", b"\xb2/1", b"\xc3\xa9", b"a b\tc"])
        elif choice < 0.85:
            value = b"x" * r.randint(1000, 4000)
        else:
            value = (
                b"=?base64?" + r.choice([b"dG9vbHMvY2FsbA==", b"////", b"AAA", b"w6k=", b"", b"#"]) + b"?="
            )
        return value.strip(b" \t")

    def session_header(self) -> bytes:
        r = self.rng
        choice = r.random()
        if choice < 0.6 and self.sessions:
            return r.choice(list(self.sessions)).encode()
        if choice < 0.75:
            return b"Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4"  # visible ASCII, never issued
        return r.choice([b"", b"\xff\xfe", b"a\tb", b"../../etc", b"\x7f", b"x" * 5000])

    def headers(self, method: str, modern: bool, message: dict[str, Any] | None) -> list[tuple[bytes, bytes]]:
        """The headers a correct client would send, then a few of them spoiled."""
        r = self.rng
        headers: dict[str, bytes] = {}
        is_initialize = message is not None and message.get("method") == "initialize"
        session = r.choice(list(self.sessions)) if self.sessions else None
        headers["accept"] = (
            b"text/event-stream" if method == "GET" else b"application/json, text/event-stream"
        )
        if method in ("POST", "PUT", "PATCH"):
            headers["content-type"] = b"application/json"
        if modern:
            headers["mcp-protocol-version"] = MODERN.encode()
        elif session is not None and not is_initialize:
            headers["mcp-session-id"] = session.encode()
            headers["mcp-protocol-version"] = self.sessions[session].encode()
        if message is not None and modern and isinstance(message.get("method"), str):
            method_name = message["method"]
            # What a client can put in a header: a method that is not visible ASCII
            # would go base64-encoded (SEP-2243).
            if method_name.isascii() and method_name.isprintable():
                headers["mcp-method"] = method_name.encode()
            else:
                headers["mcp-method"] = b"=?base64?" + base64.b64encode(method_name.encode()) + b"?="
            params = message.get("params")
            name = params.get("name", params.get("uri")) if isinstance(params, dict) else None
            if isinstance(name, str) and name.isascii() and name.isprintable():
                headers["mcp-name"] = name.encode()
            arguments = params.get("arguments") if isinstance(params, dict) else None
            if isinstance(arguments, dict):
                for key in ("region", "count"):
                    if key in arguments:
                        value = json.dumps(arguments[key]).strip('"').encode("ascii", "replace")
                        headers[f"mcp-param-{key}"] = value
        if method == "GET" and r.random() < 0.5:
            headers["last-event-id"] = r.choice(self.event_ids).encode()
        extra: list[tuple[bytes, bytes]] = []
        for _ in range(r.choice([0, 0, 0, 1, 1, 2, 3])):
            self.spoil(headers, extra, method)
        listed = [(k.encode(), v) for k, v in headers.items()] + extra
        r.shuffle(listed)
        return listed

    def spoil(self, headers: dict[str, bytes], extra: list[tuple[bytes, bytes]], method: str) -> None:
        r = self.rng
        what = r.choice(
            [
                "accept",
                "content-type",
                "version",
                "session",
                "mcp-method",
                "mcp-name",
                "mcp-param",
                "last-event-id",
                "origin",
                "host",
                "extra",
                "repeat",
                "drop",
            ]
        )
        if what == "accept":
            headers["accept"] = r.choice(
                [
                    b"application/json",
                    b"text/event-stream",
                    b"*/*",
                    b"text/html",
                    b"application/*;q=0.5, text/*",
                    b"APPLICATION/JSON, TEXT/EVENT-STREAM",
                    self.header_value(),
                ]
            )
        elif what == "content-type":
            headers["content-type"] = r.choice(
                [
                    b"APPLICATION/JSON; charset=utf-8",
                    b"text/plain",
                    b"application/json-seq",
                    b"",
                    b"\xff",
                    b"application/json; charset=latin-1",
                ]
            )
        elif what == "version":
            headers["mcp-protocol-version"] = r.choice(
                [
                    MODERN.encode(),
                    *(v.encode() for v in LEGACY),
                    b"2024-11-05",
                    b"junk",
                    b"=?base64?MjAyNi0wNy0yOA==?=",
                    b"",
                ]
            )
        elif what == "session":
            headers["mcp-session-id"] = r.choice(
                [
                    b"Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4",  # visible ASCII, never issued
                    b"",
                    b"\xff\xfe",
                    b"a\tb",
                    b"../../etc",
                    b"\x7f",
                    b"x" * 5000,
                    *(s.encode() for s in self.sessions),
                ]
            )
        elif what in ("mcp-method", "mcp-name"):
            headers[what] = self.header_value()
        elif what == "mcp-param":
            headers[r.choice(["mcp-param-count", "mcp-param-region", "mcp-param-x"])] = self.header_value()
        elif what == "last-event-id":
            headers["last-event-id"] = r.choice(
                [
                    b"\xb2/1",
                    b"1/" + b"9" * 5000,
                    "\u0661/1".encode(),
                    b"/",
                    b"-1/-1",
                    b"0/0",
                    b"x",
                    b"99/1",
                    b"1/99999999999999999999",
                ]
            )
        elif what == "origin":
            headers["origin"] = r.choice(
                [
                    f"http://127.0.0.1:{self.port}".encode(),
                    b"http://evil.example",
                    b"http://[::1",
                    b"http://[abc]",
                    b"null",
                    b"http://\xc3\xa9",
                    b"",
                    b"http://[::1]:99999",
                ]
            )
        elif what == "host":
            headers["host"] = r.choice(
                [b"evil.example", b"[::1", b"127.0.0.1:1", b"localhost", b"\xff", b"[::1]:x"]
            )
        elif what == "extra":
            for _ in range(r.choice([1, 3, 30])):
                name = "x-" + "".join(
                    r.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(r.randint(1, 20))
                )
                extra.append((name.encode(), self.header_value()))
        elif what == "repeat" and headers:
            name = r.choice(sorted(headers))
            if name != "host":
                extra.append((name.encode(), r.choice([headers[name], self.header_value()])))
        elif what == "drop" and headers:
            del headers[r.choice(sorted(headers))]

    def path(self) -> str:
        r = self.rng
        if r.random() < 0.9:
            return "/mcp"
        return r.choice(
            ["/", "/mcp/", "/MCP", "/mcp?x=1", "/%00", "/mcp%2F", "/mcp/../mcp", "/" + "a" * 3000]
        )

    def request(self) -> Sent:
        r = self.rng
        method = r.choice(["POST"] * 30 + ["GET"] * 3 + ["DELETE"] + ["PUT", "PATCH", "OPTIONS", "HEAD"])
        modern = method == "POST" and r.random() < 0.4
        body: bytes | None = None
        message: dict[str, Any] | None = None
        note = "no body"
        if method in ("POST", "PUT", "PATCH") or r.random() < 0.05:
            body, message, note = self.body(modern)
        headers = self.headers(method, modern, message)
        return Sent(method, self.path(), headers, body, ("modern " if modern else "") + note, message)


# -- exchanges and their checks -------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    complete: bool


def strict_json(data: bytes | str) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON (RFC 8259)")

    return json.loads(data, parse_constant=refuse)


async def exchange(http: httpx.AsyncClient, base: str, sent: Sent) -> Answer:
    request = http.build_request(sent.method, base + sent.path, headers=sent.headers, content=sent.body)
    with trio.fail_after(REQUEST_TIMEOUT):
        response = await http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            complete = False
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                # Streams may stay open (GET, listen, elicitation): read while data comes.
                iterator = response.aiter_raw().__aiter__()
                while True:
                    with trio.move_on_after(STREAM_IDLE):
                        try:
                            chunks.append(await iterator.__anext__())
                        except StopAsyncIteration:
                            complete = True
                            break
                        continue
                    break
            else:
                chunks.append(await response.aread())
                complete = True
        finally:
            await response.aclose()
    return Answer(response.status_code, response.headers, b"".join(chunks), complete)


def check_message(message: Any, problems: list[str], where: str) -> None:
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        problems.append(f"{where}: not a JSON-RPC 2.0 message: {message!r:.200}")
        return
    error = message.get("error")
    if error is not None and (not isinstance(error, dict) or type(error.get("code")) is not int):
        problems.append(f"{where}: malformed error object {error!r:.200}")


def check_answer(sent: Sent, answer: Answer, request_message: dict[str, Any] | None) -> list[str]:
    """What is wrong with ``answer``: an empty list when it is as expected."""
    problems: list[str] = []
    status = answer.status
    if status == 499:
        problems.append("499 sent to a client that was still reading")
    if status >= 500:
        problems.append(f"{status} server error: {answer.body[:300]!r}")
    if not (200 <= status < 300 or 400 <= status < 500) and status < 500:
        problems.append(f"unexpected status {status}")
    if sent.method == "HEAD":
        return problems
    content_type = answer.headers.get("content-type", "")
    if status in (202, 204) and answer.body:
        problems.append(f"{status} with a body: {answer.body[:200]!r}")
    if status >= 400 and answer.body:
        if not content_type.startswith("application/json"):
            problems.append(f"{status} error body is {content_type!r}: {answer.body[:200]!r}")
        try:
            error = strict_json(answer.body)
        except ValueError as exc:
            problems.append(f"{status} error body is not JSON ({exc}): {answer.body[:200]!r}")
        else:
            check_message(error, problems, f"{status} error body")
            if not (isinstance(error, dict) and isinstance(error.get("error"), dict)):
                problems.append(f"{status} body is not a JSON-RPC error: {error!r:.200}")
            else:
                check_id(error, request_message, problems)
    elif content_type.startswith("application/json") and answer.body:
        try:
            value = strict_json(answer.body)
        except ValueError as exc:
            problems.append(f"{status} JSON body is not JSON ({exc}): {answer.body[:200]!r}")
        else:
            for message in value if isinstance(value, list) else [value]:
                check_message(message, problems, f"{status} JSON body")
            if isinstance(value, dict):
                check_id(value, request_message, problems)
    elif content_type.startswith("text/event-stream"):
        parser = SseParser()
        try:
            blocks = parser.feed(answer.body)
        except UnicodeDecodeError as exc:
            return [*problems, f"SSE body is not UTF-8: {exc}"]
        if answer.complete and parser.pending:
            problems.append("SSE body ended inside an event")
        for block in blocks:
            if not block.data:
                continue
            try:
                message = strict_json(block.data)
            except ValueError as exc:
                problems.append(f"SSE event data is not JSON ({exc}): {block.data[:200]!r}")
                continue
            check_message(message, problems, "SSE event")
    return problems


def check_id(answer: dict[str, Any], request_message: dict[str, Any] | None, problems: list[str]) -> None:
    """An answer naming an id names the request's id, with its JSON type."""
    got = answer.get("id")
    if got is None or request_message is None:
        return
    sent_id = request_message.get("id")
    if type(got) is not type(sent_id) or got != sent_id:
        problems.append(f"answer id {got!r} is not the request id {sent_id!r}")


# -- the test ------------------------------------------------------------------------------


async def fuzz_protocol(
    http: httpx.AsyncClient,
    base: str,
    port: int,
    rng: random.Random,
    sessions: dict[str, str],
    protocol: str,
    failures: list[str],
) -> None:
    """Send the requests; what is wrong goes to ``failures`` as it is found."""
    fuzzer = Fuzzer(rng, sessions, port)
    seen: set[str] = set()
    recent: list[tuple[int, str]] = []
    for number in range(REQUESTS_PER_PROTOCOL):
        sent = fuzzer.request()
        recent = [*recent[-2:], (number, sent.describe())]
        try:
            answer = await exchange(http, base, sent)
        except trio.Cancelled:
            # The server went down under this request or one just before: say which.
            failures.extend(
                f"[seed {SEED}, {protocol} #{earlier}] sent just before the server stopped: {what}"
                for earlier, what in recent
            )
            raise
        except trio.TooSlowError:
            problems = [f"no complete answer within {REQUEST_TIMEOUT} s"]
        except httpx.LocalProtocolError:
            continue  # the client refused to send it: nothing reached the server
        except httpx.HTTPError as exc:
            problems = [f"transport failure {type(exc).__name__}: {exc}"]
        else:
            problems = check_answer(sent, answer, sent.message)
            session = answer.headers.get("mcp-session-id")
            for block in SseParser().feed(answer.body) if not problems else []:
                if block.id and len(fuzzer.event_ids) < 50:
                    fuzzer.event_ids.append(block.id)
                result = (block.message or {}).get("result")
                if session is not None and isinstance(result, dict) and "protocolVersion" in result:
                    sessions[session] = result["protocolVersion"]
        for problem in problems:
            signature = problem[:60]
            if signature not in seen:
                seen.add(signature)
                failures.append(
                    f"[seed {SEED}, {protocol} #{number}] {problem}\n    request: {sent.describe()}"
                )


async def open_session(http: httpx.AsyncClient, url: str, version: str) -> str:
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "f", "version": "0"},
        },
    }
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with trio.fail_after(REQUEST_TIMEOUT):
        response = await http.post(url, json=body, headers=headers)
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        response = await http.post(
            url, json=note, headers={**headers, "mcp-session-id": session, "mcp-protocol-version": version}
        )
        assert response.status_code == 202, response.text
    return session


async def still_serves(http: httpx.AsyncClient, url: str) -> str:
    session = await open_session(http, url, "2025-11-25")
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-session-id": session,
        "mcp-protocol-version": "2025-11-25",
    }
    with trio.fail_after(REQUEST_TIMEOUT):
        response = await http.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers
        )
    assert response.status_code == 200, response.text
    messages = [strict_json(b.data) for b in SseParser().feed(response.content) if b.data]
    assert messages[-1]["id"] == 1
    assert {t["name"] for t in messages[-1]["result"]["tools"]} >= {"echo", "add", "located"}
    return session


@pytest.mark.parametrize("run", [0, 1, 2])
@pytest.mark.parametrize("protocol", ["http/1.1", "h2c"])
async def test_fuzzed_requests_get_well_formed_answers(protocol: str, run: int, logs: LogWatch) -> None:
    label = f"{protocol} run {run}"
    rng = random.Random(f"{SEED}-{protocol}-{run}")
    config = TransportConfig(max_body_size=MAX_BODY, keepalive_interval=None)
    h2 = protocol == "h2c"
    failures: list[str] = []
    try:
        with trio.fail_after(50):
            async with open_mcp_server(fuzz_server(), host="127.0.0.1", port=0, config=config) as handle:
                app = handle.app
                baseline = app.statistics()
                async with httpx.AsyncClient(http1=not h2, http2=h2, timeout=REQUEST_TIMEOUT) as http:
                    sessions = {await open_session(http, handle.url, v): v for v in LEGACY}
                    await fuzz_protocol(http, handle.binds[0], handle.port, rng, sessions, label, failures)
                    with trio.fail_after(REQUEST_TIMEOUT):
                        probe = await http.post(
                            handle.url, content=b"{}", headers={"content-type": "application/json"}
                        )
                    assert probe.http_version == ("HTTP/2" if h2 else "HTTP/1.1"), probe.http_version
                # The fuzzing client is gone, and with it every stream it left open (httpx
                # does not reset an HTTP/2 stream whose response it stops reading).
                async with httpx.AsyncClient(http1=not h2, http2=h2, timeout=REQUEST_TIMEOUT) as http:
                    # The server still answers a normal client.
                    sessions[await still_serves(http, handle.url)] = LEGACY[-1]
                    # Sessions end with DELETE; then nothing may be left in flight.
                    for session in sessions:
                        with trio.fail_after(REQUEST_TIMEOUT):
                            await http.delete(handle.url, headers={"mcp-session-id": session})
                with trio.move_on_after(REQUEST_TIMEOUT):
                    await wait_idle(app)
                    await app._gate.handlers.wait_idle()
                stats = app.statistics()
                if stats != baseline:
                    failures.append(f"[seed {SEED}, {label}] statistics {stats} != baseline {baseline}")
    except Exception as crash:
        # The server itself failed (open_mcp_server re-raises what ended it).
        failures.append(f"[seed {SEED}, {label}] the run ended with {crash!r}")
    errors = logs.errors()
    if errors:
        failures.append(f"[seed {SEED}, {label}] logged errors:\n    " + "\n    ".join(errors[:10]))
    assert not failures, f"{len(failures)} distinct problems:\n" + "\n".join(failures)


@pytest.mark.parametrize("meta", ["x", 5, True, [1], 2**80])
async def test_a_non_object_meta_is_answered_and_the_server_keeps_serving(meta: Any, logs: LogWatch) -> None:
    """Found by the fuzzer: a session-era request whose ``params._meta`` is not an object.
    It gets an answer (a result, or an error naming its id) and nothing else happens."""
    failures: list[str] = []
    try:
        with trio.fail_after(20):
            async with (
                open_mcp_server(fuzz_server(), host="127.0.0.1", port=0) as handle,
                httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as http,
            ):
                session = await open_session(http, handle.url, "2025-11-25")
                headers = {
                    "accept": "application/json, text/event-stream",
                    "content-type": "application/json",
                    "mcp-session-id": session,
                    "mcp-protocol-version": "2025-11-25",
                }
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
                response = await http.post(handle.url, json=body, headers=headers)
                messages = [strict_json(b.data) for b in SseParser().feed(response.content) if b.data]
                if response.status_code != 200 or not messages or messages[-1].get("id") != 1:
                    failures.append(f"answer {response.status_code}: {response.text[:200]!r}")
                await still_serves(http, handle.url)
    except Exception as crash:
        failures.append(f"the server stopped: {crash!r}")
    failures += logs.errors()
    assert not failures, failures
