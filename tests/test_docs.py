"""The documentation runs: every code block of README.md and docs/*.md is checked.

Conventions (HTML comments on the lines right above a fence, invisible when rendered):

* a ``python`` block is a complete program: it is written to a file and run with this
  interpreter, and must exit with status 0 within ``TIMEOUT`` seconds;
* ``<!-- continues -->``: the block continues the previous ``python`` block of the page;
  the previous block(s) and this one run as one program;
* ``<!-- serves: {json} -->``: the block defines ``server`` (an ``McpServer``; or ``mcp``,
  a server written for the official SDK or FastMCP) and only serves it under
  ``if __name__ == "__main__":``.  It is imported (``runpy``, with a
  run name other than ``"__main__"``), served on a free loopback port, and the JSON says
  what to ask it (``"call"`` a tool with ``"arguments"``, or ``"read"`` a resource), which
  text to ``"expect"``, and the ``"answers"`` a client gives when the handler asks for
  input.  The round trip is made in both protocol eras: a 2025-11-25 session and a
  stateless 2026-07-28 request.  ``"via": "app"`` serves the module's ``app`` (an
  ``McpHttpApp``) on plain Hypercorn instead; a module-level ``config`` (a
  ``TransportConfig``) is used when present;
* ``http`` blocks come in pairs, a request then its response: the request is sent, in
  order, to the page's last ``serves`` server, and the response must match (status,
  the headers shown, the JSON body; a ``"..."`` string matches any value, and in a
  request stands for the value of the same key in the previous response);
* ``json`` blocks must parse; ``sh`` and ``text`` blocks are not run.

Everything listens on and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import runpy
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from trio_mcp_http import McpHttpApp, TransportConfig, open_mcp_server
from trio_mcp_http.server.adapt import serving as serving_kind

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "sh", "text", "http", "json"}
TIMEOUT = 20.0
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
CAPABILITIES: dict[str, Any] = {"elicitation": {}}
CLIENT_INFO = {"name": "docs-test", "version": "0"}

#: The examples talk to 127.0.0.1 only: no proxy may get in between.
LOCAL_ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([^\s`]*)")
_MARKER = re.compile(r"^<!--\s*(continues|serves)\s*(?::\s*(.*?))?\s*-->\s*$")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)
    previous: Block | None = None  # the page's previous python block

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def program(self) -> str:
        """The block with the blocks it continues, as one module."""
        if "continues" not in self.markers:
            return self.text
        assert self.previous is not None, f"{self.name}: continues, but no python block precedes it"
        return self.previous.program() + "\n\n" + self.text


def read_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    previous_python: Block | None = None
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, language = opening.groups()
        markers: dict[str, str] = {}
        j = i - 1
        while j >= 0 and (marker := _MARKER.match(lines[j])):
            markers[marker.group(1)] = marker.group(2) or ""
            j -= 1
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        assert end < len(lines), f"{page.name}:{i + 1}: unclosed fence"
        indent = len(lines[i]) - len(lines[i].lstrip())
        text = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        block = Block(page, i + 1, language, text, markers, previous_python)
        blocks.append(block)
        if language == "python":
            previous_python = block
        i = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def _select(language: str, *, serves: bool | None = None) -> list[Any]:
    chosen = []
    for block in ALL_BLOCKS:
        if block.language != language:
            continue
        if serves is not None and ("serves" in block.markers) != serves:
            continue
        chosen.append(pytest.param(block, id=block.name))
    return chosen


# -- the pages themselves ---------------------------------------------------------------


def test_every_fence_names_a_known_language() -> None:
    unnamed = [f"{b.name} {b.language!r}" for b in ALL_BLOCKS if b.language not in LANGUAGES]
    assert unnamed == []


def test_markers_only_mark_python_blocks() -> None:
    misplaced = [b.name for b in ALL_BLOCKS if b.markers and b.language != "python"]
    assert misplaced == []


@pytest.mark.parametrize("block", _select("json"))
def test_json_block_parses(block: Block) -> None:
    json.loads(block.text)


# -- python programs ---------------------------------------------------------------------


@pytest.mark.parametrize("block", _select("python", serves=False))
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    program = tmp_path / "example.py"
    program.write_text(block.program(), encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, str(program)],
            cwd=tmp_path,
            env=LOCAL_ENV,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.name} did not finish within {TIMEOUT} s\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"


# -- servers: imported, served, and asked something in both eras -------------------------


def load_example(block: Block, directory: Path) -> dict[str, Any]:
    module = directory / f"docs_example_{block.line}.py"
    module.write_text(block.program(), encoding="utf-8")
    namespace = runpy.run_path(str(module), run_name="docs_example")
    if "server" not in namespace and "mcp" in namespace:
        namespace["server"] = namespace["mcp"]  # an official SDK or FastMCP server
    assert namespace.get("server") is not None, f"{block.name} defines no `server` (or `mcp`)"
    serving_kind(namespace["server"])  # one that can be served
    return namespace


@asynccontextmanager
async def serving(namespace: dict[str, Any], via_app: bool) -> AsyncIterator[str]:
    """Serve the example on 127.0.0.1, on a free port; yields the endpoint URL."""
    config = namespace.get("config")
    config = config if isinstance(config, TransportConfig) else None
    if not via_app:
        async with open_mcp_server(namespace["server"], host="127.0.0.1", port=0, config=config) as handle:
            yield handle.url
        return
    app = namespace.get("app")
    assert isinstance(app, McpHttpApp), "`via: app` needs a module-level `app`"
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.graceful_timeout = 1.0
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        serve_app = functools.partial(hypercorn_serve, app, hc, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        binds = await nursery.start(serve_app)
        try:
            yield binds[0] + app.config.path
        finally:
            stop.set()


def _sse_messages(text: str) -> list[dict[str, Any]]:
    messages = []
    for event in re.split(r"\r?\n\r?\n", text):
        data = [line[5:].lstrip() for line in event.splitlines() if line.startswith("data:")]
        if data and "".join(data):
            messages.append(json.loads("\n".join(data)))
    return messages


def _final_message(response: httpx.Response, request_id: Any) -> dict[str, Any]:
    if response.headers["content-type"].startswith("application/json"):
        message: dict[str, Any] = response.json()
        return message
    [answer] = [m for m in _sse_messages(response.text) if m.get("id") == request_id and "method" not in m]
    return answer


def _header_value(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if text.isascii() and text.isprintable() and text == text.strip():
        return text
    return "=?base64?" + base64.b64encode(text.encode()).decode() + "?="


class ModernClient:
    """A stateless 2026-07-28 client: ``_meta`` and the routing headers on every request."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.tools: dict[str, Any] = {}
        self.next_id = 100

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": CAPABILITIES,
            "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        }
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": {**params, "_meta": meta}}
        headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            "mcp-protocol-version": MODERN,
            "mcp-method": method,
        }
        if method in ("tools/call", "prompts/get"):
            headers["mcp-name"] = _header_value(params["name"])
        elif method == "resources/read":
            headers["mcp-name"] = _header_value(params["uri"])
        if method == "tools/call":
            schema = self.tools[params["name"]]["inputSchema"]
            for prop, spec in schema.get("properties", {}).items():
                value = params.get("arguments", {}).get(prop)
                if isinstance(spec, dict) and "x-mcp-header" in spec and value is not None:
                    headers["mcp-param-" + spec["x-mcp-header"]] = _header_value(value)
        response = await self.http.post(self.url, json=body, headers=headers)
        assert response.status_code == 200, response.text
        message = _final_message(response, self.next_id)
        assert "result" in message, message
        result: dict[str, Any] = message["result"]
        return result

    async def ask(self, check: dict[str, Any]) -> dict[str, Any]:
        if "read" in check:
            return await self.request("resources/read", {"uri": check["read"]})
        self.tools = {t["name"]: t for t in (await self.request("tools/list", {}))["tools"]}
        params: dict[str, Any] = {"name": check["call"], "arguments": check.get("arguments", {})}
        for _ in range(5):
            result = await self.request("tools/call", params)
            if result["resultType"] != "input_required":
                return result
            answers = check.get("answers", {})
            missing = set(result["inputRequests"]) - set(answers)
            assert not missing, f"the example asks for {missing}, the check has no answer"
            params["inputResponses"] = {key: answers[key] for key in result["inputRequests"]}
            params["requestState"] = result["requestState"]
        raise AssertionError("still asking for input after 5 rounds")


