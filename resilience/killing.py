"""Helpers for the worker-kill tests: a fake third party on 127.0.0.1, and a supervisor that kills workers.

`ThirdParty` is one real HTTP server standing in for what the platform calls out to: a webhook receiver
(POST /hooks) and a Twilio-style SMS provider (POST /sms/<account>/Messages.json, basic auth). It records
every request as received, torn ones included (a worker killed mid-request sends a short body).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

SMS_ACCOUNT = "ACresilience"
SMS_TOKEN = "sms-token-" + "r" * 20
HOOK_SECONDS = 0.02  # how long the webhook receiver takes to answer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def complete(self) -> bool:
        return len(self.body) == int(self.headers.get("content-length") or -1)


class ThirdParty:
    """The webhook receiver and the SMS provider, on one threaded HTTP server on 127.0.0.1."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        party = self
        expected_auth = "Basic " + base64.b64encode(f"{SMS_ACCOUNT}:{SMS_TOKEN}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with party._lock:
                    party.requests.append(Received(self.path, headers, body))
                if self.path.startswith("/sms/"):
                    if headers.get("authorization") != expected_auth:
                        status, payload = 401, {"message": "bad credentials"}
                    else:
                        status, payload = 201, {"sid": "SM" + uuid.uuid4().hex}
                else:
                    time.sleep(HOOK_SECONDS)  # a receiver takes a moment: kills land mid-request more often
                    status, payload = 200, {"ok": True}
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker was killed mid-request: what it made of the request is what the test checks

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def hooks(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == "/hooks"]

    def sms(self) -> list[dict[str, str]]:
        """Complete SMS requests the provider accepted: {"to", "body"}."""
        with self._lock:
            raw = [r for r in self.requests if r.path.startswith("/sms/") and r.complete]
        messages = []
        for request in raw:
            form = parse_qs(request.body.decode())
            messages.append({"to": form["To"][0], "body": form["Body"][0]})
        return messages

    def worker_env(self) -> dict[str, str]:
        """What a worker needs to send SMS here through fulfillment.sms.HttpSmsBackend."""
        return {
            "TEST_SMS_BACKEND": "fulfillment.sms.HttpSmsBackend",
            "SMS_HTTP_URL": f"{self.base_url}/sms/{{account}}/Messages.json",
            "SMS_HTTP_ACCOUNT": SMS_ACCOUNT,
            "SMS_HTTP_TOKEN": SMS_TOKEN,
            "SMS_HTTP_FROM": "+15550000000",
            "SMS_HTTP_TIMEOUT_SECONDS": "10",
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def restart(pool, count: int = 1) -> float:
    """Start `count` workers; returns the seconds it took. On an overloaded machine a worker may boot slower
    than start() waits for: as long as it is alive, go on (it will get to the queue)."""
    started = time.monotonic()
    try:
        pool.start(count)
    except RuntimeError as exc:
        if "did not start" not in str(exc) or not all(p.poll() is None for p in pool.processes):
            raise
    return time.monotonic() - started


def any_dead(pool) -> bool:
    return any(p.poll() is not None for p in pool.processes)


def purge_queued(schema_names: set[str], queues: tuple[str, ...] = ("delivery", "webhooks", "default")) -> int:
    """Remove tasks of these schemas still waiting in the queues (the sweepers' duplicates, no-ops by now).

    The tenant is dropped after the test; left there, each would fail (slowly, with a traceback) in a
    worker of a later test that uses the same test slot.
    """
    from rewards_portal.celery import app

    prefix = (app.conf.broker_transport_options or {}).get("global_keyprefix", "")
    removed = 0
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        for queue in queues:
            for message in client.lrange(prefix + queue, 0, -1):
                if json.loads(message).get("headers", {}).get("_schema_name") in schema_names:
                    removed += client.lrem(prefix + queue, 0, message)
    return removed
