"""HTTP-level rules of MCP Streamable HTTP, sans-IO: headers, session ids, origins."""

from __future__ import annotations

import functools
import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import INVALID_REQUEST, ConfigError, ProtocolError

__all__ = [
    "HostPolicy",
    "RequestHeaders",
    "accepts",
    "is_json_content_type",
    "is_valid_session_id",
    "new_session_id",
]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
#: Browser origins of pages served from this machine, admitted on loopback binds.
_LOOPBACK_ORIGINS = frozenset(
    f"{scheme}://{name}:*" for scheme in ("http", "https") for name in _LOOPBACK_NAMES
)
_DEFAULT_PORTS = {"http": 80, "https": 443}

# RFC 3986 §3.2.2 host (a bracketed IPv6 literal or a reg-name / IPv4 address) and an
# optional port.  Anything else in a Host header or an Origin cannot name this server.
_AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9\-._~%!$&'()*+,;=]+)(?::([0-9]{1,5}))?\Z")
_ORIGIN = re.compile(r"(https?)://(.+)\Z")


# Every request's Host and local address go through these: a small cache of recent
# values (bounded, as header values are) saves parsing them again.
@functools.lru_cache(maxsize=128)
def _authority(value: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of a Host header value or an origin's authority, lower-cased;
    ``None`` when it is not a well-formed authority (no userinfo, no path)."""
    match = _AUTHORITY.match(value.strip().lower())
    if match is None:
        return None
    port = match.group(2)
    if port is not None and int(port) > 65535:
        return None
    return match.group(1), None if port is None else int(port)


def _origin(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an ``Origin`` (RFC 6454 §7), the port made explicit;
    ``None`` for ``null`` and anything malformed."""
    text = value.strip().lower()
    match = _ORIGIN.match(text[:-1] if text.endswith("/") else text)
    if match is None:
        return None
    scheme = match.group(1)
    authority = _authority(match.group(2))
    if authority is None:
        return None
    host, port = authority
    return scheme, host, _DEFAULT_PORTS[scheme] if port is None else port


class RequestHeaders:
    """The request headers, read once from the ASGI scope.

    Names are compared case-insensitively (RFC 9110 §5.1; 2026-07-28
    basic/transports/streamable-http §case sensitivity); values are kept exactly as
    sent.  Repeated headers are joined with ``", "``.
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
    """The media ranges of an ``Accept`` value, without those weighted ``q=0`` (which
    RFC 9110 §12.4.2 defines as "not acceptable")."""
    ranges = []
    for part in accept.split(","):
        media_range, *parameters = part.split(";")
        refused = False
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    refused = float(value.strip()) <= 0
                except ValueError:
                    refused = False
        if not refused:
            ranges.append(media_range.strip().lower())
    return ranges


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
    """A session id: 192 random bits, URL-safe base64: visible ASCII only
    (2025-11-25 basic/transports §session management)."""
    return secrets.token_urlsafe(24)


def is_valid_session_id(value: str) -> bool:
    """Only visible ASCII, 0x21-0x7E (2025-11-25 basic/transports §session management)."""
    return bool(value) and all(0x21 <= ord(ch) <= 0x7E for ch in value)


_WILDCARDS = frozenset({"0.0.0.0", "[::]"})


def _is_loopback(name: str) -> bool:
    return name in _LOOPBACK_NAMES or name.startswith("127.")


@functools.lru_cache(maxsize=128)
def _address_name(address: str) -> str:
    """A socket address as it is written in a Host header (IPv6 in brackets).  An
    IPv4-mapped IPv6 address (``::ffff:127.0.0.1``, what a dual-stack ``::`` socket
    reports for an IPv4 peer) is the IPv4 address it maps."""
    text = address.strip().lower().strip("[]")
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return f"[{parsed}]" if parsed.version == 6 else str(parsed)


def _host_name(entry: str) -> str:
    """The host name of an ``allowed_hosts`` entry (a port, if given, is dropped)."""
    text = entry.strip().lower()
    if ":" in text and not text.startswith("["):
        # A bare IPv6 address (as a bind address is written): bracket it, as in a Host.
        text = f"[{text}]" if text.count(":") > 1 else text
    authority = _authority(text)
    if authority is None:
        raise ConfigError(f"not a host name: {entry!r}")
    return authority[0]


def _origin_pattern(entry: str) -> str:
    """Normalize an ``allowed_origins`` entry: ``scheme://host:port`` (the port made
    explicit) or ``scheme://host:*`` (any port)."""
    text = entry.strip().lower().rstrip("/")
    if text.endswith(":*"):
        parsed = _origin(text[:-2])
        if parsed is not None and not text[:-2].rsplit("]", 1)[-1].count(":") > 1:
            return f"{parsed[0]}://{parsed[1]}:*"
    else:
        parsed = _origin(text)
        if parsed is not None:
            return f"{parsed[0]}://{parsed[1]}:{parsed[2]}"
    raise ConfigError(f"not an origin (scheme://host[:port] or scheme://host:*): {entry!r}")


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` and ``Origin`` headers a request may carry (DNS-rebinding
    protection, 2025-11-25 basic/transports §security warning).

    With ``enabled`` set, a request must carry a ``Host`` header naming one of
    ``allowed_hosts`` (any port) or the very address the connection arrived on (a
    literal address cannot be rebound), else it is answered 421.  ``enabled=None``
    decides per connection: on for connections that arrived on a loopback address
    (where only this machine's pages and tools are expected), off for the others; it
    is the policy of a server listening on every address.  Whether or not protection is
    enabled, an ``Origin`` header, when present, must be the request's own origin (the
    same host and port as ``Host``, the port defaulting by the origin's scheme) or match
    ``allowed_origins``, else the request is answered 403; ``null`` and malformed
    origins are refused.  ``allowed_origins`` entries are origins
    (``scheme://host[:port]``) or ``scheme://host:*`` for any port.

    Proxies: ``X-Forwarded-Host`` and ``Forwarded`` are ignored; the ``Host`` the
    proxy sends is the one checked.  Behind a reverse proxy on a public name, either
    have the proxy pass the client's ``Host`` through and list that name in
    ``allowed_hosts``, or list the name the proxy sends.
    """

    enabled: bool | None = True
    allowed_hosts: frozenset[str] = _LOOPBACK_NAMES
    allowed_origins: frozenset[str] = _LOOPBACK_ORIGINS

    def __post_init__(self) -> None:
        # Normalized once, so that a typo is an error here rather than a silent 421.
        object.__setattr__(self, "allowed_hosts", frozenset(_host_name(h) for h in self.allowed_hosts))
        object.__setattr__(
            self, "allowed_origins", frozenset(_origin_pattern(o) for o in self.allowed_origins)
        )

    @classmethod
    def for_bind(
        cls,
        host: str,
        *,
        enabled: bool | None = None,
        allowed_hosts: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
    ) -> HostPolicy:
        """The policy for a listening address: protection on for loopback binds (where
        only this machine's pages and tools are expected), decided per connection for a
        wildcard bind (``0.0.0.0``, ``::``), off for any other address."""
        name = _host_name(host or "0.0.0.0")
        loopback = _is_loopback(name)
        if enabled is None and name not in _WILDCARDS:
            enabled = loopback
        hosts = set(_LOOPBACK_NAMES) | set(allowed_hosts)
        origins = set(allowed_origins)
        if name in _WILDCARDS:
            origins |= _LOOPBACK_ORIGINS
        if loopback:
            # Any 127/8 address is loopback; the address we listen on is a valid Host.
            hosts.add(name)
            origins |= _LOOPBACK_ORIGINS
            origins |= {f"{scheme}://{name}:*" for scheme in ("http", "https")}
        return cls(enabled=enabled, allowed_hosts=frozenset(hosts), allowed_origins=frozenset(origins))

    def check(self, host: str | None, origin: str | None, local: str | None = None) -> None:
        """Raise :class:`ProtocolError` (421 or 403) when the request must be refused.

        ``local`` is the address the connection arrived on (``None`` for a Unix socket,
        which counts as local).
        """
        authority = None if host is None else _authority(host)
        local_name = None if local is None else _address_name(local)
        enabled = self.enabled
        if enabled is None:
            enabled = local_name is None or _is_loopback(local_name)
        if enabled:
            if authority is None:
                raise ProtocolError(
                    421, INVALID_REQUEST, "Misdirected Request: a valid Host header is required"
                )
            if authority[0] not in self.allowed_hosts and authority[0] != local_name:
                raise ProtocolError(
                    421,
                    INVALID_REQUEST,
                    f"Misdirected Request: Host {authority[0]!r} is not allowed; admit it with the "
                    "allowed_hosts setting (--allowed-host)",
                )
        if origin is not None and not self._origin_allowed(origin, authority):
            raise ProtocolError(
                403,
                INVALID_REQUEST,
                "Forbidden: Origin is not this server's and not allowed; admit it with the "
                "allowed_origins setting (--allowed-origin)",
            )

    def _origin_allowed(self, origin: str, authority: tuple[str, int | None] | None) -> bool:
        parsed = _origin(origin)
        if parsed is None:
            return False
        scheme, name, port = parsed
        if (
            f"{scheme}://{name}:{port}" in self.allowed_origins
            or f"{scheme}://{name}:*" in self.allowed_origins
        ):
            return True
        if authority is None:
            return False
        host_name, host_port = authority
        return name == host_name and port == (_DEFAULT_PORTS[scheme] if host_port is None else host_port)
