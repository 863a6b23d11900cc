"""HTTP-level rules of MCP Streamable HTTP, sans-IO: headers, session ids, origins."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._errors import INVALID_REQUEST, ProtocolError

__all__ = [
    "HostPolicy",
    "RequestHeaders",
    "accepts",
    "is_json_content_type",
    "is_valid_session_id",
    "new_session_id",
]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


class RequestHeaders:
    """The request headers, read once from the ASGI scope.

    Names are compared case-insensitively (RFC 9110 §5.1, T-67, T-84); values are kept
    exactly as sent.  Repeated headers are joined with ``", "``.
    """

    __slots__ = ("_map",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        found: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            if key in found:
                found[key] = found[key] + ", " + text
            else:
                found[key] = text
        self._map = found

    def get(self, name: str) -> str | None:
        return self._map.get(name)

    def items(self) -> Iterable[tuple[str, str]]:
        return self._map.items()


def _media_ranges(accept: str) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]


def accepts(accept: str | None, media_type: str) -> bool:
    """Whether an ``Accept`` header value admits ``media_type`` (wildcards honoured).

    An absent header accepts anything (RFC 9110 §12.5.1).
    """
    if accept is None:
        return True
    admitted = (media_type, "*/*", media_type.split("/", 1)[0] + "/*")
    return any(media_range in admitted for media_range in _media_ranges(accept))


def is_json_content_type(content_type: str | None) -> bool:
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def new_session_id() -> str:
    """A session id: 192 random bits, URL-safe base64 (visible ASCII only, T-61/T-62)."""
    return secrets.token_urlsafe(24)


def is_valid_session_id(value: str) -> bool:
    """T-62: only visible ASCII, 0x21-0x7E."""
    return bool(value) and all(0x21 <= ord(ch) <= 0x7E for ch in value)


def _host_name(host: str) -> str:
    """Drop the port from a Host header value or a URL authority."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass(frozen=True)
class HostPolicy:
    """DNS-rebinding protection (T-04, T-05, T-08).

    With ``enabled`` set, a request whose ``Host`` is not in ``allowed_hosts`` is answered
    421, and one whose ``Origin`` is present and not in ``allowed_origins`` is answered
    403.  Hosts are matched by name with any port; ``allowed_origins`` entries are
    origins (``scheme://host[:port]``) or ``scheme://host:*``.  When protection is off,
    an ``Origin`` is still checked against the request's own ``Host`` (same-origin),
    because the spec asks every server to validate it (T-04).

    To serve behind a reverse proxy on a public name, add that name to
    ``allowed_hosts`` and its origin to ``allowed_origins``.
    """

    enabled: bool = True
    allowed_hosts: frozenset[str] = field(default_factory=lambda: _LOOPBACK_NAMES)
    allowed_origins: frozenset[str] = frozenset()

    @classmethod
    def for_bind(
        cls,
        host: str,
        *,
        enabled: bool | None = None,
        allowed_hosts: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
    ) -> HostPolicy:
        """The default policy for a listening address: on for loopback binds."""
        if enabled is None:
            enabled = _host_name(host) in _LOOPBACK_NAMES or host.startswith("127.")
        hosts = set(_LOOPBACK_NAMES) | {_host_name(h) for h in allowed_hosts}
        if host.startswith("127."):
            # Any 127/8 address is loopback; the address we listen on is a valid Host.
            hosts.add(host)
        return cls(
            enabled=enabled,
            allowed_hosts=frozenset(hosts),
            allowed_origins=frozenset(o.lower().rstrip("/") for o in allowed_origins),
        )

    def check(self, host: str | None, origin: str | None) -> None:
        """Raise :class:`ProtocolError` (421 or 403) when the request must be refused."""
        if self.enabled and host is not None and _host_name(host) not in self.allowed_hosts:
            raise ProtocolError(421, INVALID_REQUEST, "Misdirected Request: invalid Host header")
        if origin is None:
            return
        if not self._origin_allowed(origin, host):
            raise ProtocolError(403, INVALID_REQUEST, "Forbidden: invalid Origin header")

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        normalized = origin.strip().lower().rstrip("/")
        if normalized in self.allowed_origins:
            return True
        parts = urlsplit(normalized)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        if f"{parts.scheme}://{_host_name(parts.netloc)}:*" in self.allowed_origins:
            return True
        if self.enabled:
            return _host_name(parts.netloc) in self.allowed_hosts
        # Protection off: accept the request's own origin only.
        return host is not None and parts.netloc == host.strip().lower()
