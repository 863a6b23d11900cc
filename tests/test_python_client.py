"""The official Python MCP client (PyPI ``mcp``) against our server, over real HTTP.

``mode="legacy"`` drives the session era (initialize, Mcp-Session-Id, elicitation as a
server-to-client request answered by a POST); ``mode="auto"`` discovers the 2026-07-28
era (stateless, elicitation through input-required results).

The server runs on trio in the test; the client runs on asyncio in a worker thread, as
the SDK's users run it.  (On trio, the SDK's own HTTP library leaves async generators
unclosed, which trio reports as ResourceWarnings: a client-side issue, not ours.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types as types
import pytest
import trio
from conftest import LogWatch
from helpers import serving, wait_idle
from mcp import Client

from trio_mcp_http import McpServer

EXPECTED_VERSION = {"legacy": "2025-11-25", "auto": "2026-07-28"}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_official_client_round_trip(mode: str, mcp_server: McpServer, logs: LogWatch) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    elicitations: list[Any] = []
    answers = iter(
        [
            types.ElicitResult(action="accept", content={"name": "Ada"}),
            types.ElicitResult(action="decline"),
        ]
    )

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        elicitations.append(params)
        return next(answers)

    async def use_client(url: str, statistics: Any) -> None:
        async with Client(url, mode=mode, elicitation_callback=on_elicit) as client:
            assert client.protocol_version == EXPECTED_VERSION[mode]
            assert client.server_info is not None
            assert client.server_info.name == "lifecycle-test"
            sessions = trio.from_thread.run_sync(statistics)["sessions"]
            assert sessions == (1 if mode == "legacy" else 0)

            listed = await client.list_tools()
            assert {t.name for t in listed.tools} >= {"echo", "progress", "ask_name"}
            echo_tool = next(t for t in listed.tools if t.name == "echo")
            assert echo_tool.input_schema["properties"]["text"]["type"] == "string"

            echoed = await client.call_tool("echo", {"text": "héllo 世界"})
            assert not echoed.is_error
            assert [c.text for c in echoed.content if isinstance(c, types.TextContent)] == ["héllo 世界"]

            result = await client.call_tool("progress", {"steps": 4}, progress_callback=on_progress)
            assert [c.text for c in result.content if isinstance(c, types.TextContent)] == ["done 4"]

            greeted = await client.call_tool("ask_name", {})
            assert [c.text for c in greeted.content if isinstance(c, types.TextContent)] == ["Hello, Ada!"]
            declined = await client.call_tool("ask_name", {})
            assert [c.text for c in declined.content if isinstance(c, types.TextContent)] == [
                "declined: decline"
            ]

    with trio.fail_after(30):
        async with serving(mcp_server) as (handle, _):

            async def main() -> None:
                async with asyncio.timeout(20):
                    await use_client(handle.url, handle.statistics)

            await trio.to_thread.run_sync(asyncio.run, main())

            assert progress == [
                (1.0, 4.0, "step 1"),
                (2.0, 4.0, "step 2"),
                (3.0, 4.0, "step 3"),
                (4.0, 4.0, "step 4"),
            ]
            assert len(elicitations) == 2
            assert all(e.message == "What is your name?" for e in elicitations)
            assert elicitations[0].requested_schema["required"] == ["name"]
            # The client is gone (a legacy client DELETEs its session): nothing is left.
            await wait_idle(handle.app)
            stats = handle.statistics()
            assert stats["sessions"] == 0, stats
            assert stats["requests_in_flight"] == 0
            assert stats["open_streams"] == 0
    assert logs.errors() == []
