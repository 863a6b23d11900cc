"""One handler runner: what a handler returns, raises or is cancelled with becomes its
JSON-RPC answer here, the same way for session requests, stateless requests and tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from ..protocol import jsonrpc
from ..protocol.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MISSING_CLIENT_CAPABILITY,
    RESOURCE_NOT_FOUND,
    McpError,
    ProtocolError,
)

__all__ = ["Answer", "cancelled", "failure", "run_handler"]

logger = logging.getLogger("trio_mcp_http")

#: Why a request was cancelled, as its error message says.
_CANCELLED = {
    "client": "Request cancelled",
    "shutdown": "Server shutting down: request cancelled",
    "session terminated": "Request cancelled: session terminated",
}


class Answer(NamedTuple):
    """An encoded JSON-RPC response and the HTTP status it goes with, where the
    response is a plain JSON body (on an SSE stream the status is already 200)."""

    status: int
    body: bytes


async def run_handler(
    request_id: int | str, method: str, call: Callable[[], Awaitable[Any]], *, stateless: bool = False
) -> Answer:
    """Await ``call()`` and answer with its result or its error.

    Cancellation and control-flow signals (``BaseException``) pass through: the caller
    decides what a cancelled request receives (:func:`cancelled`).
    """
    try:
        result = await call()
    except Exception as exc:
        return _error(request_id, failure(exc, method), stateless=stateless)
    return Answer(200, jsonrpc.encode_result(request_id, result))


def failure(exc: Exception, method: str) -> McpError:
    """The error that answers ``exc``: itself when it is one of the protocol's, else an
    internal error (logged with its traceback; the client learns nothing of it)."""
    if isinstance(exc, McpError):
        return exc
    logger.exception("handler for %s failed", method, exc_info=exc)
    return McpError(INTERNAL_ERROR, "Internal error")


def _error(request_id: int | str, error: McpError, *, stateless: bool) -> Answer:
    status = error.status_hint if isinstance(error, ProtocolError) else 200
    code = error.code
    if stateless:
        # 2026-07-28: -32002 is retired (SEP-2164), and some errors carry a status.
        if code == RESOURCE_NOT_FOUND:
            code = INVALID_PARAMS
        elif code == METHOD_NOT_FOUND:
            status = 404
        elif code == MISSING_CLIENT_CAPABILITY:
            status = 400
    return Answer(status, jsonrpc.encode_error(request_id, code, error.message, error.data))


def cancelled(request_id: int | str, reason: str | None) -> Answer:
    """The answer of a request cancelled for ``reason`` (``client``, ``shutdown`` or
    ``session terminated``)."""
    message = _CANCELLED.get(reason or "", "Request cancelled")
    return Answer(200, jsonrpc.encode_error(request_id, INTERNAL_ERROR, message))
