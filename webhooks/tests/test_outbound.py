"""The SSRF guard with OUTBOUND_ALLOW_PRIVATE off (production): addresses are checked after DNS resolution and
the connection goes to the checked address, so DNS rebinding cannot slip through."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from testsupport.servers import LocalHttpServer
from webhooks import outbound


@pytest.fixture
def production(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Resolve the given names to the given addresses (and record every lookup)."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        if host in answers:
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (ip, port, 0, 0) if ":" in ip else (ip, port),
                )
                for ip in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.8",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "169.254.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "100.100.100.200",  # Alibaba metadata
        "0.0.0.0",
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
    ],
)
def test_non_public_addresses_are_not_public(address):
    assert not outbound.address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address):
    assert outbound.address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data/"]
)
def test_post_refuses_private_literals_without_connecting(production, url, monkeypatch):
    def no_connect(*args, **kwargs):
        raise AssertionError("must not connect")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    response = outbound.post(url, body=b"{}", headers={}, timeout=2)
    assert response.status is None
    assert response.error.startswith("refused:") and "not a public address" in response.error


def test_names_resolving_to_private_addresses_are_refused(production, monkeypatch):
    fake_dns(monkeypatch, {"evil.example": ["93.184.216.34", "10.0.0.7"], "meta.example": ["169.254.169.254"]})
    for host in ("evil.example", "meta.example", "localhost"):
        with pytest.raises(outbound.OutboundRefused):
            outbound.resolve_destination(host, 443)


def test_the_checked_address_is_the_one_connected_to(receiver, monkeypatch, settings):
    """Rebinding: a second lookup would answer differently; we resolve once and connect to that answer."""
    settings.OUTBOUND_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    port = receiver.server.server_address[1]
    answers = iter([["127.0.0.1"], ["10.255.255.1"]])
    lookups = []

    real = socket.getaddrinfo

    def rebinding_dns(host, port_, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port_, *args, **kwargs)
        lookups.append(host)
        (ip,) = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port_))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    response = outbound.post(f"http://rebind.example:{port}/hook", body=b"{}", headers={}, timeout=2)
    assert response.status == 200, response.error
    assert lookups == ["rebind.example"]  # one lookup; the socket went to its answer
    assert receiver.requests[0].headers["host"] == f"rebind.example:{port}"


def test_with_the_setting_off_a_rebinding_name_is_refused_at_connect_time(production, monkeypatch):
    fake_dns(monkeypatch, {"rebind.example": ["127.0.0.1"]})
    response = outbound.post("https://rebind.example/hook", body=b"{}", headers={}, timeout=2)
    assert response.error.startswith("refused:")


def test_redirects_are_not_followed(receiver):
    receiver.script("/hook", [(302, {"Location": receiver.url("/elsewhere")})])
    response = outbound.post(receiver.url(), body=b"{}", headers={}, timeout=2)
    assert response.status == 302
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_the_timeout_bounds_the_whole_exchange_not_each_read():
    """A receiver that dribbles its answer a byte at a time is cut off at the timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def dribble():
        conn, _ = listener.accept()
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 1000:
            if stop.is_set():
                break
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)
        conn.close()

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        response = outbound.post(f"http://127.0.0.1:{listener.getsockname()[1]}/", body=b"{}", headers={}, timeout=0.5)
        assert time.monotonic() - started < 1.5
        assert "timed out" in response.error
    finally:
        stop.set()
        listener.close()


def test_timeouts_and_refused_connections_are_errors_not_exceptions():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    port = listener.getsockname()[1]
    try:
        response = outbound.post(f"http://127.0.0.1:{port}/", body=b"{}", headers={}, timeout=0.3)
        assert response.status is None and "timed out" in response.error
    finally:
        listener.close()
    response = outbound.post(f"http://127.0.0.1:{port}/", body=b"{}", headers={}, timeout=0.3)
    assert response.status is None and "ConnectionRefused" in response.error


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.example.com/rewards", True),
        ("https://Hooks.Example.COM./rewards", True),
        ("https://93.184.216.34/x", False),  # a public address too: a receiver is named (and its certificate)
        ("http://hooks.example.com/rewards", False),  # https required in production
        ("https://127.0.0.1/x", False),
        ("https://[::1]/x", False),
        ("https://10.0.0.1/x", False),
        ("https://169.254.169.254/x", False),
        ("https://localhost/x", False),
        ("https://printer.local/x", False),
        ("https://user:pass@hooks.example.com/x", False),
        ("gopher://hooks.example.com/x", False),
        ("https://hooks.example.com:99999/x", False),
    ],
)
def test_endpoint_url_validation_in_production(production, url, ok):
    assert (outbound.validate_url(url) is None) is ok


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f000001",  # ... in hex
        "0X7F000001",
        "0177.0.0.1",  # ... with an octal first part
        "0x7f.0.0.1",
        "127.1",  # ... short form
        "127.0.0.1.",  # ... with the root dot
        "017700000001",
        "1.2.3.4.5",  # no DNS name ends in a number
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[0:0:0:0:0:0:0:1]",
        "[2606:4700:4700::1111]",  # public, still an address
        "[fe80::1%25eth0]",
        "intranet",  # single-label names resolve through the search domain to internal hosts
        "intranet.",
        "metadata",
    ],
)
def test_numeric_hosts_and_single_label_names_are_refused_at_registration(production, host):
    problem = outbound.validate_url(f"https://{host}/hook")
    assert problem is not None and ("IP address" in problem or "single-label" in problem), problem


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://Hooks.Example.COM./rewards?a=B", "https://hooks.example.com/rewards?a=B"),
        ("https://hooks.example.com:8443/x", "https://hooks.example.com:8443/x"),
        ("http://[::1]:8001/x", "http://[::1]:8001/x"),
    ],
)
def test_urls_are_stored_normalised(url, stored):
    assert outbound.normalize_url(url) == stored


