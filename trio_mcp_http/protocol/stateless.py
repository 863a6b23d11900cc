"""The wire rules of the stateless 2026-07-28 revision, sans-IO.

Every request carries its protocol version and client capabilities in ``_meta``; the
``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` and ``Mcp-Param-*`` headers
mirror the body (SEP-2243) so intermediaries can route without parsing it; input from
the client comes back through input-required results (SEP-2322).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from typing import Any

from pydantic_core import to_json

from .errors import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION,
    McpError,
    ProtocolError,
)
from .http import RequestHeaders, accepts
from .jsonrpc import Envelope, Kind
from .levels import level_rank
from .tasks import METHODS as TASK_METHODS
from .versions import MODERN_VERSIONS

__all__ = [
    "CACHEABLE",
    "LIST_CHANGED",
    "MAY_REQUIRE_INPUT",
    "META_CAPABILITIES",
    "META_CLIENT_INFO",
    "META_LOG_LEVEL",
    "META_SERVER_INFO",
    "META_SUBSCRIPTION",
    "META_VERSION",
    "METHODS",
    "NAME_SOURCE",
    "RequestState",
    "header_params",
    "header_value",
    "validate",
]


META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION = "io.modelcontextprotocol/subscriptionId"

#: Methods of the 2026-07-28 revision a server answers.
METHODS = (
    frozenset(
        {
            "server/discover",
            "tools/list",
            "tools/call",
            "resources/list",
            "resources/templates/list",
            "resources/read",
            "prompts/list",
            "prompts/get",
            "completion/complete",
            "subscriptions/listen",
        }
    )
    | TASK_METHODS
)  # the tasks extension (SEP-2663; transport/tasks.py)
#: Results that carry caching hints (SEP-2549).
CACHEABLE = frozenset(
    {
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
    }
)
#: The only methods that may answer with an input-required result (SEP-2322).
MAY_REQUIRE_INPUT = frozenset({"tools/call", "prompts/get", "resources/read"})
#: Where ``Mcp-Name`` comes from, per method (SEP-2243).
NAME_SOURCE = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"} | {
    method: "taskId"
    for method in TASK_METHODS  # SEP-2663: Mcp-Name carries the taskId
}
#: Filter keys of ``subscriptions/listen`` and the notifications they admit.
LIST_CHANGED = {
    "notifications/tools/list_changed": ("toolsListChanged", "tools"),
    "notifications/prompts/list_changed": ("promptsListChanged", "prompts"),
    "notifications/resources/list_changed": ("resourcesListChanged", "resources"),
}

_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
_STATE_TTL = 15 * 60.0


def header_value(raw: str | None) -> str | None:
    """Trim optional whitespace (RFC 9110 §5.5) and decode the base64 form (SEP-2243)."""
    if raw is None:
        return None
    value = raw.strip(" \t")
    if any(not (0x20 <= ord(ch) <= 0x7E or ch == "\t") for ch in value):
        raise ProtocolError(400, HEADER_MISMATCH, "Header value has characters outside visible ASCII")
    if value.startswith("=?base64?") and value.endswith("?=") and len(value) >= 11:
        encoded = value[9:-2]
        if len(encoded) % 4 or not _B64.match(encoded):
            raise ProtocolError(400, HEADER_MISMATCH, "Header value is not valid base64")
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ProtocolError(400, HEADER_MISMATCH, "Header value is not valid base64 UTF-8") from None
    return value


def header_params(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """``x-mcp-header`` annotations of a tool's input schema: (property path, header)."""
    found: list[tuple[tuple[str, ...], str]] = []
    if not isinstance(schema, dict):
        return found
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return found
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        header = prop.get("x-mcp-header")
        if isinstance(header, str) and header:
            found.append(((*path, name), header))
        found.extend(header_params(prop, (*path, name)))
    return found


