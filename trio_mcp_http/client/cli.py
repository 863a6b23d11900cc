"""The client side of the ``trio-mcp-http`` command: ``call`` and ``list-tools``.

::

    trio-mcp-http list-tools http://127.0.0.1:8000/mcp
    trio-mcp-http call http://127.0.0.1:8000/mcp add a=1 b=2
    trio-mcp-http call http://127.0.0.1:8000/mcp echo --json '{"text": "hi"}'

Results go to stdout, progress to stderr while the tool runs; any failure is one line
on stderr (``error: ...``) and exit status 1 (2 for a malformed command line).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import trio

from ..protocol.errors import McpError, McpHttpError
from .mcp_client import open_mcp_client
from .types import CallToolResult, Progress, Tool

__all__ = ["COMMANDS", "add_commands", "run_command"]

COMMANDS = frozenset({"call", "list-tools"})


def _seconds(text: str) -> float:
    value = float(text)
    if not (0 < value < math.inf):
        raise ValueError(text)
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the MCP endpoint, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument(
        "--era",
        choices=["auto", "session", "stateless"],
        default="auto",
        help="protocol era: discover it (auto), a 2025 session, or 2026-07-28 stateless (default: auto)",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="an HTTP header to send with every request, e.g. 'Authorization: Bearer x' (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="give up after this long (default: 60)",
    )


def add_commands(commands: Any) -> None:
    """Add ``call`` and ``list-tools`` to the command line's subcommands."""
    call = commands.add_parser(
        "call",
        help="call a tool of an MCP server",
        description="Call a tool and print its result. Arguments are key=value; a value is "
        'parsed as JSON when it parses (1, true, [1,2], {"a":1}), else taken as a string.',
    )
    _common(call)
    call.add_argument("tool", help="the tool's name")
    call.add_argument("arguments", nargs="*", metavar="key=value", help="the tool's arguments")
    call.add_argument(
        "--json", dest="json_arguments", metavar="OBJECT", help="all arguments as one JSON object"
    )
    list_tools = commands.add_parser(
        "list-tools", help="list the tools of an MCP server", description="List a server's tools."
    )
    _common(list_tools)


def parse_arguments(pairs: Sequence[str], as_json: str | None) -> dict[str, Any]:
    """``key=value`` pairs (JSON values where they parse) or one JSON object."""
    if as_json is not None:
        if pairs:
            raise ValueError("give the arguments either as key=value or with --json, not both")
        try:
            value = json.loads(as_json)
        except ValueError as exc:
            raise ValueError(f"--json is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("--json must be a JSON object")
        return value
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key:
            raise ValueError(f"{pair!r} is not key=value")
        try:
            arguments[key] = json.loads(text)
        except ValueError:
            arguments[key] = text
    return arguments


def _headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, colon, text = value.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"--header {value!r} is not NAME:VALUE")
        headers[name.strip()] = text.strip()
    return headers


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run ``call`` or ``list-tools``; the exit status."""
    try:
        headers = _headers(args.header)
        arguments = parse_arguments(args.arguments, args.json_arguments) if args.command == "call" else {}
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return trio.run(_run, args, headers, arguments)
    except McpError as exc:
        print(f"error: {exc.message} (JSON-RPC error {exc.code})", file=sys.stderr)
    except McpHttpError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
    except trio.TooSlowError:
        print(f"error: no answer within {args.timeout:g} seconds", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
    return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({' '.join(str(cause).split())})"
    return text


async def _run(args: argparse.Namespace, headers: dict[str, str], arguments: dict[str, Any]) -> int:
    era = None if args.era == "auto" else args.era
    with trio.fail_after(args.timeout):
        async with open_mcp_client(args.url, era=era, headers=headers) as client:
            if args.command == "list-tools":
                for tool in await client.list_tools():
                    print(_describe(tool))
                return 0
            result = await client.call_tool(args.tool, arguments, progress=_show_progress)
            return _print_result(result)


async def _show_progress(update: Progress) -> None:
    total = f"/{update.total:g}" if update.total is not None else ""
    message = f" {update.message}" if update.message else ""
    print(f"progress: {update.progress:g}{total}{message}", file=sys.stderr, flush=True)


def _describe(tool: Tool) -> str:
    """``name(arg: type, [optional: type])  first line of the description``."""
    properties = tool.input_schema.get("properties") or {}
    required = set(tool.input_schema.get("required") or [])
    parts = []
    for name, schema in properties.items():
        kind = schema.get("type", "any") if isinstance(schema, dict) else "any"
        kind = "|".join(kind) if isinstance(kind, list) else str(kind)
        parts.append(f"{name}: {kind}" if name in required else f"[{name}: {kind}]")
    line = f"{tool.name}({', '.join(parts)})"
    description = (tool.description or "").strip().splitlines()
    return f"{line}  {description[0]}" if description else line


def _print_result(result: CallToolResult) -> int:
    lines = []
    for block in result.content:
        item = block if isinstance(block, dict) else block.to_wire()
        kind = item.get("type")
        if kind == "text":
            lines.append(str(item.get("text", "")))
        elif kind in ("image", "audio"):
            lines.append(
                f"[{kind} {item.get('mimeType', '')}, {len(str(item.get('data', ''))) * 3 // 4} bytes]"
            )
        elif kind == "resource_link":
            lines.append(f"[resource {item.get('uri')}]")
        elif kind == "resource":
            resource = item.get("resource") or {}
            lines.append(str(resource.get("text", f"[resource {resource.get('uri')}]")))
        else:
            lines.append(json.dumps(item))
    if not lines and result.structured_content is not None:
        lines.append(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
    if result.is_error:
        print(f"error: the tool failed: {' '.join(' '.join(lines).split())}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
