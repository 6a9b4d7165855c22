"""API keys and tokens: what an integrator sees for good, bad, revoked, expired and fenced credentials."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from freezegun import freeze_time

from tenants.models import ApiKey
from tenants.services import api_key_revoke


def _problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["detail"]
    assert isinstance(body["retryable"], bool)
    return body


def test_missing_credential_is_401_problem(db):
    response = Client().get("/api/v1/balances")
    _problem(response, 401, "unauthenticated")


def test_unknown_and_malformed_keys_are_401(db):
    for header in ("Bearer rp_live_abcdefghijkl_" + "x" * 32, "Bearer nonsense", "Basic dXNlcjpwdw=="):
        response = Client(HTTP_AUTHORIZATION=header).get("/api/v1/balances")
        _problem(response, 401, "invalid_credentials")


def test_key_with_right_id_but_wrong_secret_is_refused(api_a):
    forged = api_a.raw_key[:-4] + ("AAAA" if not api_a.raw_key.endswith("AAAA") else "BBBB")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {forged}").get("/api/v1/balances")
    _problem(response, 401, "invalid_credentials")


def test_only_a_hash_of_the_key_is_stored(api_a):
    stored = ApiKey.objects.get(key_id=api_a.key.key_id)
    assert api_a.raw_key not in str(stored.__dict__)
    assert stored.key_hash != api_a.raw_key and len(stored.key_hash) == 64
    assert api_a.raw_key.startswith(f"rp_live_{stored.key_id}_")


def test_revoked_key_is_401_and_other_keys_keep_working(tenant_a, make_api_client):
    old = make_api_client(tenant_a)
    new = make_api_client(tenant_a)  # rotation: two active keys
    assert old.get("/api/v1/balances").status_code == 200
    api_key_revoke(key=old.key)
    _problem(old.get("/api/v1/balances"), 401, "key_revoked")
    assert new.get("/api/v1/balances").status_code == 200


def test_expired_key_is_401(tenant_a, make_api_client):
    client = make_api_client(tenant_a, expires_at=timezone.now() + timedelta(hours=1))
    assert client.get("/api/v1/balances").status_code == 200
    with freeze_time(timezone.now() + timedelta(hours=2)):
        _problem(client.get("/api/v1/balances"), 401, "key_expired")


def test_cidr_allowlist(tenant_a, make_api_client):
    fenced = make_api_client(tenant_a, allowed_cidrs=["10.1.0.0/16"])
    _problem(fenced.get("/api/v1/balances", REMOTE_ADDR="192.0.2.7"), 403, "ip_not_allowed")
    assert fenced.get("/api/v1/balances", REMOTE_ADDR="10.1.44.2").status_code == 200
    # An IPv4 client of a server listening on [::] arrives IPv4-mapped: matched as its IPv4 address.
    assert fenced.get("/api/v1/balances", REMOTE_ADDR="::ffff:10.1.44.2").status_code == 200
    _problem(fenced.get("/api/v1/balances", REMOTE_ADDR="::ffff:192.0.2.7"), 403, "ip_not_allowed")


def test_last_used_is_recorded(api_a):
    assert ApiKey.objects.get(pk=api_a.key.pk).last_used_at is None
    api_a.get("/api/v1/balances")
    assert ApiKey.objects.get(pk=api_a.key.pk).last_used_at is not None


def test_read_scope_cannot_write(tenant_a, make_api_client):
    reader = make_api_client(tenant_a, scopes=["read"])
    assert reader.get("/api/v1/balances").status_code == 200
    body = _problem(reader.post("/api/v1/balances", {}), 403, "forbidden")
    assert "write" in body["detail"]


def test_suspended_tenant_is_refused(tenant_a, api_a):
    from tenants.services import tenant_set_status

    tenant_set_status(tenant=tenant_a, status="suspended")
    _problem(api_a.get("/api/v1/balances"), 403, "tenant_suspended")


def test_token_exchange_and_use(api_a):
    client = Client()
    response = client.post(
        "/api/v1/tokens",
        {"grant_type": "client_credentials", "client_id": api_a.key.key_id, "client_secret": api_a.raw_key},
    )  # form-encoded, as OAuth2 clients send it
    assert response.status_code == 200, response.content
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert Client(HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").get("/api/v1/balances").status_code == 200
    # JSON works too
    response = client.post(
        "/api/v1/tokens",
        {"grant_type": "client_credentials", "client_id": api_a.key.key_id, "client_secret": api_a.raw_key},
        content_type="application/json",
    )
    assert response.status_code == 200


def test_token_dies_with_its_key_and_with_time(api_a):
    token = (
        Client()
        .post(
            "/api/v1/tokens",
            {"grant_type": "client_credentials", "client_id": api_a.key.key_id, "client_secret": api_a.raw_key},
        )
        .json()["access_token"]
    )
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    with freeze_time(timezone.now() + timedelta(hours=2)):
        _problem(bearer.get("/api/v1/balances"), 401, "token_expired")
    api_key_revoke(key=api_a.key)
    _problem(bearer.get("/api/v1/balances"), 401, "key_revoked")
    _problem(Client(HTTP_AUTHORIZATION=f"Bearer {token}x").get("/api/v1/balances"), 401, "invalid_credentials")


def test_token_with_wrong_client_id_or_grant(api_a):
    bad_id = Client().post(
        "/api/v1/tokens",
        {"grant_type": "client_credentials", "client_id": "zzzzzzzzzzzz", "client_secret": api_a.raw_key},
    )
    _problem(bad_id, 401, "invalid_credentials")
    bad_grant = Client().post(
        "/api/v1/tokens", {"grant_type": "password", "client_id": api_a.key.key_id, "client_secret": api_a.raw_key}
    )
    body = _problem(bad_grant, 400, "validation_error")  # RFC 6749 §5.2: 400 unsupported_grant_type
    assert body["error"] == "unsupported_grant_type"
    assert "grant_type" in body["errors"]


@override_settings(AUTH_FAILURE_LIMIT=5)
def test_credential_brute_force_is_throttled(api_a):
    attacker = Client(HTTP_AUTHORIZATION="Bearer rp_live_abcdefghijkl_" + "y" * 32, REMOTE_ADDR="198.51.100.9")
    for _ in range(5):
        _problem(attacker.get("/api/v1/balances"), 401, "invalid_credentials")
    body = _problem(attacker.get("/api/v1/balances"), 429, "too_many_failed_attempts")
    assert body["retryable"] is True
    assert int(attacker.get("/api/v1/balances")["Retry-After"]) >= 1
    # a correct key from that address is not refused (every client may share one address behind a proxy)
    assert api_a.get("/api/v1/balances", REMOTE_ADDR="198.51.100.9").status_code == 200
    assert api_a.get("/api/v1/balances", REMOTE_ADDR="198.51.100.10").status_code == 200
    # the token endpoint counts failures against the same budget
    tokens = Client(REMOTE_ADDR="198.51.100.9").post(
        "/api/v1/tokens", {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
    )
    assert tokens.status_code == 429


@override_settings(API_RATE_LIMIT_PER_MINUTE=3)
def test_per_key_rate_limit_has_retry_after(tenant_a, make_api_client):
    busy = make_api_client(tenant_a)
    calm = make_api_client(tenant_a)
    for _ in range(3):
        assert busy.get("/api/v1/balances").status_code == 200
    response = busy.get("/api/v1/balances")
    body = _problem(response, 429, "rate_limited")
    assert body["retryable"] is True
    assert 1 <= int(response["Retry-After"]) <= 60
    assert calm.get("/api/v1/balances").status_code == 200  # the limit is per key


@pytest.mark.parametrize("scopes", [["admin"], []])
def test_bad_scopes_are_refused(tenant_a, scopes):
    from core.errors import ApplicationError
    from tenants.services import api_key_create

    with pytest.raises(ApplicationError) as excinfo:
        api_key_create(tenant=tenant_a, scopes=scopes)
    assert excinfo.value.code == "validation_error"
    assert not ApiKey.objects.filter(tenant=tenant_a).exists()
