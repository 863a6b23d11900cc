"""How a request to the MCP endpoint is answered, decided from its method, headers and
parsed body alone: sans-IO, synchronous, and tested without a server.

Each check either returns a plain value or raises the :class:`ProtocolError` (with its
HTTP status) the transport answers with.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from .errors import INVALID_PARAMS, INVALID_REQUEST, McpError, ProtocolError
from .http import RequestHeaders, accepts, is_json_content_type, is_valid_session_id
from .jsonrpc import Envelope, Kind
from .stateless import META_VERSION
from .versions import LEGACY_VERSIONS

__all__ = [
    "MAX_CLIENT_STATE_BYTES",
    "MAX_SUBSCRIPTION_BYTES",
    "MAX_URI_BYTES",
    "Era",
    "batch_limit",
    "check_batch_size",
    "check_client_state",
    "check_content_type",
    "check_declared_size",
    "check_post_accept",
    "check_session_version",
    "check_stream_accept",
    "era_of",
    "session_id_of",
    "split_initialize",
    "subscription_size",
]

#: What a session keeps of its initialize request (capabilities and clientInfo),
#: encoded: a session's memory is bounded in bytes, not just in counts.
MAX_CLIENT_STATE_BYTES = 64 * 1024
#: One resource URI a session subscribes to.
MAX_URI_BYTES = 8 * 1024
#: All the resource URIs one session (or one listen stream) subscribes to.
MAX_SUBSCRIPTION_BYTES = 256 * 1024
#: Resource subscriptions one session or one subscriptions/listen stream may hold.
MAX_SUBSCRIPTIONS = 1024


class Era(enum.Enum):
    """The two protocol eras served on one endpoint (2025-11-25 and 2026-07-28)."""

    #: 2025-03-26 ... 2025-11-25: ``initialize``, ``Mcp-Session-Id``, GET streams.
    SESSION = "session"
    #: 2026-07-28: every request stands alone, carrying its version in ``_meta``.
    STATELESS = "stateless"


def era_of(parsed: Envelope | list[Envelope], headers: RequestHeaders) -> Era:
    """A session id means the session era; a modern ``_meta`` version or a version
    header naming no 2025-era revision means the stateless era; a batch is always the
    session era (2026-07-28 has none).  This is how a dual-era server tells the eras
    apart (2026-07-28 basic/versioning §backward compatibility with
    initialization-based versions)."""
    if isinstance(parsed, list) or headers.get("mcp-session-id") is not None:
        return Era.SESSION
    meta = (parsed.params or {}).get("_meta")
    if isinstance(meta, dict) and META_VERSION in meta:
        return Era.STATELESS
    version = headers.get("mcp-protocol-version")
    if version is not None and version not in LEGACY_VERSIONS and version != "2024-11-05":
        return Era.STATELESS
    return Era.SESSION


def check_content_type(headers: RequestHeaders) -> None:
    if not is_json_content_type(headers.get("content-type")):
        raise ProtocolError(
            415, INVALID_REQUEST, "Unsupported Media Type: Content-Type must be application/json"
        )


def check_declared_size(headers: RequestHeaders, limit: int) -> None:
    """413 at once for a ``Content-Length`` beyond ``limit`` (before reading a byte)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(413, INVALID_REQUEST, f"Payload Too Large: the body exceeds {limit} bytes")


def check_post_accept(headers: RequestHeaders, *, json_response: bool) -> None:
    """A session-era POST must accept JSON, and SSE unless answers are JSON (2025-11-25
    basic/transports §sending messages to the server)."""
    accept = headers.get("accept")
    ok = accepts(accept, "application/json") and (json_response or accepts(accept, "text/event-stream"))
    if not ok:
        raise ProtocolError(
            406,
            INVALID_REQUEST,
            "Not Acceptable: Client must accept both application/json and text/event-stream",
        )


def check_stream_accept(headers: RequestHeaders) -> None:
    if not accepts(headers.get("accept"), "text/event-stream"):
        raise ProtocolError(406, INVALID_REQUEST, "Not Acceptable: Client must accept text/event-stream")


