"""OAuth 2.1 for the client (MCP 2025-11-25 and 2026-07-28, Authorization).

::

    auth = OAuthClient(redirect_uri="http://127.0.0.1:8765/callback", redirect=open_browser_and_wait)
    async with open_mcp_client(url, auth=auth) as client:
        ...

A server that wants a token answers 401.  The transport (``transport.py``) then asks
the :class:`ClientAuth` given as ``auth=`` for one and sends the request again:

1. discovery: the Protected Resource Metadata named by the challenge's
   ``resource_metadata`` (RFC 9728 §5.1), else at the well-known URIs derived from the
   server's URL, path-suffixed first (RFC 9728 §3.1); its ``resource`` must identify
   this server (RFC 9728 §3.3).  Then the first authorization server's metadata (RFC
   8414, else OpenID Connect Discovery), whose ``issuer`` must be the one asked about
   (RFC 8414 §3.3);
2. the client's identity at that server: pre-registered credentials, else a Client ID
   Metadata Document URL where the server supports them, else Dynamic Client
   Registration (RFC 7591).  Registrations are kept per issuer, never reused at another;
3. a token: the authorization code grant with PKCE ``S256`` (RFC 7636) through a
   redirect step the application supplies (:class:`OAuthClient`), or the
   client-credentials grant (:class:`ClientCredentials`), always naming the resource
   (RFC 8707).  The authorization response's ``state`` and ``iss`` are checked (RFC
   6749 §10.12, RFC 9207 §2.4).

A token that expires is refreshed before use; a 401 for a token refreshes it or starts
over (the resource may have moved to another authorization server); a 403
``insufficient_scope`` re-authorizes with the scopes held plus those the challenge
names (MCP 2025-11-25, Authorization, Scope Challenge Handling), a bounded number of
times.  Tokens live in a :class:`TokenStorage` (:class:`MemoryTokenStorage` by default).
Nothing here logs a token, a code, a verifier or a secret.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import httpx
import trio

from ..protocol.auth import (
    authorization_server_metadata_urls,
    bearer_challenge,
    pkce_challenge,
    resource_covers,
    resource_metadata_urls,
)
from ..protocol.errors import ConfigError, McpHttpError, UsageError
from .errors import TransportError
from .transport import _Body

__all__ = [
    "AuthorizationError",
    "AuthorizationResponse",
    "ClientCredentials",
    "ClientInfo",
    "MemoryTokenStorage",
    "OAuthClient",
    "RedirectHandler",
    "TokenStorage",
    "Tokens",
]

logger = logging.getLogger("trio_mcp_http.client.auth")

#: Largest metadata, registration or token response read.
MAX_RESPONSE_SIZE = 256 * 1024
#: A token this close to its expiry (seconds) is refreshed before it is sent.
EXPIRY_MARGIN = 30.0
#: Times one request is sent again after a 401/403 (a new token each time).
MAX_RETRIES = 3
#: Of those, re-authorizations for more scope (403 ``insufficient_scope``).
MAX_STEP_UPS = 2

_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


class AuthorizationError(McpHttpError, PermissionError):
    """No token could be had, or the server refused the one obtained: discovery found no
    usable metadata, the authorization server refused (``error`` is its OAuth error
    code), the authorization response failed a check, or a scope challenge cannot be
    met.  The underlying exception, if any, is the ``__cause__``."""

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


@dataclass(frozen=True)
class Tokens:
    """What a token endpoint granted.  ``expires_at`` is a ``time.time()`` instant;
    ``issuer`` the authorization server that issued them.  The secrets stay out of
    ``repr``."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    expires_at: float | None = None
    refresh_token: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    issuer: str | None = None

    def expired(self, now: float, margin: float = EXPIRY_MARGIN) -> bool:
        return self.expires_at is not None and now + margin >= self.expires_at


