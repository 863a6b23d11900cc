"""The sans-IO rules of the resource server (trio_mcp_http.protocol.auth), and the key
set's refetch policy timed on trio's mock clock.

The key set is served in process by an ``httpx.MockTransport`` (no sockets, so the
clock can jump when everything waits); the keys and tokens are real (joserfc).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from trio_mcp_http import ConfigError
from trio_mcp_http.auth import AuthUnavailable, InvalidToken, JwtVerifier, Principal
from trio_mcp_http.protocol import auth

RESOURCE = "https://mcp.example.com/mcp"
ISSUER = "https://as.example.com"


def test_bearer_token_reads_the_header_only() -> None:
    assert auth.bearer_token(None) is None
    assert auth.bearer_token("Basic eDp5") is None
    assert auth.bearer_token("bearer abc.DEF-_~+/==") == "abc.DEF-_~+/=="
    assert auth.bearer_token("Bearer   tok  ") == "tok"
    for bad in ("Bearer", "Bearer a b", "Bearer a=b", 'Bearer "x"', "Bearer " + "a" * (16 * 1024 + 1)):
        with pytest.raises(InvalidToken):
            auth.bearer_token(bad)


def test_the_challenge_quotes_its_values() -> None:
    header = auth.www_authenticate(
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        error="invalid_token",
        description='bad "token"\\ \n here',
        scopes=("a", "b"),
    )
    assert header == (
        b'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", '
        b'scope="a b", error="invalid_token", error_description="bad \\"token\\"\\\\  here"'
    )


def test_metadata_urls_and_paths() -> None:
    assert auth.metadata_url(RESOURCE) == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    assert auth.metadata_url("https://mcp.example.com/") == (
        "https://mcp.example.com/.well-known/oauth-protected-resource"
    )
    assert auth.metadata_paths(RESOURCE, "/mcp") == {
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    }
    # Behind a proxy the public path may differ from the endpoint's own.
    assert auth.metadata_paths("https://h.example/tools/mcp", "/mcp") == {
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/tools/mcp",
        "/.well-known/oauth-protected-resource/mcp",
    }
    for bad in ("/mcp", "ftp://h/x", "https://h/x#frag", 5):
        with pytest.raises(ConfigError):
            auth.check_resource_uri(bad)


def _claims(**extra: Any) -> dict[str, Any]:
    now = time.time()
    return {"iss": ISSUER, "sub": "alice", "aud": RESOURCE, "exp": now + 60, "scope": "a b", **extra}


def test_claim_checks() -> None:
    now = time.time()
    principal = auth.check_claims(_claims(client_id="app"), issuer=ISSUER, audience=RESOURCE, now=now)
    assert principal == Principal("alice", frozenset({"a", "b"}), ISSUER, "app", principal.expires_at)
    assert principal.owner == (ISSUER, "alice")
    # An audience list, a trailing slash, scp as a list: accepted.
    listed = _claims(aud=["other", RESOURCE + "/"], scope=None, scp=["x"])
    del listed["scope"]
    assert auth.check_claims(listed, issuer=ISSUER, audience=RESOURCE, now=now).scopes == {"x"}
    # Within the leeway: accepted; beyond it: refused.
    assert auth.check_claims(_claims(exp=now - 30), issuer=ISSUER, audience=RESOURCE, now=now, leeway=60)
    refused = [
        _claims(exp=now - 61),
        _claims(nbf=now + 61),
        _claims(exp="soon"),
        _claims(exp=True),
        _claims(iss="https://evil.example"),
        _claims(aud="https://mcp.example.com/other"),
        _claims(aud=None),
        {k: v for k, v in _claims().items() if k != "exp"},
        {k: v for k, v in _claims().items() if k != "sub"},
    ]
    for claims in refused:
        with pytest.raises(InvalidToken):
            auth.check_claims(claims, issuer=ISSUER, audience=RESOURCE, now=now, leeway=60)


def test_introspection_checks() -> None:
    now = time.time()
    answer = {"active": True, "sub": "carol", "aud": RESOURCE, "scope": "r", "client_id": "c"}
    principal = auth.check_introspection(answer, issuer=ISSUER, audience=RESOURCE, now=now)
    assert (principal.subject, principal.scopes, principal.issuer) == ("carol", {"r"}, ISSUER)
    for bad in (
        {**answer, "active": False},
        {**answer, "active": "true"},
        {**answer, "aud": "https://elsewhere.example"},
        {k: v for k, v in answer.items() if k != "aud"},
        {**answer, "exp": now - 3600},
        {**answer, "iss": "https://evil.example"},
    ):
        with pytest.raises(InvalidToken):
            auth.check_introspection(bad, issuer=ISSUER, audience=RESOURCE, now=now)


def test_algorithms_and_headers() -> None:
    for alg in ("none", "HS256", "HS512", None, "RS1"):
        with pytest.raises(InvalidToken):
            auth.check_algorithm({"alg": alg})
    assert auth.check_algorithm({"alg": "ES256"}) == "ES256"
    assert auth.jws_header("opaque-token") is None
    assert auth.jws_header("a.b.c.d.e") is None
    assert auth.jws_header("!!!.e30.") is None
    with pytest.raises(ValueError, match="no accepted"):
        JwtVerifier(ISSUER, RESOURCE, algorithms=["HS256", "none"])


def test_scopes_and_principals() -> None:
    assert auth.scope_list("a  b a", "x") == ("a", "b")
    assert auth.scope_list(["c"], "x") == ("c",)
    with pytest.raises(ConfigError):
        auth.scope_list(["a b"], "x")
    with pytest.raises(ConfigError):
        Principal("")
    assert Principal("s", {"a"}).scopes == frozenset({"a"})  # type: ignore[arg-type]
    assert auth.missing_scopes(("a", "b", "c"), Principal("s", frozenset({"b"}))) == ("a", "c")
    refusal = auth.forbidden("https://m/.well-known/oauth-protected-resource", ("a", "b"), ("b",))
    assert refusal.status_hint == 403
    assert dict(refusal.headers)[b"www-authenticate"].startswith(b'Bearer resource_metadata="https://m/')


class KeyServer:
    """A JWKS endpoint in process, counting its fetches, that can be "down"."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.fetches = 0
        self.down = False
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.down:
            return httpx.Response(503)
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        return httpx.Response(200, json=KeySet([self.key]).as_dict(private=False))

    def token(self, kid: str | None = None) -> str:
        key = self.key if kid is None else ECKey.generate_key("P-256", parameters={"kid": kid})
        return jwt.encode({"alg": "ES256", "kid": key.kid}, _claims(), key)


