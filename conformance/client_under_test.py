"""The conformance suite's client under test: ``trio_mcp_http.client`` doing what each
client scenario asks.

    python conformance/client_under_test.py URL

The suite (``conformance client --command ...``) starts a scenario server, appends its
URL to the command and names the scenario in ``MCP_CONFORMANCE_SCENARIO``; the revision
it runs at is ``MCP_CONFORMANCE_PROTOCOL_VERSION`` (a 2025 revision means a session, 2026-07-28
the stateless era), and scenario data, if any, is the JSON of ``MCP_CONFORMANCE_CONTEXT``.
The suite judges the client by what reaches its server; this program's exit status
says only whether the flow ran to its end.  ``conformance/run_client.py`` runs it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

#: Scenario -> the function below that does what it asks.  Checked before the client
#: is imported: the suite starts this program for every scenario at once, the OAuth ones
#: too (which it does not handle yet), and those should cost nothing.
FLOWS: dict[str, str] = {
    "initialize": "basic",
    "tools_call": "basic",
    "json-schema-ref-no-deref": "list_only",
    "json-schema-2020-12-preservation": "schema_echo",
    "elicitation-sep1034-client-defaults": "elicitation_defaults",
    "sse-retry": "sse_retry",
    "request-metadata": "request_metadata",
    "sep-2322-client-request-state": "input_required",
    "http-standard-headers": "standard_headers",
    "http-custom-headers": "custom_headers",
    "http-invalid-tool-headers": "invalid_tool_headers",
    # OAuth (MCP Authorization): the authorization code flow, in every variant the
    # suite's scenario servers take; the scenarios that expect a refusal check that the
    # flow stopped where it should.
    **{
        f"auth/{name}": "oauth"
        for name in (
            "metadata-default",
            "metadata-var1",
            "metadata-var2",
            "metadata-var3",
            "basic-cimd",
            "scope-from-www-authenticate",
            "scope-from-scopes-supported",
            "scope-omitted-when-undefined",
            "scope-step-up",
            "scope-retry-limit",
            "token-endpoint-auth-basic",
            "token-endpoint-auth-post",
            "token-endpoint-auth-none",
            "pre-registration",
            "resource-mismatch",
            "offline-access-scope",
            "offline-access-not-supported",
            "authorization-server-migration",
            "iss-supported",
            "iss-not-advertised",
            "iss-supported-missing",
            "iss-wrong-issuer",
            "iss-unexpected",
            "iss-normalized",
            "metadata-issuer-mismatch",
        )
    },
    # The client-credentials extension, with a client secret.
    "auth/client-credentials-basic": "client_credentials",
}
#: Every flow is bounded: a scenario that stalls fails here rather than at the suite's timeout.
FLOW_TIMEOUT = 100.0

if __name__ == "__main__" and os.environ.get("MCP_CONFORMANCE_SCENARIO") not in FLOWS:
    print(f"no flow for scenario {os.environ.get('MCP_CONFORMANCE_SCENARIO')!r}", file=sys.stderr)
    sys.exit(2)

import httpx  # noqa: E402
import trio  # noqa: E402

from trio_mcp_http import McpHttpError, open_mcp_client  # noqa: E402
from trio_mcp_http.client import ElicitationRequest, McpClient, Tool  # noqa: E402
from trio_mcp_http.client.auth import AuthorizationError, ClientCredentials, OAuthClient  # noqa: E402

#: The redirect URI registered; nothing listens there: the redirect is read, not followed.
REDIRECT_URI = "http://localhost:3000/callback"
#: The Client ID Metadata Document URL the suite's authorization servers expect.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


def sample_arguments(tool: Tool) -> dict[str, Any]:
    """Arguments for a tool's required properties, one plausible value per JSON type."""
    samples: dict[str, Any] = {"string": "us-west1", "integer": 1, "number": 1.5, "boolean": True}
    properties = tool.input_schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for name in tool.input_schema.get("required") or []:
        prop = properties.get(name) if isinstance(properties, dict) else None
        kind = prop.get("type") if isinstance(prop, dict) else None
        arguments[name] = samples.get(kind, "x") if isinstance(kind, str) else "x"
    return arguments


def context() -> dict[str, Any]:
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
    return json.loads(raw) if raw else {}


async def basic(url: str, version: str | None) -> None:
    """Connect, list the tools and call the first with two numbers."""
    async with open_mcp_client(url, protocol_version=version) as client:
        tools = await client.list_tools()
        if tools:
            await client.call_tool(tools[0].name, {"a": 2, "b": 3})


async def list_only(url: str, version: str | None) -> None:
    """List tools whose schemas hold a network ``$ref``: the client never fetches it."""
    async with open_mcp_client(url, protocol_version=version) as client:
        await client.list_tools()


async def schema_echo(url: str, version: str | None) -> None:
    """Send a listed tool's input schema back as it was received."""
    async with open_mcp_client(url, protocol_version=version) as client:
        tools = {tool.name: tool for tool in await client.list_tools()}
        focal = tools["json_schema_2020_12_tool"]
        await client.call_tool("json_schema_echo", {"schema": focal.input_schema})


