"""The library's exception hierarchy.

One base class, :class:`McpHttpError`.  Errors that reach a client are translated into
JSON-RPC error objects (and an HTTP status) at the transport edge; trio's own exceptions
never leak to users.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISSING_CLIENT_CAPABILITY",
    "PARSE_ERROR",
    "RESOURCE_NOT_FOUND",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "ConfigError",
    "McpError",
    "McpHttpError",
    "ProtocolError",
    "SessionNotFound",
    "StateError",
    "ToolError",
    "UsageError",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Legacy-era (2025-*) resource-not-found code; the 2026-07-28 revision uses -32602.
RESOURCE_NOT_FOUND = -32002
# 2026-07-28 transport errors (2026-07-28 basic/index §error codes).
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022


class McpHttpError(Exception):
    """Base class of every exception raised by trio_mcp_http."""


class ConfigError(McpHttpError, ValueError):
    """A setting or argument with a value the library cannot use (also a ``ValueError``)."""


class UsageError(McpHttpError, TypeError):
    """The API called the wrong way: an unknown option, an argument of the wrong type, a
    handler that is not an async function (also a ``TypeError``)."""


class StateError(McpHttpError, RuntimeError):
    """An operation at the wrong time, such as running an app that already runs (also a
    ``RuntimeError``)."""


class McpError(McpHttpError):
    """A JSON-RPC error answer to one request.

    Raise it from a handler to answer the request with ``code``/``message``/``data``.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error_object(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ProtocolError(McpError):
    """A request rejected at the HTTP layer.

    ``status_hint`` is the HTTP status the transport answers with; the body is a
    JSON-RPC error object whose id is ``request_id``: the refused request's id once the
    body has been read as a single request, else null (JSON-RPC 2.0 §5: null only when
    the id could not be determined).
    """

    def __init__(
        self,
        status_hint: int,
        code: int,
        message: str,
        data: Any = None,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        request_id: int | str | None = None,
    ) -> None:
        super().__init__(code, message, data)
        self.status_hint = status_hint
        self.headers = headers or []
        self.request_id = request_id


class SessionNotFound(ProtocolError):
    """The ``Mcp-Session-Id`` names no live session (never issued, expired or deleted)."""

    def __init__(self) -> None:
        super().__init__(404, -32001, "Session not found")


class ToolError(McpHttpError):
    """Raise from a tool to return a result with ``isError: true`` and this message.

    Any other exception from a tool is reported the same way, but also logged.
    """
