"""Developers page: API keys shown once, revoke/rotate, roles, sandbox keys, webhook endpoints, tenant isolation."""

import re

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tenants.models import ApiKey
from testsupport.portal import make_staff, portal_client, sign_in
from webhooks.models import WebhookDelivery, WebhookEndpoint

RAW_KEY = re.compile(r"rp_(?:live|test)_[a-z0-9]{12}_[A-Za-z0-9_-]+")
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def create_key(client, **fields):
    """POST the form and follow the redirect to the page that shows the new key (or the form, on an error)."""
    data = {"name": "CRM sync", "scopes": ["read", "write"], "allowed_cidrs": "", "expires_in_days": ""} | fields
    return client.post("/developers/", data, follow=True)


def raw_key_in(response) -> str:
    found = RAW_KEY.findall(response.content.decode())
    assert len(found) == 1, found
    return found[0]


def api_status(raw_key: str) -> int:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}").get("/api/v1/balances").status_code


def audit_events(tenant):
    with tenant_context(tenant):
        return list(AuditEvent.objects.values("action", "object_id", "data"))


def test_create_shows_the_key_once_and_the_list_never(signed_in, tenant_a):
    client, _ = signed_in("admin")
    response = create_key(client, allowed_cidrs="10.0.0.0/8\n 192.168.1.7 ", expires_in_days="30")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw = raw_key_in(response)
    assert raw.startswith("rp_live_")
    key = ApiKey.objects.get(tenant=tenant_a, name="CRM sync")
    assert key.allowed_cidrs == ["10.0.0.0/8", "192.168.1.7/32"] and key.expires_at is not None
    page = client.get("/developers/").content.decode()
    assert f"rp_live_{key.key_id}…" in page and raw not in page and not RAW_KEY.search(page)
    events = [e for e in audit_events(tenant_a) if e["action"].startswith("api_key.")]
    assert [e["action"] for e in events] == ["api_key.create"] and events[0]["object_id"] == key.key_id
    assert raw not in str(events)


def test_reloading_the_new_key_page_says_already_shown_and_creates_nothing(signed_in, tenant_a, staff):
    client, _ = signed_in("admin")
    response = create_key(client)
    [(shown_url, status)] = response.redirect_chain  # POST -> redirect -> GET
    assert status == 302 and shown_url.startswith("/developers/shown/")
    raw = raw_key_in(response)
    key = ApiKey.objects.get(tenant=tenant_a)
    for _ in range(2):  # a reload, then the back button
        again = client.get(shown_url)
        page = again.content.decode()
        assert again.status_code == 410 and again["Cache-Control"] == "no-store"
        assert "Already shown" in page and f"rp_live_{key.key_id}…" in page
        assert raw not in page and not RAW_KEY.search(page)
    assert ApiKey.objects.filter(tenant=tenant_a).count() == 1
    # another admin of the same tenant who got hold of the link sees nothing either
    other = portal_client(tenant_a)
    sign_in(other, staff("admin").email)
    assert "Already shown" in other.get(shown_url).content.decode()


def test_a_stashed_key_is_shown_only_to_the_user_who_created_it(signed_in, tenant_a, staff):
    client, _ = signed_in("admin")
    response = client.post("/developers/", {"name": "CRM sync", "scopes": ["read", "write"]})
    assert response.status_code == 302
    other = portal_client(tenant_a)
    sign_in(other, staff("admin").email)
    page = other.get(response["Location"]).content.decode()
    assert "Already shown" in page and not RAW_KEY.search(page)
    assert RAW_KEY.search(client.get(response["Location"]).content.decode())  # its creator still gets it once


def test_service_errors_show_next_to_their_field(signed_in, tenant_a):
    client, _ = signed_in("admin")
    page = create_key(client, allowed_cidrs="not-a-network").content.decode()
    assert 'id="id_allowed_cidrs_error"' in page and "is not a valid CIDR" in page
    page = create_key(client, scopes=[]).content.decode()
    assert re.search(r'class="field-errors"[^>]*><li>Use read, write or read,write.</li>', page)
    assert not ApiKey.objects.filter(tenant=tenant_a).exists()


