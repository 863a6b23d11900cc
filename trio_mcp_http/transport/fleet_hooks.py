"""What a session, the session era and the tasks registry ask of a fleet
(``transport/fleet.py``), as protocols, so that none imports the fleet, which builds
sessions itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..cluster.backend import Backend
    from ..protocol.event_store import EventStore
    from ..protocol.jsonrpc import Envelope
    from .streams import Attachment, SseStream

__all__ = ["FleetHooks", "TaskHooks"]


class FleetHooks(Protocol):
    """The hooks of :class:`~trio_mcp_http.transport.fleet.Fleet`; ``session`` is a
    :class:`~trio_mcp_http.transport.session.Session`, ``era`` the
    :class:`~trio_mcp_http.transport.session_era.SessionEra`."""

    backend: Backend

    @property
    def tag(self) -> int: ...

    async def created(self, session: Any) -> None: ...

    async def restore(self, era: Any, session_id: str) -> None: ...

    async def delete(self, session: Any) -> None: ...

    async def save_state(self, session: Any) -> None: ...

    async def resume(self, session: Any, last_event_id: str) -> Attachment: ...

    def forgotten(self, session: Any) -> None: ...

    def touch(self, session: Any) -> None: ...

    def store(self, session: Any, local: EventStore) -> EventStore: ...

    def standalone(self, session: Any, on_change: Callable[[int], None]) -> SseStream: ...

    def carrying(self, session: Any, number: int) -> None: ...

    def finished(self, session: Any, stream: SseStream) -> None: ...

    def forward_response(self, session: Any, response: Envelope) -> None: ...

    def forward_cancel(self, session: Any, request_id: Any) -> None: ...


class TaskHooks(Protocol):
    """What :class:`~trio_mcp_http.transport.tasks.TaskRegistry` asks of the fleet: the
    shared records of the tasks this worker runs, and the bus to the worker running
    another's."""

    async def store_task(self, task_id: str, record: bytes, ttl_ms: int) -> None:
        """Store a new task's record (``McpError``, retry later, when the store does not
        answer)."""

    def save_task(self, task_id: str, record: bytes, ttl_ms: int) -> int:
        """A task's new state (queued, in order); the write's position for
        :meth:`task_written` (``-1``: dropped)."""

    async def task_written(self, position: int) -> None:
        """Until the write at ``position`` is in the store (at once for ``0``); the 503
        refusal when it is not, within the store's bound."""

    def delete_task(self, task_id: str) -> None:
        """Forget a task's record (queued)."""

    async def load_task(self, task_id: str) -> bytes | None:
        """A task's record (the 503 refusal when the store does not answer)."""

    async def send_task(self, task_id: str, kind: str, message: dict[str, Any]) -> dict[str, Any] | None:
        """A ``cancel`` or ``update`` for the worker running the task, and until it has
        confirmed it (its record then shows it): the error it refused it with, or
        ``None``.  The 503 refusal when the bus is down or no confirmation comes within
        the store's bound."""

    def confirm_task(self, task_id: str, reply: str, error: dict[str, Any] | None) -> None:
        """Confirm a ``cancel`` or ``update`` another worker sent (queued after this
        worker's writes of the task's record, so it is heard once they are applied)."""
