"""App-only cost of one ``tools/call``, in process: no HTTP server, no sockets.

Drives :class:`trio_mcp_http.McpHttpApp` with minimal in-memory ASGI ``receive``/``send``
and prints the CPU time (``time.process_time``) per request.  Far less noisy than the
HTTP benchmark on a busy machine, so it is the tool for A/B-testing a change to the
package: run it on two checkouts, alternately, pinned to the same core::

    git worktree add /tmp/base HEAD~1      # or: git archive HEAD~1 trio_mcp_http | tar -x -C /tmp/base
    for i in 1 2 3; do
      taskset -c 0 .venv/bin/python benchmarks/inproc.py /tmp/base sse 3000
      taskset -c 0 .venv/bin/python benchmarks/inproc.py "$PWD" sse 3000
    done

Arguments: the directory holding the ``trio_mcp_http`` to test, the mode (sse, json,
stateless) and the number of requests.
"""

import json
import sys
import time

root = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else "sse"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
sys.path.insert(0, root)
import trio  # noqa: E402

import trio_mcp_http  # noqa: E402

assert trio_mcp_http.__file__.startswith(root), trio_mcp_http.__file__
from trio_mcp_http import McpHttpApp, McpServer, TransportConfig  # noqa: E402

server = McpServer("bench", "1.0")


@server.tool()
async def echo(text: str) -> str:
    return text


def post(body, sid=None, version="2025-11-25"):
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-length", str(len(body)).encode()),
    ]
    if sid:
        headers += [(b"mcp-session-id", sid.encode()), (b"mcp-protocol-version", version.encode())]
    elif version:
        headers += [(b"mcp-protocol-version", version.encode())]
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers, "http_version": "1.1"}


async def call(app, scope, body):
    sent = []
    state = {"n": 0}
    never = trio.Event()

    async def receive():
        if state["n"] == 0:
            state["n"] = 1
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()

    async def send(m):
        sent.append(m)
        await trio.lowlevel.checkpoint()

    await app(scope, receive, send)
    return sent


async def main():
    cfg = TransportConfig(json_response=(mode == "json"), stateless=(mode == "stateless"))
    app = McpHttpApp(server, cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.run)
        sid = None
        if mode != "stateless":
            init = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "x", "version": "1"},
                    },
                }
            ).encode()
            sent = await call(app, post(init, version=None), init)
            sid = dict(sent[0]["headers"])[b"mcp-session-id"].decode()
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "hello"}},
            }
        ).encode()
        scope = post(body, sid)
        for _ in range(300):
            await call(app, scope, body)
        t0 = time.process_time()
        for _ in range(n):
            sent = await call(app, scope, body)
        dt = time.process_time() - t0
        assert b'"result"' in b"".join(m.get("body", b"") for m in sent), sent
        print(f"{dt / n * 1e6:.1f}")
        nursery.cancel_scope.cancel()


trio.run(main)
