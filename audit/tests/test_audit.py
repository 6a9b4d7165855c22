"""The audit log service and selector: scrubbed data, filters, per-schema isolation."""

from datetime import date, timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from audit.selectors import audit_event_list
from audit.services import audit_record


def test_record_scrubs_secret_looking_keys_and_truncates(tenant_a):
    with tenant_context(tenant_a):
        event = audit_record(
            actor="staff:a@alpha.test",
            action="developers.key_create",
            object_id=12345,
            data={
                "token": "t",
                "pin": "1",
                "items": [{"secret": "s", "name": "n"}],
                "key_id": "abc",
                "when": date(2026, 1, 2),
            },
            ip="203.0.113.9",
        )
    assert event.object_id == "12345" and event.ip == "203.0.113.9"
    assert event.data == {"token": "[redacted]", "pin": "[redacted]", "items": [{"secret": "[redacted]", "name": "n"}],
                          "key_id": "abc", "when": "2026-01-02"}  # fmt: skip


def test_list_filters_by_actor_action_and_inclusive_dates(tenant_a):
    with tenant_context(tenant_a):
        a = audit_record(actor="staff:ann@alpha.test", action="team.invite")
        b = audit_record(actor="api-key:k1", action="POST /api/v1/orders")
        old = audit_record(actor="api-key:k1", action="POST /api/v1/orders")
        AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
        today = timezone.now().date()
        assert list(audit_event_list(actor="ANN")) == [a]
        assert list(audit_event_list(action="orders", since=today)) == [b]
        assert list(audit_event_list(until=today - timedelta(days=3))) == [AuditEvent.objects.get(pk=old.pk)]
        assert [e.pk for e in audit_event_list()] == [b.pk, a.pk, old.pk]


def test_each_schema_has_its_own_log(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        audit_record(actor="staff:a@alpha.test", action="team.invite")
    with tenant_context(tenant_b):
        assert not AuditEvent.objects.exists()
    with tenant_context(tenant_a.sandbox):
        assert not AuditEvent.objects.exists()
