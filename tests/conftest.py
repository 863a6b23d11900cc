"""Shared fixtures: a scriptable server per test, and log checks."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from helpers import Controller, build_server

from trio_mcp_http import McpServer


@pytest.fixture
def ctl() -> Controller:
    return Controller()


@pytest.fixture
def mcp_server(ctl: Controller) -> McpServer:
    return build_server(ctl)


class LogWatch:
    """Every log record emitted during the test (any logger, DEBUG and up)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    @property
    def records(self) -> list[logging.LogRecord]:
        return self._caplog.records

    def errors(self) -> list[str]:
        """ERROR-and-worse records, and any traceback logged at WARNING or above."""
        return [
            f"{r.name} {r.levelname}: {r.getMessage()}"
            for r in self.records
            if r.levelno >= logging.ERROR or (r.exc_info is not None and r.levelno >= logging.WARNING)
        ]

    def warnings(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records if r.levelno >= logging.WARNING]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[LogWatch]:
    # In this order: set_level also sets the capturing handler's level, last call wins.
    caplog.set_level(logging.INFO, logger="hypercorn.error")
    caplog.set_level(logging.DEBUG, logger="trio_mcp_http")
    return LogWatch(caplog)
