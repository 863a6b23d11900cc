"""Typed MCP content and result objects (a small subset of the schema, by hand).

Handlers may return these or plain dicts; both serialize to the same JSON.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Annotations",
    "AudioContent",
    "BlobResourceContents",
    "CallToolResult",
    "Content",
    "EmbeddedResource",
    "ImageContent",
    "PromptMessage",
    "ResourceLink",
    "TextContent",
    "TextResourceContents",
    "ToolAnnotations",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class Annotations(_Model):
    audience: list[Literal["user", "assistant"]] | None = None
    priority: float | None = None
    last_modified: str | None = Field(default=None, alias="lastModified")


class TextContent(_Model):
    type: Literal["text"] = "text"
    text: str
    annotations: Annotations | None = None


class ImageContent(_Model):
    type: Literal["image"] = "image"
    data: str = Field(description="base64-encoded image bytes")
    mime_type: str = Field(alias="mimeType")
    annotations: Annotations | None = None

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str) -> ImageContent:
        return cls(data=base64.b64encode(data).decode(), mimeType=mime_type)


class AudioContent(_Model):
    type: Literal["audio"] = "audio"
    data: str
    mime_type: str = Field(alias="mimeType")
    annotations: Annotations | None = None

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str) -> AudioContent:
        return cls(data=base64.b64encode(data).decode(), mimeType=mime_type)


class TextResourceContents(_Model):
    uri: str
    mime_type: str | None = Field(default=None, alias="mimeType")
    text: str


class BlobResourceContents(_Model):
    uri: str
    mime_type: str | None = Field(default=None, alias="mimeType")
    blob: str

    @classmethod
    def from_bytes(cls, uri: str, data: bytes, mime_type: str | None = None) -> BlobResourceContents:
        return cls(uri=uri, blob=base64.b64encode(data).decode(), mimeType=mime_type)


class EmbeddedResource(_Model):
    type: Literal["resource"] = "resource"
    resource: TextResourceContents | BlobResourceContents
    annotations: Annotations | None = None


class ResourceLink(_Model):
    type: Literal["resource_link"] = "resource_link"
    uri: str
    name: str
    description: str | None = None
    mime_type: str | None = Field(default=None, alias="mimeType")


Content = TextContent | ImageContent | AudioContent | EmbeddedResource | ResourceLink


class ToolAnnotations(_Model):
    title: str | None = None
    read_only_hint: bool | None = Field(default=None, alias="readOnlyHint")
    destructive_hint: bool | None = Field(default=None, alias="destructiveHint")
    idempotent_hint: bool | None = Field(default=None, alias="idempotentHint")
    open_world_hint: bool | None = Field(default=None, alias="openWorldHint")


class CallToolResult(_Model):
    content: list[Content | dict[str, Any]] = Field(default_factory=list)
    structured_content: dict[str, Any] | None = Field(default=None, alias="structuredContent")
    is_error: bool | None = Field(default=None, alias="isError")


class PromptMessage(_Model):
    role: Literal["user", "assistant"]
    content: Content | dict[str, Any]
