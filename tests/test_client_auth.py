"""The client's OAuth 2.1 (``trio_mcp_http.client.auth``) against our server and a real
authorization server (tests/oauth_as.py), both under Hypercorn on 127.0.0.1.

The user's browser is a function: it visits the authorization URL with httpx and hands
back where the authorization server redirected it, as a browser landing on the
redirect URI would.  Each flow is checked by what reached the servers (the
authorization server's requests, the principal our server saw), not only by what the
client says.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
import trio
from conftest import LogWatch
from helpers import hypercorn_serving
from oauth_as import Registered
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from test_auth import CLIENTS, build_server, serving_with_auth

from trio_mcp_http import ConfigError, UsageError, open_mcp_client
from trio_mcp_http.client.auth import (
    AuthorizationError,
    AuthorizationResponse,
    ClientCredentials,
    MemoryTokenStorage,
    OAuthClient,
    Tokens,
)
from trio_mcp_http.protocol.auth import (
    authorization_server_metadata_urls,
    bearer_challenge,
    pkce_challenge,
    resource_covers,
    resource_metadata_urls,
)

REDIRECT_URI = "http://127.0.0.1:9/callback"
ERAS = ["session", "stateless"]


class Browser:
    """The user agent: follows the authorization URL to its redirect (never to the
    redirect URI itself) and remembers the URLs it was shown."""

    def __init__(self, tamper: Any = None) -> None:
        self.visited: list[str] = []
        self._tamper = tamper

    async def __call__(self, authorization_url: str) -> str:
        self.visited.append(authorization_url)
        async with httpx.AsyncClient(follow_redirects=False, timeout=10) as http:
            response = await http.get(authorization_url)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        return self._tamper(location) if self._tamper else location


def whoami(result: Any) -> dict[str, Any]:
    return json.loads(result.content[0].text)


def oauth(browser: Browser, **options: Any) -> OAuthClient:
    return OAuthClient(redirect_uri=REDIRECT_URI, redirect=browser, **options)


# -- the sans-IO pieces ---------------------------------------------------------------------


def test_bearer_challenges_are_parsed_among_other_schemes() -> None:
    header = (
        'Basic realm="x", Bearer error="insufficient_scope", scope="a b", resource_metadata="https://h/m"'
    )
    assert bearer_challenge(header) == {
        "error": "insufficient_scope",
        "scope": "a b",
        "resource_metadata": "https://h/m",
    }
    assert bearer_challenge('Bearer error_description="say \\"no\\""') == {"error_description": 'say "no"'}
    assert bearer_challenge("Basic dXNlcjpwYXNz, Bearer realm=mcp") == {"realm": "mcp"}
    assert bearer_challenge("Bearer") == {}
    assert bearer_challenge("Basic realm=x") is None
    assert bearer_challenge(None) is None


def test_discovery_urls_follow_the_specified_order() -> None:
    assert resource_metadata_urls("https://h:8443/api/mcp") == [
        "https://h:8443/.well-known/oauth-protected-resource/api/mcp",
        "https://h:8443/.well-known/oauth-protected-resource",
    ]
    assert resource_metadata_urls("https://h/") == ["https://h/.well-known/oauth-protected-resource"]
    assert authorization_server_metadata_urls("https://as.example/tenant1") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant1",
        "https://as.example/.well-known/openid-configuration/tenant1",
        "https://as.example/tenant1/.well-known/openid-configuration",
    ]
    assert authorization_server_metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("resource", "server", "covers"),
    [
        ("https://h/mcp", "https://h/mcp", True),
        ("https://h", "https://h/mcp", True),
        ("https://H:443/mcp", "https://h/mcp/sub", True),
        ("https://h/mc", "https://h/mcp", False),
        ("https://evil.example/mcp", "https://h/mcp", False),
        ("http://h/mcp", "https://h/mcp", False),
        ("https://h:8443/mcp", "https://h/mcp", False),
        ("https://h/mcp#x", "https://h/mcp", False),
    ],
)
def test_resource_covers_the_server_only_from_the_same_origin(
    resource: str, server: str, covers: bool
) -> None:
    assert resource_covers(resource, server) is covers


# -- the authorization code flow ------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
async def test_authorization_code_flow_end_to_end(era: str, http2: bool, logs: LogWatch) -> None:
    browser = Browser()
    auth = oauth(browser)
    with trio.fail_after(30):
        async with serving_with_auth(build_server(), auth_scopes_supported="files:read files:write") as s:
            async with open_mcp_client(s.url, era=era, http2=http2, auth=auth) as client:
                me = whoami(await client.call_tool("whoami"))
                written = await client.call_tool("write_file", {"name": "a.txt"})
            tokens = await auth.storage.get_tokens(s.url)
            a_s = s.auth_server
    assert me == {"subject": "ada", "scopes": ["files:read", "files:write"], "issuer": a_s.issuer}
    assert written.content[0].text == "wrote a.txt"  # type: ignore[union-attr]
    # One registration, one authorization, one token, for the whole conversation.
    assert a_s.requests["register"] == 1
    assert len(browser.visited) == 1
    assert a_s.grants == ["authorization_code"]
    asked = a_s.authorizations[0]
    assert asked["resource"] == s.url  # RFC 8707: the resource as its metadata names it
    assert asked["scope"] == "files:read files:write"  # the resource's scopes_supported
    assert asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"] == REDIRECT_URI
    assert tokens is not None
    assert tokens.refresh_token is not None
    assert tokens.issuer == a_s.issuer
    # Never a token, a code or a secret in the logs.
    assert tokens.access_token not in repr(tokens)
    for record in logs.records:
        message = record.getMessage()
        assert tokens.access_token not in message
        assert tokens.refresh_token not in message
    assert logs.errors() == []


async def test_pre_registered_credentials_skip_registration() -> None:
    clients = {**CLIENTS, "desk-app": Registered("desk-secret", "desk-app", redirect_uris=(REDIRECT_URI,))}
    browser = Browser()
    auth = oauth(browser, client_id="desk-app", client_secret="desk-secret")
    with trio.fail_after(30):
        async with serving_with_auth(build_server(), clients=clients) as s:
            async with open_mcp_client(s.url, auth=auth) as client:
                me = whoami(await client.call_tool("whoami"))
            a_s = s.auth_server
    assert me["subject"] == "ada"
    assert "register" not in a_s.requests
    assert a_s.authorizations[0]["client_id"] == "desk-app"
    assert a_s.grants == ["authorization_code"]


@pytest.mark.parametrize("era", ERAS)
async def test_step_up_on_403_reauthorizes_with_the_union_of_scopes(era: str) -> None:
    browser = Browser()
    auth = oauth(browser)
    server = build_server()
    with trio.fail_after(30):
        # The resource advertises files:read only: the first token lacks files:write.
        async with serving_with_auth(server, auth_scopes_supported="files:read") as s:
            async with open_mcp_client(s.url, era=era, auth=auth) as client:
                before = whoami(await client.call_tool("whoami"))
                written = await client.call_tool("write_file", {"name": "b.txt"})
                after = whoami(await client.call_tool("whoami"))
            scopes_asked = [a.get("scope") for a in s.auth_server.authorizations]
    assert before["scopes"] == ["files:read"]
    assert written.content[0].text == "wrote b.txt"  # type: ignore[union-attr]
    assert server.writes == ["b.txt"]  # type: ignore[attr-defined]
    assert after["scopes"] == ["files:read", "files:write"]
    assert scopes_asked == ["files:read", "files:read files:write"]


@pytest.mark.parametrize("how", ["expired", "refused"])
async def test_a_token_is_refreshed_when_expired_or_refused(how: str) -> None:
    """A second client with the first one's storage: its token is out of date (by its
    expiry, or the server refuses it), so the refresh token gets a new one, and the
    user is not asked again."""
    browser = Browser()
    storage = MemoryTokenStorage()
    with trio.fail_after(30):
        async with serving_with_auth(build_server()) as s:
            async with open_mcp_client(s.url, auth=oauth(browser, storage=storage)) as client:
                await client.call_tool("whoami")
            held = await storage.get_tokens(s.url)
            assert held is not None
            if how == "expired":
                stale = replace(held, expires_at=0.0)
            else:
                stale = replace(held, access_token="revoked-token")
            await storage.set_tokens(s.url, stale)
            async with open_mcp_client(s.url, auth=oauth(browser, storage=storage)) as client:
                me = whoami(await client.call_tool("whoami"))
            renewed = await storage.get_tokens(s.url)
            grants = s.auth_server.grants
    assert me["subject"] == "ada"
    assert grants == ["authorization_code", "refresh_token"]
    assert len(browser.visited) == 1
    assert renewed is not None
    assert renewed.access_token not in (held.access_token, "revoked-token")


# -- refusals ---------------------------------------------------------------------------------


def _with_state(location: str, state: str) -> str:
    base, _, query = location.partition("?")
    kept = [p for p in query.split("&") if not p.startswith("state=")]
    return f"{base}?{'&'.join([*kept, f'state={state}'])}"


async def test_a_redirect_with_another_state_is_refused_before_the_token_request() -> None:
    browser = Browser(tamper=lambda location: _with_state(location, "forged"))
    with trio.fail_after(30):
        async with serving_with_auth(build_server()) as s:
            with pytest.raises(AuthorizationError, match="state"):
                async with open_mcp_client(s.url, auth=oauth(browser)):
                    pass
            grants = s.auth_server.grants
    assert len(browser.visited) == 1
    assert grants == []  # the code never went to the token endpoint


async def test_an_error_redirect_raises_with_the_oauth_error() -> None:
    async def deny(authorization_url: str) -> AuthorizationResponse | str:
        return f"{REDIRECT_URI}?error=access_denied&error_description=the+user+said+no"

    with trio.fail_after(30):
        async with serving_with_auth(build_server()) as s:
            with pytest.raises(AuthorizationError, match="the user said no") as caught:
                async with open_mcp_client(s.url, auth=OAuthClient(redirect_uri=REDIRECT_URI, redirect=deny)):
                    pass
    assert caught.value.error == "access_denied"


async def test_metadata_naming_another_resource_is_refused_before_authorizing() -> None:
    """A resource server whose metadata claims another resource (RFC 9728 §3.3): the
    client stops there, and its authorization server is never contacted."""
    contacted: list[str] = []

    async def mcp(request: Request) -> Response:
        metadata = f"{request.base_url}.well-known/oauth-protected-resource/mcp"
        challenge = f'Bearer resource_metadata="{metadata}"'
        return JSONResponse(
            {"error": "invalid_token"}, status_code=401, headers={"www-authenticate": challenge}
        )

    async def metadata(request: Request) -> Response:
        return JSONResponse(
            {"resource": "https://elsewhere.example/mcp", "authorization_servers": [f"{request.base_url}as"]}
        )

    async def anything_else(request: Request) -> Response:
        contacted.append(request.url.path)
        return JSONResponse({}, status_code=404)

    app = Starlette(
        routes=[
            Route("/mcp", mcp, methods=["POST", "GET", "DELETE"]),
            Route("/.well-known/oauth-protected-resource/mcp", metadata),
            Route("/{path:path}", anything_else),
        ]
    )
    browser = Browser()
    with trio.fail_after(30):
        async with hypercorn_serving(app) as port:
            with pytest.raises(AuthorizationError, match="RFC 9728"):
                async with open_mcp_client(f"http://127.0.0.1:{port}/mcp", auth=oauth(browser)):
                    pass
    assert browser.visited == []
    assert contacted == []


# -- client credentials ---------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_client_credentials_for_a_machine_client(era: str) -> None:
    auth = ClientCredentials(client_id="alice", client_secret="alice-secret")
    with trio.fail_after(30):
        async with serving_with_auth(build_server(), auth_scopes_supported="files:read files:write") as s:
            async with open_mcp_client(s.url, era=era, auth=auth) as client:
                me = whoami(await client.call_tool("whoami"))
                await client.call_tool("write_file", {"name": "c.txt"})
            grants = s.auth_server.grants
    assert me["subject"] == "alice"
    assert me["scopes"] == ["files:read", "files:write"]
    assert grants == ["client_credentials"]


async def test_client_credentials_refused_by_the_authorization_server() -> None:
    auth = ClientCredentials(client_id="alice", client_secret="wrong")
    with trio.fail_after(30):
        async with serving_with_auth(build_server()) as s:
            with pytest.raises(AuthorizationError, match="invalid_client") as caught:
                async with open_mcp_client(s.url, auth=auth):
                    pass
    assert caught.value.status == 401
    assert caught.value.error == "invalid_client"


async def test_an_insufficient_scope_that_cannot_be_granted_is_not_retried_forever() -> None:
    """bob may only have files:read: the step-up is asked for once, refused by the
    authorization server, and the call fails with that refusal."""
    auth = ClientCredentials(client_id="bob", client_secret="bob-secret")
    with trio.fail_after(30):
        async with serving_with_auth(build_server(), auth_scopes_supported="files:read") as s:
            async with open_mcp_client(s.url, auth=auth) as client:
                await client.call_tool("whoami")
                with pytest.raises(AuthorizationError, match="invalid_scope"):
                    await client.call_tool("write_file", {"name": "d.txt"})
            grants = s.auth_server.grants
    assert grants == ["client_credentials"]


# -- the API cannot be misused silently -------------------------------------------------------


async def _noop(url: str) -> str:
    return url


def test_options_are_checked() -> None:
    with pytest.raises(UsageError, match="unknown option 'scope'"):
        OAuthClient(redirect_uri=REDIRECT_URI, redirect=_noop, scope="x")
    with pytest.raises(UsageError, match="unknown option"):
        ClientCredentials(client_id="a", client_secret="b", secret="c")
    with pytest.raises(ConfigError, match="redirect_uri"):
        OAuthClient(redirect_uri="callback", redirect=_noop)
    with pytest.raises(UsageError, match="redirect"):
        OAuthClient(redirect_uri=REDIRECT_URI, redirect="https://example")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="client_secret needs a client_id"):
        OAuthClient(redirect_uri=REDIRECT_URI, redirect=_noop, client_secret="s")
    with pytest.raises(ConfigError, match="client_metadata_url"):
        OAuthClient(redirect_uri=REDIRECT_URI, redirect=_noop, client_metadata_url="http://x/meta.json")
    with pytest.raises(ConfigError, match="token_endpoint_auth_method"):
        ClientCredentials(client_id="a", client_secret="b", token_endpoint_auth_method="private_key_jwt")
    with pytest.raises(ConfigError, match="needs client authentication"):
        ClientCredentials(client_id="a", client_secret="b", token_endpoint_auth_method="none")
    with pytest.raises(UsageError, match="TokenStorage"):
        OAuthClient(redirect_uri=REDIRECT_URI, redirect=_noop, storage={})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scopes"):
        ClientCredentials(client_id="a", client_secret="b", scopes=[""])
    assert "secret" not in repr(Tokens("at-secret", refresh_token="rt-secret"))


async def test_open_mcp_client_checks_auth() -> None:
    auth = ClientCredentials(client_id="a", client_secret="b")
    with pytest.raises(UsageError, match="auth must be"):
        async with open_mcp_client("http://127.0.0.1:9/mcp", auth="token"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ConfigError, match="not both"):
        async with open_mcp_client(
            "http://127.0.0.1:9/mcp",
            auth=auth,
            headers={"Authorization": "Bearer x"},
        ):
            pass
