"""The public API cannot be misused silently: unknown options are errors that name the
nearest valid one, settings are validated, errors keep their causes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from helpers import POST_HEADERS, call_tool, initialize

from trio_mcp_http import (
    ConfigError,
    McpHttpApp,
    McpHttpError,
    McpServer,
    TransportConfig,
    UsageError,
    open_mcp_server,
    serve,
)
from trio_mcp_http.serving.cli import build_parser, load_server

TIMEOUT = 10


async def test_transport_settings_as_keywords_take_effect(mcp_server: McpServer) -> None:
    import httpx

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            from functools import partial

            handle = await nursery.start(
                partial(serve, mcp_server, port=0, handle_signals=False, json_response=True)
            )
            async with httpx.AsyncClient() as http:
                response = await http.post(handle.url, content=json.dumps(initialize()), headers=POST_HEADERS)
                assert response.headers["content-type"] == "application/json"
                session = response.headers["mcp-session-id"]
                echo = await http.post(
                    handle.url,
                    content=json.dumps(call_tool(1, "echo", text="json")),
                    headers={**POST_HEADERS, "mcp-session-id": session},
                )
                assert echo.json()["result"]["content"][0]["text"] == "json"
            assert handle.app.config.json_response
            handle.shutdown()


@pytest.mark.parametrize(
    ("keyword", "hint"),
    [("gracee", "grace_period"), ("json_respons", "json_response"), ("peer_timout", "peer_timeout")],
)
async def test_an_unknown_keyword_is_a_type_error_naming_the_nearest(
    mcp_server: McpServer, keyword: str, hint: str
) -> None:
    with pytest.raises(TypeError, match=f"unknown setting '{keyword}'; did you mean '{hint}'") as info:
        async with open_mcp_server(mcp_server, port=0, **{keyword: 3}):  # type: ignore[call-arg]
            pass
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, McpHttpError)
    with pytest.raises(UsageError, match=keyword):
        await serve(mcp_server, port=0, handle_signals=False, **{keyword: 3})  # type: ignore[call-arg]


async def test_hypercorn_settings_go_through_hypercorn_only(mcp_server: McpServer) -> None:
    with pytest.raises(UsageError, match="unknown Hypercorn setting 'keep_alive_timout'; did you mean"):
        async with open_mcp_server(mcp_server, port=0, hypercorn={"keep_alive_timout": 1}):
            pass
    with pytest.raises(UsageError, match="sets bind itself"):
        async with open_mcp_server(mcp_server, port=0, hypercorn={"bind": ["0.0.0.0:1"]}):
            pass
    with trio.fail_after(TIMEOUT):
        async with open_mcp_server(mcp_server, port=0, hypercorn={"keep_alive_timeout": 1.5}) as handle:
            assert handle.port > 0


async def test_the_server_argument_is_checked(mcp_server: McpServer) -> None:
    with pytest.raises(UsageError, match="McpServer"):
        async with open_mcp_server(object(), port=0):  # type: ignore[arg-type]
            pass
    with pytest.raises(UsageError, match="McpServer"):
        McpHttpApp(object())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="TransportConfig"):
        McpHttpApp(mcp_server, {"json_response": True})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"session_idle_timeout": 0}, "use None for never"),
        ({"keepalive_interval": 0.0}, "use None for never"),
        ({"max_sessions": 0}, "max_sessions must be > 0"),
        ({"grace_period": -1}, "grace_period must be >= 0"),
        ({"body_timeout": float("nan")}, "body_timeout"),
        ({"path": "mcp"}, "path must start with '/'"),
        ({"request_state_key": b"short"}, "at least 16 bytes"),
    ],
)
def test_settings_are_validated(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TransportConfig(**settings)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="must be"):
        TransportConfig(json_response="yes")  # type: ignore[arg-type]


def test_the_config_is_frozen() -> None:
    config = TransportConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.json_response = True  # type: ignore[misc]
    assert dataclasses.replace(config, json_response=True).json_response


async def test_a_sole_error_keeps_its_cause(mcp_server: McpServer) -> None:
    class Boom(Exception):
        pass

    root = KeyError("the cause")

    async def fail_inside() -> None:
        async with open_mcp_server(mcp_server, port=0):
            try:
                raise root
            except KeyError as exc:
                raise Boom("from the block") from exc

    with pytest.raises(Boom) as info:
        await fail_inside()
    assert info.value.__cause__ is root


def test_every_transport_setting_has_a_flag_with_help_and_default() -> None:
    parser = build_parser()
    serve_parser = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = {action.dest: action for action in serve_parser._actions}
    # auth_verifier is an object (a TokenVerifier): Python only.
    offered_otherwise = {"host_policy", "event_store_factory", "request_state_key", "auth_verifier"}
    for field in dataclasses.fields(TransportConfig):
        if field.name in offered_otherwise:
            continue
        assert field.name in flags, field.name
        action = flags[field.name]
        assert action.help, field.name
        assert action.default == field.default, field.name
    # The others have flags of their own shape.
    assert {"allowed_host", "allowed_origin", "resumability", "request_state_key_file"} <= set(flags)


def test_the_command_line_has_a_version_and_imports_from_the_current_folder(tmp_path: Path) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "trio_mcp_http", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("trio-mcp-http ")
    (tmp_path / "my_tools.py").write_text(
        "from trio_mcp_http import McpServer\nserver = McpServer('mine', '1.0')\n"
    )
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trio_mcp_http.serving.cli import load_server; print(load_server('my_tools:server').name)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "mine"
    with pytest.raises(ConfigError, match="cannot import 'no_such_module_here'"):
        load_server("no_such_module_here:server")
    with pytest.raises(ConfigError, match="is function, not a server"):
        load_server("json:dumps")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--session-idle-timeout", "0"], "session_idle_timeout must be > 0"),
        (["--gracee", "3"], "unrecognized arguments: --gracee"),
        (["--max-sessions", "many"], "invalid int value"),
        (["--peer-timeout", "0"], "--peer-timeout"),
        (["--port", "99999"], "--port"),
        (["--log-level", "bogus"], "--log-level"),
        (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1:0"),
    ],
)
def test_the_command_line_refuses_bad_flags(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from trio_mcp_http.serving.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--port", "0", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