def test_revoke_makes_the_key_fail_on_the_api(signed_in, tenant_a, funded_a):
    client, _ = signed_in("admin")
    raw = raw_key_in(create_key(client))
    assert api_status(raw) == 200
    key = ApiKey.objects.get(tenant=tenant_a)
    response = client.post(f"/developers/keys/{key.key_id}/revoke")
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_status(raw) == 401
    assert "Revoked" in client.get("/developers/").content.decode()
    assert "api_key.revoke" in [e["action"] for e in audit_events(tenant_a)]


def test_rotate_issues_a_new_key_with_the_same_settings_and_revokes_the_old(signed_in, tenant_a, funded_a):
    client, _ = signed_in("admin")
    old_raw = raw_key_in(create_key(client, scopes=["read"], allowed_cidrs="127.0.0.0/8"))
    old = ApiKey.objects.get(tenant=tenant_a)
    response = client.post(f"/developers/keys/{old.key_id}/rotate", follow=True)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    new_raw = raw_key_in(response)
    assert new_raw != old_raw
    old.refresh_from_db()
    new = ApiKey.objects.get(tenant=tenant_a, revoked_at__isnull=True)
    assert old.revoked_at is not None
    assert (new.name, new.scopes, new.allowed_cidrs) == (old.name, ["read"], ["127.0.0.0/8"])
    assert api_status(old_raw) == 401 and api_status(new_raw) == 200
    events = audit_events(tenant_a)
    assert "api_key.rotate" in [e["action"] for e in events] and new_raw not in str(events)


@pytest.mark.parametrize("role", ["viewer", "manager", "finance"])
def test_other_roles_are_refused(signed_in, tenant_a, role, make_api_client):
    key = make_api_client(tenant_a).key
    client, _ = signed_in(role)
    assert client.get("/developers/").status_code == 403
    assert create_key(client).status_code == 403
    assert client.post(f"/developers/keys/{key.key_id}/revoke").status_code == 403
    assert client.post("/developers/webhooks/", {"url": "https://hooks.example.com/x"}).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_sandbox_mode_manages_the_twins_test_keys(signed_in, tenant_a, make_api_client):
    live_key = make_api_client(tenant_a).key
    client, _ = signed_in("admin")
    client.post("/mode/", {"mode": "sandbox", "next": "/developers/"})
    raw = raw_key_in(create_key(client, name="sandbox app"))
    assert raw.startswith("rp_test_")
    assert ApiKey.objects.get(name="sandbox app").tenant == tenant_a.sandbox
    page = client.get("/developers/").content.decode()
    assert "rp_test_" in page and live_key.key_id not in page
    assert client.post(f"/developers/keys/{live_key.key_id}/revoke").status_code == 404  # a live key: not here
    assert "api_key.create" in [e["action"] for e in audit_events(tenant_a.sandbox)]


def test_webhook_endpoint_create_rotate_test_disable_delete(signed_in, tenant_a):
    client, _ = signed_in("admin")
    page = client.post("/developers/webhooks/", {"url": "ftp://nope"}).content.decode()
    assert 'id="id_url_error"' in page
    form = {"url": "https://hooks.example.com/rewards", "events": ["order.completed"]}
    response = client.post("/developers/webhooks/", form, follow=True)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = SECRET.findall(response.content.decode())
    assert len(secret) == 1
    with tenant_context(tenant_a):
        endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["order.completed"]
    listing = client.get("/developers/").content.decode()
    assert "hooks.example.com/rewards" in listing and "whsec_" not in listing
    detail = f"/developers/webhooks/{endpoint.pk}/"
    assert "whsec_" not in client.get(detail).content.decode()

    rotated = client.post(f"{detail}rotate", follow=True)
    assert rotated.status_code == 200 and rotated["Cache-Control"] == "no-store"
    new_secret = SECRET.findall(rotated.content.decode())
    assert len(new_secret) == 1 and new_secret != secret

    assert client.post(f"{detail}test").status_code == 302
    with tenant_context(tenant_a):
        delivery = WebhookDelivery.objects.select_related("event").get(endpoint=endpoint)
    assert delivery.event.type == "webhook.test"
    page = client.get(detail).content.decode()
    assert "webhook.test" in page and delivery.pk in page
    assert client.post(f"{detail}deliveries/{delivery.pk}/redeliver").status_code == 302

    client.post(f"{detail}disable")
    with tenant_context(tenant_a):
        assert WebhookEndpoint.objects.get().enabled is False
    client.post(f"{detail}enable")
    assert client.post(f"{detail}delete").status_code == 302
    with tenant_context(tenant_a):
        assert not WebhookEndpoint.objects.exists()
    actions = [e["action"] for e in audit_events(tenant_a)]
    for action in (
        "webhook_endpoint.create",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint.test",
        "webhook_delivery.redeliver",
        "webhook_endpoint.disable",
        "webhook_endpoint.enable",
        "webhook_endpoint.delete",
    ):
        assert action in actions
    assert not any(s in str(audit_events(tenant_a)) for s in secret + new_secret)


