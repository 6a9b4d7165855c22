"""Test fixtures: a real PostgreSQL test database with two tenants (each with a sandbox twin), real Redis,
and — for tests that need committed data — a throwaway tenant per test and a real Celery worker."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context

ROOT = Path(__file__).resolve().parent
_counter = itertools.count()


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_modify_db_settings):
    """Create and migrate the test database, then the template and two tenants (alpha, beta).

    Unlike pytest-django's own fixture, the database is set up even when only committed-data tests
    (threads, servers, workers) run, so no test can ever fall through to the development database.
    """
    from django.test.utils import setup_databases, teardown_databases

    from tenants.services import tenant_create, tenant_template_ensure

    with django_db_blocker.unblock():
        db_cfg = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        assert connection.settings_dict["NAME"].startswith("test_"), "refusing to run tests outside a test database"
        connection.set_schema_to_public()
        tenant_template_ensure()
        tenant_create(slug="alpha", name="Alpha Corp", currency="USD")
        tenant_create(slug="beta", name="Beta GmbH", currency="EUR")
        connection.set_schema_to_public()
    yield
    with django_db_blocker.unblock():
        try:
            teardown_databases(db_cfg, verbosity=0)
        except Exception as exc:
            request.node.warn(pytest.PytestWarning(f"could not drop the test database: {exc!r}"))


@pytest.fixture(autouse=True)
def _public_schema_and_fresh_counters() -> Iterator[None]:
    """Every test starts in the public schema with no rate-limit counters left by another test.

    Only our own keys are removed: flushing the whole Redis database would also drop Celery's queue
    bindings under a running worker, and its messages would silently go nowhere.
    """
    from core.redis import get_redis

    redis = get_redis()
    stale = list(redis.scan_iter("rl:*", count=1000))
    if stale:
        redis.delete(*stale)
    yield
    connection.set_schema_to_public()


@pytest.fixture
def tenant_a(db):
    from tenants.models import Tenant

    return Tenant.objects.select_related("sandbox").get(slug="alpha", is_sandbox=False)


@pytest.fixture
def tenant_b(db):
    from tenants.models import Tenant

    return Tenant.objects.select_related("sandbox").get(slug="beta", is_sandbox=False)


class ApiClient:
    """A Django test client that sends `Authorization: Bearer <key>` on every call, and JSON bodies."""

    def __init__(self, raw_key: str, key) -> None:
        from django.test import Client

        self.raw_key = raw_key
        self.key = key
        self._client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def get(self, path: str, params: dict | None = None, **extra):
        return self._client.get(path, params or {}, **extra)

    def post(self, path: str, data: dict | None = None, **extra):
        return self._client.post(path, data or {}, content_type="application/json", **extra)

    def patch(self, path: str, data: dict | None = None, **extra):
        return self._client.patch(path, data or {}, content_type="application/json", **extra)

    def delete(self, path: str, **extra):
        return self._client.delete(path, **extra)


@pytest.fixture
def make_api_client(db):
    """make_api_client(tenant, scopes=["read", "write"], **key_options) -> ApiClient with a fresh key."""
    from tenants.services import api_key_create

    def factory(tenant, scopes: list[str] | None = None, **options):
        connection.set_schema_to_public()
        key, raw = api_key_create(tenant=tenant, scopes=scopes or ["read", "write"], **options)
        return ApiClient(raw, key)

    return factory


@pytest.fixture
def make_partner_client(db):
    """make_partner_client(tenant, name="ShipCo") -> ApiClient with a fulfilment partner's (operator-issued) key."""
    from tenants.services import partner_key_create

    def factory(tenant, name: str = "ShipCo", **options):
        connection.set_schema_to_public()
        key, raw = partner_key_create(tenant=tenant, name=name, **options)
        return ApiClient(raw, key)

    return factory


@pytest.fixture
def api_a(tenant_a, make_api_client) -> ApiClient:
    return make_api_client(tenant_a)


@pytest.fixture
def api_b(tenant_b, make_api_client) -> ApiClient:
    return make_api_client(tenant_b)


