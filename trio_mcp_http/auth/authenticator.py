"""The resource server's gate: who a request acts for, and what it may do.

An :class:`Authenticator` turns a request's ``Authorization`` header into a
:class:`Principal` or a refusal (a :class:`~trio_mcp_http.ProtocolError` carrying
the status and the ``WWW-Authenticate`` challenge), serves the Protected Resource
Metadata document, and owns the HTTP client its verifiers share.

Tokens are never logged: refusals are logged with their reason only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import trio

from ..protocol.auth import (
    AuthUnavailable,
    InvalidToken,
    Principal,
    bearer_token,
    check_resource_uri,
    forbidden,
    metadata_paths,
    metadata_url,
    missing_scopes,
    protected_resource_metadata,
    scope_list,
    unauthorized,
    unavailable,
)
from ..protocol.errors import ConfigError, UsageError
from .verifiers import IntrospectionVerifier, JwtVerifier, TokenVerifier

__all__ = ["Authenticator"]

logger = logging.getLogger("trio_mcp_http.auth")


class Authenticator:
    """OAuth 2.1 resource server checks for one MCP endpoint (MCP 2025-06-18 and later,
    Authorization).

    ``issuer`` is the authorization server named in the metadata; ``resource`` this
    server's canonical URI (the audience tokens must carry); ``verifier`` checks the
    tokens.  ``required_scopes`` are needed for every request; ``timeout`` bounds one
    verification, after which the request gets 503.
    """

    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        verifier: TokenVerifier,
        scopes_supported: str | Iterable[str] | None = None,
        required_scopes: str | Iterable[str] | None = None,
        retry_after: int = 5,
        timeout: float = 10.0,
        owns_verifier: bool = False,
    ) -> None:
        self.issuer = check_resource_uri(issuer, "auth_issuer")
        self.resource = check_resource_uri(resource, "auth_resource")
        if not isinstance(verifier, TokenVerifier):
            raise UsageError(f"auth_verifier must have an async verify(token) method, not {verifier!r}")
        self.verifier = verifier
        self.required_scopes = scope_list(required_scopes, "auth_required_scopes")
        supported = scope_list(scopes_supported, "auth_scopes_supported")
        self.scopes_supported = tuple(dict.fromkeys((*supported, *self.required_scopes)))
        self.retry_after = retry_after
        self.timeout = timeout
        self.metadata_url = metadata_url(self.resource)
        #: The verifier was made here (from settings): closed with the authenticator.
        self._owns_verifier = owns_verifier
        self._metadata = json.dumps(
            protected_resource_metadata(self.resource, [self.issuer], self.scopes_supported)
        ).encode()

    @classmethod
    def from_settings(
        cls,
        *,
        issuer: str,
        resource: str | None,
        verifier: TokenVerifier | None = None,
        jwks_url: str | None = None,
        introspection_url: str | None = None,
        client_id: str | None = None,
        client_secret_file: str | None = None,
        scopes_supported: str | Iterable[str] | None = None,
        required_scopes: str | Iterable[str] | None = None,
        retry_after: int = 5,
    ) -> Authenticator:
        """The authenticator that the ``auth_*`` settings of
        :class:`~trio_mcp_http.TransportConfig` describe."""
        if resource is None:
            raise ConfigError(
                "auth_issuer needs auth_resource: this server's canonical URI, the audience its "
                "tokens must name (RFC 8707), e.g. https://mcp.example.com/mcp"
            )
        resource = check_resource_uri(resource)
        if verifier is not None:
            if jwks_url or introspection_url:
                raise ConfigError("auth_verifier replaces auth_jwks_url and auth_introspection_url: give one")
            return cls(
                issuer=issuer,
                resource=resource,
                verifier=verifier,
                scopes_supported=scopes_supported,
                required_scopes=required_scopes,
                retry_after=retry_after,
            )
        chosen: IntrospectionVerifier | JwtVerifier
        if introspection_url is not None:
            secret = _read_secret(client_secret_file) if client_secret_file is not None else None
            chosen = IntrospectionVerifier(
                check_resource_uri(introspection_url, "auth_introspection_url"),
                resource,
                issuer=issuer,
                client_id=client_id,
                client_secret=secret,
            )
        else:
            if client_id is not None or client_secret_file is not None:
                raise ConfigError("auth_client_id and auth_client_secret_file are for auth_introspection_url")
            chosen = JwtVerifier(
                issuer,
                resource,
                jwks_url=None if jwks_url is None else check_resource_uri(jwks_url, "auth_jwks_url"),
            )
        return cls(
            issuer=issuer,
            resource=resource,
            verifier=chosen,
            scopes_supported=scopes_supported,
            required_scopes=required_scopes,
            retry_after=retry_after,
            owns_verifier=True,
        )

    async def aclose(self) -> None:
        """Close the HTTP client of the verifier made from settings (one given is the
        caller's to close)."""
        closer = getattr(self.verifier, "aclose", None)
        if self._owns_verifier and closer is not None:
            await closer()

    # -- metadata -------------------------------------------------------------------------

    def metadata_paths(self, endpoint_path: str) -> frozenset[str]:
        return metadata_paths(self.resource, endpoint_path)

    @property
    def metadata_document(self) -> bytes:
        """The RFC 9728 document, encoded once."""
        return self._metadata

    # -- requests ---------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal of a request with this ``Authorization`` header; raises the
        refusal (401, 403 for a missing required scope, 503) as a ProtocolError."""
        try:
            token = bearer_token(authorization)
            if token is None:
                raise unauthorized(self.metadata_url, scopes=self.required_scopes)
            principal = await self._verify(token)
        except InvalidToken as exc:
            logger.info("access token refused: %s", exc)
            raise unauthorized(self.metadata_url, scopes=self.required_scopes, reason=str(exc)) from None
        except AuthUnavailable as exc:
            logger.warning("cannot check an access token: %s", exc)
            raise unavailable(self.retry_after) from None
        self.authorize(principal, ())
        return principal

    async def _verify(self, token: str) -> Principal:
        principal: Principal | None = None
        with trio.move_on_after(self.timeout):
            try:
                principal = await self.verifier.verify(token)
            except (InvalidToken, AuthUnavailable):
                raise
            except Exception as exc:
                # A verifier's own fault: logged (by type, its text might quote the token),
                # answered as "cannot decide now", never as 500.
                logger.error("token verifier failed with %s", type(exc).__name__)
                raise AuthUnavailable("token verifier failed") from None
        if principal is None:
            raise AuthUnavailable(f"token verification took longer than {self.timeout:g}s")
        if not isinstance(principal, Principal):
            logger.error("token verifier returned %s, not a Principal", type(principal).__name__)
            raise AuthUnavailable("token verifier returned no Principal")
        return principal

    def authorize(self, principal: Principal, needed: Iterable[str]) -> None:
        """Raise 403 ``insufficient_scope`` unless ``principal`` holds ``needed`` and the
        scopes every request needs."""
        wanted = tuple(dict.fromkeys((*self.required_scopes, *needed)))
        missing = missing_scopes(wanted, principal)
        if missing:
            logger.info("request refused: insufficient scope, lacks %s", " ".join(missing))
            raise forbidden(self.metadata_url, wanted, missing)


def _read_secret(path: str) -> str:
    try:
        secret = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read auth_client_secret_file {path!r}: {exc.strerror or exc}") from exc
    if not secret:
        raise ConfigError(f"auth_client_secret_file {path!r} is empty")
    return secret
