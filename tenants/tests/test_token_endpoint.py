"""POST /api/v1/tokens as an OAuth 2.0 client sees it (RFC 6749 §4.4, §5.2, §2.3.1), with our problem fields."""

from __future__ import annotations

from base64 import b64encode
from urllib.parse import urlencode

import pytest
from django.test import Client

from tenants.services import api_key_revoke, tenant_set_status

FORM = "application/x-www-form-urlencoded"


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + b64encode(f"{client_id}:{secret}".encode()).decode()


def _post(body, *, content_type: str = FORM, authorization: str | None = None):
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    data = urlencode(body, doseq=True) if content_type == FORM and not isinstance(body, str) else body
    return Client(raise_request_exception=False).post("/api/v1/tokens", data, content_type=content_type, **extra)


def _oauth_error(response, status: int, error: str, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert body["error_description"] == body["detail"]
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def test_client_secret_basic_with_a_form_body(api_a):
    response = _post({"grant_type": "client_credentials"}, authorization=_basic(api_a.key.key_id, api_a.raw_key))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store" and response["Pragma"] == "no-cache"
    token = response.json()
    assert token["token_type"] == "Bearer" and token["scope"] == "read write"
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    assert bearer.get("/api/v1/balances").status_code == 200


def test_client_secret_post_still_works_form_and_json(api_a):
    body = {"grant_type": "client_credentials", "client_id": api_a.key.key_id, "client_secret": api_a.raw_key}
    assert _post(body).status_code == 200
    json_response = Client().post("/api/v1/tokens", body, content_type="application/json")
    assert json_response.status_code == 200 and json_response["Cache-Control"] == "no-store"


def test_wrong_basic_credentials_are_401_invalid_client_with_a_basic_challenge(api_a):
    response = _post({"grant_type": "client_credentials"}, authorization=_basic(api_a.key.key_id, api_a.raw_key + "x"))
    _oauth_error(response, 401, "invalid_client", "invalid_credentials")
    assert response["WWW-Authenticate"].startswith("Basic ")
    for header in ("Basic !!!", "Basic " + b64encode(b"no-colon").decode(), f"Bearer {api_a.raw_key}"):
        refused = _post({"grant_type": "client_credentials"}, authorization=header)
        _oauth_error(refused, 401, "invalid_client")
        assert refused["WWW-Authenticate"].startswith("Basic ")


def test_wrong_body_credentials_and_no_credentials_are_invalid_client(api_a):
    wrong = _post({"grant_type": "client_credentials", "client_id": "zzzzzzzzzzzz", "client_secret": api_a.raw_key})
    _oauth_error(wrong, 401, "invalid_client", "invalid_credentials")
    _oauth_error(_post({"grant_type": "client_credentials"}), 401, "invalid_client")


@pytest.mark.parametrize(
    ("body", "content_type", "error", "field"),
    [
        ({"client_id": "k", "client_secret": "s"}, FORM, "invalid_request", "grant_type"),
        (
            {"grant_type": "password", "client_id": "k", "client_secret": "s"},
            FORM,
            "unsupported_grant_type",
            "grant_type",
        ),
        ({"grant_type": ["client_credentials", "client_credentials"]}, FORM, "invalid_request", "grant_type"),
        ('{"grant_type": ["client_credentials"]}', "application/json", "invalid_request", "grant_type"),
        ('{"grant_type": "client_credentials", "client_id": 7}', "application/json", "invalid_request", "client_id"),
        ("[1, 2]", "application/json", "invalid_request", "non_field_errors"),
        ({"grant_type": "client_credentials", "scope": "admin"}, FORM, "invalid_scope", "scope"),
    ],
)
def test_malformed_token_requests_are_400(body, content_type, error, field):
    response = _post(body, content_type=content_type)
    assert field in _oauth_error(response, 400, error)["errors"]


def test_unreadable_bodies_are_invalid_request():
    body = _oauth_error(_post("{not json", content_type="application/json"), 400, "invalid_request")
    assert body["code"] == "malformed_request"
    _oauth_error(_post("x", content_type="text/plain"), 415, "invalid_request", "unsupported_media_type")


def test_one_client_authentication_method_per_request(api_a):
    response = _post(
        {"grant_type": "client_credentials", "client_secret": api_a.raw_key},
        authorization=_basic(api_a.key.key_id, api_a.raw_key),
    )
    _oauth_error(response, 400, "invalid_request")


def test_scope_narrows_the_token(tenant_a, make_api_client):
    client = make_api_client(tenant_a, scopes=["read", "write"])
    response = _post(
        {"grant_type": "client_credentials", "scope": "read"}, authorization=_basic(client.key.key_id, client.raw_key)
    )
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "read"
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
    assert bearer.get("/api/v1/balances").status_code == 200
    assert bearer.post("/api/v1/webhook-endpoints", {"url": "https://hooks.example.com/x"}).status_code == 403

    reader = make_api_client(tenant_a, scopes=["read"])
    refused = _post(
        {"grant_type": "client_credentials", "scope": "read write"},
        authorization=_basic(reader.key.key_id, reader.raw_key),
    )
    assert "scope" in _oauth_error(refused, 400, "invalid_scope")["errors"]


def test_refused_keys_keep_their_codes_and_are_never_throttled(tenant_a, make_api_client, settings):
    settings.AUTH_FAILURE_LIMIT = 2
    revoked = make_api_client(tenant_a)
    api_key_revoke(key=revoked.key)
    for _ in range(4):  # the right secret of a revoked key is not a guess: never 429
        response = _post(
            {"grant_type": "client_credentials"}, authorization=_basic(revoked.key.key_id, revoked.raw_key)
        )
        _oauth_error(response, 401, "invalid_client", "key_revoked")
    live = make_api_client(tenant_a)
    tenant_set_status(tenant=tenant_a, status="suspended")
    suspended = _post({"grant_type": "client_credentials"}, authorization=_basic(live.key.key_id, live.raw_key))
    _oauth_error(suspended, 400, "unauthorized_client", "tenant_suspended")
