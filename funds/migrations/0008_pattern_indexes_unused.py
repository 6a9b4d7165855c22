"""Drop the `varchar_pattern_ops` indexes Django adds beside the indexed `reference` of holds and ledger
transactions: references are looked up whole (the plain index serves that), never by prefix, and every order
wrote one entry in each. As orders 0022."""

from django.db import migrations

INDEXES = [
    ("funds_hold_reference_ade8f227_like", "funds_hold", "reference"),
    ("funds_ledgertransaction_reference_eaab08a9_like", "funds_ledgertransaction", "reference"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("funds", "0007_metrics_notes"),
    ]

    operations = [
        migrations.RunSQL(
            "".join(f"DROP INDEX IF EXISTS {name};" for name, _, _ in INDEXES),
            "".join(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column} varchar_pattern_ops);"
                for name, table, column in INDEXES
            ),
        ),
    ]
