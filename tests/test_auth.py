"""OAuth 2.1 resource server (MCP Authorization) against a real authorization server.

The authorization server (tests/oauth_as.py) runs on 127.0.0.1 port 0 and signs with
its own key; our server fetches its metadata and key set over HTTP, as in production.
Each test runs both servers under Hypercorn and talks to ours with httpx.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
from conftest import LogWatch
from helpers import POST_HEADERS, hypercorn_serving, initialize, request, response_messages
from joserfc.jwk import ECKey
from oauth_as import Registered, TestAuthorizationServer, authorization_server
from test_modern import modern_headers, modern_request

from trio_mcp_http import ConfigError, Context, McpHttpApp, McpServer, TransportConfig, UsageError
from trio_mcp_http.auth import JwtVerifier, Principal

CLIENTS = {
    "alice": Registered("alice-secret", "alice", ("files:read", "files:write")),
    "bob": Registered("bob-secret", "bob", ("files:read",)),
    "carol": Registered("carol-secret", "carol", ("files:read",), opaque=True),
    "mcp-server": Registered("rs-secret", "mcp-server", introspects=True),
}


def build_server() -> McpServer:
    server = McpServer("auth-test", "1.0")

    @server.tool()
    async def whoami(ctx: Context) -> dict[str, Any]:
        """Who the request acts for."""
        assert ctx.auth is not None
        return {"subject": ctx.auth.subject, "scopes": sorted(ctx.auth.scopes), "issuer": ctx.auth.issuer}

    @server.tool(scopes="files:write")
    async def write_file(name: str) -> str:
        """Needs files:write."""
        server.writes.append(name)  # type: ignore[attr-defined]
        return f"wrote {name}"

    @server.resource("memo://secret", scopes=["files:read"])
    async def secret_memo() -> str:
        return "the memo"

    @server.prompt(scopes="admin")
    async def admin_prompt() -> str:
        return "do admin things"

    server.writes = []  # type: ignore[attr-defined]
    return server


@dataclass
class Served:
    """Our server (at ``url``) and the authorization server it trusts."""

    url: str
    app: McpHttpApp
    auth_server: TestAuthorizationServer
    http: httpx.AsyncClient

    @property
    def resource(self) -> str:
        return self.url

    def token(self, subject: str = "alice", scopes: str = "files:read files:write", **kwargs: Any) -> str:
        kwargs.setdefault("audience", self.url)
        return self.auth_server.mint(subject, scopes, **kwargs)

    async def post(self, body: Any, token: str | None = None, **headers: str) -> httpx.Response:
        all_headers = {**POST_HEADERS, **headers}
        if token is not None:
            all_headers["authorization"] = f"Bearer {token}"
        return await self.http.post(self.url, content=json.dumps(body).encode(), headers=all_headers)

    async def open_session(self, token: str) -> str:
        response = await self.post(initialize(), token)
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.post(initialized, token, **{"mcp-session-id": session})).status_code == 202
        return session

    async def call(self, token: str, session: str, tool: str, **arguments: Any) -> httpx.Response:
        return await self.post(
            request(7, "tools/call", {"name": tool, "arguments": arguments}),
            token,
            **{"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"},
        )

    async def modern(self, body: dict[str, Any], token: str | None) -> httpx.Response:
        headers = modern_headers(body)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return await self.http.post(self.url, content=json.dumps(body).encode(), headers=headers)


def reserve_port() -> socket.socket:
    """A listening socket's port is known before the server's config is made (the
    canonical resource URI names it); Hypercorn takes the socket over (``fd://``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving_with_auth(
    server: McpServer | None = None, *, clients: dict[str, Registered] = CLIENTS, **settings: Any
) -> AsyncIterator[Served]:
    async with authorization_server(clients) as auth_server:
        sock = reserve_port()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        settings.setdefault("auth_resource", url)
        config = TransportConfig(auth_issuer=auth_server.issuer, **settings)
        app = McpHttpApp(server or build_server(), config)
        async with (
            hypercorn_serving(app, app, bind=[f"fd://{sock.detach()}"]),
            httpx.AsyncClient(timeout=10) as http,
        ):
            yield Served(url, app, auth_server, http)


