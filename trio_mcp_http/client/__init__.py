"""An MCP client for Trio over Streamable HTTP, speaking both protocol eras.

Imports only the sans-IO ``protocol`` layer: it shares the library's exception
hierarchy and wire rules, never the server.
"""

from .errors import HttpStatusError, ResultValidationError, TransportError
from .mcp_client import McpClient, Subscription, open_mcp_client
from .transport import Incoming, StreamableHttp, Transport
from .types import (
    CallToolResult,
    Completion,
    ElicitationRequest,
    GetPromptResult,
    Implementation,
    LogMessage,
    Notification,
    Progress,
    Prompt,
    PromptArgument,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    Root,
    SamplingRequest,
    ServerDetails,
    Tool,
)

__all__ = [
    "CallToolResult",
    "Completion",
    "ElicitationRequest",
    "GetPromptResult",
    "HttpStatusError",
    "Implementation",
    "Incoming",
    "LogMessage",
    "McpClient",
    "Notification",
    "Progress",
    "Prompt",
    "PromptArgument",
    "ReadResourceResult",
    "Resource",
    "ResourceTemplate",
    "ResultValidationError",
    "Root",
    "SamplingRequest",
    "ServerDetails",
    "StreamableHttp",
    "Subscription",
    "Tool",
    "Transport",
    "TransportError",
    "open_mcp_client",
]
