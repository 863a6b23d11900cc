"""The conformance server: exactly the fixtures the official MCP conformance suite uses.

Run it from this folder with ``trio-mcp-http serve fixture_server:server --port 3001`` and
point ``npx @modelcontextprotocol/conformance server --url http://127.0.0.1:3001/mcp``
at it (``conformance/run.py`` does both).  Tool, resource and prompt names, texts and
schemas are the ones the suite's scenarios look for; the same handlers serve both
protocol eras, which is the point: the 2025-* session era answers ``ctx.elicit`` with a
real server-to-client request, the 2026-07-28 era with an input-required result.

Everything here uses only the public API of :mod:`trio_mcp_http`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import trio
from pydantic import Field

from trio_mcp_http import (
    AudioContent,
    BlobResourceContents,
    Context,
    EmbeddedResource,
    ImageContent,
    InputRequest,
    McpError,
    McpHttpApp,
    McpServer,
    PromptMessage,
    TextContent,
    TextResourceContents,
    ToolError,
)

__all__ = ["app", "server"]

#: A 1x1 PNG and a tiny WAV: the suite's own fixture payloads.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

server = McpServer("trio-mcp-http-conformance", "0.1.0", title="trio_mcp_http conformance server")


def _one_field(name: str, kind: str = "string") -> dict[str, Any]:
    """An elicitation schema asking for one required field."""
    return {"type": "object", "properties": {name: {"type": kind}}, "required": [name]}


_NAME_SCHEMA = _one_field("name")
_CONFIRM_SCHEMA = _one_field("ok", "boolean")


def _text(message: dict[str, Any]) -> str:
    """The text of a sampling result's content (a block or a list of blocks)."""
    content = message.get("content")
    blocks = content if isinstance(content, list) else [content]
    for block in blocks:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            return str(block["text"])
    return ""


def _field(answer: dict[str, Any], name: str, default: str = "") -> str:
    """One field of an accepted elicitation's content."""
    content = answer.get("content")
    if isinstance(content, dict) and name in content:
        return str(content[name])
    return default


# -- tools: content types (tools-call-*) --------------------------------------------------
# test_simple_text comes first: http-header-validation calls tools[0] with ``{}``.


@server.tool()
async def test_simple_text() -> str:
    """Tests simple text content response"""
    return "This is a simple text response for testing."


@server.tool()
async def test_image_content() -> ImageContent:
    """Tests image content response"""
    return ImageContent(data=PNG_BASE64, mimeType="image/png")


@server.tool()
async def test_audio_content() -> AudioContent:
    """Tests audio content response"""
    return AudioContent(data=WAV_BASE64, mimeType="audio/wav")


@server.tool()
async def test_embedded_resource() -> EmbeddedResource:
    """Tests embedded resource content response"""
    return EmbeddedResource(
        resource=TextResourceContents(
            uri="test://embedded-resource",
            mimeType="text/plain",
            text="This is an embedded resource content.",
        )
    )


@server.tool()
async def test_multiple_content_types() -> list[Any]:
    """Tests response with multiple content types (text, image, resource)"""
    return [
        TextContent(text="Multiple content types test:"),
        ImageContent(data=PNG_BASE64, mimeType="image/png"),
        EmbeddedResource(
            resource=TextResourceContents(
                uri="test://mixed-content-resource",
                mimeType="application/json",
                text=json.dumps({"test": "data", "value": 123}),
            )
        ),
    ]


@server.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Tests tool that emits log messages during execution"""
    await ctx.info("Tool execution started")
    await trio.sleep(0.05)
    await ctx.info("Tool processing data")
    await trio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@server.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Tests tool that reports progress notifications"""
    for step, progress in enumerate((0, 50, 100)):
        if step:
            await trio.sleep(0.05)
        await ctx.report_progress(progress, 100, f"Completed step {progress} of 100")
    return str(ctx.progress_token)


@server.tool()
async def test_error_handling() -> str:
    """Tests error response handling"""
    raise ToolError("This tool intentionally returns an error for testing")


@server.tool()
async def test_reconnection(ctx: Context) -> str:
    """Tests SSE stream disconnection and client reconnection (SEP-1699).

    The server closes the stream mid-call and sends the result after the client
    reconnects with Last-Event-ID.
    """
    ctx.close_sse_stream(retry_ms=500)
    # Finish after the client has been told to go: the result then travels on the
    # resumed stream (replayed from the event store if it arrives before the client).
    await trio.sleep(0.1)
    return (
        "Reconnection test completed successfully. If you received this, the client "
        "properly reconnected after stream closure."
    )


