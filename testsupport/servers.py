"""Real HTTP servers on 127.0.0.1 for tests: the whole app, a webhook receiver, a scripted fake vendor.

Each serves from daemon threads on a free port and records what it received, so a test asserts what a
receiver, a vendor or a browser really saw on the wire.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalHttpServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving `handler`, started at once; `stop()` ends it.

    `backlog` is the listen queue (the standard library's is 5): a webhook drain opens several connections
    at once, and a refused connection would read as a receiver that is down.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, backlog: int = 128) -> None:
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": backlog, "daemon_threads": True})
        self.server = server_class(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


# --- a webhook receiver ----------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver(LocalHttpServer):
    """A webhook receiver: records every POST; `script(path, [(status, headers), ...])` answers the next
    requests to path in order, then 200. `slow(path, seconds)`: every request to path waits that long first."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._scripts: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
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

        super().__init__(Handler)

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    def script(self, path: str, responses: list[tuple[int, dict[str, str]]]) -> None:
        with self._lock:
            self._scripts[path].extend(responses)

    def slow(self, path: str, seconds: float) -> None:
        with self._lock:
            self._delays[path] = seconds

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


# --- a scripted fake vendor --------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the headers
    dribble: float = 0.0  # between body bytes


class LocalServer(LocalHttpServer):
    """A fake third-party API (HTTP/1.1, kept-alive): `route(method, path, headers, body) -> Reply` answers every
    GET and POST; `requests` records them ({"method", "path", "headers", "raw"})."""

    def __init__(self, route: Callable[..., Reply]) -> None:
        self.requests: list[dict] = []
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = {"method": self.command, "path": self.path, "headers": dict(self.headers), "raw": raw}
                server.requests.append(request)
                reply = route(self.command, self.path, self.headers, raw)
                time.sleep(reply.delay)
                payload = json.dumps(reply.body).encode() if reply.body is not None else b""
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if reply.dribble:
                        for byte in payload:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(reply.dribble)
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _handle

        super().__init__(Handler)
        self.url = self.base_url


# --- the whole app -------------------------------------------------------------------------------------------


class LiveApp:
    """The whole app behind a real threaded WSGI server on 127.0.0.1 (one thread per request)."""

    def __init__(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

        class Handler(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        self.server = ThreadedWSGIServer(("127.0.0.1", 0), Handler, allow_reuse_address=True, connections_override={})
        self.server.set_app(WSGIHandler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
