"""A small, real OAuth 2.1 authorization server for the tests, on 127.0.0.1 port 0.

Signing, keys and the JWKS come from joserfc (the JOSE library of the Authlib
project); the HTTP side is a Starlette app under Hypercorn.  It serves:

* RFC 8414 metadata at ``/.well-known/oauth-authorization-server``;
* its public keys at ``/jwks`` (RFC 7517);
* a token endpoint for the client-credentials grant (RFC 6749 §4.4), client secrets by
  HTTP Basic or in the form, with RFC 8707 ``resource`` becoming the token's audience;
  a client registered as ``opaque`` gets an opaque token instead of a JWT;
* RFC 7662 introspection at ``/introspect`` (for a client registered as a resource
  server);
* for a client acting for a user (:attr:`TestAuthorizationServer.user`, who approves
  at once): an authorization endpoint that redirects with a code (OAuth 2.1 §4.1, PKCE
  ``S256`` required, RFC 9207 ``iss`` in the redirect), the authorization code and
  refresh token grants, and RFC 7591 dynamic client registration at ``/register``.

Tests also mint tokens directly with :meth:`TestAuthorizationServer.mint` (a JWT of
their choosing, signed with the server's key), and switch the server off
(:attr:`down`) to see what happens when it cannot be reached.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from helpers import hypercorn_serving
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["Registered", "TestAuthorizationServer", "authorization_server"]


@dataclass
class Registered:
    """A client of the authorization server."""

    secret: str
    #: The ``sub`` of its tokens (client credentials: the client acts for itself).
    subject: str
    #: Scopes it may be granted.
    scopes: tuple[str, ...] = ()
    #: Gets opaque tokens (checked by introspection) instead of JWTs.
    opaque: bool = False
    #: May call the introspection endpoint (a resource server).
    introspects: bool = False
    #: Where its authorization responses may be sent (authorization code grant).
    redirect_uris: tuple[str, ...] = ()


class TestAuthorizationServer:
    """See the module docstring."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, clients: dict[str, Registered]) -> None:
        self.clients = clients
        self.key = ECKey.generate_key("P-256", parameters={"kid": "key-1", "use": "sig", "alg": "ES256"})
        self.retired: list[ECKey] = []
        self.issuer = ""
        self.opaque_tokens: dict[str, dict[str, Any]] = {}
        #: When set, every endpoint answers 503 (the server is "down").
        self.down = False
        self.requests: dict[str, int] = {}
        #: The user who approves every authorization request, and what was asked.
        self.user = "ada"
        self.authorizations: list[dict[str, str]] = []
        #: The grant of each token request answered with a token, in order.
        self.grants: list[str] = []
        #: Lifetime (seconds) of the tokens of the user grants.
        self.token_lifetime = 300
        self._codes: dict[str, dict[str, str]] = {}
        self._refresh_tokens: dict[str, dict[str, str]] = {}
        self.app = Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self._metadata),
                Route("/jwks", self._jwks),
                Route("/token", self._token, methods=["POST"]),
                Route("/introspect", self._introspect, methods=["POST"]),
                Route("/authorize", self._authorize),
                Route("/register", self._register, methods=["POST"]),
            ]
        )

    # -- tokens -----------------------------------------------------------------------

    def mint(
        self,
        subject: str = "alice",
        scopes: str = "",
        *,
        audience: str | list[str] | None,
        lifetime: float = 300,
        issuer: str | None = None,
        key: ECKey | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A JWT access token signed with the server's key (or ``key``)."""
        signer = key or self.key
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "iat": now,
            "exp": now + int(lifetime),
            "jti": secrets.token_hex(8),
            "client_id": subject,
        }
        if audience is not None:
            body["aud"] = audience
        if scopes:
            body["scope"] = scopes
        body.update(claims)
        protected = {"alg": "ES256", "kid": signer.kid, "typ": "at+jwt", **(header or {})}
        return jwt.encode(protected, body, signer)

    def rotate(self) -> None:
        """A new signing key; the old one leaves the key set."""
        self.retired.append(self.key)
        self.key = ECKey.generate_key(
            "P-256", parameters={"kid": f"key-{len(self.retired) + 1}", "use": "sig", "alg": "ES256"}
        )

    # -- endpoints --------------------------------------------------------------------

    def _count(self, name: str) -> Response | None:
        self.requests[name] = self.requests.get(name, 0) + 1
        if self.down:
            return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
        return None

    async def _metadata(self, request: Request) -> Response:
        return self._count("metadata") or JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "introspection_endpoint": f"{self.issuer}/introspect",
                "registration_endpoint": f"{self.issuer}/register",
                "authorization_response_iss_parameter_supported": True,
                "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        return self._count("jwks") or JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def _authorize(self, request: Request) -> Response:
        """The user approves at once: a redirect with a code (OAuth 2.1 §4.1.2), for a
        registered client, a registered redirect URI and an S256 challenge only."""
        query = dict(request.query_params)
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if query.get("response_type") != "code" or client is None or redirect_uri not in client.redirect_uris:
            return JSONResponse({"error": "unsupported_response_type"}, status_code=400)
        self._count("authorize")
        self.authorizations.append(query)
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return self._redirect(redirect_uri, error="invalid_request", state=query.get("state"))
        code = secrets.token_urlsafe(16)
        self._codes[code] = query
        return self._redirect(redirect_uri, code=code, state=query.get("state"))

    def _redirect(self, redirect_uri: str, **params: str | None) -> Response:
        values = {k: v for k, v in params.items() if v is not None}
        values["iss"] = self.issuer
        return Response(status_code=302, headers={"location": f"{redirect_uri}?{urlencode(values)}"})

    async def _register(self, request: Request) -> Response:
        """RFC 7591 §3: any client may register; a public one (``none``) gets no secret."""
        self._count("register")
        metadata = await request.json()
        method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
        client_id = f"client-{len(self.clients) + 1}"
        secret = "" if method == "none" else secrets.token_urlsafe(16)
        self.clients[client_id] = Registered(
            secret, client_id, redirect_uris=tuple(metadata.get("redirect_uris") or ())
        )
        answer = {**metadata, "client_id": client_id, "token_endpoint_auth_method": method}
        if secret:
            answer["client_secret"] = secret
        return JSONResponse(answer, status_code=201)

    def _user_grant(self, client_id: str, form: dict[str, str]) -> Response:
        """The authorization code grant (PKCE checked) and the refresh token grant: a
        token for :attr:`user` with the scopes approved, and a refresh token."""
        if form["grant_type"] == "authorization_code":
            asked = self._codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if (
                asked is None
                or asked["client_id"] != client_id
                or asked["redirect_uri"] != form.get("redirect_uri")
                or asked["code_challenge"] != challenge
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            grant = {"scope": asked.get("scope", ""), "resource": asked.get("resource", "")}
        else:
            grant_or_none = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
            if grant_or_none is None or grant_or_none["client_id"] != client_id:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            grant = grant_or_none
        if form.get("resource", grant["resource"]) != grant["resource"]:
            return JSONResponse({"error": "invalid_target"}, status_code=400)
        refresh = secrets.token_urlsafe(24)
        self._refresh_tokens[refresh] = {**grant, "client_id": client_id}
        self.grants.append(form["grant_type"])
        token = self.mint(
            self.user,
            grant["scope"],
            audience=grant["resource"],
            lifetime=self.token_lifetime,
            client_id=client_id,
        )
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "refresh_token": refresh,
                "scope": grant["scope"],
            },
            headers={"cache-control": "no-store"},
        )

    def _client(self, request: Request, form: dict[str, str]) -> tuple[str, Registered] | None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        client = self.clients.get(client_id or "")
        if client is None or client_id is None or not secrets.compare_digest(client.secret, secret or ""):
            return None
        return client_id, client

    async def _token(self, request: Request) -> Response:
        refused = self._count("token")
        if refused is not None:
            return refused
        form = {k: str(v) for k, v in (await request.form()).items()}
        found = self._client(request, form)
        if found is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        client_id, client = found
        if form.get("grant_type") in ("authorization_code", "refresh_token"):
            return self._user_grant(client_id, form)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        asked = form.get("scope", "").split() or list(client.scopes)
        if not set(asked) <= set(client.scopes):
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        resource = form.get("resource")
        scope = " ".join(asked)
        self.grants.append("client_credentials")
        if client.opaque:
            token = secrets.token_urlsafe(32)
            self.opaque_tokens[token] = {
                "sub": client.subject,
                "client_id": client_id,
                "scope": scope,
                "aud": resource,
                "iss": self.issuer,
                "exp": int(time.time()) + 300,
            }
        else:
            token = self.mint(client.subject, scope, audience=resource, client_id=client_id)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": scope},
            headers={"cache-control": "no-store"},
        )

    async def _introspect(self, request: Request) -> Response:
        refused = self._count("introspect")
        if refused is not None:
            return refused
        form = {k: str(v) for k, v in (await request.form()).items()}
        found = self._client(request, form)
        if found is None or not found[1].introspects:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        claims = self.opaque_tokens.get(form.get("token", ""))
        if claims is None or claims["exp"] < time.time():
            return JSONResponse({"active": False})
        return JSONResponse({"active": True, "token_type": "Bearer", **claims})


@asynccontextmanager
async def authorization_server(clients: dict[str, Registered]) -> AsyncIterator[TestAuthorizationServer]:
    """The server, listening on 127.0.0.1 port 0, for the duration of the block."""
    server = TestAuthorizationServer(clients)
    async with hypercorn_serving(server.app) as port:
        server.issuer = f"http://127.0.0.1:{port}"
        yield server
