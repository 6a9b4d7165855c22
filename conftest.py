"""Test fixtures: a real PostgreSQL test database with two tenants (each with a provisioned sandbox twin), real Redis,
and — for tests that need committed data — a throwaway tenant per test and a real Celery worker."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from testsupport.api import ApiClient
from testsupport.servers import LiveApp
from testsupport.smtp import SmtpSink
from testsupport.workers import WorkerPool

_counter = itertools.count()


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_modify_db_settings):
    """Create and migrate the test database, then the template and two tenants (alpha, beta).

    Unlike pytest-django's own fixture, the database is set up even when only committed-data tests
    (threads, servers, workers) run, so no test can ever fall through to the development database.
    """
    from django.test.utils import setup_databases, teardown_databases

    from tenants.services import tenant_create, tenant_sandbox_ensure, tenant_template_ensure

    with django_db_blocker.unblock():
        db_cfg = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        assert connection.settings_dict["NAME"].startswith("test_"), "refusing to run tests outside a test database"
        connection.set_schema_to_public()
        tenant_template_ensure()
        # alpha and beta have used their sandboxes (their twins' schemas exist), as the tests of sandbox behaviour
        # expect; a tenant made in a test (committed_tenant, tenant_create) has a twin provisioned on first use.
        for slug, name, currency in (("alpha", "Alpha Corp", "USD"), ("beta", "Beta GmbH", "EUR")):
            tenant_sandbox_ensure(tenant=tenant_create(slug=slug, name=name, currency=currency))
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
    from tenants.key_cache import key_cache_clear

    redis = get_redis()
    stale = list(redis.scan_iter("rl:*", count=1000))
    if stale:
        redis.delete(*stale)
    key_cache_clear()  # a key or tenant change rolled back with the last test never announced itself
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
    """The whole app behind a real threaded HTTP server on 127.0.0.1 (one thread per request): its base URL."""
    app = LiveApp()
    yield app.url
    app.stop()


@pytest.fixture
def shop(db):
    """A small catalogue (digital, range, physical products; shipping methods; FX rates)."""
    from testsupport.catalog import make_shop

    return make_shop()


@pytest.fixture
def funded_a(tenant_a):
    """Tenant A with 1,000.00 USD deposited (live schema)."""
    from funds.services import funds_deposit

    with tenant_context(tenant_a):
        funds_deposit(currency="USD", amount="1000.00")
    return tenant_a


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def _celery_workers(django_db_setup, smtp_server):
    pool = WorkerPool(smtp_server.port)
    pool.start(1)
    yield pool
    pool.close()


@pytest.fixture
def celery_worker_process(_celery_workers):
    """A running pool of real Celery workers for the session (tests may kill and restart it). A test that killed
    it and failed before restarting it leaves it running again for the next test, instead of every later test
    that needs a worker timing out."""
    yield _celery_workers
    if not any(process.poll() is None for process in _celery_workers.processes):
        _celery_workers.start(1)
