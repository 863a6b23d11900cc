"""The callbacks a client is given, and how server messages reach them.

The same callbacks serve both eras: in a 2025 session a server request
(``elicitation/create``, ``sampling/createMessage``, ``roots/list``) arrives as a
JSON-RPC request and its answer is POSTed back; in the 2026-07-28 era it arrives inside
an input-required result and its answer goes into the retried request's
``inputResponses``.  Either way :meth:`Handlers.answer` produces the answer.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..protocol.errors import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, McpError, UsageError
from .types import ElicitationRequest, LogMessage, Notification, Root, SamplingRequest

__all__ = ["Handlers"]

logger = logging.getLogger("trio_mcp_http.client")

ElicitationHandler = Callable[[ElicitationRequest], Awaitable[Any]]
SamplingHandler = Callable[[SamplingRequest], Awaitable[Any]]
RootsHandler = Callable[[], Awaitable[Any]]
LogHandler = Callable[[LogMessage], Awaitable[None]]
ListChangedHandler = Callable[[str], Awaitable[None]]
ResourceUpdatedHandler = Callable[[str], Awaitable[None]]
NotificationHandler = Callable[[Notification], Awaitable[None]]

#: ``notifications/<kind>/list_changed`` -> kind.
LIST_CHANGED = {
    "notifications/tools/list_changed": "tools",
    "notifications/prompts/list_changed": "prompts",
    "notifications/resources/list_changed": "resources",
}


def check_callback(name: str, value: Any) -> None:
    """A handler must be an async function (or None): anything else is a usage error
    found when the client is opened, not when the server first calls it."""
    if value is None:
        return
    target = value.__call__ if not inspect.isfunction(value) and not inspect.ismethod(value) else value
    if not (inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(target)):
        raise UsageError(f"{name} must be an async function, not {type(value).__name__}")


def _wire(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def _with_defaults(result: Any, schema: dict[str, Any]) -> Any:
    """An accepted elicitation's content, completed with the ``default`` of each field
    the callback left out (MCP 2025-11-25, Client Features, Elicitation: primitive
    fields may carry a default, SEP-1034), so the server gets what the form showed."""
    properties = schema.get("properties")
    if not isinstance(result, dict) or result.get("action") != "accept" or not isinstance(properties, dict):
        return result
    content = result.get("content")
    content = dict(content) if isinstance(content, dict) else {}
    for name, prop in properties.items():
        if name not in content and isinstance(prop, dict) and "default" in prop:
            content[name] = prop["default"]
    return {**result, "content": content}


@dataclass(frozen=True)
class Handlers:
    elicitation: ElicitationHandler | None = None
    sampling: SamplingHandler | None = None
    roots: RootsHandler | None = None
    on_log: LogHandler | None = None
    on_list_changed: ListChangedHandler | None = None
    on_resource_updated: ResourceUpdatedHandler | None = None
    on_notification: NotificationHandler | None = None

    def capabilities(self) -> dict[str, Any]:
        """The client capabilities these handlers make good on."""
        capabilities: dict[str, Any] = {}
        if self.elicitation is not None:
            capabilities["elicitation"] = {}
        if self.sampling is not None:
            capabilities["sampling"] = {}
        if self.roots is not None:
            capabilities["roots"] = {}
        return capabilities

    async def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The result of a server request; raises :class:`McpError` for its error."""
        if method == "ping":
            return {}
        try:
            if method == "elicitation/create" and self.elicitation is not None:
                request = ElicitationRequest.model_validate(params)
                result = _with_defaults(_wire(await self.elicitation(request)), request.requested_schema)
            elif method == "sampling/createMessage" and self.sampling is not None:
                result = await self.sampling(SamplingRequest.model_validate(params))
            elif method == "roots/list" and self.roots is not None:
                roots = await self.roots()
                if isinstance(roots, list):
                    roots = {"roots": [_wire(Root.model_validate(_wire(r))) for r in roots]}
                result = roots
            else:
                raise McpError(METHOD_NOT_FOUND, f"Method not found: the client has no handler for {method}")
        except ValidationError as exc:
            raise McpError(
                INVALID_PARAMS, f"Invalid params for {method}: {exc.error_count()} errors"
            ) from exc
        result = _wire(result)
        if not isinstance(result, dict):
            raise McpError(INTERNAL_ERROR, f"the client's {method} handler returned {type(result).__name__}")
        return result

    async def deliver(self, notification: Notification) -> None:
        """Hand one server notification to the callbacks that want it."""
        method, params = notification.method, notification.params
        if method == "notifications/message" and self.on_log is not None:
            try:
                message = LogMessage.model_validate(params)
            except ValidationError:
                logger.warning("ignoring a malformed notifications/message from the server")
            else:
                await self.on_log(message)
        elif method in LIST_CHANGED and self.on_list_changed is not None:
            await self.on_list_changed(LIST_CHANGED[method])
        elif method == "notifications/resources/updated" and self.on_resource_updated is not None:
            uri = params.get("uri")
            if isinstance(uri, str):
                await self.on_resource_updated(uri)
        if self.on_notification is not None:
            await self.on_notification(notification)
