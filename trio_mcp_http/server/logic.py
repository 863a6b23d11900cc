"""What the transport serves: an :class:`~trio_mcp_http.McpServer`, or server logic that
speaks the MCP protocol itself.

An ``McpServer`` holds handlers; the transport speaks the protocol for it (initialize,
logging levels, subscriptions, ``server/discover``, input-required results).  A
:class:`ProtocolServer` is the other kind: logic with its own protocol machinery, such as
a server written for the official Python SDK.  The transport gives it exactly what it
gives every server (sessions that are nurseries, bounded streams, the drain, answered
disconnects, every limit) and hands it each request whole.

``adapt.serving`` turns what a user passes to ``serve()`` / ``McpHttpApp`` into one of
the two.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from .context import Context

__all__ = ["ProtocolServer", "ProtocolSession", "SessionOutbound"]


class SessionOutbound(Protocol):
    """What a session offers its protocol logic outside any request: the GET stream."""

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        """Send a notification on the session's standalone stream."""

    async def request(self, method: str, params: dict[str, Any] | None) -> Any:
        """Send a request to the client on the standalone stream; return its result."""


class ProtocolSession(Protocol):
    """One 2025-era session's protocol state, owned by the transport's session."""

    async def request(self, method: str, params: dict[str, Any], ctx: Context) -> Any:
        """Answer one request of the session (``initialize`` included); raise
        :class:`~trio_mcp_http.McpError` for a JSON-RPC error."""

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        """Take one notification from the client (``notifications/cancelled`` is the
        transport's: it cancels the request's task)."""

    async def aclose(self) -> None:
        """The session has ended: release what it holds.  Called once, shielded."""


class ProtocolServer(ABC):
    """Server logic that speaks MCP itself; the transport carries it."""

    #: What logs and errors call this server.
    name: str

    @abstractmethod
    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """Entered once while the app runs, around every session and request."""

    @abstractmethod
    def open_session(
        self, *, session_id: str | None, protocol_version: str, outbound: SessionOutbound
    ) -> ProtocolSession:
        """A new 2025-era session; its first request is ``initialize`` (or, with no
        session id, it serves one POST of the stateless mode)."""

    @abstractmethod
    async def stateless_request(self, method: str, params: dict[str, Any], ctx: Context) -> Any:
        """Answer one 2026-07-28 request, already checked against its headers;
        ``subscriptions/listen`` runs until cancelled, its notifications on ``ctx``."""
