"""The ASGI application: MCP Streamable HTTP on one endpoint, both protocol eras.

A thin router that owns the drain.  The session era and the stateless era are peers
(``session_era.py``, ``stateless_era.py``) handed one
:class:`~trio_mcp_http.transport.gate.Gate`; neither sees this app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from ..protocol import decisions, jsonrpc
from ..protocol.auth import Principal
from ..protocol.decisions import Era
from ..protocol.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    ConfigError,
    ProtocolError,
    StateError,
    UsageError,
)
from ..protocol.http import HostPolicy, RequestHeaders
from ..protocol.jsonrpc import Envelope, Kind
from ..server.adapt import serving
from ..server.logic import ProtocolServer
from ..server.mcp_server import McpServer
from .asgi import ClientGone, GuardedResponse, Message, Receive, Send, discard_body, read_body
from .config import TransportConfig
from .fleet import open_fleet
from .gate import Gate, InFlight
from .session_era import SessionEra
from .stateless_era import StatelessEra
from .tasks import TaskRegistry
from .websocket import serve_websocket

if TYPE_CHECKING:
    from ..auth import Authenticator

__all__ = ["McpHttpApp", "TransportConfig"]

logger = logging.getLogger("trio_mcp_http")

_PER_CONNECTION = HostPolicy.for_bind("0.0.0.0")


class McpHttpApp:
    """An ASGI application serving an :class:`McpServer` over Streamable HTTP.

    A server written for the official MCP SDK (a lowlevel ``Server``, an ``MCPServer``)
    or for FastMCP is served as well, unmodified (docs/sdk.md).

    It must be *running* to serve requests: either inside your nursery with
    ``await nursery.start(app.run)`` (what :func:`~trio_mcp_http.serve` does), or
    started by the ASGI lifespan protocol, as under ``hypercorn -k trio module:app``.
    """

    def __init__(self, server: object, config: TransportConfig | None = None) -> None:
        served = serving(server)
        if config is not None and not isinstance(config, TransportConfig):
            raise UsageError(f"config must be a TransportConfig, not {type(config).__name__}")
        #: What is served: an ``McpServer``, or an SDK server's adapter.
        self.server: McpServer | ProtocolServer = served
        self.config = config or TransportConfig()
        self._running = False
        self._gate = Gate(self.config.retry_after)
        #: HTTP calls not yet answered: what the drain's last step waits for.
        self._calls = InFlight()
        #: Not configured: DNS-rebinding protection for connections that arrived on a
        #: loopback address (or a Unix socket), as for a server listening everywhere.
        self._host_policy = self.config.host_policy or _PER_CONNECTION
        #: OAuth 2.1 resource server checks (docs/auth.md), when configured.
        self._auth = _authenticator(self.config)
        self._auth_paths = frozenset() if self._auth is None else self._auth.metadata_paths(self.config.path)
        #: The tasks of the 2026-07-28 tasks extension.
        self.tasks = TaskRegistry(
            served if isinstance(served, McpServer) else None,
            max_tasks=self.config.max_tasks,
            max_result_bytes=self.config.max_task_bytes,
            ttl=self.config.task_ttl,
            poll_interval=self.config.task_poll_interval,
        )
        self._sessions = SessionEra(served, self.config, self._gate)
        self._stateless = StatelessEra(served, self.config, self._gate, self.tasks)
        #: Sessions shared with the other workers of a deployment (``redis_url``).
        self._fleet = open_fleet(self.config, self._gate)
        self._sessions.fleet = self._fleet

    # -- lifetime ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own every session and task until cancelled.  Use with ``nursery.start``."""
        if self._running:
            raise StateError("McpHttpApp.run() is already running")
        self._running = True
        try:
            async with self._server_lifespan(), trio.open_nursery() as nursery:
                await nursery.start(self.tasks.run)
                await nursery.start(self._sessions.run)
                if self._fleet is not None:
                    await nursery.start(self._fleet.run, self._sessions, self._stateless)
                self._gate.admitting = True
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    if self._auth is not None:
                        # Its HTTP client's connections, bounded like a final send.
                        with trio.move_on_after(self.config.final_send_timeout, shield=True):
                            await self._auth.aclose()
        finally:
            self._running = False

    @asynccontextmanager
    async def _server_lifespan(self) -> AsyncIterator[None]:
        """An SDK server's lifespan, or our server's change notifications, for as long as
        the app runs."""
        server = self.server
        if isinstance(server, McpServer):
            server.add_listener(self._broadcast)
            try:
                yield
            finally:
                server.remove_listener(self._broadcast)
        else:
            async with server.lifespan():
                yield

    @property
    def running(self) -> bool:
        return self._running

    async def drain(self, grace_period: float | None = None) -> None:
        """Shut down gracefully; returns when all is quiet.

        1. stop admitting: new sessions and requests get 503 + ``Retry-After``;
        2. let in-flight requests and running tasks finish within the grace period;
        3. cancel what is still running (each gets a JSON-RPC error on its stream;
           each task fails with one, for ``tasks/get``);
        4. close every stream's connection, so each response ends cleanly;
        5. wait (bounded) until every HTTP response is complete.
        """
        grace = self.config.grace_period if grace_period is None else grace_period
        handlers = self._gate.handlers
        self._gate.admitting = False
        with trio.move_on_after(grace):
            await handlers.wait_idle()
            await self.tasks.wait_idle()
        self._sessions.cancel_all()
        self._stateless.cancel_all()
        self.tasks.cancel_all()
        with trio.move_on_after(self.config.final_send_timeout):
            await handlers.wait_idle()
            await self.tasks.wait_idle()
        if self._fleet is not None:
            # Every event logged before the connections end: their clients resume on
            # other workers of the fleet.
            with trio.move_on_after(self.config.final_send_timeout):
                await self._fleet.flush()
        self._sessions.close_connections()
        self._stateless.close_listeners()
        with trio.move_on_after(self.config.final_send_timeout):
            await self._calls.wait_idle()

    def statistics(self) -> dict[str, int]:
        """A snapshot of what is live: for monitoring and for leak tests."""
        sessions = self._sessions.statistics()
        return {
            "sessions": sessions["sessions"],
            "requests_in_flight": self._gate.handlers.count,
            "http_calls_in_flight": self._calls.count,
            "open_streams": sessions["open_streams"] + self._stateless.listeners,
            "stored_events": sessions["stored_events"],
        }

    def _broadcast(self, method: str, params: dict[str, Any] | None) -> None:
        if self._fleet is not None:
            self._fleet.notify_all(method, params)  # to every worker's sessions and listeners
            return
        self._sessions.broadcast(method, params)
        self._stateless.broadcast(method, params)

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        # Other scope types: not ours.

    async def _websocket(self, scope: Message, receive: Receive, send: Send) -> None:
        """MCP over WebSocket on the MCP path, one session per connection
        (transport/websocket.py); another path is refused with 404.  An open connection
        counts among the HTTP calls the drain waits for, so its close is written before
        the connections are."""
        with self._calls:
            await serve_websocket(
                scope,
                receive,
                send,
                self._sessions,
                self._host_policy,
                running=self.running,
                authenticate=None if self._auth is None else self._auth.authenticate,
                authorize=self._authorize,
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        # Run by serve() already, or to be run here for ``hypercorn -k trio module:app``.
        owner = not self.running
        async with trio.open_nursery() as nursery:
            if owner:
                await nursery.start(self.run)
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            if owner:
                # Hypercorn only sends this after it has stopped the connections; what
                # is left to drain are the sessions' tasks.
                await self.drain(grace_period=0)
                nursery.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Message, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions") or {}
        response = GuardedResponse(
            send,
            self.config.final_send_timeout,
            self.config.send_timeout,
            extensions.get("trio_mcp_http.cork"),
            extensions.get("trio_mcp_http.departure"),
        )
        with self._calls:
            failed = False
            try:
                await self._route(scope, receive, response)
            except ClientGone:
                pass
            except ProtocolError as exc:
                if not response.started:
                    if exc.status_hint != 408:  # a body too slow to read is not waited for again
                        await self._discard_body(scope, receive, response)
                    await response.error(exc)
            except Exception:
                failed = True
                logger.exception("unexpected error serving %s %s", scope.get("method"), scope.get("path"))
            finally:
                await response.complete(failed=failed)

    async def _discard_body(self, scope: Message, receive: Receive, response: GuardedResponse) -> None:
        if not response.body_started and _expects_continue(scope):
            # The client waits for 100 (Continue) before it sends its body, and asking
            # for the body is what makes a server send it: answering at once instead
            # tells the client not to send it at all (RFC 9110 §10.1.1).
            return
        # Generous in bytes (a client sending a little more than the limit still reads
        # its 413) and short in time (a trickler is not waited for).
        config = self.config
        await discard_body(receive, 4 * config.max_body_size, min(config.body_timeout, 5.0), response)

    async def _route(self, scope: Message, receive: Receive, response: GuardedResponse) -> None:
        if scope.get("path") != self.config.path:
            if scope.get("path") in self._auth_paths:
                await self._resource_metadata(scope, receive, response)
                return
            raise ProtocolError(404, INVALID_REQUEST, f"Not Found: the MCP endpoint is {self.config.path}")
        headers = RequestHeaders(scope.get("headers", ()))
        server = scope.get("server")
        self._host_policy.check(
            headers.get("host"), headers.get("origin"), str(server[0]) if server else None
        )
        if not self.running:
            raise ProtocolError(503, INTERNAL_ERROR, "Service Unavailable: server is not running")
        principal = None
        if self._auth is not None:
            # Every method of the endpoint, in both eras, before the body is read.
            principal = await self._auth.authenticate(headers.get("authorization"))
        method = scope.get("method")
        if method == "POST":
            decisions.check_content_type(headers)
            decisions.check_declared_size(headers, self.config.max_body_size)
            body = await read_body(receive, self.config.max_body_size, self.config.body_timeout, response)
            parsed = jsonrpc.parse_body(body)
            try:
                if principal is not None:
                    self._authorize(parsed, principal)
                if decisions.era_of(parsed, headers) is Era.STATELESS:
                    assert not isinstance(parsed, list)
                    await self._stateless.handle(parsed, headers, receive, response, principal)
                else:
                    await self._sessions.post(parsed, headers, receive, response, principal)
            except ProtocolError as refused:
                # The request is refused as a whole (503 when full or draining, 400,
                # 404 ...): its error names it, since its id could be read (JSON-RPC
                # 2.0 §5 keeps a null id for ids that could not be).
                single = None if isinstance(parsed, list) else parsed
                if single is not None and single.kind is Kind.REQUEST and refused.request_id is None:
                    refused.request_id = single.id
                raise
        elif method == "GET":
            await self._sessions.get(headers, receive, response, principal)
        elif method == "DELETE":
            await self._discard_body(scope, receive, response)
            await self._sessions.delete(headers, response, principal)
        else:
            raise ProtocolError(
                405,
                INVALID_REQUEST,
                "Method Not Allowed",
                headers=[(b"allow", b"GET, POST, DELETE")],
            )

    def _authorize(self, parsed: Envelope | list[Envelope], principal: Principal) -> None:
        """403 before any handler runs when a request needs scopes the token lacks (the
        ``scopes=`` of a tool, resource or prompt): one place for both eras."""
        assert self._auth is not None
        server = self.server
        if not isinstance(server, McpServer):
            return
        for message in parsed if isinstance(parsed, list) else [parsed]:
            if message.kind is Kind.REQUEST and message.method is not None:
                needed = server.required_scopes(message.method, message.params)
                if needed:
                    self._auth.authorize(principal, needed)

    async def _resource_metadata(self, scope: Message, receive: Receive, response: GuardedResponse) -> None:
        """The Protected Resource Metadata document (RFC 9728 §3).  Public: no token, no
        Host check (it names nothing a rebinding page could misuse)."""
        assert self._auth is not None
        if scope.get("method") not in ("GET", "HEAD"):
            raise ProtocolError(
                405, INVALID_REQUEST, "Method Not Allowed", headers=[(b"allow", b"GET, HEAD")]
            )
        await self._discard_body(scope, receive, response)
        body = self._auth.metadata_document
        headers = [
            (b"content-type", b"application/json"),
            # Browser-based clients read it from another origin (RFC 9728 §3 allows any).
            (b"access-control-allow-origin", b"*"),
            (b"cache-control", b"public, max-age=3600"),
        ]
        await response.respond(200, headers, b"" if scope.get("method") == "HEAD" else body)


def _authenticator(config: TransportConfig) -> Authenticator | None:
    """The authenticator the ``auth_*`` settings describe; ``None`` when ``auth_issuer``
    is unset.  Imported here: it needs the ``auth`` extra (httpx, joserfc)."""
    if config.auth_issuer is None:
        return None
    try:
        from ..auth import Authenticator
    except ImportError as exc:
        raise ConfigError(
            f"auth_issuer needs the auth extra: pip install 'trio-mcp-http[auth]' ({exc})"
        ) from exc
    return Authenticator.from_settings(
        issuer=config.auth_issuer,
        resource=config.auth_resource,
        verifier=config.auth_verifier,
        jwks_url=config.auth_jwks_url,
        introspection_url=config.auth_introspection_url,
        client_id=config.auth_client_id,
        client_secret_file=config.auth_client_secret_file,
        scopes_supported=config.auth_scopes_supported,
        required_scopes=config.auth_required_scopes,
        retry_after=config.retry_after,
    )


def _expects_continue(scope: Message) -> bool:
    expect = RequestHeaders(scope.get("headers", ())).get("expect")
    return expect is not None and expect.strip().lower() == "100-continue"
