"""The conformance fixtures, written for the official MCP Python SDK (``MCPServer``).

The same tools, resources and prompts as ``fixture_server.py`` (the names, texts and
schemas the conformance suite's scenarios look for), written the way a user of the
official SDK writes them: ``MCPServer`` decorators and its ``Context``, and nothing of
trio_mcp_http.  ``conformance/run.py --server sdk_fixture_server:mcp`` serves it with
``trio-mcp-http serve``; adding ``--on sdk`` serves it with the SDK's own Streamable
HTTP app instead, so the two transports can be compared on one server.

Tools that ask the client for input work in both protocol eras: up to 2025-11-25 they
send ``elicitation/create``, ``sampling/createMessage`` or ``roots/list`` to the client
mid-call; from 2026-07-28 they return an ``InputRequiredResult`` with the input
requests under the keys the suite expects, read the answers from the retry's
``input_responses`` and keep earlier rounds' answers in ``request_state`` (which the
SDK seals, so a tampered state is refused before the tool runs).

Where ``MCPServer`` has no decorator for a method the suite exercises on the 2025 wire
(``logging/setLevel``, ``resources/subscribe``, ``resources/unsubscribe``), the handler
is registered on its lowlevel server.  The tasks extension (SEP-2663) and its fixtures
(``greet``, ``slow_compute``, ``failing_job``, ...) are left out: the SDK does not
implement the extension, so its scenarios fail whatever the fixture does, and served as
plain tools the long-running ones only make those scenarios wait out their timeouts.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Mapping
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    ClientCapabilities,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitationCapability,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequiredResult,
    ListRootsRequest,
    ListRootsResult,
    MissingRequiredClientCapabilityErrorData,
    RootsCapability,
    SamplingCapability,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from mcp_types.version import is_version_at_least
from pydantic import Field

__all__ = ["mcp"]

# Logging, sampling and roots are deprecated as of 2026-07-28 (SEP-2577); these fixtures
# still exercise them for the 2025-era scenarios.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

#: A 1x1 PNG and a tiny WAV: the suite's own fixture payloads.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

mcp = MCPServer(
    "sdk-conformance",
    title="MCP SDK conformance server",
    version="0.1.0",
)

# -- asking the client, in either era ------------------------------------------------------

Question = ElicitRequest | CreateMessageRequest | ListRootsRequest
Answer = ElicitResult | CreateMessageResult | ListRootsResult

#: The result each kind of question is answered with.
_ANSWER_TYPES: dict[str, type[Answer]] = {
    "elicitation/create": ElicitResult,
    "sampling/createMessage": CreateMessageResult,
    "roots/list": ListRootsResult,
}
#: The client capability each kind of question needs.
_NEEDS: dict[str, ClientCapabilities] = {
    "elicitation/create": ClientCapabilities(elicitation=ElicitationCapability()),
    "sampling/createMessage": ClientCapabilities(sampling=SamplingCapability()),
    "roots/list": ClientCapabilities(roots=RootsCapability()),
}


def elicitation(message: str, schema: dict[str, Any]) -> ElicitRequest:
    """A form elicitation question."""
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def sampling(prompt: str, max_tokens: int) -> CreateMessageRequest:
    """A one-message sampling question."""
    message = SamplingMessage(role="user", content=TextContent(text=prompt))
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=[message], max_tokens=max_tokens))


def roots() -> ListRootsRequest:
    """The roots question."""
    return ListRootsRequest()


def _one_field(name: str, kind: str = "string") -> dict[str, Any]:
    """An elicitation schema asking for one required field."""
    return {"type": "object", "properties": {name: {"type": kind}}, "required": [name]}


def _modern(ctx: Context) -> bool:
    """Whether this request asks for input with an ``InputRequiredResult`` (2026-07-28)."""
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, "2026-07-28")


def _has(capabilities: ClientCapabilities | None, method: str) -> bool:
    if capabilities is None:
        return False
    if method == "elicitation/create":
        return capabilities.elicitation is not None
    if method == "sampling/createMessage":
        return capabilities.sampling is not None
    return capabilities.roots is not None


def _require(ctx: Context, questions: Mapping[str, Question]) -> None:
    """Refuse (-32021, SEP-2133) a question the client declared it cannot answer."""
    for question in questions.values():
        if not _has(ctx.client_capabilities, question.method):
            data = MissingRequiredClientCapabilityErrorData(required_capabilities=_NEEDS[question.method])
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message=f"the client did not declare the capability {question.method} needs",
                data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
            )


def _wire(model: Any) -> dict[str, Any]:
    return dict(model.model_dump(by_alias=True, mode="json", exclude_none=True))


async def ask(ctx: Context, questions: Mapping[str, Question]) -> dict[str, Any] | InputRequiredResult:
    """The client's answers to ``questions``, keyed alike (each answer's wire form).

    From 2026-07-28 an answer comes from the retry's ``input_responses`` or from the
    answers earlier rounds kept in ``request_state``; while any is missing the result is
    an ``InputRequiredResult`` the tool returns as it is.  Before 2026-07-28 each
    question is sent to the client on the request's stream.
    """
    _require(ctx, questions)
    if not _modern(ctx):
        answers: dict[str, Any] = {}
        for key, question in questions.items():
            related = None if question.method == "roots/list" else ctx.request_id
            result = await ctx.session.send_request(
                question,
                _ANSWER_TYPES[question.method],
                metadata=ServerMessageMetadata(related_request_id=related),
            )
            answers[key] = _wire(result)
        return answers
    # Every answer so far rides request_state: a later ask() of the same call (the
    # next round) asks other questions, but the tool re-runs from the top each round.
    kept: dict[str, Any] = json.loads(ctx.request_state) if ctx.request_state else {}
    for key, response in (ctx.input_responses or {}).items():
        question = questions.get(key)
        if question is not None and not isinstance(response, _ANSWER_TYPES[question.method]):
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Invalid params: inputResponses[{key!r}] does not answer {question.method}",
            )
        kept[key] = _wire(response)
    missing = {key: question for key, question in questions.items() if key not in kept}
    if missing:
        return InputRequiredResult(input_requests=missing, request_state=json.dumps(kept))
    return {key: kept[key] for key in questions}


def text_of(answer: Mapping[str, Any]) -> str:
    """The text of a sampling answer's content (a block or a list of blocks)."""
    content = answer.get("content")
    blocks = content if isinstance(content, list) else [content]
    for block in blocks:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            return str(block["text"])
    return ""


