"""The hourly points sweep enters only schemas with awards that can expire (tenants.due), and still sends each
notice and each expiry when due."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context
from freezegun import freeze_time

from core.db import connection
from points import expiry
from points.models import PointsAward
from points.tasks import points_expiry_sweep

from .test_points import award


def test_the_sweep_visits_only_schemas_with_awards_and_sends_the_notice_then_the_expiry(
    tenant_a, kudos, ana, mailoutbox, django_capture_on_commit_callbacks, monkeypatch
):
    visited: list[str] = []
    notify = expiry.points_expiry_notify

    def spying_notify() -> int:
        visited.append(connection.schema_name)
        return notify()

    monkeypatch.setattr(expiry, "points_expiry_notify", spying_notify)

    def sweep() -> int:
        visited.clear()
        connection.set_schema_to_public()
        with django_capture_on_commit_callbacks(execute=True):
            return points_expiry_sweep()

    soon = award(tenant_a, kudos, ana, 400, "soon")
    start = timezone.now()
    with tenant_context(tenant_a):
        PointsAward.objects.filter(pk=soon.pk).update(expires_at=start + timedelta(days=30))
    assert sweep() == 0 and visited == [tenant_a.schema_name]  # noted by the award; nothing due yet
    with freeze_time(start + timedelta(days=10)):
        assert sweep() == 0 and visited == []  # not even the notice yet: no schema entered
    with freeze_time(start + timedelta(days=30) - timedelta(days=14, seconds=-60)):
        assert sweep() == 0 and visited == [tenant_a.schema_name]
        [notice] = mailoutbox
        assert notice.to == [ana.email]
    with freeze_time(start + timedelta(days=30, minutes=1)):
        assert sweep() == 400
    with freeze_time(start + timedelta(days=31)):
        assert sweep() == 0  # the expiry wrote the award, which noted the schema: one more look
        assert sweep() == 0 and visited == []  # then nothing is left to expire there
