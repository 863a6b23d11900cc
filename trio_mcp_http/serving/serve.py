"""Serving: Hypercorn's protocol stack on our own trio accept loop, with the drain
running before connections are closed.

Hypercorn's trio worker (``hypercorn.trio.serve``) is not used as is, because of three
properties of its connection handling:

* an exception escaping one connection's task escapes the listener's nursery and ends
  the whole server (e.g. Hypercorn 0.18's ``KeyError`` on HTTP/2 DATA for a stream whose
  response is already complete: one h2c request could stop the process);
* it writes inside a shielded cancel scope with no timeout, so a peer that stops
  reading blocks the write, and the shutdown, for as long as the kernel lets it;
* it closes sockets with unread request bytes in them, and closes listening sockets
  with connections still in their accept queue; the kernel answers both with a TCP
  reset (RFC 9293 §3.10.7.1, §3.10.7.4), so a client loses a response it was owed or
  cannot tell a refused request from a failed one.

So :class:`_Worker` runs Hypercorn's ``TCPServer`` (HTTP/1.1 and HTTP/2 protocol
handling) once per accepted connection, under its own accept loop, and:

* contains any failure of one connection to that connection (logged once, at ERROR);
* hands ``TCPServer`` a :class:`_Connection` stream whose writes fail when the peer
  takes no data for ``peer_timeout`` seconds, and whose every operation is aborted at
  the shutdown's hard deadline, shield or no shield;
* closes each connection with a bounded *lingering close* (as nginx does): send FIN,
  read and discard what the peer still sends, then close;
* at shutdown stops taking new connections without resetting queued ones.
"""

from __future__ import annotations

import ctypes
import difflib
import errno
import logging
import math
import os
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, nullcontext, suppress
from dataclasses import fields, replace
from typing import Any, Unpack

import h2.events
import trio
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.events import Closed, RawData, Updated
from hypercorn.events import Event as HypercornEvent
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper
from hypercorn.utils import repr_socket_addr, wrap_app
from hyperframe.frame import GoAwayFrame

from ..protocol.errors import ConfigError, UsageError
from ..protocol.http import HostPolicy
from ..server.adapt import serving
from ..server.mcp_server import McpServer
from ..transport.app import McpHttpApp
from ..transport.config import TransportConfig, TransportSettings

__all__ = ["McpHttpServer", "open_mcp_server", "serve"]

logger = logging.getLogger("trio_mcp_http")

#: Lingering close: at most this many bytes are read and discarded after our FIN ...
LINGER_BYTES = 16 * 1024 * 1024
#: ... for at most this long in all ...
LINGER_TIME = 5.0
#: ... and the peer may stay silent this long before we stop waiting for it.
LINGER_IDLE = 0.2
#: At shutdown: how long new handshakes are refused while the ones under way complete.
HANDSHAKE_SETTLE = 0.25
_RECV_SIZE = 65536
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


class McpHttpServer:
    """A running server, as yielded by :func:`open_mcp_server`."""

    def __init__(self, app: McpHttpApp, binds: list[str], shutdown: trio.Event) -> None:
        self.app = app
        #: Hypercorn's bind URLs, e.g. ``["http://127.0.0.1:8000"]``.
        self.binds = binds
        self._shutdown = shutdown

    @property
    def url(self) -> str:
        """The MCP endpoint URL of the first bind."""
        return self.binds[0] + self.app.config.path

    @property
    def port(self) -> int:
        return int(self.binds[0].rsplit(":", 1)[1])

    def shutdown(self) -> None:
        """Start the graceful shutdown (returns at once; the context manager waits)."""
        self._shutdown.set()

    async def wait_shutdown_requested(self) -> None:
        await self._shutdown.wait()

    def statistics(self) -> dict[str, int]:
        return self.app.statistics()