def field_of(answer: Mapping[str, Any], name: str, default: str = "") -> str:
    """One field of an accepted elicitation's content."""
    content = answer.get("content")
    if isinstance(content, dict) and name in content:
        return str(content[name])
    return default


# -- tools: content types (tools-call-*) -----------------------------------------------------
# test_simple_text comes first: http-header-validation calls tools[0] with ``{}``.


@mcp.tool()
async def test_simple_text() -> str:
    """Tests simple text content response"""
    return "This is a simple text response for testing."


@mcp.tool()
async def test_image_content() -> ImageContent:
    """Tests image content response"""
    return ImageContent(data=PNG_BASE64, mime_type="image/png")


@mcp.tool()
async def test_audio_content() -> AudioContent:
    """Tests audio content response"""
    return AudioContent(data=WAV_BASE64, mime_type="audio/wav")


@mcp.tool()
async def test_embedded_resource() -> EmbeddedResource:
    """Tests embedded resource content response"""
    return EmbeddedResource(
        resource=TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
    )


@mcp.tool()
async def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    """Tests response with multiple content types (text, image, resource)"""
    return [
        TextContent(text="Multiple content types test:"),
        ImageContent(data=PNG_BASE64, mime_type="image/png"),
        EmbeddedResource(
            resource=TextResourceContents(
                uri="test://mixed-content-resource",
                mime_type="application/json",
                text=json.dumps({"test": "data", "value": 123}),
            )
        ),
    ]


@mcp.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Tests tool that emits log messages during execution"""
    await ctx.info("Tool execution started")
    await anyio.sleep(0.05)
    await ctx.info("Tool processing data")
    await anyio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@mcp.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Tests tool that reports progress notifications"""
    for step, progress in enumerate((0, 50, 100)):
        if step:
            await anyio.sleep(0.05)
        await ctx.report_progress(progress, 100, f"Completed step {progress} of 100")
    meta = ctx.request_context.meta or {}
    return str(meta.get("progressToken"))


