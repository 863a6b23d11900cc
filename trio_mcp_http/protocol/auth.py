"""OAuth 2.1 resource server rules, sans-IO (MCP 2025-06-18 and later, Authorization).

What is decided here needs no network and no clock of its own (the caller passes the
time): reading the ``Authorization`` header (RFC 6750 §2.1), the
``WWW-Authenticate`` challenge (RFC 6750 §3, RFC 9728 §5.1), the Protected Resource
Metadata document and its URLs (RFC 9728 §2-3), the checks of a JWT's claims (RFC 7519
§4.1, RFC 9068 §4) and of an introspection answer (RFC 7662 §2.2), the audience
binding to this server's canonical URI (RFC 8707 §2), and scope decisions.

The I/O half (fetching key sets, calling the introspection endpoint, caching) lives in
:mod:`trio_mcp_http.auth`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import SplitResult, urlsplit

from .errors import INTERNAL_ERROR, INVALID_REQUEST, ConfigError, McpHttpError, ProtocolError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AS_METADATA_PREFIX",
    "MAX_TOKEN_LENGTH",
    "METADATA_PREFIX",
    "OIDC_METADATA_SUFFIX",
    "AuthUnavailable",
    "InvalidToken",
    "Principal",
    "TokenVerifier",
    "authorization_server_metadata_urls",
    "bearer_challenge",
    "bearer_token",
    "check_algorithm",
    "check_claims",
    "check_introspection",
    "check_resource_uri",
    "forbidden",
    "jws_header",
    "metadata_paths",
    "metadata_url",
    "missing_scopes",
    "parse_scopes",
    "pkce_challenge",
    "protected_resource_metadata",
    "resource_covers",
    "resource_metadata_urls",
    "scope_list",
    "unauthorized",
    "unavailable",
    "www_authenticate",
]

#: Asymmetric JWS algorithms a resource server accepts (RFC 7518 §3.1, RFC 8037 §3.1).
#: ``none`` and the HMAC family are never accepted: an HMAC "verified" with a public key
#: is a signature anybody can make (the classic algorithm-confusion attack).
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)

#: RFC 9728 §3: the well-known URI suffix of Protected Resource Metadata.
METADATA_PREFIX = "/.well-known/oauth-protected-resource"

#: A bearer token's characters (RFC 6750 §2.1, ``b64token``).
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")
#: Longest token read at all: real access tokens are a few KiB at most.
MAX_TOKEN_LENGTH = 16 * 1024
#: A scope token (RFC 6749 §3.3): printable ASCII except space, ``"`` and ``\``.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+\Z")


class InvalidToken(McpHttpError):
    """The access token is not acceptable here: malformed, expired, for another
    audience or issuer, badly signed, revoked.  Answered with 401 and
    ``error="invalid_token"`` (RFC 6750 §3.1).  The message names the reason; it is
    logged and must never contain the token itself."""


class AuthUnavailable(McpHttpError):
    """The token cannot be checked now: the authorization server (its key set or its
    introspection endpoint) is unreachable, slow or answers nonsense.  Answered with
    503 and ``Retry-After``; the client's token may well be valid."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, as established from its access token.

    ``subject`` and ``issuer`` identify the principal (sessions are bound to the pair);
    ``scopes`` are what the token grants; ``claims`` are the token's claims (or the
    introspection answer) for anything else a handler wants to know.
    """

    subject: str
    scopes: frozenset[str] = frozenset()
    issuer: str | None = None
    client_id: str | None = None
    expires_at: float | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.subject, str) or not self.subject:
            raise ConfigError(f"a Principal needs a non-empty subject, not {self.subject!r}")
        if not isinstance(self.scopes, frozenset):
            object.__setattr__(self, "scopes", frozenset(self.scopes))

    @property
    def owner(self) -> tuple[str | None, str]:
        """What a session is bound to: the same subject from another issuer is
        someone else."""
        return (self.issuer, self.subject)


@runtime_checkable
class TokenVerifier(Protocol):
    """Checks an access token: returns its :class:`Principal`, raises
    :class:`InvalidToken` for a token it refuses (the client gets 401) and
    :class:`AuthUnavailable` when it cannot decide now (503 with ``Retry-After``)."""

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` stands for."""
        ...


