"""``trio-mcp-http call`` and ``list-tools``, end to end: the command in a subprocess
against a real server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio
from helpers import serving

from trio_mcp_http import Context, McpServer
from trio_mcp_http.client.cli import parse_arguments
from trio_mcp_http.serving.cli import main


def build() -> McpServer:
    server = McpServer("cli-test", "1.0.0")

    @server.tool()
    async def add(ctx: Context, a: int, b: int = 0) -> str:
        """Add two integers.

        With progress."""
        await ctx.report_progress(1, 2, "adding")
        await ctx.report_progress(2, 2, "added")
        return str(a + b)

    @server.tool()
    async def shout(text: str, tags: list[str]) -> str:
        """Upper-case the text."""
        return f"{text.upper()} {tags}"

    @server.tool(output_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    async def count(words: str) -> dict[str, int]:
        """Count words (structured)."""
        return {"n": len(words.split())}

    return server


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The command in a subprocess, as a user runs it."""
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "trio_mcp_http", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command in this process (in a thread: it runs its own Trio loop), to
    check more cases than subprocesses could in the time."""

    def run() -> int:
        try:
            main(list(args))
        except SystemExit as stop:
            return int(stop.code or 0)
        return 0

    with trio.fail_after(30):
        code = await trio.to_thread.run_sync(run)
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_command_end_to_end() -> None:
    async with serving(build()) as (handle, _):
        listed = await run_cli("list-tools", handle.url)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.decode().splitlines() == [
            "add(a: integer, [b: integer])  Add two integers.",
            "shout(text: string, tags: array)  Upper-case the text.",
            "count(words: string)  Count words (structured).",
        ]

        added = await run_cli("call", handle.url, "add", "a=40", "b=2", "--era", "session")
        assert (added.returncode, added.stdout) == (0, b"42\n"), added.stderr
        assert added.stderr.decode().splitlines() == ["progress: 1/2 adding", "progress: 2/2 added"]

        unknown = await run_cli("call", handle.url, "nope")
        assert (unknown.returncode, unknown.stdout) == (1, b"")
        assert unknown.stderr == b"error: Unknown tool: nope (JSON-RPC error -32602)\n"


async def test_arguments_results_and_failures(capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(build()) as (handle, _):
        # Values are JSON where they parse, strings otherwise; --json takes them whole.
        code, out, err = await run_main(
            capsys, "call", handle.url, "shout", "text=hello world", 'tags=["a","b"]'
        )
        assert (code, out) == (0, "HELLO WORLD ['a', 'b']\n"), err
        code, out, err = await run_main(
            capsys, "call", handle.url, "count", "--json", '{"words": "one two three"}', "--era", "stateless"
        )
        assert (code, out) == (0, '{"n":3}\n'), err

        code, out, err = await run_main(capsys, "call", handle.url, "add", "a=x")
        assert (code, out) == (1, "")
        assert err.startswith("error: the tool failed: Invalid arguments for tool add")
        assert err.count("\n") == 1

        code, _out, err = await run_main(capsys, "call", handle.url, "add", "a")
        assert code == 2
        assert "'a' is not key=value" in err

    # The server is gone now: a transport error, with its cause, on one line.
    code, out, err = await run_main(capsys, "list-tools", handle.url, "--timeout", "10")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: POST {handle.url} failed")
    assert err.count("\n") == 1


def test_argument_parsing() -> None:
    assert parse_arguments(["n=1", "s=x", "b=true", 'o={"k": null}', "e="], None) == {
        "n": 1,
        "s": "x",
        "b": True,
        "o": {"k": None},
        "e": "",
    }
    assert parse_arguments([], '{"a": [1]}') == {"a": [1]}
    with pytest.raises(ValueError, match="either"):
        parse_arguments(["a=1"], "{}")
    with pytest.raises(ValueError, match="JSON object"):
        parse_arguments([], "[1]")