# -- tools: server-to-client requests (2025 era) -------------------------------------------


@server.tool()
async def test_sampling(
    ctx: Context, prompt: Annotated[str, Field(description="The prompt to send to the LLM")]
) -> str:
    """Tests server-initiated sampling (LLM completion request)"""
    result = await ctx.sample(
        [{"role": "user", "content": {"type": "text", "text": prompt}}], 100, key="sampling"
    )
    return f"LLM response: {_text(result) or 'No response'}"


@server.tool()
async def test_elicitation(
    ctx: Context, message: Annotated[str, Field(description="The message to show the user")]
) -> str:
    """Tests server-initiated elicitation (user input request)"""
    answer = await ctx.elicit(
        message,
        {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        },
        key="elicitation",
    )
    return f"User response: action={answer.get('action')}, content={json.dumps(answer.get('content') or {})}"


@server.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Tests elicitation with default values per SEP-1034"""
    answer = await ctx.elicit(
        "Please review and update the form fields with defaults",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": True},
            },
            "required": [],
        },
        key="defaults",
    )
    return (
        f"Elicitation completed: action={answer.get('action')}, "
        f"content={json.dumps(answer.get('content') or {})}"
    )


@server.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Tests elicitation with enum schema improvements per SEP-1330"""
    answer = await ctx.elicit(
        "Please select options from the enum fields",
        {
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Select one option",
                    "enum": ["option1", "option2", "option3"],
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Select one option with titles",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Select one option (legacy)",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Select multiple options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Select multiple options with titles",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
            "required": [],
        },
        key="enums",
    )
    return (
        f"Elicitation completed: action={answer.get('action')}, "
        f"content={json.dumps(answer.get('content') or {})}"
    )


# -- tools: schemas passed through unchanged -----------------------------------------------

_JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
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


