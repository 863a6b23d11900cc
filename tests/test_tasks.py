"""The tasks extension of the 2026-07-28 era (SEP-2663, ``io.modelcontextprotocol/tasks``).

Through real Hypercorn and httpx: task creation, ``tasks/get`` / ``tasks/update`` /
``tasks/cancel``, input parked until ``tasks/update``, MRTR before an explicit task
start, the gate on the client's declaration, the cap, and the drain.  In memory with a
MockClock: ttl expiry, and a disconnect before the task exists.

Nothing sleeps to wait: tests synchronise on events the tools set.  A tool sets its
event right before it asks for input, and parking happens with no checkpoint in
between, so a woken test always sees the task in ``input_required``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import trio
import trio.testing
from helpers import Controller, InMemoryClient, response_messages, serving

from trio_mcp_http import Context, McpError, McpHttpApp, McpServer, ToolError, TransportConfig
from trio_mcp_http.auth import Principal

MODERN = "2026-07-28"
TASKS = "io.modelcontextprotocol/tasks"
WITH_TASKS: dict[str, Any] = {"elicitation": {}, "extensions": {TASKS: {}}}
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def build(ctl: Controller) -> McpServer:
    server = McpServer("tasks-test", "1.0.0")

    @server.tool()
    async def echo(text: str) -> str:
        """Never a task."""
        return text

    @server.tool(task_support="optional")
    async def hold(ctx: Context, key: str) -> str:
        """Wait until the test releases `key`."""
        with ctl.track(key):
            await ctl.gates[key].wait()
            return f"released {key} in task {ctx.task_id}"

    @server.tool(task_support="required")
    async def needs_task(key: str) -> str:
        """Only ever a task."""
        ctl.started[key].set()
        await ctl.gates[key].wait()
        return "done"

    @server.tool(task_support="optional")
    async def confirm(ctx: Context, key: str) -> str:
        """One elicitation."""
        ctl.started[key].set()
        answer = await ctx.elicit("Sure?", NAME_SCHEMA, key="sure")
        return f"{answer['action']} {answer.get('content', {}).get('name')}"

    @server.tool(task_support="optional")
    async def two_at_once(ctx: Context, key: str) -> str:
        """Two asks in parallel, under the same handler key."""
        names: list[str] = []

        async def ask() -> None:
            answer = await ctx.elicit("Name?", NAME_SCHEMA, key="name")
            names.append(answer["content"]["name"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            nursery.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()
            ctl.started[key].set()
        return " and ".join(sorted(names))

    @server.tool(task_support="required", task_start="explicit")
    async def mrtr_then_task(ctx: Context, key: str, shortcut: bool = False) -> str:
        """Gather a name by MRTR, then go on as a task (or answer at once)."""
        answer = await ctx.elicit("Who?", NAME_SCHEMA, key="who")
        name = answer["content"]["name"]
        if shortcut:
            return f"quick hello, {name}"
        assert ctx.task_id is None
        ctl.started[key].set()
        await ctx.start_task()
        assert ctx.task_id is not None
        try:
            await ctl.gates[key].wait()
        except trio.Cancelled:
            ctl.cancelled[key].set()
            raise
        return f"hello, {name}"

    @server.tool(task_support="required", task_start="explicit")
    async def slow_start(ctx: Context, key: str) -> str:
        """Work before its task starts."""
        ctl.started[key].set()
        try:
            await ctl.gates[key].wait()
        except trio.Cancelled:
            ctl.cancelled[key].set()
            raise
        await ctx.start_task()
        return "started late"

    @server.tool(task_support="optional")
    async def protocol_failure() -> str:
        """A protocol error: a failed task."""
        raise McpError(-32603, "it broke")

    @server.tool(task_support="optional")
    async def tool_failure() -> str:
        """A tool error: a completed task with isError."""
        raise ToolError("no luck")

    @server.tool(task_support="optional")
    async def sampler(ctx: Context) -> str:
        """Asks for sampling, which the task clients here do not declare."""
        await ctx.sample([{"role": "user", "content": {"type": "text", "text": "hi"}}], 10)
        return "sampled"

    return server


@pytest.fixture
def tasks_server(ctl: Controller) -> McpServer:
    return build(ctl)


def body(
    request_id: int, method: str, params: dict[str, Any], capabilities: dict[str, Any]
) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "tasks-tests", "version": "0"},
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": meta}}


def headers_for(message: dict[str, Any]) -> dict[str, str]:
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": message["method"],
    }
    params = message["params"]
    for source in ("name", "uri", "taskId"):
        if isinstance(params.get(source), str) and message["method"] != "server/discover":
            headers["mcp-name"] = params[source]
    return headers


class TasksClient:
    """A 2026-07-28 client: one POST per request, ``_meta`` and routing headers on each
    (and ``token`` as its bearer token, when given)."""

    def __init__(
        self, client: Any, capabilities: dict[str, Any] | None = None, token: str | None = None
    ) -> None:
        self.client = client
        self.capabilities = WITH_TASKS if capabilities is None else capabilities
        self.token = token
        self.next_id = 0

    async def send(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        self.next_id += 1
        message = body(self.next_id, method, params, self.capabilities)
        headers = headers_for(message)
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        response = await self.client.http.post(
            self.client.url, content=json.dumps(message).encode(), headers=headers
        )
        (answer,) = [m for m in response_messages(response) if "id" in m]
        return response.status_code, answer

    async def result(self, method: str, **params: Any) -> dict[str, Any]:
        status, answer = await self.send(method, **params)
        assert status == 200, answer
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def error(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        status, answer = await self.send(method, **params)
        assert "error" in answer, answer
        error: dict[str, Any] = answer["error"]
        return status, error

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        return await self.result("tools/call", name=name, arguments=arguments)

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self.result("tasks/get", taskId=task_id)


#: The issuer :class:`TokenIsPrincipal` vouches for.
ISSUER = "http://127.0.0.1:9"


class TokenIsPrincipal:
    """A verifier for tests: the token ``alice`` is the subject ``alice`` of
    :data:`ISSUER`, ``other.alice`` the subject ``alice`` of another issuer."""

    async def verify(self, token: str) -> Principal:
        await trio.lowlevel.checkpoint()
        issuer, _, subject = token.rpartition(".")
        return Principal(subject=subject, issuer=f"http://{issuer}.example" if issuer else ISSUER)


def with_authorization() -> dict[str, Any]:
    """The settings that switch authorization on, tokens checked by :class:`TokenIsPrincipal`."""
    return {
        "auth_issuer": ISSUER,
        "auth_resource": "http://127.0.0.1/mcp",
        "auth_verifier": TokenIsPrincipal(),
    }


def assert_create_task_result(result: dict[str, Any]) -> str:
    assert result["resultType"] == "task"
    for absent in ("task", "ttl", "pollInterval", "result", "error", "inputRequests", "requestState"):
        assert absent not in result
    assert result["status"] == "working"
    assert ISO_8601.match(result["createdAt"])
    assert ISO_8601.match(result["lastUpdatedAt"])
    assert isinstance(result["ttlMs"], int)
    assert result["ttlMs"] > 0
    assert isinstance(result["pollIntervalMs"], int)
    assert result["pollIntervalMs"] > 0
    task_id: str = result["taskId"]
    return task_id


# -- through Hypercorn ---------------------------------------------------------------------


async def test_a_task_from_creation_to_its_inlined_result(tasks_server: McpServer, ctl: Controller) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            discovered = await tasks.result("server/discover")
            assert discovered["capabilities"]["extensions"] == {TASKS: {}}
            assert "tasks" not in discovered["capabilities"]

            created = await tasks.call("hold", key="a")
            task_id = assert_create_task_result(created)
            # Registered before the answer went out: an immediate tasks/get finds it.
            working = await tasks.get(task_id)
            assert working["resultType"] == "complete"
            assert working["taskId"] == task_id
            assert working["status"] == "working"
            assert "result" not in working
            await ctl.started["a"].wait()
            assert handle.app.tasks.statistics() == {"tasks": 1, "tasks_running": 1}

            ctl.release("a")
            await ctl.finished["a"].wait()
            done = await tasks.get(task_id)
            assert done["status"] == "completed"
            assert done["result"] == {"content": [{"type": "text", "text": f"released a in task {task_id}"}]}
            assert "requestState" not in done
            assert handle.app.tasks.statistics() == {"tasks": 1, "tasks_running": 0}
            # A finished task's record stays for its ttl; cancelling it is a no-op ack.
            assert await tasks.result("tasks/cancel", taskId=task_id) == {
                "resultType": "complete",
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "tasks-test", "version": "1.0.0"}},
            }
            assert (await tasks.get(task_id))["status"] == "completed"


async def test_errors_a_tool_reports_complete_the_task_protocol_errors_fail_it(
    tasks_server: McpServer,
) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            tool_error = assert_create_task_result(await tasks.call("tool_failure"))
            protocol_error = assert_create_task_result(await tasks.call("protocol_failure"))
            no_sampling = assert_create_task_result(await tasks.call("sampler"))
            await handle.app.tasks.wait_idle()

            completed = await tasks.get(tool_error)
            assert completed["status"] == "completed"
            assert completed["result"] == {"content": [{"type": "text", "text": "no luck"}], "isError": True}

            failed = await tasks.get(protocol_error)
            assert failed["status"] == "failed"
            assert failed["error"] == {"code": -32603, "message": "it broke"}
            assert "result" not in failed

            # Input the client cannot give: the task fails with -32021 naming it.
            missing = await tasks.get(no_sampling)
            assert missing["status"] == "failed"
            assert missing["error"]["code"] == -32021
            assert missing["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}


async def test_cancel_stops_the_work_through_its_scope_and_is_idempotent(
    tasks_server: McpServer, ctl: Controller
) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            task_id = assert_create_task_result(await tasks.call("hold", key="c"))
            await ctl.started["c"].wait()
            ack = await tasks.result("tasks/cancel", taskId=task_id)
            assert set(ack) == {"resultType", "_meta"}
            # Settled at once: the next tasks/get sees it, whatever the handler is doing.
            cancelled = await tasks.get(task_id)
            assert cancelled["status"] == "cancelled"
            await ctl.cancelled["c"].wait()
            await handle.app.tasks.wait_idle()
            assert (await tasks.result("tasks/cancel", taskId=task_id))["resultType"] == "complete"
            assert (await tasks.get(task_id))["status"] == "cancelled"


async def test_input_parks_the_task_until_tasks_update_answers(
    tasks_server: McpServer, ctl: Controller
) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            task_id = assert_create_task_result(await tasks.call("confirm", key="p"))
            await ctl.started["p"].wait()
            parked = await tasks.get(task_id)
            assert parked["status"] == "input_required"
            assert parked["inputRequests"] == {
                "sure": {
                    "method": "elicitation/create",
                    "params": {"message": "Sure?", "requestedSchema": NAME_SCHEMA},
                }
            }
            assert "requestState" not in parked

            # Unknown keys are ignored; a malformed answer to a pending key is refused
            # and applies nothing.
            ack = await tasks.result("tasks/update", taskId=task_id, inputResponses={"unknown": {"x": 1}})
            assert set(ack) == {"resultType", "_meta"}
            status, error = await tasks.error(
                "tasks/update", taskId=task_id, inputResponses={"sure": {"action": "maybe"}}
            )
            assert (status, error["code"]) == (200, -32602)
            assert (await tasks.get(task_id))["status"] == "input_required"

            answer = {"action": "accept", "content": {"name": "Ada"}}
            await tasks.result("tasks/update", taskId=task_id, inputResponses={"sure": answer})
            # The answer is taken synchronously: the task is no longer waiting on input.
            assert (await tasks.get(task_id))["status"] in ("working", "completed")
            await handle.app.tasks.wait_idle()
            done = await tasks.get(task_id)
            assert done["status"] == "completed"
            assert done["result"]["content"][0]["text"] == "accept Ada"


async def test_parallel_asks_are_answered_one_by_one(tasks_server: McpServer, ctl: Controller) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            task_id = assert_create_task_result(await tasks.call("two_at_once", key="two"))
            await ctl.started["two"].wait()
            parked = await tasks.get(task_id)
            # The same handler key asked twice at once gets two wire keys.
            assert sorted(parked["inputRequests"]) == ["name", "name-2"]

            first = {"action": "accept", "content": {"name": "Ada"}}
            await tasks.result("tasks/update", taskId=task_id, inputResponses={"name-2": first})
            partial = await tasks.get(task_id)
            assert partial["status"] == "input_required"
            assert list(partial["inputRequests"]) == ["name"]

            second = {"action": "accept", "content": {"name": "Grace"}}
            await tasks.result("tasks/update", taskId=task_id, inputResponses={"name": second})
            await handle.app.tasks.wait_idle()
            done = await tasks.get(task_id)
            assert done["status"] == "completed"
            assert done["result"]["content"][0]["text"] == "Ada and Grace"


async def test_explicit_start_gathers_input_by_mrtr_then_runs_as_a_task(
    tasks_server: McpServer, ctl: Controller
) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            first = await tasks.call("mrtr_then_task", key="m")
            assert first["resultType"] == "input_required"
            assert "taskId" not in first
            assert list(first["inputRequests"]) == ["who"]
            assert handle.app.tasks.statistics() == {"tasks": 0, "tasks_running": 0}

            answer = {"action": "accept", "content": {"name": "Alice"}}
            created = await tasks.result(
                "tools/call",
                name="mrtr_then_task",
                arguments={"key": "m"},
                inputResponses={"who": answer},
                requestState=first["requestState"],
            )
            task_id = assert_create_task_result(created)
            await ctl.started["m"].wait()
            assert (await tasks.get(task_id))["status"] == "working"
            ctl.release("m")
            await handle.app.tasks.wait_idle()
            done = await tasks.get(task_id)
            assert done["result"]["content"][0]["text"] == "hello, Alice"

            # A handler that answers before starting its task answers directly.
            quick = await tasks.result(
                "tools/call",
                name="mrtr_then_task",
                arguments={"key": "q", "shortcut": True},
                inputResponses={"who": answer},
                requestState=(await tasks.call("mrtr_then_task", key="q", shortcut=True))["requestState"],
            )
            assert quick["resultType"] == "complete"
            assert quick["content"][0]["text"] == "quick hello, Alice"
            assert handle.app.tasks.statistics() == {"tasks": 1, "tasks_running": 0}


async def test_without_the_extension_tools_answer_directly_and_tasks_methods_are_refused(
    tasks_server: McpServer, ctl: Controller
) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            plain = TasksClient(client, capabilities={"elicitation": {}})
            ctl.release("direct")
            direct = await plain.call("hold", key="direct")
            assert direct["resultType"] == "complete"
            assert direct["content"][0]["text"] == "released direct in task None"

            status, error = await plain.error("tools/call", name="needs_task", arguments={"key": "x"})
            assert status == 400
            assert error["code"] == -32021
            assert error["data"] == {"requiredCapabilities": {"extensions": {TASKS: {}}}}
            assert not ctl.started["x"].is_set()  # refused before the handler ran

            for method, params in (
                ("tasks/get", {"taskId": "t"}),
                ("tasks/update", {"taskId": "t", "inputResponses": {}}),
                ("tasks/cancel", {"taskId": "t"}),
            ):
                status, error = await plain.error(method, **params)
                assert (status, error["code"]) == (400, -32021)

            # The declaration is per request: the same client opts in for one call.
            opted_in = TasksClient(client, capabilities={"extensions": {TASKS: {}}})
            task_id = assert_create_task_result(await opted_in.call("needs_task", key="y"))
            ctl.release("y")
            await handle.app.tasks.wait_idle()
            assert (await opted_in.get(task_id))["status"] == "completed"
            # Legacy (2025) task hints are ignored: a sync tool stays sync.
            legacy = await opted_in.result(
                "tools/call", name="echo", arguments={"text": "hi"}, task={"ttl": 60000, "pollInterval": 100}
            )
            assert legacy["resultType"] == "complete"
            assert legacy["content"] == [{"type": "text", "text": "hi"}]


async def test_protocol_rules_on_the_tasks_surface(tasks_server: McpServer, ctl: Controller) -> None:
    async with serving(tasks_server) as (_handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            status, error = await tasks.error("tasks/get", taskId="no-such-task")
            assert (status, error["code"]) == (200, -32602)
            for removed in ("tasks/result", "tasks/list"):
                status, error = await tasks.error(removed, taskId="no-such-task")
                assert (status, error["code"]) == (404, -32601)

            task_id = assert_create_task_result(await tasks.call("hold", key="h"))
            message = body(99, "tasks/get", {"taskId": task_id}, WITH_TASKS)
            headers = {**headers_for(message), "mcp-name": "another-task"}
            response = await client.http.post(
                client.url, content=json.dumps(message).encode(), headers=headers
            )
            assert response.status_code == 400
            assert response.json()["error"]["code"] == -32020
            ctl.release("h")


async def test_the_cap_bounds_task_records(tasks_server: McpServer, ctl: Controller) -> None:
    async with serving(tasks_server, max_tasks=1) as (_handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            first_id = assert_create_task_result(await tasks.call("hold", key="first"))
            # Full: an optional tool answers directly, a required one is refused.
            ctl.release("second")
            direct = await tasks.call("hold", key="second")
            assert direct["resultType"] == "complete"
            status, error = await tasks.error("tools/call", name="needs_task", arguments={"key": "z"})
            assert (status, error["code"]) == (200, -32603)
            assert error["data"] == {"maxTasks": 1}
            ctl.release("first")
            await ctl.finished["first"].wait()
            assert (await tasks.get(first_id))["status"] == "completed"
            # A finished record makes room for a new task before its ttl is up, rather
            # than keeping task tools refused for everyone.
            ctl.release("z")
            assert_create_task_result(await tasks.call("needs_task", key="z"))
            status, error = await tasks.error("tasks/get", taskId=first_id)
            assert error["code"] == -32602


async def test_drain_lets_tasks_finish_within_the_grace_period(
    tasks_server: McpServer, ctl: Controller
) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            task_id = assert_create_task_result(await tasks.call("hold", key="d"))
            await ctl.started["d"].wait()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(handle.app.drain, 30.0)
                await trio.testing.wait_all_tasks_blocked()
                # Draining: no new work, but the task can still be polled.
                status, _ = await tasks.error("tools/call", name="echo", arguments={"text": "x"})
                assert status == 503
                assert (await tasks.get(task_id))["status"] == "working"
                ctl.release("d")
            # The drain returned when the task finished, long before its grace ran out.
            assert (await tasks.get(task_id))["status"] == "completed"


async def test_drain_cancels_tasks_still_running_after_the_grace_period(
    tasks_server: McpServer, ctl: Controller
) -> None:
    async with serving(tasks_server) as (handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            running = assert_create_task_result(await tasks.call("hold", key="r"))
            parked = assert_create_task_result(await tasks.call("confirm", key="q"))
            await ctl.started["r"].wait()
            await ctl.started["q"].wait()
            await handle.app.drain(grace_period=0)
            assert ctl.cancelled["r"].is_set()
            assert handle.app.tasks.statistics() == {"tasks": 2, "tasks_running": 0}
            for task_id in (running, parked):
                failed = await tasks.get(task_id)
                assert failed["status"] == "failed"
                assert failed["error"] == {"code": -32603, "message": "Server shutting down: task cancelled"}


async def test_a_task_is_unknown_to_every_principal_but_its_creators(
    tasks_server: McpServer, ctl: Controller
) -> None:
    async with serving(tasks_server, **with_authorization()) as (handle, client):
        with trio.fail_after(10):
            alice = TasksClient(client, token="alice")
            task_id = assert_create_task_result(await alice.call("confirm", key="mine"))
            await ctl.started["mine"].wait()
            forged = {"action": "accept", "content": {"name": "Mallory"}}
            # Another subject, and the same subject from another issuer: someone else.
            for intruder in (TasksClient(client, token="bob"), TasksClient(client, token="other.alice")):
                for method, params in (
                    ("tasks/get", {}),
                    ("tasks/update", {"inputResponses": {"sure": forged}}),
                    ("tasks/cancel", {}),
                ):
                    status, error = await intruder.error(method, taskId=task_id, **params)
                    assert (status, error["code"]) == (200, -32602), method
                    assert error["message"] == f"Unknown task: {task_id}"
            # Nothing the others sent was applied: still waiting, still for its creator.
            parked = await alice.get(task_id)
            assert parked["status"] == "input_required"
            answer = {"action": "accept", "content": {"name": "Ada"}}
            await alice.result("tasks/update", taskId=task_id, inputResponses={"sure": answer})
            await handle.app.tasks.wait_idle()
            done = await alice.get(task_id)
            assert done["result"]["content"][0]["text"] == "accept Ada"
            kept = handle.app.tasks.get(task_id)
            assert kept is not None
            assert kept.owner == (ISSUER, "alice")


# -- in memory, in virtual time ------------------------------------------------------------


async def _post(client: InMemoryClient, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, _, raw = await client.request("POST", message, **headers_for(message))
    answer: dict[str, Any] = json.loads(raw)
    return status, answer


async def test_a_task_stays_reachable_for_its_ttl_and_no_longer(
    tasks_server: McpServer, ctl: Controller, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            app = McpHttpApp(tasks_server, TransportConfig(task_ttl=60.0))
            await nursery.start(app.run)
            client = InMemoryClient(app, nursery)
            ctl.release("done")
            _, created = await _post(
                client, body(1, "tools/call", {"name": "hold", "arguments": {"key": "done"}}, WITH_TASKS)
            )
            finished = created["result"]["taskId"]
            assert created["result"]["ttlMs"] == 60_000
            _, created = await _post(
                client, body(2, "tools/call", {"name": "hold", "arguments": {"key": "long"}}, WITH_TASKS)
            )
            running = created["result"]["taskId"]

            await trio.sleep(59)
            for n, task_id in enumerate((finished, running)):
                _, got = await _post(client, body(10 + n, "tasks/get", {"taskId": task_id}, WITH_TASKS))
                assert got["result"]["status"] in ("completed", "working")
            assert not ctl.cancelled["long"].is_set()

            await trio.sleep(2)
            # Expired: the records are gone, and work still running was cancelled.
            assert app.tasks.statistics() == {"tasks": 0, "tasks_running": 0}
            assert ctl.cancelled["long"].is_set()
            for n, task_id in enumerate((finished, running)):
                _, got = await _post(client, body(20 + n, "tasks/get", {"taskId": task_id}, WITH_TASKS))
                assert got["error"]["code"] == -32602
            nursery.cancel_scope.cancel()


async def test_a_disconnect_before_the_task_exists_cancels_the_handler(
    tasks_server: McpServer, ctl: Controller, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            app = McpHttpApp(tasks_server)
            await nursery.start(app.run)
            client = InMemoryClient(app, nursery)
            message = body(
                1, "tools/call", {"name": "confirm", "arguments": {"key": "gone"}}, {"elicitation": {}}
            )
            # Control: without the extension confirm is an ordinary MRTR request.
            status, answer = await _post(client, message)
            assert (status, answer["result"]["resultType"]) == (200, "input_required")

            # Before start_task() the handler is the request's: the client leaving
            # cancels it (2026-07-28 basic/transports/streamable-http §cancellation), and
            # no task is left behind.
            message = body(2, "tools/call", {"name": "slow_start", "arguments": {"key": "late"}}, WITH_TASKS)
            call = client.call("POST", message, **headers_for(message))
            await ctl.started["late"].wait()
            assert app.tasks.statistics() == {"tasks": 0, "tasks_running": 1}
            call.disconnect()
            await call.done.wait()
            assert ctl.cancelled["late"].is_set()
            assert app.tasks.statistics() == {"tasks": 0, "tasks_running": 0}

            # After start_task() the task is the registry's: a disconnect does not touch it.
            message = body(3, "tools/call", {"name": "hold", "arguments": {"key": "stays"}}, WITH_TASKS)
            status, created = await _post(client, message)
            assert created["result"]["resultType"] == "task"
            await ctl.started["stays"].wait()
            assert app.tasks.statistics() == {"tasks": 1, "tasks_running": 1}
            assert not ctl.cancelled["stays"].is_set()
            nursery.cancel_scope.cancel()


async def test_kept_results_are_bounded_in_bytes(tasks_server: McpServer, ctl: Controller) -> None:
    """Finished tasks' results are kept within max_task_bytes: the oldest finished
    record is forgotten to make room, and a result larger than the budget fails its
    task instead of being kept."""

    @tasks_server.tool(task_support="optional")
    async def big(ctx: Context, key: str, size: int) -> str:
        with ctl.track(key):
            await ctl.gates[key].wait()
            return "x" * size

    async with serving(tasks_server, max_task_bytes=3000) as (_handle, client):
        with trio.fail_after(10):
            tasks = TasksClient(client)
            ids = {}
            for key in ("a", "b"):
                ids[key] = assert_create_task_result(await tasks.call("big", key=key, size=1200))
                ctl.release(key)
                await ctl.finished[key].wait()
                assert (await tasks.get(ids[key]))["status"] == "completed"
            # A third result of the same size does not fit beside both: "a" goes.
            ids["c"] = assert_create_task_result(await tasks.call("big", key="c", size=1200))
            ctl.release("c")
            await ctl.finished["c"].wait()
            assert (await tasks.get(ids["c"]))["status"] == "completed"
            assert (await tasks.get(ids["b"]))["status"] == "completed"
            _, error = await tasks.error("tasks/get", taskId=ids["a"])
            assert error["code"] == -32602
            # Larger than the whole budget: the task fails, and says why.
            ids["d"] = assert_create_task_result(await tasks.call("big", key="d", size=5000))
            ctl.release("d")
            await ctl.finished["d"].wait()
            failed = await tasks.get(ids["d"])
            assert failed["status"] == "failed"
            assert "too large" in json.dumps(failed)
