"""The conformance fixtures written for the official MCP SDK (``conformance/sdk_fixture_server.py``).

``.ci/run`` runs the whole suite against it on this transport (``conformance/run.py
--server sdk_fixture_server:mcp``); these tests pin what that relies on: the SDK fixture
offers what the native fixture offers (less the tasks extension, which the SDK does not
implement), the transport checks ``Mcp-Param-*`` headers for an SDK server as its own
HTTP layer would, input requests carry earlier rounds in ``requestState``, and the
runner keeps a listed expected failure from failing a run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import trio
from fixture_server import server as native_fixture
from helpers import Client, response_messages, serving
from sdk_fixture_server import mcp as sdk_fixture

ROOT = Path(__file__).resolve().parent.parent
MODERN = "2026-07-28"
#: The native fixture's tools for the tasks extension (SEP-2663), which the SDK lacks.
TASK_TOOLS = {
    "greet",
    "slow_compute",
    "failing_job",
    "protocol_error_job",
    "confirm_delete",
    "multi_input",
    "test_tool_with_task",
}


def modern_call(request_id: int, name: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "sdk-fixture-tests", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
    }
    params = {"name": name, "arguments": arguments, "_meta": meta, **extra}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def modern_headers(client: Client, name: str, **extra: str) -> dict[str, str]:
    return client.headers(version=MODERN, mcp_method="tools/call", mcp_name=name, **extra)


async def list_names(client: Client, session: str) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for request_id, (method, key, field) in enumerate(
        [
            ("tools/list", "tools", "name"),
            ("prompts/list", "prompts", "name"),
            ("resources/list", "resources", "uri"),
            ("resources/templates/list", "resourceTemplates", "uriTemplate"),
        ]
    ):
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {}}
        response = await client.post(body, session)
        assert response.status_code == 200, response.text
        names[key] = {item[field] for item in response_messages(response)[-1]["result"][key]}
    return names


async def test_the_sdk_fixture_offers_the_native_fixtures_less_the_tasks_ones() -> None:
    found: list[dict[str, set[str]]] = []
    with trio.fail_after(20):
        for server in (native_fixture, sdk_fixture):
            async with serving(server) as (_, client):
                found.append(await list_names(client, await client.open_session()))
    native, sdk = found
    assert sdk["tools"] == native["tools"] - TASK_TOOLS
    assert native["tools"] >= TASK_TOOLS
    for kind in ("prompts", "resources", "resourceTemplates"):
        assert sdk[kind] == native[kind], kind


async def test_mcp_param_headers_are_checked_for_an_sdk_server() -> None:
    # MCP 2026-07-28, Transports: a header that disagrees with the argument it mirrors
    # is a 400 with HeaderMismatch (-32020).  The SDK checks this in its own HTTP layer,
    # which this transport replaces, so the transport checks it for the SDK's server.
    with trio.fail_after(20):
        async with serving(sdk_fixture) as (_, client):
            body = modern_call(1, "test_custom_header", {"region": "us-west"})
            mismatch = await client.post(
                body, headers=modern_headers(client, "test_custom_header", mcp_param_region="eu-central")
            )
            match = await client.post(
                body, headers=modern_headers(client, "test_custom_header", mcp_param_region="us-west")
            )
    assert mismatch.status_code == 400, mismatch.text
    assert mismatch.json()["error"]["code"] == -32020
    assert match.status_code == 200, match.text
    result = response_messages(match)[-1]["result"]
    assert result["content"] == [{"type": "text", "text": "Region: us-west"}]


async def test_a_multi_round_tool_keeps_earlier_answers_in_the_sealed_request_state() -> None:
    name = "test_input_required_result_multi_round"

    def answer(key: str, field: str, value: str) -> dict[str, Any]:
        return {key: {"action": "accept", "content": {field: value}}}

    async def call(client: Client, request_id: int, **extra: Any) -> dict[str, Any]:
        response = await client.post(
            modern_call(request_id, name, {}, **extra), headers=modern_headers(client, name)
        )
        assert response.status_code == 200, response.text
        message = response_messages(response)[-1]
        assert "result" in message, message
        return dict(message["result"])

    with trio.fail_after(20):
        async with serving(sdk_fixture) as (_, client):
            first = await call(client, 1)
            second = await call(
                client, 2, inputResponses=answer("step1", "name", "Alice"), requestState=first["requestState"]
            )
            third = await call(
                client,
                3,
                inputResponses=answer("step2", "color", "blue"),
                requestState=second["requestState"],
            )
            tampered_state = second["requestState"][:-4] + "AAAA"
            tampered = await client.post(
                modern_call(
                    4, name, {}, inputResponses=answer("step2", "color", "red"), requestState=tampered_state
                ),
                headers=modern_headers(client, name),
            )
    assert first["resultType"] == "input_required"
    assert list(first["inputRequests"]) == ["step1"]
    assert second["resultType"] == "input_required"
    assert list(second["inputRequests"]) == ["step2"]
    # The answer to step 1 came back only in the state: the tool still had it.
    assert third["resultType"] == "complete"
    assert third["content"] == [{"type": "text", "text": "Multi-round complete for Alice who likes blue"}]
    assert "error" in response_messages(tampered)[-1]


def test_the_runner_keeps_a_listed_expected_failure_from_failing_a_run(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("conformance_run_sdk", ROOT / "conformance" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    runner = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = runner  # dataclasses look their module up by name
    spec.loader.exec_module(runner)
    for scenario, checks in {
        "server-tasks-lifecycle-2026-01-02T03-04-05-678Z": [
            {"id": "sep-2663-result-type-task-on-create", "status": "FAILURE", "errorMessage": "no task"},
        ],
        "server-tools-call-error-2026-01-02T03-04-05-679Z": [
            {"id": "tools-call-error", "status": "FAILURE", "errorMessage": "isError missing"},
            {"id": "wire-schema-valid", "status": "SUCCESS"},
        ],
    }.items():
        (tmp_path / scenario).mkdir()
        (tmp_path / scenario / "checks.json").write_text(json.dumps(checks))
    expected = runner.EXPECTED_FAILURES["sdk_fixture_server:mcp"]

    outcome = runner.Outcome("test", 0)
    runner.read_checks(tmp_path, outcome, expected)
    assert outcome.failures == ["tools-call-error / tools-call-error: isError missing"]
    assert len(outcome.expected) == 1
    assert outcome.expected[0].startswith("tasks-lifecycle / sep-2663-result-type-task-on-create: no task  [")
    assert not outcome.ok  # the unlisted failure still fails the run

    (tmp_path / "server-tools-call-error-2026-01-02T03-04-05-679Z" / "checks.json").unlink()
    (tmp_path / "server-tools-call-error-2026-01-02T03-04-05-679Z").rmdir()
    listed_only = runner.Outcome("test", 0)
    runner.read_checks(tmp_path, listed_only, expected)
    listed_only.counts["SUCCESS"] += 1  # a run with only a listed failure, and a pass
    assert listed_only.ok
    # Without the list (the native fixture's runs), the same failure fails.
    strict = runner.Outcome("test", 0)
    runner.read_checks(tmp_path, strict)
    assert strict.failures
    assert not strict.expected