class SessionClient:
    """A 2025-11-25 client: a session, and answers POSTed to the server's requests."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

    async def open(self) -> None:
        params = {"protocolVersion": LEGACY, "capabilities": CAPABILITIES, "clientInfo": CLIENT_INFO}
        body = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        response = await self.http.post(self.url, json=body, headers=self.headers)
        assert response.status_code == 200, response.text
        assert _final_message(response, 0)["result"]["protocolVersion"] == LEGACY
        self.headers |= {"mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": LEGACY}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.http.post(self.url, json=note, headers=self.headers)).status_code == 202

    async def ask(self, check: dict[str, Any]) -> dict[str, Any]:
        await self.open()
        if "read" in check:
            body = {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": check["read"]}}
        else:
            params = {"name": check["call"], "arguments": check.get("arguments", {})}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
        answers = list(check.get("answers", {}).values())
        async with self.http.stream("POST", self.url, json=body, headers=self.headers) as response:
            assert response.status_code == 200
            if response.headers["content-type"].startswith("application/json"):
                return json.loads(await response.aread())["result"]  # type: ignore[no-any-return]
            # The stream ends after the response (read to its end: no generator is left
            # half-consumed).
            buffer = ""
            result: dict[str, Any] | None = None
            async for text in response.aiter_text():
                buffer += text
                *events, buffer = re.split(r"\r?\n\r?\n", buffer)
                for message in _sse_messages("\n\n".join(events)):
                    if "method" in message and "id" in message:  # the server asks the client
                        assert answers, f"unexpected request from the server: {message}"
                        reply = {"jsonrpc": "2.0", "id": message["id"], "result": answers.pop(0)}
                        posted = await self.http.post(self.url, json=reply, headers=self.headers)
                        assert posted.status_code == 202
                    elif message.get("id") == 1:
                        result = message["result"]
        if result is not None:
            return result
        raise AssertionError("the stream ended without a response")


def _text_of(result: dict[str, Any]) -> str:
    items = result.get("content") or result.get("contents")
    assert items, result
    text: str = items[0]["text"]
    return text


@pytest.mark.parametrize("block", _select("python", serves=True))
async def test_served_example_answers_in_both_eras(block: Block, tmp_path: Path) -> None:
    check = json.loads(block.markers["serves"])
    namespace = load_example(block, tmp_path)
    with trio.fail_after(TIMEOUT):
        async with (
            serving(namespace, check.get("via") == "app") as url,
            httpx.AsyncClient(timeout=10, trust_env=False) as http,
        ):
            for client in (SessionClient(http, url), ModernClient(http, url)):
                result = await client.ask(check)
                assert not result.get("isError"), result
                assert _text_of(result) == check["expect"], (type(client).__name__, result)


# -- worked HTTP exchanges ---------------------------------------------------------------


@dataclass
class Message:
    start: str
    headers: list[tuple[str, str]]
    body: Any


def parse_http(block: Block) -> Message:
    head, _, body = block.text.partition("\n\n")
    start, *lines = head.splitlines()
    headers = [(name.strip().lower(), value.strip()) for name, _, value in (h.partition(":") for h in lines)]
    return Message(start, headers, json.loads(body) if body.strip() else None)


def _fill(template: Any, previous: Any) -> Any:
    """Replace ``"..."`` in a request with the same key's value in the previous response."""

    def find(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            if key in value:
                return value[key]
            for item in value.values():
                if (found := find(item, key)) is not None:
                    return found
        return None

    if isinstance(template, dict):
        return {k: find(previous, k) if v == "..." else _fill(v, previous) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, previous) for v in template]
    return template


