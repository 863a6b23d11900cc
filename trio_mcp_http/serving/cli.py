"""``trio-mcp-http``: the command-line entry point."""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import sys
from dataclasses import replace
from typing import Any

import trio

from ..server.mcp_server import McpServer
from ..transport.config import TransportConfig
from .serve import serve

__all__ = ["main"]


def load_server(spec: str) -> McpServer:
    """Import ``module:attr`` (``attr`` defaults to ``server``) and return the McpServer."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    target: Any = module
    for part in (attr or "server").split("."):
        target = getattr(target, part)
    if callable(target) and not isinstance(target, McpServer):
        target = target()
    if not isinstance(target, McpServer):
        raise SystemExit(f"{spec} is not an McpServer")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="trio-mcp-http", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve an McpServer over Streamable HTTP")
    serve_cmd.add_argument(
        "server",
        nargs="?",
        default="trio_mcp_http.demo:server",
        help="module:attr of an McpServer (default: the built-in demo)",
    )
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--path", default="/mcp", help="the MCP endpoint path")
    serve_cmd.add_argument("--stateless", action="store_true", help="session era without sessions")
    serve_cmd.add_argument("--json-response", action="store_true", help="answer with JSON bodies, not SSE")
    serve_cmd.add_argument("--grace", type=float, default=10.0, help="shutdown grace period (s)")
    serve_cmd.add_argument("--session-idle-timeout", type=float, default=1800.0)
    serve_cmd.add_argument("--max-sessions", type=int, default=10_000)
    serve_cmd.add_argument("--allowed-host", action="append", default=[], help="extra trusted Host name")
    serve_cmd.add_argument("--allowed-origin", action="append", default=[], help="extra trusted Origin")
    serve_cmd.add_argument(
        "--no-dns-rebinding-protection", action="store_true", help="turn Host checking off"
    )
    serve_cmd.add_argument(
        "--peer-timeout",
        type=float,
        default=10.0,
        help="close a connection whose peer takes no data for this many seconds (0: never; "
        "shutdown is bounded either way)",
    )
    serve_cmd.add_argument("--access-log", action="store_true", help="log every request")
    serve_cmd.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not 0 <= args.peer_timeout < math.inf:
        parser.error("--peer-timeout must be 0 (never) or a positive number of seconds")

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    server = load_server(args.server)
    config = replace(
        TransportConfig(),
        path=args.path,
        stateless=args.stateless,
        json_response=args.json_response,
        grace_period=args.grace,
        session_idle_timeout=args.session_idle_timeout or None,
        max_sessions=args.max_sessions,
    )
    options: dict[str, Any] = {}
    if args.access_log:
        options["accesslog"] = "-"
    trio.run(
        lambda: serve(
            server,
            host=args.host,
            port=args.port,
            config=config,
            allowed_hosts=tuple(args.allowed_host),
            allowed_origins=tuple(args.allowed_origin),
            dns_rebinding_protection=False if args.no_dns_rebinding_protection else None,
            peer_timeout=args.peer_timeout or None,
            **options,
        )
    )
