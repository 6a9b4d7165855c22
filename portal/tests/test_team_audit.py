"""Team management and the audit log: staff actions and API writes are recorded, pages filter and page."""

import re
from datetime import timedelta

from django.core import mail
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.models import AuditEvent
from audit.services import audit_record
from testsupport.orders import digital_order
from testsupport.portal import portal_client, sign_in


def events(tenant, **filters):
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(**filters))


def test_invite_creates_the_user_emails_a_link_and_is_audited(signed_in, tenant_a, django_capture_on_commit_callbacks):
    client, admin = signed_in("admin")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/team/", {"email": "New.Person@alpha.test", "name": "New Person", "role": "manager"})
    assert response.status_code == 302
    with tenant_context(tenant_a):
        invited = User.objects.get(email="new.person@alpha.test")
    assert invited.role == "manager" and not invited.has_usable_password()
    [message] = mail.outbox
    assert message.to == ["new.person@alpha.test"] and admin.email in message.body
    link = re.search(r"http://alpha\.localhost(/reset/\S+)", message.body).group(1)
    newcomer = portal_client(tenant_a)
    form = newcomer.get(link, follow=True)
    newcomer.post(
        form.redirect_chain[-1][0], {"new_password1": "welcome-aboard-2026", "new_password2": "welcome-aboard-2026"}
    )
    assert sign_in(newcomer, "new.person@alpha.test", "welcome-aboard-2026").status_code == 302
    [event] = events(tenant_a, action="team.invite")
    assert event.actor == f"staff:{admin.email}" and event.object_id == str(invited.pk)
    assert event.data == {"email": "new.person@alpha.test", "role": "manager"} and event.ip == "127.0.0.1"


def test_invite_errors_show_next_to_the_field(signed_in, staff):
    client, _ = signed_in("admin")
    existing = staff("viewer")
    response = client.post("/team/", {"email": existing.email, "role": "viewer"})
    assert response.status_code == 200
    assert "already has an account here" in response.content.decode()
    response = client.post("/team/", {"email": "not-an-email", "role": "viewer"})
    assert 'class="field has-error"' in response.content.decode()
    assert mail.outbox == []


def test_change_role_and_deactivate_sign_the_member_out(signed_in, staff, tenant_a):
    client, admin = signed_in("admin")
    member = staff("viewer")
    member_client = portal_client(tenant_a)
    sign_in(member_client, member.email)
    assert member_client.get("/funds/").status_code == 403
    client.post(f"/team/{member.pk}/role", {"role": "finance"})
    assert member_client.get("/funds/").status_code == 200  # the role applies at once
    client.post(f"/team/{member.pk}/deactivate")
    assert member_client.get("/").status_code == 302  # signed out at the next request
    assert sign_in(member_client, member.email).status_code == 200  # and cannot sign in
    actions = [e.action for e in events(tenant_a, actor=f"staff:{admin.email}")]
    assert "team.role_change" in actions and "team.deactivate" in actions
    [change] = events(tenant_a, action="team.role_change")
    assert change.data == {"email": member.email, "from": "viewer", "to": "finance"}
    client.post(f"/team/{member.pk}/reactivate")
    assert sign_in(member_client, member.email).status_code == 302


def test_the_last_admin_cannot_be_demoted_and_nobody_deactivates_themselves(signed_in, tenant_a):
    client, admin = signed_in("admin")
    with tenant_context(tenant_a):
        for other in User.objects.filter(role="admin").exclude(pk=admin.pk):
            other.role = "viewer"
            other.save()
    response = client.post(f"/team/{admin.pk}/deactivate", follow=True)
    assert "cannot deactivate yourself" in response.content.decode()
    response = client.post(f"/team/{admin.pk}/role", {"role": "viewer"}, follow=True)
    assert "at least one active admin" in response.content.decode()
    with tenant_context(tenant_a):
        admin.refresh_from_db()
    assert admin.role == "admin" and admin.is_active


def test_unknown_team_action_is_404(signed_in, staff):
    client, _ = signed_in("admin")
    assert client.post(f"/team/{staff('viewer').pk}/promote").status_code == 404


