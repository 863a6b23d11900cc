"""What can be served: an ``McpServer``, a ``ProtocolServer``, or a server written for
the official MCP SDK or FastMCP (adapted); anything else is a ``UsageError``."""

from __future__ import annotations

from ..protocol.errors import UsageError
from .logic import ProtocolServer
from .mcp_server import McpServer

__all__ = ["serving"]


def serving(server: object) -> McpServer | ProtocolServer:
    """What the transport serves for ``server``: an ``McpServer`` or a ``ProtocolServer``
    as they are, a server written for the official SDK (or FastMCP) adapted."""
    if isinstance(server, McpServer | ProtocolServer):
        return server
    modules = {cls.__module__.partition(".")[0] for cls in type(server).__mro__}
    if modules & {"mcp", "fastmcp"}:
        from .sdk import adapt

        return adapt(server)
    raise UsageError(
        f"cannot serve a {type(server).__module__}.{type(server).__qualname__}: expected a "
        "trio_mcp_http.McpServer, an official MCP SDK server (mcp.server.lowlevel.Server or "
        "mcp.server.mcpserver.MCPServer) or a FastMCP server"
    )