@dataclass(frozen=True)
class ClientInfo:
    """The client's identity at one authorization server (RFC 7591 §3.2.1)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    token_endpoint_auth_method: str = "none"


@runtime_checkable
class TokenStorage(Protocol):
    """Where tokens (by the MCP server's URL) and client registrations (by issuer) are
    kept; implement it to keep them across runs (in a keyring, say)."""

    async def get_tokens(self, server_url: str) -> Tokens | None: ...

    async def set_tokens(self, server_url: str, tokens: Tokens | None) -> None: ...

    async def get_client(self, issuer: str) -> ClientInfo | None: ...

    async def set_client(self, issuer: str, client: ClientInfo) -> None: ...


class MemoryTokenStorage:
    """A :class:`TokenStorage` in memory, for the life of the process."""

    def __init__(self) -> None:
        self.tokens: dict[str, Tokens] = {}
        self.clients: dict[str, ClientInfo] = {}

    async def get_tokens(self, server_url: str) -> Tokens | None:
        return self.tokens.get(server_url)

    async def set_tokens(self, server_url: str, tokens: Tokens | None) -> None:
        if tokens is None:
            self.tokens.pop(server_url, None)
        else:
            self.tokens[server_url] = tokens

    async def get_client(self, issuer: str) -> ClientInfo | None:
        return self.clients.get(issuer)

    async def set_client(self, issuer: str, client: ClientInfo) -> None:
        self.clients[issuer] = client


@dataclass(frozen=True)
class AuthorizationResponse:
    """What the authorization server's redirect carried (RFC 6749 §4.1.2, RFC 9207 §2)."""

    code: str = field(repr=False)
    state: str | None = None
    iss: str | None = None

    @classmethod
    def from_redirect(cls, url: str) -> AuthorizationResponse:
        """Read the redirect URL the browser was sent to; an ``error`` there (RFC 6749
        §4.1.2.1) raises :class:`AuthorizationError`."""
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        if "error" in query:
            description = query.get("error_description")
            detail = f": {description}" if description else ""
            raise AuthorizationError(
                f"the authorization server refused: {query['error']}{detail}", error=query["error"]
            )
        code = query.get("code")
        if not code:
            raise AuthorizationError("the authorization redirect carries no code")
        return cls(code, query.get("state"), query.get("iss"))


#: The redirect step of :class:`OAuthClient`: given the authorization URL, have the
#: user's browser visit it and return where the authorization server redirected it (the
#: full URL, or an :class:`AuthorizationResponse`).
RedirectHandler = Callable[[str], Awaitable["AuthorizationResponse | str"]]


@dataclass(frozen=True)
class _Server:
    """What discovery learned: the resource (as its metadata publishes it), the
    authorization server and its metadata."""

    resource: str
    issuer: str
    metadata: dict[str, Any]
    resource_scopes: tuple[str, ...]


def _scopes(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(dict.fromkeys(value.split()))
    if isinstance(value, (list, tuple)):
        return tuple(dict.fromkeys(s for s in value if isinstance(s, str) and s and " " not in s))
    return ()


def _scope_option(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split() if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) and item and " " not in item for item in items):
        raise ConfigError(
            f"scopes must be a space-separated string or a list of scope strings, not {value!r}"
        )
    return tuple(dict.fromkeys(items))


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for group in groups for s in group))


def _http_url(value: Any, name: str) -> str:
    if (
        not isinstance(value, str)
        or urlsplit(value).scheme not in ("http", "https")
        or not urlsplit(value).netloc
    ):
        raise AuthorizationError(f"{name} is not an http(s) URL: {value!r}")
    return value


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _check_options(kind: str, unknown: Mapping[str, Any]) -> None:
    if unknown:
        raise UsageError(f"{kind}() got an unknown option {sorted(unknown)[0]!r}")


def _own_client() -> httpx.AsyncClient:
    """The HTTP client of one authorization flow: HTTP/1.1 (the MCP connection's h2c
    with prior knowledge, if chosen, is for the MCP server only), no redirects followed
    (RFC 9728 §3.2 and RFC 8414 §3.2 answer 200 or fail), bounded by the flow's own
    deadlines."""
    return httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(30.0))


