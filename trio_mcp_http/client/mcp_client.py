"""``open_mcp_client``: an MCP client for Trio, over Streamable HTTP, in either era.

::

    async with open_mcp_client("http://127.0.0.1:8000/mcp") as client:
        tools = await client.list_tools()
        result = await client.call_tool("echo", {"text": "hi"})

The block owns a nursery: the GET stream of a session, the ``subscriptions/listen``
stream that carries list changes and resource updates in the stateless era, and the
HTTP connections all end with it.  Leaving it (or cancelling it) ends every stream and,
in a 2025 session, DELETEs the session.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal, TypeVar

import httpx
import trio
from pydantic import BaseModel, TypeAdapter, ValidationError

from ..protocol.errors import HEADER_MISMATCH, ConfigError, McpError, McpHttpError, StateError, UsageError
from ..protocol.levels import LOG_LEVELS
from ..protocol.versions import LEGACY_VERSIONS, MODERN_VERSIONS, SUPPORTED_VERSIONS
from .errors import ResultValidationError
from .handlers import (
    ElicitationHandler,
    Handlers,
    ListChangedHandler,
    LogHandler,
    NotificationHandler,
    ResourceUpdatedHandler,
    RootsHandler,
    SamplingHandler,
    check_callback,
)
from .schema import header_annotation_problem, schema_errors
from .session import Era, ProgressCallback, SessionEra, StatelessEra, discover_or_initialize
from .transport import ClientAuth, StreamableHttp, Transport
from .types import (
    CallToolResult,
    Completion,
    GetPromptResult,
    Implementation,
    Notification,
    Prompt,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    ServerDetails,
    Tool,
)

__all__ = ["McpClient", "Subscription", "open_mcp_client"]

logger = logging.getLogger("trio_mcp_http.client")

M = TypeVar("M", bound=BaseModel)

#: Pages one list call follows before it decides the server's cursors never end.
MAX_PAGES = 1000
#: Notifications a ``listen()`` block holds for its reader; a reader further behind
#: loses its subscription (its iteration ends), as a server ends a slow listener.
LISTEN_BUFFER = 256


def _client_version() -> str:
    try:
        return version("trio-mcp-http")
    except PackageNotFoundError:  # a source tree
        return "0"


def _typed(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ResultValidationError(f"the server's {what} does not match the MCP schema: {exc}") from exc


class Subscription:
    """The notifications of one ``listen()`` block, as an async iterator.

    ``honoured`` is what the server agreed to send (list changes by kind, resource
    URIs).  Iteration ends when the server ends the subscription.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[Notification], honoured: dict[str, Any]) -> None:
        self._receive = receive
        self.honoured = honoured

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Notification:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class McpClient:
    """A connected MCP client; get one from :func:`open_mcp_client`."""

    def __init__(self, era: Era, nursery: trio.Nursery) -> None:
        self._era = era
        self._nursery = nursery
        self._tools: dict[str, Tool] = {}
        self._closed = False
        #: ``listen()`` blocks of a session: their channels and what each wants.
        self._session_listeners: dict[trio.MemorySendChannel[Notification], dict[str, Any]] = {}
        #: Stateless era: the resource URIs ``subscribe_resource`` added, and the
        #: background listen stream carrying them and list changes to the handlers.
        self._subscribed: list[str] = []
        self._background: trio.CancelScope | None = None
        era.sink = self._deliver

    # -- what the client knows about the server -----------------------------------------

    @property
    def details(self) -> ServerDetails:
        return self._era.details

    @property
    def era(self) -> Literal["session", "stateless"]:
        return self._era.details.era

    @property
    def protocol_version(self) -> str:
        return self._era.details.protocol_version

    @property
    def server_info(self) -> Implementation | None:
        return self._era.details.server_info

    @property
    def server_capabilities(self) -> dict[str, Any]:
        return self._era.details.capabilities

    @property
    def session_id(self) -> str | None:
        return self._era.details.session_id if self._era.details.era == "session" else None

    # -- any request --------------------------------------------------------------------

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send any request and return its raw result (a JSON-RPC error raises
        :class:`~trio_mcp_http.McpError`)."""
        self._check_open()
        return await self._era.request(method, params)

    def _check_open(self) -> None:
        if self._closed:
            raise StateError("the MCP client is closed: use it inside its `async with` block")

    async def _pages(self, method: str, key: str) -> list[Any]:
        """Every page of a list method (MCP 2025-11-25, Utilities, Pagination)."""
        items: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _page in range(MAX_PAGES):
            result = await self.request(method, {"cursor": cursor} if cursor is not None else None)
            page = result.get(key)
            if not isinstance(page, list):
                raise ResultValidationError(f"the result of {method} has no {key} list")
            items.extend(page)
            cursor = result.get("nextCursor")
            if cursor is None:
                return items
            if not isinstance(cursor, str) or cursor in seen:
                raise ResultValidationError(f"{method}: the server's nextCursor repeats or is not a string")
            seen.add(cursor)
        raise ResultValidationError(f"{method}: more than {MAX_PAGES} pages")

    # -- tools --------------------------------------------------------------------------

    async def list_tools(self) -> list[Tool]:
        """Every tool (all pages).  Remembered for ``call_tool``: output schemas are
        checked and, in the stateless era, ``Mcp-Param-*`` headers sent.

        A tool whose ``x-mcp-header`` annotations are malformed is left out, with a
        warning (MCP 2026-07-28, Transports, Streamable HTTP: clients MUST reject such a
        definition); the other tools stay usable."""
        tools: list[Tool] = []
        for raw in await self._pages("tools/list", "tools"):
            tool = _typed(Tool, raw, "tool")
            problem = header_annotation_problem(tool.input_schema)
            if problem is None:
                tools.append(tool)
            else:
                logger.warning("leaving out tool %r: %s", tool.name, problem)
        self._tools = {tool.name: tool for tool in tools}
        return tools

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> CallToolResult:
        """Call a tool.  A tool's own failure is a result with ``is_error`` set, not an
        exception; ``progress`` is called with each :class:`Progress` the tool reports."""
        self._check_open()
        if progress is not None:
            check_callback("progress", progress)
        params: dict[str, Any] = {"name": name, "arguments": dict(arguments or {})}
        tool = self._tools.get(name)
        try:
            raw = await self._era.request(
                "tools/call", params, progress=progress, tool_schema=tool.input_schema if tool else None
            )
        except McpError as exc:
            if exc.code != HEADER_MISMATCH or tool is not None or self.era != "stateless":
                raise
            # A tool that mirrors arguments in headers, not listed yet: learn its
            # schema and send the headers it wants.
            await self.list_tools()
            tool = self._tools.get(name)
            if tool is None:
                raise
            raw = await self._era.request(
                "tools/call", params, progress=progress, tool_schema=tool.input_schema
            )
        result = _typed(CallToolResult, raw, "tools/call result")
        if tool is not None and tool.output_schema is not None and not result.is_error:
            self._check_output(tool, result)
        return result

    @staticmethod
    def _check_output(tool: Tool, result: CallToolResult) -> None:
        """MCP 2025-11-25, Tools, Output Schema: a tool with an output schema MUST
        return conforming structured content; clients SHOULD validate it."""
        if result.structured_content is None:
            raise ResultValidationError(
                f"tool {tool.name!r} declares an output schema but sent no structuredContent"
            )
        errors = schema_errors(result.structured_content, tool.output_schema)
        if errors:
            listed = "; ".join(errors[:5])
            raise ResultValidationError(
                f"tool {tool.name!r}: structuredContent does not match its outputSchema: {listed}"
            )

    # -- resources ----------------------------------------------------------------------

    async def list_resources(self) -> list[Resource]:
        return [_typed(Resource, raw, "resource") for raw in await self._pages("resources/list", "resources")]

    async def list_resource_templates(self) -> list[ResourceTemplate]:
        raw = await self._pages("resources/templates/list", "resourceTemplates")
        return [_typed(ResourceTemplate, item, "resource template") for item in raw]

    async def read_resource(self, uri: str) -> ReadResourceResult:
        return _typed(
            ReadResourceResult, await self.request("resources/read", {"uri": uri}), "resources/read result"
        )

    async def subscribe_resource(self, uri: str) -> None:
        """Have ``on_resource_updated`` called when ``uri`` changes.

        A session sends ``resources/subscribe``; the stateless era has no such method,
        so the client re-opens its background ``subscriptions/listen`` stream with the
        new URI, and returns once the server has acknowledged it."""
        self._check_open()
        if isinstance(self._era, SessionEra):
            await self._era.request("resources/subscribe", {"uri": uri})
        elif uri not in self._subscribed:
            self._subscribed.append(uri)
            await self._restart_background()

    async def unsubscribe_resource(self, uri: str) -> None:
        self._check_open()
        if isinstance(self._era, SessionEra):
            await self._era.request("resources/unsubscribe", {"uri": uri})
        elif uri in self._subscribed:
            self._subscribed.remove(uri)
            await self._restart_background()

    # -- prompts and completion ---------------------------------------------------------

    async def list_prompts(self) -> list[Prompt]:
        return [_typed(Prompt, raw, "prompt") for raw in await self._pages("prompts/list", "prompts")]

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None = None) -> GetPromptResult:
        params = {"name": name, "arguments": dict(arguments or {})}
        return _typed(GetPromptResult, await self.request("prompts/get", params), "prompts/get result")

    async def complete(
        self,
        ref: Mapping[str, Any],
        argument: str,
        value: str,
        *,
        context: Mapping[str, str] | None = None,
    ) -> Completion:
        """Completions for one argument of a prompt (``{"type": "ref/prompt", "name":
        ...}``) or resource template (``{"type": "ref/resource", "uri": ...}``)."""
        params: dict[str, Any] = {"ref": dict(ref), "argument": {"name": argument, "value": value}}
        if context is not None:
            params["context"] = {"arguments": dict(context)}
        result = await self.request("completion/complete", params)
        return _typed(Completion, result.get("completion"), "completion")

    # -- logging and liveness -----------------------------------------------------------

    async def set_logging_level(self, level: str) -> None:
        """The lowest level of log messages to receive.  A session sends
        ``logging/setLevel``; in the stateless era every later request carries it in
        ``_meta`` (without it a 2026-07-28 server sends no log messages)."""
        if level not in LOG_LEVELS:
            raise ConfigError(f"unknown log level {level!r}; one of {', '.join(LOG_LEVELS)}")
        self._check_open()
        if isinstance(self._era, StatelessEra):
            self._era.log_level = level
        else:
            await self._era.request("logging/setLevel", {"level": level})

    async def ping(self) -> None:
        """Check the server answers: ``ping`` in a session, ``server/discover`` in the
        stateless era (which has no ``ping``)."""
        self._check_open()
        await self._era.request("ping" if isinstance(self._era, SessionEra) else "server/discover")

    # -- notifications ------------------------------------------------------------------

    async def _deliver(self, notification: Notification) -> None:
        if notification.method == "notifications/tools/list_changed":
            self._tools = {}  # the remembered definitions may be stale
        for send, wanted in list(self._session_listeners.items()):
            if _wants(wanted, notification):
                try:
                    send.send_nowait(notification)
                except trio.WouldBlock:
                    logger.warning("a listen() reader fell %d notifications behind; ending it", LISTEN_BUFFER)
                    send.close()
                except trio.ClosedResourceError:
                    pass
        await self._era.handlers.deliver(notification)

    @asynccontextmanager
    async def listen(
        self,
        *,
        tools: bool = False,
        prompts: bool = False,
        resources: bool = False,
        resource_uris: Sequence[str] = (),
    ) -> AsyncIterator[Subscription]:
        """Receive list changes (of tools, prompts, resources) and updates of the given
        resources inside the block, in either era: a ``subscriptions/listen`` stream in
        the stateless era; in a session, the notifications of its GET stream, with
        ``resources/subscribe`` for each URI (and ``resources/unsubscribe`` after)."""
        self._check_open()
        if isinstance(resource_uris, str):
            raise UsageError("resource_uris is a list of URIs, not one string")
        wanted: dict[str, Any] = {}
        for key, flag in (
            ("toolsListChanged", tools),
            ("promptsListChanged", prompts),
            ("resourcesListChanged", resources),
        ):
            if flag:
                wanted[key] = True
        if resource_uris:
            wanted["resourceSubscriptions"] = list(resource_uris)
        send, receive = trio.open_memory_channel[Notification](LISTEN_BUFFER)
        if isinstance(self._era, StatelessEra):
            era = self._era
            async with trio.open_nursery() as nursery:

                async def sink(notification: Notification) -> None:
                    await send.send(notification)

                async def run(*, task_status: trio.TaskStatus[dict[str, Any]]) -> None:
                    with send:
                        await era.listen(wanted, sink, task_status=task_status)

                honoured = await nursery.start(run)
                with receive:
                    yield Subscription(receive, honoured)
                nursery.cancel_scope.cancel()
            return
        honoured = self._session_honours(wanted)
        for uri in honoured.get("resourceSubscriptions", []):
            await self._era.request("resources/subscribe", {"uri": uri})
        self._session_listeners[send] = honoured
        try:
            with receive:
                yield Subscription(receive, honoured)
        finally:
            del self._session_listeners[send]
            send.close()
            with trio.CancelScope(shield=True), trio.move_on_after(5.0):
                for uri in honoured.get("resourceSubscriptions", []):
                    try:
                        await self._era.request("resources/unsubscribe", {"uri": uri})
                    except McpHttpError as exc:
                        logger.info("resources/unsubscribe %s failed: %s", uri, exc)

    def _session_honours(self, wanted: dict[str, Any]) -> dict[str, Any]:
        capabilities = self.server_capabilities
        kinds = {
            "toolsListChanged": "tools",
            "promptsListChanged": "prompts",
            "resourcesListChanged": "resources",
        }
        honoured: dict[str, Any] = {
            key: True
            for key, kind in kinds.items()
            if wanted.get(key)
            and isinstance(capabilities.get(kind), dict)
            and capabilities[kind].get("listChanged")
        }
        resources = capabilities.get("resources")
        if wanted.get("resourceSubscriptions") and isinstance(resources, dict) and resources.get("subscribe"):
            honoured["resourceSubscriptions"] = wanted["resourceSubscriptions"]
        return honoured

    # -- the stateless era's background listen stream -----------------------------------

    def _background_filter(self) -> dict[str, Any]:
        handlers = self._era.handlers
        wanted: dict[str, Any] = {}
        if handlers.on_list_changed is not None or handlers.on_notification is not None:
            wanted.update(toolsListChanged=True, promptsListChanged=True, resourcesListChanged=True)
        if self._subscribed:
            wanted["resourceSubscriptions"] = list(self._subscribed)
        return wanted

    async def _restart_background(self) -> None:
        if self._background is not None:
            self._background.cancel()
            self._background = None
        wanted = self._background_filter()
        if not wanted or not isinstance(self._era, StatelessEra):
            return
        scope = trio.CancelScope()
        self._background = scope
        await self._nursery.start(self._run_background, wanted, scope)

    async def _run_background(
        self, wanted: dict[str, Any], scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        assert isinstance(self._era, StatelessEra)
        era = self._era
        started = False

        async def ready(*, task_status: trio.TaskStatus[dict[str, Any]]) -> None:
            await era.listen(wanted, self._deliver_logged, task_status=task_status)

        with scope:
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(ready)
                    started = True
                    task_status.started()
            except McpHttpError as exc:
                if not started:
                    raise
                logger.warning("the subscriptions/listen stream ended: %s", exc)

    async def _deliver_logged(self, notification: Notification) -> None:
        try:
            await self._deliver(notification)
        except Exception:
            logger.exception("a notification handler failed on %s", notification.method)

    async def _start(self) -> None:
        await self._era.start(self._nursery)
        if self._background_filter():
            await self._restart_background()

    async def _close(self) -> None:
        self._closed = True
        await self._era.close()


def _wants(wanted: dict[str, Any], notification: Notification) -> bool:
    method = notification.method
    kinds = {
        "notifications/tools/list_changed": "toolsListChanged",
        "notifications/prompts/list_changed": "promptsListChanged",
        "notifications/resources/list_changed": "resourcesListChanged",
    }
    if method in kinds:
        return bool(wanted.get(kinds[method]))
    if method == "notifications/resources/updated":
        uri = notification.params.get("uri")
        return isinstance(uri, str) and any(
            uri == r or uri.startswith(r.rstrip("/") + "/") for r in wanted.get("resourceSubscriptions", [])
        )
    return False


_CLIENT_INFO = TypeAdapter(Implementation)


@asynccontextmanager
async def open_mcp_client(
    url: str,
    *,
    era: Literal["session", "stateless"] | None = None,
    protocol_version: str | None = None,
    client_info: Mapping[str, Any] | Implementation | None = None,
    elicitation: ElicitationHandler | None = None,
    sampling: SamplingHandler | None = None,
    roots: RootsHandler | None = None,
    on_log: LogHandler | None = None,
    on_list_changed: ListChangedHandler | None = None,
    on_resource_updated: ResourceUpdatedHandler | None = None,
    on_notification: NotificationHandler | None = None,
    headers: Mapping[str, str] | None = None,
    http2: bool = False,
    http_timeout: float = 30.0,
    max_message_size: int = 16 * 1024 * 1024,
    auth: ClientAuth | None = None,
    **unknown: Any,
) -> AsyncIterator[McpClient]:
    """Connect to the MCP server at ``url``; the client lives for the block.

    ``era`` / ``protocol_version`` choose the protocol; by default the client sends
    ``server/discover`` and falls back to ``initialize`` for a 2025 server.  The
    callbacks are async functions: ``elicitation``, ``sampling`` and ``roots`` answer
    the server's requests (declaring those capabilities), the ``on_*`` ones receive
    notifications.  ``http_timeout`` bounds connecting and sending (seconds; waiting for an
    answer is bounded by the caller, e.g. with ``trio.fail_after``).  ``http2`` speaks
    HTTP/2 with prior knowledge (h2c) for ``http://`` URLs.  ``auth`` gets access tokens
    by OAuth when the server asks for one (``OAuthClient``, ``ClientCredentials`` of
    ``trio_mcp_http.client.auth``; docs/auth.md).
    """
    if unknown:
        raise UsageError(f"open_mcp_client() got an unknown option {sorted(unknown)[0]!r}")
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "ws://", "wss://")):
        raise ConfigError(f"url must be an http://, https://, ws:// or wss:// URL, not {url!r}")
    chosen_era = _check_era(era, protocol_version)
    _check_auth(auth, headers, url)
    if url.startswith(("ws://", "wss://")):
        chosen_era = _check_websocket(chosen_era, http2)
    callbacks = {
        "elicitation": elicitation,
        "sampling": sampling,
        "roots": roots,
        "on_log": on_log,
        "on_list_changed": on_list_changed,
        "on_resource_updated": on_resource_updated,
        "on_notification": on_notification,
    }
    for name, callback in callbacks.items():
        check_callback(name, callback)
    if not (isinstance(http_timeout, (int, float)) and 0 < http_timeout < math.inf):
        raise ConfigError(f"http_timeout must be a positive number of seconds, not {http_timeout!r}")
    if not isinstance(max_message_size, int) or max_message_size <= 0:
        raise ConfigError(f"max_message_size must be a positive int, not {max_message_size!r}")
    info = _client_info(client_info)
    handlers = Handlers(**callbacks)  # type: ignore[arg-type]
    async with _open_transport(url, headers, http2, http_timeout, max_message_size, auth) as transport:
        failure: BaseException | None = None
        async with trio.open_nursery() as nursery:
            client: McpClient | None = None
            try:
                connected = await discover_or_initialize(
                    transport, handlers, info, era=chosen_era, version=protocol_version
                )
                client = McpClient(connected, nursery)
                await client._start()
                yield client
            except BaseException as exc:
                # Raised from outside the nursery below, as it is: the block's own
                # exception, not one wrapped in an ExceptionGroup by the nursery.
                failure = exc
            finally:
                nursery.cancel_scope.cancel()
                if client is not None:
                    with trio.CancelScope(shield=True):
                        await client._close()
        if failure is not None:
            raise failure


@asynccontextmanager
async def _open_transport(
    url: str,
    headers: Mapping[str, str] | None,
    http2: bool,
    io_timeout: float,
    max_message_size: int,
    auth: ClientAuth | None = None,
) -> AsyncIterator[Transport]:
    """The wire the URL's scheme names: Streamable HTTP, or a WebSocket
    (``client/websocket.py``)."""
    if url.startswith(("ws://", "wss://")):
        from .websocket import open_websocket

        async with open_websocket(
            url, headers=headers, max_message_size=max_message_size, io_timeout=io_timeout
        ) as socket:
            yield socket
        return
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=10)
    timeouts = httpx.Timeout(io_timeout, read=None)
    async with httpx.AsyncClient(
        timeout=timeouts, limits=limits, http1=not http2, http2=http2, follow_redirects=False
    ) as http:
        yield StreamableHttp(http, url, headers=headers, max_message_size=max_message_size, auth=auth)


def _check_auth(auth: object, headers: Mapping[str, str] | None, url: str) -> None:
    """``auth=`` is an OAuth flow over HTTP, and the one source of the Authorization header."""
    if auth is None:
        return
    if not (callable(getattr(auth, "authorization", None)) and callable(getattr(auth, "refused", None))):
        raise UsageError(
            "auth must be an OAuthClient or ClientCredentials (trio_mcp_http.client.auth), "
            f"not {type(auth).__name__}"
        )
    if headers is not None and any(name.lower() == "authorization" for name in headers):
        raise ConfigError("give either auth= or an Authorization header in headers=, not both")
    if not url.startswith(("http://", "https://")):
        raise UsageError("auth= applies to http:// and https:// URLs; give a WebSocket's token in headers=")


def _check_websocket(era: str | None, http2: bool) -> str:
    """A WebSocket connection is one 2025-era session (docs/websocket.md)."""
    if era == "stateless":
        raise UsageError(
            "a ws:// or wss:// URL speaks the session era: a WebSocket connection is one "
            "session, and 2026-07-28 requests stand alone over HTTP"
        )
    if http2:
        raise UsageError("http2=True applies to http:// URLs, not to a WebSocket")
    return "session"


def _check_era(era: str | None, protocol_version: str | None) -> str | None:
    if era not in (None, "session", "stateless"):
        raise ConfigError(f"era must be 'session', 'stateless' or None, not {era!r}")
    if protocol_version is None:
        return era
    if protocol_version not in SUPPORTED_VERSIONS:
        raise ConfigError(
            f"protocol_version {protocol_version!r} is not one this client speaks: "
            + ", ".join(SUPPORTED_VERSIONS)
        )
    implied = "stateless" if protocol_version in MODERN_VERSIONS else "session"
    if era is not None and era != implied:
        raise ConfigError(f"protocol_version {protocol_version} belongs to the {implied} era, not {era}")
    assert protocol_version in LEGACY_VERSIONS or protocol_version in MODERN_VERSIONS
    return implied


def _client_info(value: Mapping[str, Any] | Implementation | None) -> dict[str, Any]:
    if value is None:
        return {"name": "trio-mcp-http", "version": _client_version()}
    try:
        info = value if isinstance(value, Implementation) else _CLIENT_INFO.validate_python(dict(value))
    except (ValidationError, TypeError, ValueError) as exc:
        raise ConfigError(f"client_info needs a name and a version: {exc}") from exc
    return info.to_wire()
