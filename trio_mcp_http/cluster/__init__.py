"""Sessions shared by a fleet of workers (``redis_url``, docs/scaling.md).

The interface the transport uses (:class:`Backend`, :class:`Receiver`) and the Redis
implementation (:class:`~trio_mcp_http.cluster.redis.RedisBackend`, imported on
demand: it needs the ``redis`` extra).
"""

from __future__ import annotations

from .backend import (
    Backend,
    BackendUnavailable,
    Receiver,
    Replay,
    SessionRecord,
    Signal,
    is_shareable_session_id,
)

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Receiver",
    "Replay",
    "SessionRecord",
    "Signal",
    "is_shareable_session_id",
]
