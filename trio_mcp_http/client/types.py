"""Typed results on the client side.

The content and result shapes the server side already models (``protocol/types.py``)
are reused; what only a client receives (tool and prompt definitions, list results,
notifications) is modelled here.  Every model keeps fields it does not know
(``extra="allow"``): a newer server's additions are carried, not dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..protocol.types import (
    BlobResourceContents,
    CallToolResult,
    PromptMessage,
    TextResourceContents,
    ToolAnnotations,
    _Model,
)

__all__ = [
    "CallToolResult",
    "Completion",
    "ElicitationRequest",
    "GetPromptResult",
    "Implementation",
    "LogMessage",
    "Notification",
    "Progress",
    "Prompt",
    "PromptArgument",
    "ReadResourceResult",
    "Resource",
    "ResourceTemplate",
    "Root",
    "SamplingRequest",
    "ServerDetails",
    "Tool",
]


class Implementation(_Model):
    """``serverInfo`` (or ``clientInfo``): who is at the other end."""

    name: str
    version: str
    title: str | None = None


class ServerDetails(_Model):
    """What the client learnt when it connected (``initialize`` or ``server/discover``)."""

    era: Literal["session", "stateless"]
    protocol_version: str
    capabilities: dict[str, Any] = Field(default_factory=dict)
    server_info: Implementation | None = None
    instructions: str | None = None
    #: Session era only: the ``Mcp-Session-Id`` the server issued, if it issued one.
    session_id: str | None = None


class Tool(_Model):
    name: str
    title: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=dict, alias="inputSchema")
    output_schema: dict[str, Any] | None = Field(default=None, alias="outputSchema")
    annotations: ToolAnnotations | None = None
    meta: dict[str, Any] | None = Field(default=None, alias="_meta")


class Resource(_Model):
    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = Field(default=None, alias="mimeType")
    size: int | None = None


class ResourceTemplate(_Model):
    uri_template: str = Field(alias="uriTemplate")
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = Field(default=None, alias="mimeType")


class ReadResourceResult(_Model):
    contents: list[TextResourceContents | BlobResourceContents]


class PromptArgument(_Model):
    name: str
    description: str | None = None
    required: bool | None = None


class Prompt(_Model):
    name: str
    title: str | None = None
    description: str | None = None
    arguments: list[PromptArgument] = Field(default_factory=list)


class GetPromptResult(_Model):
    description: str | None = None
    messages: list[PromptMessage]


class Completion(_Model):
    values: list[str]
    total: int | None = None
    has_more: bool | None = Field(default=None, alias="hasMore")


class Progress(_Model):
    """One ``notifications/progress`` for a request the client made."""

    progress: float
    total: float | None = None
    message: str | None = None


class LogMessage(_Model):
    """One ``notifications/message``."""

    level: str
    data: Any = None
    logger: str | None = None


class Notification(_Model):
    """A notification from the server, as received (``params`` without transport
    ``_meta`` such as the subscription id of a listen stream)."""

    method: str
    params: dict[str, Any] = Field(default_factory=dict)


class ElicitationRequest(_Model):
    """``elicitation/create`` params: what the server asks the user."""

    message: str
    requested_schema: dict[str, Any] = Field(default_factory=dict, alias="requestedSchema")
    mode: str | None = None


class SamplingRequest(_Model):
    """``sampling/createMessage`` params: what the server asks the client's model."""

    messages: list[dict[str, Any]]
    max_tokens: int = Field(alias="maxTokens")
    system_prompt: str | None = Field(default=None, alias="systemPrompt")


class Root(_Model):
    """One entry of a ``roots/list`` answer."""

    uri: str
    name: str | None = None
