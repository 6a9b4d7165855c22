"""The approvals queue and the settings page: who may decide, four eyes in the portal, policy form errors."""

from decimal import Decimal

from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from orders.models import Order
from tenants.models import Tenant
from tenants.policies import approval_policy_set
from testsupport.funds import balances
from testsupport.orders import digital_order


def _pending_order(api, tenant, shop) -> str:
    approval_policy_set(tenant=tenant, policy={"thresholds": {"USD": "50.00"}}, actor=None)
    response = api.post("/api/v1/orders", digital_order(shop.coffee_usd, "50.00"))
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_finance_approves_from_the_queue_a_manager_cannot_open_it(
    api_a, funded_a, shop, signed_in, client_a, django_assert_max_num_queries
):
    order_id = _pending_order(api_a, funded_a, shop)
    for _ in range(5):  # more waiting orders cost no more queries
        api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "50.00"))
    client, finance = signed_in("finance")
    with django_assert_max_num_queries(12):
        page = client.get("/approvals/")
    assert page.status_code == 200
    html = page.content.decode()
    # Who asked reads as on the order page, not as the audit log's actor label (review: "api-key:…" showed).
    assert "50.00 USD" in html and f"API key {api_a.key.key_id}" in html and "api-key:" not in html
    response = client.post(f"/approvals/order/{order_id}/approve")
    assert response.status_code == 302
    with tenant_context(funded_a):
        order = Order.objects.get(pk=order_id)
        assert (order.status, order.approval_decided_by) == ("pending", f"staff:{finance.email}")
        assert AuditEvent.objects.filter(action="order.approve", actor=f"staff:{finance.email}").count() == 1
    assert order_id not in client.get("/approvals/").content.decode()
    detail = client.get(f"/orders/{order_id}/").content.decode()
    assert "Approved" in detail and f"by {finance.email}" in detail and "staff:" not in detail
    client.post("/logout/")
    manager_client, _ = signed_in("manager")
    assert manager_client.get("/approvals/").status_code == 403


def test_a_staff_member_cannot_decide_their_own_portal_order(funded_a, shop, signed_in):
    client, admin = signed_in("admin")
    approval_policy_set(tenant=funded_a, policy={"roles": ["admin"]}, actor=None)
    from orders.create import order_create
    from orders.planning import RewardInput
    from orders.selectors import order_render

    with tenant_context(funded_a):
        status, body, _ = order_create(
            order_type="digital",
            rewards=[RewardInput(product_id=str(shop.coffee_usd.id), amount=Decimal("10"), recipient={"name": "Ada"},
                                 delivery_method="api")],
            idempotency_key=None, body_hash="x", render=order_render, created_by_email=admin.email,
            created_by_role=admin.role,
        )  # fmt: skip
    assert status == 202
    page = client.get("/approvals/").content.decode()
    assert "Your request: someone else decides" in page
    client.post(f"/approvals/order/{body['id']}/approve")
    with tenant_context(funded_a):
        assert Order.objects.get(pk=body["id"]).status == "pending_approval"
        assert balances("USD")[1] == Decimal(10)


def test_settings_save_the_policy_and_show_errors_next_to_the_field(funded_a, signed_in):
    client, _ = signed_in("admin")
    assert client.get("/settings/security/").status_code == 200
    bad = client.post("/settings/security/", {"threshold_USD": "12abc", "expires_after_days": "7"})
    assert bad.status_code == 422 and "Not an amount" in bad.content.decode()
    saved = client.post(
        "/settings/security/",
        {"threshold_USD": "1,000", "expires_after_days": "5", "roles": ["manager"], "require_two_factor": "on"},
    )
    assert saved.status_code == 302
    tenant = Tenant.objects.get(pk=funded_a.pk)
    assert tenant.approval_policy == {"thresholds": {"USD": "1000.00"}, "expires_after_days": 5, "roles": ["manager"]}
    assert tenant.require_two_factor and Tenant.objects.get(live=funded_a).approval_policy == tenant.approval_policy


def test_a_waiting_batch_is_in_the_queue_and_its_sender_can_withdraw_it(api_a, funded_a, shop, signed_in, staff):
    from batches.models import Batch
    from testsupport.batches import csv_bytes, digital_rows, upload
    from testsupport.portal import portal_client, sign_in

    approval_policy_set(tenant=funded_a, policy={"thresholds": {"USD": "100.00"}}, actor=None)
    preview = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 20))).json()  # 200.00 USD
    assert api_a.post(f"/api/v1/batches/{preview['id']}/confirm").json()["status"] == "pending_approval"
    finance_client, _ = signed_in("finance")
    assert "Bulk batch" in finance_client.get("/approvals/").content.decode()
    manager = staff("manager")
    client = portal_client(funded_a)
    sign_in(client, manager.email)
    page = client.get(f"/bulk/{preview['id']}/").content.decode()
    assert "Waiting for approval" in page and "Withdraw" in page
    client.post(f"/bulk/{preview['id']}/cancel")
    with tenant_context(funded_a):
        batch = Batch.objects.get(pk=preview["id"])
        assert (batch.status, batch.approval_status) == ("canceled", "rejected")
        assert balances("USD")[1] == Decimal(0)


def test_the_send_done_page_of_an_order_waiting_for_approval_says_so_in_words(funded_a, shop, signed_in):
    """Review: after a send over the threshold the page said "Reward sent", "Total charged" and showed the raw
    codes `pending_approval` / `awaiting_approval`; it now says the order waits, its total is held, in labels."""
    client, admin = signed_in("admin")
    approval_policy_set(tenant=funded_a, policy={"roles": ["admin"]}, actor=None)
    from orders.create import order_create
    from orders.planning import RewardInput
    from orders.selectors import order_render

    with tenant_context(funded_a):
        status, body, _ = order_create(
            order_type="digital",
            rewards=[RewardInput(product_id=str(shop.coffee_usd.id), amount=Decimal("10"), recipient={"name": "Ada"},
                                 delivery_method="api")],
            idempotency_key=None, body_hash="x", render=order_render, created_by_email=admin.email,
            created_by_role=admin.role,
        )  # fmt: skip
    assert status == 202
    html = client.get(f"/send/orders/{body['id']}/").content.decode()
    assert "<h1>Waiting for approval</h1>" in html and "Reward sent" not in html
    assert "Total held" in html and "Total charged" not in html
    assert "Pending Approval" in html and "Awaiting Approval" in html
    assert "pending_approval<" not in html and "awaiting_approval<" not in html
