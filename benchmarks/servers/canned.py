"""The ceiling: a trivial ASGI app that reads the body and returns a canned JSON-RPC
result, on Hypercorn's trio worker.  No MCP at all: what the HTTP server alone costs.

    python -m benchmarks.servers.canned --port 8002
"""

from __future__ import annotations

import signal
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ._common import parse_args

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
    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None
    config.graceful_timeout = args.grace

    async def shutdown_trigger() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return

    trio.run(lambda: serve(app, config, shutdown_trigger=shutdown_trigger))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
