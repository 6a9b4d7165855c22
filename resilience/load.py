"""Load generation and receivers for the resilience suite: keep-alive HTTP clients on threads, and a webhook
receiver on 127.0.0.1 that records every delivery."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUEST_TIMEOUT = 30.0  # a request taking longer than this counts as hung


@dataclass
class Result:
    key: str
    status: int  # 0: no HTTP answer (connection error or timeout)
    body: dict
    content_type: str
    seconds: float
    started: float
    replay: bool = False
    unavailable: list[dict] = field(default_factory=list)  # the 503 answers before the final one
    slowest: float = 0.0  # the longest single HTTP exchange (retries excluded)


def order_body(product_id: str, recipient: str) -> bytes:
    return json.dumps(
        {
            "type": "digital",
            "rewards": [
                {
                    "product_id": product_id,
                    "amount": "10.00",
                    "currency": "USD",
                    "delivery_method": "email",
                    "recipient": {"name": "Resilience Recipient", "email": recipient},
                }
            ],
        }
    ).encode()


class Clients:
    """`threads` keep-alive clients POSTing /api/v1/orders; `next_job()` returns (key, body, replay) or None."""

    def __init__(
        self,
        port: int,
        api_key: str,
        next_job: Callable[[], tuple[str, bytes, bool] | None],
        *,
        retry_unavailable_for: float = 0,
        pause: float = 0,
    ) -> None:
        """retry_unavailable_for: a 503 is retried with the same Idempotency-Key (as a client should) for up to
        this many seconds; pause: seconds each client waits between requests."""
        self.retry_unavailable_for = retry_unavailable_for
        self.pause = pause
        self.port = port
        self.api_key = api_key
        self.next_job = next_job
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)

    def post(self, conn: http.client.HTTPConnection, key: str, body: bytes) -> tuple[int, dict, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        }
        conn.request("POST", "/api/v1/orders", body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        content_type = response.getheader("Content-Type", "")
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {"_raw": raw[:500].decode("utf8", "replace")}
        return response.status, payload, content_type

    def _run(self) -> None:
        conn = self._connection()
        local: list[Result] = []
        while True:
            job = self.next_job()
            if job is None:
                break
            key, body, replay = job
            started = time.monotonic()
            unavailable: list[dict] = []
            slowest = 0.0
            while True:
                attempt = time.monotonic()
                try:
                    status, payload, content_type = self.post(conn, key, body)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = self._connection()
                    status, payload, content_type = 0, {"error": repr(exc)}, ""
                slowest = max(slowest, time.monotonic() - attempt)
                # Another request with the same key is still in flight: retry, as the API asks.
                if status == 409 and payload.get("code") == "idempotency_key_in_flight":
                    time.sleep(0.05)
                    continue
                if status == 503 and time.monotonic() - started < self.retry_unavailable_for:
                    unavailable.append({"body": payload, "content_type": content_type})
                    time.sleep(0.5)
                    continue
                break
            local.append(
                Result(
                    key,
                    status,
                    payload,
                    content_type,
                    time.monotonic() - started,
                    started,
                    replay,
                    unavailable,
                    slowest,
                )
            )
            if self.pause:
                time.sleep(self.pause)
        conn.close()
        with self._lock:
            self.results.extend(local)

    def start(self, threads: int) -> Clients:
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float = 600) -> list[Result]:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "load clients did not finish in time"
        return self.results


class WebhookReceiver:
    """Answers 200 to every POST and records (webhook-id, event type, data id)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.received.append(
                        (self.headers.get("webhook-id", ""), body.get("type", ""), (body.get("data") or {}).get("id"))
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Summary:
    """What a test prints for the README."""

    name: str
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append(text)

    def print(self) -> None:
        print(f"\n[resilience] {self.name}")
        for line in self.lines:
            print(f"[resilience]   {line}")