def test_endpoint_url_validation_in_dev_allows_local_http(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    assert outbound.validate_url("http://127.0.0.1:8001/hook") is None
    assert outbound.validate_url("ftp://127.0.0.1/hook") is not None


class _KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open between requests
    connections: list[tuple] = []

    def setup(self) -> None:
        super().setup()
        type(self).connections.append(self.client_address)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.send_header("content-length", "0")
        if self.path == "/close":
            self.send_header("connection", "close")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def keep_alive_server():
    _KeepAliveHandler.connections = []
    local = LocalHttpServer(_KeepAliveHandler)
    yield local.server
    local.stop()


def test_keep_alive_reuses_one_connection_and_recovers_when_the_receiver_drops_it(keep_alive_server, monkeypatch):
    port = keep_alive_server.server_address[1]
    url = f"http://127.0.0.1:{port}/hook"
    lookups = fake_dns(monkeypatch, {})
    for _ in range(5):
        assert outbound.post(url, body=b"{}", headers={}, timeout=2, keep_alive=True).status == 204
    assert len(_KeepAliveHandler.connections) == 1
    assert lookups == ["127.0.0.1"]  # resolved and checked once, when the connection opened

    # The receiver closes idle connections (its keep-alive timeout): the next request goes on a new one.
    (idle,) = [entry[0] for queue in outbound._POOL._idle.values() for entry in queue if entry[0].sock]
    idle.sock.shutdown(socket.SHUT_RDWR)  # as if the far end had closed it
    assert outbound.post(url, body=b"{}", headers={}, timeout=2, keep_alive=True).status == 204
    # `Connection: close` from the receiver: not kept.
    closing = f"http://127.0.0.1:{port}/close"
    assert outbound.post(closing, body=b"{}", headers={}, timeout=2, keep_alive=True).status == 204
    assert outbound.post(url, body=b"{}", headers={}, timeout=2, keep_alive=True).status == 204
    assert len(_KeepAliveHandler.connections) == 3


def test_a_kept_connection_is_not_reused_once_private_addresses_are_refused(keep_alive_server, settings):
    port = keep_alive_server.server_address[1]
    settings.OUTBOUND_ALLOW_PRIVATE = True
    assert outbound.post(f"http://127.0.0.1:{port}/", body=b"{}", headers={}, timeout=2, keep_alive=True).status == 204
    settings.OUTBOUND_ALLOW_PRIVATE = False
    response = outbound.post(f"http://127.0.0.1:{port}/", body=b"{}", headers={}, timeout=2, keep_alive=True)
    assert response.status is None and response.error.startswith("refused:")
    assert len(_KeepAliveHandler.connections) == 1


@pytest.mark.parametrize(
    "url",
    ["https://example.com/café", "https://bücher.example/hook", f"https://{'a' * 64}.example.com/hook"],
)
def test_urls_http_cannot_send_are_refused_at_save_time(url, settings):
    for allow_private in (False, True):
        settings.OUTBOUND_ALLOW_PRIVATE = allow_private
        assert outbound.validate_url(url) is not None


def test_a_url_http_cannot_encode_is_an_error_result_not_an_exception(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    response = outbound.post("http://127.0.0.1:9/café", body=b"{}", headers={}, timeout=1)
    assert response.status is None and response.error.startswith("UnicodeEncodeError")


def test_connecting_to_many_dead_addresses_ends_by_the_requests_deadline(monkeypatch, settings):
    """A name with several addresses that drop packets: the attempts share one deadline, not `timeout` each."""
    settings.OUTBOUND_ALLOW_PRIVATE = True
    fake_dns(monkeypatch, {"many.example": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]})
    tried: list[tuple[str, float]] = []

    class BlackHole(socket.socket):
        def connect(self, address):
            tried.append((address[0], self.gettimeout()))
            time.sleep(self.gettimeout())
            raise TimeoutError("timed out")

    monkeypatch.setattr(outbound.socket, "socket", BlackHole)
    started = time.monotonic()
    response = outbound.post("http://many.example/hook", body=b"{}", headers={}, timeout=1)
    took = time.monotonic() - started
    assert response.status is None and response.error == "timed out after 1 s"
    assert took < 1.5, f"{took:.2f} s for {len(tried)} addresses"
    assert tried[0][0] == "192.0.2.1" and len(tried) <= 2 and sum(t for _, t in tried) <= 1.05
