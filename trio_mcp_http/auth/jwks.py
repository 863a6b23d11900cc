"""The authorization server's JSON Web Key Set (RFC 7517 §5), fetched and cached.

Keys are kept for ``ttl`` seconds; a token signed with a key id the cache does not
know triggers one refetch (the server may have rotated its keys), at most once every
``min_refetch_interval`` seconds, so tokens with made-up key ids cannot make this
server hammer the authorization server.  While the server is unreachable, the keys
already known go on serving (a stale key set beats refusing every token); with none
known the caller answers 503.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from ..protocol.auth import AuthUnavailable, InvalidToken
from .fetch import HttpClient, fetch_json

__all__ = ["JwksCache"]

logger = logging.getLogger("trio_mcp_http.auth")

#: Keys kept from one key set: real sets hold a handful (current and next).
MAX_KEYS = 64


class JwksCache:
    """The verification keys of one authorization server, by key id."""

    def __init__(
        self,
        url: str,
        http: HttpClient,
        *,
        ttl: float = 300.0,
        min_refetch_interval: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._http = http
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout
        self._keys: KeySet | None = None
        self._fetched_at = -math.inf
        self._lock = trio.Lock()
        #: The last fetch failed (an unknown key id may be a key not seen yet).
        self._failed = False
        #: Fetches made: for tests and monitoring.
        self.fetches = 0

    async def key_for(self, kid: str | None) -> Key:
        """The key with id ``kid`` (with no ``kid``: the set's only signing key)."""
        now = trio.current_time()
        if self._keys is None or now - self._fetched_at >= self.ttl:
            await self._refresh(stale_ok=self._keys is not None)
        key = self._find(kid)
        if key is None and trio.current_time() - self._fetched_at >= self.min_refetch_interval:
            # An unknown key id: perhaps the server rotated its keys since.
            await self._refresh(stale_ok=True)
            key = self._find(kid)
        if key is None:
            if self._keys is None or self._failed:
                raise AuthUnavailable(f"no key set from {self.url}")
            raise InvalidToken("token signed with an unknown key")
        return key

    def _find(self, kid: str | None) -> Key | None:
        if self._keys is None:
            return None
        if kid is None:
            keys = [k for k in self._keys.keys if k.get("use") in (None, "sig")]
            return keys[0] if len(keys) == 1 else None
        for key in self._keys.keys:
            if key.kid == kid:
                return key
        return None

    async def _refresh(self, *, stale_ok: bool) -> None:
        started = trio.current_time()
        async with self._lock:
            if self._fetched_at >= started:
                return  # another request refreshed the set while this one waited
            try:
                client = self._http.get()
                document = await fetch_json(
                    client, client.build_request("GET", self.url), what="JWKS", seconds=self.timeout
                )
                self._keys = _key_set(document)
                self._failed = False
            except AuthUnavailable as exc:
                self._failed = True
                if not stale_ok:
                    raise
                # Keep the keys known so far; try again no sooner than the refetch bound.
                logger.warning("cannot refresh the key set from %s (%s): keeping the old", self.url, exc)
            finally:
                self.fetches += 1
                self._fetched_at = trio.current_time()


def _key_set(document: Any) -> KeySet:
    """The public signing keys of a JWKS document; keys of unknown types are skipped
    (RFC 7517 §5: "ignore JWKs ... that it does not understand")."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise AuthUnavailable("JWKS is not a key set")
    keys: list[Key] = []
    for entry in document["keys"][:MAX_KEYS]:
        if not isinstance(entry, dict) or "d" in entry or entry.get("kty") == "oct":
            continue  # private or symmetric material has no place in a published set
        try:
            keys.append(KeySet.import_key_set({"keys": [entry]}).keys[0])
        except (JoseError, ValueError, TypeError, KeyError):
            continue
    return KeySet(keys)
