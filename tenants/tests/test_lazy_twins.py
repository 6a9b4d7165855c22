"""Lazy sandbox twins: a new tenant has one schema; its twin's schema is provisioned on first use, exactly once, and
everything that only sweeps or counts passes an unprovisioned twin by."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django_tenants.utils import get_tenant_base_schema, tenant_context

from audit.actors import Actor
from audit.models import AuditEvent
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from portal.mixins import MODE_SESSION_KEY, SANDBOX
from tenants import provisioning
from tenants.due import FULFILMENT, for_each_due_tenant
from tenants.migrating import schemas_behind, tenant_migration_leaves
from tenants.models import ApiKey, Tenant, TenantDueEvent
from tenants.selectors import for_each_tenant
from tenants.services import api_key_create, tenant_create, tenant_sandbox_ensure
from testsupport.api import ApiClient
from testsupport.concurrency import together
from testsupport.portal import make_staff, portal_client, sign_in

from .test_provisioning import SHAPE, _shape


def _schemas_named(*names: str) -> set[str]:
    """Which of `names` exist, asked of both catalogs a tool might read."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [list(names)])
        namespaces = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name = ANY(%s)", [list(names)])
        assert {row[0] for row in cursor.fetchall()} == namespaces
    return namespaces


def _ready(twin: Tenant) -> bool:
    return Tenant.objects.get(pk=twin.pk).schema_ready


@pytest.fixture
def fresh(db):
    """A tenant made now, as an operator makes one: live schema, twin row, no twin schema."""
    connection.set_schema_to_public()
    return Tenant.objects.select_related("sandbox").get(pk=tenant_create(slug="lazy-co", name="Lazy Co").pk)


def test_a_new_tenant_has_one_schema_until_its_sandbox_is_first_used(fresh):
    twin = fresh.sandbox
    # Everything that names the twin is there from the start: its row, schema name, slug, settings.
    assert (twin.schema_name, twin.slug, twin.is_sandbox) == ("lazy_co_sandbox", "lazy-co", True)
    assert twin.live_id == fresh.pk
    assert twin.default_currency == fresh.default_currency and not twin.schema_ready and fresh.schema_ready
    assert _schemas_named("lazy_co", "lazy_co_sandbox") == {"lazy_co"}

    assert tenant_sandbox_ensure(tenant=fresh).pk == twin.pk
    assert _schemas_named("lazy_co", "lazy_co_sandbox") == {"lazy_co", "lazy_co_sandbox"} and _ready(twin)
    template = _shape(get_tenant_base_schema())
    provisioned = _shape("lazy_co_sandbox")
    for part in SHAPE:  # the twin made later is the current template, exactly
        assert provisioned[part] == template[part], (part, provisioned[part] ^ template[part])
    assert schemas_behind(["lazy_co_sandbox"], tenant_migration_leaves()) == []
    # A second use (from the live row or the twin's own) finds it ready and changes nothing.
    assert tenant_sandbox_ensure(tenant=twin).pk == twin.pk
    assert tenant_sandbox_ensure(tenant=Tenant.objects.get(pk=twin.pk)).schema_ready


def test_the_first_test_key_provisions_the_twin_and_is_audited_there(fresh):
    key, raw = api_key_create(tenant=fresh.sandbox, name="first test key", scopes=["read", "write"], actor=Actor.cli())
    assert raw.startswith("rp_test_") and _ready(fresh.sandbox)
    assert _schemas_named("lazy_co_sandbox") == {"lazy_co_sandbox"}
    with tenant_context(fresh.sandbox):
        assert AuditEvent.objects.filter(action="api_key.create", object_id=key.key_id).count() == 1
    assert ApiClient(raw, key).get("/api/v1/balances").status_code == 200


def test_a_live_key_leaves_the_twin_alone(fresh):
    api_key_create(tenant=fresh)
    assert not _ready(fresh.sandbox) and _schemas_named("lazy_co_sandbox") == set()


@pytest.mark.parametrize(
    "command",
    [
        ("api_key_create", "lazy-co", "--sandbox"),
        ("funds_deposit", "lazy-co", "25.00", "USD", "--sandbox"),
    ],
)
def test_operator_commands_on_the_sandbox_provision_it(fresh, command):
    call_command(*command, stdout=io.StringIO(), stderr=io.StringIO())
    assert _ready(fresh.sandbox) and _schemas_named("lazy_co_sandbox") == {"lazy_co_sandbox"}


def test_a_request_with_a_test_key_whose_twin_has_no_schema_provisions_it(fresh):
    # No service issues a test key without provisioning the twin; a key row made another way (plain SQL, a
    # restore of the public schema) must still land in a schema that exists.
    raw = "rp_test_lazykey00001_" + "x" * 32
    key = ApiKey.objects.create(
        key_id="lazykey00001", tenant=fresh.sandbox, key_hash=hashlib.sha256(raw.encode()).hexdigest(),
        last4=raw[-4:], scopes=["read"],
    )  # fmt: skip
    response = ApiClient(raw, key).get("/api/v1/balances")
    assert response.status_code == 200, response.content
    assert response.json()["results"] == [] and _ready(fresh.sandbox)
    assert _schemas_named("lazy_co_sandbox") == {"lazy_co_sandbox"}