def challenge(response: httpx.Response) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer`` challenge."""
    value = response.headers["www-authenticate"]
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer", value
    params = {}
    for part in rest.split(", "):
        key, _, quoted = part.partition("=")
        assert quoted.startswith('"'), value
        assert quoted.endswith('"'), value
        params[key] = quoted[1:-1]
    return params


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    return body["error"]


def result_of(response: httpx.Response) -> dict[str, Any]:
    messages = response_messages(response)
    assert "result" in messages[-1], messages
    return messages[-1]["result"]


def structured(response: httpx.Response) -> Any:
    result = result_of(response)
    return result.get("structuredContent") or json.loads(result["content"][0]["text"])


# -- metadata and the challenge -----------------------------------------------------------


async def test_protected_resource_metadata_is_served_at_both_well_known_paths() -> None:
    async with serving_with_auth(auth_scopes_supported="files:read files:write") as s:
        origin = s.url.removesuffix("/mcp")
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            response = await s.http.get(origin + path)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {
                "resource": s.url,
                "authorization_servers": [s.auth_server.issuer],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["files:read", "files:write"],
            }
        refused = await s.http.post(origin + "/.well-known/oauth-protected-resource")
        assert refused.status_code == 405
        assert (await s.http.get(origin + "/.well-known/oauth-authorization-server")).status_code == 404


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
async def test_no_token_is_401_with_the_metadata_url_on_every_method(method: str) -> None:
    async with serving_with_auth(auth_required_scopes="files:read") as s:
        body = json.dumps(initialize()).encode() if method == "POST" else None
        headers = {**POST_HEADERS, "mcp-session-id": "abc"}
        response = await s.http.request(method, s.url, content=body, headers=headers)
        assert response.status_code == 401
        params = challenge(response)
        assert params == {
            "resource_metadata": s.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"),
            "scope": "files:read",
        }
        # No token presented: no error code (RFC 6750 §3.1).
        assert "error" not in params
        error = error_of(response)
        assert error["code"] == -32600
        assert "bearer token" in error["message"]


async def test_a_modern_request_without_a_token_is_401_too() -> None:
    async with serving_with_auth() as s:
        response = await s.modern(modern_request(1, "tools/list"), None)
        assert response.status_code == 401
        assert "resource_metadata" in challenge(response)
        assert s.app.statistics()["requests_in_flight"] == 0


# -- refused tokens --------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)])


def _claims(s: Served, **extra: Any) -> dict[str, Any]:
    return {
        "iss": s.auth_server.issuer,
        "sub": "mallory",
        "aud": s.url,
        "exp": int(time.time()) + 300,
        **extra,
    }


def _refused_token(kind: str, s: Served) -> str:
    if kind == "wrong audience":
        return s.token(audience="http://127.0.0.1:1/other")
    if kind == "no audience":
        return s.token(audience=None)
    if kind == "expired":
        return s.token(lifetime=-3600)
    if kind == "not yet valid":
        return s.token(nbf=int(time.time()) + 3600)
    if kind == "foreign issuer":
        return s.token(issuer="https://evil.example")
    if kind == "foreign key":
        other = ECKey.generate_key("P-256", parameters={"kid": "key-1"})
        return s.token(key=other)
    if kind == "tampered signature":
        head, payload, signature = s.token().split(".")
        flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
        flipped[5] ^= 0x01
        return f"{head}.{payload}.{_b64(bytes(flipped))}"
    if kind == "tampered claims":
        head, _payload, signature = s.token(scopes="files:read").split(".")
        claims = _claims(s, sub="alice", scope="files:read files:write")
        return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"
    if kind == "alg none":
        return _forged({"alg": "none", "kid": s.auth_server.key.kid}, _claims(s))
    if kind == "HS256 with the public key":
        # The classic confusion: the public key (which anyone can fetch) as an HMAC
        # secret.  joserfc itself refuses to make such a key, so it is signed by hand.
        public_pem = s.auth_server.key.as_pem(private=False)
        header = {"alg": "HS256", "kid": s.auth_server.key.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(s)).encode())}"
        signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"
    if kind == "unknown kid":
        other = ECKey.generate_key("P-256", parameters={"kid": "key-99"})
        return s.token(key=other)
    if kind == "not a JWT":
        return "abc.def"
    raise AssertionError(kind)


REFUSED = [
    "wrong audience",
    "no audience",
    "expired",
    "not yet valid",
    "foreign issuer",
    "foreign key",
    "tampered signature",
    "tampered claims",
    "alg none",
    "HS256 with the public key",
    "unknown kid",
    "not a JWT",
]


async def test_refused_tokens_get_401_invalid_token(logs: LogWatch) -> None:
    """One server for every case (each would otherwise cost two servers' start)."""
    async with serving_with_auth() as s:
        session = await s.open_session(s.token())
        for kind in REFUSED:
            token = _refused_token(kind, s)
            for response in (
                await s.post(initialize(), token),
                await s.call(token, session, "whoami"),
                await s.modern(modern_request(1, "tools/call", {"name": "whoami", "arguments": {}}), token),
            ):
                assert response.status_code == 401, (kind, response.text)
                params = challenge(response)
                assert params["error"] == "invalid_token", kind
                assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
                assert error_of(response)["message"].startswith("Unauthorized: "), kind
            # Tokens are never logged, whatever happens to them.
            assert all(token not in record.getMessage() for record in logs.records), kind
        # The session itself was never touched by the refused requests.
        assert s.app.statistics()["sessions"] == 1
        assert (await s.call(s.token(), session, "whoami")).status_code == 200
    refusals = [r for r in logs.records if r.name == "trio_mcp_http.auth" and "refused" in r.getMessage()]
    assert len(refusals) == 3 * len(REFUSED)
    assert logs.errors() == []


async def test_malformed_authorization_headers() -> None:
    async with serving_with_auth() as s:
        for value in (b"Bearer", b"Bearer a b", "Bearer tok\u00e9n".encode(), b"Bearer a\\b"):
            headers = [
                *((k.encode(), v.encode()) for k, v in POST_HEADERS.items()),
                (b"authorization", value),
            ]
            response = await s.http.post(s.url, content=b"{}", headers=headers)
            assert response.status_code == 401, value
            assert challenge(response)["error"] == "invalid_token"
        # Another scheme is no bearer token: 401 without an error code.
        basic = await s.http.post(
            s.url, content=b"{}", headers={**POST_HEADERS, "authorization": "Basic eDp5"}
        )
        assert basic.status_code == 401
        assert "error" not in challenge(basic)


# -- accepted tokens -------------------------------------------------------------------


async def test_a_valid_token_reaches_the_handler_as_ctx_auth_in_both_eras() -> None:
    async with serving_with_auth() as s:
        token = s.token("alice", "files:read files:write")
        session = await s.open_session(token)
        expected = {
            "subject": "alice",
            "scopes": ["files:read", "files:write"],
            "issuer": s.auth_server.issuer,
        }
        session_era = await s.call(token, session, "whoami")
        assert session_era.status_code == 200
        assert structured(session_era) == expected
        modern = await s.modern(modern_request(2, "tools/call", {"name": "whoami", "arguments": {}}), token)
        assert modern.status_code == 200, modern.text
        assert structured(modern) == expected
        # A GET stream and a DELETE with the session's own principal's token.
        async with s.http.stream(
            "GET",
            s.url,
            headers={
                "accept": "text/event-stream",
                "authorization": f"Bearer {token}",
                "mcp-session-id": session,
                "mcp-protocol-version": "2025-11-25",
            },
        ) as stream:
            assert stream.status_code == 200
        deleted = await s.http.delete(
            s.url, headers={"authorization": f"Bearer {token}", "mcp-session-id": session}
        )
        assert deleted.status_code == 204
        # The key set was fetched once, after discovery, for all of it.
        assert s.auth_server.requests == {"metadata": 1, "jwks": 1}


async def test_a_refreshed_token_of_the_same_principal_keeps_the_session() -> None:
    async with serving_with_auth() as s:
        session = await s.open_session(s.token("alice", "files:read"))
        refreshed = s.token("alice", "files:read files:write")
        answer = await s.call(refreshed, session, "whoami")
        assert answer.status_code == 200
        assert structured(answer)["scopes"] == ["files:read", "files:write"]


# -- scopes ------------------------------------------------------------------------------


async def test_a_missing_scope_is_403_insufficient_scope_before_the_handler_runs() -> None:
    server = build_server()
    async with serving_with_auth(server, auth_required_scopes="files:read") as s:
        token = s.token("bob", "files:read")
        session = await s.open_session(token)
        refused = [
            await s.call(token, session, "write_file", name="x"),
            await s.modern(
                modern_request(3, "tools/call", {"name": "write_file", "arguments": {"name": "x"}}), token
            ),
        ]
        for response in refused:
            assert response.status_code == 403, response.text
            params = challenge(response)
            assert params["error"] == "insufficient_scope"
            # Every scope the call needs, the server-wide ones included.
            assert params["scope"] == "files:read files:write"
            error = error_of(response)
            assert "files:write" in error["message"]
            assert error["data"] == {"requiredScopes": ["files:read", "files:write"]}
            assert response.json()["id"] in (7, 3)
        assert server.writes == []  # type: ignore[attr-defined]
        prompt = await s.post(
            request(8, "prompts/get", {"name": "admin_prompt"}),
            token,
            **{"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"},
        )
        assert prompt.status_code == 403
        assert challenge(prompt)["scope"] == "files:read admin"
        memo = await s.post(
            request(9, "resources/read", {"uri": "memo://secret"}),
            token,
            **{"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"},
        )
        assert memo.status_code == 200
        assert result_of(memo)["contents"][0]["text"] == "the memo"
        # A token without a server-wide required scope is refused on every request.
        bare = await s.post(initialize(), s.token("bob", "other"))
        assert bare.status_code == 403
        assert challenge(bare)["scope"] == "files:read"
        # The same call with the scope goes through.
        writer = s.token("alice", "files:read files:write")
        writer_session = await s.open_session(writer)
        done = await s.call(writer, writer_session, "write_file", name="x")
        assert done.status_code == 200
        assert server.writes == ["x"]  # type: ignore[attr-defined]


# -- sessions bound to their principal -------------------------------------------------


async def test_a_session_presented_with_another_principals_token_is_404() -> None:
    async with serving_with_auth() as s:
        alice, bob = s.token("alice"), s.token("bob", "files:read")
        session = await s.open_session(alice)
        unknown = await s.call(bob, "0" * 32, "whoami")
        assert unknown.status_code == 404
        hijack = await s.call(bob, session, "whoami")
        assert hijack.status_code == 404
        # Indistinguishable from an unknown session.
        assert error_of(hijack) == error_of(unknown)
        get = await s.http.get(
            s.url,
            headers={
                "accept": "text/event-stream",
                "authorization": f"Bearer {bob}",
                "mcp-session-id": session,
            },
        )
        assert get.status_code == 404
        delete = await s.http.delete(
            s.url, headers={"authorization": f"Bearer {bob}", "mcp-session-id": session}
        )
        assert delete.status_code == 404
        # Same subject from another issuer is someone else too.
        other_issuer_app_token = s.token("alice", issuer=s.auth_server.issuer + "/")
        assert (await s.call(other_issuer_app_token, session, "whoami")).status_code == 401
        # Alice's session is intact.
        mine = await s.call(alice, session, "whoami")
        assert mine.status_code == 200
        assert structured(mine)["subject"] == "alice"


# -- the authorization server unreachable ----------------------------------------------


async def test_authorization_server_down_is_503_with_retry_after(logs: LogWatch) -> None:
    async with serving_with_auth(retry_after=7) as s:
        s.auth_server.down = True
        token = s.token()
        response = await s.post(initialize(), token)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert error_of(response)["code"] == -32603
        # Back up: the next request works (discovery is retried, not remembered as failed).
        s.auth_server.down = False
        assert (await s.post(initialize(), token)).status_code == 200
        # Down again: the keys already known go on serving.
        s.auth_server.down = True
        assert (await s.post(initialize(), token)).status_code == 200
    assert any("cannot check an access token" in r.getMessage() for r in logs.records)
    assert all(token not in r.getMessage() for r in logs.records)
    assert logs.errors() == []


async def test_a_hanging_authorization_server_is_503_within_the_bound() -> None:
    """A key set URL whose server accepts and never answers: bounded by the timeout."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    hanging = f"http://127.0.0.1:{listener.getsockname()[1]}/jwks"
    try:
        async with serving_with_auth(auth_verifier=None, auth_jwks_url=hanging) as s:
            # A verifier with a short bound instead of the default (5 s).
            verifier = JwtVerifier(s.auth_server.issuer, s.url, jwks_url=hanging, timeout=0.3)
            assert s.app._auth is not None
            s.app._auth.verifier = verifier
            try:
                with trio.fail_after(5):
                    response = await s.post(initialize(), s.token())
            finally:
                await verifier.aclose()
            assert response.status_code == 503
            assert "retry-after" in response.headers
    finally:
        listener.close()


# -- key rotation ----------------------------------------------------------------------


async def test_an_unknown_key_id_right_after_a_fetch_does_not_refetch() -> None:
    """Tokens with made-up key ids cannot make us hammer the authorization server (the
    refetch interval itself is timed in tests/test_auth_sansio.py, on a mock clock)."""
    async with serving_with_auth() as s:
        assert (await s.post(initialize(), s.token())).status_code == 200
        assert s.auth_server.requests["jwks"] == 1
        for kid in ("made-up-1", "made-up-2", "made-up-3"):
            forged = s.token(key=ECKey.generate_key("P-256", parameters={"kid": kid}))
            assert (await s.post(initialize(), forged)).status_code == 401
        assert s.auth_server.requests["jwks"] == 1


# -- introspection (opaque tokens) -------------------------------------------------------


async def test_opaque_tokens_are_introspected(tmp_path: Any) -> None:
    secret = tmp_path / "secret"
    secret.write_text("rs-secret\n")
    async with authorization_server(CLIENTS) as auth_server:
        sock = reserve_port()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        config = TransportConfig(
            auth_issuer=auth_server.issuer,
            auth_resource=url,
            auth_introspection_url=f"{auth_server.issuer}/introspect",
            auth_client_id="mcp-server",
            auth_client_secret_file=str(secret),
        )
        app = McpHttpApp(build_server(), config)
        async with (
            hypercorn_serving(app, app, bind=[f"fd://{sock.detach()}"]),
            httpx.AsyncClient(timeout=10) as http,
        ):
            s = Served(url, app, auth_server, http)
            # Carol's client gets opaque tokens from the token endpoint, for our resource.
            issued = await http.post(
                f"{auth_server.issuer}/token",
                data={"grant_type": "client_credentials", "resource": url},
                auth=("carol", "carol-secret"),
            )
            token = issued.json()["access_token"]
            assert "." not in token
            session = await s.open_session(token)
            answer = await s.call(token, session, "whoami")
            assert answer.status_code == 200
            assert structured(answer)["subject"] == "carol"
            assert structured(answer)["scopes"] == ["files:read"]
            # Answers are cached: one introspection for three requests.
            assert auth_server.requests["introspect"] == 1
            # A token for another resource, an unknown one: refused.
            other = await http.post(
                f"{auth_server.issuer}/token",
                data={"grant_type": "client_credentials", "resource": "https://elsewhere.example/mcp"},
                auth=("carol", "carol-secret"),
            )
            for bad in (other.json()["access_token"], "unknown-token"):
                refused = await s.post(initialize(), bad)
                assert refused.status_code == 401
                assert challenge(refused)["error"] == "invalid_token"
            auth_server.down = True
            fresh = await http.post(
                f"{auth_server.issuer}/token",
                data={"grant_type": "client_credentials", "resource": url},
                auth=("carol", "carol-secret"),
            )
            assert fresh.status_code == 503
            # Introspection unreachable: 503, while the cached token still works.
            unseen = "x" * 40
            assert (await s.post(initialize(), unseen)).status_code == 503
            assert (await s.call(token, session, "whoami")).status_code == 200


# -- configuration ------------------------------------------------------------------------


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="auth_resource"):
        McpHttpApp(build_server(), TransportConfig(auth_issuer="https://as.example"))
    with pytest.raises(ConfigError, match="need auth_issuer"):
        TransportConfig(auth_resource="https://mcp.example/mcp")
    with pytest.raises(ConfigError, match="absolute http"):
        McpHttpApp(build_server(), TransportConfig(auth_issuer="https://as.example", auth_resource="/mcp"))
    with pytest.raises(UsageError, match="auth_verifier"):
        TransportConfig(auth_issuer="https://as.example", auth_verifier=object())
    with pytest.raises(UsageError, match="auth_required_scopes"):
        TransportConfig(auth_issuer="https://as.example", auth_required_scopes=["a"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scope token"):
        McpServer("x", "1").tool(scopes='bad"scope')
    with pytest.raises(ConfigError, match="cannot read"):
        McpHttpApp(
            build_server(),
            TransportConfig(
                auth_issuer="https://as.example",
                auth_resource="https://mcp.example/mcp",
                auth_introspection_url="https://as.example/introspect",
                auth_client_id="rs",
                auth_client_secret_file="/nonexistent/secret",
            ),
        )


def test_the_command_line_has_the_auth_flags() -> None:
    from trio_mcp_http.serving.cli import build_parser

    args = build_parser().parse_args(
        [
            "serve",
            "--auth-issuer",
            "https://as.example",
            "--auth-resource",
            "https://mcp.example/mcp",
            "--auth-required-scopes",
            "files:read files:write",
        ]
    )
    assert args.auth_issuer == "https://as.example"
    assert args.auth_required_scopes == "files:read files:write"
    assert args.auth_jwks_url is None
    assert not hasattr(args, "auth_verifier")


async def test_a_custom_verifier_and_its_failures(logs: LogWatch) -> None:
    class Verifier:
        def __init__(self) -> None:
            self.mode = "ok"

        async def verify(self, token: str) -> Principal:
            if self.mode == "crash":
                raise RuntimeError(f"boom with {token}")
            if self.mode == "hang":
                await trio.sleep_forever()
            if self.mode == "wrong":
                return "not a principal"  # type: ignore[return-value]
            return Principal(subject=f"user-{token[:3]}", scopes=frozenset({"files:read"}))

    verifier = Verifier()
    async with serving_with_auth(auth_verifier=verifier) as s:
        session = await s.open_session("abcdef")
        answer = await s.call("abcdef", session, "whoami")
        assert structured(answer)["subject"] == "user-abc"
        assert s.app._auth is not None
        s.app._auth.timeout = 0.2
        for mode in ("crash", "hang", "wrong"):
            verifier.mode = mode
            response = await s.post(initialize(), "secret-token-value")
            assert response.status_code == 503, mode
    assert all("secret-token-value" not in r.getMessage() for r in logs.records)
    assert any(r.levelno == logging.ERROR and "RuntimeError" in r.getMessage() for r in logs.records)


async def test_over_http2_prior_knowledge() -> None:
    """The same refusals and answers on an h2c connection (RFC 9113 §3.3)."""
    async with serving_with_auth() as s, httpx.AsyncClient(http1=False, http2=True, timeout=10) as h2:
        refused = await h2.post(s.url, content=json.dumps(initialize()).encode(), headers=POST_HEADERS)
        assert refused.http_version == "HTTP/2"
        assert refused.status_code == 401
        assert "resource_metadata" in challenge(refused)
        token = s.token()
        opened = await h2.post(
            s.url,
            content=json.dumps(initialize()).encode(),
            headers={**POST_HEADERS, "authorization": f"Bearer {token}"},
        )
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]
        hijack = await h2.delete(
            s.url, headers={"authorization": f"Bearer {s.token('bob')}", "mcp-session-id": session}
        )
        assert hijack.status_code == 404
        assert s.app.statistics()["sessions"] == 1