def test_tenant_b_admin_cannot_see_or_touch_tenant_a_keys_or_endpoints(signed_in, tenant_a, tenant_b):
    client_a, _ = signed_in("admin")
    create_key(client_a, name="alpha-only")
    key = ApiKey.objects.get(tenant=tenant_a)
    client_a.post("/developers/webhooks/", {"url": "https://hooks.example.com/alpha"})
    with tenant_context(tenant_a):
        endpoint = WebhookEndpoint.objects.get()

    admin_b = make_staff(tenant_b, "admin@beta.test", "admin")
    client_b = portal_client(tenant_b)
    assert sign_in(client_b, admin_b.email).status_code == 302
    page = client_b.get("/developers/").content.decode()
    assert key.key_id not in page and "alpha-only" not in page and "hooks.example.com/alpha" not in page
    assert client_b.post(f"/developers/keys/{key.key_id}/revoke").status_code == 404
    assert client_b.post(f"/developers/keys/{key.key_id}/rotate").status_code == 404
    assert client_b.get(f"/developers/webhooks/{endpoint.pk}/").status_code == 404
    assert client_b.post(f"/developers/webhooks/{endpoint.pk}/delete").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_webhook_endpoint_edit_changes_url_and_events_audited_and_bad_input_changes_nothing(
    signed_in, tenant_a, tenant_b
):
    client, _ = signed_in("admin")
    client.post("/developers/webhooks/", {"url": "https://hooks.example.com/old", "events": ["order.created"]})
    with tenant_context(tenant_a):
        endpoint = WebhookEndpoint.objects.get()
    detail = f"/developers/webhooks/{endpoint.pk}/"
    form = client.get(detail).content.decode()
    assert 'value="https://hooks.example.com/old"' in form  # the form starts from the current settings

    refused = client.post(detail, {"edit-url": "ftp://nope", "edit-events": ["reward.delivered"]})
    assert refused.status_code == 422
    assert 'id="id_edit-url_error"' in refused.content.decode()
    with tenant_context(tenant_a):
        unchanged = WebhookEndpoint.objects.get()
    assert (unchanged.url, unchanged.events) == ("https://hooks.example.com/old", ["order.created"])

    saved = client.post(
        detail,
        {"edit-url": "https://hooks.example.com/new", "edit-events": ["reward.delivered"], "edit-description": "CRM"},
    )
    assert saved.status_code == 302
    with tenant_context(tenant_a):
        endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.events, endpoint.description) == (
        "https://hooks.example.com/new",
        ["reward.delivered"],
        "CRM",
    )
    (update,) = [e for e in audit_events(tenant_a) if e["action"] == "webhook_endpoint.update"]
    assert update["data"]["before"]["url"] == "https://hooks.example.com/old"
    assert update["data"]["after"]["events"] == ["reward.delivered"]

    admin_b = make_staff(tenant_b, "admin2@beta.test", "admin")
    client_b = portal_client(tenant_b)
    sign_in(client_b, admin_b.email)
    assert client_b.post(detail, {"edit-url": "https://evil.example.com/"}).status_code == 404
    viewer, _ = signed_in("viewer")
    assert viewer.post(detail, {"edit-url": "https://evil.example.com/"}).status_code == 403
    with tenant_context(tenant_a):
        assert WebhookEndpoint.objects.get().url == "https://hooks.example.com/new"