@mcp.tool()
async def test_error_handling() -> str:
    """Tests error response handling"""
    raise ToolError("This tool intentionally returns an error for testing")


@mcp.tool()
async def test_reconnection(ctx: Context) -> str:
    """Tests SSE stream disconnection and client reconnection (SEP-1699).

    The server closes the stream mid-call and sends the result after the client
    reconnects with Last-Event-ID.
    """
    await ctx.close_sse_stream()
    await anyio.sleep(0.1)
    return (
        "Reconnection test completed successfully. If you received this, the client "
        "properly reconnected after stream closure."
    )


# -- tools: server-to-client requests (2025 era) ---------------------------------------------


@mcp.tool()
async def test_sampling(
    ctx: Context, prompt: Annotated[str, Field(description="The prompt to send to the LLM")]
) -> str | InputRequiredResult:
    """Tests server-initiated sampling (LLM completion request)"""
    answers = await ask(ctx, {"sampling": sampling(prompt, 100)})
    if isinstance(answers, InputRequiredResult):
        return answers
    return f"LLM response: {text_of(answers['sampling']) or 'No response'}"


@mcp.tool()
async def test_elicitation(
    ctx: Context, message: Annotated[str, Field(description="The message to show the user")]
) -> str | InputRequiredResult:
    """Tests server-initiated elicitation (user input request)"""
    schema = {
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    }
    answers = await ask(ctx, {"elicitation": elicitation(message, schema)})
    if isinstance(answers, InputRequiredResult):
        return answers
    answer = answers["elicitation"]
    return f"User response: action={answer.get('action')}, content={json.dumps(answer.get('content') or {})}"


_DEFAULTS_SCHEMA: dict[str, Any] = {
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
}

_ENUMS_SCHEMA: dict[str, Any] = {
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
}


async def _form(ctx: Context, key: str, message: str, schema: dict[str, Any]) -> str | InputRequiredResult:
    """Ask one form and report what came back."""
    answers = await ask(ctx, {key: elicitation(message, schema)})
    if isinstance(answers, InputRequiredResult):
        return answers
    answer = answers[key]
    return (
        f"Elicitation completed: action={answer.get('action')}, "
        f"content={json.dumps(answer.get('content') or {})}"
    )


@mcp.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str | InputRequiredResult:
    """Tests elicitation with default values per SEP-1034"""
    message = "Please review and update the form fields with defaults"
    return await _form(ctx, "defaults", message, _DEFAULTS_SCHEMA)


@mcp.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str | InputRequiredResult:
    """Tests elicitation with enum schema improvements per SEP-1330"""
    return await _form(ctx, "enums", "Please select options from the enum fields", _ENUMS_SCHEMA)


# -- tools: schemas passed through unchanged -------------------------------------------------

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


# MCPServer derives a tool's input schema from its signature and has no option to give
# one, so the registered Tool's schema is replaced (through the server's private tool
# manager) to publish this one as written; arguments are still checked by the signature.
mcp.add_tool(json_schema_2020_12_tool)
mcp._tool_manager.get_tool("json_schema_2020_12_tool").parameters = _JSON_SCHEMA_2020_12  # type: ignore[union-attr]


@mcp.tool()
async def test_custom_header(
    region: Annotated[str, Field(description="A region name", json_schema_extra={"x-mcp-header": "Region"})],
) -> str:
    """Echoes its region argument, which clients mirror in the Mcp-Param-Region header (SEP-2243)"""
    return f"Region: {region}"


# -- tools: 2026-07-28 diagnostics (server-stateless) ----------------------------------------


@mcp.tool()
async def test_missing_capability(ctx: Context) -> str | InputRequiredResult:
    """Test tool requiring sampling: refused when the client did not declare it"""
    answers = await ask(ctx, {"sampling": sampling("Say something", 20)})
    if isinstance(answers, InputRequiredResult):
        return answers
    return f"Success: {text_of(answers['sampling'])}"


