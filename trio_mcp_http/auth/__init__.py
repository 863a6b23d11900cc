"""OAuth 2.1 resource server support (MCP 2025-06-18 and later, Authorization): the I/O
half.

* ``authenticator``: :class:`Authenticator`, from an ``Authorization`` header to a
  :class:`Principal` or a refusal, and the Protected Resource Metadata document;
* ``verifiers``: :class:`JwtVerifier` (JWT access tokens against the authorization
  server's key set), :class:`IntrospectionVerifier` (RFC 7662), and the
  :class:`TokenVerifier` protocol for anything else;
* ``jwks``: the key set, fetched and cached; ``fetch``: bounded JSON exchanges.

The rules themselves (headers, claims, scopes, metadata) are sans-IO, in
:mod:`trio_mcp_http.protocol.auth`.  Needs the ``auth`` extra (httpx, joserfc).
"""

from ..protocol.auth import AuthUnavailable, InvalidToken, Principal
from .authenticator import Authenticator
from .verifiers import IntrospectionVerifier, JwtVerifier, TokenVerifier

__all__ = [
    "AuthUnavailable",
    "Authenticator",
    "IntrospectionVerifier",
    "InvalidToken",
    "JwtVerifier",
    "Principal",
    "TokenVerifier",
]
