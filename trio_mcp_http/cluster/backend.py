"""What the transport asks of a store shared by every worker of a deployment.

The transport keeps serving from memory: sessions are objects in the worker that
holds them, with their nursery and streams.  A backend adds what lets *any* worker
serve *any* session:

* session records (negotiated version, client capabilities and info, log level,
  resource subscriptions, the principal the session is bound to), with the idle
  expiry and the session cap enforced for the whole fleet;
* a per-session event log, so a client resumes with ``Last-Event-ID`` on another
  worker (MCP 2025-11-25, Transports, Resumability and Redelivery);
* a bus carrying what one worker produces for a session another worker holds:
  events of the session's GET stream, answers to server-to-client requests,
  cancellations, termination, and server-wide notifications;
* task records of the 2026-07-28 tasks extension, written by the worker running the
  task, so ``tasks/get`` is answered anywhere, and the bus carrying ``tasks/cancel``
  and ``tasks/update`` to that worker.

Everything here is sans-IO apart from the :class:`Backend` protocol's coroutines:
the transport's glue (``transport/fleet.py``) implements :class:`Receiver`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ..protocol.errors import McpHttpError

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Receiver",
    "Replay",
    "SessionRecord",
    "Signal",
    "is_shareable_session_id",
    "is_shareable_task_id",
]

#: The session ids this package issues (``secrets.token_urlsafe(24)``): only these
#: are ever looked up in, or used in key names of, a shared store.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{32}\Z")


def is_shareable_session_id(session_id: str) -> bool:
    """Whether ``session_id`` has the shape of an id we issue.  Anything else (client
    data) is unknown without a round trip and never becomes part of a key."""
    return _SESSION_ID.match(session_id) is not None


def is_shareable_task_id(task_id: str) -> bool:
    """Whether ``task_id`` has the shape of a task id we issue (the same 192 random
    bits as a session id): only those are looked up in the shared store."""
    return _SESSION_ID.match(task_id) is not None


class BackendUnavailable(McpHttpError):
    """The shared store did not answer in time (down, restarting, unreachable): the
    request that needed it is refused with 503 and ``Retry-After``."""


@dataclass
class SessionRecord:
    """What a worker needs to serve a session it did not create."""

    session_id: str
    protocol_version: str
    client_capabilities: dict[str, Any]
    client_info: dict[str, Any] | None
    #: The (issuer, subject) the session is bound to, when the server requires
    #: authorization (MCP 2025-11-25, Security Best Practices, Session Hijacking).
    owner: tuple[str | None, str] | None = None
    log_level: str = "debug"
    subscriptions: set[str] = field(default_factory=set)


@dataclass
class Replay:
    """A stream's events after a resume point, as framed SSE events, and whether the
    stream has ended (its last event is stored)."""

    frames: list[tuple[int, bytes]]
    finished: bool


@dataclass
class Signal:
    """One message of the bus for one session.

    ``kind`` is one of ``event`` (``seq`` and ``frame`` of stream ``stream``),
    ``finish`` (stream ``stream`` has ended after ``seq``), ``take`` (a worker now
    carries stream ``stream``: others let go of their connection), ``response``
    (``body`` is a client's JSON-RPC response to a server-to-client request),
    ``cancel`` (``body`` is the JSON id of a client request to cancel), ``state``
    (``body`` is the session's new log level and subscriptions, JSON) and ``end`` (the
    session was deleted).

    On the tasks' channel (:meth:`Backend.send_task`), ``kind`` is ``cancel`` or
    ``update`` and ``body`` the JSON the task's worker applies, or ``done``: that
    worker's confirmation that it has applied one and its record is written (see
    ``transport/tasks.py``).
    """

    kind: str
    origin: int
    stream: int = 0
    seq: int = 0
    frame: bytes = b""
    body: bytes = b""


class Receiver(Protocol):
    """What a backend calls back into: the worker's live sessions."""

    def signal(self, session_id: str, signal: Signal) -> None:
        """A bus message for ``session_id`` (ignored if the worker does not hold it)."""

    def broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        """A server-wide notification raised on some worker (this one included)."""

    def busy_sessions(self) -> Iterable[str]:
        """Sessions with work in flight or an open stream here: kept alive fleet-wide."""

    def bus_lost(self) -> None:
        """The bus was interrupted: live events may have been missed, so every
        connection fed by it ends with a ``retry:`` hint and resumes from the log."""

    def task_signal(self, task_id: str, signal: Signal) -> None:
        """A ``tasks/cancel`` or ``tasks/update`` another worker received, for the task
        ``task_id`` (ignored if the worker does not run it), or the confirmation
        (``done``) of one this worker sent."""


