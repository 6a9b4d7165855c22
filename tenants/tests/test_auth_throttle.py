"""The failed-credential throttle slows guessing and cannot be turned on a good client (issue 12, finding 6).

Behind a reverse proxy with TRUSTED_PROXY_COUNT=0 every client has the proxy's address, and key ids are not
secret: a throttle that refused valid credentials let anyone lock everyone out.
"""

from __future__ import annotations

from django.test import Client, override_settings

SHARED = "198.51.100.40"  # e.g. the reverse proxy's address, which every client shares


def _guess(key_id: str = "abcdefghijkl", n: int = 0) -> str:
    return f"Bearer rp_live_{key_id}_{'g' * 31}{n:02d}"


@override_settings(AUTH_FAILURE_LIMIT=5)
def test_many_bad_keys_from_one_address_do_not_lock_out_a_valid_key(api_a):
    attacker = Client(REMOTE_ADDR=SHARED)
    codes = [attacker.get("/api/v1/balances", HTTP_AUTHORIZATION=_guess(n=i)).status_code for i in range(8)]
    assert codes == [401] * 5 + [429] * 3, codes
    throttled = attacker.get("/api/v1/balances", HTTP_AUTHORIZATION=_guess(n=99))
    assert throttled["Content-Type"] == "application/problem+json"
    assert throttled.json()["code"] == "too_many_failed_attempts" and int(throttled["Retry-After"]) >= 1
    assert attacker.get("/api/v1/balances").status_code == 429  # no credential at all, from that address

    # the good client behind the same address: its key works, and so does the token exchange
    assert api_a.get("/api/v1/balances", REMOTE_ADDR=SHARED).status_code == 200
    token = Client(REMOTE_ADDR=SHARED).post(
        "/api/v1/tokens",
        {"grant_type": "client_credentials", "client_id": api_a.key.key_id, "client_secret": api_a.raw_key},
    )
    assert token.status_code == 200, token.content
    bearer = f"Bearer {token.json()['access_token']}"
    assert Client(REMOTE_ADDR=SHARED, HTTP_AUTHORIZATION=bearer).get("/api/v1/balances").status_code == 200


@override_settings(AUTH_FAILURE_LIMIT=5)
def test_bad_secrets_for_one_key_id_are_throttled_per_key_id(api_a, tenant_a, make_api_client):
    key_id = api_a.key.key_id
    wrong = [f"Bearer rp_live_{key_id}_{'w' * 30}{i:02d}" for i in range(7)]
    # one guess from each of many addresses: the address budget never fills, the key id's does
    codes = [
        Client(REMOTE_ADDR=f"203.0.113.{i + 1}").get("/api/v1/balances", HTTP_AUTHORIZATION=header).status_code
        for i, header in enumerate(wrong)
    ]
    assert codes == [401] * 5 + [429] * 2, codes
    # the key's owner, from any address, is not refused
    assert api_a.get("/api/v1/balances", REMOTE_ADDR="203.0.113.200").status_code == 200
    # guesses at another key id, from a fresh address, are unaffected
    other = make_api_client(tenant_a)
    fresh = Client(REMOTE_ADDR="203.0.113.201").get(
        "/api/v1/balances", HTTP_AUTHORIZATION=f"Bearer rp_live_{other.key.key_id}_{'w' * 32}"
    )
    assert fresh.status_code == 401
    # the token exchange counts against the same key id
    token = Client(REMOTE_ADDR="203.0.113.202").post(
        "/api/v1/tokens",
        {"grant_type": "client_credentials", "client_id": key_id, "client_secret": wrong[0].removeprefix("Bearer ")},
    )
    assert token.status_code == 429 and token.json()["error"] == "invalid_client"


@override_settings(AUTH_FAILURE_LIMIT=3, TRUSTED_PROXY_COUNT=1)
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(api_a):
    proxy = Client(REMOTE_ADDR="10.0.0.1")
    attacker = {"HTTP_X_FORWARDED_FOR": "192.0.2.66"}
    codes = [proxy.get("/api/v1/balances", HTTP_AUTHORIZATION=_guess(n=i), **attacker).status_code for i in range(4)]
    assert codes == [401] * 3 + [429], codes
    neighbour = proxy.get(
        "/api/v1/balances", HTTP_AUTHORIZATION=_guess("mnopqrstuvwx"), HTTP_X_FORWARDED_FOR="192.0.2.67"
    )
    assert neighbour.status_code == 401


@override_settings(AUTH_FAILURE_LIMIT=2)
def test_a_revoked_key_is_not_a_guess(tenant_a, make_api_client):
    from tenants.services import api_key_revoke

    client = make_api_client(tenant_a)
    api_key_revoke(key=client.key)
    codes = [client.get("/api/v1/balances", REMOTE_ADDR=SHARED).json()["code"] for _ in range(4)]
    assert codes == ["key_revoked"] * 4  # its owner keeps seeing why, not a 429