@mcp.tool()
async def test_streaming_elicitation(ctx: Context) -> str:
    """Diagnostic tool validating response progress streams"""
    await ctx.report_progress(50, 100)
    return "Streaming complete"


@mcp.tool()
async def test_logging_tool(ctx: Context) -> str:
    """Diagnostic logging validator tool: logs only when the request asked for a level"""
    await ctx.info("Diagnostic trace logging activated")
    return "Logging evaluated"


@mcp.tool()
async def test_trigger_tool_change(ctx: Context) -> str:
    """Announces a tools/list change to every listening client"""
    await ctx.notify_tools_changed()
    return "Mutation triggered"


@mcp.tool()
async def test_trigger_prompt_change(ctx: Context) -> str:
    """Announces a prompts/list change to every listening client"""
    await ctx.notify_prompts_changed()
    return "Mutation triggered"


# -- tools: input requests (MRTR in 2026-07-28, server-to-client requests before) -----------

_NAME_SCHEMA = _one_field("name")
_CONFIRM_SCHEMA = _one_field("ok", "boolean")


@mcp.tool()
async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
    """MRTR: returns InputRequiredResult with elicitation request"""
    answers = await ask(ctx, {"user_name": elicitation("What is your name?", _NAME_SCHEMA)})
    if isinstance(answers, InputRequiredResult):
        return answers
    return f"Hello, {field_of(answers['user_name'], 'name', 'stranger')}!"


@mcp.tool()
async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
    """MRTR: returns InputRequiredResult with sampling request"""
    answers = await ask(ctx, {"sample_request": sampling("What is the capital of France?", 100)})
    if isinstance(answers, InputRequiredResult):
        return answers
    return f"Sampling result: {text_of(answers['sample_request']) or 'no response'}"


@mcp.tool()
async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
    """MRTR: returns InputRequiredResult with roots/list request"""
    answers = await ask(ctx, {"roots_request": roots()})
    if isinstance(answers, InputRequiredResult):
        return answers
    found = answers["roots_request"].get("roots")
    return f"Found {len(found) if isinstance(found, list) else 0} root(s)"


@mcp.tool()
async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
    """MRTR: returns InputRequiredResult with requestState"""
    answers = await ask(ctx, {"confirm": elicitation("Please confirm", _CONFIRM_SCHEMA)})
    if isinstance(answers, InputRequiredResult):
        return answers
    content = answers["confirm"].get("content")
    confirmed = isinstance(content, dict) and content.get("ok") is True
    return "state-ok: requestState validated" if confirmed else "not confirmed"


@mcp.tool()
async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
    """MRTR: returns InputRequiredResult with multiple input requests"""
    answers = await ask(
        ctx,
        {
            "user_name": elicitation("What is your name?", _NAME_SCHEMA),
            "greeting": sampling("Generate a greeting", 50),
            "client_roots": roots(),
        },
    )
    if isinstance(answers, InputRequiredResult):
        return answers
    found = answers["client_roots"].get("roots")
    return (
        f"Name: {field_of(answers['user_name'], 'name')}; "
        f"Greeting: {text_of(answers['greeting']) or 'Hello there!'}; "
        f"Roots: {len(found) if isinstance(found, list) else 0}"
    )


@mcp.tool()
async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
    """MRTR: multi-round InputRequiredResult workflow"""
    first = await ask(ctx, {"step1": elicitation("Step 1: What is your name?", _NAME_SCHEMA)})
    if isinstance(first, InputRequiredResult):
        return first
    color = elicitation("Step 2: What is your favorite color?", _one_field("color"))
    second = await ask(ctx, {"step2": color})
    if isinstance(second, InputRequiredResult):
        return second
    return (
        f"Multi-round complete for {field_of(first['step1'], 'name', 'friend')} "
        f"who likes {field_of(second['step2'], 'color')}"
    )


@mcp.tool()
async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
    """MRTR: HMAC-signed requestState integrity test"""
    answers = await ask(ctx, {"confirm": elicitation("Please confirm", _CONFIRM_SCHEMA)})
    if isinstance(answers, InputRequiredResult):
        return answers
    return "integrity-ok: state verified"


