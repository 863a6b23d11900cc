"""The transport's settings, in one frozen, validated dataclass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ..protocol.auth import TokenVerifier
from ..protocol.errors import ConfigError, UsageError
from ..protocol.event_store import EventStore, InMemoryEventStore
from ..protocol.http import HostPolicy

__all__ = ["TransportConfig", "TransportSettings"]


def _setting(default: Any, help: str) -> Any:
    """A field with its help text (read by the command line and the docs)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TransportConfig:
    """Settings of :class:`~trio_mcp_http.McpHttpApp`: every limit has a default and
    can be changed.  Frozen: derive variants with :func:`dataclasses.replace`."""

    path: str = _setting("/mcp", "The MCP endpoint path.")
    json_response: bool = _setting(
        False, "Answer requests with one JSON body instead of an SSE stream (session era)."
    )
    stateless: bool = _setting(False, "Session era without sessions: no Mcp-Session-Id, no GET stream.")
    max_body_size: int = _setting(
        4 * 1024 * 1024, "Largest accepted request body; larger ones get 413 while they are read."
    )
    body_timeout: float = _setting(30.0, "Seconds a request body may take to arrive; a slower one gets 408.")
    max_batch_size: int = _setting(
        64,
        "Messages in one 2025-03-26 JSON-RPC batch; a larger batch (or, with SSE answers, one "
        "not smaller than stream_buffer_size) is refused with 400.",
    )
    send_timeout: float = _setting(
        30.0,
        "Seconds one write of a response may wait for the client to take data (TCP or HTTP/2 "
        "flow control); a client slower than that is treated as gone.",
    )
    session_idle_timeout: float | None = _setting(
        30 * 60.0,
        "A session with no request in flight and no open stream expires after this many seconds "
        "(None: never).  Keep-alive comments do not count as activity.",
    )
    max_sessions: int = _setting(
        10_000,
        "Cap on live sessions; at the cap, initialize ends the least recently used idle "
        "session, and gets 503 only when every session is busy.",
    )
    max_requests_per_session: int = _setting(
        100,
        "Requests of one session whose handlers may run at once; beyond it a request is "
        "answered with a JSON-RPC error (-32600) without running.",
    )
    max_listeners: int = _setting(
        1000, "Open 2026-07-28 subscriptions/listen streams; beyond it a new one gets 503."
    )
    stream_buffer_size: int = _setting(
        256,
        "Events buffered for one connection before it counts as too slow: the connection is "
        "ended and the client resumes from the event store.",
    )
    keepalive_interval: float | None = _setting(
        15.0, "Seconds between : keep-alive comments on an idle stream (None: off)."
    )
    replayable_streams: int = _setting(
        32,
        "Finished POST streams of one session that stay resumable with Last-Event-ID; older ones "
        "are forgotten with their events.",
    )
    event_store_factory: Callable[[], EventStore] | None = _setting(
        InMemoryEventStore, "Creates each session's event store; None disables resumability."
    )
    retry_ms: int = _setting(1000, "The retry: hint (ms) sent before the server closes a resumable stream.")
    host_policy: HostPolicy | None = _setting(
        None,
        "DNS-rebinding protection (a HostPolicy).  None: derived from the address each connection "
        "arrived on (protection on for loopback, where only this machine's pages and tools are "
        "expected; off elsewhere).",
    )
    grace_period: float = _setting(
        10.0, "Shutdown: how long in-flight requests may run before they are cancelled."
    )
    final_send_timeout: float = _setting(
        1.0, "Bound on each response's final send, and on waiting for responses to finish."
    )
    retry_after: int = _setting(5, "Retry-After (seconds) on 503 answers while shutting down or full.")
    request_state_key: bytes | None = _setting(
        None,
        "HMAC key protecting 2026-07-28 requestState; random per process if unset. Give every "
        "worker of one deployment the same key.",
    )
    max_tasks: int = _setting(
        1000,
        "Tasks extension (2026-07-28): cap on task records, running or finished; beyond it optional"
        " task tools answer directly and required ones are refused.",
    )
    max_task_bytes: int = _setting(
        64 * 1024 * 1024,
        "Tasks extension: bytes of all finished tasks' results kept for tasks/get; the oldest "
        "finished tasks are forgotten to make room, and a result larger than this fails its "
        "task.",
    )
    task_ttl: float | None = _setting(
        600.0,
        "Seconds a task stays reachable with tasks/get (its ttlMs); its work is cancelled if still "
        "running then.  None: until shutdown.",
    )
    task_poll_interval: float = _setting(1.0, "The pollIntervalMs suggested to clients, in seconds.")
    auth_issuer: str | None = _setting(
        None,
        "OAuth 2.1 authorization (MCP Authorization, docs/auth.md): the issuer URL of the "
        "authorization server.  Set, every request needs a valid bearer token; needs auth_resource "
        "and the auth extra.",
    )
    auth_resource: str | None = _setting(
        None,
        "This server's canonical URI (https://host/mcp): the audience its tokens must name "
        "(RFC 8707) and the resource its metadata describes (RFC 9728).",
    )
    auth_jwks_url: str | None = _setting(
        None, "URL of the key set for JWT access tokens.  Unset: the jwks_uri of the issuer's metadata."
    )
    auth_introspection_url: str | None = _setting(
        None, "RFC 7662 introspection endpoint: tokens (opaque ones too) are checked there instead."
    )
    auth_client_id: str | None = _setting(
        None, "The client id this server presents to the introspection endpoint."
    )
    auth_client_secret_file: str | None = _setting(
        None, "A file holding that client's secret (kept off the command line)."
    )
    auth_scopes_supported: str | None = _setting(
        None, "Scopes advertised in the protected resource metadata (space-separated)."
    )
    auth_required_scopes: str | None = _setting(
        None,
        "Scopes every request needs (space-separated): named in the 401 challenge; a token "
        "without them gets 403 insufficient_scope.",
    )
    auth_verifier: TokenVerifier | None = _setting(
        None,
        "A TokenVerifier (async verify(token) -> Principal) checking tokens instead of "
        "auth_jwks_url or auth_introspection_url (Python only).",
    )
    redis_url: str | None = _setting(
        None,
        "Share sessions, event logs and notifications with every worker using this Redis "
        "server (redis://host:port/db, rediss://..., unix:///path): any worker then serves any "
        "session, with no sticky balancing (docs/scaling.md).  Needs the redis extra.",
    )

    def __post_init__(self) -> None:
        # A wrong setting is an error here, not a server quietly running otherwise.
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ConfigError(f"path must start with '/', not {self.path!r}")
        for name in ("json_response", "stateless"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be a bool, not {getattr(self, name)!r}")
        for name in (
            "max_body_size",
            "max_batch_size",
            "max_sessions",
            "max_requests_per_session",
            "max_listeners",
            "stream_buffer_size",
            "replayable_streams",
            "max_tasks",
            "max_task_bytes",
        ):
            _positive(name, getattr(self, name), integer=True)
        for name in ("retry_ms", "retry_after"):
            _positive(name, getattr(self, name), integer=True, zero=True)
        for name in ("body_timeout", "send_timeout", "task_poll_interval"):
            _positive(name, getattr(self, name))
        for name in ("grace_period", "final_send_timeout"):
            _positive(name, getattr(self, name), zero=True)
        # ``None`` is the one way to say "never" / "off"; 0 is not a second spelling.
        for name in ("session_idle_timeout", "keepalive_interval", "task_ttl"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value, none_hint=True)
        if not isinstance(self.host_policy, HostPolicy) and self.host_policy is not None:
            raise UsageError(f"host_policy must be a HostPolicy or None, not {self.host_policy!r}")
        if self.event_store_factory is not None and not callable(self.event_store_factory):
            raise UsageError("event_store_factory must be callable (or None to disable resumability)")
        if self.request_state_key is not None and (
            not isinstance(self.request_state_key, bytes) or len(self.request_state_key) < 16
        ):
            raise ConfigError("request_state_key must be at least 16 bytes")
        self._check_auth()
        if self.redis_url is not None and (
            not isinstance(self.redis_url, str)
            or not self.redis_url.startswith(("redis://", "rediss://", "unix://"))
        ):
            url = self.redis_url
            raise ConfigError(f"redis_url must be a redis://, rediss:// or unix:// URL, not {url!r}")

    def _check_auth(self) -> None:
        names = (
            "auth_issuer",
            "auth_resource",
            "auth_jwks_url",
            "auth_introspection_url",
            "auth_client_id",
            "auth_client_secret_file",
            "auth_scopes_supported",
            "auth_required_scopes",
        )
        for name in names:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise UsageError(f"{name} must be a string or None, not {value!r}")
        if self.auth_verifier is not None and not isinstance(self.auth_verifier, TokenVerifier):
            verifier = self.auth_verifier
            raise UsageError(f"auth_verifier must have an async verify(token) method, not {verifier!r}")
        if self.auth_issuer is None:
            others = [name for name in (*names[1:], "auth_verifier") if getattr(self, name) is not None]
            if others:
                raise ConfigError(f"{', '.join(others)} need auth_issuer, which switches authorization on")


class TransportSettings(TypedDict, total=False):
    """The fields of :class:`TransportConfig`, as keyword arguments of
    :func:`~trio_mcp_http.serve` and :func:`~trio_mcp_http.open_mcp_server`."""

    path: str
    json_response: bool
    stateless: bool
    max_body_size: int
    body_timeout: float
    max_batch_size: int
    send_timeout: float
    session_idle_timeout: float | None
    max_sessions: int
    max_requests_per_session: int
    max_listeners: int
    stream_buffer_size: int
    keepalive_interval: float | None
    replayable_streams: int
    event_store_factory: Callable[[], EventStore] | None
    retry_ms: int
    host_policy: HostPolicy | None
    grace_period: float
    final_send_timeout: float
    retry_after: int
    request_state_key: bytes | None
    max_tasks: int
    max_task_bytes: int
    task_ttl: float | None
    task_poll_interval: float
    auth_issuer: str | None
    auth_resource: str | None
    auth_jwks_url: str | None
    auth_introspection_url: str | None
    auth_client_id: str | None
    auth_client_secret_file: str | None
    auth_scopes_supported: str | None
    auth_required_scopes: str | None
    auth_verifier: TokenVerifier | None
    redis_url: str | None


def _positive(
    name: str, value: Any, *, integer: bool = False, zero: bool = False, none_hint: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise UsageError(f"{name} must be {'an integer' if integer else 'a number'}, not {value!r}")
    number = float(value)
    if number < 0 or (number == 0 and not zero) or number != number:
        hint = " (use None for never/off)" if none_hint else ""
        raise ConfigError(f"{name} must be {'>= 0' if zero else '> 0'}, not {value!r}{hint}")
