"""Reward.code_disclosed_at / code_voided_at, and REDEEMED -> CANCELED after a void (no schema change for that).

Existing rewards whose code may have reached someone are marked disclosed: a code stored on a reward that
reached any delivered state may have gone out by email/SMS, the claim page or a reveal, and nothing recorded
which. Erring this way only means such a reward is refunded after a confirmed supplier void, never before.
"""

from django.db import migrations, models

MARK_DISCLOSED = """
UPDATE orders_reward SET code_disclosed_at = coalesce(delivered_at, updated_at)
WHERE code_encrypted <> '' AND status IN ('delivered', 'delivery_failed', 'opened', 'redeemed', 'expired')
"""


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_reward_lease")]

    operations = [
        migrations.AddField(
            model_name="reward", name="code_disclosed_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(model_name="reward", name="code_voided_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.RunSQL(MARK_DISCLOSED, migrations.RunSQL.noop),
    ]
