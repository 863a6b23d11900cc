"""The ``io.modelcontextprotocol/tasks`` extension of 2026-07-28 (SEP-2663): its name,
methods and statuses, and how a client declares it."""

from __future__ import annotations

from typing import Any

from .errors import MISSING_CLIENT_CAPABILITY, McpError

__all__ = ["EXTENSION", "METHODS", "TERMINAL", "declares_tasks", "missing_extension"]

#: The extension's identifier, in ``capabilities.extensions`` of both sides.
EXTENSION = "io.modelcontextprotocol/tasks"
#: The methods of the extension (``tasks/result`` and ``tasks/list`` are gone in it).
METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def declares_tasks(capabilities: dict[str, Any]) -> bool:
    """Whether a request's client capabilities declare the tasks extension."""
    extensions = capabilities.get("extensions")
    return isinstance(extensions, dict) and extensions.get(EXTENSION) is not None


def missing_extension() -> McpError:
    """-32021, naming the extension the way ``InitializeRequest.capabilities`` would."""
    return McpError(
        MISSING_CLIENT_CAPABILITY,
        f"Missing required client capability: extension {EXTENSION}",
        {"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
    )