@server.tool(input_schema=_JSON_SCHEMA_2020_12)
async def json_schema_2020_12_tool(
    name: str | None = None,
    address: dict[str, Any] | None = None,
    contactMethod: str | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> str:
    """Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)"""
    arguments = {
        "name": name,
        "address": address,
        "contactMethod": contactMethod,
        "phone": phone,
        "email": email,
    }
    given = {k: v for k, v in arguments.items() if v is not None}
    return f"JSON Schema 2020-12 tool called with: {json.dumps(given)}"


@server.tool(
    input_schema={
        "type": "object",
        "properties": {
            "region": {"type": "string", "description": "A region name", "x-mcp-header": "Region"}
        },
        "required": ["region"],
    }
)
async def test_custom_header(region: str) -> str:
    """Echoes its region argument, which clients mirror in the Mcp-Param-Region header (SEP-2243)"""
    return f"Region: {region}"


# -- tools: 2026-07-28 diagnostics (server-stateless) -------------------------------------


@server.tool()
async def test_missing_capability(ctx: Context) -> str:
    """Test tool requiring sampling: refused when the client did not declare it"""
    result = await ctx.sample(
        [{"role": "user", "content": {"type": "text", "text": "Say something"}}], 20, key="sampling"
    )
    return f"Success: {_text(result)}"


@server.tool()
async def test_streaming_elicitation(ctx: Context) -> str:
    """Diagnostic tool validating response progress streams"""
    await ctx.report_progress(50, 100)
    return "Streaming complete"


@server.tool()
async def test_logging_tool(ctx: Context) -> str:
    """Diagnostic logging validator tool: logs only when the request asked for a level"""
    await ctx.info("Diagnostic trace logging activated")
    return "Logging evaluated"


@server.tool()
async def test_trigger_tool_change() -> str:
    """Announces a tools/list change to every listening client"""
    server.notify_tools_changed()
    return "Mutation triggered"


@server.tool()
async def test_trigger_prompt_change() -> str:
    """Announces a prompts/list change to every listening client"""
    server.notify_prompts_changed()
    return "Mutation triggered"


# -- tools: input requests (MRTR in 2026-07-28, server-to-client requests before) ---------


@server.tool()
async def test_input_required_result_elicitation(ctx: Context) -> str:
    """MRTR: returns InputRequiredResult with elicitation request"""
    answer = await ctx.elicit("What is your name?", _NAME_SCHEMA, key="user_name")
    return f"Hello, {_field(answer, 'name', 'stranger')}!"


@server.tool()
async def test_input_required_result_sampling(ctx: Context) -> str:
    """MRTR: returns InputRequiredResult with sampling request"""
    result = await ctx.sample(
        [{"role": "user", "content": {"type": "text", "text": "What is the capital of France?"}}],
        100,
        key="sample_request",
    )
    return f"Sampling result: {_text(result) or 'no response'}"


@server.tool()
async def test_input_required_result_list_roots(ctx: Context) -> str:
    """MRTR: returns InputRequiredResult with roots/list request"""
    result = await ctx.list_roots(key="roots_request")
    roots = result.get("roots")
    return f"Found {len(roots) if isinstance(roots, list) else 0} root(s)"


@server.tool()
async def test_input_required_result_request_state(ctx: Context) -> str:
    """MRTR: returns InputRequiredResult with requestState"""
    answer = await ctx.elicit("Please confirm", _CONFIRM_SCHEMA, key="confirm")
    confirmed = isinstance(answer.get("content"), dict) and answer["content"].get("ok") is True
    return "state-ok: requestState validated" if confirmed else "not confirmed"


@server.tool()
async def test_input_required_result_multiple_inputs(ctx: Context) -> str:
    """MRTR: returns InputRequiredResult with multiple input requests"""
    answers = await ctx.ask(
        {
            "user_name": InputRequest.elicitation("What is your name?", _NAME_SCHEMA),
            "greeting": InputRequest.sampling(
                [{"role": "user", "content": {"type": "text", "text": "Generate a greeting"}}], 50
            ),
            "client_roots": InputRequest.roots(),
        }
    )
    roots = answers["client_roots"].get("roots")
    return (
        f"Name: {_field(answers['user_name'], 'name')}; "
        f"Greeting: {_text(answers['greeting']) or 'Hello there!'}; "
        f"Roots: {len(roots) if isinstance(roots, list) else 0}"
    )


@server.tool()
async def test_input_required_result_multi_round(ctx: Context) -> str:
    """MRTR: multi-round InputRequiredResult workflow"""
    first = await ctx.elicit("Step 1: What is your name?", _NAME_SCHEMA, key="step1")
    second = await ctx.elicit(
        "Step 2: What is your favorite color?",
        _one_field("color"),
        key="step2",
    )
    return f"Multi-round complete for {_field(first, 'name', 'friend')} who likes {_field(second, 'color')}"


@server.tool()
async def test_input_required_result_tampered_state(ctx: Context) -> str:
    """MRTR: HMAC-signed requestState integrity test"""
    await ctx.elicit("Please confirm", _CONFIRM_SCHEMA, key="confirm")
    return "integrity-ok: state verified"


@server.tool()
async def test_input_required_result_capabilities(ctx: Context) -> str:
    """MRTR: respects client capabilities in inputRequests"""
    requests: dict[str, InputRequest] = {}
    if "elicitation" in ctx.client_capabilities:
        requests["elicit_input"] = InputRequest.elicitation(
            "Elicitation input",
            _one_field("value"),
        )
    if "sampling" in ctx.client_capabilities:
        requests["sample_input"] = InputRequest.sampling(
            [{"role": "user", "content": {"type": "text", "text": "Sample request"}}], 50
        )
    if not requests:
        return "No supported capabilities declared"
    answers = await ctx.ask(requests)
    return f"capabilities-ok: received {','.join(answers)}"


# -- tools: the tasks extension (SEP-2663, 2026-07-28 wire; ordinary calls before) -------


@server.tool()
async def greet(name: str) -> str:
    """Greets by name; never runs as a task"""
    return f"Hello, {name}!"


@server.tool(task_support="optional")
async def slow_compute(
    seconds: Annotated[float, Field(description="How long to compute", ge=0)] = 1.0,
    label: Annotated[str, Field(description="A label echoed in the result")] = "",
) -> str:
    """Sleeps `seconds`, then reports the result; runs as a task for clients that support it"""
    await trio.sleep(seconds)
    return f"Computed {label or 'result'} after {seconds:g}s"


@server.tool(task_support="required")
async def failing_job() -> str:
    """Runs only as a task, which completes with a tool error (isError)"""
    await trio.sleep(0.5)
    raise ToolError("failing_job always fails")


@server.tool(task_support="optional")
async def protocol_error_job() -> str:
    """Its task fails with a JSON-RPC error instead of producing a result"""
    raise McpError(-32603, "protocol_error_job hit an internal error")  # JSON-RPC internal error


@server.tool(task_support="optional")
async def confirm_delete(ctx: Context, filename: str) -> str:
    """Asks for confirmation (one elicitation) before deleting `filename`"""
    answer = await ctx.elicit(f"Delete {filename}?", _CONFIRM_SCHEMA, key="confirm")
    confirmed = isinstance(answer.get("content"), dict) and answer["content"].get("ok") is True
    return f"Deleted {filename}" if confirmed else f"Kept {filename}"


@server.tool(task_support="optional")
async def multi_input(ctx: Context) -> str:
    """Asks two questions at once (two pending elicitations)"""
    answers = await ctx.ask(
        {
            "first_name": InputRequest.elicitation("Your first name?", _NAME_SCHEMA),
            "last_name": InputRequest.elicitation("Your last name?", _NAME_SCHEMA),
        }
    )
    return f"Hello, {_field(answers['first_name'], 'name')} {_field(answers['last_name'], 'name')}!"


@server.tool(task_support="required", task_start="explicit")
async def test_tool_with_task(ctx: Context) -> str:
    """Asks for a name by MRTR, then continues as a task"""
    answer = await ctx.elicit("What is your name?", _NAME_SCHEMA, key="user_name")
    await ctx.start_task()
    return f"Hello, {_field(answer, 'name', 'stranger')}! (from task {ctx.task_id})"


# -- resources ----------------------------------------------------------------------------
# A readable resource comes first: the caching scenario reads resources[0].


@server.resource(
    "test://static-text",
    name="static-text",
    title="Static Text Resource",
    description="A static text resource for testing",
    mime_type="text/plain",
)
async def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource(
    "test://static-binary",
    name="static-binary",
    title="Static Binary Resource",
    description="A static binary resource (image) for testing",
    mime_type="image/png",
)
async def static_binary() -> BlobResourceContents:
    return BlobResourceContents(uri="test://static-binary", mimeType="image/png", blob=PNG_BASE64)


@server.resource(
    "test://template/{id}/data",
    name="template",
    title="Resource Template",
    description="A resource template with parameter substitution",
    mime_type="application/json",
)
async def template(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))