def _check_bindable(bind: str) -> None:
    """Raise the OSError binding ``host:port`` would raise (address taken, not this
    machine's, unknown), from a socket of our own that is closed either way: Hypercorn
    leaves the socket of a failed bind open."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, int(port)))


class _HypercornConfig(HypercornConfig):
    """Hypercorn's config, with a kernel-enforced bound on unacknowledged data.

    ``TCP_USER_TIMEOUT`` (Linux, RFC 5482) on the listening sockets, inherited by every
    accepted connection, makes the kernel abort a connection whose data stays
    unacknowledged (or whose receive window stays closed) for ``peer_timeout``.  The
    write deadline of :class:`_Connection` covers writes in progress; this also covers
    data already handed to the kernel, e.g. a response still queued when the socket is
    closed, which would otherwise keep an orphaned socket alive for many minutes.
    """

    peer_timeout: float | None = None

    def create_sockets(self) -> Sockets:
        for bind in self.bind:
            if not bind.startswith("fd://"):
                _check_bindable(bind)
        sockets = super().create_sockets()
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        if self.peer_timeout is not None and option is not None:
            for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, option, max(1, round(self.peer_timeout * 1000)))
        return sockets


# -- one connection ------------------------------------------------------------------


#: POSIX: a socket's file descriptor can be written with os.write (the fast path of
#: _Connection.send_all).
_WRITE_FAST = os.name == "posix"


class _Connection(trio.abc.HalfCloseableStream):
    """The stream Hypercorn's ``TCPServer`` reads and writes for one TCP connection.

    * ``send_all`` fails with :exc:`trio.BrokenResourceError` once the peer has taken
      no data for ``peer_timeout`` seconds.  The deadline lives in a cancel scope
      *inside* this method, so it fires even though Hypercorn calls it under a shield.
    * :meth:`abort` (the shutdown's hard deadline) ends any operation in progress.
    * ``aclose`` (Hypercorn is done) sends FIN and wakes pending operations, but keeps
      the socket open: :meth:`close_lingering` closes it, after reading what the peer
      still sends.  Closing a socket with unread data makes the kernel send a reset
      (RFC 9293 §3.10.7.4, RFC 1122 §4.2.2.13), which can destroy the response
      just sent before the peer has read it.
    """

    def __init__(self, stream: trio.SocketStream, peer_timeout: float | None) -> None:
        self.transport = stream
        #: What Hypercorn reads the peer and local addresses from.
        self.socket = stream.socket
        self._peer_timeout = math.inf if peer_timeout is None else peer_timeout
        self._deadline = math.inf  # the hard deadline, once set
        self._operations: set[trio.CancelScope] = set()
        self._closing = False
        self._eof_sent = False
        #: The peer stopped reading, or the connection was aborted: no lingering.
        self.broken = False

    def set_deadline(self, deadline: float) -> None:
        """Abort every operation still running at ``deadline`` (absolute trio time)."""
        self._deadline = deadline
        for scope in self._operations:
            scope.deadline = min(scope.deadline, deadline)

    def abort(self) -> None:
        self.broken = True
        self._closing = True
        for scope in self._operations:
            scope.cancel()

    def _scope(self, timeout: float = math.inf) -> trio.CancelScope:
        return trio.CancelScope(deadline=min(trio.current_time() + timeout, self._deadline))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._eof_sent:
            raise trio.ClosedResourceError("connection closed")
        with memoryview(data) as view:
            if not view:
                await trio.lowlevel.checkpoint()
                return
            # Fast path: the kernel usually takes a response at once, and then there is
            # nothing to bound (a cancel scope per write costs ~5 us of every request).
            # The socket is non-blocking: a write it cannot take raises BlockingIOError.
            total = 0
            try:
                if _WRITE_FAST:
                    total = os.write(self.socket.fileno(), view)
            except BlockingIOError:
                pass
            except OSError as exc:
                self.broken = True
                raise trio.BrokenResourceError(str(exc)) from exc
            if total == len(view):
                await trio.lowlevel.checkpoint()
                return
            while total < len(view):
                # Each socket send returns once the kernel has taken *some* data, so
                # the deadline measures how long the peer takes nothing.
                with self._scope(self._peer_timeout) as scope:
                    self._operations.add(scope)
                    try:
                        with view[total:] as remaining:
                            total += await self.socket.send(remaining)
                    except OSError as exc:
                        self.broken = True
                        raise trio.BrokenResourceError(str(exc)) from exc
                    finally:
                        self._operations.discard(scope)
                if scope.cancelled_caught:
                    self.broken = True
                    if self._closing:
                        raise trio.ClosedResourceError("connection closed")
                    if trio.current_time() >= self._deadline:
                        raise trio.BrokenResourceError("connection aborted at the shutdown deadline")
                    logger.debug("closing a connection whose peer took no data for %g s", self._peer_timeout)
                    raise trio.BrokenResourceError(f"peer took no data for {self._peer_timeout:g} s")

    async def wait_send_all_might_not_block(self) -> None:
        with self._scope() as scope:
            self._operations.add(scope)
            try:
                await self.socket.wait_writable()
            finally:
                self._operations.discard(scope)
        if scope.cancelled_caught:
            raise trio.ClosedResourceError("connection closed")

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closing:
            raise trio.ClosedResourceError("connection closed")
        self._shutdown_write()

    def _shutdown_write(self) -> None:
        if not self._eof_sent:
            self._eof_sent = True
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                self.broken = True

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closing:
            raise trio.ClosedResourceError("connection closed")
        with self._scope() as scope:
            self._operations.add(scope)
            try:
                return await self.socket.recv(max_bytes or _RECV_SIZE)
            except OSError as exc:
                self.broken = True
                raise trio.BrokenResourceError(str(exc)) from exc
            finally:
                self._operations.discard(scope)
        raise trio.ClosedResourceError("connection closed")

    async def aclose(self) -> None:
        """Hypercorn is done with the connection: FIN now, the socket closes later."""
        if not self._closing:
            self._closing = True
            for scope in self._operations:
                scope.cancel()
            if not self.broken:
                self._shutdown_write()
        await trio.lowlevel.checkpoint()

    async def close_lingering(self) -> None:
        """Close the socket; unless broken, first read and discard (bounded in bytes
        and time) what the peer sends until it closes its side too."""
        self._closing = True
        try:
            if not self.broken:
                self._shutdown_write()
                budget = LINGER_BYTES
                with trio.move_on_after(LINGER_TIME):
                    while budget > 0:
                        # Until the peer closes too, or stays silent for a while.
                        with trio.move_on_after(LINGER_IDLE) as idle:
                            data = await self.socket.recv(min(_RECV_SIZE, budget))
                        if idle.cancelled_caught or not data:
                            break
                        budget -= len(data)
                # Past the bounds, what the peer still sends is answered with a reset.
        except OSError:
            self.broken = True
        finally:
            if self.broken:
                # A peer that stopped reading or was cut off: release the kernel's
                # buffers at once instead of retransmitting to it (SO_LINGER 0).
                with suppress(OSError):
                    self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.socket.close()


#: The scope extension through which the app hears, without a task of its own waiting
#: in ``receive()`` for ``http.disconnect``, that a request's client has gone.
DEPARTURE = "trio_mcp_http.departure"


class _Departure(HTTPStream):
    """Hypercorn's HTTP stream, which also tells the app when its client has gone.

    The app registers callbacks through the scope's ``trio_mcp_http.departure``
    extension (:meth:`add`); they are called, in the connection's task, when the stream
    closes (the client disconnected, reset the stream, or the response is complete),
    before Hypercorn queues ``http.disconnect`` for ``receive()``.  A request needs no
    task of its own to notice a departure: a spawn and a cancellation per request
    fewer.  A callback added after the stream has closed is called at once.
    """

    _departure: list[Callable[[], None]] | None

    def add(self, callback: Callable[[], None]) -> None:
        if self.closed:
            callback()
        elif self._departure is None:
            self._departure = [callback]
        else:
            self._departure.append(callback)

    async def handle(self, event: StreamEvent) -> None:
        if isinstance(event, StreamClosed):
            callbacks, self._departure = self._departure, None
            for callback in callbacks or ():
                callback()
        await super().handle(event)


def _notify_departure(stream: object) -> None:
    """Make ``stream`` (just created; its app is not running yet) a :class:`_Departure`
    and offer it in its scope.  Hypercorn creates the stream and starts its app in one
    step, so this follows it; an app that began before would simply not find the
    extension and watch ``receive()`` itself."""
    if type(stream) is HTTPStream and getattr(stream, "scope", None) is not None:
        stream.__class__ = _Departure
        stream._departure = None  # type: ignore[attr-defined]
        extensions: dict[str, Any] = stream.scope["extensions"]
        extensions[DEPARTURE] = stream


class _H11Protocol(H11Protocol):
    """Hypercorn's HTTP/1.1 protocol, offering each request's departure to the app."""

    async def _create_stream(self, request: Any) -> None:
        await super()._create_stream(request)
        _notify_departure(self.stream)


class _H2Protocol(H2Protocol):
    """Hypercorn 0.18's HTTP/2 protocol, tolerant of DATA for a finished stream, saying
    GOAWAY when the server closes an idle connection at shutdown, and closing a
    connection at its request limit only once its streams are done.

    A server may answer before it has read the whole request (RFC 9113 §8.1): the
    stream is then half-closed (local) and the client may go on sending DATA on it
    (§5.1).  Hypercorn forgets the stream once the response is complete and then
    fails with ``KeyError`` on that DATA, taking the whole connection down.  Such DATA
    is discarded here, and acknowledged: it counts against the connection's
    flow-control window (§6.9), so not acknowledging it would stall the connection's
    other streams.  Events are handled one at a time because handling one may finish a
    stream the next one belongs to.

    Hypercorn sends GOAWAY when the last stream of a connection ends during shutdown,
    but the drain ends every stream *before* connections are told to close, and an
    idle connection is then closed without one.  A server closing a connection should
    send GOAWAY first (§6.8): it tells the client which streams were processed and that
    the close is deliberate.

    At ``keep_alive_max_requests`` Hypercorn calls h2's ``close_connection()``: GOAWAY,
    but also h2's connection state CLOSED, after which h2 refuses to send anything, so
    the requests still in flight on the connection were never answered (and the
    GOAWAY's last-stream-id, h2's highest inbound stream, could name streams that were
    never processed).  Here the connection goes away gracefully (§6.8): a GOAWAY with
    NO_ERROR and the last stream accepted, written by us with h2's state left open;
    streams the client still opens are refused with REFUSED_STREAM (§8.7: not
    processed, safe to retry); the accepted ones complete; when none is left, h2
    closes the connection (a final GOAWAY, same last-stream-id) and so does Hypercorn.
    The limit counts requests as Hypercorn's HTTP/1.1 does: the connection takes
    ``keep_alive_max_requests`` of them (Hypercorn's HTTP/2 took one more).

    Internals this relies on (Hypercorn 0.18 has no public hooks here): the protocol's
    ``streams``, ``stream_buffers`` (a stream's send buffer, which its send task drops
    only after END_STREAM), ``keep_alive_requests``, ``closed``, its ``_create_stream``,
    ``_close_stream``, ``_send_data`` and ``_flush``; and h2's ``state_machine.state``.
    """

    #: Once the request limit's GOAWAY is out: the last stream it accepts.  (A class
    #: attribute: instances are Hypercorn's, their class swapped, never constructed.)
    _last_stream_id: int | None = None

    async def handle(self, event: HypercornEvent) -> None:
        if (
            isinstance(event, Closed)
            and self.context.terminated.is_set()
            and self.connection.state_machine.state is not ConnectionState.CLOSED
        ):
            # After the request limit's GOAWAY, the same last-stream-id: it may not grow.
            self.connection.close_connection(last_stream_id=self._last_stream_id)
            await self._flush()
        await super().handle(event)

    async def _create_stream(self, request: h2.events.RequestReceived) -> None:
        await super()._create_stream(request)
        _notify_departure(self.streams.get(request.stream_id))

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                if event.flow_controlled_length:
                    self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                await self._flush()
            elif isinstance(event, h2.events.RequestReceived) and self._last_stream_id is not None:
                # Opened before the client saw our GOAWAY: not processed.
                self.connection.reset_stream(event.stream_id, error_code=ErrorCodes.REFUSED_STREAM)
                await self._flush()
            elif isinstance(event, h2.events.RequestReceived) and not self.context.terminated.is_set():
                # Hypercorn's handling, without its close_connection() at the limit.
                await self._create_stream(event)
                await self.send(Updated(idle=False))
                if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                    await self._go_away(event.stream_id)
                await self._flush()
            else:
                await super()._handle_events([event])
        if self._last_stream_id is not None:
            # The client may have reset the last streams.
            await self._close_when_done()

    async def stream_send(self, event: StreamEvent) -> None:
        if isinstance(event, StreamClosed) and self._last_stream_id is not None:
            # Hypercorn's handling, but the connection closes once no stream is left
            # (and never with h2's default last-stream-id).
            await self._close_stream(event.stream_id)
            await self._close_when_done()
            if not self.closed:
                await self.send(Updated(idle=self.idle))
        else:
            await super().stream_send(event)

    async def _send_data(self, stream_id: int) -> None:
        await super()._send_data(stream_id)
        if self._last_stream_id is not None:
            # A response's END_STREAM goes out here, possibly after its stream closed.
            await self._close_when_done()

    async def _go_away(self, last_stream_id: int) -> None:
        """Say GOAWAY (NO_ERROR, ``last_stream_id``) and take no new stream.

        h2 has no graceful GOAWAY (``close_connection()`` closes its state machine,
        python-hyper/h2#1181), so the frame is serialized here (hyperframe, h2's own
        framing layer) and written through Hypercorn's send path, after what h2 has
        pending, so the frames stay in order.  ``last_stream_id`` is the stream just
        accepted, not h2's highest inbound stream: HEADERS that came in the same read
        are already counted there, and are refused instead.
        """
        self._last_stream_id = last_stream_id
        await self._flush()
        goaway = GoAwayFrame(stream_id=0, last_stream_id=last_stream_id, error_code=ErrorCodes.NO_ERROR)
        await self.send(RawData(data=goaway.serialize()))

    async def _close_when_done(self) -> None:
        """After the request limit's GOAWAY: close the connection once every accepted
        stream has ended, its response sent to the end (the stream is gone, and so is
        its send buffer, which Hypercorn's send task drops after END_STREAM)."""
        if (
            self._last_stream_id is None
            or self.closed
            or self.streams
            or self.stream_buffers
            or self.connection.state_machine.state is ConnectionState.CLOSED
        ):
            return
        self.connection.close_connection(last_stream_id=self._last_stream_id)
        await self._flush()
        await self.send(Closed())


class _TCPServer(TCPServer):
    """Hypercorn's per-connection server, with :class:`_H2Protocol` for HTTP/2, a
    keep-alive clock that starts no task per request, and writes held together on
    request (:class:`_Cork`).

    Hypercorn picks the HTTP/2 protocol class itself (ALPN, h2c upgrade or prior
    knowledge); its first act is to send the server preface, through
    :meth:`protocol_send`, before it handles any frame of the client's: that is where
    the class is swapped, per connection, leaving Hypercorn itself unchanged.
    """

    def __init__(self, app: AppWrapper, *args: Any) -> None:
        self.cork = _Cork(self)
        super().__init__(_Corked(app, self.cork), *args)
        self.idle_task = _IdleClock(self)  # type: ignore[assignment]

    async def protocol_send(self, event: HypercornEvent) -> None:
        protocol = self.protocol.protocol
        if type(protocol) is H2Protocol:
            protocol.__class__ = _H2Protocol
        held = self.cork.held
        if held is not None:
            if isinstance(event, RawData):
                held.append(event.data)
                # Still a checkpoint, as a write is: other tasks (the request's handler,
                # say) run meanwhile, as they would while the write went out.
                await trio.lowlevel.checkpoint()
                return
            if isinstance(event, Closed):
                # What was held goes out before the FIN, bounded as a response's final
                # send is (final_send_timeout, which serve() sets as graceful_timeout):
                # held sends themselves only queue, and are not bounded on their own.
                with trio.move_on_after(self.config.graceful_timeout):
                    await self.cork.flush()
        await super().protocol_send(event)

    async def send_raw(self, data: bytes) -> None:
        await super().protocol_send(RawData(data))

    async def _read_data(self) -> None:
        if type(self.protocol.protocol) is H11Protocol:
            self.protocol.protocol.__class__ = _H11Protocol
        try:
            if self.config.read_timeout is None:
                await self._read_untimed()
            else:
                await super()._read_data()
        finally:
            # The peer's side has ended: the keep-alive clock has nothing left to time.
            self.idle_task.close()  # type: ignore[attr-defined]

    async def _read_untimed(self) -> None:
        """Hypercorn's read loop, without its per-read timeout scope when there is no
        ``read_timeout`` (the default): each read is already bounded by the stream's
        own scope (aborted at shutdown, woken when the connection closes)."""
        while True:
            try:
                data = await self.stream.receive_some(_RECV_SIZE)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(data if type(data) is bytes else bytes(data)))
            if not data:
                break
        await self.protocol.handle(Closed())


class _Cork:
    """Holds one HTTP/1.1 connection's writes together: a response's head and body go
    out in one write (one system call, one pass through Hypercorn's send lock) instead
    of two or three.  The app asks for it, through the ASGI scope's extension
    ``trio_mcp_http.cork``, around a response it sends whole."""

    __slots__ = ("_server", "held")

    def __init__(self, server: _TCPServer) -> None:
        self._server = server
        self.held: list[bytes] | None = None

    def hold(self) -> None:
        if self.held is None:
            self.held = []

    async def flush(self) -> None:
        held, self.held = self.held, None
        if held:
            await self._server.send_raw(b"".join(held))


class _Corked:
    """The connection's app: Hypercorn's, with the cork in each HTTP/1.1 scope."""

    __slots__ = ("_app", "_cork")

    def __init__(self, app: AppWrapper, cork: _Cork) -> None:
        self._app = app
        self._cork = cork

    async def __call__(self, scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any) -> None:
        if scope.get("http_version") == "1.1" and scope["type"] == "http":
            # HTTP/2 streams share the connection: one stream's held writes would
            # hold back the others', so only HTTP/1.1 connections cork.
            scope["extensions"]["trio_mcp_http.cork"] = self._cork
        await self._app(scope, receive, send, sync_spawn, call_soon)


class _IdleClock:
    """Hypercorn's keep-alive clock, with Hypercorn's rule (an idle connection closes
    after ``keep_alive_timeout``, or at once when the server terminates; a busy one
    never does) and one task for the connection's life.  Hypercorn's own starts a task
    at the end of every request and cancels it at the start of the next: a task spawn,
    two lock round trips and a cancellation per request.

    Here a request costs no wake-up at all: its start only notes that the connection is
    busy, and its end moves the watcher's deadline.  The watcher looks again only when
    its deadline passes (busy by then: it waits for the next idle spell) or when the
    server terminates.
    """

    __slots__ = ("_closed", "_deadline", "_idle", "_scope", "_server", "_watching")

    def __init__(self, server: _TCPServer) -> None:
        self._server = server
        self._idle = False
        self._deadline = math.inf
        self._scope: trio.CancelScope | None = None
        self._watching = False
        self._closed = False

    def close(self) -> None:
        """The connection's reading has ended: stop, without closing anything."""
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        """The connection is idle (Hypercorn's ``Updated(idle=True)``, and at its start)."""
        self._idle = True
        self._deadline = trio.current_time() + self._server.config.keep_alive_timeout
        if not self._watching:
            self._watching = True
            task_group._nursery.start_soon(self._watch)
        elif self._scope is not None:
            if self._server.context.terminated.is_set():
                self._scope.cancel()  # idle during termination: close now
            else:
                self._scope.deadline = self._deadline
        await trio.lowlevel.checkpoint()

    async def stop(self) -> None:
        """The connection is busy (a request arrived)."""
        self._idle = False
        await trio.lowlevel.checkpoint()

    async def _watch(self) -> None:
        terminated = self._server.context.terminated
        while not self._closed:
            idle = self._idle
            with trio.CancelScope(deadline=self._deadline if idle else math.inf) as scope:
                self._scope = scope
                if idle or not terminated.is_set():
                    await terminated.wait()
                else:
                    await trio.sleep_forever()  # busy while terminating: until idle
            self._scope = None
            if self._closed:
                return
            if self._idle and (terminated.is_set() or trio.current_time() >= self._deadline):
                break  # idle, and the server terminates or the connection timed out
        else:
            return
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()


# -- listening sockets ---------------------------------------------------------------

# A classic BPF socket filter: drop TCP segments with SYN set and ACK clear, keep the
# rest.  A socket filter sees the TCP header at offset 0; the flags are its byte 13.
_SYN_FILTER = b"".join(
    struct.pack("HBBI", code, jt, jf, k)
    for code, jt, jf, k in (
        (0x30, 0, 0, 13),  # ldb [13]
        (0x54, 0, 0, 0x12),  # and #(SYN|ACK)
        (0x15, 0, 1, 0x02),  # jeq #SYN, drop, keep
        (0x06, 0, 0, 0),  # drop
        (0x06, 0, 0, 0xFFFFFFFF),  # keep
    )
)
_SO_ATTACH_FILTER = 26


def _ignore_new_handshakes(sock: socket.socket) -> None:
    """Linux: drop new connection attempts (SYNs) from now on; handshakes under way
    still complete.

    Closing a listening socket resets every connection in its queues (RFC 9293
    §3.10.7.1), and those clients may have sent their request already.  With SYNs
    dropped, the queue only holds connections that are accepted before the close;
    the clients refused meanwhile retransmit their SYN (RFC 6298) and are then refused
    with a reset *before* the connection exists, which says plainly that nothing was
    sent.  Elsewhere this is a no-op: the close itself keeps a small window.
    """
    if sys.platform != "linux" or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    program = ctypes.create_string_buffer(_SYN_FILTER)
    fprog = struct.pack("@HP", len(_SYN_FILTER) // 8, ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        logger.debug("could not attach the SYN filter", exc_info=True)


class _Worker:
    """Serves ``app`` on the config's binds until ``shutdown_trigger`` returns.

    Then: idle connections are closed, busy ones finish their responses, for at most
    ``config.graceful_timeout`` seconds; at that deadline every remaining connection
    is aborted (even a write blocked under Hypercorn's shield).  Hypercorn's
    ``max_requests`` and the ASGI lifespan protocol are not used: :func:`open_mcp_server`
    runs the app itself.
    """

    def __init__(self, app: AppWrapper, config: HypercornConfig, peer_timeout: float | None) -> None:
        self.app = app
        self.config = config
        self.peer_timeout = peer_timeout
        self.context = WorkerContext(None)
        self.ssl_context = config.create_ssl_context()
        self.connections: set[_Connection] = set()
        self._deadline = math.inf
        self._last_report = -math.inf
        self._held_back = 0

    async def run(
        self, shutdown_trigger: Callable[[], Awaitable[None]], task_status: trio.TaskStatus[list[str]]
    ) -> None:
        self.config.set_statsd_logger_class(StatsdLogger)
        sockets = self.config.create_sockets()
        listening = [(sock, True) for sock in sockets.secure_sockets]
        listening += [(sock, False) for sock in sockets.insecure_sockets]
        # trio's wrappers share the stdlib socket (made non-blocking), and close it
        # the way trio needs (waking any task still waiting on it).
        wrapped = [trio.socket.from_stdlib_socket(sock) for sock, _ in listening]
        try:
            binds = []
            for sock, tls in listening:
                sock.listen(self.config.backlog)
                address = repr_socket_addr(sock.family, sock.getsockname())
                binds.append(f"{'https' if tls else 'http'}://{address}")
            async with trio.open_nursery() as connections:
                try:
                    async with trio.open_nursery() as acceptors:
                        for (_, tls), trio_sock in zip(listening, wrapped, strict=True):
                            listener = trio.SocketListener(trio_sock)
                            acceptors.start_soon(self._accept, listener, tls, connections)
                        task_status.started(binds)
                        await shutdown_trigger()
                        await self._begin_shutdown(connections)
                        for sock, _ in listening:
                            _ignore_new_handshakes(sock)
                        await trio.sleep(min(HANDSHAKE_SETTLE, self.config.graceful_timeout))
                        acceptors.cancel_scope.cancel()
                    for (sock, tls), trio_sock in zip(listening, wrapped, strict=True):
                        self._accept_queued(sock, tls, connections)
                        trio_sock.close()
                except BaseException:
                    # Cancelled or failed: stop now, writes blocked under Hypercorn's
                    # shield included, rather than wait for the connections to finish.
                    self._abort_all()
                    raise
        finally:
            for trio_sock in wrapped:
                trio_sock.close()

    def _abort_all(self) -> None:
        self._deadline = -math.inf
        for connection in self.connections:
            connection.abort()

    async def _begin_shutdown(self, connections: trio.Nursery) -> None:
        # Hypercorn closes idle keep-alive connections, and busy ones after their
        # current response, once ``terminated`` is set.
        await self.context.terminated.set()
        self._deadline = trio.current_time() + self.config.graceful_timeout
        connections.cancel_scope.deadline = self._deadline
        for connection in self.connections:
            connection.set_deadline(self._deadline)

    async def _accept(self, listener: trio.SocketListener, tls: bool, connections: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                # Out of descriptors or memory: wait for connections to end.
                logger.error("accept() failed: %s; retrying in 100 ms", exc)
                await trio.sleep(0.1)
            else:
                connections.start_soon(self._serve_connection, stream, tls)

    def _accept_queued(self, sock: socket.socket, tls: bool, connections: trio.Nursery) -> None:
        """Accept what completed its handshake before the listening socket closes."""
        while True:
            try:
                accepted, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue  # reset by the peer while queued
                return
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(accepted))
            connections.start_soon(self._serve_connection, stream, tls)

    def _report(self, stream: trio.SocketStream, failure: BaseExceptionGroup[Exception]) -> None:
        """Log a failed connection: with its traceback at most once a minute (at
        ERROR), otherwise in one line (at DEBUG), with a count of those held back."""
        now = trio.current_time()
        if now - self._last_report >= _REPORT_EVERY:
            held = f" ({self._held_back} more since the last report)" if self._held_back else ""
            logger.error("connection from %s failed; closed it%s", _peer(stream), held, exc_info=failure)
            self._last_report = now
            self._held_back = 0
        else:
            self._held_back += 1
            logger.debug("connection from %s failed; closed it: %r", _peer(stream), failure.exceptions)

    async def _serve_connection(self, stream: trio.SocketStream, tls: bool) -> None:
        connection = _Connection(stream, self.peer_timeout)
        connection.set_deadline(self._deadline)
        if self._deadline == -math.inf:
            connection.abort()
        self.connections.add(connection)
        try:
            served: trio.abc.Stream = connection
            if tls:
                assert self.ssl_context is not None
                served = trio.SSLStream(connection, self.ssl_context, server_side=True, https_compatible=True)
            try:
                await _TCPServer(self.app, self.config, self.context, {}, served)
            except* Exception as failure:
                # One connection's failure (a protocol implementation bug, a peer
                # driving it into an unexpected state) must not end the server.  The
                # close stays orderly: a reset could destroy responses the peer has
                # not read yet, e.g. those of the connection's other HTTP/2 streams.
                self._report(stream, failure)
        finally:
            self.connections.discard(connection)
            if trio.current_time() >= self._deadline and not connection.broken:
                connection.abort()
            await connection.close_lingering()


#: Seconds between two full reports of a failed connection: one traceback shows the
#: fault; a peer repeating it (each malformed HTTP/2 header block can trip Hypercorn)
#: must not flood the log.
_REPORT_EVERY = 60.0


def _peer(stream: trio.SocketStream) -> str:
    try:
        return repr_socket_addr(stream.socket.family, stream.socket.getpeername())
    except OSError:
        return "a closed socket"


#: Hypercorn settings serve() decides itself (the drain and the accept loop rely on them).
_OWN_HYPERCORN_SETTINGS = frozenset({"bind", "insecure_bind", "quic_bind", "graceful_timeout", "errorlog"})


def _hypercorn_config(
    host: str,
    port: int,
    config: TransportConfig,
    peer_timeout: float | None,
    options: Mapping[str, Any],
    sock: socket.socket | None = None,
) -> _HypercornConfig:
    hc = _HypercornConfig()
    hc.peer_timeout = peer_timeout
    if sock is not None:
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise UsageError("sock must be a TCP socket (AF_INET or AF_INET6, SOCK_STREAM)")
        # Ours from now on: the caller's object lets go of the descriptor, so it cannot
        # close it (or a later one with the same number) behind the server's back.
        hc.bind = [f"fd://{sock.detach()}"]
    else:
        hc.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    # The drain has completed every response before connections are closed; what
    # remains are idle keep-alive connections, closed at once, and lingering closes.
    hc.graceful_timeout = config.final_send_timeout
    # Log through the standard logging tree (configured by the application), once.
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.accesslog = None
    # No "server: hypercorn-h11" on every response: it tells a scanner what runs here,
    # and costs a header (validated by h11) per response.  hypercorn= may turn it on.
    hc.include_server_header = False
    # A WebSocket message is bounded as a POST body is: Hypercorn buffers a message
    # whole before the app sees it, so its own bound is the one that holds memory down
    # (a larger message is closed with 1009, RFC 6455 §7.4.1).
    hc.websocket_max_message_size = config.max_body_size
    for key, value in options.items():
        if key in _OWN_HYPERCORN_SETTINGS:
            raise UsageError(f"hypercorn={{{key!r}: ...}}: serve() sets {key} itself (use host/port/config)")
        if key.startswith("_") or not hasattr(HypercornConfig, key):
            raise UsageError(f"unknown Hypercorn setting {key!r}{_nearest(key, _hypercorn_names())}")
        setattr(hc, key, value)
    return hc


def _hypercorn_names() -> list[str]:
    return [name for name in vars(HypercornConfig) if not name.startswith("_")]


def _nearest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


#: The keywords of open_mcp_server() besides the transport settings.
_SERVE_KEYWORDS = (
    "host",
    "port",
    "config",
    "allowed_hosts",
    "allowed_origins",
    "dns_rebinding_protection",
    "peer_timeout",
    "hypercorn",
)


def _transport_config(config: TransportConfig | None, settings: dict[str, Any]) -> TransportConfig:
    """``config`` with the keyword ``settings`` applied; unknown names are a UsageError
    naming the nearest valid one, never an option silently passed elsewhere."""
    if config is not None and not isinstance(config, TransportConfig):
        raise UsageError(f"config must be a TransportConfig, not {type(config).__name__}")
    known = {f.name for f in fields(TransportConfig)}
    for name in settings:
        if name not in known:
            raise UsageError(f"unknown setting {name!r}{_nearest(name, [*known, *_SERVE_KEYWORDS])}")
    return replace(config or TransportConfig(), **settings)


def _check_peer_timeout(peer_timeout: float | None) -> None:
    if peer_timeout is not None and not (0 < peer_timeout < math.inf):
        raise ConfigError(f"peer_timeout must be a positive number of seconds or None, not {peer_timeout!r}")


@asynccontextmanager
async def open_mcp_server(
    server: McpServer | object,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: TransportConfig | None = None,
    allowed_hosts: Iterable[str] = (),
    allowed_origins: Iterable[str] = (),
    dns_rebinding_protection: bool | None = None,
    peer_timeout: float | None = 10.0,
    hypercorn: Mapping[str, Any] | None = None,
    sock: socket.socket | None = None,
    **settings: Unpack[TransportSettings],
) -> AsyncIterator[McpHttpServer]:
    """Serve ``server`` with Hypercorn's HTTP/1.1 and HTTP/2 stack for the duration of the block.

    ``server`` is an :class:`McpServer`, or a server written for the official MCP SDK
    (``mcp.server.lowlevel.Server``, ``mcp.server.mcpserver.MCPServer``) or for FastMCP,
    served unmodified (docs/sdk.md).

    Transport settings are the fields of :class:`TransportConfig`, given as keywords
    (``json_response=True``) or as ``config=`` (keywords override it); an unknown
    keyword is a :class:`~trio_mcp_http.UsageError` naming the nearest valid one.
    Hypercorn's own settings go in ``hypercorn={"keep_alive_timeout": 10, ...}``.

    Leaving the block (or calling :meth:`McpHttpServer.shutdown`) drains the server
    (see :meth:`McpHttpApp.drain`), then closes the connections: idle ones at once,
    the rest when their response is complete, and whatever is left after
    ``final_send_timeout`` more seconds is aborted.  So the exit is bounded by the
    drain's bound plus that, whatever the peers do.  Port 0 picks a free port (see
    ``.port``).

    ``peer_timeout``: a connection whose peer takes no data for this many seconds while
    the server writes to it is closed (and, on Linux, the kernel aborts one whose data
    stays unacknowledged that long: ``TCP_USER_TIMEOUT``).  ``None``: no such limit
    (a stalled peer then holds its own requests, until shutdown).

    ``allowed_hosts``, ``allowed_origins`` and ``dns_rebinding_protection`` shape the
    :class:`HostPolicy` derived from ``host`` (see :meth:`HostPolicy.for_bind`) unless
    ``config.host_policy`` is given.

    ``sock``: serve on this bound TCP socket (e.g. one inherited from a supervisor, or
    shared by several worker processes) instead of binding ``host:port``; the server
    listens on it and closes it at the end (``sock`` itself is detached from it).
    ``host`` should still name the address it is bound to: the Host policy is derived
    from it.
    """
    server = serving(server)  # a clear error, before anything starts, for what cannot be
    config = _transport_config(config, dict(settings))
    _check_peer_timeout(peer_timeout)
    config = replace(
        config,
        host_policy=HostPolicy.for_bind(
            host,
            enabled=dns_rebinding_protection,
            allowed_hosts=tuple(allowed_hosts),
            allowed_origins=tuple(allowed_origins),
        )
        if config.host_policy is None
        else config.host_policy,
    )
    app = McpHttpApp(server, config)
    hc = _hypercorn_config(host, port, config, peer_timeout, hypercorn or {}, sock)
    worker = _Worker(wrap_app(app, hc.wsgi_max_body_size, "asgi"), hc, peer_timeout)  # type: ignore[arg-type]
    shutdown = trio.Event()
    worker_done = trio.Event()

    async def drained() -> None:
        # The drain runs *before* connections are closed, so every response it
        # completes still has its connection.
        await shutdown.wait()
        await app.drain()

    async def run_worker(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await worker.run(drained, task_status)
        finally:
            worker_done.set()

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(app.run)
            binds: list[str] = await nursery.start(run_worker)
            handle = McpHttpServer(app, binds, shutdown)
            try:
                yield handle
            finally:
                # Leaving the block normally drains; cancellation stops at once.
                shutdown.set()
                await worker_done.wait()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One error (yours, from inside the block, or the server's) comes out as
        # itself, not wrapped in a group: the public boundary raises what happened.
        sole = _sole_exception(group)
        if sole is None:
            raise
        # Its own cause is kept; the group it came in is not news to the caller.
        raise sole from sole.__cause__


def _sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return None if isinstance(exc, BaseExceptionGroup) else exc


async def serve(
    server: McpServer | object,
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[McpHttpServer] = trio.TASK_STATUS_IGNORED,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: TransportConfig | None = None,
    allowed_hosts: Iterable[str] = (),
    allowed_origins: Iterable[str] = (),
    dns_rebinding_protection: bool | None = None,
    peer_timeout: float | None = 10.0,
    hypercorn: Mapping[str, Any] | None = None,
    sock: socket.socket | None = None,
    **settings: Unpack[TransportSettings],
) -> None:
    """Serve until SIGINT/SIGTERM (or ``handle.shutdown()``), then drain and return.

    Takes the keywords of :func:`open_mcp_server`.  ``handle_signals=False`` leaves
    SIGINT/SIGTERM to the caller.  Runs inside the caller's nursery too:
    ``await nursery.start(serve, server)`` gives the :class:`McpHttpServer` handle
    (keywords through :func:`functools.partial`).
    """
    with (
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        if handle_signals
        else nullcontext() as signals
    ):
        async with open_mcp_server(
            server,
            host=host,
            port=port,
            config=config,
            allowed_hosts=allowed_hosts,
            allowed_origins=allowed_origins,
            dns_rebinding_protection=dns_rebinding_protection,
            peer_timeout=peer_timeout,
            hypercorn=hypercorn,
            sock=sock,
            **settings,
        ) as handle:
            task_status.started(handle)
            # The actual URL: with port 0 this is the only way to learn the port.
            logger.info("serving MCP at %s", handle.url)
            async with trio.open_nursery() as nursery:
                if signals is not None:
                    nursery.start_soon(_shutdown_on_signal, signals, handle)
                await handle.wait_shutdown_requested()
                nursery.cancel_scope.cancel()
            logger.info("shutting down: draining open requests and streams")


async def _shutdown_on_signal(signals: Any, handle: McpHttpServer) -> None:
    async for signum in signals:
        logger.info("received %s", signal.Signals(signum).name)
        handle.shutdown()
        return
