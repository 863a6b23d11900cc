"""``McpServer`` and ``Context`` in process: dispatch without HTTP, through a fake outlet."""

from __future__ import annotations

import base64
import copy
import json
import logging
from typing import Any

import pytest
import trio
from pydantic import BaseModel, Field, ValidationError

from trio_mcp_http import (
    BlobResourceContents,
    CallToolResult,
    Context,
    EmbeddedResource,
    ImageContent,
    InputRequest,
    McpError,
    McpServer,
    PromptMessage,
    TextContent,
    TextResourceContents,
    ToolError,
)

LATEST = "2025-11-25"


class FakeOutlet:
    """Records notifications and requests; answers ``ask`` from canned answers."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.notified: list[tuple[str, dict[str, Any] | None]] = []
        self.asked: list[dict[str, InputRequest]] = []
        self.closed: list[int | None] = []
        self.answers = answers or {}

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        self.notified.append((method, params))

    async def ask(self, requests: dict[str, InputRequest]) -> dict[str, Any]:
        self.asked.append(requests)
        return {key: self.answers[key] for key in requests}

    def close_stream(self, retry_ms: int | None) -> None:
        self.closed.append(retry_ms)


def make_ctx(
    server: McpServer,
    outlet: FakeOutlet | None = None,
    *,
    method: str = "tools/call",
    meta: dict[str, Any] | None = None,
    log_level: str | None = None,
) -> Context:
    return Context(
        server=server,
        outlet=outlet or FakeOutlet(),
        method=method,
        request_id=1,
        meta=meta,
        protocol_version=LATEST,
        client_capabilities={"elicitation": {}},
        client_info={"name": "unit", "version": "0"},
        session_id=None,
        log_level=log_level,
    )


async def dispatch(server: McpServer, method: str, params: dict[str, Any], ctx: Context | None = None) -> Any:
    with trio.fail_after(5):
        return await server.dispatch(method, params, ctx or make_ctx(server, method=method))


async def call(server: McpServer, name: str, arguments: dict[str, Any] | None = None) -> Any:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return await dispatch(server, "tools/call", params)


async def expect_error(server: McpServer, method: str, params: dict[str, Any], code: int) -> McpError:
    with pytest.raises(McpError) as info:
        await dispatch(server, method, params)
    assert info.value.code == code, info.value.to_error_object()
    return info.value


def texts(result: dict[str, Any]) -> list[str]:
    return [c["text"] for c in result["content"] if c["type"] == "text"]


class Point(BaseModel):
    x: int
    y: int = 0


class Weather(BaseModel):
    city: str
    celsius: float = Field(description="temperature")


# -- tools: schemas from type hints ----------------------------------------------------------


async def test_input_schema_from_hints_marks_required_optional_and_defaults() -> None:
    server = McpServer("unit", "1")

    @server.tool(title="Add", description="Adds things")
    async def add(
        ctx: Context, a: int, b: int = 2, label: str | None = None, point: Point | None = None
    ) -> str:
        return f"{a + b} {label} {point} {ctx.method}"

    listed = await dispatch(server, "tools/list", {})
    (tool,) = listed["tools"]
    assert tool["name"] == "add"
    assert tool["title"] == "Add"
    assert tool["description"] == "Adds things"
    schema = tool["inputSchema"]
    assert schema["type"] == "object"
    assert "title" not in schema
    assert set(schema["properties"]) == {"a", "b", "label", "point"}, "the Context parameter is hidden"
    assert schema["required"] == ["a"]
    assert schema["properties"]["a"] == {"type": "integer"}
    assert schema["properties"]["b"] == {"type": "integer", "default": 2}
    assert schema["properties"]["label"]["default"] is None
    assert {"type": "string"} in schema["properties"]["label"]["anyOf"]
    assert "Point" in schema["$defs"]
    assert "nextCursor" not in listed

    result = await call(server, "add", {"a": "40", "point": {"x": 1}})
    assert result == {"content": [{"type": "text", "text": "42 None x=1 y=0 tools/call"}]}


async def test_tool_without_parameters_has_empty_object_schema_and_docstring() -> None:
    server = McpServer("unit", "1")

    @server.tool("renamed")
    async def original() -> str:
        """First line.

        Second paragraph."""
        return "ok"

    (tool,) = (await dispatch(server, "tools/list", {}))["tools"]
    assert tool["name"] == "renamed"
    assert tool["inputSchema"] == {"type": "object", "properties": {}}
    assert tool["description"] == "First line.\n\nSecond paragraph."
    assert await call(server, "renamed") == {"content": [{"type": "text", "text": "ok"}]}
    assert server.tool_definition("original") is None
    assert server.tool_definition("renamed") is tool


@pytest.mark.parametrize(
    "arguments",
    [{}, {"a": "not a number"}, {"a": 1, "point": {"y": 2}}, {"a": [1]}],
    ids=["missing", "wrong-type", "nested-missing", "list"],
)
async def test_invalid_arguments_are_a_tool_error_result_not_an_exception(arguments: dict[str, Any]) -> None:
    server = McpServer("unit", "1")
    ran = []

    @server.tool()
    async def add(a: int, point: Point | None = None) -> str:
        ran.append(a)
        return "ran"

    result = await call(server, "add", arguments)
    assert result["isError"] is True
    (text,) = texts(result)
    assert text.startswith("Invalid arguments for tool add:")
    assert ran == []


async def test_arguments_that_are_not_an_object_are_invalid_params() -> None:
    server = McpServer("unit", "1")

    @server.tool()
    async def noop() -> None:
        return None

    error = await expect_error(server, "tools/call", {"name": "noop", "arguments": [1, 2]}, -32602)
    assert "arguments" in error.message


def test_sync_functions_and_var_arguments_are_refused_at_registration() -> None:
    server = McpServer("unit", "1")

    def sync_tool() -> str:
        return "x"

    async def star(*args: int) -> str:
        return "x"

    async def starstar(**kwargs: int) -> str:
        return "x"

    with pytest.raises(TypeError, match="async function"):
        server.tool()(sync_tool)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\*args"):
        server.tool()(star)
    with pytest.raises(TypeError, match=r"\*args"):
        server.tool()(starstar)
    with pytest.raises(ValueError, match="task_support"):
        server.tool(task_support="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task_start"):
        server.tool(task_start="later")  # type: ignore[arg-type]
    assert "tools" not in server.capabilities()


async def test_a_validation_error_inside_the_tool_is_a_crash_not_bad_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_mcp_http")
    server = McpServer("unit", "1")

    @server.tool()
    async def parse(a: int) -> str:
        Point.model_validate({"x": "not an int"})  # the tool's own bug, not the caller's
        return "unreachable"

    result = await call(server, "parse", {"a": 1})
    assert result["isError"] is True
    (text,) = texts(result)
    assert text.startswith("Tool parse failed:"), text
    (record,) = [r for r in caplog.records if r.name == "trio_mcp_http"]
    assert record.getMessage() == "tool parse failed"


async def test_a_validation_error_inside_a_resource_or_prompt_is_not_invalid_params() -> None:
    server = McpServer("unit", "1")

    @server.resource("test://broken/{id}")
    async def broken(id: str) -> str:
        Point.model_validate({})
        return "unreachable"

    @server.prompt()
    async def broken_prompt(topic: str) -> str:
        Point.model_validate({})
        return "unreachable"

    with pytest.raises(ValidationError):
        await dispatch(server, "resources/read", {"uri": "test://broken/1"})
    with pytest.raises(ValidationError):
        await dispatch(server, "prompts/get", {"name": "broken_prompt", "arguments": {"topic": "t"}})


# -- tools: input_schema passthrough and output_schema ----------------------------------------

SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}}},
    "properties": {
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


async def test_input_schema_is_advertised_verbatim_and_arguments_pass_through_unvalidated() -> None:
    server = McpServer("unit", "1")
    original = copy.deepcopy(SCHEMA_2020_12)
    seen: list[dict[str, Any]] = []

    @server.tool(input_schema=SCHEMA_2020_12)
    async def contact(
        ctx: Context,
        address: Any = None,
        contactMethod: Any = None,
        phone: Any = None,
        email: Any = None,
    ) -> str:
        seen.append({"address": address, "contactMethod": contactMethod, "phone": phone, "email": email})
        return f"ok {ctx.method}"

    (tool,) = (await dispatch(server, "tools/list", {}))["tools"]
    assert tool["inputSchema"] == original
    assert original == SCHEMA_2020_12, "registration must not mutate the caller's schema"

    # Values are handed over as sent: no pydantic coercion (a number stays a number).
    result = await call(server, "contact", {"address": {"city": "Oslo", "extra": 1}, "phone": 5})
    assert result == {"content": [{"type": "text", "text": "ok tools/call"}]}
    assert seen == [
        {"address": {"city": "Oslo", "extra": 1}, "contactMethod": None, "phone": 5, "email": None}
    ]


async def test_passthrough_arguments_the_handler_cannot_take_are_invalid_arguments_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_mcp_http")
    server = McpServer("unit", "1")

    @server.tool(input_schema={"type": "object", "properties": {"region": {"type": "string"}}})
    async def region(region: str) -> str:
        return f"Region: {region}"

    assert texts(await call(server, "region", {"region": "eu"})) == ["Region: eu"]
    for arguments in ({"region": "eu", "zone": "b"}, {}):
        result = await call(server, "region", arguments)
        assert result["isError"] is True
        (text,) = texts(result)
        assert text.startswith("Invalid arguments for tool region:"), text
    assert [r for r in caplog.records if r.name == "trio_mcp_http"] == []


async def test_output_schema_gives_structured_content_and_the_same_json_as_text() -> None:
    server = McpServer("unit", "1")
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
        "required": ["city", "celsius"],
    }

    @server.tool(output_schema=schema)
    async def weather_model(city: str) -> Weather:
        return Weather(city=city, celsius=21.5)

    @server.tool(output_schema=schema)
    async def weather_dict(city: str) -> dict[str, Any]:
        return {"city": city, "celsius": -3}

    tools = {t["name"]: t for t in (await dispatch(server, "tools/list", {}))["tools"]}
    assert tools["weather_model"]["outputSchema"] == schema
    for name, expected in [
        ("weather_model", {"city": "Paris", "celsius": 21.5}),
        ("weather_dict", {"city": "Paris", "celsius": -3}),
    ]:
        result = await call(server, name, {"city": "Paris"})
        assert result["structuredContent"] == expected
        (text,) = texts(result)
        assert json.loads(text) == expected
        assert "isError" not in result


# -- tools: return value conversions ---------------------------------------------------------


async def test_return_values_convert_to_tool_results() -> None:
    server = McpServer("unit", "1")
    image = ImageContent.from_bytes(b"\x89PNG", "image/png")
    embedded = EmbeddedResource(
        resource=TextResourceContents(uri="test://doc", text="body", mimeType="text/plain")
    )

    @server.tool()
    async def text() -> str:
        return "plain"

    @server.tool()
    async def picture() -> ImageContent:
        return image

    @server.tool()
    async def embed() -> EmbeddedResource:
        return embedded

    @server.tool()
    async def several() -> list[Any]:
        return ["one", TextContent(text="two"), {"type": "text", "text": "three"}, image]

    @server.tool()
    async def full() -> CallToolResult:
        return CallToolResult(content=[TextContent(text="partial")], structuredContent={"n": 1}, isError=True)

    @server.tool()
    async def raw() -> dict[str, Any]:
        return {"content": [{"type": "text", "text": "raw"}], "_meta": {"k": "v"}}

    @server.tool()
    async def nothing() -> None:
        return None

    @server.tool()
    async def number() -> int:
        return 7

    image_wire = {"type": "image", "data": base64.b64encode(b"\x89PNG").decode(), "mimeType": "image/png"}
    assert await call(server, "text") == {"content": [{"type": "text", "text": "plain"}]}
    assert await call(server, "picture") == {"content": [image_wire]}
    assert await call(server, "embed") == {
        "content": [
            {
                "type": "resource",
                "resource": {"uri": "test://doc", "mimeType": "text/plain", "text": "body"},
            }
        ]
    }
    assert await call(server, "several") == {
        "content": [
            {"type": "text", "text": "one"},
            {"type": "text", "text": "two"},
            {"type": "text", "text": "three"},
            image_wire,
        ]
    }
    assert await call(server, "full") == {
        "content": [{"type": "text", "text": "partial"}],
        "structuredContent": {"n": 1},
        "isError": True,
    }
    assert await call(server, "raw") == {"content": [{"type": "text", "text": "raw"}], "_meta": {"k": "v"}}
    assert await call(server, "nothing") == {"content": []}
    assert await call(server, "number") == {"content": [{"type": "text", "text": "7"}]}


# -- tools: errors -----------------------------------------------------------------------------


async def test_tool_error_is_an_error_result_and_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_mcp_http")
    server = McpServer("unit", "1")

    @server.tool()
    async def refuse() -> str:
        raise ToolError("the model can fix this")

    result = await call(server, "refuse")
    assert result == {"content": [{"type": "text", "text": "the model can fix this"}], "isError": True}
    assert [r for r in caplog.records if r.name == "trio_mcp_http"] == []


async def test_unexpected_exception_is_an_error_result_and_logged_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_mcp_http")
    server = McpServer("unit", "1")

    @server.tool()
    async def crash() -> str:
        raise RuntimeError("kaboom")

    result = await call(server, "crash")
    assert result["isError"] is True
    assert texts(result) == ["Tool crash failed: kaboom"]
    (record,) = [r for r in caplog.records if r.name == "trio_mcp_http"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "tool crash failed"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_mcp_error_from_a_tool_propagates_as_a_jsonrpc_error() -> None:
    server = McpServer("unit", "1")

    @server.tool()
    async def forbidden() -> str:
        raise McpError(-32000, "nope", {"why": "policy"})

    error = await expect_error(server, "tools/call", {"name": "forbidden"}, -32000)
    assert error.to_error_object() == {"code": -32000, "message": "nope", "data": {"why": "policy"}}


async def test_unknown_tool_and_unknown_method() -> None:
    server = McpServer("unit", "1")

    @server.tool()
    async def known() -> str:
        return "x"

    error = await expect_error(server, "tools/call", {"name": "missing"}, -32602)
    assert "missing" in error.message
    await expect_error(server, "tools/call", {"name": 3}, -32602)
    await expect_error(server, "tools/call", {}, -32602)
    error = await expect_error(server, "no/such", {}, -32601)
    assert "no/such" in error.message
    assert not server.has_method("no/such")
    assert server.has_method("tools/call")
    assert await dispatch(server, "ping", {}) == {}


async def test_list_methods_of_unregistered_kinds_are_method_not_found() -> None:
    server = McpServer("unit", "1")
    for method in ("tools/list", "resources/list", "resources/templates/list", "prompts/list"):
        await expect_error(server, method, {}, -32601)
    await expect_error(server, "tools/call", {"name": "x"}, -32601)
    await expect_error(server, "resources/read", {"uri": "test://x"}, -32601)
    await expect_error(server, "prompts/get", {"name": "x"}, -32601)


# -- resources ---------------------------------------------------------------------------------


def resource_server() -> McpServer:
    server = McpServer("unit", "1")

    @server.resource("test://static", mime_type="text/plain", size=5, title="Static")
    async def static() -> str:
        """A fixed text."""
        return "hello"

    @server.resource("test://blob", mime_type="application/octet-stream")
    async def blob() -> bytes:
        return b"\x00\x01\xfe\xff"

    @server.resource("test://item/{id}", mime_type="application/json")
    async def item(id: int) -> str:
        return json.dumps({"id": id})

    @server.resource("file:///{+path}")
    async def file(path: str) -> str:
        return f"path={path}"

    @server.resource("test://many")
    async def many() -> list[Any]:
        return [
            TextResourceContents(uri="test://many#1", text="a"),
            BlobResourceContents.from_bytes("test://many#2", b"b"),
            {"uri": "test://many#3", "text": "c"},
        ]

    return server


async def test_resource_list_and_template_list() -> None:
    server = resource_server()
    resources = (await dispatch(server, "resources/list", {}))["resources"]
    assert resources[0] == {
        "uri": "test://static",
        "name": "static",
        "title": "Static",
        "description": "A fixed text.",
        "mimeType": "text/plain",
        "size": 5,
    }
    assert [r["uri"] for r in resources] == ["test://static", "test://blob", "test://many"]
    templates = (await dispatch(server, "resources/templates/list", {}))["resourceTemplates"]
    assert templates == [
        {"uriTemplate": "test://item/{id}", "name": "item", "mimeType": "application/json"},
        {"uriTemplate": "file:///{+path}", "name": "file"},
    ]


async def test_read_static_text_and_bytes_as_base64_blob() -> None:
    server = resource_server()
    assert await dispatch(server, "resources/read", {"uri": "test://static"}) == {
        "contents": [{"uri": "test://static", "text": "hello", "mimeType": "text/plain"}]
    }
    (blob,) = (await dispatch(server, "resources/read", {"uri": "test://blob"}))["contents"]
    assert blob["uri"] == "test://blob"
    assert blob["mimeType"] == "application/octet-stream"
    assert base64.b64decode(blob["blob"]) == b"\x00\x01\xfe\xff"
    assert "text" not in blob
    many = (await dispatch(server, "resources/read", {"uri": "test://many"}))["contents"]
    assert many == [
        {"uri": "test://many#1", "text": "a"},
        {"uri": "test://many#2", "blob": base64.b64encode(b"b").decode()},
        {"uri": "test://many#3", "text": "c"},
    ]


async def test_template_variables_are_extracted_and_validated() -> None:
    server = resource_server()
    assert await dispatch(server, "resources/read", {"uri": "test://item/42"}) == {
        "contents": [{"uri": "test://item/42", "text": '{"id": 42}', "mimeType": "application/json"}]
    }
    # {id} is one segment: a slash does not match the template.
    error = await expect_error(server, "resources/read", {"uri": "test://item/4/2"}, -32002)
    assert error.data == {"uri": "test://item/4/2"}
    # The variable is validated against the handler's hint.
    error = await expect_error(server, "resources/read", {"uri": "test://item/abc"}, -32602)
    assert "test://item/abc" in error.message


async def test_reserved_expansion_matches_several_segments() -> None:
    server = resource_server()
    result = await dispatch(server, "resources/read", {"uri": "file:///etc/ssl/certs/ca.pem"})
    assert result == {
        "contents": [{"uri": "file:///etc/ssl/certs/ca.pem", "text": "path=etc/ssl/certs/ca.pem"}]
    }


async def test_unknown_resource_is_32002_with_the_uri_as_data() -> None:
    server = resource_server()
    error = await expect_error(server, "resources/read", {"uri": "test://nowhere"}, -32002)
    assert error.to_error_object() == {
        "code": -32002,
        "message": "Resource not found",
        "data": {"uri": "test://nowhere"},
    }
    await expect_error(server, "resources/read", {}, -32602)
    await expect_error(server, "resources/read", {"uri": 5}, -32602)


async def test_subscribe_hook_hears_subscriptions() -> None:
    server = resource_server()
    heard: list[tuple[str, bool]] = []
    await server.subscribe("test://static", True)  # no hook yet: nothing happens

    @server.on_subscribe()
    async def hook(uri: str, subscribed: bool) -> None:
        heard.append((uri, subscribed))

    await server.subscribe("test://static", True)
    await server.subscribe("test://static", False)
    assert heard == [("test://static", True), ("test://static", False)]


# -- prompts -----------------------------------------------------------------------------------


def prompt_server() -> McpServer:
    server = McpServer("unit", "1")

    @server.prompt(title="Greeting")
    async def greet(name: str, excited: bool = False) -> str:
        """Say hello."""
        return f"Hello, {name}{'!' if excited else '.'}"

    @server.prompt("dialogue")
    async def conversation(topic: str = Field(description="what to talk about")) -> list[Any]:
        return [
            "Let us talk.",
            PromptMessage(role="assistant", content=TextContent(text=f"About {topic}?")),
            {"role": "user", "content": {"type": "text", "text": "Yes."}},
        ]

    return server


async def test_prompt_arguments_come_from_the_signature() -> None:
    server = prompt_server()
    prompts = (await dispatch(server, "prompts/list", {}))["prompts"]
    assert prompts == [
        {
            "name": "greet",
            "title": "Greeting",
            "description": "Say hello.",
            "arguments": [{"name": "name", "required": True}, {"name": "excited", "required": False}],
        },
        {
            "name": "dialogue",
            "arguments": [{"name": "topic", "required": True, "description": "what to talk about"}],
        },
    ]


async def test_prompt_string_is_one_user_message_and_lists_convert_each_message() -> None:
    server = prompt_server()
    assert await dispatch(server, "prompts/get", {"name": "greet", "arguments": {"name": "Ada"}}) == {
        "messages": [{"role": "user", "content": {"type": "text", "text": "Hello, Ada."}}],
        "description": "Say hello.",
    }
    result = await dispatch(server, "prompts/get", {"name": "dialogue", "arguments": {"topic": "trio"}})
    assert result == {
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "Let us talk."}},
            {"role": "assistant", "content": {"type": "text", "text": "About trio?"}},
            {"role": "user", "content": {"type": "text", "text": "Yes."}},
        ]
    }


async def test_prompt_errors() -> None:
    server = prompt_server()
    error = await expect_error(server, "prompts/get", {"name": "absent"}, -32602)
    assert "absent" in error.message
    error = await expect_error(server, "prompts/get", {"name": "greet"}, -32602)
    assert "greet" in error.message
    await expect_error(server, "prompts/get", {"name": "greet", "arguments": "Ada"}, -32602)


# -- completion --------------------------------------------------------------------------------


async def test_completion_lists_are_wrapped_and_truncated_at_100() -> None:
    server = McpServer("unit", "1")
    calls: list[tuple[Any, Any, Any]] = []

    @server.completion()
    async def complete(ref: dict[str, Any], argument: dict[str, Any], context: dict[str, Any]) -> Any:
        calls.append((ref, argument, context))
        if argument["name"] == "many":
            return [f"v{i}" for i in range(150)]
        if argument["name"] == "dict":
            return {"values": ["x"], "total": 9, "hasMore": True}
        if argument["name"] == "none":
            return None
        return ["alpha", "beta"]

    ref = {"type": "ref/prompt", "name": "greet"}
    few = await dispatch(server, "completion/complete", {"ref": ref, "argument": {"name": "n", "value": "a"}})
    assert few == {"completion": {"values": ["alpha", "beta"], "total": 2, "hasMore": False}}
    assert calls[0] == (ref, {"name": "n", "value": "a"}, {})

    many = (await dispatch(server, "completion/complete", {"ref": ref, "argument": {"name": "many"}}))[
        "completion"
    ]
    assert many["values"] == [f"v{i}" for i in range(100)]
    assert many["total"] == 150
    assert many["hasMore"] is True

    params = {"ref": ref, "argument": {"name": "dict"}, "context": {"arguments": {"a": "1"}}}
    assert await dispatch(server, "completion/complete", params) == {
        "completion": {"values": ["x"], "total": 9, "hasMore": True}
    }
    assert calls[-1][2] == {"arguments": {"a": "1"}}
    empty = await dispatch(server, "completion/complete", {"ref": ref, "argument": {"name": "none"}})
    assert empty == {"completion": {"values": [], "total": 0, "hasMore": False}}
    await expect_error(server, "completion/complete", {"ref": "greet", "argument": {}}, -32602)
    await expect_error(server, "completion/complete", {"ref": ref}, -32602)


async def test_completion_without_handler_is_method_not_found() -> None:
    server = prompt_server()
    params = {"ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": "name", "value": ""}}
    await expect_error(server, "completion/complete", params, -32601)


# -- pagination --------------------------------------------------------------------------------


async def test_pagination_chains_cursors_over_five_tools() -> None:
    server = McpServer("unit", "1", page_size=2)
    for i in range(5):

        async def handler() -> str:
            return "x"

        server.tool(f"tool{i}")(handler)

    pages: list[list[str]] = []
    cursors: list[str] = []
    params: dict[str, Any] = {}
    for _ in range(10):
        result = await dispatch(server, "tools/list", params)
        pages.append([t["name"] for t in result["tools"]])
        if "nextCursor" not in result:
            break
        cursor = result["nextCursor"]
        assert isinstance(cursor, str)
        cursors.append(cursor)
        params = {"cursor": cursor}
    assert pages == [["tool0", "tool1"], ["tool2", "tool3"], ["tool4"]]
    assert len(set(cursors)) == 2


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"abc").decode(),
        base64.urlsafe_b64encode(b"99").decode(),
        "-",
        7,
    ],
    ids=["garbage", "not-a-number", "past-the-end", "dash", "number"],
)
async def test_invalid_cursor_is_invalid_params(cursor: Any) -> None:
    server = McpServer("unit", "1", page_size=2)
    for i in range(5):

        async def handler() -> str:
            return "x"

        server.tool(f"tool{i}")(handler)
    error = await expect_error(server, "tools/list", {"cursor": cursor}, -32602)
    assert error.message == "Invalid cursor"


async def test_pagination_of_resources_templates_and_prompts() -> None:
    server = McpServer("unit", "1", page_size=1)
    for i in range(2):

        async def handler() -> str:
            return "x"

        server.resource(f"test://r{i}")(handler)
        server.resource(f"test://t{i}/{{id}}")(handler)
        server.prompt(f"p{i}")(handler)

    for method, key in [
        ("resources/list", "resources"),
        ("resources/templates/list", "resourceTemplates"),
        ("prompts/list", "prompts"),
    ]:
        first = await dispatch(server, method, {})
        assert len(first[key]) == 1
        second = await dispatch(server, method, {"cursor": first["nextCursor"]})
        assert len(second[key]) == 1
        assert second[key] != first[key]
        assert "nextCursor" not in second


# -- capabilities and notifications ------------------------------------------------------------


async def test_capabilities_reflect_registrations() -> None:
    server = McpServer("unit", "1", title="Unit Server")
    assert server.server_info == {"name": "unit", "version": "1", "title": "Unit Server"}
    assert server.capabilities() == {"logging": {}}

    async def handler() -> str:
        return "x"

    server.tool("t")(handler)
    assert server.capabilities() == {"logging": {}, "tools": {"listChanged": True}}
    server.prompt("p")(handler)
    assert "prompts" in server.capabilities()
    server.resource("test://x/{id}")(handler)
    assert server.capabilities()["resources"] == {"subscribe": True, "listChanged": True}
    server.completion()(handler)
    assert server.capabilities()["completions"] == {}
    server.remove_tool("t")
    assert "tools" not in server.capabilities()
    assert McpServer("bare", "0").server_info == {"name": "bare", "version": "0"}


async def test_listeners_hear_registrations_and_notify_calls() -> None:
    server = McpServer("unit", "1")
    heard: list[tuple[str, dict[str, Any] | None]] = []

    def listener(method: str, params: dict[str, Any] | None) -> None:
        heard.append((method, params))

    server.add_listener(listener)

    async def handler() -> str:
        return "x"

    server.tool("t")(handler)
    server.resource("test://r")(handler)
    server.prompt("p")(handler)
    server.remove_tool("t")
    server.notify_tools_changed()
    server.notify_prompts_changed()
    server.notify_resources_changed()
    server.notify_resource_updated("test://r")
    server.broadcast_log("warning", {"msg": "hi"}, logger_name="unit")
    server.broadcast_log("info", "plain")
    assert heard == [
        ("notifications/tools/list_changed", None),
        ("notifications/resources/list_changed", None),
        ("notifications/prompts/list_changed", None),
        ("notifications/tools/list_changed", None),
        ("notifications/tools/list_changed", None),
        ("notifications/prompts/list_changed", None),
        ("notifications/resources/list_changed", None),
        ("notifications/resources/updated", {"uri": "test://r"}),
        ("notifications/message", {"level": "warning", "data": {"msg": "hi"}, "logger": "unit"}),
        ("notifications/message", {"level": "info", "data": "plain"}),
    ]

    server.remove_listener(listener)
    server.notify_tools_changed()
    assert len(heard) == 10


def test_broadcast_log_rejects_an_unknown_level() -> None:
    server = McpServer("unit", "1")
    heard: list[str] = []
    server.add_listener(lambda method, params: heard.append(method))
    with pytest.raises(ValueError, match="verbose"):
        server.broadcast_log("verbose", "x")
    assert heard == []


# -- Context -----------------------------------------------------------------------------------


async def test_report_progress_needs_a_progress_token() -> None:
    server = McpServer("unit", "1")
    silent = FakeOutlet()
    await make_ctx(server, silent).report_progress(1, 2, "half")
    assert silent.notified == []

    outlet = FakeOutlet()
    ctx = make_ctx(server, outlet, meta={"progressToken": "tok"})
    assert ctx.progress_token == "tok"
    await ctx.report_progress(1, 2, "half")
    await ctx.report_progress(3)
    assert outlet.notified == [
        ("notifications/progress", {"progressToken": "tok", "progress": 1, "total": 2, "message": "half"}),
        ("notifications/progress", {"progressToken": "tok", "progress": 3}),
    ]


async def test_progress_from_a_tool_reaches_the_outlet() -> None:
    server = McpServer("unit", "1")

    @server.tool()
    async def work(ctx: Context, steps: int) -> str:
        for i in range(steps):
            await ctx.report_progress(i + 1, steps)
        return "done"

    outlet = FakeOutlet()
    ctx = make_ctx(server, outlet, meta={"progressToken": 0})
    with trio.fail_after(5):
        result = await server.dispatch("tools/call", {"name": "work", "arguments": {"steps": 2}}, ctx)
    assert texts(result) == ["done"]
    assert [p["progress"] for _m, p in outlet.notified if p is not None] == [1, 2]
    assert all(p is not None and p["progressToken"] == 0 for _m, p in outlet.notified)


async def test_log_filters_by_the_clients_level() -> None:
    server = McpServer("unit", "1")
    outlet = FakeOutlet()
    ctx = make_ctx(server, outlet, log_level="warning")
    await ctx.debug("d")
    await ctx.info("i")
    await ctx.warning("w", logger="unit")
    await ctx.error("e")
    await ctx.log("notice", "n")
    await ctx.log("emergency", "boom")
    assert outlet.notified == [
        ("notifications/message", {"level": "warning", "data": "w", "logger": "unit"}),
        ("notifications/message", {"level": "error", "data": "e"}),
        ("notifications/message", {"level": "emergency", "data": "boom"}),
    ]

    everything = FakeOutlet()
    ctx = make_ctx(server, everything, log_level="debug")
    await ctx.debug("d")
    assert everything.notified == [("notifications/message", {"level": "debug", "data": "d"})]

    with pytest.raises(McpError) as info:
        await ctx.log("verbose", "x")
    assert info.value.code == -32602


async def test_no_log_level_means_no_logs() -> None:
    server = McpServer("unit", "1")
    outlet = FakeOutlet()
    ctx = make_ctx(server, outlet, log_level=None)
    for level in ("debug", "warning", "emergency"):
        await ctx.log(level, level)
    assert outlet.notified == []


def test_an_unknown_log_level_is_refused_when_building_a_context() -> None:
    with pytest.raises(McpError) as info:
        make_ctx(McpServer("unit", "1"), log_level="loud")
    assert info.value.code == -32602


async def test_elicit_returns_the_outlets_answer_for_its_key() -> None:
    server = McpServer("unit", "1")
    answer = {"action": "accept", "content": {"name": "Ada"}}
    outlet = FakeOutlet({"who": answer, "elicitation": {"action": "decline"}})

    @server.tool()
    async def ask(ctx: Context) -> str:
        result = await ctx.elicit(
            "Name?", {"type": "object", "properties": {"name": {"type": "string"}}}, key="who"
        )
        return f"{result['action']} {result['content']['name']}"

    ctx = make_ctx(server, outlet)
    with trio.fail_after(5):
        result = await server.dispatch("tools/call", {"name": "ask"}, ctx)
    assert texts(result) == ["accept Ada"]
    ((key, request),) = outlet.asked[0].items()
    assert key == "who"
    assert request == {
        "method": "elicitation/create",
        "params": {
            "message": "Name?",
            "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    }
    assert request.capability == "elicitation"

    default = await make_ctx(server, outlet).elicit("Again?", {"type": "object", "properties": {}})
    assert default == {"action": "decline"}
    assert list(outlet.asked[1]) == ["elicitation"]


async def test_sample_roots_notify_and_close_go_through_the_outlet() -> None:
    server = McpServer("unit", "1")
    outlet = FakeOutlet(
        {
            "sampling": {"role": "assistant", "content": {"type": "text", "text": "hi"}},
            "roots": {"roots": [{"uri": "file:///tmp"}]},
        }
    )
    ctx = make_ctx(server, outlet)
    sampled = await ctx.sample([{"role": "user", "content": {"type": "text", "text": "?"}}], 10)
    assert sampled["content"]["text"] == "hi"
    assert outlet.asked[0]["sampling"]["params"]["maxTokens"] == 10
    assert (await ctx.list_roots())["roots"] == [{"uri": "file:///tmp"}]
    assert outlet.asked[1]["roots"] == {"method": "roots/list", "params": {}}
    await ctx.notify("notifications/custom", {"x": 1})
    assert outlet.notified == [("notifications/custom", {"x": 1})]
    ctx.close_sse_stream(250)
    assert outlet.closed == [250]
    assert ctx.task_id is None
    await ctx.start_task()  # no task control: nothing happens
    assert outlet.notified == [("notifications/custom", {"x": 1})]


async def test_structured_tool_returning_nothing_is_a_tool_error() -> None:
    server = McpServer("structured-none", "1")

    @server.tool(output_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    async def nothing() -> None:
        """Declares structured output but returns none."""

    with trio.fail_after(5):
        result = await server.dispatch("tools/call", {"name": "nothing"}, make_ctx(server))
    assert result["isError"] is True
    assert "structuredContent" not in result