@mcp.tool()
async def test_input_required_result_capabilities(ctx: Context) -> str | InputRequiredResult:
    """MRTR: respects client capabilities in inputRequests"""
    questions: dict[str, Question] = {}
    if _has(ctx.client_capabilities, "elicitation/create"):
        questions["elicit_input"] = elicitation("Elicitation input", _one_field("value"))
    if _has(ctx.client_capabilities, "sampling/createMessage"):
        questions["sample_input"] = sampling("Sample request", 50)
    if not questions:
        return "No supported capabilities declared"
    answers = await ask(ctx, questions)
    if isinstance(answers, InputRequiredResult):
        return answers
    return f"capabilities-ok: received {','.join(answers)}"


# -- resources -------------------------------------------------------------------------------
# A readable resource comes first: the caching scenario reads resources[0].


@mcp.resource(
    "test://static-text",
    name="static-text",
    title="Static Text Resource",
    description="A static text resource for testing",
    mime_type="text/plain",
)
async def static_text() -> str:
    return "This is the content of the static text resource."


@mcp.resource(
    "test://static-binary",
    name="static-binary",
    title="Static Binary Resource",
    description="A static binary resource (image) for testing",
    mime_type="image/png",
)
async def static_binary() -> bytes:
    return base64.b64decode(PNG_BASE64)


@mcp.resource(
    "test://template/{id}/data",
    name="template",
    title="Resource Template",
    description="A resource template with parameter substitution",
    mime_type="application/json",
)
async def template(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))


@mcp.resource(
    "test://watched-resource",
    name="watched-resource",
    title="Watched Resource",
    description="A resource clients may subscribe to",
    mime_type="text/plain",
)
async def watched_resource() -> str:
    return "Watched resource content"


# -- prompts ---------------------------------------------------------------------------------


@mcp.prompt(title="Simple Test Prompt")
async def test_simple_prompt() -> str:
    """A simple prompt without arguments"""
    return "This is a simple prompt for testing."


@mcp.prompt(title="Prompt With Arguments")
async def test_prompt_with_arguments(
    arg1: Annotated[str, Field(description="First test argument")],
    arg2: Annotated[str, Field(description="Second test argument")],
) -> str:
    """A prompt with required arguments"""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@mcp.prompt(title="Prompt With Embedded Resource")
async def test_prompt_with_embedded_resource(
    resourceUri: Annotated[str, Field(description="URI of the resource to embed")],
) -> list[Message]:
    """A prompt that includes an embedded resource"""
    return [
        UserMessage(
            content=EmbeddedResource(
                resource=TextResourceContents(
                    uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
                )
            )
        ),
        UserMessage(content=TextContent(text="Please process the embedded resource above.")),
    ]


@mcp.prompt(title="Prompt With Image")
async def test_prompt_with_image() -> list[Message]:
    """A prompt that includes image content"""
    return [
        UserMessage(content=ImageContent(data=PNG_BASE64, mime_type="image/png")),
        UserMessage(content=TextContent(text="Please analyze the image above.")),
    ]


@mcp.prompt()
async def test_input_required_result_prompt(ctx: Context) -> str | InputRequiredResult:
    """MRTR: prompt that requires elicitation input"""
    question = elicitation("What context should the prompt use?", _one_field("context"))
    answers = await ask(ctx, {"user_context": question})
    if isinstance(answers, InputRequiredResult):
        return answers
    return f"Prompt with context: {field_of(answers['user_context'], 'context')}"


# -- completion ------------------------------------------------------------------------------


@mcp.completion()
async def complete(ref: Any, argument: Any, context: Any) -> None:
    """No suggestions: the suite checks the shape of the answer, not its values."""
    return None


# -- the 2025 wire's logging level and resource subscriptions (lowlevel handlers) -----------
# MCPServer has no decorator for these methods (2026-07-28 removed them), so they are
# registered on its lowlevel server, as the SDK documents for re-providing them.

_lowlevel = mcp._lowlevel_server


async def _set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    # Up to 2025-11-25 the SDK delivers every level; filtering is the application's.
    return EmptyResult()


async def _subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
    return EmptyResult()


async def _unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
    return EmptyResult()


_lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_level)
_lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
_lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)
