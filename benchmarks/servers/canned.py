"""The ceiling: a trivial ASGI app that reads the body and returns a canned JSON-RPC
result, on Hypercorn's trio worker.  No MCP at all: what the HTTP server alone costs.

    python -m benchmarks.servers.canned --port 8002
"""

from __future__ import annotations

from typing import Any

from ._common import parse_args, serve_on_hypercorn_trio

BODY = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello"}],"isError":false}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    args = parse_args(__doc__ or "")
    serve_on_hypercorn_trio(app, args)


if __name__ == "__main__":
    main()