class Backend(Protocol):
    """A store shared by the workers of one deployment (see the module docstring).

    The coroutines are bounded: each raises :class:`BackendUnavailable` rather than
    wait on an unreachable store.  The plain methods never wait: they queue writes,
    which one writer applies in order (and :meth:`flush` waits for), those queued
    together in one round trip.
    """

    #: Distinct per live worker (below 2**21): prefixes the stream numbers and
    #: server-to-client request ids a worker allocates, so no two workers issue the
    #: same one.  Final before the first session joins the fleet here.
    tag: int
    #: Seconds every call to the store is bounded by.
    timeout: float

    @property
    def bus_ready(self) -> bool:
        """Whether the bus is connected (live events are being received)."""

    async def run(self, receiver: Receiver, *, task_status: trio.TaskStatus[None] = ...) -> None:
        """Connect, and serve the bus and the writer until cancelled."""

    async def create_session(self, record: SessionRecord, max_sessions: int) -> bool:
        """Store a new session's record; ``False`` when the fleet holds ``max_sessions``."""

    async def load_session(self, session_id: str) -> SessionRecord | None:
        """The record of a live session, or ``None`` (unknown, expired or deleted)."""

    async def delete_session(self, session_id: str) -> None:
        """Forget the session and its events, and tell every worker it has ended."""

    async def save_state(self, session_id: str, log_level: str, subscriptions: set[str]) -> None:
        """Store a session's log level and subscriptions, and tell the other workers."""

    async def replay(self, session_id: str, stream: int, after: int) -> Replay | None:
        """Stream ``stream``'s events after ``after``; ``None`` if it cannot replay
        from there (unknown stream or resume point, or events since evicted)."""

    async def flush(self) -> None:
        """Until every queued write has been applied (or given up)."""

    def touch(self, session_id: str) -> None:
        """Activity: restart the session's idle expiry (rate-limited)."""

    def forget(self, session_id: str) -> None:
        """This worker no longer holds the session (the record stays)."""

    def mark_get(self, session_id: str) -> None:
        """The session's GET stream has been opened: broadcasts are logged for it."""

    def append(self, session_id: str, stream: int, seq: int, frame: bytes) -> None:
        """Log an event a worker published on one of its own streams (and put it on the bus)."""

    def finish(self, session_id: str, stream: int, seq: int) -> None:
        """Log that one of this worker's streams has ended after ``seq``."""

    def publish(self, session_id: str, message: bytes) -> None:
        """A message for the session's GET stream, wherever that is carried: numbered,
        logged and put on the bus by the store, so every worker sees one order."""

    def send(self, session_id: str, signal: Signal) -> None:
        """Put a ``take``, ``response`` or ``cancel`` signal on the bus."""

    def broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        """A server-wide notification: logged on the GET stream of every session it is
        for (resource subscriptions and log levels apply), and handed to every
        worker's :meth:`Receiver.broadcast`."""

    async def store_task(self, task_id: str, record: bytes, ttl_ms: int) -> None:
        """Store a new task's record before its id is given out (expiring after
        ``ttl_ms``); later changes go through :meth:`save_task`, after this one."""

    def save_task(self, task_id: str, record: bytes, ttl_ms: int) -> int:
        """Replace a task's record (queued, in order), expiring after ``ttl_ms``; the
        write's position, for :meth:`written` (``-1``: not queued)."""

    async def written(self, position: int) -> None:
        """Until the queued write at ``position`` has been applied (bounded; at once for
        ``0``).  :class:`BackendUnavailable` if it was not, or not in time."""

    def delete_task(self, task_id: str) -> None:
        """Forget a task's record before it expires (queued)."""

    async def load_task(self, task_id: str) -> bytes | None:
        """A task's record, or ``None`` (unknown or expired)."""

    def send_task(self, task_id: str, signal: Signal) -> None:
        """Put a task's ``cancel`` or ``update`` on the bus, for the worker running it,
        or that worker's ``done`` (queued: after the writes queued before it)."""