def _lookup(arguments: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(arguments, dict):
            return None
        arguments = arguments.get(key)
    return arguments


def _matches(header: str, value: Any) -> bool:
    if isinstance(value, bool):
        return header == ("true" if value else "false")
    if isinstance(value, (int, float)):
        # Compared as numbers, exactly: Python compares int with float without
        # converting (no overflow for huge ints), and int() refuses what is not one.
        try:
            return int(header) == value
        except ValueError:
            pass
        try:
            return float(header) == value
        except ValueError:
            return False
    return header == str(value)


def validate(
    message: Envelope,
    headers: RequestHeaders,
    param_headers: Callable[[str], list[tuple[tuple[str, ...], str]]],
) -> dict[str, Any] | None:
    """The checks of a 2026-07-28 request, in the order the revision's examples imply;
    returns its ``_meta``, or ``None`` for a notification.

    ``param_headers(tool)`` gives a tool's ``x-mcp-header`` annotations (see
    :func:`header_params`).
    """
    accept = headers.get("accept")
    if not accepts(accept, "application/json"):
        raise ProtocolError(406, INVALID_REQUEST, "Not Acceptable: Client must accept application/json")
    if message.kind is Kind.RESPONSE:
        raise ProtocolError(
            400, INVALID_REQUEST, "Invalid Request: clients do not send responses in 2026-07-28"
        )
    version_header = header_value(headers.get("mcp-protocol-version"))
    if version_header is None:
        raise ProtocolError(400, HEADER_MISMATCH, "Header mismatch: MCP-Protocol-Version header is required")
    if message.kind is Kind.NOTIFICATION:
        return None
    params = message.params or {}
    meta = params.get("_meta")
    if (
        not isinstance(meta, dict)
        or META_VERSION not in meta
        or not isinstance(meta.get(META_CAPABILITIES), dict)
    ):
        raise ProtocolError(
            400,
            INVALID_PARAMS,
            f"Invalid params: _meta must carry {META_VERSION} and {META_CAPABILITIES}",
        )
    if meta[META_VERSION] != version_header:
        raise ProtocolError(
            400,
            HEADER_MISMATCH,
            "Header mismatch: MCP-Protocol-Version header does not match _meta protocol version",
        )
    if version_header not in MODERN_VERSIONS:
        raise ProtocolError(
            400,
            UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
            {"supported": list(MODERN_VERSIONS), "requested": version_header},
        )
    method = message.method or ""
    if header_value(headers.get("mcp-method")) != method:
        raise ProtocolError(
            400, HEADER_MISMATCH, "Header mismatch: Mcp-Method header must equal the body's method"
        )
    source = NAME_SOURCE.get(method)
    if source is not None:
        expected = params.get(source)
        if header_value(headers.get("mcp-name")) != expected or not isinstance(expected, str):
            raise ProtocolError(
                400, HEADER_MISMATCH, f"Header mismatch: Mcp-Name header must equal params.{source}"
            )
    if method == "tools/call":
        _check_param_headers(params, headers, param_headers)
    if method not in METHODS:
        raise ProtocolError(404, METHOD_NOT_FOUND, f"Method not found: {method}")
    level = meta.get(META_LOG_LEVEL)
    if level is not None:
        try:
            level_rank(str(level))
        except McpError as exc:
            raise ProtocolError(400, INVALID_PARAMS, exc.message) from None
    return meta


def _check_param_headers(
    params: dict[str, Any],
    headers: RequestHeaders,
    param_headers: Callable[[str], list[tuple[tuple[str, ...], str]]],
) -> None:
    name = params.get("name")
    if not isinstance(name, str):
        return
    arguments = params.get("arguments") or {}
    for path, header in param_headers(name):
        value = _lookup(arguments, path)
        raw = headers.get("mcp-param-" + header.lower())
        if value is None:
            continue
        decoded = header_value(raw)
        if decoded is None or not _matches(decoded, value):
            raise ProtocolError(
                400, HEADER_MISMATCH, f"Header mismatch: Mcp-Param-{header} does not match the argument"
            )


class RequestState:
    """``requestState`` of input-required results (SEP-2322): the answers a client has
    given so far, bound to the request's method and name and to an expiry, under an
    HMAC, so a client can neither forge nor replay them elsewhere."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def seal(self, method: str, params: dict[str, Any], answers: dict[str, Any]) -> str:
        """``requestState``: earlier answers, bound to this request, HMAC-protected."""
        payload = {
            "m": method,
            "t": params.get(NAME_SOURCE.get(method, "name")),
            "a": answers,
            "e": int(time.time() + _STATE_TTL),
        }
        body = base64.urlsafe_b64encode(to_json(payload)).rstrip(b"=")
        tag = base64.urlsafe_b64encode(hmac.digest(self._key, body, hashlib.sha256)).rstrip(b"=")
        return (body + b"." + tag).decode()

    def unseal(self, method: str, params: dict[str, Any], state: Any) -> dict[str, Any]:
        invalid = McpError(
            INVALID_PARAMS, "Invalid requestState: it was not issued by this server for this request"
        )
        if not isinstance(state, str) or state.count(".") != 1:
            raise invalid
        body, tag = state.encode().split(b".")
        expected = base64.urlsafe_b64encode(hmac.digest(self._key, body, hashlib.sha256)).rstrip(b"=")
        if not hmac.compare_digest(tag, expected):
            raise invalid
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except ValueError:
            raise invalid from None
        if (
            payload.get("m") != method
            or payload.get("t") != params.get(NAME_SOURCE.get(method, "name"))
            or not isinstance(payload.get("a"), dict)
            or payload.get("e", 0) < time.time()
        ):
            raise invalid
        answers: dict[str, Any] = payload["a"]
        return answers