async def test_key_set_refetch_policy(autojump_clock: trio.testing.MockClock) -> None:
    keys = KeyServer()
    verifier = JwtVerifier(ISSUER, RESOURCE, http=keys.client, min_refetch_interval=30, jwks_ttl=300)
    assert (await verifier.verify(keys.token())).subject == "alice"
    assert keys.fetches == 2  # the issuer's metadata, then its key set
    # An unknown key id right after a fetch: refused, nothing fetched.
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(keys.token("rotated"))
    assert keys.fetches == 2
    # Rotated, and 30 s later: one refetch finds the new key.
    keys.key = ECKey.generate_key("P-256", parameters={"kid": "rotated"})
    await trio.sleep(30)
    assert (await verifier.verify(keys.token())).subject == "alice"
    assert keys.fetches == 3
    # Past the set's lifetime, with the server down: the known keys go on serving...
    await trio.sleep(300)
    keys.down = True
    assert (await verifier.verify(keys.token())).subject == "alice"
    assert keys.fetches == 4
    # ... and an unknown key id then cannot be told apart from a new key: 503, not 401.
    await trio.sleep(30)
    with pytest.raises(AuthUnavailable):
        await verifier.verify(keys.token("newer"))
    await keys.client.aclose()


async def test_concurrent_first_requests_fetch_once(autojump_clock: trio.testing.MockClock) -> None:
    keys = KeyServer()
    verifier = JwtVerifier(ISSUER, RESOURCE, http=keys.client, jwks_url=f"{ISSUER}/jwks")
    subjects: list[str] = []

    async def verify() -> None:
        subjects.append((await verifier.verify(keys.token())).subject)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(verify)
    assert subjects == ["alice"] * 10
    assert keys.fetches == 1
    await keys.client.aclose()


async def test_a_key_set_that_is_not_one(autojump_clock: trio.testing.MockClock) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}, {"kty": "nope"}]}
        if request.url.path == "/notjson":
            return httpx.Response(200, content=b"<html>")
        if request.url.path == "/huge":
            return httpx.Response(200, content=json.dumps({"keys": [], "pad": "x" * 300_000}).encode())
        return httpx.Response(200, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        token = jwt.encode({"alg": "ES256", "kid": "k1"}, _claims(), key)
        # Symmetric and unknown keys are skipped: the token's key id is unknown.
        only_bad = JwtVerifier(ISSUER, RESOURCE, http=client, jwks_url=f"{ISSUER}/jwks")
        with pytest.raises(InvalidToken):
            await only_bad.verify(token)
        for path in ("/notjson", "/huge"):
            verifier = JwtVerifier(ISSUER, RESOURCE, http=client, jwks_url=f"{ISSUER}{path}")
            with pytest.raises(AuthUnavailable):
                await verifier.verify(token)