def test_api_writes_are_audited_with_key_route_and_object(api_a, funded_a, shop):
    response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00"), HTTP_IDEMPOTENCY_KEY="audit-1")
    assert response.status_code == 201
    order_id = response.json()["id"]
    [event] = events(funded_a, actor=f"api-key:{api_a.key.key_id}")
    assert event.action == "POST /api/v1/orders" and event.object_type == "orders" and event.object_id == order_id
    assert event.data == {"status": 201}
    # A replay, a read and a refusal are not writes.
    api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00"), HTTP_IDEMPOTENCY_KEY="audit-1")
    api_a.get(f"/api/v1/orders/{order_id}")
    too_much = digital_order(shop.coffee_usd, "50.00")
    too_much["rewards"][0]["quantity"] = 30
    assert api_a.post("/api/v1/orders", too_much).status_code == 402
    assert len(events(funded_a, actor=f"api-key:{api_a.key.key_id}")) == 1
    cancel = api_a.post(f"/api/v1/orders/{order_id}/cancel")
    assert cancel.status_code == 200, cancel.content
    [cancelled] = events(funded_a, action="POST /api/v1/orders/<uuid:order_id>/cancel")
    assert cancelled.object_id == order_id


def test_sandbox_key_writes_are_audited_in_the_sandbox_schema(make_api_client, tenant_a, shop):
    from funds.services import funds_deposit

    with tenant_context(tenant_a.sandbox):
        funds_deposit(currency="USD", amount="100")
    api = make_api_client(tenant_a.sandbox)
    assert api.post("/api/v1/orders", digital_order(shop.coffee_usd, "10")).status_code == 201
    assert len(events(tenant_a.sandbox, actor=f"api-key:{api.key.key_id}")) == 1
    assert events(tenant_a, actor=f"api-key:{api.key.key_id}") == []


def test_tenant_b_never_sees_tenant_a_audit(api_a, funded_a, shop, tenant_b, staff):
    api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10"))
    admin_b = staff("admin", email="boss@beta.test", tenant=tenant_b)
    client_b = portal_client(tenant_b)
    sign_in(client_b, admin_b.email)
    page = client_b.get("/audit/").content.decode()
    assert api_a.key.key_id not in page


def test_audit_page_filters_and_paginates(signed_in, tenant_a):
    client, _ = signed_in("admin")
    with tenant_context(tenant_a):
        for n in range(60):
            audit_record(actor="api-key:abc", action="POST /api/v1/orders", object_type="orders", object_id=f"o-{n}")
        old = audit_record(actor="staff:old@alpha.test", action="team.invite")
        AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    page1 = client.get("/audit/", {"actor": "api-key"}).content.decode()
    assert "Page 1 of 2" in page1 and "o-59" in page1 and "o-0<" not in page1
    page2 = client.get("/audit/", {"actor": "api-key", "page": 2}).content.decode()
    assert "o-0<" in page2 and "actor=api-key" in page2
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    recent = client.get("/audit/", {"action": "team.invite", "since": since}).content.decode()
    assert "old@alpha.test" not in recent
    assert "old@alpha.test" in client.get("/audit/", {"action": "team.invite"}).content.decode()
    bad = client.get("/audit/", {"since": "2026-02-10", "until": "2026-02-01"}).content.decode()
    assert "before the start date" in bad


def test_audit_page_query_budget(signed_in, tenant_a, django_assert_max_num_queries):
    client, _ = signed_in("admin")
    with tenant_context(tenant_a):
        for n in range(30):
            audit_record(actor="staff:x@alpha.test", action="team.invite", object_id=n)
    client.get("/audit/")
    with django_assert_max_num_queries(12):
        assert client.get("/audit/").status_code == 200


def test_audit_record_never_keeps_secrets(tenant_a):
    with tenant_context(tenant_a):
        event = audit_record(
            actor="staff:a@alpha.test",
            action="x",
            data={"password": "p", "code": "GIFT-1234", "nested": {"client_secret": "s"}, "key_id": "k1", "ok": 1},
        )
    assert event.data == {"password": "[redacted]", "code": "[redacted]", "nested": {"client_secret": "[redacted]"},
                          "key_id": "k1", "ok": 1}  # fmt: skip


def test_the_role_help_says_finance_approves_and_managers_run_people_and_programs(signed_in):
    """Review: inviting a finance person to approve large sends, the help said finance was only "Funds: …"."""
    client, _ = signed_in("admin")
    page = client.get("/team/").content.decode()
    assert "approving others' sends, and reports" in page
    assert "Send rewards and bulk CSV; people, programs, automations and reports." in page
