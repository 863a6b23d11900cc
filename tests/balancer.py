"""A plain round-robin HTTP/1.1 balancer on 127.0.0.1, for the tests of a fleet.

It balances *per request*, not per connection: HTTP clients (the conformance suite's
Node ``fetch``, httpx) keep one keep-alive connection and send every request on it, so
a balancer that picked a worker per connection would send a whole session to one
worker and prove nothing.  Each request on a client connection is parsed with h11 and
forwarded on a new connection to the next worker of the list; the response (a JSON
body, or an SSE stream of any length) is relayed as it arrives.  No affinity, no
inspection of MCP headers: what a real round-robin proxy does.

The worker list can change while it runs (:meth:`Balancer.remove`, :meth:`add`), as a
deployment deregisters a worker before stopping it and registers its replacement.  A
worker that refuses the connection is skipped (the next one is tried); with none
left, the client gets 502.  A response cut off upstream is cut off for the client
too: the client connection is closed without completing it, as the worker's was.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable

import h11
import trio

#: Hop-by-hop headers: about one connection, never forwarded.
_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"proxy-connection",
}
MAX_BODY = 8 * 1024 * 1024


class Balancer:
    def __init__(self, ports: list[int]) -> None:
        self.ports = list(ports)
        self.port = 0
        self._turn = itertools.count()
        #: Requests forwarded to each worker port.
        self.forwarded: Counter[int] = Counter()
        #: Requests sent to each worker port whose response has not started: the worker
        #: may not have read them yet.  A deployment stops a worker it deregistered
        #: only once this is 0, or the worker, draining, refuses them with 503.
        self.unacknowledged: Counter[int] = Counter()
        self.refused = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def add(self, port: int) -> None:
        self.ports.append(port)

    def remove(self, port: int) -> None:
        self.ports.remove(port)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._client, listeners, handler_nursery=nursery)

    async def _connect(self) -> tuple[int, trio.SocketStream] | None:
        for _ in range(max(1, len(self.ports))):
            ports = self.ports
            if not ports:
                return None
            port = ports[next(self._turn) % len(ports)]
            self.unacknowledged[port] += 1  # from the moment it is chosen
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                self.unacknowledged[port] -= 1
                self.refused += 1
                continue
            except BaseException:
                self.unacknowledged[port] -= 1
                raise
            return port, stream
        return None

    async def _client(self, client: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            async with client:
                while True:
                    request, body = await _read_request(conn, client)
                    if request is None:
                        return
                    if not await self._forward(conn, client, request, body):
                        return  # the response was cut off: so is this connection
                    if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return

    async def _forward(
        self, conn: h11.Connection, client: trio.SocketStream, request: h11.Request, body: bytes
    ) -> bool:
        picked = await self._connect()
        if picked is None:
            message = b"no worker is reachable"
            headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(message)).encode())]
            await client.send_all(conn.send(h11.Response(status_code=502, headers=headers)) or b"")
            await client.send_all(
                (conn.send(h11.Data(data=message)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            )
            return True
        port, upstream = picked
        self.forwarded[port] += 1
        waiting = [True]

        def acknowledged() -> None:
            if waiting[0]:
                waiting[0] = False
                self.unacknowledged[port] -= 1

        complete = False
        try:
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(_watch_client_eof, conn, client, nursery.cancel_scope)
                complete = await _relay(conn, client, upstream, request, body, acknowledged)
                nursery.cancel_scope.cancel()
        finally:
            acknowledged()
        return complete


async def _read_request(conn: h11.Connection, client: trio.SocketStream) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await client.receive_some(65536))
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                return None, b""
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        else:  # ConnectionClosed, or PAUSED
            return None, b""


async def _watch_client_eof(conn: h11.Connection, client: trio.SocketStream, scope: trio.CancelScope) -> None:
    """While a response is relayed: a client that goes away ends the exchange (and so
    closes the upstream connection, as the client closed its own)."""
    try:
        while True:
            data = await client.receive_some(65536)
            if not data:
                break
            conn.receive_data(data)  # a next request, read once this response is done
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


async def _relay(
    conn: h11.Connection,
    client: trio.SocketStream,
    upstream: trio.SocketStream,
    request: h11.Request,
    body: bytes,
    acknowledged: Callable[[], None],
) -> bool:
    """Forward one request and relay its response; ``False`` if it was cut off."""
    up = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
    headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP and k.lower() != b"content-length"]
    if body or request.method in (b"POST", b"PUT", b"PATCH"):
        headers.append((b"content-length", str(len(body)).encode()))
    data = up.send(h11.Request(method=request.method, target=request.target, headers=headers)) or b""
    if body:
        data += up.send(h11.Data(data=body)) or b""
    data += up.send(h11.EndOfMessage()) or b""
    try:
        await upstream.send_all(data)
        while True:
            event = up.next_event()
            if event is h11.NEED_DATA:
                up.receive_data(await upstream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                acknowledged()
                kept = [(k, v) for k, v in event.headers if k.lower() not in _HOP]
                out = conn.send(
                    h11.Response(status_code=event.status_code, headers=kept, reason=event.reason)
                )
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Data):
                out = conn.send(h11.Data(data=event.data))
            elif isinstance(event, h11.EndOfMessage):
                await client.send_all(conn.send(h11.EndOfMessage()) or b"")
                return True
            else:
                return False
            if out:
                await client.send_all(out)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return False
