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
    from core import ratelimit

    redis = ratelimit.get_redis()
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
        connection.set_schema_to_public()
        for twin in Tenant.objects.filter(slug=slug).order_by("-is_sandbox"):
            twin.delete(force_drop=True)


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


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup):
    """A real `celery worker` subprocess on the test database and the test Redis database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="rewards_portal.settings.test",
        DATABASE_URL=worker_database_url(),
        TEST_REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    log_path = ROOT / "var" / "test-worker.log"
    log_path.parent.mkdir(exist_ok=True)
    log = open(log_path, "w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "rewards_portal", "worker",
            "-Q", "default,delivery,webhooks,bulk", "-P", "threads", "-c", "4", "-l", "info",
            "-n", f"test{os.getpid()}@%h", "--without-mingle", "--without-gossip",
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    from core import ratelimit
    from core.health import WORKER_HEARTBEAT_KEY

    deadline = time.time() + 30
    while time.time() < deadline:
        if ratelimit.get_redis().hlen(WORKER_HEARTBEAT_KEY):
            break
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"celery worker did not start: {log_path.read_text()[-2000:]}")
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


__all__ = ["ApiClient", "tenant_context"]
