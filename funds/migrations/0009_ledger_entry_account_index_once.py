"""Ledger entries index their account once: the foreign key's own index (Django's, from `db_index`) duplicated the
Meta index on the same column, and every posting wrote both (two entries per order). RunSQL with the field's
state, as orders 0021."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("funds", "0008_pattern_indexes_unused"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS funds_ledgerentry_account_id_f2daa14e;",
            "CREATE INDEX IF NOT EXISTS funds_ledgerentry_account_id_f2daa14e ON funds_ledgerentry (account_id);",
            state_operations=[
                migrations.AlterField(
                    model_name="ledgerentry",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="entries",
                        to="funds.ledgeraccount",
                    ),
                ),
            ],
        ),
    ]
