"""Tasks: the ``io.modelcontextprotocol/tasks`` extension of the 2026-07-28 era (SEP-2663).

A ``tools/call`` to a task-supporting tool, from a client that declares the extension,
is answered at once with a ``CreateTaskResult``; the tool runs on, the client polls
``tasks/get`` (status, then the inlined result or error), answers input requests with
``tasks/update`` and can stop the work with ``tasks/cancel``.

Ownership: every task is a child of :meth:`TaskRegistry.run`'s nursery, which
:meth:`McpHttpApp.run` starts in its own, so no task outlives the app and none is
detached.  Each task holds two cancel scopes:

* ``lifetime``: its deadline is the end of the task's ``ttlMs``.  When it fires, the
  record goes (and any work still running with it).  A finished task is a sleeping
  child inside this scope: expiry is a deadline, never a polling loop.
* ``work``: the tool's handler runs inside it; ``tasks/cancel`` and the drain cancel
  the work through it, and the record stays for ``tasks/get``.

The registry is bounded (``max_tasks`` records, running or finished).  Input a task
asks for parks it in ``input_required`` until ``tasks/update`` brings every answer.

With authorization on, a task is bound to the principal (issuer, subject) whose
request created it: to anyone else it is an unknown task, as a session is.

In a fleet (``redis_url``, transport/fleet.py) the worker running a task also keeps
its record in the shared store: written before the task's id is given out, then
again, in order, on every change, expiring with the task.  ``tasks/get`` on another
worker answers from that record.  ``tasks/cancel`` and ``tasks/update`` there are
checked against the record (unknown or foreign task: unknown, as here; malformed
``inputResponses``, or an answer that does not fit a request the record shows
pending: -32602, as here; a task the record shows finished: acknowledged, nothing
to do, as here) and then put on the bus for the worker running the task, which
applies them exactly as it would its own requests and confirms on the bus, behind
the write of the record they changed.

Read your writes, on any worker: a ``tasks/update`` or ``tasks/cancel`` is
acknowledged only once the record in the store shows it: on the running worker once
its write of the record is applied, on another once the running worker's
confirmation has come (so its write is applied: one writer, in order); the error it
refused the change with, if it did, is the answer.  ``tasks/get`` on the running
worker waits likewise for the write of what it shows, so that no other worker shows
an older state afterwards, and a ``CreateTaskResult`` goes out only once the record
is stored.  Every such wait is bounded (the store's timeout): a 503 with
``Retry-After`` past it (for ``tasks/get`` on the running worker: the answer from
memory, as when the store is down).  Without a fleet none of this waits.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio

from ..cluster.backend import is_shareable_task_id
from ..protocol import jsonrpc
from ..protocol.errors import INTERNAL_ERROR, INVALID_PARAMS, McpError, StateError
from ..protocol.input_requests import InputRequest, answer_is_valid, require_capabilities
from ..protocol.tasks import TERMINAL, declares_tasks, missing_extension
from ..server.context import Context, InputRequired, Outlet
from .gate import InFlight
from .runner import failure

if TYPE_CHECKING:
    from ..protocol.auth import Principal
    from ..server.mcp_server import McpServer
    from .fleet_hooks import TaskHooks

__all__ = ["SharedTask", "Task", "TaskRegistry"]

logger = logging.getLogger("trio_mcp_http")

#: A shared record of a task with no ttl (reachable until its worker shuts down)
#: expires this long after its last change, so nothing stays in the store for ever.
UNBOUNDED_RECORD_TTL = 24 * 3600.0
#: Room for a shared record's fields besides a kept result (which ``max_result_bytes``
#: bounds); a record larger than both together is not shared as it is.
RECORD_SLACK_BYTES = 64 * 1024


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Waiter:
    """One ``ask`` parked on the client: the keys still open, the answers so far."""

    __slots__ = ("answers", "done", "open")

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.answers: dict[str, Any] = {}
        self.done = trio.Event()


class Task:
    """One task: the record ``tasks/get`` shows, and the scopes its work runs under.

    It is also the handler's :class:`~trio_mcp_http.server.context.TaskControl`.
    """

    def __init__(self, registry: TaskRegistry) -> None:
        self._registry = registry
        #: 192 random bits: the id is the only capability needed to reach the task.
        self.id = secrets.token_urlsafe(24)
        self.status = "working"
        self.status_message: str | None = None
        self.created_at = self.updated_at = _now()
        self.result: Any = None
        self.error: dict[str, Any] | None = None
        #: Input requests by wire key: (request, the handler's key, its waiter).
        self.pending: dict[str, tuple[InputRequest, str, _Waiter]] = {}
        #: Whether the client has been given the task (before: an ordinary request).
        self.born = False
        #: Set when the request that started the task can be answered.
        self.decided = trio.Event()
        self.early_result: Any = None
        self.early_error: McpError | InputRequired | None = None
        #: The ``CreateTaskResult``, as of the moment the task came to exist.
        self.announcement: dict[str, Any] = {}
        self.outlet: _TaskOutlet | None = None
        self.lifetime = trio.CancelScope()
        self.work = trio.CancelScope()
        #: Encoded bytes of the kept result, charged to the registry's budget.
        self.size = 0
        #: The (issuer, subject) whose request created the task, when authorization is
        #: on: nobody else can reach it.
        self.owner: tuple[str | None, str] | None = None
        #: In a fleet: the position of the last queued write of the record (``0``: none
        #: since it was stored), and whether one was not applied (written again).
        self.written = 0
        self.unshared = False

    # -- TaskControl ------------------------------------------------------------------

    @property
    def task_id(self) -> str | None:
        return self.id if self.born else None

    async def start_task(self) -> None:
        if not self.born:
            if self._registry._fleet is not None:
                await self._registry._store_first(self)
            self._registry._adopt(self)
            self.decided.set()
        await trio.lowlevel.checkpoint()

    # -- wire shapes ------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The ``Task`` fields shared by ``CreateTaskResult`` and ``tasks/get``."""
        ttl = self._registry.ttl
        info: dict[str, Any] = {
            "taskId": self.id,
            "status": self.status,
            "createdAt": self.created_at,
            "lastUpdatedAt": self.updated_at,
            "ttlMs": None if ttl is None else round(ttl * 1000),
            "pollIntervalMs": self._registry.poll_interval_ms,
        }
        if self.status_message is not None:
            info["statusMessage"] = self.status_message
        return info

    def detailed(self) -> dict[str, Any]:
        """``DetailedTask``: the info plus what the status calls for."""
        body = self.info()
        if self.status == "completed":
            body["result"] = self.result
        elif self.status == "failed":
            body["error"] = self.error
        elif self.status == "input_required":
            body["inputRequests"] = {wire: dict(request) for wire, (request, _, _) in self.pending.items()}
        return body

    # -- state changes (all synchronous: a tasks/get right after sees them) -----------

    def _set(self, status: str, message: str | None = None) -> None:
        self.status = status
        self.status_message = message
        self.updated_at = _now()
        if self._registry._fleet is not None:
            self._registry._share(self)

    def _refresh(self) -> None:
        if self.status in TERMINAL:
            return
        status = "input_required" if self.pending else "working"
        if status != self.status:
            self._set(status)
        elif self._registry._fleet is not None:
            self._registry._share(self)  # the input requests pending may have changed

    def settle(self, result: Any) -> None:
        if not self.born:
            self.early_result = result
            self.decided.set()
        elif self.status not in TERMINAL:
            size = self._registry._charge(self, result)
            if size is None:
                self.fail(McpError(INTERNAL_ERROR, "The task's result is too large to keep for tasks/get"))
                return
            self.size = size
            self.result = result
            self._set("completed")

    def fail(self, error: McpError | InputRequired) -> None:
        if not self.born:
            self.early_error = error
            self.decided.set()
        elif self.status not in TERMINAL:
            if isinstance(error, InputRequired):
                error = McpError(INTERNAL_ERROR, "The tool asked for input where the protocol allows none")
            self.error = error.to_error_object()
            self._set("failed", error.message)

    def cancel(self, message: str = "Cancelled by the client") -> None:
        """``tasks/cancel``: idempotent; the work is cancelled, the record stays."""
        if self.status in TERMINAL:
            return
        self.pending.clear()
        self._set("cancelled", message)
        self.work.cancel()

    def shut_down(self) -> None:
        """The drain's cancellation: the task fails with the reason, like a request would."""
        if self.status in TERMINAL:
            return
        self.pending.clear()
        self.error = {"code": INTERNAL_ERROR, "message": "Server shutting down: task cancelled"}
        self._set("failed", "Server shutting down")
        self.work.cancel()

    # -- input (SEP-2322 inside a task) -----------------------------------------------

    async def ask(self, requests: dict[str, InputRequest], capabilities: dict[str, Any]) -> dict[str, Any]:
        """Park in ``input_required`` until ``tasks/update`` has answered every request."""
        require_capabilities(requests.values(), capabilities)
        if not requests:
            await trio.lowlevel.checkpoint()
            return {}
        waiter = _Waiter()
        for key, request in requests.items():
            wire = key
            n = 1
            while wire in self.pending:  # the same key asked twice at once
                n += 1
                wire = f"{key}-{n}"
            self.pending[wire] = (request, key, waiter)
            waiter.open.add(wire)
        self._refresh()
        try:
            await waiter.done.wait()
        finally:
            for wire in waiter.open:  # cancelled while parked: withdraw the questions
                self.pending.pop(wire, None)
            self._refresh()
        return waiter.answers

    def update(self, responses: dict[str, Any]) -> None:
        """``tasks/update``: deliver answers; unknown or already answered keys are ignored."""
        for wire, answer in responses.items():
            entry = self.pending.get(wire)
            if entry is not None and not answer_is_valid(entry[0]["method"], answer):
                raise _invalid_answer(wire, entry[0]["method"])
        for wire, answer in responses.items():
            popped = self.pending.pop(wire, None)
            if popped is None:
                continue
            _, key, waiter = popped
            waiter.answers[key] = answer
            waiter.open.discard(wire)
            if not waiter.open:
                waiter.done.set()
        self._refresh()


