"""The client's wire: how messages reach the server and how its messages come back.

The session logic (``session.py``) sees only :class:`Transport` and :class:`Incoming`:
it sends one message per *exchange* and reads what the server sends in answer, or opens
the stream of messages the server sends on its own.  :class:`StreamableHttp` is MCP's
Streamable HTTP (MCP 2025-11-25, Transports; 2026-07-28, Transports): one POST per
message, answers as a JSON body or an SSE stream, a GET for the server's own stream,
DELETE to end a session, and resumption with ``Last-Event-ID``.  Another wire (a
WebSocket, say) is another class with the same two shapes.

Reading a body without leaking: httpx (through httpcore) yields a response body from a
chain of async generators.  A chain left suspended at a ``yield`` when its reader stops
is collected later, and Trio reports each collected generator with a
``ResourceWarning``.  So a body here is never simply dropped: :meth:`_Body.close` ends
the chain from the inside, by reading on in a cancelled scope until the ``Cancelled``
raised at the chain's first checkpoint has unwound every generator in it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Literal, NoReturn, Protocol

import httpx
import trio

from ..protocol import jsonrpc
from ..protocol.errors import ProtocolError
from ..protocol.jsonrpc import Envelope, Kind
from ..protocol.sse import SseParser, SseTooLarge
from .errors import HttpStatusError, TransportError

__all__ = ["ClientAuth", "Incoming", "StreamableHttp", "Transport"]

#: The reconnection delay when the server named none (WHATWG HTML §9.2.2 leaves it to
#: the user agent; a few seconds is customary).
DEFAULT_RETRY_MS = 1000
#: Reconnections in a row that bring no event before a stream is given up.
MAX_RECONNECTS = 5
#: A ``retry:`` longer than this is not waited for in full.
MAX_RETRY_MS = 60_000

Reconnect = Literal["never", "with-id", "always"]


class Incoming(Protocol):
    """The messages the server sends in one exchange or on one stream, in order."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers of the exchange (the first response, if resumed)."""

    async def receive(self) -> Envelope | None:
        """The next message; ``None`` once the server has nothing more to send."""


class Transport(Protocol):
    """What the session logic needs of a wire."""

    def exchange(
        self, message: bytes, headers: Mapping[str, str], *, resumable: bool
    ) -> AbstractAsyncContextManager[Incoming]:
        """Send one message; what comes back is read inside the block.  Leaving the block
        stops reading and releases the connection (for HTTP: closes the response, which
        a 2026-07-28 server takes as cancellation)."""

    def server_stream(self, headers: Mapping[str, str]) -> AbstractAsyncContextManager[Incoming]:
        """The stream of messages the server sends unprompted (a session's GET stream)."""

    async def end_session(self, headers: Mapping[str, str]) -> None:
        """Tell the server a session is over (HTTP DELETE)."""


class ClientAuth(Protocol):
    """What gets :class:`StreamableHttp` its access tokens (``client/auth.py``:
    ``OAuthClient``, ``ClientCredentials``)."""

    async def authorization(self, http: httpx.AsyncClient, server_url: str) -> str | None:
        """The ``Authorization`` header value for the next request, if any."""

    async def refused(
        self,
        http: httpx.AsyncClient,
        server_url: str,
        status: int,
        headers: Mapping[str, str],
        sent: str | None,
        attempt: int,
    ) -> bool:
        """A 401 or 403 came back for a request sent with ``sent`` (after ``attempt``
        retries): ``True`` once a token worth retrying with is held."""


