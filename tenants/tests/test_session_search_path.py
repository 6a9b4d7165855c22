"""The session's search_path is sent once per connection and tenant (tenants.session_backend), never trusted after
anything that may have undone it, and every request still reads only its own tenant's data."""

from __future__ import annotations

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from funds.services import funds_deposit


def _sets(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SET search_path")]


def _session_path() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return cursor.fetchone()[0]


def test_a_tenants_next_request_sends_no_search_path_and_another_tenant_gets_its_own(tenant_a, tenant_b, api_a, api_b):
    for tenant, amount in ((tenant_a, "111.00"), (tenant_b, "222.00")):
        with tenant_context(tenant):
            funds_deposit(currency="USD", amount=amount)
    for _ in range(2):  # the first request writes last_used_at; the second caches the key
        assert api_a.get("/api/v1/balances").status_code == 200
    with CaptureQueriesContext(connection) as same_tenant:
        balances_a = api_a.get("/api/v1/balances").json()["results"]
    assert _sets(same_tenant) == []
    assert [(b["currency"], b["available"]) for b in balances_a] == [("USD", "111.00")]
    with CaptureQueriesContext(connection) as other_tenant:
        balances_b = api_b.get("/api/v1/balances").json()["results"]
    # (its key is not cached yet: its lookup runs in public first)
    assert _sets(other_tenant)[-1] == f'SET search_path = "{tenant_b.schema_name}","public"'
    assert [(b["currency"], b["available"]) for b in balances_b] == [("USD", "222.00")]
    with CaptureQueriesContext(connection) as back:
        balances_a = api_a.get("/api/v1/balances").json()["results"]
    assert _sets(back) == [f'SET search_path = "{tenant_a.schema_name}","public"']
    assert [(b["currency"], b["available"]) for b in balances_a] == [("USD", "111.00")]


def test_a_rolled_back_search_path_is_sent_again(tenant_a, tenant_b):
    connection.set_tenant(tenant_a)
    assert _session_path() == f"{tenant_a.schema_name}, public"
    try:
        with transaction.atomic():  # a savepoint inside the test's transaction
            connection.set_tenant(tenant_b)
            assert _session_path() == f"{tenant_b.schema_name}, public"
            raise RuntimeError("roll it back")
    except RuntimeError:
        pass
    # The database is back on tenant A's path; a switch to B must not trust the SET the rollback undid.
    connection.set_tenant(tenant_b)
    assert _session_path() == f"{tenant_b.schema_name}, public"
    connection.set_schema_to_public()


def test_code_that_set_its_own_local_path_makes_the_next_use_send_it_again(tenant_a):
    connection.set_tenant(tenant_a)
    assert _session_path() == f"{tenant_a.schema_name}, public"
    with connection.cursor() as cursor:  # as tenants.provisioning and tenants.migrating do
        cursor.execute("SET LOCAL search_path = public")  # holds until the test's transaction ends
    connection.search_path_set_schemas = None
    connection.set_schema_to_public()
    connection.set_tenant(tenant_a)
    assert _session_path() == f"{tenant_a.schema_name}, public"
    connection.set_schema_to_public()
