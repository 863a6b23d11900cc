"""The per-request context handed to handlers.

A handler asks for it by annotating a parameter with :class:`Context`.  The same
handler serves both protocol eras; what differs is the :class:`Outlet` the transport
plugs in:

* session era (2025-*): notifications go on the request's stream; ``elicit``,
  ``sample`` and ``list_roots`` send a JSON-RPC request to the client and wait for the
  POSTed response on the same session;
* stateless era (2026-07-28): notifications go on the response stream; input from the
  client is requested with an *input-required result*, and the handler runs again when
  the client retries with the answers (so handlers should do side effects after
  gathering input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.auth import Principal
from ..protocol.input_requests import InputRequest
from ..protocol.levels import level_rank

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Context", "InputRequired", "Outlet", "TaskControl"]


class InputRequired(BaseException):
    """Raised by :meth:`Context.ask` in the stateless era when answers are missing.

    The transport turns it into an *input-required result*; the handler runs again when
    the client retries with the answers.  Like ``trio.Cancelled`` it is a control-flow
    signal, a ``BaseException``, so a handler's ``except Exception`` cannot swallow it.
    """

    def __init__(self, requests: dict[str, InputRequest]) -> None:
        super().__init__(f"input required: {', '.join(requests)}")
        self.requests = requests


class Outlet(Protocol):
    """What the transport provides to a running request."""

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        """Send a notification related to the request."""

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        """Obtain the client's answers to ``requests`` (keyed by the caller's names)."""

    def close_stream(self, retry_ms: int | None) -> None:
        """End the connection carrying the request's stream, keeping the stream."""


class TaskControl(Protocol):
    """What a tool running under the tasks extension (SEP-2663) can do about its task."""

    @property
    def task_id(self) -> str | None:
        """The task's id once it exists (the client has been given it), else ``None``."""

    async def start_task(self) -> None:
        """Answer the request with ``CreateTaskResult``; the handler goes on as the task."""


class Context:
    """Everything a handler may want to know or do about its request."""

    __slots__ = (
        "_log_threshold",
        "_outlet",
        "_task",
        "auth",
        "client_capabilities",
        "client_info",
        "meta",
        "method",
        "progress_token",
        "protocol_version",
        "request_id",
        "server",
        "session_id",
    )

    def __init__(
        self,
        *,
        server: Any,
        outlet: Outlet,
        method: str,
        request_id: int | str | None,
        meta: dict[str, Any] | None,
        protocol_version: str,
        client_capabilities: dict[str, Any],
        client_info: dict[str, Any] | None,
        session_id: str | None,
        log_level: str | None,
        auth: Principal | None = None,
    ) -> None:
        self.server = server
        self._outlet = outlet
        self.method = method
        self.request_id = request_id
        self.meta = meta if isinstance(meta, dict) else {}
        token = self.meta.get("progressToken")
        # A progress token is a string or an integer (2025-11-25 basic/utilities/progress).
        self.progress_token = token if type(token) in (int, str) else None
        self.protocol_version = protocol_version
        self.client_capabilities = client_capabilities
        self.client_info = client_info
        self.session_id = session_id
        self._log_threshold = None if log_level is None else level_rank(log_level)
        self._task: TaskControl | None = None
        #: Who the request acts for, from its access token (``None`` when the server
        #: does not require authorization; docs/auth.md).
        self.auth = auth

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Send ``notifications/progress``, if the client asked for progress."""
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._outlet.notify("notifications/progress", params)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Send ``notifications/message`` if ``level`` passes the client's threshold."""
        if self._log_threshold is None or level_rank(level) < self._log_threshold:
            return
        params: dict[str, Any] = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        await self._outlet.notify("notifications/message", params)

    async def debug(self, data: Any, logger: str | None = None) -> None:
        await self.log("debug", data, logger)

    async def info(self, data: Any, logger: str | None = None) -> None:
        await self.log("info", data, logger)

    async def warning(self, data: Any, logger: str | None = None) -> None:
        await self.log("warning", data, logger)

    async def error(self, data: Any, logger: str | None = None) -> None:
        await self.log("error", data, logger)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send any notification related to this request."""
        await self._outlet.notify(method, params)

    async def ask(self, requests: Mapping[str, InputRequest]) -> dict[str, Any]:
        """Ask the client for several inputs at once; returns answers by key."""
        return await self._outlet.ask(dict(requests))

    async def elicit(
        self,
        message: str,
        requested_schema: Mapping[str, Any],
        *,
        key: str = "elicitation",
        **extra: Any,
    ) -> dict[str, Any]:
        """Ask the user for structured input (``elicitation/create``, form mode).

        Returns the client's ``ElicitResult``: ``{"action": ..., "content": ...}``.
        """
        answers = await self.ask({key: InputRequest.elicitation(message, requested_schema, **extra)})
        return dict(answers[key])

    async def sample(
        self, messages: list[Any], max_tokens: int, *, key: str = "sampling", **extra: Any
    ) -> dict[str, Any]:
        """Ask the client's model for a completion (``sampling/createMessage``)."""
        answers = await self.ask({key: InputRequest.sampling(messages, max_tokens, **extra)})
        return dict(answers[key])

    async def list_roots(self, *, key: str = "roots") -> dict[str, Any]:
        """Ask the client for its roots (``roots/list``)."""
        answers = await self.ask({key: InputRequest.roots()})
        return dict(answers[key])

    @property
    def task_id(self) -> str | None:
        """The id of the task this handler runs as (tasks extension, 2026-07-28), if any."""
        return None if self._task is None else self._task.task_id

    async def start_task(self) -> None:
        """Go on as a task from here (tools registered with ``task_start="explicit"``).

        Until this call the handler is an ordinary request: input it asks for comes back
        through input-required results, notifications go on the response stream, and
        returning answers the call directly.  From this call on the client has a
        ``CreateTaskResult``; the rest runs as the task, and input it asks for parks
        the task in ``input_required`` until ``tasks/update`` brings the answers.

        Where the call is not served as a task (the session era, a client without the
        tasks extension, an ``optional`` tool over the task cap) it does nothing: the
        handler simply goes on answering the request.
        """
        if self._task is not None:
            await self._task.start_task()

    def close_sse_stream(self, retry_ms: int | None = None) -> None:
        """End the connection of this request's SSE stream now; the client resumes it.

        This is SSE polling (SEP-1699): the server sends ``retry:`` and closes, the
        request keeps running, and the client reconnects with ``Last-Event-ID`` to
        collect the rest.  Has no effect where the request has no resumable stream.
        """
        self._outlet.close_stream(retry_ms)
