"""The peer: the same tools written with the official MCP Python SDK (PyPI ``mcp``).

Served as its users run it, by uvicorn (``--runner uvicorn``, what ``MCPServer.run
("streamable-http")`` does), or by Hypercorn's trio worker (``--runner hypercorn-trio``,
the same worker as ours; the SDK is anyio-based, so it runs on Trio), or, the very same
``mcp`` object unmodified, by trio_mcp_http's transport (``--runner trio-mcp-http``:
``serve(mcp, ...)``, with the SDK's handlers and its per-connection kernel answering
every request, and our HTTP layer, sessions and streams carrying them).

    python -m benchmarks.servers.sdk --port 8001 --mode sse --runner uvicorn
    python -m benchmarks.servers.sdk --port 8001 --mode stateless --runner uvicorn --workers 2

``--workers N`` (uvicorn only) is ``uvicorn --workers N``: uvicorn's supervisor and N
worker processes, each building the same app (``uvicorn_app``, below).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer

from ._common import parse_args, serve_on_hypercorn_trio

warnings.simplefilter("ignore")  # send_log_message is deprecated in 2026-07-28; fine for 2025-*

# WARNING: at its default (INFO) the SDK logs a line per session, and per request in
# stateless mode ("Terminating session: None"); we do not charge it for that.
mcp = MCPServer("bench", log_level="WARNING")

#: Sessions that asked for broadcasts (the SDK has no server-wide broadcast in the
#: session era: a handler keeps the sessions it wants to reach, as users do).
_listeners: list[Any] = []


@mcp.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then answer."""
    await anyio.sleep(seconds)
    return "slept"


@mcp.tool()
async def register(ctx: Context) -> str:
    """Ask for broadcasts on this session's GET stream."""
    _listeners.append(ctx.session)
    return "ok"


@mcp.tool()
async def broadcast(start: int, count: int = 1) -> str:
    """Send ``count`` log notifications (seq start...) to every registered session."""
    for seq in range(start, start + count):
        for session in list(_listeners):
            try:
                await session.send_log_message(level="info", data={"seq": seq})
            except Exception:
                _listeners.remove(session)
    return "ok"


def serve_on_trio_mcp_http(args: argparse.Namespace) -> None:
    """The same ``mcp`` object on our transport, with the settings ``ours.py`` uses per mode
    (our default in-memory event store included, as for ``ours``)."""
    import trio

    from trio_mcp_http import serve

    trio.run(
        functools.partial(
            serve,
            mcp,
            host=args.host,
            port=args.port,
            json_response=args.mode == "json",
            stateless=args.mode == "stateless",
            max_sessions=args.max_sessions,
            grace_period=args.grace,
        )
    )


def uvicorn_app() -> Any:
    """The app of one ``uvicorn --workers N`` worker (settings from the supervisor)."""
    settings = json.loads(os.environ["BENCH_SDK_APP"])
    return mcp.streamable_http_app(**settings)


def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--workers", type=int, default=1)
    extra, rest = pre.parse_known_args()
    sys.argv[1:] = rest
    args = parse_args(__doc__ or "")
    if extra.workers > 1:
        if args.runner != "uvicorn":
            raise SystemExit("--workers > 1: uvicorn only")
        import uvicorn

        os.environ["BENCH_SDK_APP"] = json.dumps(
            {
                "json_response": args.mode == "json",
                "stateless_http": args.mode == "stateless",
                "max_sessions": args.max_sessions,
                "host": args.host,
            }
        )
        uvicorn.run(
            "benchmarks.servers.sdk:uvicorn_app",
            factory=True,
            workers=extra.workers,
            host=args.host,
            port=args.port,
            log_level="warning",
        )
        return
    if args.runner == "trio-mcp-http":
        serve_on_trio_mcp_http(args)
        return
    app = mcp.streamable_http_app(
        json_response=args.mode == "json",
        stateless_http=args.mode == "stateless",
        max_sessions=args.max_sessions,
        host=args.host,
    )
    if args.runner == "uvicorn":
        import uvicorn

        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return

    serve_on_hypercorn_trio(app, args)


if __name__ == "__main__":
    main()
