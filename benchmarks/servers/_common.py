"""Command-line options shared by the benchmark servers (each runs in its own process)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["sse", "json", "stateless"], default="sse")
    parser.add_argument("--max-sessions", type=int, default=10_000)
    parser.add_argument("--grace", type=float, default=10.0, help="shutdown grace period (s)")
    parser.add_argument(
        "--runner", choices=["hypercorn-trio", "uvicorn", "trio-mcp-http"], default="hypercorn-trio"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args


def serve_on_hypercorn_trio(app: Any, args: argparse.Namespace) -> None:
    """Serve an ASGI app on Hypercorn's trio worker until SIGINT/SIGTERM."""
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None
    config.graceful_timeout = args.grace

    async def shutdown_trigger() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return

    trio.run(lambda: serve(app, config, shutdown_trigger=shutdown_trigger))
