"""core.bulk.rows_update writes many rows' new values in one statement: each row gets exactly its own values, in
each column's type (JSON whole, a time to the microsecond), a field a row leaves out keeps what it holds, and rows
not named are untouched."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from core import bulk
from core.db import connection
from webhooks.endpoints import webhook_endpoint_create
from webhooks.events import event_record
from webhooks.models import Event, WebhookDelivery


def test_each_row_gets_its_own_values_in_one_statement(tenant_a):
    with tenant_context(tenant_a), transaction.atomic():
        endpoint, _secret = webhook_endpoint_create(url="http://127.0.0.1:9/hook", events=["*"])
        events = [event_record(type="webhook.test", data={"id": f"s{n}", "n": n}, endpoint_ids=[endpoint.id])
                  for n in range(3)]  # fmt: skip
        first, second, untouched = (WebhookDelivery.objects.get(event=event) for event in events)
        at = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=UTC)
        with CaptureQueriesContext(connection) as queries:
            updated = bulk.rows_update(WebhookDelivery, {
                first.pk: {"last_error": 'HTTP 500 "quoted" \\ back', "next_attempt_at": at, "attempt_count": 7},
                second.pk: {"last_error": "ünïcode ✓", "attempt_count": None},  # None: keeps what it holds
            })  # fmt: skip
            assert bulk.rows_update(Event, {events[0].pk: {"data": {"id": "s0", "nested": [{"a": None}, "x"]}}}) == 1
        assert updated == 2 and len(queries) == 2

        rows = {d.pk: (d.last_error, d.next_attempt_at, d.attempt_count) for d in WebhookDelivery.objects.all()}
        assert rows[first.pk] == ('HTTP 500 "quoted" \\ back', at, 7)
        assert rows[second.pk] == ("ünïcode ✓", second.next_attempt_at, second.attempt_count)
        assert rows[untouched.pk] == ("", untouched.next_attempt_at, untouched.attempt_count)
        assert Event.objects.get(pk=events[0].pk).data == {"id": "s0", "nested": [{"a": None}, "x"]}
        assert [Event.objects.get(pk=e.pk).data for e in events[1:]] == [{"id": "s1", "n": 1}, {"id": "s2", "n": 2}]
        assert bulk.rows_update(Event, {}) == 0
