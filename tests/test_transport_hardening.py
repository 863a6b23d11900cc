"""Resource bounds under hostile or broken clients: disconnects that must free their
connection, sends that never complete, oversized batches and per-session state."""

from __future__ import annotations

import json
import os

import trio
import trio.testing
from conftest import LogWatch
from helpers import (
    POST_HEADERS,
    Controller,
    call_tool,
    hypercorn_serving,
    raw_request,
    send_raw,
    wait_idle,
)

from trio_mcp_http import McpHttpApp, McpServer, TransportConfig

TIMEOUT = 30


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- stateless mode: a disconnect frees the call -------------------------------------------


async def test_stateless_disconnects_free_their_connections(
    mcp_server: McpServer, ctl: Controller, logs: LogWatch
) -> None:
    """60 clients of stateless mode leave mid-request: every call ends, every handler is
    cancelled, and the process is back to its baseline of open file descriptors."""
    app = McpHttpApp(mcp_server, TransportConfig(stateless=True))
    with trio.fail_after(TIMEOUT):
        async with hypercorn_serving(app, app) as port:
            baseline = _open_fds()
            socks = []
            for i in range(60):
                body = json.dumps(call_tool(i, "hold", key=f"gone-{i}")).encode()
                # "close": Hypercorn closes the connection when the call returns, not only
                # keep_alive_timeout later.
                headers = {**POST_HEADERS, "mcp-protocol-version": "2025-11-25", "connection": "close"}
                socks.append(await send_raw(port, raw_request("POST", port, body, headers)))
                await ctl.started[f"gone-{i}"].wait()
            assert app.statistics()["requests_in_flight"] == 60
            for sock in socks:
                await sock.aclose()
            await wait_idle(app)
            for i in range(60):
                await ctl.finished[f"gone-{i}"].wait()
                assert ctl.cancelled[f"gone-{i}"].is_set()
            assert app.statistics()["requests_in_flight"] == 0
            await trio.testing.wait_all_tasks_blocked()
            assert _open_fds() <= baseline
    assert not logs.errors()
