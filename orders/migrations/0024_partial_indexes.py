"""Rewards index their claim-token hash and their person only where they have one, and no longer index
`deliver_at` alone: most rewards have neither a claim link nor a person, every lookup by either value implies it
is set (so the partial index serves it, the person foreign key's SET NULL included), and every query by
`deliver_at` names a status, which (status, deliver_at) serves. Each new reward writes up to three index entries
fewer (a bulk chunk writes 5,000 rewards; bench/pg_writes.py measured the two partial indexes at -3 % of a
chunk's PostgreSQL CPU), and so does each status change of a reward (a status is indexed, so no update of a
reward is HOT).

RunSQL with the fields' state (platform_migrate replays it; tenant provisioning collects the same SQL), as 0021.
The new indexes are built before the old ones go, under IF NOT EXISTS: for a large tenant build them beforehand
with CREATE INDEX CONCURRENTLY under the same names (docs/operations.md, zero-downtime rule 4).
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = [
    """CREATE INDEX IF NOT EXISTS "reward_claim_token" ON "orders_reward" ("claim_token_hash") """
    """WHERE NOT ("claim_token_hash" = '');""",
    """CREATE INDEX IF NOT EXISTS "reward_person" ON "orders_reward" ("person_id") WHERE "person_id" IS NOT NULL;""",
    "DROP INDEX IF EXISTS orders_reward_claim_token_hash_0c7e09cd;",
    "DROP INDEX IF EXISTS orders_reward_person_id_07c4c87c;",
    "DROP INDEX IF EXISTS orders_reward_deliver_at_a26f4b6c;",
]
BACKWARD = [
    "CREATE INDEX IF NOT EXISTS orders_reward_claim_token_hash_0c7e09cd ON orders_reward (claim_token_hash);",
    "CREATE INDEX IF NOT EXISTS orders_reward_person_id_07c4c87c ON orders_reward (person_id);",
    "CREATE INDEX IF NOT EXISTS orders_reward_deliver_at_a26f4b6c ON orders_reward (deliver_at);",
    "DROP INDEX IF EXISTS reward_claim_token;",
    "DROP INDEX IF EXISTS reward_person;",
]


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0023_due_retention_totals"),
        ("people", "0002_privacysettings"),
    ]

    operations = [
        migrations.RunSQL(
            FORWARD,
            BACKWARD,
            state_operations=[
                migrations.AlterField(
                    model_name="reward",
                    name="claim_token_hash",
                    field=models.CharField(blank=True, max_length=64),
                ),
                migrations.AlterField(
                    model_name="reward",
                    name="deliver_at",
                    field=models.DateTimeField(blank=True, null=True),
                ),
                migrations.AlterField(
                    model_name="reward",
                    name="person",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="rewards",
                        to="people.person",
                    ),
                ),
                migrations.AddIndex(
                    model_name="reward",
                    index=models.Index(
                        condition=~models.Q(claim_token_hash=""), fields=["claim_token_hash"], name="reward_claim_token"
                    ),
                ),
                migrations.AddIndex(
                    model_name="reward",
                    index=models.Index(
                        condition=models.Q(person__isnull=False), fields=["person"], name="reward_person"
                    ),
                ),
            ],
        ),
    ]