def test_switching_the_portal_to_sandbox_provisions_it(fresh):
    make_staff(fresh, "owner@lazy.test")
    client = portal_client(fresh)
    assert sign_in(client, "owner@lazy.test").status_code == 302
    assert client.get("/").status_code == 200  # live pages never touch the twin
    assert not _ready(fresh.sandbox)

    assert client.post("/mode/", {"mode": "sandbox", "next": "/"}).status_code == 302
    assert _ready(fresh.sandbox) and _schemas_named("lazy_co_sandbox") == {"lazy_co_sandbox"}
    assert client.get("/").status_code == 200


def test_a_sandbox_page_provisions_the_twin_and_the_portal_issues_its_first_test_key(fresh):
    make_staff(fresh, "owner@lazy.test")
    client = portal_client(fresh)
    assert sign_in(client, "owner@lazy.test").status_code == 302
    # A session in sandbox mode whose twin has no schema (the switch provisions it; this is the page's own guard,
    # for a twin made unprovisioned behind the session's back): the Developers page issues the first test key.
    with tenant_context(fresh):
        session = client.session
        session[MODE_SESSION_KEY] = SANDBOX
        session.save()
    assert not _ready(fresh.sandbox)
    response = client.post("/developers/", {"name": "ci", "scopes": ["read", "write"], "expires_in_days": ""})
    assert response.status_code == 302, response.content
    assert _ready(fresh.sandbox) and _schemas_named("lazy_co_sandbox") == {"lazy_co_sandbox"}
    (key,) = ApiKey.objects.filter(tenant=fresh.sandbox, name="ci")
    assert key.prefix == "rp_test_"


def test_sweeps_counts_and_the_console_pass_an_unprovisioned_twin_by(fresh):
    from observability.snapshot import snapshot_compute
    from portal.console.base import tenant_schemas

    visited = [tenant.schema_name for tenant in for_each_tenant(active_only=False)]
    connection.set_schema_to_public()
    assert "lazy_co" in visited and "lazy_co_sandbox" not in visited
    assert "lazy_co_sandbox" not in {tenant.schema_name for tenant in tenant_schemas()}
    assert snapshot_compute()["tenant_schemas"] == Tenant.objects.with_schema().count() == len(visited)

    # A note naming the twin's schema (as a migration seeding notes for every tenant row would write) is dropped,
    # never entered.
    TenantDueEvent.objects.create(schema_name="lazy_co_sandbox", kind=FULFILMENT, due_at=fresh.created_at)
    entered = [tenant.schema_name for tenant in for_each_due_tenant(FULFILMENT, next_due=lambda: None)]
    connection.set_schema_to_public()
    assert "lazy_co_sandbox" not in entered
    assert not TenantDueEvent.objects.filter(schema_name="lazy_co_sandbox").exists()
    assert _schemas_named("lazy_co_sandbox") == set() and not _ready(fresh.sandbox)


def test_platform_migrate_skips_an_unprovisioned_twin_and_a_later_one_is_current(committed_tenant):
    twin = committed_tenant.sandbox
    out = io.StringIO()
    call_command("platform_migrate", parallel=1, stdout=out)
    listed = Tenant.objects.with_schema().exclude(schema_name=get_tenant_base_schema()).count()
    assert f" of {listed} tenant schemas" in out.getvalue(), out.getvalue()
    assert _schemas_named(twin.schema_name) == set() and not _ready(twin)

    tenant_sandbox_ensure(tenant=committed_tenant)
    assert schemas_behind([twin.schema_name], tenant_migration_leaves()) == []


def test_concurrent_first_uses_provision_once_and_all_succeed(committed_tenant, monkeypatch):
    """Two test keys and two sandbox deposits at the same instant, on four connections: one provisioning."""
    real = provisioning.schema_provision
    calls = []

    def counted(*, schema_name: str) -> None:
        calls.append(schema_name)
        time.sleep(0.3)  # hold the lock a while: the other first uses arrive while the schema is being made
        real(schema_name=schema_name)

    monkeypatch.setattr(provisioning, "schema_provision", counted)
    live = committed_tenant

    def first_key():
        connection.set_schema_to_public()
        twin = Tenant.objects.get(pk=live.sandbox.pk)  # each thread's own row, read before the other commits
        return api_key_create(tenant=twin, actor=Actor.cli())[0].key_id

    def first_deposit():
        connection.set_schema_to_public()
        with tenant_context(tenant_sandbox_ensure(tenant=Tenant.objects.get(pk=live.pk))):
            funds_deposit(currency="USD", amount="40.00")
        connection.set_schema_to_public()
        return "deposit"

    results = together(first_key, first_deposit, first_key, first_deposit)
    assert calls == [live.sandbox.schema_name]
    assert results.count("deposit") == 2 and len(set(results)) == 3
    connection.set_schema_to_public()
    assert _ready(live.sandbox) and _schemas_named(live.sandbox.schema_name) == {live.sandbox.schema_name}
    with tenant_context(live.sandbox):
        assert balance_get(currency="USD").available == Decimal("80.00")
        assert ledger_invariant_violations() == []
        assert AuditEvent.objects.filter(action="api_key.create").count() == 2


