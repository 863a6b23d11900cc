"""Serving: Hypercorn's trio worker, with the drain running before Hypercorn stops."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import replace
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.trio import serve as hypercorn_serve

from ._http import HostPolicy
from ._server import McpServer
from ._transport import McpHttpApp, TransportConfig

__all__ = ["McpHttpServer", "open_mcp_server", "serve"]

logger = logging.getLogger("trio_mcp_http")


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


class _HypercornConfig(HypercornConfig):
    """Hypercorn's config, with a kernel-enforced bound on writes to a stalled peer.

    Hypercorn's trio worker writes to the socket inside a shielded cancel scope with no
    timeout, so a peer that keeps its connection open but stops reading would block
    that write, and with it the drain and Hypercorn's own graceful exit, forever.
    ``TCP_USER_TIMEOUT`` (Linux) on the listening sockets, inherited by every accepted
    connection, makes the kernel abort a connection whose data stays unacknowledged
    (or whose receive window stays closed) that long; the blocked write then fails and
    everything unwinds normally.
    """

    peer_timeout: float | None = None

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        if self.peer_timeout is not None and option is not None:
            for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, option, max(1, round(self.peer_timeout * 1000)))
        return sockets


def _hypercorn_config(
    host: str, port: int, config: TransportConfig, peer_timeout: float | None, **options: Any
) -> HypercornConfig:
    hc = _HypercornConfig()
    hc.peer_timeout = peer_timeout
    hc.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    # The drain has completed every response before Hypercorn is told to stop; what
    # remains are idle keep-alive connections, closed at once.
    hc.graceful_timeout = config.final_send_timeout
    # Log through the standard logging tree (configured by the application), once.
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.accesslog = options.pop("accesslog", None)
    for key, value in options.items():
        setattr(hc, key, value)
    return hc


@asynccontextmanager
async def open_mcp_server(
    server: McpServer,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: TransportConfig | None = None,
    allowed_hosts: tuple[str, ...] = (),
    allowed_origins: tuple[str, ...] = (),
    dns_rebinding_protection: bool | None = None,
    peer_timeout: float | None = 10.0,
    **hypercorn_options: Any,
) -> AsyncIterator[McpHttpServer]:
    """Serve ``server`` on Hypercorn's trio worker for the duration of the block.

    Leaving the block (or calling :meth:`McpHttpServer.shutdown`) drains the server:
    see :meth:`McpHttpApp.drain`.  Port 0 picks a free port (see ``.port``).

    ``peer_timeout``: a connection whose peer stops reading (or vanishes without a
    trace) for this many seconds is aborted by the kernel (``TCP_USER_TIMEOUT``, on
    Linux); ``None`` leaves the system default (many minutes).  This is also what bounds
    a shutdown that meets a client which stopped reading.
    """
    config = config or TransportConfig()
    config = replace(
        config,
        host_policy=HostPolicy.for_bind(
            host,
            enabled=dns_rebinding_protection,
            allowed_hosts=allowed_hosts,
            allowed_origins=allowed_origins,
        )
        if config.host_policy == HostPolicy()
        else config.host_policy,
    )
    app = McpHttpApp(server, config)
    hc = _hypercorn_config(host, port, config, peer_timeout=peer_timeout, **hypercorn_options)
    shutdown = trio.Event()
    hypercorn_done = trio.Event()

    async def drained() -> None:
        # Hypercorn's shutdown trigger: the drain runs *before* Hypercorn stops, since
        # Hypercorn cancels connections first and sends lifespan.shutdown after.
        await shutdown.wait()
        await app.drain()

    async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await hypercorn_serve(app, hc, shutdown_trigger=drained, task_status=task_status)  # type: ignore[arg-type]
        finally:
            hypercorn_done.set()

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(app.run)
            binds: list[str] = await nursery.start(run_hypercorn)
            handle = McpHttpServer(app, binds, shutdown)
            try:
                yield handle
            finally:
                # Leaving the block normally drains; cancellation stops at once.
                shutdown.set()
                await hypercorn_done.wait()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One error (yours, from inside the block, or the server's) comes out as
        # itself, not wrapped in a group: the public boundary raises what happened.
        sole = _sole_exception(group)
        if sole is None:
            raise
        raise sole from None


def _sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return None if isinstance(exc, BaseExceptionGroup) else exc


async def serve(
    server: McpServer,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: TransportConfig | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[McpHttpServer] = trio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """Serve until SIGINT/SIGTERM (or ``handle.shutdown()``), then drain and return.

    Runs inside the caller's nursery: ``await nursery.start(serve, server)`` gives the
    :class:`McpHttpServer` handle.
    """
    with (
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        if handle_signals
        else nullcontext() as signals
    ):
        async with open_mcp_server(server, host=host, port=port, config=config, **options) as handle:
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
