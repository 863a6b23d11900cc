"""WebSocket with the other features: authorization at the handshake, and a server
written for the official SDK behind the socket."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sdk_servers
import trio
from helpers import call_tool, initialize, notification, request
from test_auth import challenge, serving_with_auth
from test_websocket import Peer, RawSocket, ws_url
from trio_websocket import open_websocket_url

from trio_mcp_http import open_mcp_server

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


async def test_a_server_requiring_authorization_checks_the_handshake() -> None:
    with trio.fail_after(30):
        async with serving_with_auth() as s:
            port = int(s.url.rsplit(":", 1)[1].split("/")[0])
            # No token: 401 with the challenge, before the connection is accepted.
            async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                raw = RawSocket(stream)
                await raw.handshake(port)
                status, head, body = await raw.rejection()
            assert status == 401
            assert challenge_of(head)["resource_metadata"].endswith(
                "/.well-known/oauth-protected-resource/mcp"
            )
            assert json.loads(body)["error"]["message"]
            # A token for another audience: 401 invalid_token.
            async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                raw = RawSocket(stream)
                wrong = s.token(audience="http://elsewhere.example/mcp")
                await raw.handshake(port, headers=[(b"authorization", f"Bearer {wrong}".encode())])
                status, head, _ = await raw.rejection()
            assert status == 401
            assert challenge_of(head)["error"] == "invalid_token"
            assert s.app.statistics()["sessions"] == 0
            # A valid token: the session acts for its principal (ctx.auth).
            token = s.token("alice", "files:read")
            headers = [("authorization", f"Bearer {token}")]
            url = "ws://" + s.url.split("://", 1)[1]
            async with open_websocket_url(url, subprotocols=["mcp"], extra_headers=headers) as ws:
                client = Peer(ws)
                await client.initialize()
                who = await client.call(call_tool(1, "whoami"))
                result = who["result"]
                identity = result.get("structuredContent") or json.loads(result["content"][0]["text"])
                assert identity["subject"] == "alice"
                # A tool needing a scope the token lacks: refused before it runs.
                refused = await client.call(
                    request(2, "tools/call", {"name": "write_file", "arguments": {"name": "x"}})
                )
                assert "files:write" in refused["error"]["message"], refused
                assert s.app.server.writes == []  # type: ignore[union-attr]
                await ws.aclose()
                await ws._stream.aclose()  # trio_websocket 0.12 leaves it open after a close


def challenge_of(head: dict[str, str]) -> dict[str, str]:
    class _Response:
        headers = head

    return challenge(_Response())  # type: ignore[arg-type]


async def test_an_sdk_server_behind_a_socket() -> None:
    answered: list[Any] = []
    with trio.fail_after(30):
        async with (
            open_mcp_server(sdk_servers.mcpserver, port=0) as handle,
            open_websocket_url(ws_url(handle), subprotocols=["mcp"]) as ws,
        ):
            client = Peer(ws)
            opened = await client.call(initialize(0, elicitation={}))
            assert opened["result"]["serverInfo"]["name"] == "sdk-mcpserver"
            await client.send(notification("notifications/initialized"))
            echoed = await client.call(call_tool(1, "echo", text="socket"))
            assert echoed["result"]["content"][0]["text"] == "socket"
            # Progress before the answer, on the same socket.
            await client.send(call_tool(2, "progress", meta={"progressToken": "p"}, steps=2))
            answer, before = await client.answer(2)
            progress = [
                m["params"]["progress"] for m in before if m.get("method") == "notifications/progress"
            ]
            assert progress == [1, 2]
            assert answer["result"]["content"][0]["text"] == "done 2"
            # The SDK's elicitation goes out on the socket; the answer comes back on it.
            await client.send(call_tool(3, "ask_name"))
            while True:
                message = await client.receive()
                if message.get("method") == "elicitation/create":
                    await client.send(
                        {
                            "jsonrpc": "2.0",
                            "id": message["id"],
                            "result": {"action": "accept", "content": {"name": "Ada"}},
                        }
                    )
                elif message.get("id") == 3:
                    answered.append(message)
                    break
            await ws.aclose()
            await ws._stream.aclose()  # trio_websocket 0.12 leaves it open after a close
    assert answered[0]["result"]["content"][0]["text"] == "Hello, Ada!"
