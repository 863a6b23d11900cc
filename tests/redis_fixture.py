"""A real ``redis-server`` for the tests of sessions shared through Redis.

Loopback only, on a free port, with no persistence (``--save ''``, no append-only
file), or, given a data folder, with an append-only file synced on every write: a
restart (same port, same folder) then finds every key again.  The tests start one for
their module and empty it before each test; a test that needs to stop and restart
Redis gets its own server (:func:`own_redis`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; :meth:`start` returns once it accepts connections."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.port = _free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
        command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]
        if self.data_dir is None:
            command += ["--appendonly", "no"]
        else:
            command += ["--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            [*command, "--loglevel", "notice", "--logfile", ""], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        # Ready when it says so: no polling, no sleep.
        for line in self.process.stdout:
            if "Ready to accept connections" in line:
                return
        pytest.fail(f"redis-server did not start (exit code {self.process.wait()})")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def cli(self, *args: str) -> str:
        """A ``redis-cli`` command against this server, its output."""
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=True, timeout=10
        )
        return done.stdout.strip()

    def reset_stats(self) -> None:
        self.cli("CONFIG", "RESETSTAT")

    def command_calls(self) -> Counter[str]:
        """``INFO commandstats`` since :meth:`reset_stats`: calls per command, those a
        script runs included."""
        counted: Counter[str] = Counter()
        for line in self.cli("INFO", "commandstats").splitlines():
            name, _, stats = line.partition(":")
            if name.startswith("cmdstat_"):
                counted[name.removeprefix("cmdstat_")] = int(stats.split(",")[0].removeprefix("calls="))
        return counted

    #: What a worker sends itself (rather than from a script): script calls, and the
    #: reads and the tag counter's increment.  Every one is a round trip of its own.
    SENT = frozenset({"evalsha", "eval", "hgetall", "xrange", "get", "incr"})

    def round_trips(self) -> int:
        """The workers' round trips since :meth:`reset_stats` (a script's own commands,
        counted by Redis too, are not round trips)."""
        return sum(calls for command, calls in self.command_calls().items() if command in self.SENT)


@contextmanager
def own_redis(data_dir: Path | None = None) -> Iterator[RedisServer]:
    server = RedisServer(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
