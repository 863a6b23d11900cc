"""A count of work in progress, and a way to wait until there is none."""

from __future__ import annotations

from types import TracebackType

import trio

__all__ = ["InFlight"]


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
