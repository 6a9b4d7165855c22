"""Orders and rewards pages: filters, keyset pages, timeline, resend/cancel/reveal by role, CSV export, isolation."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from fulfillment.models import CodeReveal
from fulfillment.services import reward_fulfil
from orders.models import Reward
from portal.views import orders as orders_views
from testsupport.exports import csv_export_rows
from testsupport.orders import digital_order
from testsupport.portal import make_staff, portal_client, sign_in


def place(api, product, *, name="Ada Lovelace", email="ada@example.com", **order_fields):
    body = digital_order(product, "25.00", **order_fields)
    body["rewards"][0]["recipient"] = {"name": name, "email": email}
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    return response.json()


def delivered(api, tenant, product, **kwargs):
    order = place(api, product, **kwargs)
    reward_id = order["rewards"][0]["id"]
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward_id)
    return order, reward_id


def audit_actions(tenant, **filters):
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(**filters).values_list("action", flat=True))


@pytest.fixture
def orders_a(api_a, funded_a, shop):
    return [
        place(api_a, shop.coffee_usd, name="Ada Lovelace", email="ada@example.com", external_id="crm-1"),
        place(api_a, shop.coffee_usd, name="Grace Hopper", email="grace@example.com", po_number="PO-77"),
        place(api_a, shop.coffee_usd, name="Alan Turing", email="alan@example.com"),
    ]


def test_list_filters_by_recipient_external_id_po_status_and_date(signed_in, orders_a):
    client, _ = signed_in("viewer")
    page = client.get("/orders/").content.decode()
    assert all(o["id"][:8] in page for o in orders_a)
    page = client.get("/orders/", {"recipient": "grace"}).content.decode()
    assert orders_a[1]["id"][:8] in page and orders_a[0]["id"][:8] not in page
    page = client.get("/orders/", {"recipient": "ALAN@example.com"}).content.decode()
    assert orders_a[2]["id"][:8] in page and orders_a[1]["id"][:8] not in page
    page = client.get("/orders/", {"external_id": "crm-1"}).content.decode()
    assert orders_a[0]["id"][:8] in page and orders_a[2]["id"][:8] not in page
    page = client.get("/orders/", {"po_number": "PO-77"}).content.decode()
    assert orders_a[1]["id"][:8] in page and orders_a[0]["id"][:8] not in page
    page = client.get("/orders/", {"status": "completed"}).content.decode()
    assert "No orders match." in page
    page = client.get("/orders/", {"since": "2001-01-01", "until": "2001-01-31"}).content.decode()
    assert "No orders match." in page
    bad = client.get("/orders/", {"since": "2030-01-02", "until": "2030-01-01"}).content.decode()
    assert 'class="field has-error"' in bad and "before the start date" in bad


def test_keyset_pages_walk_every_order_once(signed_in, orders_a, monkeypatch):
    monkeypatch.setattr(orders_views, "PAGE_SIZE", 2)
    client, _ = signed_in("viewer")
    first = client.get("/orders/")
    cursor = first.context["next_cursor"]
    assert cursor and len(first.context["orders"]) == 2
    second = client.get("/orders/", {"after": cursor})
    seen = [str(r["order"].id) for r in first.context["orders"] + second.context["orders"]]
    assert seen == [o["id"] for o in reversed(orders_a)] and second.context["next_cursor"] is None
    assert client.get("/orders/", {"after": "garbage!"}).status_code == 200


def test_list_query_count_does_not_grow_with_the_page(signed_in, api_a, funded_a, shop, django_assert_max_num_queries):
    client, _ = signed_in("viewer")
    for i in range(12):
        place(api_a, shop.coffee_usd, name=f"Person {i}", email=f"p{i}@example.com")
    with django_assert_max_num_queries(12):
        response = client.get("/orders/")
    assert response.status_code == 200 and len(response.context["orders"]) == 12


def test_order_detail_lists_its_rewards_and_reward_detail_shows_the_timeline(signed_in, api_a, funded_a, shop):
    client, admin = signed_in("admin")
    order, reward_id = delivered(api_a, funded_a, shop.coffee_usd)
    page = client.get(f"/orders/{order['id']}/").content.decode()
    assert reward_id in page and "Ada Lovelace" in page and "25.00 USD" in page
    reveal = client.post(f"/rewards/{reward_id}/reveal")
    assert reveal.status_code == 200
    page = client.get(f"/rewards/{reward_id}/").content.decode()
    for expected in ("Pending", "Delivered", "Webhook reward.delivered", "Code revealed", f"staff:{admin.email}"):
        assert expected in page, expected
    with tenant_context(funded_a):
        code_last4 = Reward.objects.get(pk=reward_id).code_last4
    assert f"•••• {code_last4}" in page


def test_the_timeline_finds_a_rewards_events_by_index_not_by_scanning_every_event(signed_in, api_a, funded_a, shop):
    """The reward page looks up webhook events by data->'id'; a tenant with millions of events must not scan them."""
    client, _ = signed_in("admin")
    _, reward_id = delivered(api_a, funded_a, shop.coffee_usd)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/rewards/{reward_id}/").status_code == 200
    [lookup] = [q["sql"] for q in queries.captured_queries if '"webhooks_event"."data" ->' in q["sql"]]
    with tenant_context(funded_a), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a few rows: without this the planner scans anyway
        # ... and with a few rows, walking the created_at index in ORDER BY order can look as cheap as the lookup
        # (it did after other tests had churned the table): only an index on data->'id' gives a bitmap scan.
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + lookup)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "webhook_event_subject" in plan, plan


def test_reveal_is_admin_only_shown_once_not_cached_and_audited(signed_in, staff, api_a, funded_a, shop, tenant_a):
    _, reward_id = delivered(api_a, funded_a, shop.coffee_usd)
    manager = portal_client(tenant_a)
    sign_in(manager, staff("manager").email)
    assert manager.post(f"/rewards/{reward_id}/reveal").status_code == 403
    assert "Reveal code" not in manager.get(f"/rewards/{reward_id}/").content.decode()
    client, admin = signed_in("admin")
    assert client.get(f"/rewards/{reward_id}/reveal").status_code == 405
    response = client.post(f"/rewards/{reward_id}/reveal")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    with tenant_context(tenant_a):
        from core import crypto

        code = crypto.decrypt(Reward.objects.get(pk=reward_id).code_encrypted)
        assert CodeReveal.objects.filter(reward_id=reward_id, actor=f"staff:{admin.email}").count() == 1
    assert code in response.content.decode()
    assert code not in client.get(f"/rewards/{reward_id}/").content.decode()
    assert audit_actions(tenant_a, action="reward.reveal", object_id=reward_id) == ["reward.reveal"]


def test_reveal_error_is_readable(signed_in, api_a, funded_a, shop):
    client, _ = signed_in("admin")
    reward_id = place(api_a, shop.coffee_usd)["rewards"][0]["id"]
    page = client.post(f"/rewards/{reward_id}/reveal", follow=True).content.decode()
    assert "has no code yet" in page


def test_resend_to_a_corrected_email(
    signed_in, staff, api_a, funded_a, shop, tenant_a, django_capture_on_commit_callbacks
):
    _, reward_id = delivered(api_a, funded_a, shop.coffee_usd)
    viewer = portal_client(tenant_a)
    sign_in(viewer, staff("viewer").email)
    assert viewer.post(f"/rewards/{reward_id}/resend", {"email": "x@example.com"}).status_code == 403
    client, manager = signed_in("manager")
    bad = client.post(f"/rewards/{reward_id}/resend", {"email": "not-an-email"})
    assert bad.status_code == 200 and 'class="field has-error"' in bad.content.decode()
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(f"/rewards/{reward_id}/resend", {"email": "Ada.New@example.com"}, follow=True)
    assert len(callbacks) == 1  # the delivery task, queued once the change commits
    assert "being sent again to ada.new@example.com" in response.content.decode()
    with tenant_context(tenant_a):
        assert Reward.objects.get(pk=reward_id).recipient_email == "ada.new@example.com"
        event = AuditEvent.objects.get(action="reward.resend")
    assert event.actor == f"staff:{manager.email}" and event.data == {"email": "ada.new@example.com"}


def test_cancel_reward_and_order_with_readable_errors(signed_in, api_a, funded_a, shop, tenant_a):
    client, _ = signed_in("manager")
    pending = place(api_a, shop.coffee_usd)
    reward_id = pending["rewards"][0]["id"]
    page = client.post(f"/rewards/{reward_id}/cancel", follow=True).content.decode()
    assert "was canceled" in page
    with tenant_context(tenant_a):
        assert Reward.objects.get(pk=reward_id).status == "canceled"
    page = client.post(f"/rewards/{reward_id}/cancel", follow=True).content.decode()
    assert "cannot be canceled" in page
    done, _ = delivered(api_a, funded_a, shop.coffee_usd)
    page = client.post(f"/orders/{done['id']}/cancel", follow=True).content.decode()
    assert "Nothing in this order can be canceled" in page  # issued codes are voided reward by reward
    other = place(api_a, shop.coffee_usd)
    client.post(f"/orders/{other['id']}/cancel")
    assert sorted(audit_actions(tenant_a, action__in=["reward.cancel", "order.cancel"])) == [
        "order.cancel",
        "reward.cancel",
    ]
    assert client.get(f"/rewards/{reward_id}/cancel").status_code == 405


def test_export_streams_the_filtered_list_with_formulas_neutralised(signed_in, api_a, funded_a, shop, tenant_a):
    client, _ = signed_in("viewer")
    place(api_a, shop.coffee_usd, name='=HYPERLINK("http://x")', email="evil@example.com", po_number="PO-1")
    place(api_a, shop.coffee_usd, name="Ada;=1+1", email="semi@example.com", po_number="PO-1")
    place(api_a, shop.coffee_usd, name="Someone Else", email="else@example.com")
    response = client.get("/orders/export.csv", {"po_number": "PO-1"})
    assert response.streaming
    header, *lines = csv_export_rows(response)
    rows = sorted((dict(zip(header, line, strict=True)) for line in lines), key=lambda r: r["recipient_email"])
    assert len(rows) == 2
    assert rows[0]["recipient_name"] == '\'=HYPERLINK("http://x")'
    assert rows[1]["recipient_name"] == "Ada;'=1+1"  # `=1+1` would be a cell of its own in a `;` locale
    assert rows[0]["amount"] == "25.00" and rows[0]["currency"] == "USD" and rows[0]["po_number"] == "PO-1"
    assert audit_actions(tenant_a, action="orders.export") == ["orders.export"]


def test_tenant_b_staff_get_404_for_tenant_a_orders(api_a, funded_a, shop, tenant_b):
    order = place(api_a, shop.coffee_usd)
    reward_id = order["rewards"][0]["id"]
    other = make_staff(tenant_b, "admin@beta.test", "admin")
    client = portal_client(tenant_b)
    assert sign_in(client, other.email).status_code == 302
    assert client.get(f"/orders/{order['id']}/").status_code == 404
    assert client.get(f"/rewards/{reward_id}/").status_code == 404
    assert client.post(f"/rewards/{reward_id}/reveal").status_code == 404
    assert client.post(f"/rewards/{reward_id}/cancel").status_code == 404
    assert order["id"][:8] not in client.get("/orders/").content.decode()


def test_sandbox_mode_lists_the_sandbox_twin(signed_in, api_a, funded_a, shop):
    client, _ = signed_in("admin")
    order = place(api_a, shop.coffee_usd)
    assert order["id"][:8] in client.get("/orders/").content.decode()
    client.post("/mode/", {"mode": "sandbox", "next": "/orders/"})
    page = client.get("/orders/").content.decode()
    assert "No orders match." in page
    assert client.get(f"/orders/{order['id']}/").status_code == 404


def test_reward_page_hides_claim_links_from_viewers_and_offers_only_allowed_actions(
    signed_in, api_a, funded_a, shop, tenant_a
):
    body = digital_order(shop.coffee_usd, "25.00", type="link")
    body["rewards"][0]["delivery_method"] = "link"
    created = api_a.post("/api/v1/orders", body).json()["rewards"][0]
    claim_token = created["claim_url"].rsplit("/r/", 1)[1]
    viewer, _ = signed_in("viewer")
    page = viewer.get(f"/rewards/{created['id']}/").content.decode()
    assert claim_token not in page and "shown to staff who can send" in page
    manager, _ = signed_in("manager")
    page = manager.get(f"/rewards/{created['id']}/").content.decode()
    assert claim_token in page
    # Pending: cancel (a release), no resend (nothing sent yet), no reveal (no code yet).
    assert "Cancel reward" in page and ">Resend<" not in page and "Reveal code" not in page
    with tenant_context(tenant_a):
        reward_fulfil(reward_id=created["id"])
    admin, _ = signed_in("admin")
    page = admin.get(f"/rewards/{created['id']}/").content.decode()
    # Issued: cancelling voids the code first; a link reward is never resent by email.
    assert "Void code and cancel" in page and "Reveal code" in page and ">Resend<" not in page
    admin.post(f"/rewards/{created['id']}/cancel")
    page = admin.get(f"/rewards/{created['id']}/").content.decode()
    assert "voided at the supplier" in page and page.count("<dt>Code</dt>") == 1 and claim_token not in page
    assert "Void code and cancel" not in page and "Cancel reward" not in page and "Reveal code" not in page
