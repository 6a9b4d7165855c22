"""Outbound HTTP to webhook receivers, with an SSRF guard that checks the address actually connected to.

The host name is resolved once; every resolved address must be public (unless
`settings.OUTBOUND_ALLOW_PRIVATE`), and the socket is then opened to that very address — so a DNS answer
that changes between a check and a connect (rebinding) cannot reach an internal service. TLS still
verifies the certificate against the host name (SNI), and the Host header keeps the name. Redirects are
never followed; at most `max_body` bytes of the response are read.

With `keep_alive=True` the connection is kept for the next request to the same scheme, host and port (a pool
per process, short-lived): the socket stays connected to the address that was checked when it was opened,
so reuse never skips the guard. One watchdog thread per process enforces every request's overall deadline.
"""

from __future__ import annotations

import heapq
import http.client
import ipaddress
import itertools
import os
import re
import select
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

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


def guarded_connection(host: str, port: int, timeout: float, deadline: float | None = None) -> socket.socket:
    """A TCP socket to one of the checked addresses of host (tried in order), never to a re-resolved one.

    All attempts together end by `deadline` (monotonic) if given: a name with many addresses that drop
    packets cannot hold the caller for `timeout` per address.
    """
    last_error: OSError | None = None
    for family, socktype, proto, _, sockaddr in resolve_destination(host, port):
        left = timeout if deadline is None else min(timeout, deadline - time.monotonic())
        if left <= 0:
            raise TimeoutError(f"cannot connect to {host} in time")
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(left)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error or OSError(f"cannot connect to {host}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    deadline: float | None = None  # set by post(): the whole exchange's end, connecting included

    def connect(self) -> None:
        self.sock = guarded_connection(self.host, self.port, self.timeout, self.deadline)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    deadline: float | None = None

    def connect(self) -> None:
        sock = guarded_connection(self.host, self.port, self.timeout, self.deadline)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def host_is_numeric(host: str) -> bool:
    """Whether a resolver would read `host` as an IP address, in any of the forms inet_aton and browsers accept:
    dotted (127.0.0.1), short (127.1), decimal (2130706433), hex (0x7f000001), octal (0177.0.0.1), IPv6."""
    host = host.rstrip(".")
    if ":" in host:
        return True  # IPv6 (urlsplit has removed the brackets), with or without a zone
    try:
        socket.inet_aton(host)
        return True
    except OSError:
        pass
    # A name whose last label is a number is no DNS name (no top-level domain is numeric), whatever parses it.
    return bool(re.fullmatch(r"[0-9]+|0x[0-9a-f]*", host.rsplit(".", 1)[-1], re.IGNORECASE))


def normalize_url(url: str) -> str:
    """`url` as stored: scheme and host in lower case, the host without a trailing dot (call after validate_url)."""
    parts = urlsplit(url)
    host = parts.hostname.rstrip(".")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def validate_url(url: str) -> str | None:
    """Why `url` cannot be a receiver, or None. Checked at save time; addresses are checked again at send time.

    In production (private addresses not allowed) the host must be a public DNS name: an IP address in any form
    and a single-label name (`intranet`) are refused here, so the endpoint is never saved, not only never sent.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Use an http:// or https:// URL with a host name."
    if not url.isascii():
        return (
            "Use an ASCII URL: percent-encode the path and query, and write an international host name in its "
            "xn-- form."
        )
    labels = parts.hostname.rstrip(".").split(".")
    if len(parts.hostname) > 253 or any(not label or len(label) > 63 for label in labels):
        return "Not a valid host name."
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
    if host_is_numeric(host):
        return "Use the receiver's host name (e.g. hooks.example.com), not an IP address."
    if "." not in host:
        return "Use a fully qualified host name (e.g. hooks.example.com), not a single-label name."
    return None  # a name: its addresses are checked when we connect


@dataclass
class Response:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_excerpt: bytes = b""
    error: str = ""
    duration_ms: int = 0


# Idle keep-alive connections are dropped after this long (or this old), so DNS changes are picked up.
POOL_IDLE_SECONDS = 15.0
POOL_MAX_AGE_SECONDS = 60.0
POOL_MAX_IDLE_PER_DESTINATION = 32
# Errors that mean a kept-alive connection was closed by the receiver before our request: retried once, fresh.
_STALE_ERRORS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.BadStatusLine)


class _Pool:
    """Idle HTTP(S) connections per destination, each still connected to the address checked when it opened."""

    def __init__(self) -> None:
        self._idle: dict[tuple, deque] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self, key: tuple) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                    self._idle, self._pid = {}, os.getpid()
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection, created, used = idle.pop()
            sock = connection.sock
            fresh = now - used < POOL_IDLE_SECONDS and now - created < POOL_MAX_AGE_SECONDS
            # Readable while idle means the receiver closed it (or sent something unasked): not reusable.
            if fresh and sock is not None and not _readable(sock):
                connection._pool_created = created
                return connection
            connection.close()

    def put(self, key: tuple, connection: http.client.HTTPConnection) -> None:
        created = getattr(connection, "_pool_created", None) or time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(key, deque())
            idle.append((connection, created, time.monotonic()))
            extra = idle.popleft() if len(idle) > POOL_MAX_IDLE_PER_DESTINATION else None
        if extra is not None:
            extra[0].close()


def _readable(sock: socket.socket) -> bool:
    """Whether `sock` has data or EOF waiting (poll, not select: any descriptor number)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Deadlines:
    """One thread per process that cuts requests past their deadline (cheaper than a Timer thread each)."""

    def __init__(self) -> None:
        self._heap: list[list] = []
        self._cond = threading.Condition()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, when: float, connection: http.client.HTTPConnection) -> list:
        entry = [when, next(self._order), connection]
        with self._cond:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._heap, self._pid = [], os.getpid()
                self._thread = threading.Thread(target=self._run, name="outbound-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    def cancel(self, entry: list) -> None:
        with self._cond:  # not while the watchdog cuts it (it does so holding the lock)
            entry[2] = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        # Cut under the lock: a request that ended meanwhile has cancelled its entry first,
                        # so a connection already back in the pool is never cut under its next user.
                        _cut(heapq.heappop(self._heap)[2])
                        break
                    self._cond.wait(delay)


_POOL = _Pool()
_DEADLINES = _Deadlines()
_TLS_CONTEXT: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        _TLS_CONTEXT = ssl.create_default_context()  # a few ms each: once per process
    return _TLS_CONTEXT


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    max_body: int = 1024,
    keep_alive: bool = False,
) -> Response:
    """POST body to url; never raises for network trouble (it is in `error`), never follows redirects.

    `keep_alive`: take an idle connection to the same destination from this process's pool and give it back
    if the exchange ended cleanly (whole response read, no `Connection: close`).
    """
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    key = (parts.scheme, parts.hostname, port, bool(settings.OUTBOUND_ALLOW_PRIVATE))
    started = time.monotonic()
    retried = False
    while True:
        result = Response()
        connection = _POOL.take(key) if keep_alive else None
        reused = connection is not None
        if connection is None:
            cls = _GuardedHTTPSConnection if https else _GuardedHTTPConnection
            kwargs = {"context": _tls_context()} if https else {}
            connection = cls(parts.hostname, port, timeout=timeout, **kwargs)
            connection.deadline = started + timeout
        elif connection.sock is not None:
            connection.sock.settimeout(timeout)
        # The socket timeout bounds each read; this bounds the whole exchange, so a receiver dribbling a
        # byte at a time cannot hold a worker past `timeout`.
        deadline = _DEADLINES.add(started + timeout, connection)
        reusable = False
        stale = False
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            result.status = response.status
            result.headers = {name.lower(): value for name, value in response.getheaders()}
            result.body_excerpt = response.read(max_body)
            reusable = keep_alive and not response.will_close and response.isclosed()
        except OutboundRefused as exc:
            result.error = f"refused: {exc}"
        except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as exc:
            # ValueError: e.g. UnicodeError from a URL or host name http.client / IDNA cannot encode
            elapsed = time.monotonic() - started
            stale = reused and not retried and isinstance(exc, _STALE_ERRORS) and elapsed < timeout
            if isinstance(exc, TimeoutError) or elapsed >= timeout:
                result.error = f"timed out after {timeout:g} s"
            else:
                result.error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            _DEADLINES.cancel(deadline)
            if reusable:
                _POOL.put(key, connection)
            else:
                connection.close()
            result.duration_ms = round((time.monotonic() - started) * 1000)
        if not stale:
            return result
        retried = True  # the receiver had closed the idle connection: once more on a new one


def _cut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
