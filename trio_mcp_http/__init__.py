"""trio_mcp_http: the Model Context Protocol over Streamable HTTP, on Trio and Hypercorn.

Both protocol eras on one endpoint: the session-based 2025-03-26 / 2025-06-18 /
2025-11-25 revisions and the stateless 2026-07-28 revision.
"""

from .client import McpClient, open_mcp_client
from .protocol.errors import (
    ConfigError,
    McpError,
    McpHttpError,
    ProtocolError,
    SessionNotFound,
    StateError,
    ToolError,
    UsageError,
)
from .protocol.event_store import EventStore, InMemoryEventStore
from .protocol.http import HostPolicy
from .protocol.input_requests import InputRequest
from .protocol.types import (
    Annotations,
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    PromptMessage,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from .protocol.versions import LEGACY_VERSIONS, MODERN_VERSIONS, SUPPORTED_VERSIONS
from .server.context import Context
from .server.mcp_server import McpServer
from .serving.serve import McpHttpServer, open_mcp_server, serve
from .transport.app import McpHttpApp
from .transport.config import TransportConfig

__version__ = "0.1.0"

__all__ = [
    "LEGACY_VERSIONS",
    "MODERN_VERSIONS",
    "SUPPORTED_VERSIONS",
    "Annotations",
    "AudioContent",
    "BlobResourceContents",
    "CallToolResult",
    "ConfigError",
    "Context",
    "EmbeddedResource",
    "EventStore",
    "HostPolicy",
    "ImageContent",
    "InMemoryEventStore",
    "InputRequest",
    "McpClient",
    "McpError",
    "McpHttpApp",
    "McpHttpError",
    "McpHttpServer",
    "McpServer",
    "PromptMessage",
    "ProtocolError",
    "ResourceLink",
    "SessionNotFound",
    "StateError",
    "TextContent",
    "TextResourceContents",
    "ToolAnnotations",
    "ToolError",
    "TransportConfig",
    "UsageError",
    "open_mcp_client",
    "open_mcp_server",
    "serve",
]
