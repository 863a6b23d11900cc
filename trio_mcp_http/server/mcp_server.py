"""``McpServer``: registrations of tools, resources, prompts and completions, and the
era-neutral dispatch of MCP methods to them."""

from __future__ import annotations

import base64
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_type_hints

import trio
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic_core import to_jsonable_python

from ..protocol.auth import scope_list
from ..protocol.errors import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    ConfigError,
    McpError,
    ToolError,
    UsageError,
)
from ..protocol.levels import LOG_LEVELS
from ..protocol.types import (
    BlobResourceContents,
    CallToolResult,
    PromptMessage,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
    _Model,
)
from .context import Context, InputRequired

__all__ = ["McpServer"]

logger = logging.getLogger("trio_mcp_http")

Handler = Callable[..., Awaitable[Any]]
#: How a tool takes part in the tasks extension (SEP-2663, 2026-07-28 era).
TaskSupport = Literal["forbidden", "optional", "required"]
#: When a task-supporting tool's task begins: before its handler runs, or when the
#: handler calls :meth:`Context.start_task` (after gathering input by MRTR).
TaskStart = Literal["immediate", "explicit"]


def _wire(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.to_wire()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def _context_param(fn: Callable[..., Any], hints: dict[str, Any]) -> str | None:
    for name in inspect.signature(fn).parameters:
        if hints.get(name) is Context:
            return name
    return None


class _InvalidArguments(Exception):
    """The request's arguments do not fit the handler (unlike a handler's own ValidationError)."""


@dataclass
class _Signature:
    """A handler's arguments: validated by a pydantic model built from its hints."""

    fn: Handler
    model: type[BaseModel] | None
    context_param: str | None
    json_schema: dict[str, Any]
    #: The function's own signature, for binding pass-through arguments.
    python_signature: inspect.Signature

    @classmethod
    def of(cls, fn: Handler) -> _Signature:
        if not inspect.iscoroutinefunction(fn):
            raise UsageError(f"{fn.__qualname__} must be an async function")
        hints = get_type_hints(fn, include_extras=True)
        ctx_name = _context_param(fn, hints)
        python_signature = inspect.signature(fn)
        fields: dict[str, Any] = {}
        for name, param in python_signature.parameters.items():
            if name == ctx_name:
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise UsageError(f"{fn.__qualname__}: *args/**kwargs are not supported")
            annotation = hints.get(name, Any)
            default = ... if param.default is param.empty else param.default
            fields[name] = (annotation, default)
        model = create_model(
            f"{fn.__name__}_arguments",
            __config__=ConfigDict(arbitrary_types_allowed=True),
            **fields,
        )
        schema = model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        schema.setdefault("properties", {})
        return cls(fn, model, ctx_name, schema, python_signature)

    async def call(self, arguments: dict[str, Any], ctx: Context) -> Any:
        if self.model is not None:
            try:
                validated = self.model.model_validate(arguments)
            except ValidationError as exc:
                raise _InvalidArguments(exc) from None
            kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        else:
            kwargs = dict(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        if self.model is None:
            try:
                self.python_signature.bind(**kwargs)
            except TypeError as exc:
                raise _InvalidArguments(exc) from None
        return await self.fn(**kwargs)


@dataclass
class _Tool:
    name: str
    signature: _Signature
    definition: dict[str, Any]
    output_schema: dict[str, Any] | None
    task_support: TaskSupport = "forbidden"
    task_start: TaskStart = "immediate"
    #: OAuth scopes a call needs (checked by the transport before the handler runs).
    scopes: tuple[str, ...] = ()


@dataclass
class _Resource:
    uri: str
    signature: _Signature
    definition: dict[str, Any]
    mime_type: str | None
    scopes: tuple[str, ...] = ()


@dataclass
class _Template:
    pattern: re.Pattern[str]
    signature: _Signature
    definition: dict[str, Any]
    mime_type: str | None
    scopes: tuple[str, ...] = ()


@dataclass
class _Prompt:
    name: str
    signature: _Signature
    definition: dict[str, Any]
    scopes: tuple[str, ...] = ()


def _template_regex(template: str) -> re.Pattern[str]:
    """RFC 6570 templates, levels 1-2: ``{var}`` matches one segment, ``{+var}`` any."""
    out = []
    pos = 0
    for match in re.finditer(r"\{([+#]?)([A-Za-z0-9_]+)\*?\}", template):
        out.append(re.escape(template[pos : match.start()]))
        op, name = match.groups()
        out.append(f"(?P<{name}>.+)" if op else f"(?P<{name}>[^/?#]+)")
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + r"\Z")


def _paginate(items: Sequence[Any], cursor: Any, page_size: int) -> tuple[list[Any], str | None]:
    start = 0
    if cursor is not None:
        try:
            start = int(base64.urlsafe_b64decode(str(cursor).encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise McpError(INVALID_PARAMS, "Invalid cursor") from None
        if not 0 <= start <= len(items):
            raise McpError(INVALID_PARAMS, "Invalid cursor")
    end = start + page_size
    next_cursor = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return list(items[start:end]), next_cursor


class McpServer:
    """An MCP server: what it offers, independent of the transport serving it.

    Register handlers with the decorators; handlers are plain Trio async functions.
    One instance can be served by any number of :class:`~trio_mcp_http.McpHttpApp`.
    """

    def __init__(
        self,
        name: str,
        version: str,
        *,
        title: str | None = None,
        instructions: str | None = None,
        page_size: int = 100,
        list_ttl_ms: int = 60_000,
    ) -> None:
        self.name = name
        self.version = version
        self.title = title
        self.instructions = instructions
        self.page_size = page_size
        #: Caching hint for list results in the 2026-07-28 era.
        self.list_ttl_ms = list_ttl_ms
        self._tools: dict[str, _Tool] = {}
        self._resources: dict[str, _Resource] = {}
        self._templates: list[_Template] = []
        self._prompts: dict[str, _Prompt] = {}
        self._completion: Handler | None = None
        self._subscribe_hook: Callable[[str, bool], Awaitable[None]] | None = None
        self._listeners: list[Callable[[str, dict[str, Any] | None], None]] = []
        self._methods: dict[str, Callable[[dict[str, Any], Context], Awaitable[Any]]] = {
            "ping": self._ping,
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
            "resources/list": self._resources_list,
            "resources/templates/list": self._templates_list,
            "resources/read": self._resources_read,
            "prompts/list": self._prompts_list,
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
        }

    # -- identity ---------------------------------------------------------------------

    @property
    def server_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.title is not None:
            info["title"] = self.title
        return info

    def capabilities(self) -> dict[str, Any]:
        """Server capabilities, advertised from what is registered."""
        caps: dict[str, Any] = {"logging": {}}
        if self._tools:
            caps["tools"] = {"listChanged": True}
        if self._resources or self._templates:
            caps["resources"] = {"subscribe": True, "listChanged": True}
        if self._prompts:
            caps["prompts"] = {"listChanged": True}
        if self._completion is not None:
            caps["completions"] = {}
        return caps

    # -- registration -----------------------------------------------------------------

    def tool(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | dict[str, Any] | None = None,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        task_support: TaskSupport = "forbidden",
        task_start: TaskStart = "immediate",
        scopes: str | Sequence[str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a tool.

        The input schema comes from the function's type hints (validated with pydantic)
        unless ``input_schema`` is given, in which case it is advertised unchanged and
        the arguments are passed through as keyword arguments.  With ``output_schema``
        the tool returns structured content (a dict or a pydantic model).

        ``task_support`` opts the tool into the tasks extension of the 2026-07-28 era
        (SEP-2663): a client that declares ``io.modelcontextprotocol/tasks`` gets a
        ``CreateTaskResult`` and polls ``tasks/get``; other clients are answered
        directly (``"optional"``) or refused with -32021 (``"required"``).  With
        ``task_start="explicit"`` the task begins only when the handler calls
        :meth:`Context.start_task`, so it can gather input by MRTR first.

        ``scopes``: OAuth scopes a call needs where the server requires authorization
        (docs/auth.md); a token without them gets 403 ``insufficient_scope`` and the
        handler does not run.
        """
        required = scope_list(scopes, "scopes")
        if task_support not in ("forbidden", "optional", "required"):
            raise ConfigError(f"task_support must be forbidden, optional or required, not {task_support!r}")
        if task_start not in ("immediate", "explicit"):
            raise ConfigError(f"task_start must be immediate or explicit, not {task_start!r}")

        def register(fn: Handler) -> Handler:
            signature = _Signature.of(fn)
            tool_name = name or fn.__name__
            if input_schema is not None:
                signature.model = None  # advertised verbatim; arguments pass through
            schema = dict(input_schema) if input_schema is not None else signature.json_schema
            definition: dict[str, Any] = {"name": tool_name, "inputSchema": schema}
            if title is not None:
                definition["title"] = title
            doc = description if description is not None else inspect.getdoc(fn)
            if doc:
                definition["description"] = doc
            if annotations is not None:
                definition["annotations"] = _wire(annotations)
            if output_schema is not None:
                definition["outputSchema"] = output_schema
            if meta is not None:
                definition["_meta"] = meta
            self._tools[tool_name] = _Tool(
                tool_name, signature, definition, output_schema, task_support, task_start, required
            )
            self._changed("notifications/tools/list_changed")
            return fn

        return register

    def remove_tool(self, name: str) -> None:
        del self._tools[name]
        self._changed("notifications/tools/list_changed")

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
        scopes: str | Sequence[str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a resource; a URI with ``{placeholders}`` registers a template.

        The function returns ``str`` (text), ``bytes`` (a blob) or a list of resource
        contents; template placeholders are passed as keyword arguments.  ``scopes``:
        OAuth scopes a read needs (see :meth:`tool`).
        """
        required = scope_list(scopes, "scopes")

        def register(fn: Handler) -> Handler:
            signature = _Signature.of(fn)
            definition: dict[str, Any] = {"name": name or fn.__name__}
            if title is not None:
                definition["title"] = title
            doc = description if description is not None else inspect.getdoc(fn)
            if doc:
                definition["description"] = doc
            if mime_type is not None:
                definition["mimeType"] = mime_type
            if "{" in uri:
                definition = {"uriTemplate": uri, **definition}
                self._templates.append(
                    _Template(_template_regex(uri), signature, definition, mime_type, required)
                )
            else:
                definition = {"uri": uri, **definition}
                if size is not None:
                    definition["size"] = size
                self._resources[uri] = _Resource(uri, signature, definition, mime_type, required)
            self._changed("notifications/resources/list_changed")
            return fn

        return register

    def prompt(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        scopes: str | Sequence[str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a prompt; its parameters become the prompt's arguments.

        The function returns a string (one user message) or a list of messages.
        ``scopes``: OAuth scopes a ``prompts/get`` needs (see :meth:`tool`).
        """
        needed = scope_list(scopes, "scopes")

        def register(fn: Handler) -> Handler:
            signature = _Signature.of(fn)
            prompt_name = name or fn.__name__
            required = set(signature.json_schema.get("required", []))
            arguments = []
            for arg, prop in signature.json_schema.get("properties", {}).items():
                entry: dict[str, Any] = {"name": arg, "required": arg in required}
                if isinstance(prop, dict) and "description" in prop:
                    entry["description"] = prop["description"]
                arguments.append(entry)
            definition: dict[str, Any] = {"name": prompt_name, "arguments": arguments}
            if title is not None:
                definition["title"] = title
            doc = description if description is not None else inspect.getdoc(fn)
            if doc:
                definition["description"] = doc
            self._prompts[prompt_name] = _Prompt(prompt_name, signature, definition, needed)
            self._changed("notifications/prompts/list_changed")
            return fn

        return register

    def completion(self) -> Callable[[Handler], Handler]:
        """Register the ``completion/complete`` handler.

        Called as ``fn(ref, argument, context)`` with the request's dicts; returns a
        list of values or a ``{"values": ..., "total": ..., "hasMore": ...}`` dict.
        """

        def register(fn: Handler) -> Handler:
            self._completion = fn
            return fn

        return register

    def on_subscribe(self) -> Callable[[Callable[[str, bool], Awaitable[None]]], Any]:
        """Register a hook called with ``(uri, subscribed)`` on resource (un)subscribe."""

        def register(fn: Callable[[str, bool], Awaitable[None]]) -> Any:
            self._subscribe_hook = fn
            return fn

        return register

    # -- notifications to every connected client --------------------------------------

    def add_listener(self, listener: Callable[[str, dict[str, Any] | None], None]) -> None:
        """Transports register here to hear of server-wide notifications."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str, dict[str, Any] | None], None]) -> None:
        self._listeners.remove(listener)

    def _changed(self, method: str, params: dict[str, Any] | None = None) -> None:
        for listener in self._listeners:
            listener(method, params)

    def notify_tools_changed(self) -> None:
        self._changed("notifications/tools/list_changed")

    def notify_prompts_changed(self) -> None:
        self._changed("notifications/prompts/list_changed")

    def notify_resources_changed(self) -> None:
        self._changed("notifications/resources/list_changed")

    def notify_resource_updated(self, uri: str) -> None:
        """Tell subscribers of ``uri`` that it changed (``notifications/resources/updated``)."""
        self._changed("notifications/resources/updated", {"uri": uri})

    def broadcast_log(self, level: str, data: Any, logger_name: str | None = None) -> None:
        """Send ``notifications/message`` to every session that listens (session era)."""
        if level not in LOG_LEVELS:
            raise ConfigError(f"unknown log level {level!r}")
        params: dict[str, Any] = {"level": level, "data": data}
        if logger_name is not None:
            params["logger"] = logger_name
        self._changed("notifications/message", params)

    # -- dispatch ---------------------------------------------------------------------

    def tool_definition(self, name: str) -> dict[str, Any] | None:
        tool = self._tools.get(name)
        return None if tool is None else tool.definition

    def tool_task_support(self, name: str) -> tuple[TaskSupport, TaskStart]:
        """A tool's task support and start (unknown tools: ``("forbidden", "immediate")``)."""
        tool = self._tools.get(name)
        return ("forbidden", "immediate") if tool is None else (tool.task_support, tool.task_start)

    @property
    def supports_tasks(self) -> bool:
        """Whether any registered tool can run as a task (advertise the extension)."""
        return any(t.task_support != "forbidden" for t in self._tools.values())

    def required_scopes(self, method: str, params: dict[str, Any] | None) -> tuple[str, ...]:
        """The OAuth scopes a ``tools/call``, ``resources/read`` or ``prompts/get``
        request needs, from its target's registration (nothing for other methods, or a
        target that does not exist: that request fails on its own)."""
        params = params if isinstance(params, dict) else {}
        name = params.get("name")
        if method == "tools/call":
            tool = self._tools.get(name) if isinstance(name, str) else None
            return () if tool is None else tool.scopes
        if method == "prompts/get":
            prompt = self._prompts.get(name) if isinstance(name, str) else None
            return () if prompt is None else prompt.scopes
        if method == "resources/read":
            uri = params.get("uri")
            resource = self._resources.get(uri) if isinstance(uri, str) else None
            if resource is not None:
                return resource.scopes
            if isinstance(uri, str):
                for template in self._templates:
                    if template.pattern.match(uri):
                        return template.scopes
        return ()

    def has_method(self, method: str) -> bool:
        return method in self._methods

    async def dispatch(self, method: str, params: dict[str, Any], ctx: Context) -> Any:
        """Answer one request; raises :class:`McpError` for a JSON-RPC error."""
        handler = self._methods.get(method)
        if handler is None:
            raise McpError(METHOD_NOT_FOUND, f"Method not found: {method}")
        return await handler(params, ctx)

    async def _ping(self, params: dict[str, Any], ctx: Context) -> Any:
        return {}

    def _require(self, capability: str) -> None:
        if capability not in self.capabilities():
            raise McpError(METHOD_NOT_FOUND, f"Method not found: server has no {capability}")

    async def _tools_list(self, params: dict[str, Any], ctx: Context) -> Any:
        self._require("tools")
        page, cursor = _paginate(list(self._tools.values()), params.get("cursor"), self.page_size)
        result: dict[str, Any] = {"tools": [t.definition for t in page]}
        if cursor is not None:
            result["nextCursor"] = cursor
        return result

    async def _tools_call(self, params: dict[str, Any], ctx: Context) -> Any:
        self._require("tools")
        name = params.get("name")
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None:
            raise McpError(INVALID_PARAMS, f"Unknown tool: {name}")
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise McpError(INVALID_PARAMS, '"arguments" must be an object')
        try:
            value = await tool.signature.call(arguments, ctx)
        except _InvalidArguments as exc:
            # SEP-1303: bad arguments are a tool execution error the model can fix.
            return _error_result(f"Invalid arguments for tool {tool.name}: {exc}")
        except ToolError as exc:
            return _error_result(str(exc))
        except (McpError, InputRequired, trio.Cancelled):
            raise
        except Exception as exc:
            logger.exception("tool %s failed", tool.name)
            return _error_result(f"Tool {tool.name} failed: {exc}")
        return _tool_result(value, tool.output_schema)

    async def _resources_list(self, params: dict[str, Any], ctx: Context) -> Any:
        self._require("resources")
        items = [r.definition for r in self._resources.values()]
        page, cursor = _paginate(items, params.get("cursor"), self.page_size)
        result: dict[str, Any] = {"resources": page}
        if cursor is not None:
            result["nextCursor"] = cursor
        return result

    async def _templates_list(self, params: dict[str, Any], ctx: Context) -> Any:
        self._require("resources")
        items = [t.definition for t in self._templates]
        page, cursor = _paginate(items, params.get("cursor"), self.page_size)
        result: dict[str, Any] = {"resourceTemplates": page}
        if cursor is not None:
            result["nextCursor"] = cursor
        return result

    def _find_resource(self, uri: str) -> tuple[_Signature, dict[str, Any], str | None] | None:
        resource = self._resources.get(uri)
        if resource is not None:
            return resource.signature, {}, resource.mime_type
        for template in self._templates:
            match = template.pattern.match(uri)
            if match:
                return template.signature, match.groupdict(), template.mime_type
        return None

    async def _resources_read(self, params: dict[str, Any], ctx: Context) -> Any:
        self._require("resources")
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise McpError(INVALID_PARAMS, '"uri" must be a string')
        found = self._find_resource(uri)
        if found is None:
            raise McpError(RESOURCE_NOT_FOUND, "Resource not found", {"uri": uri})
        signature, arguments, mime_type = found
        try:
            value = await signature.call(arguments, ctx)
        except _InvalidArguments as exc:
            raise McpError(INVALID_PARAMS, f"Invalid resource URI {uri}: {exc}") from None
        return {"contents": _resource_contents(uri, value, mime_type)}

    async def subscribe(self, uri: str, subscribed: bool) -> None:
        if self._subscribe_hook is not None:
            await self._subscribe_hook(uri, subscribed)

    async def _prompts_list(self, params: dict[str, Any], ctx: Context) -> Any:
        self._require("prompts")
        items = [p.definition for p in self._prompts.values()]
        page, cursor = _paginate(items, params.get("cursor"), self.page_size)
        result: dict[str, Any] = {"prompts": page}
        if cursor is not None:
            result["nextCursor"] = cursor
        return result

    async def _prompts_get(self, params: dict[str, Any], ctx: Context) -> Any:
        self._require("prompts")
        name = params.get("name")
        prompt = self._prompts.get(name) if isinstance(name, str) else None
        if prompt is None:
            raise McpError(INVALID_PARAMS, f"Unknown prompt: {name}")
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise McpError(INVALID_PARAMS, '"arguments" must be an object')
        try:
            value = await prompt.signature.call(arguments, ctx)
        except _InvalidArguments as exc:
            raise McpError(INVALID_PARAMS, f"Invalid arguments for prompt {name}: {exc}") from None
        result: dict[str, Any] = {"messages": _prompt_messages(value)}
        if "description" in prompt.definition:
            result["description"] = prompt.definition["description"]
        return result

    async def _complete(self, params: dict[str, Any], ctx: Context) -> Any:
        if self._completion is None:
            raise McpError(METHOD_NOT_FOUND, "Method not found: server has no completions")
        ref = params.get("ref")
        argument = params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict):
            raise McpError(INVALID_PARAMS, '"ref" and "argument" must be objects')
        value = await self._completion(ref, argument, params.get("context") or {})
        if isinstance(value, dict):
            completion = dict(value)
        else:
            values = list(value or [])
            completion = {"values": values[:100], "total": len(values), "hasMore": len(values) > 100}
        return {"completion": completion}


def _error_result(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


_json_text = TypeAdapter(Any)


def _tool_result(value: Any, output_schema: dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, CallToolResult):
        return value.to_wire()
    if isinstance(value, dict) and "content" in value and output_schema is None:
        return value
    if output_schema is not None and value is None:
        # A declared output schema promises structured content (MCP: MUST conform).
        return _error_result("Tool declared an output schema but returned no structured content")
    if output_schema is not None and not isinstance(value, (str, list, _Model)):
        structured = to_jsonable_python(_wire(value))
        text = _json_text.dump_json(structured).decode()
        return {"content": [{"type": "text", "text": text}], "structuredContent": structured}
    return {"content": _content_list(value)}


def _content_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if isinstance(value, _Model):
        return [value.to_wire()]
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            out.extend(_content_list(item))
        return out
    if isinstance(value, dict) and "type" in value:
        return [value]
    text = _json_text.dump_json(to_jsonable_python(_wire(value))).decode()
    return [TextContent(text=text).to_wire()]


def _resource_contents(uri: str, value: Any, mime_type: str | None) -> list[Any]:
    if isinstance(value, str):
        contents: dict[str, Any] = {"uri": uri, "text": value}
        if mime_type:
            contents["mimeType"] = mime_type
        return [contents]
    if isinstance(value, (bytes, bytearray)):
        return [BlobResourceContents.from_bytes(uri, bytes(value), mime_type).to_wire()]
    if isinstance(value, (TextResourceContents, BlobResourceContents)):
        return [value.to_wire()]
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return [_wire(value)]


def _prompt_messages(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [{"role": "user", "content": {"type": "text", "text": value}}]
    if isinstance(value, PromptMessage):
        return [value.to_wire()]
    if isinstance(value, list):
        return [_prompt_messages(v)[0] if isinstance(v, str) else _wire(v) for v in value]
    return [_wire(value)]
