"""The ``trio-mcp-http`` command line.

The ``serve`` command's flags are generated from :class:`TransportConfig`, so every
transport setting has a flag with its default and its help.  One spelling means "off"
or "never" everywhere: ``none`` (``0`` is an error for every setting that ``none``
turns off, as in the API; a grace period of ``0`` means "cancel at once").
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import importlib
import inspect
import logging
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Callable
from dataclasses import MISSING, fields
from importlib.metadata import PackageNotFoundError, version
from typing import Any, get_args, get_type_hints

import trio

from ..client import cli as client_cli
from ..protocol.errors import ConfigError, McpHttpError, UsageError
from ..protocol.event_store import InMemoryEventStore
from ..server.adapt import serving
from ..server.logic import ProtocolServer
from ..server.mcp_server import McpServer
from ..transport.config import TransportConfig
from .serve import serve

__all__ = ["follow_supervisor", "load_server", "main", "supervise"]

#: Settings the command line offers in another shape (see _special_flags).
_SPECIAL = frozenset({"host_policy", "event_store_factory", "request_state_key", "auth_verifier"})


def load_server(spec: str) -> McpServer | ProtocolServer:
    """Import ``module:attr`` (``attr`` defaults to ``server``; a callable is called)
    and return the server: an :class:`McpServer`, or a server written for the official
    MCP SDK or FastMCP, adapted.  The current folder is importable, as under
    ``python -m`` (and uvicorn and hypercorn)."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigError(f"{spec!r} is not module:attr")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} (from {os.getcwd()}): {exc}") from exc
    target: Any = module
    for part in (attr or "server").split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(f"{module_name!r} has no attribute {attr or 'server'!r}") from exc
    try:
        return serving(target)
    except UsageError as exc:
        if not (callable(target) and _takes_no_arguments(target)):
            raise ConfigError(f"{spec} is {type(target).__name__}, not a server: {exc}") from exc
    target = target()  # a factory
    try:
        return serving(target)
    except UsageError as exc:
        raise ConfigError(f"{spec}() returned {type(target).__name__}, not a server: {exc}") from exc


def _takes_no_arguments(function: Callable[..., Any]) -> bool:
    try:
        inspect.signature(function).bind()
    except (TypeError, ValueError):
        return False
    return True


def _optional(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A flag value of ``kind``, or ``none``."""

    def parse(text: str) -> Any:
        if text.lower() == "none":
            return None
        return kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse names the type in its errors
    return parse


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, [], argparse.SUPPRESS) or action.option_strings == []:
            return action.help
        return super()._get_help_string(action)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(text)
    return value


def _workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise ValueError(text)
    return value


def _fd(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    value = _finite(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _add_transport_flags(parser: argparse.ArgumentParser) -> None:
    hints = get_type_hints(TransportConfig)
    group = parser.add_argument_group("transport settings (TransportConfig)")
    for f in fields(TransportConfig):
        if f.name in _SPECIAL:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        hint = hints[f.name]
        default = f.default if f.default is not MISSING else None
        if hint is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        optional = isinstance(hint, types.UnionType) and type(None) in get_args(hint)
        kind = next(k for k in get_args(hint) if k is not type(None)) if optional else hint
        parse: Any = _finite if kind is float else kind
        if optional:
            parse = _optional(parse)
            help_text = help_text.replace("None", "'none'")
        group.add_argument(flag, type=parse, default=default, metavar=kind.__name__.upper(), help=help_text)


def _package_version() -> str:
    try:
        return version("trio-mcp-http")
    except PackageNotFoundError:  # running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-mcp-http",
        description="Model Context Protocol over Streamable HTTP, on Trio and Hypercorn.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser(
        "serve",
        help="serve an McpServer over Streamable HTTP",
        description="Serve an McpServer until SIGINT/SIGTERM, then drain and exit.",
        formatter_class=_HelpFormatter,
    )
    serve_cmd.add_argument(
        "server",
        nargs="?",
        default="trio_mcp_http.demo:server",
        help="module:attr of an McpServer, importable from the current folder (default: %(default)s, "
        "the built-in demo)",
    )
    serving = serve_cmd.add_argument_group("serving")
    serving.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serving.add_argument("--port", type=_port, default=8000, help="port to listen on (0: any free port)")
    serving.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to admit besides the loopback names (repeatable)",
    )
    serving.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an Origin (scheme://host[:port] or scheme://host:*) to admit (repeatable)",
    )
    serving.add_argument(
        "--dns-rebinding-protection",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="require an allowed Host (default: on for loopback addresses, off otherwise)",
    )
    serving.add_argument(
        "--peer-timeout",
        type=_optional(_seconds),
        default=10.0,
        metavar="FLOAT",
        help="close a connection whose peer takes no data for this many seconds ('none': never; "
        "shutdown is bounded either way)",
    )
    serving.add_argument(
        "--resumability",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep each session's events in memory so streams can be resumed with Last-Event-ID",
    )
    serving.add_argument(
        "--request-state-key-file",
        metavar="PATH",
        help="file holding the HMAC key of 2026-07-28 requestState (give every worker the same one; "
        "default: a random key per process)",
    )
    serving.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="worker processes sharing the listening socket (N > 1 needs --stateless or --redis-url: "
        "a 2025 session must be reachable from every worker)",
    )
    serving.add_argument(
        "--fd",
        type=_fd,
        default=None,
        metavar="N",
        help="serve on this inherited, bound TCP socket instead of binding --host/--port "
        "(--host should still name its address)",
    )
    serving.add_argument("--access-log", action="store_true", help="log every request")
    serving.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="logging level",
    )
    _add_transport_flags(serve_cmd)
    client_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in client_cli.COMMANDS:
        sys.exit(client_cli.run_command(args, parser))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = {f.name: getattr(args, f.name) for f in fields(TransportConfig) if f.name not in _SPECIAL}
    if not args.resumability:
        settings["event_store_factory"] = None
    else:
        settings["event_store_factory"] = InMemoryEventStore
    try:
        if args.request_state_key_file:
            with open(args.request_state_key_file, "rb") as key_file:
                settings["request_state_key"] = key_file.read().strip()
        config = TransportConfig(**settings)
        server = load_server(args.server)
    except (McpHttpError, OSError) as exc:
        parser.error(str(exc))
    hypercorn: dict[str, Any] = {"accesslog": "-"} if args.access_log else {}
    if args.workers > 1:
        if not (config.stateless or config.redis_url):
            parser.error(
                "--workers > 1 needs --stateless or --redis-url: each request may reach any "
                "worker, and a 2025 session lives in one process unless it is shared through Redis"
            )
        sys.exit(_run_workers(args, sys.argv[1:] if argv is None else argv, parser))
    follow_supervisor()
    sock = None
    if args.fd is not None:
        try:
            sock = socket.socket(fileno=args.fd)
        except OSError as exc:
            parser.error(f"--fd {args.fd}: not a socket: {exc.strerror or exc}")
    try:
        trio.run(
            lambda: serve(
                server,
                host=args.host,
                port=args.port,
                config=config,
                allowed_hosts=args.allowed_host,
                allowed_origins=args.allowed_origin,
                dns_rebinding_protection=args.dns_rebinding_protection,
                peer_timeout=args.peer_timeout,
                hypercorn=hypercorn,
                sock=sock,
            )
        )
    except McpHttpError as exc:
        parser.error(str(exc))
    except OSError as exc:
        # Cannot listen: the address is taken, unknown or not this machine's.
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    if argv is None:
        _exit_promptly()


def _run_workers(args: argparse.Namespace, argv: list[str], parser: argparse.ArgumentParser) -> int:
    """``--workers N``: bind once, then run N copies of this command on that socket
    (``--fd``), with one 2026-07-28 ``requestState`` key for all of them (see
    :func:`supervise`)."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    port = sock.getsockname()[1]
    extra = ["--workers", "1", "--fd", str(sock.fileno()), "--port", str(port)]
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(sock.close)
        if args.request_state_key_file is None:
            # 2026-07-28 requestState must open on any worker: one key for all of them.
            folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="trio-mcp-http-"))
            key_path = os.path.join(folder, "request-state-key")
            with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as key_file:
                key_file.write(secrets.token_hex(32).encode())
            extra += ["--request-state-key-file", key_path]
        command = [sys.executable, "-m", "trio_mcp_http", *argv, *extra]
        return supervise(args.workers, command, sock, where=f"{args.host} port {port}")


