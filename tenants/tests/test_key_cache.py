"""Keys are cached per process (tenants.key_cache), yet every change to a key or its tenant counts at once."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.redis import get_redis
from tenants.key_cache import STAMP_KEY
from tenants.models import ApiKey, TenantStatus
from tenants.services import tenant_set_status


def _code(response) -> str | None:
    return None if response.status_code == 200 else response.json()["code"]


def _cached_client(tenant, make_api_client):
    """A client whose key is in this process's cache (the first request writes last_used_at, dropping the entry
    it made: the second one caches the key)."""
    client = make_api_client(tenant)
    for _ in range(2):
        assert client.get("/api/v1/balances").status_code == 200
    return client


def test_a_cached_key_costs_no_public_schema_statement(tenant_a, make_api_client):
    client = _cached_client(tenant_a, make_api_client)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/balances").status_code == 200
    statements = " ".join(q["sql"] for q in queries)
    assert "tenants_apikey" not in statements and 'SET search_path = "public"' not in statements


def test_a_key_revoked_by_another_process_is_refused_on_the_next_request(tenant_a, make_api_client):
    client = _cached_client(tenant_a, make_api_client)
    # Another process revokes it: the row changes (no signal in this process) and that process sets a new stamp.
    ApiKey.objects.filter(pk=client.key.pk).update(revoked_at=timezone.now())
    get_redis().set(STAMP_KEY, "set-by-another-process")
    assert _code(client.get("/api/v1/balances")) == "key_revoked"


def test_suspending_the_tenant_and_editing_the_key_count_at_once(tenant_a, make_api_client):
    client = _cached_client(tenant_a, make_api_client)
    key = ApiKey.objects.get(pk=client.key.pk)
    key.scopes = ["read"]
    key.save()  # as the operator admin does
    assert _code(client.post("/api/v1/orders", {"type": "digital", "rewards": []})) == "forbidden"
    tenant_set_status(tenant=tenant_a, status=TenantStatus.SUSPENDED)
    assert _code(client.get("/api/v1/balances")) == "tenant_suspended"


def test_without_redis_keys_are_read_from_the_database_each_time(tenant_a, make_api_client, monkeypatch):
    import redis

    client = make_api_client(tenant_a)

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(type(get_redis()), "get", unreachable)
    assert client.get("/api/v1/balances").status_code == 200
    ApiKey.objects.filter(pk=client.key.pk).update(revoked_at=timezone.now())  # no stamp can be set
    assert _code(client.get("/api/v1/balances")) == "key_revoked"