def check_session_version(headers: RequestHeaders) -> None:
    """A version header, when present, must name a session-era revision (2025-11-25
    basic/transports §protocol version header)."""
    version = headers.get("mcp-protocol-version")
    if version is not None and version not in LEGACY_VERSIONS:
        raise ProtocolError(400, INVALID_REQUEST, f"Bad Request: unsupported MCP-Protocol-Version: {version}")


def session_id_of(headers: RequestHeaders) -> str:
    """The ``Mcp-Session-Id`` of a request that needs one (400 when absent or not one
    this server could have issued: visible ASCII only, 2025-11-25 basic/transports
    §session management)."""
    session_id = headers.get("mcp-session-id")
    if session_id is None:
        raise ProtocolError(400, INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required")
    if not is_valid_session_id(session_id):
        raise ProtocolError(400, INVALID_REQUEST, "Bad Request: malformed Mcp-Session-Id")
    return session_id


def batch_limit(max_batch_size: int, stream_buffer_size: int, *, json_response: bool) -> int:
    """The largest batch a session-era POST may carry.

    On an SSE stream every answer is an event, and a connection holds at most
    ``stream_buffer_size`` of them before it counts as too slow: a larger batch would
    end its own stream (and, beyond the event store's bounds, lose answers).  One
    place is left for an event that is not an answer (priming, a notification).
    """
    if json_response:
        return max_batch_size
    return min(max_batch_size, stream_buffer_size - 1)


def check_batch_size(parsed: Envelope | list[Envelope], limit: int) -> None:
    """400 (-32600) for a batch of more than ``limit`` messages, before any of them runs."""
    if isinstance(parsed, list) and len(parsed) > limit:
        raise ProtocolError(
            400,
            INVALID_REQUEST,
            f"Invalid Request: a batch may carry at most {limit} messages, not {len(parsed)}",
        )


def split_initialize(parsed: Envelope | list[Envelope]) -> Envelope | None:
    """The ``initialize`` request of a session-era POST, if it is one.

    It must come alone, never in a batch, not even a batch of one: MCP 2025-03-26,
    Lifecycle, Initialization says the initialize request MUST NOT be part of a
    JSON-RPC batch.
    """
    messages = parsed if isinstance(parsed, list) else [parsed]
    initialize = [m for m in messages if m.kind is Kind.REQUEST and m.method == "initialize"]
    if not initialize:
        return None
    if isinstance(parsed, list):
        raise ProtocolError(400, INVALID_REQUEST, "Invalid Request: initialize must not be part of a batch")
    return initialize[0]


def check_client_state(capabilities: Any, client_info: Any) -> None:
    """400 (-32602) for an initialize whose capabilities and clientInfo, which the
    session keeps for its lifetime, exceed :data:`MAX_CLIENT_STATE_BYTES` encoded."""
    size = len(json.dumps([capabilities, client_info], separators=(",", ":"), ensure_ascii=False))
    if size > MAX_CLIENT_STATE_BYTES:
        raise ProtocolError(
            400,
            INVALID_PARAMS,
            f"Invalid params: capabilities and clientInfo may take at most {MAX_CLIENT_STATE_BYTES} "
            "bytes encoded",
        )


def subscription_size(uri: str, held: int) -> int:
    """The bytes ``uri`` adds to subscriptions already holding ``held`` bytes, or
    -32602 when it is longer than :data:`MAX_URI_BYTES` or the total would pass
    :data:`MAX_SUBSCRIPTION_BYTES`."""
    size = len(uri.encode("utf-8", "surrogatepass"))
    if size == 0:
        raise McpError(INVALID_PARAMS, "Invalid params: a resource URI must not be empty")
    if size > MAX_URI_BYTES:
        raise McpError(INVALID_PARAMS, f"Invalid params: a resource URI may be at most {MAX_URI_BYTES} bytes")
    if held + size > MAX_SUBSCRIPTION_BYTES:
        raise McpError(
            INVALID_PARAMS, f"Invalid params: subscribed URIs may take at most {MAX_SUBSCRIPTION_BYTES} bytes"
        )
    return size
