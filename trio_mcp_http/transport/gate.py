"""Work in progress: a count with a way to wait until there is none, and the gate
through which new work is admitted."""

from __future__ import annotations

from types import TracebackType

import trio

from ..protocol.errors import INTERNAL_ERROR, ProtocolError

__all__ = ["Gate", "InFlight"]


class InFlight:
    """Counts things in progress (requests, HTTP calls, tasks) for the drain to wait on.

    Use :meth:`enter`/:meth:`leave` where the two ends are in different places, or the
    object itself as a ``with`` block.
    """

    __slots__ = ("_count", "_idle")

    def __init__(self) -> None:
        self._count = 0
        self._idle = trio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    def enter(self) -> None:
        if self._count == 0:
            self._idle = trio.Event()
        self._count += 1

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until the count is zero (at once if it is)."""
        await self._idle.wait()

    def __enter__(self) -> None:
        self.enter()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.leave()


class Gate:
    """What the two protocol eras are handed by the app that owns them: whether new work
    is admitted, the accounting of handlers in flight, and the refusal to answer with.

    The eras never see the app itself; the app closes the gate when it drains.
    """

    __slots__ = ("admitting", "handlers", "retry_after")

    def __init__(self, retry_after: int) -> None:
        #: New sessions and requests are accepted (cleared by the drain).
        self.admitting = True
        #: Handlers running, in both eras: what the drain waits for.
        self.handlers = InFlight()
        #: ``Retry-After`` seconds on a refusal.
        self.retry_after = retry_after

    def refusal(self, reason: str = "server is shutting down") -> ProtocolError:
        """503 with ``Retry-After``: the answer to work that cannot be admitted."""
        return ProtocolError(
            503,
            INTERNAL_ERROR,
            f"Service Unavailable: {reason}",
            headers=[(b"retry-after", str(self.retry_after).encode())],
        )

    def admit(self) -> None:
        """Raise the refusal unless new work is admitted."""
        if not self.admitting:
            raise self.refusal()
