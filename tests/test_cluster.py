"""Sessions shared through Redis: any worker serves any session.

Two (or three) servers on 127.0.0.1 port 0, each with its own ``McpServer`` as two
worker processes would have, share one real ``redis-server``; the client goes from
one to the other as a round-robin balancer would send it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio

from helpers import (
    LATEST,
    Client,
    Controller,
    build_server,
    call_tool,
    initialize,
    notification,
    request,
    response_messages,
    serving,
)
from redis_fixture import _redis_process, own_redis, redis  # noqa: F401  (fixtures)
from redis_fixture import RedisServer
from trio_mcp_http import McpServer


@dataclass
class Worker:
    """One server of the fleet, its handle and an httpx client bound to it."""

    handle: Any
    client: Client
    server: McpServer
    ctl: Controller


@asynccontextmanager
async def fleet(url: str, count: int = 2, **config: Any) -> AsyncIterator[list[Worker]]:
    async with AsyncExitStack() as stack:
        workers = []
        for n in range(count):
            ctl = Controller()
            server = build_server(ctl, f"worker-{n}")

            @server.resource("memo://note")
            async def note() -> str:
                return "a note"

            handle, client = await stack.enter_async_context(serving(server, redis_url=url, **config))
            workers.append(Worker(handle, client, server, ctl))
        yield workers


async def open_session(worker: Worker, **capabilities: Any) -> str:
    return await worker.client.open_session(**capabilities)


async def test_any_worker_serves_any_session(redis: RedisServer) -> None:
    async with fleet(redis.url, 3) as (a, b, c):
        session = await open_session(a)
        answered = await b.client.post(call_tool(1, "echo", text="from b"), session)
        assert answered.status_code == 200
        assert response_messages(answered)[-1]["result"]["content"][0]["text"] == "from b"
        listed = await c.client.post(request(2, "tools/list"), session)
        assert listed.status_code == 200
        assert "echo" in [t["name"] for t in response_messages(listed)[-1]["result"]["tools"]]
        deleted = await c.client.delete(session)
        assert deleted.status_code == 204
        # Gone on every worker, the one that created it and the one that restored it.
        for worker in (a, b, c):
            gone = await worker.client.post(call_tool(3, "echo", text="late"), session)
            assert gone.status_code == 404, worker
