"""Interop: the official Python SDK client (PyPI ``mcp``) with its own OAuth support.

Its ``ClientCredentialsOAuthProvider`` starts with no token, reads our 401's
``resource_metadata``, fetches our Protected Resource Metadata, discovers the
authorization server (RFC 8414), gets a token by the client-credentials grant with
our canonical URI as its ``resource`` (RFC 8707), and retries; then it calls a tool
that needs a scope.  In both eras.  The client runs on asyncio in a worker thread, as
the SDK's users run it (see tests/test_python_client.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import mcp_types as types
import pytest
import trio
from conftest import LogWatch
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from test_auth import build_server, serving_with_auth


class MemoryStorage:
    """The SDK's TokenStorage protocol, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def _texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_official_client_discovers_authorizes_and_calls_a_scoped_tool(
    mode: str, logs: LogWatch
) -> None:
    server = build_server()
    seen: dict[str, Any] = {}

    async def use_client(url: str, issuer: str, scope: str) -> None:
        storage = MemoryStorage()
        provider = ClientCredentialsOAuthProvider(
            server_url=url,
            storage=storage,
            client_id="alice",
            client_secret="alice-secret",
            scope=scope,
            issuer=issuer,
        )
        async with (
            httpx2.AsyncClient(auth=provider, timeout=20) as http,
            Client(streamable_http_client(url, http_client=http), mode=mode) as client,
        ):
            written = await client.call_tool("write_file", {"name": "report.txt"})
            seen["written"] = _texts(written)
            whoami = await client.call_tool("whoami", {})
            seen["whoami"] = json.loads(_texts(whoami)[0])
            seen["token"] = storage.tokens

    with trio.fail_after(30):
        async with serving_with_auth(server, auth_scopes_supported="files:read files:write") as s:

            async def main() -> None:
                async with asyncio.timeout(20):
                    await use_client(s.url, s.auth_server.issuer, "files:read files:write")

            await trio.to_thread.run_sync(asyncio.run, main())
            requests = dict(s.auth_server.requests)

    assert seen["written"] == ["wrote report.txt"]
    assert server.writes == ["report.txt"]  # type: ignore[attr-defined]
    assert seen["whoami"]["subject"] == "alice"
    assert seen["whoami"]["scopes"] == ["files:read", "files:write"]
    assert seen["token"] is not None
    # One token for the whole conversation; our server fetched the key set once.
    assert requests["token"] == 1
    assert requests["jwks"] == 1
    assert logs.errors() == []