def _matches(documented: Any, actual: Any) -> bool:
    if documented == "...":
        return True
    if isinstance(documented, dict):
        return (
            isinstance(actual, dict)
            and documented.keys() == actual.keys()
            and all(_matches(v, actual[k]) for k, v in documented.items())
        )
    if isinstance(documented, list):
        return (
            isinstance(actual, list)
            and len(documented) == len(actual)
            and all(_matches(d, a) for d, a in zip(documented, actual, strict=True))
        )
    return bool(documented == actual and type(documented) is type(actual))


def _exchange_pages() -> list[Any]:
    return [
        pytest.param(page, id=str(page.relative_to(ROOT)))
        for page in PAGES
        if any(b.page == page and b.language == "http" for b in ALL_BLOCKS)
    ]


@pytest.mark.parametrize("page", _exchange_pages())
async def test_documented_exchanges_happen(page: Path, tmp_path: Path) -> None:
    blocks = [b for b in ALL_BLOCKS if b.page == page]
    exchanges = [b for b in blocks if b.language == "http"]
    assert len(exchanges) % 2 == 0, f"{page.name}: http blocks must come in request/response pairs"
    servers = [b for b in blocks if "serves" in b.markers and b.line < exchanges[0].line]
    assert servers, f"{page.name}: no server example before the first exchange"
    namespace = load_example(servers[-1], tmp_path)
    previous: Any = None
    with trio.fail_after(TIMEOUT):
        async with serving(namespace, False) as url, httpx.AsyncClient(timeout=10, trust_env=False) as http:
            base = url.rsplit("/", 1)[0]
            for request_block, response_block in zip(exchanges[::2], exchanges[1::2], strict=True):
                request = parse_http(request_block)
                documented = parse_http(response_block)
                method, path, _ = request.start.split()
                sent = {k: v for k, v in request.headers if k not in ("host", "content-length")}
                body = _fill(request.body, previous)
                response = await http.request(method, base + path, content=json.dumps(body), headers=sent)
                where = (
                    f"{response_block.name}: got {response.status_code} {response.headers} {response.text}"
                )
                assert response.status_code == int(documented.start.split()[1]), where
                for name, value in documented.headers:
                    if name != "content-length":
                        assert response.headers.get(name) == value, where
                previous = response.json()
                assert _matches(documented.body, previous), where
