"""Protocol revisions this library speaks, and the rules for choosing one."""

from __future__ import annotations

__all__ = [
    "DEFAULT_LEGACY_VERSION",
    "LATEST_LEGACY_VERSION",
    "LEGACY_VERSIONS",
    "MODERN_VERSIONS",
    "SUPPORTED_VERSIONS",
]

#: Session-based revisions: ``initialize``, ``Mcp-Session-Id``, GET streams.
LEGACY_VERSIONS: tuple[str, ...] = ("2025-03-26", "2025-06-18", "2025-11-25")
#: Stateless revisions: ``server/discover``, per-request ``_meta``.
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
SUPPORTED_VERSIONS: tuple[str, ...] = LEGACY_VERSIONS + MODERN_VERSIONS
LATEST_LEGACY_VERSION = LEGACY_VERSIONS[-1]
#: With no header and nothing else to go on, assume the first revision (2025-11-25
#: basic/transports §protocol version header).
DEFAULT_LEGACY_VERSION = "2025-03-26"


def negotiate_legacy(requested: object) -> str:
    """Echo a supported requested version, otherwise answer with our latest (2025-11-25
    basic/lifecycle §version negotiation)."""
    if isinstance(requested, str) and requested in LEGACY_VERSIONS:
        return requested
    return LATEST_LEGACY_VERSION


def at_least(version: str, minimum: str) -> bool:
    """Revisions are ISO dates, so they compare as strings."""
    return version >= minimum
