"""Token verifiers: from an access token to a :class:`Principal`, or a refusal.

* :class:`JwtVerifier`: a JWT access token (RFC 9068) checked against the
  authorization server's published keys;
* :class:`IntrospectionVerifier`: any token, opaque ones included, asked about at the
  authorization server's introspection endpoint (RFC 7662);
* :class:`TokenVerifier`: the protocol either satisfies, for anything else.

A verifier raises :class:`InvalidToken` for a token it refuses (the client gets 401)
and :class:`AuthUnavailable` when it cannot decide now (503 with ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
from joserfc import jwt
from joserfc.errors import JoseError

from ..protocol.auth import (
    ALLOWED_ALGORITHMS,
    AuthUnavailable,
    InvalidToken,
    Principal,
    TokenVerifier,
    check_algorithm,
    check_claims,
    check_introspection,
    jws_header,
)
from .fetch import HttpClient, fetch_json
from .jwks import JwksCache

__all__ = ["IntrospectionVerifier", "JwtVerifier", "TokenVerifier", "authorization_server_metadata_urls"]


def authorization_server_metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be (RFC 8414 §3.1, then OpenID Connect Discovery
    1.0 §4), in the order MCP 2025-11-25 (Authorization, Authorization Server Metadata
    Discovery) tries them."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if not path:
        return [
            f"{origin}/.well-known/oauth-authorization-server",
            f"{origin}/.well-known/openid-configuration",
        ]
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


class JwtVerifier:
    """JWT access tokens signed by ``issuer``'s keys, for ``audience`` (this server's
    canonical resource URI).

    The key set comes from ``jwks_url``, or, without one, from the ``jwks_uri`` of the
    issuer's metadata (RFC 8414), read on first use.  Only asymmetric algorithms of
    ``algorithms`` are accepted: ``alg: none`` and HMAC are refused before any key is
    looked at, whatever the list says.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        algorithms: Iterable[str] = ALLOWED_ALGORITHMS,
        leeway: float = 60.0,
        jwks_ttl: float = 300.0,
        min_refetch_interval: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = frozenset(algorithms) & ALLOWED_ALGORITHMS
        if not self.algorithms:
            raise ValueError("no accepted JWS algorithm: the allow-list names only symmetric or none")
        self.leeway = leeway
        self.timeout = timeout
        self._http = HttpClient(http)
        self._jwks_url = jwks_url
        self._cache_settings = {
            "ttl": jwks_ttl,
            "min_refetch_interval": min_refetch_interval,
            "timeout": timeout,
        }
        self._jwks: JwksCache | None = None
        self._discovery = trio.Lock()

    async def aclose(self) -> None:
        """Close the HTTP client this verifier made (a given one stays open)."""
        await self._http.aclose()

    async def verify(self, token: str) -> Principal:
        header = jws_header(token)
        if header is None:
            raise InvalidToken("not a signed JWT")
        alg = check_algorithm(header, self.algorithms)
        if "crit" in header:
            raise InvalidToken("token uses a critical header extension this server does not know")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("token key id (kid) is not a string")
        key = await (await self._keys()).key_for(kid)
        try:
            # Only the header's algorithm, already on the allow-list, may verify it.
            decoded = jwt.decode(token, key, algorithms=[alg])
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken("token signature does not verify") from exc
        return check_claims(
            decoded.claims, issuer=self.issuer, audience=self.audience, now=time.time(), leeway=self.leeway
        )

    async def _keys(self) -> JwksCache:
        if self._jwks is None:
            async with self._discovery:
                if self._jwks is None:
                    url = self._jwks_url or await self._discover()
                    self._jwks = JwksCache(url, self._http, **self._cache_settings)
        return self._jwks

    async def _discover(self) -> str:
        """The ``jwks_uri`` of the issuer's metadata, whose ``issuer`` must be the one
        configured (RFC 8414 §3.3)."""
        failure: AuthUnavailable | None = None
        for url in authorization_server_metadata_urls(self.issuer):
            client = self._http.get()
            try:
                document = await fetch_json(
                    client,
                    client.build_request("GET", url),
                    what="authorization server metadata",
                    seconds=self.timeout,
                )
            except AuthUnavailable as exc:
                failure = exc
                continue
            if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                raise AuthUnavailable(f"authorization server metadata at {url} is not for {self.issuer}")
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("http", "https"):
                raise AuthUnavailable(f"authorization server metadata at {url} names no jwks_uri")
            return jwks_uri
        assert failure is not None
        raise failure


class IntrospectionVerifier:
    """Tokens of any form, asked about at an RFC 7662 introspection endpoint.

    The endpoint is called with client credentials (HTTP Basic, RFC 7662 §2.1) when
    ``client_id`` is given.  Active answers are remembered for ``cache_ttl`` seconds
    (never past the token's expiry) under the token's SHA-256, at most ``cache_size``
    of them, so a client's every request does not cost a round trip.
    """

    def __init__(
        self,
        url: str,
        audience: str,
        *,
        issuer: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        leeway: float = 60.0,
        timeout: float = 5.0,
        cache_ttl: float = 60.0,
        cache_size: int = 1024,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self._http = HttpClient(http)
        self._auth = httpx.BasicAuth(client_id, client_secret or "") if client_id is not None else None
        self._cache: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        #: Calls made to the endpoint: for tests and monitoring.
        self.calls = 0

    async def aclose(self) -> None:
        """Close the HTTP client this verifier made (a given one stays open)."""
        await self._http.aclose()

    async def verify(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        now = trio.current_time()
        if cached is not None:
            until, principal = cached
            if now < until and (principal.expires_at is None or time.time() <= principal.expires_at):
                self._cache.move_to_end(digest)
                return principal
            del self._cache[digest]
        principal = check_introspection(
            await self._introspect(token),
            issuer=self.issuer,
            audience=self.audience,
            now=time.time(),
            leeway=self.leeway,
        )
        until = now + self.cache_ttl
        if principal.expires_at is not None:
            until = min(until, now + max(0.0, principal.expires_at - time.time()))
        self._cache[digest] = (until, principal)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _introspect(self, token: str) -> dict[str, Any]:
        self.calls += 1
        client = self._http.get()
        request = client.build_request(
            "POST",
            self.url,
            data={"token": token, "token_type_hint": "access_token"},
            headers={"accept": "application/json"},
        )
        if self._auth is not None:
            request = next(self._auth.auth_flow(request))
        answer = await fetch_json(client, request, what="token introspection", seconds=self.timeout)
        if not isinstance(answer, dict):
            raise AuthUnavailable("token introspection answered with something other than an object")
        return answer
