"""Drop the `varchar_pattern_ops` index Django adds beside an event's text primary key: event ids are looked up
whole (the primary key serves that), never by prefix, and every order's `order.created` event wrote one entry
in it. As orders 0022."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0004_metrics_notes"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS webhooks_event_id_136b0861_like;",
            "CREATE INDEX IF NOT EXISTS webhooks_event_id_136b0861_like ON webhooks_event (id varchar_pattern_ops);",
        ),
    ]
