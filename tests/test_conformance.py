"""The conformance server (``conformance/fixture_server.py``) and the conformance runner.

The full suite runs in ``.ci/run`` (``python conformance/run.py``); these tests pin what
it relies on: the fixture surface the suite looks up by name, the input-request
fixtures in both eras, and that the runner's verdict fails when a check fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import trio
from fixture_server import server as conformance_server
from helpers import Client, call_tool, request, response_messages, serving

from trio_mcp_http import Context, McpServer

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "conformance" / "run.py"
MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "conformance-tests", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "sampling": {}, "roots": {}},
}


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_run", RUNNER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


async def rpc(client: Client, session: str, request_id: int, method: str, params: dict[str, Any]) -> Any:
    response = await client.post(request(request_id, method, params), session)
    assert response.status_code == 200, response.text
    answer = response_messages(response)[-1]
    assert answer["id"] == request_id, answer
    assert "result" in answer, answer
    return answer["result"]


# -- the fixture surface -----------------------------------------------------------------


async def test_fixture_surface_is_what_the_suite_looks_up() -> None:
    with trio.fail_after(20):
        async with serving(conformance_server) as (_, client):
            session = await client.open_session()
            tools = (await rpc(client, session, 1, "tools/list", {}))["tools"]
            prompts = (await rpc(client, session, 2, "prompts/list", {}))["prompts"]
            resources = (await rpc(client, session, 3, "resources/list", {}))["resources"]
            templates = (await rpc(client, session, 4, "resources/templates/list", {}))["resourceTemplates"]
            template = await rpc(client, session, 5, "resources/read", {"uri": "test://template/123/data"})

    names = [tool["name"] for tool in tools]
    # http-header-validation calls tools[0] with {}: it must be a no-argument tool.
    assert names[0] == "test_simple_text"
    assert tools[0]["inputSchema"].get("required", []) == []
    assert len(names) == len(set(names))
    for tool in tools:
        assert tool.get("description"), tool["name"]
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", tool["name"]), tool["name"]
    expected = {
        "test_image_content", "test_audio_content", "test_embedded_resource",
        "test_multiple_content_types", "test_tool_with_logging", "test_tool_with_progress",
        "test_error_handling", "test_reconnection", "test_sampling", "test_elicitation",
        "test_elicitation_sep1034_defaults", "test_elicitation_sep1330_enums",
        "json_schema_2020_12_tool", "test_missing_capability", "test_streaming_elicitation",
        "test_logging_tool", "test_trigger_tool_change", "test_trigger_prompt_change",
        "test_input_required_result_elicitation", "test_input_required_result_sampling",
        "test_input_required_result_list_roots", "test_input_required_result_request_state",
        "test_input_required_result_multiple_inputs", "test_input_required_result_multi_round",
        "test_input_required_result_tampered_state", "test_input_required_result_capabilities",
        "greet", "slow_compute", "failing_job", "protocol_error_job", "confirm_delete",
        "multi_input", "test_tool_with_task",
    }  # fmt: skip
    assert expected <= set(names)

    # SEP-1613/2106: a JSON Schema 2020-12 input schema is passed through verbatim.
    by_name = {tool["name"]: tool for tool in tools}
    schema = by_name["json_schema_2020_12_tool"]["inputSchema"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["address"]["$anchor"] == "addressDef"
    assert schema["allOf"] == [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}]
    assert schema["if"]["properties"]["contactMethod"] == {"const": "phone"}
    assert schema["additionalProperties"] is False
    # SEP-2243: some tool mirrors a string parameter in an Mcp-Param-* header.
    annotated = [
        prop
        for tool in tools
        for prop in tool["inputSchema"].get("properties", {}).values()
        if isinstance(prop, dict) and "x-mcp-header" in prop
    ]
    assert annotated
    assert annotated[0]["type"] == "string"

    prompt_names = {prompt["name"] for prompt in prompts}
    assert {
        "test_simple_prompt",
        "test_prompt_with_arguments",
        "test_prompt_with_embedded_resource",
        "test_prompt_with_image",
        "test_input_required_result_prompt",
    } <= prompt_names
    assert all(prompt.get("description") for prompt in prompts)
    with_args = next(p for p in prompts if p["name"] == "test_prompt_with_arguments")
    assert [(a["name"], a["required"]) for a in with_args["arguments"]] == [("arg1", True), ("arg2", True)]

    # The caching scenario reads resources[0]: a readable, static resource.
    assert resources[0] == {
        "uri": "test://static-text",
        "name": "static-text",
        "title": "Static Text Resource",
        "description": "A static text resource for testing",
        "mimeType": "text/plain",
    }
    assert {r["uri"] for r in resources} >= {"test://static-binary", "test://watched-resource"}
    assert [t["uriTemplate"] for t in templates] == ["test://template/{id}/data"]
    assert template["contents"] == [
        {
            "uri": "test://template/123/data",
            "mimeType": "application/json",
            "text": '{"id":"123","templateTest":true,"data":"Data for ID: 123"}',
        }
    ]


# -- SSE polling (server-sse-polling) -------------------------------------------------------


async def test_closed_stream_keeps_its_retry_hint_when_the_tool_returns_at_once() -> None:
    # test_reconnection without its pause: the result is published while the closed
    # connection is still being written out.  The connection must still say when to
    # come back (retry:), and the result must wait in the store for the resumed GET.
    server = McpServer("polling", "1.0.0")

    @server.tool()
    async def close_and_return(ctx: Context) -> str:
        """Close the SSE stream and return at once."""
        ctx.close_sse_stream(retry_ms=250)
        return "after the close"

    with trio.fail_after(20):
        async with serving(server) as (_, client):
            session = await client.open_session()
            async with client.stream("POST", call_tool(1, "close_and_return"), session) as reader:
                blocks = await reader.read_to_end()
            assert [(b.data, b.retry) for b in blocks] == [("", None), (None, 250)]
            last_event_id = blocks[0].id
            assert last_event_id is not None
            async with client.stream("GET", session=session, last_event_id=last_event_id) as reader:
                _, message = await reader.next_message()
    assert message == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"content": [{"type": "text", "text": "after the close"}]},
    }


# -- input requests, session era: real server-to-client requests --------------------------


async def test_multiple_inputs_fixture_sends_three_requests_in_the_session_era() -> None:
    answers = {
        "elicitation/create": {"action": "accept", "content": {"name": "Alice"}},
        "sampling/createMessage": {
            "role": "assistant",
            "content": {"type": "text", "text": "Hello there!"},
            "model": "test-model",
        },
        "roots/list": {"roots": [{"uri": "file:///a", "name": "A"}, {"uri": "file:///b"}]},
    }
    seen: list[str] = []
    with trio.fail_after(20):
        async with serving(conformance_server) as (_, client):
            session = await client.open_session(elicitation={}, sampling={}, roots={})
            body = call_tool(1, "test_input_required_result_multiple_inputs")
            async with client.stream("POST", body, session) as reader:
                while True:
                    _, message = await reader.next_message()
                    if "method" in message and "id" in message:
                        seen.append(message["method"])
                        reply = {"jsonrpc": "2.0", "id": message["id"], "result": answers[message["method"]]}
                        assert (await client.post(reply, session)).status_code == 202
                    elif message.get("id") == 1:
                        result = message["result"]
                        break
    assert seen == ["elicitation/create", "sampling/createMessage", "roots/list"]
    assert result["content"] == [{"type": "text", "text": "Name: Alice; Greeting: Hello there!; Roots: 2"}]


# -- input requests, 2026-07-28: input-required results and retries ------------------------


async def modern_call(client: Client, request_id: int, name: str, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": {}, "_meta": MODERN_META, **extra}
    headers = client.headers(version=MODERN, **{"mcp-method": "tools/call", "mcp-name": name})
    response = await client.post(request(request_id, "tools/call", params), headers=headers)
    assert response.status_code == 200, response.text
    answer = response_messages(response)[-1]
    assert answer["id"] == request_id, answer
    return answer


async def test_multi_round_fixture_in_the_stateless_era() -> None:
    with trio.fail_after(20):
        async with serving(conformance_server) as (_, client):
            first = (await modern_call(client, 1, "test_input_required_result_multi_round"))["result"]
            assert first["resultType"] == "input_required"
            assert list(first["inputRequests"]) == ["step1"]
            assert first["inputRequests"]["step1"]["method"] == "elicitation/create"
            state1 = first["requestState"]
            second = (
                await modern_call(
                    client,
                    2,
                    "test_input_required_result_multi_round",
                    inputResponses={"step1": {"action": "accept", "content": {"name": "Alice"}}},
                    requestState=state1,
                )
            )["result"]
            assert second["resultType"] == "input_required"
            assert list(second["inputRequests"]) == ["step2"]
            assert second["requestState"] != state1
            third = (
                await modern_call(
                    client,
                    3,
                    "test_input_required_result_multi_round",
                    inputResponses={"step2": {"action": "accept", "content": {"color": "blue"}}},
                    requestState=second["requestState"],
                )
            )["result"]
            # The tampered-state fixture: a modified requestState is refused.
            tampered = await modern_call(
                client,
                4,
                "test_input_required_result_tampered_state",
                inputResponses={"confirm": {"action": "accept", "content": {"ok": True}}},
                requestState=state1 + "-TAMPERED",
            )
    assert third["resultType"] == "complete"
    assert third["content"] == [{"type": "text", "text": "Multi-round complete for Alice who likes blue"}]
    assert "error" in tampered
    assert "result" not in tampered


# -- the runner ----------------------------------------------------------------------------


def test_runner_reads_failures_and_warnings(tmp_path: Path) -> None:
    runner = load_runner()
    for scenario, checks in {
        "server-ping-2026-01-02T03-04-05-678Z": [{"id": "ping", "status": "SUCCESS"}],
        "server-tools-call-error-2026-01-02T03-04-05-679Z": [
            {"id": "tools-call-error", "status": "FAILURE", "errorMessage": "isError missing"},
            {"id": "wire-schema-valid", "status": "SUCCESS"},
        ],
        "server-server-sse-polling-2026-01-02T03-04-05-680Z": [
            {"id": "server-sse-retry-field", "status": "WARNING", "description": "no retry"},
            {"id": "outgoing-request", "status": "INFO"},
        ],
    }.items():
        (tmp_path / scenario).mkdir()
        (tmp_path / scenario / "checks.json").write_text(json.dumps(checks))
    outcome = runner.Outcome("test", 0)
    runner.read_checks(tmp_path, outcome)
    assert outcome.scenarios == 3
    assert dict(outcome.counts) == {"SUCCESS": 2, "FAILURE": 1, "WARNING": 1, "INFO": 1}
    assert outcome.failures == ["tools-call-error / tools-call-error: isError missing"]
    assert outcome.warnings == ["server-sse-polling / server-sse-retry-field: no retry"]
    assert not outcome.ok

    empty = runner.Outcome("empty", 0)
    runner.read_checks(tmp_path / "nothing-here", empty)
    assert not empty.ok  # a run that produced no checks is not a pass


def run_runner(
    tmp_path: Path, *args: str, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    runner = load_runner()
    missing = "the conformance suite is not installed: run `npm ci` in conformance/ (bash .ci/run does it)"
    assert runner.NODE.exists(), missing
    assert runner.SUITE.exists(), missing
    env = None if pythonpath is None else {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, str(RUNNER), "--keep", str(tmp_path / "results"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_runner_fails_on_a_deliberately_broken_server(tmp_path: Path) -> None:
    # The conformance server with one fixture broken: the error tool no longer errs.
    (tmp_path / "broken_conformance.py").write_text(
        textwrap.dedent(
            '''
            from fixture_server import server

            @server.tool(name="test_error_handling")
            async def not_an_error() -> str:
                """Tests error response handling"""
                return "everything is fine"
            '''
        )
    )
    completed = run_runner(
        tmp_path,
        "--server",
        "broken_conformance:server",
        "--run",
        "2025-11-25",
        "--scenario",
        "tools-call-error",
        pythonpath=tmp_path,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "FAILURE  tools-call-error / tools-call-error" in completed.stdout
    assert "FAILED: 2025-11-25" in completed.stdout


def test_runner_passes_the_real_server_on_one_scenario(tmp_path: Path) -> None:
    completed = run_runner(tmp_path, "--run", "2025-11-25", "--scenario", "tools-call-error")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 scenarios, 2 passed, 0 failed" in completed.stdout