class _Body:
    """One streamed HTTP response body; see the module docstring for :meth:`close`."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks: AsyncIterator[bytes] | None = None

    async def next_chunk(self) -> bytes | None:
        if self._chunks is None:
            self._chunks = self.response.aiter_bytes()
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    async def read_all(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while (chunk := await self.next_chunk()) is not None:
            size += len(chunk)
            if size > limit:
                raise TransportError(f"the response body is larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def close(self) -> None:
        chunks = self._chunks
        if chunks is not None:
            with trio.CancelScope() as scope:
                scope.cancel()
                try:
                    while True:
                        await chunks.__anext__()
                except (StopAsyncIteration, httpx.HTTPError, OSError):
                    pass  # ended, or failed: either way the chain has unwound
        with trio.CancelScope(shield=True):
            await self.response.aclose()


def _json_rpc_error(status: int, body: bytes) -> ProtocolError | None:
    """The JSON-RPC error an HTTP error response carries, if it carries one."""
    try:
        parsed = jsonrpc.parse_body(body)
    except ProtocolError:
        return None
    if isinstance(parsed, list) or parsed.kind is not Kind.RESPONSE or parsed.error is None:
        return None
    error = parsed.error
    request_id = parsed.id if isinstance(parsed.id, (int, str)) else None
    return ProtocolError(status, error.code, error.message, error.data, request_id=request_id)


class StreamableHttp:
    """MCP Streamable HTTP over an :class:`httpx.AsyncClient` the caller owns."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_message_size: int = 16 * 1024 * 1024,
        auth: ClientAuth | None = None,
    ) -> None:
        self._http = http
        self.url = url
        self._headers = dict(headers or {})
        self.max_message_size = max_message_size
        self._auth = auth

    # -- the Transport protocol -------------------------------------------------------

    @asynccontextmanager
    async def exchange(
        self, message: bytes, headers: Mapping[str, str], *, resumable: bool
    ) -> AsyncIterator[Incoming]:
        request_headers = {
            **self._headers,
            **headers,
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        body = await self._open("POST", request_headers, message)
        incoming = _HttpIncoming(self, body, headers, "with-id" if resumable else "never")
        try:
            yield incoming
        finally:
            await incoming.close()

    @asynccontextmanager
    async def server_stream(self, headers: Mapping[str, str]) -> AsyncIterator[Incoming]:
        body = await self._open("GET", self._get_headers(headers, None))
        incoming = _HttpIncoming(self, body, headers, "always")
        try:
            yield incoming
        finally:
            await incoming.close()

    async def end_session(self, headers: Mapping[str, str]) -> None:
        body = await self._open("DELETE", {**self._headers, **headers}, allow={405})
        await body.close()

    # -- HTTP -------------------------------------------------------------------------

    def _get_headers(self, headers: Mapping[str, str], last_event_id: str | None) -> dict[str, str]:
        out = {**self._headers, **headers, "accept": "text/event-stream"}
        if last_event_id is not None:
            out["last-event-id"] = last_event_id
        return out

    async def _open(
        self,
        method: str,
        headers: dict[str, str],
        content: bytes | None = None,
        allow: set[int] | None = None,
    ) -> _Body:
        attempt = 0
        while True:
            sent = None if self._auth is None else await self._auth.authorization(self._http, self.url)
            sending = headers if sent is None else {**headers, "authorization": sent}
            body = await self._send(method, sending, content)
            try:
                status = body.response.status_code
                if status in (401, 403) and self._auth is not None:
                    if await self._reauthorize(body, method, sent, attempt):
                        attempt += 1
                        continue
                elif status >= 400 and status not in (allow or ()):
                    await self._refuse(body, method)
            except BaseException:
                await body.close()
                raise
            return body

    async def _send(self, method: str, headers: dict[str, str], content: bytes | None) -> _Body:
        request = self._http.build_request(method, self.url, headers=headers, content=content)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {self.url} failed: {exc or type(exc).__name__}") from exc
        return _Body(response)

    async def _reauthorize(self, body: _Body, method: str, sent: str | None, attempt: int) -> bool:
        """A 401/403 with ``auth=``: the response is read and closed before the
        authorization flow (which may wait on a user), then the flow decides whether the
        request goes again; if not, the answer's error is raised."""
        assert self._auth is not None
        response = body.response
        try:
            content = await body.read_all(64 * 1024)
        except (httpx.HTTPError, TransportError):
            content = b""
        await body.close()
        if await self._auth.refused(
            self._http, self.url, response.status_code, response.headers, sent, attempt
        ):
            return True
        self._raise_refusal(response.status_code, response.reason_phrase, content, method)

    async def _refuse(self, body: _Body, method: str) -> None:
        status = body.response.status_code
        try:
            content = await body.read_all(64 * 1024)
        except (httpx.HTTPError, TransportError) as exc:
            raise HttpStatusError(status, f"{method} refused ({body.response.reason_phrase})") from exc
        self._raise_refusal(status, body.response.reason_phrase, content, method)

    @staticmethod
    def _raise_refusal(status: int, reason: str, content: bytes, method: str) -> NoReturn:
        error = _json_rpc_error(status, content)
        if error is not None:
            raise error
        text = content.decode("utf-8", "replace").strip()[:200] or reason
        raise HttpStatusError(status, f"{method} refused: {text}", content)

    async def reconnect(self, headers: Mapping[str, str], last_event_id: str | None) -> _Body:
        return await self._open("GET", self._get_headers(headers, last_event_id))


class _HttpIncoming:
    """The messages of one HTTP response (JSON or SSE), resumed with GET and
    ``Last-Event-ID`` when its SSE stream ends early, as ``reconnect`` allows."""

    def __init__(
        self, transport: StreamableHttp, body: _Body, headers: Mapping[str, str], reconnect: Reconnect
    ) -> None:
        self._transport = transport
        self._body = body
        self._request_headers = headers
        self._reconnect = reconnect
        self._ready: deque[Envelope] = deque()
        self._parser = SseParser(max_event_size=transport.max_message_size)
        self._done = False
        self._failed_reconnects = 0
        self.headers: Mapping[str, str] = body.response.headers
        self.status = body.response.status_code

    async def close(self) -> None:
        await self._body.close()

    async def receive(self) -> Envelope | None:
        while not self._ready:
            if self._done:
                return None
            await self._fill()
        return self._ready.popleft()

    async def _fill(self) -> None:
        response = self._body.response
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code in (202, 204) or (content_type == "" and not self._parser.pending):
            self._done = True
            return
        if content_type == "application/json":
            try:
                content = await self._body.read_all(self._transport.max_message_size)
            except httpx.HTTPError as exc:
                raise TransportError(f"reading the response failed: {exc}") from exc
            self._done = True
            self._accept(content)
            return
        if content_type != "text/event-stream":
            raise TransportError(f"the server answered with {content_type or 'no content type'}, not MCP")
        try:
            chunk = await self._body.next_chunk()
        except httpx.HTTPError as exc:
            if not self._can_resume():
                raise TransportError(f"the event stream broke: {exc or type(exc).__name__}") from exc
            chunk = None
        if chunk is None:
            if self._can_resume():
                await self._resume()
            else:
                self._done = True
            return
        try:
            events = self._parser.feed(chunk)
        except SseTooLarge as exc:
            raise TransportError(str(exc)) from exc
        for event in events:
            self._failed_reconnects = 0
            if event.event == "message" and event.data.strip():
                self._accept(event.data.encode())

    def _accept(self, data: bytes) -> None:
        try:
            parsed = jsonrpc.parse_body(data)
        except ProtocolError as exc:
            raise TransportError(f"the server sent a message that is not JSON-RPC: {exc.message}") from exc
        self._ready.extend(parsed if isinstance(parsed, list) else [parsed])

    def _can_resume(self) -> bool:
        if self._reconnect == "always":
            return True
        return self._reconnect == "with-id" and self._parser.last_event_id is not None

    async def _resume(self) -> None:
        """Wait as the server asked (``retry:``), then GET the rest of the stream."""
        if self._failed_reconnects >= MAX_RECONNECTS:
            raise TransportError(f"the event stream ended {MAX_RECONNECTS} times in a row without an event")
        self._failed_reconnects += 1
        retry = self._parser.retry if self._parser.retry is not None else DEFAULT_RETRY_MS
        await self._body.close()
        await trio.sleep(min(retry, MAX_RETRY_MS) / 1000)
        self._body = await self._transport.reconnect(self._request_headers, self._parser.last_event_id)
        parser = SseParser(
            max_event_size=self._transport.max_message_size, last_event_id=self._parser.last_event_id
        )
        parser.retry = self._parser.retry
        self._parser = parser
