"""Bounded JSON exchanges with the authorization server.

Every call is bounded in time (one deadline over connect, send and read, whatever the
server does) and in bytes, and every way it can fail becomes
:class:`~trio_mcp_http.protocol.auth.AuthUnavailable`: the caller answers 503, never
500, and never waits without end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, cast

import httpx
import trio

from ..protocol.auth import AuthUnavailable

__all__ = ["MAX_DOCUMENT_BYTES", "HttpClient", "fetch_json"]

#: Largest JSON document read from the authorization server (key sets, metadata,
#: introspection answers are a few KiB).
MAX_DOCUMENT_BYTES = 256 * 1024


class HttpClient:
    """An ``httpx.AsyncClient`` made on first use and closed by :meth:`aclose`, after
    which the next use makes a new one (an app may be run again after it stopped).
    A client given by the caller is used as it is and left open: it is the caller's."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._given = client
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        if self._client is None or self._client.is_closed:
            # No redirects (a key set or an introspection answer comes from the URL
            # configured, nowhere else) and no proxy settings from the environment.
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def fetch_json(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    what: str,
    seconds: float,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Any:
    """Send ``request`` and return its JSON body (status 200 only)."""
    with trio.move_on_after(seconds) as bound:
        try:
            response = await http.send(request, stream=True)
            try:
                if response.status_code != 200:
                    raise AuthUnavailable(f"{what} answered HTTP {response.status_code}")
                body = bytearray()
                # Closed at once when left early (trio reports an async generator
                # left to the garbage collector).
                generator = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
                async with aclosing(generator) as chunks:
                    async for chunk in chunks:
                        body += chunk
                        if len(body) > max_bytes:
                            raise AuthUnavailable(f"{what} sent more than {max_bytes} bytes")
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            # The exception's text may hold the URL; the request body (where an
            # introspected token is) never appears in it.
            raise AuthUnavailable(f"{what} unreachable: {type(exc).__name__}") from exc
    if bound.cancelled_caught:
        raise AuthUnavailable(f"{what}: no answer within {seconds:g}s")
    try:
        return json.loads(bytes(body))
    except ValueError as exc:
        raise AuthUnavailable(f"{what} sent a body that is not JSON") from exc
