"""What can go wrong on the client side, in the library's one exception hierarchy.

A JSON-RPC error from the server is an :class:`~trio_mcp_http.McpError` (a
:class:`~trio_mcp_http.ProtocolError` when it came with an HTTP error status), as on the
server side.  The classes here are for what is not a JSON-RPC error: the connection
failed, the server answered with something that is not MCP, or a result does not keep
the promises of its schema.
"""

from __future__ import annotations

from ..protocol.errors import McpHttpError

__all__ = ["HttpStatusError", "ResultValidationError", "TransportError"]


class TransportError(McpHttpError, ConnectionError):
    """The exchange with the server failed: it could not be reached, the connection
    broke, a stream ended before its answer, or what came back is not MCP.  The
    underlying exception, if any, is the ``__cause__``."""


class HttpStatusError(TransportError):
    """The server answered with an HTTP error status and no JSON-RPC error in the body."""

    def __init__(self, status: int, message: str, body: bytes = b"") -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class ResultValidationError(McpHttpError, ValueError):
    """A result does not have the shape its method promises (the MCP schema), or a
    tool's ``structuredContent`` does not match the tool's ``outputSchema``."""
