"""Rules the conformance suite's client scenarios check, proved against this project's
server on real HTTP: malformed ``x-mcp-header`` tools are left out, an accepted
elicitation carries the schema's defaults, and discovery refused with -32022 is retried
once in a version the server lists."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from conftest import LogWatch
from helpers import hypercorn_serving

from trio_mcp_http import Context, McpHttpApp, McpServer, open_mcp_client, open_mcp_server
from trio_mcp_http.client import ElicitationRequest
from trio_mcp_http.client.schema import header_annotation_problem


def _schema(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


VALID = [
    _schema(region={"type": "string", "x-mcp-header": "Region"}),
    _schema(n={"type": "integer", "x-mcp-header": "N"}, b={"type": ["boolean", "null"], "x-mcp-header": "B"}),
    _schema(outer={"type": "object", "properties": {"id": {"type": "string", "x-mcp-header": "Id"}}}),
    _schema(plain={"type": "number"}),
]
INVALID = {
    "empty": _schema(v={"type": "string", "x-mcp-header": ""}),
    "not a string": _schema(v={"type": "string", "x-mcp-header": 7}),
    "object": _schema(v={"type": "object", "x-mcp-header": "Data"}),
    "array": _schema(v={"type": "array", "items": {"type": "string"}, "x-mcp-header": "Items"}),
    "null": _schema(v={"type": "null", "x-mcp-header": "Nil"}),
    "number": _schema(v={"type": "number", "x-mcp-header": "Ratio"}),
    "no type": _schema(v={"x-mcp-header": "Any"}),
    "same name": _schema(
        a={"type": "string", "x-mcp-header": "Region"}, b={"type": "string", "x-mcp-header": "Region"}
    ),
    "same name, other case": _schema(
        a={"type": "string", "x-mcp-header": "MyField"}, b={"type": "string", "x-mcp-header": "myfield"}
    ),
    "space": _schema(v={"type": "string", "x-mcp-header": "My Region"}),
    "colon": _schema(v={"type": "string", "x-mcp-header": "Region:Primary"}),
    "non-ASCII": _schema(v={"type": "string", "x-mcp-header": "Région"}),
    "control character": _schema(v={"type": "string", "x-mcp-header": "Region\t1"}),
    "nested duplicate": _schema(
        a={"type": "string", "x-mcp-header": "Id"},
        o={"type": "object", "properties": {"b": {"type": "string", "x-mcp-header": "ID"}}},
    ),
}


@pytest.mark.parametrize("schema", VALID)
def test_well_formed_annotations_pass(schema: dict[str, Any]) -> None:
    assert header_annotation_problem(schema) is None


@pytest.mark.parametrize("case", sorted(INVALID))
def test_malformed_annotations_are_named(case: str) -> None:
    assert header_annotation_problem(INVALID[case]) is not None


@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_tools_with_malformed_annotations_are_left_out(era: str, logs: LogWatch) -> None:
    """The valid tool is kept and callable (in the stateless era our server checks its
    mirrored ``Mcp-Param-Region``); each malformed one is dropped with a warning."""
    server = McpServer("headers", "1.0.0")

    @server.tool(input_schema=_schema(region={"type": "string", "x-mcp-header": "Region"}))
    async def valid_tool(region: str) -> str:
        return f"in {region}"

    for case, schema in INVALID.items():

        async def bad() -> str:
            return "called"

        server.tool(f"bad_{case.replace(' ', '_').replace(',', '')}", input_schema=schema)(bad)

    async with open_mcp_server(server, host="127.0.0.1", port=0) as handle:
        with trio.fail_after(10):
            async with open_mcp_client(handle.url, era=era) as client:  # type: ignore[arg-type]
                assert [tool.name for tool in await client.list_tools()] == ["valid_tool"]
                result = await client.call_tool("valid_tool", {"region": "eu-west"})
                assert result.content[0].text == "in eu-west"  # type: ignore[union-attr]
    dropped = [line for line in logs.warnings() if "leaving out tool" in line]
    assert len(dropped) == len(INVALID)


@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_an_accepted_elicitation_carries_the_schema_defaults(era: str) -> None:
    server = McpServer("defaults", "1.0.0")

    @server.tool()
    async def profile(ctx: Context) -> str:
        answer = await ctx.elicit(
            "Profile?",
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "default": 30},
                    "status": {"type": "string", "enum": ["active", "idle"], "default": "active"},
                    "verified": {"type": "boolean", "default": True},
                    "note": {"type": "string"},
                },
            },
        )
        return json.dumps(answer["content"], sort_keys=True)

    async def only_the_name(request: ElicitationRequest) -> dict[str, Any]:
        return {"action": "accept", "content": {"name": "Ada", "age": 41}}

    async with open_mcp_server(server, host="127.0.0.1", port=0) as handle:
        with trio.fail_after(10):
            async with open_mcp_client(handle.url, era=era, elicitation=only_the_name) as client:  # type: ignore[arg-type]
                result = await client.call_tool("profile")
    # What the callback gave wins; fields without a default stay absent.
    assert json.loads(result.content[0].text) == {  # type: ignore[union-attr]
        "name": "Ada",
        "age": 41,
        "status": "active",
        "verified": True,
    }


async def test_discovery_refused_as_unsupported_is_retried_once_in_a_listed_version() -> None:
    """A front that refuses the first request with -32022 (naming 2026-07-28 as supported),
    as the suite's request-metadata scenario does: the client asks again and goes on."""
    server = McpServer("negotiating", "1.0.0")

    @server.tool()
    async def echo(text: str) -> str:
        return text

    app = McpHttpApp(server)
    seen: list[str] = []

    async def refuse_first(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            seen.append(dict(scope["headers"]).get(b"mcp-protocol-version", b"").decode())
            if len(seen) == 1:
                while (await receive()).get("more_body"):
                    pass
                body = json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "error": {
                            "code": -32022,
                            "message": "Unsupported protocol version",
                            "data": {"supported": ["2026-07-28"], "requested": seen[0]},
                        },
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    async with hypercorn_serving(refuse_first, app) as port:
        with trio.fail_after(10):
            async with open_mcp_client(f"http://127.0.0.1:{port}/mcp", era="stateless") as client:
                assert client.protocol_version == "2026-07-28"
                assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "hi"  # type: ignore[union-attr]
    assert seen[:2] == ["2026-07-28", "2026-07-28"]