class _OAuth:
    """What both grants share: discovery, the token endpoint, and the transport's hooks
    (:class:`~trio_mcp_http.client.transport.ClientAuth`)."""

    def __init__(
        self,
        *,
        scopes: str | Iterable[str] | None,
        storage: TokenStorage | None,
        timeout: float,
    ) -> None:
        self._scopes = _scope_option(scopes)
        if storage is not None and not isinstance(storage, TokenStorage):
            raise UsageError(f"storage must implement TokenStorage, not {type(storage).__name__}")
        self.storage: TokenStorage = storage if storage is not None else MemoryTokenStorage()
        if not (isinstance(timeout, (int, float)) and 0 < timeout < math.inf):
            raise ConfigError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._timeout = float(timeout)
        self._lock = trio.Lock()
        #: Per server URL: what discovery found last, and the scopes asked for so far.
        self._servers: dict[str, _Server] = {}
        self._requested: dict[str, tuple[str, ...]] = {}

    # -- the transport's hooks ---------------------------------------------------------

    async def authorization(self, http: httpx.AsyncClient, server_url: str) -> str | None:
        """The ``Authorization`` header for the next request to ``server_url``, if a
        token is held (refreshed first when it is about to expire).  The exchanges with
        metadata, registration and token endpoints use a client of their own, not the
        MCP connection's ``http``."""
        tokens = await self.storage.get_tokens(server_url)
        if tokens is not None and tokens.expired(time.time()):
            async with self._lock:
                tokens = await self.storage.get_tokens(server_url)
                if tokens is not None and tokens.expired(time.time()):
                    async with _own_client() as own:
                        tokens = await self._renew(own, server_url, tokens)
        return None if tokens is None else f"Bearer {tokens.access_token}"

    async def refused(
        self,
        http: httpx.AsyncClient,
        server_url: str,
        status: int,
        headers: Mapping[str, str],
        sent: str | None,
        attempt: int,
    ) -> bool:
        """The server answered 401 or 403: get a token that may do better and return
        ``True`` (the transport sends the request again), or ``False`` to let the answer
        stand (a 403 that is not about scope).  Raises :class:`AuthorizationError` when
        no better token can be had."""
        challenge = bearer_challenge(headers.get("www-authenticate")) or {}
        if status == 403 and challenge.get("error") != "insufficient_scope":
            return False
        async with self._lock:
            current = await self.storage.get_tokens(server_url)
            if current is not None and f"Bearer {current.access_token}" != sent and attempt < MAX_RETRIES:
                return True  # another request got a new token meanwhile: try that one
            if attempt >= MAX_RETRIES:
                raise AuthorizationError(
                    f"the server still answers {status} after {attempt} new tokens", status=status
                )
            async with _own_client() as own:
                if status == 403:
                    await self._step_up(own, server_url, challenge, current, attempt)
                else:
                    await self._unauthorized(own, server_url, challenge, current, attempt)
            return True

    async def _unauthorized(
        self,
        http: httpx.AsyncClient,
        server_url: str,
        challenge: Mapping[str, str],
        current: Tokens | None,
        attempt: int,
    ) -> None:
        if current is not None and attempt > 0:
            raise AuthorizationError(
                "the server refused the token just obtained (401)", error=challenge.get("error"), status=401
            )
        if current is not None and current.refresh_token is not None:
            try:
                await self._refresh(http, server_url, current)
                return
            except AuthorizationError as exc:
                logger.info("refreshing the token for %s failed (%s); authorizing anew", server_url, exc)
        await self.storage.set_tokens(server_url, None)
        await self._authorize(http, server_url, challenge, extra=())

    async def _step_up(
        self,
        http: httpx.AsyncClient,
        server_url: str,
        challenge: Mapping[str, str],
        current: Tokens | None,
        attempt: int,
    ) -> None:
        wanted = _scopes(challenge.get("scope"))
        held = current.scopes if current is not None else ()
        if not wanted or set(wanted) <= set(held):
            raise AuthorizationError(
                "the server refuses the token for insufficient scope"
                + (
                    f" ({' '.join(wanted)}), which it already grants"
                    if wanted
                    else " and names none to ask for"
                ),
                error="insufficient_scope",
                status=403,
            )
        if attempt >= MAX_STEP_UPS:
            raise AuthorizationError(
                f"the server still asks for more scope after {attempt} re-authorizations",
                error="insufficient_scope",
                status=403,
            )
        previous = _union(self._requested.get(server_url, ()), held)
        logger.info("re-authorizing for %s with more scope: %s", server_url, " ".join(wanted))
        await self._authorize(http, server_url, challenge, extra=previous)

    async def _renew(self, http: httpx.AsyncClient, server_url: str, tokens: Tokens) -> Tokens | None:
        """A fresh token in place of an expired one: refreshed, or (for a grant that needs
        no user) obtained anew; ``None`` leaves the request to its 401."""
        try:
            if tokens.refresh_token is not None:
                return await self._refresh(http, server_url, tokens)
            return await self._reobtain(http, server_url)
        except AuthorizationError as exc:
            logger.info("renewing the expired token for %s failed: %s", server_url, exc)
            await self.storage.set_tokens(server_url, None)
            return None

    async def _reobtain(self, http: httpx.AsyncClient, server_url: str) -> Tokens | None:
        return None

    async def _authorize(
        self, http: httpx.AsyncClient, server_url: str, challenge: Mapping[str, str], *, extra: Iterable[str]
    ) -> Tokens:
        server = await self._discover(http, server_url, challenge)
        scopes = self._choose_scopes(server, challenge, extra)
        self._requested[server_url] = scopes
        logger.info("authorizing with %s for %s", server.issuer, server.resource)
        tokens = await self._obtain(http, server, scopes)
        await self.storage.set_tokens(server_url, tokens)
        return tokens

    def _choose_scopes(
        self, server: _Server, challenge: Mapping[str, str], extra: Iterable[str]
    ) -> tuple[str, ...]:
        """MCP 2025-11-25, Authorization, Scope Selection Strategy: the scopes configured,
        else the challenge's ``scope``, else the resource's ``scopes_supported``, else
        none (the parameter is left out); on a step-up, with those held before."""
        if self._scopes is not None:
            base = _union(self._scopes, _scopes(challenge.get("scope")))
        else:
            base = _scopes(challenge.get("scope")) or server.resource_scopes
        return _union(extra, base)

    async def _obtain(self, http: httpx.AsyncClient, server: _Server, scopes: tuple[str, ...]) -> Tokens:
        raise NotImplementedError

    async def _client_for(self, http: httpx.AsyncClient, server: _Server) -> ClientInfo:
        raise NotImplementedError

    async def _refresh(self, http: httpx.AsyncClient, server_url: str, tokens: Tokens) -> Tokens:
        """The refresh token grant (OAuth 2.1 §4.3), at the server that issued it."""
        assert tokens.refresh_token is not None
        server = self._servers.get(server_url)
        if server is None or server.issuer != tokens.issuer:
            server = await self._discover(http, server_url, {})
        if server.issuer != tokens.issuer:
            raise AuthorizationError("the resource moved to another authorization server")
        client = await self._client_for(http, server)
        form = {
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "resource": server.resource,
        }
        fresh = await self._token_request(http, server, client, form, tokens.scopes)
        if fresh.refresh_token is None:  # OAuth 2.1 §4.3.3: the old one stays valid
            fresh = Tokens(
                fresh.access_token,
                fresh.token_type,
                fresh.expires_at,
                tokens.refresh_token,
                fresh.scopes,
                fresh.issuer,
            )
        await self.storage.set_tokens(server_url, fresh)
        return fresh

    # -- discovery ---------------------------------------------------------------------

    async def _discover(
        self, http: httpx.AsyncClient, server_url: str, challenge: Mapping[str, str]
    ) -> _Server:
        named = challenge.get("resource_metadata")
        urls = (
            [_http_url(named, "the challenge's resource_metadata")]
            if named
            else resource_metadata_urls(server_url)
        )
        document: dict[str, Any] | None = None
        for url in urls:
            document = await self._get_json(http, url)
            if document is not None:
                break
        if document is None:
            raise AuthorizationError(f"no Protected Resource Metadata (RFC 9728) at {', '.join(urls)}")
        resource = document.get("resource")
        if not isinstance(resource, str) or not resource_covers(resource, server_url):
            raise AuthorizationError(
                f"the Protected Resource Metadata names the resource {resource!r}, not {server_url} "
                "(RFC 9728 §3.3): refusing to authorize for it"
            )
        issuers = document.get("authorization_servers")
        if not isinstance(issuers, list) or not issuers:
            raise AuthorizationError("the Protected Resource Metadata names no authorization server")
        issuer = _http_url(issuers[0], "the authorization server")
        metadata = await self._server_metadata(http, issuer)
        server = _Server(resource, issuer, metadata, _scopes(document.get("scopes_supported")))
        self._servers[server_url] = server
        return server

    async def _server_metadata(self, http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
        urls = authorization_server_metadata_urls(issuer)
        for url in urls:
            metadata = await self._get_json(http, url)
            if metadata is None:
                continue
            if metadata.get("issuer") != issuer:
                raise AuthorizationError(
                    f"the metadata at {url} names the issuer {metadata.get('issuer')!r}, not {issuer!r} "
                    "(RFC 8414 §3.3): refusing to use it"
                )
            _http_url(metadata.get("token_endpoint"), "the token_endpoint")
            return metadata
        raise AuthorizationError(f"no authorization server metadata (RFC 8414) at {', '.join(urls)}")

    # -- HTTP --------------------------------------------------------------------------

    async def _send(
        self, http: httpx.AsyncClient, request: httpx.Request, what: str
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One bounded exchange with a metadata, registration or token endpoint."""
        try:
            with trio.fail_after(self._timeout):
                response = await http.send(request, stream=True)
                body = _Body(response)
                try:
                    content = await body.read_all(MAX_RESPONSE_SIZE)
                finally:
                    await body.close()
        except trio.TooSlowError as exc:
            raise AuthorizationError(f"{what} did not answer within {self._timeout:g}s") from exc
        except (httpx.HTTPError, TransportError) as exc:
            raise AuthorizationError(f"{what} failed: {exc or type(exc).__name__}") from exc
        return response.status_code, response.headers, content

    async def _get_json(self, http: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
        """A metadata document, or ``None`` when there is none at ``url`` (any error
        status, or not a JSON object): discovery goes on to the next place."""
        request = http.build_request("GET", url, headers={"accept": "application/json"})
        status, _headers, content = await self._send(http, request, f"GET {url}")
        if status != 200:
            logger.debug("no metadata at %s (HTTP %d)", url, status)
            return None
        try:
            document = json.loads(content)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    async def _post(
        self,
        http: httpx.AsyncClient,
        url: str,
        what: str,
        *,
        form: Mapping[str, str] | None = None,
        document: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        request = http.build_request(
            "POST", url, data=form, json=document, headers={"accept": "application/json", **(headers or {})}
        )
        status, _headers, content = await self._send(http, request, what)
        try:
            answer = json.loads(content) if content else {}
        except ValueError:
            answer = {}
        return status, answer if isinstance(answer, dict) else {}

    async def _token_request(
        self,
        http: httpx.AsyncClient,
        server: _Server,
        client: ClientInfo,
        form: dict[str, str],
        scopes: tuple[str, ...],
    ) -> Tokens:
        """POST to the token endpoint, the client authenticated as registered (RFC 6749
        §2.3.1), and read the answer (§5.1; an error per §5.2)."""
        headers: dict[str, str] = {}
        method = client.token_endpoint_auth_method
        if method == "client_secret_basic" and client.client_secret is not None:
            pair = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form["client_id"] = client.client_id
            if method == "client_secret_post" and client.client_secret is not None:
                form["client_secret"] = client.client_secret
        endpoint = server.metadata["token_endpoint"]
        status, answer = await self._post(http, endpoint, "the token request", form=form, headers=headers)
        if status != 200:
            error = answer.get("error") if isinstance(answer.get("error"), str) else None
            description = answer.get("error_description")
            detail = f": {description}" if isinstance(description, str) else ""
            raise AuthorizationError(
                f"the token endpoint refused ({status}, {error or 'no error code'}){detail}",
                error=error,
                status=status,
            )
        access = answer.get("access_token")
        token_type = answer.get("token_type")
        if not isinstance(access, str) or not access:
            raise AuthorizationError("the token endpoint's answer has no access_token")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise AuthorizationError(
                f"the token endpoint issued a {token_type!r} token; only Bearer is supported"
            )
        lifetime = answer.get("expires_in")
        expires_at = (
            time.time() + float(lifetime)
            if isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool)
            else None
        )
        refresh = answer.get("refresh_token")
        granted = _scopes(answer["scope"]) if isinstance(answer.get("scope"), str) else scopes
        return Tokens(
            access,
            "Bearer",
            expires_at,
            refresh if isinstance(refresh, str) and refresh else None,
            granted,
            server.issuer,
        )

    def _auth_method(self, server: _Server, secret: str | None, preferred: str | None) -> str:
        """How a client with ``secret`` authenticates at the token endpoint: as asked, or
        the first of basic, post (none without a secret) the server supports.  RFC 8414
        §2: an absent list means ``client_secret_basic``."""
        if preferred is not None:
            return preferred
        if secret is None:
            return "none"
        supported = server.metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        for method in ("client_secret_basic", "client_secret_post"):
            if method in supported:
                return method
        raise AuthorizationError(
            f"the authorization server supports none of client_secret_basic, client_secret_post ({supported})"
        )


def _check_method(value: str | None) -> str | None:
    if value is not None and value not in _AUTH_METHODS:
        raise ConfigError(
            f"token_endpoint_auth_method must be one of {', '.join(_AUTH_METHODS)}, not {value!r}"
        )
    return value


def _check_text(value: Any, name: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, not {value!r}")
    return value


class OAuthClient(_OAuth):
    """The authorization code grant with PKCE, for a client acting for a user.

    ``redirect_uri`` is where the authorization server sends the browser back;
    ``redirect`` is the async step that shows the user the authorization URL and
    returns where the browser was redirected (see :data:`RedirectHandler`).

    The client's identity: ``client_id`` (and ``client_secret``) registered in advance,
    used only at ``issuer`` when that is given; else ``client_metadata_url``, a Client ID
    Metadata Document's HTTPS URL, where the authorization server advertises
    ``client_id_metadata_document_supported``; else Dynamic Client Registration as
    ``client_name`` with ``application_type`` (``native`` by default for a loopback
    redirect, else ``web``).  ``scopes`` overrides the scopes discovery would choose;
    ``offline_access`` asks for a refresh token where the authorization server lists
    that scope.
    """

    def __init__(
        self,
        *,
        redirect_uri: str,
        redirect: RedirectHandler,
        client_id: str | None = None,
        client_secret: str | None = None,
        issuer: str | None = None,
        token_endpoint_auth_method: str | None = None,
        client_metadata_url: str | None = None,
        client_name: str = "trio-mcp-http",
        application_type: str | None = None,
        scopes: str | Iterable[str] | None = None,
        offline_access: bool = True,
        storage: TokenStorage | None = None,
        timeout: float = 30.0,
        **unknown: Any,
    ) -> None:
        _check_options("OAuthClient", unknown)
        super().__init__(scopes=scopes, storage=storage, timeout=timeout)
        parts = urlsplit(redirect_uri) if isinstance(redirect_uri, str) else None
        if parts is None or not parts.scheme or parts.fragment:
            raise ConfigError(
                f"redirect_uri must be an absolute URI without a fragment, not {redirect_uri!r}"
            )
        if not callable(redirect):
            raise UsageError("redirect must be an async function taking the authorization URL")
        self.redirect_uri = redirect_uri
        self._redirect = redirect
        self._client_id = _check_text(client_id, "client_id")
        self._client_secret = _check_text(client_secret, "client_secret")
        if self._client_secret is not None and self._client_id is None:
            raise ConfigError("client_secret needs a client_id")
        self._issuer = _check_text(issuer, "issuer")
        self._method = _check_method(token_endpoint_auth_method)
        if client_metadata_url is not None and (
            not isinstance(client_metadata_url, str)
            or urlsplit(client_metadata_url).scheme != "https"
            or urlsplit(client_metadata_url).path in ("", "/")
        ):
            raise ConfigError(
                f"client_metadata_url must be an https URL with a path, not {client_metadata_url!r}"
            )
        self._metadata_url = client_metadata_url
        self._client_name = _check_text(client_name, "client_name", optional=False)
        if application_type is None:
            loopback = parts.hostname in ("localhost", "127.0.0.1", "::1") or parts.scheme not in (
                "http",
                "https",
            )
            application_type = "native" if loopback else "web"
        if application_type not in ("native", "web"):
            raise ConfigError(f"application_type must be 'native' or 'web', not {application_type!r}")
        self._application_type = application_type
        self._offline = bool(offline_access)

    def _choose_scopes(
        self, server: _Server, challenge: Mapping[str, str], extra: Iterable[str]
    ) -> tuple[str, ...]:
        """SEP-2207 (MCP 2026-07-28, Authorization, Refresh Tokens): ``offline_access``
        is asked for only where the authorization server lists it."""
        scopes = super()._choose_scopes(server, challenge, extra)
        offered = server.metadata.get("scopes_supported")
        if self._offline and scopes and isinstance(offered, list) and "offline_access" in offered:
            scopes = _union(scopes, ["offline_access"])
        return scopes

    async def _client_for(self, http: httpx.AsyncClient, server: _Server) -> ClientInfo:
        if self._client_id is not None and self._issuer in (None, server.issuer):
            method = self._auth_method(server, self._client_secret, self._method)
            return ClientInfo(self._client_id, self._client_secret, method)
        stored = await self.storage.get_client(server.issuer)
        if stored is not None:
            return stored
        if (
            self._metadata_url is not None
            and server.metadata.get("client_id_metadata_document_supported") is True
        ):
            return ClientInfo(self._metadata_url, None, "none")
        endpoint = server.metadata.get("registration_endpoint")
        if not isinstance(endpoint, str):
            raise AuthorizationError(
                f"the authorization server {server.issuer} offers no dynamic client registration; "
                "give the client_id registered there"
            )
        client = await self._register(http, server, _http_url(endpoint, "the registration_endpoint"))
        await self.storage.set_client(server.issuer, client)
        return client

    async def _register(self, http: httpx.AsyncClient, server: _Server, endpoint: str) -> ClientInfo:
        """RFC 7591 §3.1, as a public client where the server allows it."""
        supported = server.metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        wanted = self._method or next(
            (m for m in ("none", *_AUTH_METHODS) if m in supported), "client_secret_basic"
        )
        metadata = {
            "client_name": self._client_name,
            "redirect_uris": [self.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": wanted,
            "application_type": self._application_type,
        }
        status, answer = await self._post(http, endpoint, "client registration", document=metadata)
        client_id = answer.get("client_id")
        if status not in (200, 201) or not isinstance(client_id, str) or not client_id:
            error = answer.get("error")
            raise AuthorizationError(
                f"client registration at {endpoint} failed (HTTP {status}, {error or 'no client_id'})",
                error=error if isinstance(error, str) else None,
                status=status,
            )
        secret = answer.get("client_secret") if isinstance(answer.get("client_secret"), str) else None
        method = answer.get("token_endpoint_auth_method")
        if method not in _AUTH_METHODS:
            method = wanted if wanted != "none" or secret is None else "client_secret_basic"
        if method != "none" and secret is None:
            raise AuthorizationError(f"the registration answer asks for {method} but gives no client_secret")
        logger.info("registered with %s", server.issuer)
        return ClientInfo(client_id, secret, str(method))

    async def _obtain(self, http: httpx.AsyncClient, server: _Server, scopes: tuple[str, ...]) -> Tokens:
        metadata = server.metadata
        endpoint = _http_url(metadata.get("authorization_endpoint"), "the authorization_endpoint")
        if "S256" not in (metadata.get("code_challenge_methods_supported") or ()):
            raise AuthorizationError(
                f"the authorization server {server.issuer} does not advertise PKCE S256 "
                "(MCP, Authorization, Authorization Code Protection): refusing to proceed"
            )
        client = await self._client_for(http, server)
        verifier = secrets.token_urlsafe(64)
        state = secrets.token_urlsafe(32)
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "resource": server.resource,
        }
        if scopes:
            params["scope"] = " ".join(scopes)
        answer = await self._redirect(_with_query(endpoint, params))
        response = self._read_redirect(answer)
        self._check_response(server, response, state)
        form = {
            "grant_type": "authorization_code",
            "code": response.code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
            "resource": server.resource,
        }
        return await self._token_request(http, server, client, form, scopes)

    def _read_redirect(self, answer: Any) -> AuthorizationResponse:
        if isinstance(answer, AuthorizationResponse):
            return answer
        if not isinstance(answer, str):
            raise UsageError(
                "the redirect step must return the redirect URL or an AuthorizationResponse, "
                f"not {type(answer).__name__}"
            )
        expected, got = urlsplit(self.redirect_uri), urlsplit(answer)
        if (got.scheme, got.netloc, got.path) != (expected.scheme, expected.netloc, expected.path):
            raise AuthorizationError(
                "the authorization server redirected somewhere other than the redirect_uri"
            )
        return AuthorizationResponse.from_redirect(answer)

    @staticmethod
    def _check_response(server: _Server, response: AuthorizationResponse, state: str) -> None:
        """RFC 6749 §10.12 (``state``) and RFC 9207 §2.4 (``iss``, compared as a plain
        string, required when the server says it sends one)."""
        if response.state is None or not secrets.compare_digest(response.state, state):
            raise AuthorizationError("the authorization response's state is not the one sent: refusing it")
        if response.iss is not None:
            if response.iss != server.metadata.get("issuer"):
                raise AuthorizationError(
                    f"the authorization response comes from issuer {response.iss!r}, not {server.issuer!r} "
                    "(RFC 9207): refusing it"
                )
        elif server.metadata.get("authorization_response_iss_parameter_supported") is True:
            raise AuthorizationError(
                "the authorization response has no iss although the server advertises it (RFC 9207): "
                "refusing it"
            )


class ClientCredentials(_OAuth):
    """The client-credentials grant (OAuth 2.1 §4.2), for a client acting for itself
    (a machine client, MCP extension ``io.modelcontextprotocol/oauth-client-credentials``):
    no user, no redirect.  The secret is sent as ``token_endpoint_auth_method`` says, or
    as the authorization server prefers (HTTP Basic first).  ``issuer``, when given, is
    the only authorization server the credentials are presented to."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        issuer: str | None = None,
        token_endpoint_auth_method: str | None = None,
        scopes: str | Iterable[str] | None = None,
        storage: TokenStorage | None = None,
        timeout: float = 30.0,
        **unknown: Any,
    ) -> None:
        _check_options("ClientCredentials", unknown)
        super().__init__(scopes=scopes, storage=storage, timeout=timeout)
        self._client_id = _check_text(client_id, "client_id", optional=False)
        self._client_secret = _check_text(client_secret, "client_secret", optional=False)
        self._issuer = _check_text(issuer, "issuer")
        method = _check_method(token_endpoint_auth_method)
        if method == "none":
            raise ConfigError("the client-credentials grant needs client authentication, not 'none'")
        self._method = method

    async def _client_for(self, http: httpx.AsyncClient, server: _Server) -> ClientInfo:
        if self._issuer is not None and server.issuer != self._issuer:
            raise AuthorizationError(
                f"the resource names the authorization server {server.issuer}, not {self._issuer}: "
                "the client's credentials are not presented there"
            )
        assert self._client_id is not None
        return ClientInfo(
            self._client_id, self._client_secret, self._auth_method(server, self._client_secret, self._method)
        )

    async def _obtain(self, http: httpx.AsyncClient, server: _Server, scopes: tuple[str, ...]) -> Tokens:
        client = await self._client_for(http, server)
        form = {"grant_type": "client_credentials", "resource": server.resource}
        if scopes:
            form["scope"] = " ".join(scopes)
        return await self._token_request(http, server, client, form, scopes)

    async def _reobtain(self, http: httpx.AsyncClient, server_url: str) -> Tokens | None:
        """An expired token is simply replaced: the grant needs nobody."""
        return await self._authorize(http, server_url, {}, extra=self._requested.get(server_url, ()))
