"""The Trio client (``trio_mcp_http.client``) against this project's real server, in both
protocol eras, over real HTTP on 127.0.0.1.

Each test runs the client in the test's own Trio run, with warnings as errors: an async
generator left unclosed by the HTTP stack would fail it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from conftest import LogWatch
from helpers import Controller, serving, wait_idle

from trio_mcp_http import Context, McpError, McpServer, ToolError, UsageError
from trio_mcp_http.client import (
    ElicitationRequest,
    LogMessage,
    Notification,
    Progress,
    ResultValidationError,
    SamplingRequest,
    TransportError,
    open_mcp_client,
)
from trio_mcp_http.protocol.errors import ConfigError

ERAS = ["session", "stateless"]
NOTES = "file:///notes/"


def build(ctl: Controller) -> McpServer:
    """Tools, resources and prompts; ``page_size=2`` so every list has several pages."""
    server = McpServer("client-test", "2.0.0", instructions="Be kind.", page_size=2)

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text."""
        return text

    @server.tool(
        output_schema={
            "type": "object",
            "properties": {"sum": {"type": "integer"}},
            "required": ["sum"],
        }
    )
    async def add(a: int, b: int) -> dict[str, int]:
        """Add two integers (structured)."""
        return {"sum": a + b}

    @server.tool(
        output_schema={"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}
    )
    async def bad_add(a: int, b: int) -> dict[str, str]:
        """Claims an integer sum, returns a string."""
        return {"sum": str(a + b)}

    @server.tool()
    async def fail() -> str:
        """Always fails."""
        raise ToolError("nope")

    @server.tool()
    async def steps(ctx: Context, count: int) -> str:
        """Report progress and log each step."""
        for step in range(1, count + 1):
            await ctx.report_progress(step, count, f"step {step}")
            await ctx.info(f"did step {step}")
        return f"{count} steps"

    @server.tool()
    async def interview(ctx: Context) -> str:
        """Elicit, sample and list roots, then summarise."""
        answer = await ctx.elicit(
            "Name?", {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        )
        sampled = await ctx.sample([{"role": "user", "content": {"type": "text", "text": "hi"}}], 10)
        roots = await ctx.list_roots()
        uris = ",".join(root["uri"] for root in roots["roots"])
        return f"{answer['content']['name']}|{sampled['content']['text']}|{uris}"

    @server.tool()
    async def hold(key: str) -> str:
        """Wait until the test releases `key`."""
        with ctl.track(key):
            await ctl.gates[key].wait()
            return "released"

    @server.tool()
    async def poll(ctx: Context, retry_ms: int) -> str:
        """Progress, then end the connection (SSE polling), then more progress."""
        await ctx.report_progress(1, 2, "before")
        ctx.close_sse_stream(retry_ms)
        await ctl.gates["poll"].wait()
        await ctx.report_progress(2, 2, "after")
        return "polled"

    @server.resource(NOTES + "a.txt", mime_type="text/plain")
    async def note_a() -> str:
        return "A"

    @server.resource(NOTES + "b.txt")
    async def note_b() -> str:
        return "B"

    @server.resource(NOTES + "c.bin")
    async def note_c() -> bytes:
        return b"\x00\x01"

    @server.resource(NOTES + "{name}.md")
    async def note(name: str) -> str:
        return f"# {name}"

    @server.prompt()
    async def greet(name: str) -> str:
        """Greet someone."""
        return f"Hello {name}"

    @server.completion()
    async def complete(ref: dict[str, Any], argument: dict[str, Any], context: dict[str, Any]) -> list[str]:
        return [n for n in ("Ada", "Alan", "Grace") if n.startswith(argument["value"])]

    return server


@pytest.fixture
def server(ctl: Controller) -> McpServer:
    return build(ctl)


async def test_the_era_is_discovered_or_chosen(server: McpServer) -> None:
    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(handle.url) as client:
                assert (client.era, client.protocol_version, client.session_id) == (
                    "stateless",
                    "2026-07-28",
                    None,
                )
                assert client.server_info is not None
                assert client.server_info.name == "client-test"
                assert client.details.instructions == "Be kind."
                assert "tools" in client.server_capabilities
                assert handle.statistics()["sessions"] == 0
            async with open_mcp_client(handle.url, era="session") as client:
                assert (client.era, client.protocol_version) == ("session", "2025-11-25")
                assert client.session_id is not None
                assert client.server_info is not None
                assert client.server_info.version == "2.0.0"
                assert handle.statistics()["sessions"] == 1
            async with open_mcp_client(handle.url, protocol_version="2025-06-18") as client:
                assert (client.era, client.protocol_version) == ("session", "2025-06-18")


@pytest.mark.parametrize("era", ERAS)
async def test_the_whole_surface(era: str, server: McpServer) -> None:
    progress: list[Progress] = []
    logs: list[LogMessage] = []
    asked: list[Any] = []

    async def on_progress(update: Progress) -> None:
        progress.append(update)

    async def on_log(message: LogMessage) -> None:
        logs.append(message)

    async def elicitation(request: ElicitationRequest) -> dict[str, Any]:
        asked.append(request)
        return {"action": "accept", "content": {"name": "Ada"}}

    async def sampling(request: SamplingRequest) -> dict[str, Any]:
        asked.append(request)
        return {"role": "assistant", "content": {"type": "text", "text": "sampled"}, "model": "m"}

    async def roots() -> list[dict[str, str]]:
        return [{"uri": "file:///work", "name": "work"}]

    async with serving(server) as (handle, _):
        with trio.fail_after(15):
            async with open_mcp_client(
                handle.url, era=era, elicitation=elicitation, sampling=sampling, roots=roots, on_log=on_log
            ) as client:
                assert client.era == era
                tools = await client.list_tools()  # 8 tools over 4 pages
                assert [t.name for t in tools] == [
                    "echo", "add", "bad_add", "fail", "steps", "interview", "hold", "poll"
                ]  # fmt: skip
                assert tools[1].output_schema is not None
                assert tools[0].input_schema["required"] == ["text"]

                echoed = await client.call_tool("echo", {"text": "héllo 世界"})
                assert echoed.content[0].text == "héllo 世界"  # type: ignore[union-attr]
                added = await client.call_tool("add", {"a": 2, "b": 3})
                assert added.structured_content == {"sum": 5}
                failed = await client.call_tool("fail")
                assert failed.is_error
                assert "nope" in failed.content[0].text

                await client.set_logging_level("info")
                stepped = await client.call_tool("steps", {"count": 3}, progress=on_progress)
                assert stepped.content[0].text == "3 steps"  # type: ignore[union-attr]
                assert [(p.progress, p.total, p.message) for p in progress] == [
                    (1, 3, "step 1"),
                    (2, 3, "step 2"),
                    (3, 3, "step 3"),
                ]
                assert [m.data for m in logs] == ["did step 1", "did step 2", "did step 3"]
                assert {m.level for m in logs} == {"info"}

                interviewed = await client.call_tool("interview")
                assert interviewed.content[0].text == "Ada|sampled|file:///work"  # type: ignore[union-attr]
                assert isinstance(asked[0], ElicitationRequest)
                assert asked[0].message == "Name?"
                assert isinstance(asked[1], SamplingRequest)
                assert asked[1].max_tokens == 10

                resources = await client.list_resources()  # 3 resources over 2 pages
                assert [r.uri for r in resources] == [NOTES + "a.txt", NOTES + "b.txt", NOTES + "c.bin"]
                assert resources[0].mime_type == "text/plain"
                templates = await client.list_resource_templates()
                assert [t.uri_template for t in templates] == [NOTES + "{name}.md"]
                read = await client.read_resource(NOTES + "a.txt")
                assert read.contents[0].text == "A"  # type: ignore[union-attr]
                blob = await client.read_resource(NOTES + "c.bin")
                assert blob.contents[0].blob == "AAE="  # type: ignore[union-attr]
                templated = await client.read_resource(NOTES + "ünïcode.md")  # Mcp-Name goes base64
                assert templated.contents[0].text == "# ünïcode"  # type: ignore[union-attr]

                prompts = await client.list_prompts()
                assert [(p.name, [a.name for a in p.arguments]) for p in prompts] == [("greet", ["name"])]
                prompt = await client.get_prompt("greet", {"name": "Ada"})
                assert prompt.messages[0].content.text == "Hello Ada"  # type: ignore[union-attr]
                completion = await client.complete({"type": "ref/prompt", "name": "greet"}, "name", "A")
                assert completion.values == ["Ada", "Alan"]
                await client.ping()
        await wait_idle(handle.app)
        assert handle.statistics()["sessions"] == 0


@pytest.mark.parametrize("era", ERAS)
async def test_errors_arrive_as_mcp_errors_and_results_are_checked(era: str, server: McpServer) -> None:
    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(handle.url, era=era) as client:
                with pytest.raises(McpError) as unknown:
                    await client.call_tool("missing")
                assert unknown.value.code == -32602
                assert "Unknown tool" in unknown.value.message
                with pytest.raises(McpError) as no_prompt:
                    await client.get_prompt("nope")
                assert no_prompt.value.code == -32602
                # Not listed yet: the output schema is unknown, so nothing is checked.
                unchecked = await client.call_tool("bad_add", {"a": 1, "b": 2})
                assert unchecked.structured_content == {"sum": "3"}
                await client.list_tools()
                with pytest.raises(ResultValidationError, match=r"outputSchema: \$\.sum: expected integer"):
                    await client.call_tool("bad_add", {"a": 1, "b": 2})
                # The client is still usable after errors.
                assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {"sum": 2}


@pytest.mark.parametrize("era", ERAS)
async def test_cancelling_a_call_cancels_it_on_the_server(
    era: str, ctl: Controller, server: McpServer
) -> None:
    """Session era: ``notifications/cancelled`` (a closed stream alone would not cancel);
    stateless era: closing the response."""
    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(handle.url, era=era) as client:
                key = f"cancel-{era}"
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(client.call_tool, "hold", {"key": key})
                        await ctl.started[key].wait()
                        scope.cancel()
                assert scope.cancelled_caught
                await ctl.cancelled[key].wait()  # the server's handler was cancelled
                assert (await client.call_tool("echo", {"text": "after"})).content[0].text == "after"  # type: ignore[union-attr]
            await wait_idle(handle.app)
            stats = handle.statistics()
            assert (stats["sessions"], stats["requests_in_flight"], stats["open_streams"]) == (0, 0, 0)


def _client_tasks() -> set[trio.lowlevel.Task]:
    """Every live task the client package started (the server's own are not counted)."""
    found: set[trio.lowlevel.Task] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is not None:
            if task.name.startswith("trio_mcp_http.client"):
                found.add(task)
            pending.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return found


@pytest.mark.parametrize("era", ERAS)
async def test_leaving_the_block_ends_everything(era: str, server: McpServer) -> None:
    """No task outlives the block; a session is DELETEd; the server holds no stream."""
    deleted: list[str] = []
    async with serving(server) as (handle, _):

        async def on_list_changed(kind: str) -> None:
            pass

        with trio.fail_after(10):
            async with open_mcp_client(handle.url, era=era, on_list_changed=on_list_changed) as client:
                await client.subscribe_resource(NOTES + "a.txt")
                session_id = client.session_id
                assert _client_tasks()  # the GET or listen stream's reader
                assert handle.statistics()["open_streams"] == 1
                if session_id is not None:
                    deleted.append(session_id)
            assert _client_tasks() == set()
            await wait_idle(handle.app)
            stats = handle.statistics()
            assert (stats["sessions"], stats["open_streams"], stats["http_calls_in_flight"]) == (0, 0, 0)
            if era == "session":
                # The DELETE happened: the id is refused now.
                async with httpx.AsyncClient() as http:
                    gone = await http.post(
                        handle.url,
                        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                        headers={
                            "mcp-session-id": deleted[0],
                            "accept": "application/json, text/event-stream",
                        },
                    )
                assert gone.status_code == 404


async def test_cancelling_the_block_still_deletes_the_session(server: McpServer) -> None:
    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                async with open_mcp_client(handle.url, era="session") as client:
                    assert handle.statistics()["sessions"] == 1
                    scope.cancel()
                    await client.ping()  # cancelled
            assert scope.cancelled_caught
            await wait_idle(handle.app)
            assert handle.statistics()["sessions"] == 0


async def test_a_dropped_stream_is_resumed_after_the_retry_hint(ctl: Controller, server: McpServer) -> None:
    """SSE polling: the server ends the call's stream with ``retry:``; the client waits
    that long, resumes with Last-Event-ID, and gets the rest and the answer once."""
    progress: list[str | None] = []

    async def on_progress(update: Progress) -> None:
        progress.append(update.message)
        if update.message == "before":
            ctl.release("poll")

    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(handle.url, era="session") as client:
                started = trio.current_time()
                result = await client.call_tool("poll", {"retry_ms": 300}, progress=on_progress)
                assert trio.current_time() - started >= 0.3  # the retry: hint was honoured
                assert result.content[0].text == "polled"  # type: ignore[union-attr]
                assert progress == ["before", "after"]


@pytest.mark.parametrize("era", ERAS)
async def test_notifications_reach_the_handlers_and_listen_blocks(era: str, server: McpServer) -> None:
    changed: list[str] = []
    updated: list[str] = []
    seen: list[Notification] = []
    both = trio.Event()

    async def on_list_changed(kind: str) -> None:
        changed.append(kind)

    async def on_resource_updated(uri: str) -> None:
        updated.append(uri)
        both.set()

    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            async with open_mcp_client(
                handle.url, era=era, on_list_changed=on_list_changed, on_resource_updated=on_resource_updated
            ) as client:
                await client.subscribe_resource(NOTES + "a.txt")
                async with client.listen(tools=True, resource_uris=[NOTES]) as subscription:
                    assert subscription.honoured["toolsListChanged"] is True
                    server.notify_tools_changed()
                    server.notify_resource_updated(NOTES + "a.txt")
                    async for notification in subscription:
                        seen.append(notification)
                        if len(seen) == 2:
                            break
                    await both.wait()
                assert [n.method for n in seen] == [
                    "notifications/tools/list_changed",
                    "notifications/resources/updated",
                ]
                assert seen[1].params == {"uri": NOTES + "a.txt"}
                assert "tools" in changed
                assert updated == [NOTES + "a.txt"]
                await client.unsubscribe_resource(NOTES + "a.txt")
        await wait_idle(handle.app)
        assert handle.statistics()["open_streams"] == 0


async def test_h2c(server: McpServer) -> None:
    async with serving(server) as (handle, _):
        with trio.fail_after(10):
            for era in ERAS:
                async with open_mcp_client(handle.url, era=era, http2=True) as client:
                    assert (await client.call_tool("echo", {"text": era})).content[0].text == era  # type: ignore[union-attr]


async def test_misuse_is_refused_clearly() -> None:
    with pytest.raises(UsageError, match="unknown option 'retries'"):
        async with open_mcp_client("http://127.0.0.1:1/mcp", retries=3):
            pass
    with pytest.raises(ConfigError, match="era must be"):
        async with open_mcp_client("http://127.0.0.1:1/mcp", era="modern"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ConfigError, match="belongs to the session era"):
        async with open_mcp_client("http://127.0.0.1:1/mcp", era="stateless", protocol_version="2025-11-25"):
            pass

    def not_async(request: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(UsageError, match="elicitation must be an async function"):
        async with open_mcp_client("http://127.0.0.1:1/mcp", elicitation=not_async):  # type: ignore[arg-type]
            pass


async def test_an_unreachable_server_is_a_transport_error_with_its_cause() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with trio.fail_after(10), pytest.raises(TransportError) as failed:
        async with open_mcp_client(f"http://127.0.0.1:{port}/mcp"):
            pass
    assert isinstance(failed.value.__cause__, httpx.ConnectError)


async def test_a_non_mcp_endpoint_is_a_clear_error(server: McpServer, logs: LogWatch) -> None:
    async with serving(server) as (handle, _):
        with trio.fail_after(10), pytest.raises(McpError) as refused:
            async with open_mcp_client(handle.url.replace("/mcp", "/elsewhere"), era="stateless"):
                pass
        assert "Not Found" in refused.value.message
    assert logs.errors() == []