@pytest.fixture
def committed_tenant(django_db_setup, django_db_blocker):
    """A fresh tenant whose writes really commit (for threads, servers and workers); dropped afterwards."""
    from tenants.models import Tenant
    from tenants.services import tenant_create

    with django_db_blocker.unblock():
        slug = f"t{os.getpid()}x{next(_counter)}x{uuid.uuid4().hex[:6]}"
        tenant = tenant_create(slug=slug, name=f"Committed {slug}")
        yield tenant
        # The session's workers may still be fulfilling this tenant's rewards: dropping its schema can
        # deadlock with them, so retry; a schema left behind goes with the test database.
        from django.db import OperationalError

        for attempt in range(5):
            connection.set_schema_to_public()
            try:
                for twin in Tenant.objects.filter(slug=slug).order_by("-is_sandbox"):
                    twin.delete(force_drop=True)
                break
            except OperationalError:
                time.sleep(0.5 * (attempt + 1))


@pytest.fixture
def live_http(committed_tenant):
    """The whole app behind a real threaded HTTP server on 127.0.0.1 (one thread per request)."""
    import threading

    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=True, connections_override={})
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def shop(db):
    """A small catalogue (digital, range, physical products; shipping methods; FX rates)."""
    from orders.testing import make_shop

    return make_shop()


@pytest.fixture
def funded_a(tenant_a):
    """Tenant A with 1,000.00 USD deposited (live schema)."""
    from funds.services import funds_deposit

    with tenant_context(tenant_a):
        funds_deposit(currency="USD", amount="1000.00")
    return tenant_a


def worker_database_url() -> str:
    db = settings.DATABASES["default"]
    host = quote(db["HOST"], safe="") if db["HOST"].startswith("/") else db["HOST"]
    port = f":{db['PORT']}" if db.get("PORT") else ""
    auth = db["USER"] + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    return f"postgresql://{auth}@{host}{port}/{db['NAME']}"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        import logging
        import threading

        from aiosmtpd.controller import Controller

        # The mail server is the recipient's side, not our app: its debug log echoes whole messages.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.messages: list[dict] = []
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink._lock:
                    sink.messages.append(
                        {"to": list(envelope.rcpt_tos), "data": envelope.content.decode("utf8", "replace")}
                    )
                return "250 OK"

        import socket

        with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0: pick a free port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def texts(self) -> list[str]:
        """Each message decoded (quoted-printable / base64 parts expanded)."""
        import email

        texts = []
        with self._lock:
            raw = list(self.messages)
        for message in raw:
            parsed = email.message_from_string(message["data"])
            parts = [part.get_payload(decode=True) or b"" for part in parsed.walk() if not part.is_multipart()]
            texts.append("\n".join(p.decode("utf8", "replace") for p in parts))
        return texts

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.stop()


class WorkerPool:
    """Real `celery worker` subprocesses on the test database, test Redis and the test SMTP server."""

    def __init__(self, smtp_port: int) -> None:
        self.smtp_port = smtp_port
        self.processes: list[subprocess.Popen] = []
        self.started = 0
        self.log_path = ROOT / "var" / f"test-worker-{os.getpid()}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self._log = open(self.log_path, "a")

    def start(self, count: int = 1, concurrency: int = 4) -> None:
        from core.health import WORKER_HEARTBEAT_KEY
        from core.redis import get_redis

        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="rewards_portal.settings.test",
            DATABASE_URL=worker_database_url(),
            TEST_REDIS_URL=settings.REDIS_URL,
            TEST_DB_NAME=settings.DATABASES["default"]["NAME"],
            TEST_SMTP_PORT=str(self.smtp_port),
            PYTHONUNBUFFERED="1",
        )
        names = []
        for _ in range(count):
            self.started += 1
            name = f"test{os.getpid()}n{self.started}"
            names.append(name)
            command = [sys.executable, "-m", "celery", "-A", "rewards_portal", "worker", "-P", "threads"]
            command += ["-Q", "default,delivery,webhooks,bulk", "-c", str(concurrency), "-l", "info"]
            command += ["-n", f"{name}@%h", "--without-mingle", "--without-gossip"]
            self.processes.append(
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
            )
        deadline = time.time() + 30
        while time.time() < deadline:
            ready = {field.decode().split("@")[0] for field in get_redis().hkeys(WORKER_HEARTBEAT_KEY)}
            if all(name in ready for name in names):
                return
            if any(p.poll() is not None for p in self.processes[-count:]):
                raise RuntimeError(f"celery worker exited: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"celery worker did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9 every worker (no chance to ack, requeue or clean up)."""
        import signal

        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = []

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, smtp_server):
    """A running pool of real Celery workers for the session (tests may kill and restart it)."""
    pool = WorkerPool(smtp_server.port)
    pool.start(1)
    yield pool
    pool.stop()
    pool._log.close()


__all__ = ["ApiClient", "tenant_context"]