def _invalid_answer(wire: str, method: str) -> McpError:
    return McpError(INVALID_PARAMS, f"inputResponses[{wire!r}] is not a valid answer to {method}")


class _TaskOutlet:
    """A task handler's outlet: the request's until the task exists, the task's after.

    The request's outlet is dropped when the task is born (``request`` becomes
    ``None``): a record kept for its ttl holds no HTTP response objects.
    """

    __slots__ = ("capabilities", "request", "task")

    def __init__(self, task: Task, request: Outlet, capabilities: dict[str, Any]) -> None:
        self.task = task
        self.request: Outlet | None = request
        self.capabilities = capabilities

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        if self.request is not None:
            await self.request.notify(method, params)
        # Once the task exists no response stream carries its messages: clients poll.

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        if self.request is not None:
            return await self.request.ask(requests)  # MRTR, before the task exists
        return await self.task.ask(requests, self.capabilities)

    def close_stream(self, retry_ms: int | None) -> None:
        if self.request is not None:
            self.request.close_stream(retry_ms)


class SharedTask:
    """The record of a task another worker of the fleet runs, as read from the store."""

    __slots__ = ("body", "owner")

    def __init__(self, owner: tuple[str | None, str] | None, body: dict[str, Any]) -> None:
        self.owner = owner
        #: ``DetailedTask``, as the running worker last wrote it.
        self.body = body

    @classmethod
    def parse(cls, raw: bytes) -> SharedTask | None:
        try:
            record = json.loads(raw)
            owner = record["owner"]
            body = record["task"]
            if not isinstance(body, dict) or not isinstance(body.get("status"), str):
                raise ValueError("no task in the record")
            return cls(None if owner is None else (owner[0], owner[1]), body)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            # Another deployment's key under the same prefix: not a task of ours.
            logger.warning("ignoring a malformed task record in the shared store: %r", exc)
            return None