def supervise(
    count: int,
    command: list[str],
    sock: socket.socket,
    *,
    where: str = "",
    env: dict[str, str] | None = None,
) -> int:
    """Run ``count`` copies of ``command`` (worker processes that serve on the inherited
    ``sock``) and wait for them; the supervision of ``serve --workers N``.

    Each worker runs in its own process group, so a terminal's ^C reaches this process
    only, which passes SIGINT and SIGTERM on as one SIGTERM (a second signal must not
    cut a drain short).  A worker that exits on its own stops the others (a supervisor
    above restarts the whole).  Workers that call :func:`follow_supervisor` die with
    this process however it dies.  Returns 0 only if every worker was told to stop and
    exited cleanly.
    """
    log = logging.getLogger("trio_mcp_http")
    environment = {**(os.environ if env is None else env), _SUPERVISOR: str(os.getpid())}
    stopping = False
    workers: list[subprocess.Popen[bytes]] = []
    statuses: dict[int, int] = {}

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(count):
            workers.append(
                subprocess.Popen(command, pass_fds=[sock.fileno()], start_new_session=True, env=environment)
            )
        log.info("%d workers (pids %s) on %s", count, ", ".join(str(w.pid) for w in workers), where)
        while len(statuses) < len(workers):
            pid, status = os.wait()
            if not any(w.pid == pid for w in workers):
                continue
            statuses[pid] = os.waitstatus_to_exitcode(status)
            if not stopping:
                log.error("worker %d exited (status %d): stopping the others", pid, statuses[pid])
                stop(signal.SIGTERM, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return 0 if stopping and all(code == 0 for code in statuses.values()) else 1


def follow_supervisor() -> None:
    """In a worker started by :func:`supervise`: die with the supervisor."""
    supervisor = os.environ.pop(_SUPERVISOR, None)
    if supervisor is not None:
        _die_with(int(supervisor))


#: Set by ``--workers N`` for its workers: the supervisor's pid.
_SUPERVISOR = "TRIO_MCP_HTTP_SUPERVISOR"
_PR_SET_PDEATHSIG = 1


def _die_with(supervisor: int) -> None:
    """A worker of ``--workers N``: get SIGTERM (and drain) when the supervisor dies,
    however it dies (Linux: ``PR_SET_PDEATHSIG``); never outlive it unnoticed."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != supervisor:
        # It died before the request above took effect.
        sys.exit("trio-mcp-http: the supervisor of this worker has exited")


def _exit_promptly() -> None:
    """The program has served and drained: end the process now.

    Everything the server owned is closed (its lifespan included).  What is left is the
    interpreter's teardown of every module and object, which takes a second or more with
    large dependency trees (an SDK server's), while a supervisor waits for the exit:
    exit handlers run (``atexit``: logging's flush among them), then the process exits
    without that teardown.  Not when another non-daemon thread still runs: the
    interpreter's own exit waits for it, as it should.
    """
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)
