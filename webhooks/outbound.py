"""Outbound HTTP to webhook receivers, with an SSRF guard that checks the address actually connected to.

The host name is resolved once; every resolved address must be public (unless
`settings.OUTBOUND_ALLOW_PRIVATE`), and the socket is then opened to that very address — so a DNS answer
that changes between a check and a connect (rebinding) cannot reach an internal service. TLS still
verifies the certificate against the host name (SNI), and the Host header keeps the name. Redirects are
never followed; at most `max_body` bytes of the response are read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

# Cloud metadata services: blocked even if a provider ever put one on a "global" address.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


class OutboundRefused(Exception):
    """The destination is not allowed (private, loopback, link-local, multicast, reserved, metadata)."""


def address_is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip in METADATA_ADDRESSES:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in (ip.ipv4_mapped, ip.sixtofour, (ip.teredo or (None, None))[1]):
            if embedded is not None and not address_is_public(embedded):
                return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def resolve_destination(host: str, port: int) -> list[tuple]:
    """getaddrinfo results for host:port, refused if any address is not public (and privates are not allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    if not infos:
        raise OSError(f"cannot resolve {host}")
    if not settings.OUTBOUND_ALLOW_PRIVATE:
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if not address_is_public(ip):
                raise OutboundRefused(f"{host} resolves to {ip}, which is not a public address")
    return infos


def guarded_connection(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket to one of the checked addresses of host (tried in order), never to a re-resolved one."""
    last_error: OSError | None = None
    for family, socktype, proto, _, sockaddr in resolve_destination(host, port):
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error or OSError(f"cannot connect to {host}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = guarded_connection(self.host, self.port, self.timeout)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        sock = guarded_connection(self.host, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def validate_url(url: str) -> str | None:
    """Why `url` cannot be a receiver, or None. Checked at save time; addresses are checked again at send time."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Use an http:// or https:// URL with a host name."
    if parts.username or parts.password:
        return "Credentials in the URL are not allowed; put a token in the path or query instead."
    if parts.fragment:
        return "A URL fragment is never sent; remove it."
    if port == 0:
        return "Port 0 is not valid."
    if settings.OUTBOUND_ALLOW_PRIVATE:
        return None
    if parts.scheme != "https":
        return "Use an https:// URL."
    host = parts.hostname.rstrip(".").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return "The host must be reachable on the public internet."
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: its addresses are checked when we connect
    if not address_is_public(ip):
        return "The host must be a public address."
    return None


@dataclass
class Response:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_excerpt: bytes = b""
    error: str = ""
    duration_ms: int = 0


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float, max_body: int = 1024) -> Response:
    """POST body to url; never raises for network trouble (it is in `error`), never follows redirects."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = _GuardedHTTPSConnection if parts.scheme == "https" else _GuardedHTTPConnection
    kwargs = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
    started = time.monotonic()
    result = Response()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    connection = cls(parts.hostname, port, timeout=timeout, **kwargs)
    # The socket timeout bounds each read; this bounds the whole exchange, so a receiver dribbling a byte
    # at a time cannot hold a worker past `timeout`.
    deadline = threading.Timer(timeout, _cut, args=(connection,))
    deadline.daemon = True
    deadline.start()
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        result.status = response.status
        result.headers = {name.lower(): value for name, value in response.getheaders()}
        result.body_excerpt = response.read(max_body)
    except OutboundRefused as exc:
        result.error = f"refused: {exc}"
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if isinstance(exc, TimeoutError) or time.monotonic() - started >= timeout:
            result.error = f"timed out after {timeout:g} s"
        else:
            result.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        deadline.cancel()
        connection.close()
        result.duration_ms = round((time.monotonic() - started) * 1000)
    return result


def _cut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
