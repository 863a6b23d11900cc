"""The transport's settings, in one frozen, validated dataclass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..protocol.errors import ConfigError, UsageError
from ..protocol.event_store import EventStore, InMemoryEventStore
from ..protocol.http import HostPolicy

__all__ = ["TransportConfig"]


@dataclass(frozen=True)
class TransportConfig:
    """Settings of :class:`~trio_mcp_http.McpHttpApp`: every limit has a default and
    can be changed.  Frozen: derive variants with :func:`dataclasses.replace`."""

    #: The MCP endpoint path.
    path: str = "/mcp"
    #: Answer requests with one JSON body instead of an SSE stream (session era).
    json_response: bool = False
    #: Session era without sessions: no ``Mcp-Session-Id``, no GET stream.
    stateless: bool = False
    #: Largest accepted request body; larger ones get 413 while they are read.
    max_body_size: int = 4 * 1024 * 1024
    #: Seconds a request body may take to arrive; a slower one gets 408.
    body_timeout: float = 30.0
    #: A session with no request in flight and no open stream expires after this
    #: many seconds (``None``: never).  Keep-alive comments do not count as activity.
    session_idle_timeout: float | None = 30 * 60.0
    #: Cap on live sessions; ``initialize`` beyond it gets 503.
    max_sessions: int = 10_000
    #: Events buffered for one connection before it counts as too slow (see
    #: ``_stream.py``: the connection is ended, the client resumes from the store).
    stream_buffer_size: int = 256
    #: Seconds between ``:`` keep-alive comments on an idle stream (``None``: off).
    keepalive_interval: float | None = 15.0
    #: Finished POST streams of one session that stay resumable with ``Last-Event-ID``;
    #: older ones are forgotten with their events.
    replayable_streams: int = 32
    #: Creates each session's event store; ``None`` disables resumability.
    event_store_factory: Callable[[], EventStore] | None = InMemoryEventStore
    #: The ``retry:`` hint (ms) sent before the server closes a resumable stream.
    retry_ms: int = 1000
    #: DNS-rebinding protection; see :class:`HostPolicy`.  ``None``: derived from the
    #: address each connection arrived on (protection on for loopback, where only
    #: this machine's pages and tools are expected; off elsewhere).
    host_policy: HostPolicy | None = None
    #: Shutdown: how long in-flight requests may run before they are cancelled.
    grace_period: float = 10.0
    #: Bound on each response's final send, and on waiting for responses to finish.
    final_send_timeout: float = 1.0
    #: ``Retry-After`` (seconds) on 503 answers while shutting down or full.
    retry_after: int = 5
    #: HMAC key protecting 2026-07-28 ``requestState``; random per process if unset.
    #: Give every worker of one deployment the same key.
    request_state_key: bytes | None = None
    #: Tasks extension (2026-07-28): cap on task records, running or finished; beyond
    #: it ``optional`` task tools answer directly and ``required`` ones are refused.
    max_tasks: int = 1000
    #: Seconds a task stays reachable with ``tasks/get`` (its ``ttlMs``); its work is
    #: cancelled if still running then.  ``None``: until shutdown.
    task_ttl: float | None = 600.0
    #: The ``pollIntervalMs`` suggested to clients, in seconds.
    task_poll_interval: float = 1.0

    def __post_init__(self) -> None:
        # A wrong setting is an error here, not a server quietly running otherwise.
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ConfigError(f"path must start with '/', not {self.path!r}")
        for name in ("json_response", "stateless"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be a bool, not {getattr(self, name)!r}")
        for name in (
            "max_body_size",
            "max_sessions",
            "stream_buffer_size",
            "replayable_streams",
            "max_tasks",
        ):
            _positive(name, getattr(self, name), integer=True)
        for name in ("retry_ms", "retry_after"):
            _positive(name, getattr(self, name), integer=True, zero=True)
        for name in ("body_timeout", "task_poll_interval"):
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


def _positive(
    name: str, value: Any, *, integer: bool = False, zero: bool = False, none_hint: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise UsageError(f"{name} must be {'an integer' if integer else 'a number'}, not {value!r}")
    number = float(value)
    if number < 0 or (number == 0 and not zero) or number != number:
        hint = " (use None for never/off)" if none_hint else ""
        raise ConfigError(f"{name} must be {'>= 0' if zero else '> 0'}, not {value!r}{hint}")