# --- Releasing twins that hold nothing (installations from before lazy twins have one per tenant) ---------------


def _release(*args: str) -> str:
    out = io.StringIO()
    call_command("tenant_sandbox_release", *args, stdout=out)
    return out.getvalue()


def test_an_empty_twin_is_released_and_provisioned_again_on_its_next_use(committed_tenant):
    twin = tenant_sandbox_ensure(tenant=committed_tenant)  # as every twin of an upgraded installation
    slug, schema = committed_tenant.slug, twin.schema_name
    assert _release(slug, "--dry-run").splitlines() == [
        f"would release {slug}",
        "1 sandbox twin(s) would be released, 0 kept",
    ]
    assert _schemas_named(schema) == {schema} and _ready(twin)

    assert _release(slug).splitlines() == [f"released {slug}", "1 sandbox twin(s) released, 0 kept"]
    assert _schemas_named(schema) == set() and not _ready(twin)
    assert _schemas_named(committed_tenant.schema_name) == {committed_tenant.schema_name}
    with tenant_context(committed_tenant):
        (event,) = AuditEvent.objects.filter(action="tenant.sandbox_release")
        assert (event.object_id, event.actor) == (slug, Actor.cli().label)
    assert slug not in _release(slug)  # nothing left to release

    key, raw = api_key_create(tenant=Tenant.objects.get(pk=twin.pk), actor=Actor.cli())
    assert _ready(twin) and ApiClient(raw, key).get("/api/v1/balances").status_code == 200


@pytest.mark.parametrize("kept_by", ["deposit", "revoked key"])
def test_a_twin_that_holds_anything_is_kept(committed_tenant, kept_by):
    from tenants.services import api_key_revoke

    twin = tenant_sandbox_ensure(tenant=committed_tenant)
    if kept_by == "deposit":
        with tenant_context(twin):
            funds_deposit(currency="USD", amount="5.00")
        connection.set_schema_to_public()
    else:
        api_key_revoke(key=api_key_create(tenant=twin)[0])
    out = _release(committed_tenant.slug, "--verbosity", "2")
    assert out.splitlines()[-1] == "0 sandbox twin(s) released, 1 kept", out
    assert ("holds data" if kept_by == "deposit" else "has API keys") in out
    assert _ready(twin) and _schemas_named(twin.schema_name) == {twin.schema_name}
    if kept_by == "deposit":
        with tenant_context(twin):
            assert balance_get(currency="USD").available == Decimal("5.00")
            assert ledger_invariant_violations() == []


def test_a_twin_written_while_it_is_checked_is_kept(committed_tenant, monkeypatch):
    """A write in flight holds its table: the release waits at most LOCK_TIMEOUT, keeps the twin and drops nothing."""
    from tenants import sandbox_release

    monkeypatch.setattr(sandbox_release, "LOCK_TIMEOUT", "300ms")
    twin = tenant_sandbox_ensure(tenant=committed_tenant)
    writing, release_done = threading.Event(), threading.Event()

    def write_and_wait():
        try:
            with tenant_context(Tenant.objects.get(pk=twin.pk)), transaction.atomic():
                funds_deposit(currency="USD", amount="7.00")
                writing.set()
                release_done.wait(30)
        finally:
            connection.close()

    writer = threading.Thread(target=write_and_wait)
    writer.start()
    try:
        assert writing.wait(30)
        out = _release(committed_tenant.slug, "--verbosity", "2")
    finally:
        release_done.set()
        writer.join(30)
    assert "in use" in out and out.splitlines()[-1] == "0 sandbox twin(s) released, 1 kept", out
    connection.set_schema_to_public()
    with tenant_context(twin):
        assert balance_get(currency="USD").available == Decimal("7.00")
        assert ledger_invariant_violations() == []


def test_first_uses_from_separate_processes_provision_once(committed_tenant):
    """Three `funds_deposit --sandbox` commands started together (three processes and connections): each
    succeeds, one provisions."""
    import subprocess
    import sys

    from testsupport.workers import ROOT, subprocess_env

    command = [sys.executable, "manage.py", "funds_deposit", committed_tenant.slug, "10.00", "USD", "--sandbox"]
    runs = [
        subprocess.Popen(command, env=subprocess_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    logs = b"".join(err for _, err in outputs).decode()
    assert logs.count('"event": "tenant.sandbox_provisioned"') == 1, logs
    assert sorted(out.decode().strip() for out, _ in outputs) == ["10.00", "20.00", "30.00"]
    twin = committed_tenant.sandbox
    assert _ready(twin) and _schemas_named(twin.schema_name) == {twin.schema_name}
    with tenant_context(twin):
        assert balance_get(currency="USD").available == Decimal("30.00")
        assert ledger_invariant_violations() == []
