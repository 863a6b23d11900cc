"""Log levels of ``notifications/message`` and their order (RFC 5424 severities)."""

from __future__ import annotations

from .errors import INVALID_PARAMS, McpError

__all__ = ["LOG_LEVELS", "level_rank"]

#: RFC 5424 severities, lowest first.
LOG_LEVELS: tuple[str, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
_LEVEL_RANK = {name: rank for rank, name in enumerate(LOG_LEVELS)}


def level_rank(level: str) -> int:
    try:
        return _LEVEL_RANK[level]
    except KeyError:
        raise McpError(INVALID_PARAMS, f"Unknown log level: {level!r}") from None