# -- the request side ---------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1).

    ``None`` when the request presents no bearer token at all (no header, or another
    scheme): the challenge then carries no error code (RFC 6750 §3.1).  A bearer
    header whose token is malformed raises :class:`InvalidToken`.  Tokens in a query
    string or a form body are not accepted (OAuth 2.1 §5.2 and MCP, Authorization,
    Token Requirements: the header only).
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token:
        raise InvalidToken("empty bearer token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("bearer token too long")
    if not _B64TOKEN.match(token):
        raise InvalidToken("malformed bearer token")
    return token


def jws_header(token: str) -> dict[str, Any] | None:
    """The protected header of a compact JWS (RFC 7515 §7.1), read without verifying;
    ``None`` when ``token`` is not one (an opaque token, or a JWE with five parts)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return header if isinstance(header, dict) else None


def check_algorithm(header: Mapping[str, Any], allowed: Iterable[str] = ALLOWED_ALGORITHMS) -> str:
    """The header's ``alg`` if it is on the allow-list; else :class:`InvalidToken`."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in set(allowed):
        raise InvalidToken(f"signature algorithm {alg!r} is not accepted")
    return alg


def parse_scopes(value: Any) -> frozenset[str]:
    """Scopes of a token: the ``scope`` claim's space-delimited string (RFC 9068 §2.2.3,
    RFC 7662 §2.2) or a list (the ``scp`` claim some servers use)."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, (list, tuple)):
        return frozenset(s for s in value if isinstance(s, str) and s)
    return frozenset()


def scope_list(value: str | Iterable[str] | None, name: str) -> tuple[str, ...]:
    """A setting's scopes, given as one space-separated string or as strings; checked."""
    if value is None:
        return ()
    items = value.split() if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not _SCOPE_TOKEN.match(item):
            raise ConfigError(f"{name}: {item!r} is not a scope token (RFC 6749 §3.3)")
    return tuple(dict.fromkeys(items))


def _audiences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [a for a in value if isinstance(a, str)]
    return []


def _same_resource(a: str, b: str) -> bool:
    """RFC 8707 resource URIs compare as strings, up to a trailing slash (clients differ
    on it for a root resource)."""
    return a.rstrip("/") == b.rstrip("/")


def _check_times(claims: Mapping[str, Any], now: float, leeway: float, *, exp_required: bool) -> float | None:
    exp = claims.get("exp")
    if exp is None:
        if exp_required:
            raise InvalidToken("token has no expiry (exp)")
    elif isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise InvalidToken("token expiry (exp) is not a number")
    elif now > exp + leeway:
        raise InvalidToken("token expired")
    nbf = claims.get("nbf")
    if nbf is not None:
        if isinstance(nbf, bool) or not isinstance(nbf, (int, float)):
            raise InvalidToken("token nbf is not a number")
        if now + leeway < nbf:
            raise InvalidToken("token not valid yet (nbf)")
    return None if exp is None else float(exp)


def _subject(claims: Mapping[str, Any]) -> tuple[str, str | None]:
    client_id = claims.get("client_id")
    client = client_id if isinstance(client_id, str) and client_id else None
    sub = claims.get("sub")
    subject = sub if isinstance(sub, str) and sub else client
    if subject is None:
        raise InvalidToken("token names no subject (sub) nor client (client_id)")
    return subject, client


def check_claims(
    claims: Mapping[str, Any], *, issuer: str | None, audience: str, now: float, leeway: float = 60.0
) -> Principal:
    """The principal of a JWT access token whose signature has been verified.

    Checks ``iss`` (when an issuer is configured), ``aud`` against this server's
    canonical resource URI (RFC 8707 §2, MCP Authorization, Token Audience Binding:
    a token issued for another resource is refused), ``exp`` (required) and ``nbf``
    with ``leeway`` seconds of clock skew.
    """
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidToken("token from another issuer")
    if not any(_same_resource(a, audience) for a in _audiences(claims.get("aud"))):
        raise InvalidToken("token not issued for this resource (aud)")
    expires_at = _check_times(claims, now, leeway, exp_required=True)
    subject, client = _subject(claims)
    scopes = parse_scopes(claims["scope"] if "scope" in claims else claims.get("scp"))
    iss = claims.get("iss")
    return Principal(
        subject=subject,
        scopes=scopes,
        issuer=iss if isinstance(iss, str) else issuer,
        client_id=client,
        expires_at=expires_at,
        claims=dict(claims),
    )


def check_introspection(
    answer: Mapping[str, Any], *, issuer: str | None, audience: str, now: float, leeway: float = 60.0
) -> Principal:
    """The principal of an RFC 7662 introspection answer.

    ``active`` must be ``true`` (§2.2); the audience must name this resource, as for a
    JWT (a token for another resource is refused even though the authorization server
    calls it active); ``exp``/``nbf`` are checked when present; ``iss``, when present,
    must be the configured issuer.
    """
    if answer.get("active") is not True:
        raise InvalidToken("token is not active")
    iss = answer.get("iss")
    if issuer is not None and iss is not None and iss != issuer:
        raise InvalidToken("token from another issuer")
    if not any(_same_resource(a, audience) for a in _audiences(answer.get("aud"))):
        raise InvalidToken("token not issued for this resource (aud)")
    expires_at = _check_times(answer, now, leeway, exp_required=False)
    subject, client = _subject(answer)
    return Principal(
        subject=subject,
        scopes=parse_scopes(answer.get("scope")),
        issuer=iss if isinstance(iss, str) else issuer,
        client_id=client,
        expires_at=expires_at,
        claims=dict(answer),
    )


def missing_scopes(required: Iterable[str], principal: Principal) -> tuple[str, ...]:
    """The scopes of ``required`` that ``principal`` lacks, in their given order."""
    return tuple(s for s in required if s not in principal.scopes)


# -- the resource's identity and metadata ------------------------------------------------


def check_resource_uri(uri: Any, name: str = "auth_resource") -> str:
    """A canonical resource URI (RFC 8707 §2, MCP Authorization, Canonical Server URI):
    absolute ``http(s)``, a host, no fragment."""
    if not isinstance(uri, str):
        raise ConfigError(f"{name} must be a URL string, not {uri!r}")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment or "#" in uri:
        raise ConfigError(f"{name} must be an absolute http(s) URI without a fragment, not {uri!r}")
    return uri


def metadata_url(resource: str) -> str:
    """Where the metadata of ``resource`` is published: the well-known suffix goes
    between the host and the path (RFC 9728 §3.1)."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{METADATA_PREFIX}{path}"


def metadata_paths(resource: str, endpoint_path: str) -> frozenset[str]:
    """Request paths that serve the metadata document: the root form, the form with the
    resource's path (RFC 9728 §3.1) and the form with the MCP endpoint's path (what an
    MCP client derives from the URL it was given when no header names the document:
    MCP 2025-11-25, Authorization, Protected Resource Metadata Discovery)."""
    paths = {METADATA_PREFIX}
    for path in (urlsplit(resource).path, endpoint_path):
        path = path.rstrip("/")
        if path:
            paths.add(METADATA_PREFIX + path)
    return frozenset(paths)


def protected_resource_metadata(
    resource: str,
    authorization_servers: Iterable[str],
    scopes_supported: Iterable[str] = (),
    *,
    resource_name: str | None = None,
) -> dict[str, Any]:
    """The RFC 9728 §2 document: this resource, who issues tokens for it, the scopes it
    knows and how tokens are presented (the ``Authorization`` header only)."""
    document: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": ["header"],
    }
    scopes = list(scopes_supported)
    if scopes:
        document["scopes_supported"] = scopes
    if resource_name is not None:
        document["resource_name"] = resource_name
    return document


# -- the answers ----------------------------------------------------------------------------


def _quoted(value: str) -> str:
    """An RFC 9110 §5.6.4 quoted-string; characters a header cannot carry are dropped."""
    cleaned = "".join(c for c in value if c == "\t" or " " <= c <= "~")
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(
    resource_metadata: str,
    *,
    error: str | None = None,
    description: str | None = None,
    scopes: Iterable[str] = (),
) -> bytes:
    """A ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3) naming the metadata
    document (RFC 9728 §5.1) and, when given, the scopes the request needs."""
    params = [f"resource_metadata={_quoted(resource_metadata)}"]
    scope = " ".join(scopes)
    if scope:
        params.append(f"scope={_quoted(scope)}")
    if error is not None:
        params.append(f"error={_quoted(error)}")
    if description is not None:
        params.append(f"error_description={_quoted(description)}")
    return ("Bearer " + ", ".join(params)).encode("ascii")


def unauthorized(
    resource_metadata: str, *, scopes: Iterable[str] = (), reason: str | None = None
) -> ProtocolError:
    """401: no token (``reason`` ``None``: no error code, RFC 6750 §3.1) or a token
    refused for ``reason`` (``error="invalid_token"``)."""
    error = None if reason is None else "invalid_token"
    header = www_authenticate(resource_metadata, error=error, description=reason, scopes=scopes)
    message = "Unauthorized: " + (reason or "a bearer token is required")
    return ProtocolError(401, INVALID_REQUEST, message, headers=[(b"www-authenticate", header)])


def forbidden(resource_metadata: str, needed: Iterable[str], missing: Iterable[str]) -> ProtocolError:
    """403 ``insufficient_scope`` (RFC 6750 §3.1): the challenge's ``scope`` names every
    scope the request needs, so a client can ask for them all at once (MCP 2025-11-25,
    Authorization, Scope Challenge Handling)."""
    lacking = " ".join(missing)
    header = www_authenticate(
        resource_metadata,
        error="insufficient_scope",
        description=f"requires scope {lacking}",
        scopes=needed,
    )
    return ProtocolError(
        403,
        INVALID_REQUEST,
        f"Forbidden: insufficient scope, requires {lacking}",
        {"requiredScopes": list(needed)},
        headers=[(b"www-authenticate", header)],
    )


def unavailable(retry_after: int, reason: str = "cannot check the access token now") -> ProtocolError:
    """503 with ``Retry-After``: the authorization server cannot be reached; the token
    is neither accepted nor refused."""
    return ProtocolError(
        503,
        INTERNAL_ERROR,
        f"Service Unavailable: {reason}",
        headers=[(b"retry-after", str(retry_after).encode())],
    )


# -- the client side ------------------------------------------------------------------------

#: RFC 8414 §3: the well-known suffix of OAuth authorization server metadata.
AS_METADATA_PREFIX = "/.well-known/oauth-authorization-server"
#: OpenID Connect Discovery 1.0 §4: the well-known suffix of an OpenID provider's metadata.
OIDC_METADATA_SUFFIX = "/.well-known/openid-configuration"

_TOKEN_CHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_AUTH_PARAM = re.compile(rf'\s*({_TOKEN_CHARS})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN_CHARS})\s*(?:,|\Z)')
_AUTH_SCHEME = re.compile(rf"[\s,]*({_TOKEN_CHARS})(?=\s|,|\Z)")
_TOKEN68 = re.compile(r"\s*[A-Za-z0-9\-._~+/]+=*\s*(?:,|\Z)")


def bearer_challenge(header: str | None) -> dict[str, str] | None:
    """The parameters of the ``Bearer`` challenge in a ``WWW-Authenticate`` value (RFC
    9110 §11.6.1; RFC 6750 §3), names lower-cased and quoted strings unquoted; ``None``
    when the header carries no Bearer challenge.  Other schemes' challenges in the same
    header are skipped; a malformed tail ends the parse with what was read so far."""
    if not header:
        return None
    found: dict[str, str] | None = None
    current: dict[str, str] | None = None
    pos = 0
    while pos < len(header) and header[pos:].strip(" \t,"):
        param = _AUTH_PARAM.match(header, pos) if current is not None else None
        if param is not None and current is not None:
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            current.setdefault(param.group(1).lower(), value)
            pos = param.end()
            continue
        scheme = _AUTH_SCHEME.match(header, pos)
        if scheme is None:
            break
        pos = scheme.end()
        current = {}
        if scheme.group(1).lower() == "bearer" and found is None:
            found = current
        elif (token68 := _TOKEN68.match(header, pos)) is not None and not _AUTH_PARAM.match(header, pos):
            pos = token68.end()
    return found


def resource_metadata_urls(server_url: str) -> list[str]:
    """Where a client looks for the Protected Resource Metadata of ``server_url`` when no
    challenge names it: the path-suffixed well-known URI first, then the root one (RFC
    9728 §3.1; MCP 2025-11-25, Authorization, Protected Resource Metadata Discovery)."""
    parts = urlsplit(server_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [f"{origin}{METADATA_PREFIX}{path}"] if path else []
    urls.append(f"{origin}{METADATA_PREFIX}")
    return urls


def authorization_server_metadata_urls(issuer: str) -> list[str]:
    """Where the metadata of the authorization server ``issuer`` is looked for, in the
    order MCP 2025-11-25 (Authorization, Authorization Server Metadata Discovery) gives:
    RFC 8414 §3.1 (the suffix between host and path), then OpenID Connect Discovery with
    the suffix inserted the same way, then appended to the path (OpenID Connect
    Discovery 1.0 §4).  An issuer without a path has the first two only."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if not path:
        return [f"{origin}{AS_METADATA_PREFIX}", f"{origin}{OIDC_METADATA_SUFFIX}"]
    return [
        f"{origin}{AS_METADATA_PREFIX}{path}",
        f"{origin}{OIDC_METADATA_SUFFIX}{path}",
        f"{origin}{path}{OIDC_METADATA_SUFFIX}",
    ]


def pkce_challenge(verifier: str) -> str:
    """The ``S256`` code challenge of a PKCE code verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    try:
        port = parts.port or default
    except ValueError:
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def resource_covers(resource: str, server_url: str) -> bool:
    """Whether a Protected Resource Metadata ``resource`` identifies the server at
    ``server_url`` (RFC 9728 §3.3; MCP 2025-11-25, Authorization, Canonical Server URI):
    the same origin, and the server's path is the resource's path or lies under it (a
    resource named by its origin covers every endpoint of that origin)."""
    res, srv = urlsplit(resource), urlsplit(server_url)
    if res.fragment or _origin(res) != _origin(srv) or not res.hostname:
        return False
    base = res.path.rstrip("/")
    return not base or srv.path == base or srv.path.startswith(base + "/")