@server.resource(
    "test://watched-resource",
    name="watched-resource",
    title="Watched Resource",
    description="A resource clients may subscribe to",
    mime_type="text/plain",
)
async def watched_resource() -> str:
    return "Watched resource content"


# -- prompts ------------------------------------------------------------------------------


@server.prompt(title="Simple Test Prompt")
async def test_simple_prompt() -> str:
    """A simple prompt without arguments"""
    return "This is a simple prompt for testing."


@server.prompt(title="Prompt With Arguments")
async def test_prompt_with_arguments(
    arg1: Annotated[str, Field(description="First test argument")],
    arg2: Annotated[str, Field(description="Second test argument")],
) -> str:
    """A prompt with required arguments"""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.prompt(title="Prompt With Embedded Resource")
async def test_prompt_with_embedded_resource(
    resourceUri: Annotated[str, Field(description="URI of the resource to embed")],
) -> list[PromptMessage]:
    """A prompt that includes an embedded resource"""
    return [
        PromptMessage(
            role="user",
            content=EmbeddedResource(
                resource=TextResourceContents(
                    uri=resourceUri, mimeType="text/plain", text="Embedded resource content for testing."
                )
            ),
        ),
        PromptMessage(role="user", content=TextContent(text="Please process the embedded resource above.")),
    ]


@server.prompt(title="Prompt With Image")
async def test_prompt_with_image() -> list[PromptMessage]:
    """A prompt that includes image content"""
    return [
        PromptMessage(role="user", content=ImageContent(data=PNG_BASE64, mimeType="image/png")),
        PromptMessage(role="user", content=TextContent(text="Please analyze the image above.")),
    ]


@server.prompt()
async def test_input_required_result_prompt(ctx: Context) -> str:
    """MRTR: prompt that requires elicitation input"""
    answer = await ctx.elicit(
        "What context should the prompt use?",
        _one_field("context"),
        key="user_context",
    )
    return f"Prompt with context: {_field(answer, 'context')}"


# -- completion ---------------------------------------------------------------------------


@server.completion()
async def complete(ref: dict[str, Any], argument: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """No suggestions: the suite checks the shape of the answer, not its values."""
    return []


#: An ASGI app for ``hypercorn -k trio fixture_server:app`` (run from this folder).
app = McpHttpApp(server)
