"""Points awards are noted for the hourly expiry sweep (its notice, then the expiry): tenants.due, kind `points`.

A statement trigger calling public.tenant_due_note() (tenants migration 0009, run on the public schema first) for
every written award; the tenants migration 0012 notes every existing schema once. One line per statement: tenant
provisioning replays this SQL statement by statement.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0001_initial"),
        ("tenants", "0012_due_points"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE TRIGGER tenant_due_{event.lower()} AFTER {event} ON points_pointsaward "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_note('points');",
            f"DROP TRIGGER IF EXISTS tenant_due_{event.lower()} ON points_pointsaward;",
        )
        for event in ("INSERT", "UPDATE")
    ]
