"""Webhook test fixtures: a real HTTP receiver on 127.0.0.1 that records requests and answers as scripted."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # listen backlog (default 5): drains open several connections at once


class Receiver:
    """`script(path, [(status, headers), ...])` answers the next requests to path in order; then 200.

    `slow(path, seconds)`: every request to path waits that long before its answer.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._scripts: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    script = receiver._scripts[self.path]
                    status, headers = script.pop(0) if script else (200, {})
                    delay = receiver._delays.get(self.path, 0)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                payload = b"ok" if status < 300 else b"nope " * 300  # > 1 KB: the excerpt is cut
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def script(self, path: str, responses: list[tuple[int, dict[str, str]]]) -> None:
        with self._lock:
            self._scripts[path].extend(responses)

    def slow(self, path: str, seconds: float) -> None:
        with self._lock:
            self._delays[path] = seconds

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver():
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