async def elicitation_defaults(url: str, version: str | None) -> None:
    """Accept an elicitation with no content: the client fills in the schema's defaults."""

    async def accept_empty(request: ElicitationRequest) -> dict[str, Any]:
        return {"action": "accept", "content": {}}

    async with open_mcp_client(url, protocol_version=version, elicitation=accept_empty) as client:
        await client.list_tools()
        await client.call_tool("test_client_elicitation_defaults")


async def sse_retry(url: str, version: str | None) -> None:
    """A call whose stream the server closes: resumed with GET and Last-Event-ID."""
    async with open_mcp_client(url, protocol_version=version) as client:
        await client.list_tools()
        await client.call_tool("test_reconnection")


async def request_metadata(url: str, version: str | None) -> None:
    """Requests with their ``_meta``, every client capability declared."""

    async def decline(request: ElicitationRequest) -> dict[str, Any]:
        return {"action": "decline"}

    async def no_model(request: Any) -> dict[str, Any]:
        return {"role": "assistant", "content": {"type": "text", "text": ""}, "model": "none"}

    async def no_roots() -> list[dict[str, Any]]:
        return []

    async with open_mcp_client(
        url, protocol_version=version, elicitation=decline, sampling=no_model, roots=no_roots
    ) as client:
        await client.list_tools()


async def input_required(url: str, version: str | None) -> None:
    """Input-required results: the answers, and ``requestState`` exactly as sent, go into
    a retry with a new id; a call made meanwhile carries none of them."""
    holder: list[McpClient] = []

    async def confirm(request: ElicitationRequest) -> dict[str, Any]:
        if request.message == "Please confirm to continue":
            # Another call while the first waits for its input: it must stay unrelated.
            await holder[0].call_tool("test_mrtr_unrelated")
        return {"action": "accept", "content": {"confirmed": True}}

    async with open_mcp_client(url, protocol_version=version, elicitation=confirm) as client:
        holder.append(client)
        await client.list_tools()
        await client.call_tool("test_mrtr_echo_state")
        await client.call_tool("test_mrtr_no_state")
        await client.call_tool("test_mrtr_no_result_type")


async def standard_headers(url: str, version: str | None) -> None:
    """Every kind of named request, so ``Mcp-Method`` and ``Mcp-Name`` are seen on each."""
    async with open_mcp_client(url, protocol_version=version) as client:
        for tool in await client.list_tools():
            await client.call_tool(tool.name, sample_arguments(tool))
        for resource in await client.list_resources():
            await client.read_resource(resource.uri)
        for prompt in await client.list_prompts():
            await client.get_prompt(prompt.name, {a.name: "x" for a in prompt.arguments if a.required})


async def custom_headers(url: str, version: str | None) -> None:
    """The calls the scenario names, with ``x-mcp-header`` arguments mirrored in headers."""
    async with open_mcp_client(url, protocol_version=version) as client:
        await client.list_tools()
        for call in context().get("toolCalls", []):
            await client.call_tool(call["name"], call.get("arguments") or {})


async def invalid_tool_headers(url: str, version: str | None) -> None:
    """Call every tool the client keeps: those with malformed ``x-mcp-header``
    annotations are left out of ``list_tools()``."""
    async with open_mcp_client(url, protocol_version=version) as client:
        for tool in await client.list_tools():
            await client.call_tool(tool.name, sample_arguments(tool))


async def user_agent(authorization_url: str) -> str:
    """The user's browser, approving at once: visit the authorization URL and return
    where the authorization server redirects (the suite's servers redirect at once)."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as http:
        response = await http.get(authorization_url)
    location = response.headers.get("location")
    if response.status_code not in (301, 302, 303, 307) or not location:
        status = response.status_code
        raise AuthorizationError(f"the authorization endpoint answered {status}, not a redirect")
    return location


async def oauth(url: str, version: str | None) -> None:
    """A client acting for a user: the authorization code flow when the server asks for
    a token (credentials registered in advance when the scenario gives them), then a
    tool listed and called (the call may need more scope)."""
    given = context()
    auth = OAuthClient(
        redirect_uri=REDIRECT_URI,
        redirect=user_agent,
        client_id=given.get("client_id"),
        client_secret=given.get("client_secret"),
        client_metadata_url=CLIENT_METADATA_URL,
        client_name="trio-mcp-http conformance client",
    )
    async with open_mcp_client(url, protocol_version=version, auth=auth) as client:
        tools = await client.list_tools()
        if tools:
            await client.call_tool(tools[0].name, sample_arguments(tools[0]))


async def client_credentials(url: str, version: str | None) -> None:
    """A machine client: the client-credentials grant with the scenario's secret."""
    given = context()
    auth = ClientCredentials(client_id=given["client_id"], client_secret=given["client_secret"])
    async with open_mcp_client(url, protocol_version=version, auth=auth) as client:
        tools = await client.list_tools()
        if tools:
            await client.call_tool(tools[0].name, sample_arguments(tools[0]))


async def main(url: str) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION") or None
    run = globals()[FLOWS[scenario]]
    try:
        with trio.fail_after(FLOW_TIMEOUT):
            await run(url, version)
    except (McpHttpError, trio.TooSlowError) as exc:
        print(f"{scenario}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)d %(levelname)s %(name)s: %(message)s")
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(trio.run(main, sys.argv[1]))