class TaskRegistry:
    """Every task of one app: created, looked up, updated, cancelled and expired here."""

    def __init__(
        self,
        server: McpServer | None,
        *,
        max_tasks: int = 1000,
        max_result_bytes: int = 64 * 1024 * 1024,
        ttl: float | None = 600.0,
        poll_interval: float = 1.0,
    ) -> None:
        #: The server whose tools run as tasks; ``None`` for a server that speaks the
        #: protocol itself (and so answers ``tasks/*`` itself, or not at all).
        self._server = server
        self.max_tasks = max_tasks
        #: Bytes (encoded) of all kept results together.
        self.max_result_bytes = max_result_bytes
        self._result_bytes = 0
        #: Seconds a task stays reachable after it is created (``None``: until shutdown).
        self.ttl = ttl
        self.poll_interval_ms = max(1, round(poll_interval * 1000))
        self._nursery: trio.Nursery | None = None
        self._tasks: dict[str, Task] = {}
        self._provisional = 0
        #: Tasks whose work is running (finished records are not counted).
        self._running = InFlight()
        #: The fleet sharing task records with other workers (``redis_url``), if any.
        self._fleet: TaskHooks | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own every task until cancelled (started by :meth:`McpHttpApp.run`)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    # -- what the app needs -----------------------------------------------------------

    def statistics(self) -> dict[str, int]:
        return {"tasks": len(self._tasks), "tasks_running": self._running.count}

    async def wait_idle(self) -> None:
        """Until no task's work is running (finished records may remain)."""
        await self._running.wait_idle()

    def cancel_all(self) -> None:
        """The drain, after its grace period: stop every task's work."""
        for task in list(self._tasks.values()):
            task.shut_down()

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def join(self, fleet: TaskHooks) -> None:
        """Share task records with the fleet's other workers (before any task exists)."""
        self._fleet = fleet

    @property
    def shared(self) -> bool:
        """Whether a task may be held by another worker (``tasks/*``: :meth:`find` first)."""
        return self._fleet is not None

    @property
    def server(self) -> McpServer:
        if self._server is None:
            raise StateError("this app's server runs no tasks of ours")
        return self._server

    # -- tools/call -------------------------------------------------------------------

    async def call_tool(self, params: dict[str, Any], ctx: Context) -> Any:
        """Answer ``tools/call``: directly, or by creating a task where tool and client
        allow it.  Raises what dispatch raises (``McpError``, ``InputRequired``)."""
        name = params.get("name")
        support, start = self.server.tool_task_support(name) if isinstance(name, str) else ("forbidden", "")
        if support == "forbidden":
            return await self.server.dispatch("tools/call", params, ctx)
        if not declares_tasks(ctx.client_capabilities):
            if support == "required":
                # Before the handler runs: it cannot be served without a task.
                raise missing_extension()
            return await self.server.dispatch("tools/call", params, ctx)
        if len(self._tasks) + self._provisional >= self.max_tasks:
            self._reclaim()
        if self._nursery is None or len(self._tasks) + self._provisional >= self.max_tasks:
            if support == "optional":
                return await self.server.dispatch("tools/call", params, ctx)
            raise McpError(
                INTERNAL_ERROR, "Server busy: too many tasks, retry later", {"maxTasks": self.max_tasks}
            )
        task = Task(self)
        if ctx.auth is not None:
            task.owner = ctx.auth.owner
        task.outlet = ctx._outlet = _TaskOutlet(task, ctx._outlet, ctx.client_capabilities)
        ctx._task = task
        self._provisional += 1
        if start == "immediate":
            if self._fleet is not None:
                try:
                    await self._store_first(task)
                except BaseException:
                    self._provisional -= 1
                    raise
            # Registered before the answer goes out: a tasks/get right after finds it.
            self._adopt(task)
            await self._nursery.start(self._keep, task, params, ctx)
            return task.announcement
        await self._nursery.start(self._keep, task, params, ctx)
        try:
            await task.decided.wait()
        finally:
            if not task.born:
                # Answered without a task, or the request is gone (cancelled: the client
                # left, or the drain): the handler must not run on unowned.
                task.lifetime.cancel()
        if task.born:
            return task.announcement
        if task.early_error is not None:
            raise task.early_error
        return task.early_result

    def _reclaim(self) -> bool:
        """Forget the oldest finished task before its ttl is up (at ``max_tasks``, or
        to keep a new result), so records nobody polls any more cannot keep task tools
        refused, or memory held, for everyone.  ``False`` if none is finished."""
        for task in self._tasks.values():  # oldest first
            if task.status in TERMINAL:
                self._forget(task)
                task.lifetime.cancel()
                if self._fleet is not None:
                    self._fleet.delete_task(task.id)  # forgotten here: everywhere
                return True
        return False

    def _forget(self, task: Task) -> None:
        if self._tasks.get(task.id) is task:
            del self._tasks[task.id]
            self._result_bytes -= task.size
            task.size = 0

    def _charge(self, task: Task, result: Any) -> int | None:
        """Make room for ``result`` in the byte budget; its size, or ``None`` if it
        cannot be kept."""
        size = len(jsonrpc.to_json(result))
        if size > self.max_result_bytes:
            return None
        while self._result_bytes + size > self.max_result_bytes:
            if not self._reclaim():
                return None
        self._result_bytes += size
        return size

    def _adopt(self, task: Task) -> None:
        """The task exists from now on: visible, counted, and its ttl running."""
        task.born = True
        if task.outlet is not None:
            task.outlet.request = None
        if self._fleet is None:  # in a fleet, stamped as the stored record says
            task.created_at = task.updated_at = _now()
        task.lifetime.deadline = math.inf if self.ttl is None else trio.current_time() + self.ttl
        self._provisional -= 1
        self._tasks[task.id] = task
        task.announcement = {"resultType": "task", **task.info()}

    async def _keep(
        self, task: Task, params: dict[str, Any], ctx: Context, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """One task's life: its work, then its record until the ttl runs out."""
        try:
            with task.lifetime:
                # Counted as running before the caller hears of it, so a drain (or a
                # test) that looks right after creation waits for it.
                with self._running:
                    task_status.started()
                    await self._work(task, params, ctx)
                if task.born:
                    del params, ctx  # the record keeps the outcome, not the request
                    await trio.sleep_forever()  # keep the outcome for tasks/get
        finally:
            if task.born:
                self._forget(task)
            else:
                self._provisional -= 1
                if not task.decided.is_set():
                    task.early_error = McpError(INTERNAL_ERROR, "Server shutting down: request cancelled")
                    task.decided.set()

    async def _work(self, task: Task, params: dict[str, Any], ctx: Context) -> None:
        with task.work:
            try:
                value = await self.server.dispatch("tools/call", params, ctx)
            except InputRequired as exc:
                task.fail(exc)
            except Exception as exc:
                task.fail(failure(exc, f"tools/call (task {task.id})"))
            else:
                task.settle(value)

    # -- the fleet's copy (only with a fleet) -----------------------------------------

    def _record(self, task: Task) -> bytes:
        """The shared record of ``task``: what ``tasks/get`` shows, and whose it is."""
        record: bytes = jsonrpc.to_json({"owner": task.owner, "task": task.detailed()})
        if len(record) > self.max_result_bytes + RECORD_SLACK_BYTES:
            # Kept results fit max_result_bytes, so only outsized input requests get
            # here: the other workers are told it failed and why, not shown half a record.
            logger.warning("task %s: its record is too large to share (%d bytes)", task.id, len(record))
            error = {"code": INTERNAL_ERROR, "message": "The task's record is too large to share"}
            body = {**task.info(), "status": "failed", "error": error}
            record = jsonrpc.to_json({"owner": task.owner, "task": body})
        return record

    def _ttl_ms(self, task: Task) -> int:
        """The shared record's lifetime: what is left of the task's."""
        deadline = task.lifetime.deadline
        if not task.born:
            left = UNBOUNDED_RECORD_TTL if self.ttl is None else self.ttl
        elif math.isinf(deadline):
            left = UNBOUNDED_RECORD_TTL
        else:
            left = deadline - trio.current_time()
        return max(1, math.ceil(left * 1000))

    def _share(self, task: Task) -> None:
        """A change of a task: its shared record follows (queued, in order)."""
        if self._fleet is not None and task.born:
            task.written = self._fleet.save_task(task.id, self._record(task), self._ttl_ms(task))
            task.unshared = False

    async def _store_first(self, task: Task) -> None:
        """The task's record, stored before its id is given out: so a ``tasks/get`` on
        any worker right after finds it.  Raises ``McpError`` (retry later) when the
        store does not answer; nothing of the task is left then."""
        assert self._fleet is not None
        task.created_at = task.updated_at = _now()
        try:
            await self._fleet.store_task(task.id, self._record(task), self._ttl_ms(task))
        except BaseException:
            self._fleet.delete_task(task.id)  # in case the write was applied after all
            raise

    async def find(self, params: dict[str, Any], capabilities: dict[str, Any]) -> SharedTask | None:
        """With a fleet, before :meth:`answer`: the record of a task this worker does not
        run (one round trip), or ``None``.  Only ids of the shape we issue are looked
        up.  Raises the 503 refusal when the store does not answer."""
        task_id = params.get("taskId")
        if (
            self._fleet is None
            or not declares_tasks(capabilities)
            or not isinstance(task_id, str)
            or task_id in self._tasks
            or not is_shareable_task_id(task_id)
        ):
            await trio.lowlevel.checkpoint()
            return None
        raw = await self._fleet.load_task(task_id)
        return None if raw is None else SharedTask.parse(raw)

    def signalled(self, task_id: str, kind: str, body: bytes) -> None:
        """A ``tasks/cancel`` or ``tasks/update`` another worker received: applied here
        as if it had been received here (ignored unless this worker runs it), then
        confirmed to that worker behind the write of the record it changed."""
        task = self._tasks.get(task_id)
        if task is None or self._fleet is None:
            return
        reply: Any = None
        error: McpError | None = None
        try:
            message = json.loads(body)
            reply = message.get("reply")
            owner = message["owner"]
            if (None if owner is None else (owner[0], owner[1])) != task.owner:
                logger.warning("task %s: refusing a %s for another principal", task_id, kind)
                error = McpError(INVALID_PARAMS, f"Unknown task: {task_id}", {"taskId": task_id})
            elif kind == "cancel":
                task.cancel()
            elif kind == "update":
                task.update(message["inputResponses"])
        except McpError as exc:
            # The record it was checked against was behind: as a late answer would be.
            logger.info("task %s: a tasks/update from another worker is refused: %s", task_id, exc.message)
            error = exc
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            logger.warning("task %s: ignoring a malformed %s signal: %r", task_id, kind, exc)
            return
        if isinstance(reply, str):  # a worker of an earlier version asks for none
            self._fleet.confirm_task(task_id, reply, None if error is None else error.to_error_object())

    async def _answer_shared(
        self, method: str, params: dict[str, Any], task_id: str, shared: SharedTask
    ) -> dict[str, Any]:
        """``tasks/*`` for a task another worker runs, checked against its record; a
        change is acknowledged once that worker has confirmed it."""
        assert self._fleet is not None
        body = shared.body
        if method == "tasks/get":
            return {"resultType": "complete", **body}
        finished = body["status"] in TERMINAL
        owner = None if shared.owner is None else list(shared.owner)
        if method == "tasks/update":
            responses = params.get("inputResponses")
            if not isinstance(responses, dict):
                raise McpError(INVALID_PARAMS, "inputResponses must be an object")
            pending = body.get("inputRequests") if body["status"] == "input_required" else None
            for wire, answer in responses.items():
                request = pending.get(wire) if isinstance(pending, dict) else None
                if isinstance(request, dict) and not answer_is_valid(str(request.get("method")), answer):
                    raise _invalid_answer(wire, str(request.get("method")))
            if responses and not finished:
                refused = await self._fleet.send_task(
                    task_id, "update", {"owner": owner, "inputResponses": responses}
                )
                if refused is not None:
                    raise McpError(refused["code"], refused["message"], refused.get("data"))
        elif not finished:
            await self._fleet.send_task(task_id, "cancel", {"owner": owner})
        return {"resultType": "complete"}

    # -- tasks/get, tasks/update, tasks/cancel ----------------------------------------

    def answer(
        self,
        method: str,
        params: dict[str, Any],
        capabilities: dict[str, Any],
        principal: Principal | None = None,
    ) -> dict[str, Any]:
        """Answer ``tasks/*`` for the task this worker runs (without a fleet;
        :meth:`answer_in_fleet` with one)."""
        return self._answer_local(method, params, self._mine(params, capabilities, principal))

    async def answer_in_fleet(
        self,
        method: str,
        params: dict[str, Any],
        capabilities: dict[str, Any],
        principal: Principal | None = None,
        shared: SharedTask | None = None,
    ) -> dict[str, Any]:
        """:meth:`answer` in a fleet, for the task this worker runs or (``shared``, from
        :meth:`find`) one another worker runs, once the store shows what is answered
        (read your writes on every worker: see the module docstring).  Raises the 503
        refusal (a ``ProtocolError``) when the store or the running worker does not
        answer in time."""
        assert self._fleet is not None
        if not declares_tasks(capabilities):
            raise missing_extension()
        task_id = params.get("taskId")
        owner = None if principal is None else principal.owner
        mine = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if (mine is None or mine.owner != owner) and shared is not None and shared.owner == owner:
            assert isinstance(task_id, str)
            return await self._answer_shared(method, params, task_id, shared)
        task = self._mine(params, capabilities, principal)
        if task.unshared:
            self._share(task)  # its last write was not applied: written again
        answered = self._answer_local(method, params, task)
        try:
            await self._fleet.task_written(task.written)
        except McpError:
            task.unshared = True
            if method != "tasks/get":
                raise
            # A read: this worker's own state, from memory, as when the store is down.
        return answered

    def _mine(
        self, params: dict[str, Any], capabilities: dict[str, Any], principal: Principal | None
    ) -> Task:
        """The task ``tasks/*`` names, run here for the principal asking."""
        if not declares_tasks(capabilities):
            raise missing_extension()
        task_id = params.get("taskId")
        owner = None if principal is None else principal.owner
        task = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or task.owner != owner:
            raise McpError(INVALID_PARAMS, f"Unknown task: {task_id}", {"taskId": task_id})
        return task

    def _answer_local(self, method: str, params: dict[str, Any], task: Task) -> dict[str, Any]:
        if method == "tasks/get":
            return {"resultType": "complete", **task.detailed()}
        if method == "tasks/update":
            responses = params.get("inputResponses")
            if not isinstance(responses, dict):
                raise McpError(INVALID_PARAMS, "inputResponses must be an object")
            task.update(responses)
        else:
            task.cancel()
        # An acknowledgement only: the task's state is read with tasks/get.
        return {"resultType": "complete"}
