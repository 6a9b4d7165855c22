"""Drop the `varchar_pattern_ops` indexes Django adds beside a unique or indexed CharField on PostgreSQL, for the
columns that are only ever compared whole: a reward's reference and claim-token hash, an Idempotency-Key. Nothing
filters them with LIKE or startswith (prefix search reads the search columns and their trigram index), and every
order, bulk row and idempotent request wrote one entry per index.

Explicit DROP INDEX (RunSQL), as 0021: the index names are Django's, derived from table and column. Django's
schema editor drops such an index with IF EXISTS before it changes the column, and recreates it only with a
later AlterField of that column.
"""

from django.db import migrations

INDEXES = [
    ("orders_reward_reference_1e917479_like", "orders_reward", "reference"),
    ("orders_reward_claim_token_hash_0c7e09cd_like", "orders_reward", "claim_token_hash"),
    ("orders_idempotencyrecord_key_64efe83a_like", "orders_idempotencyrecord", "key"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0021_fk_index_covered"),
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
