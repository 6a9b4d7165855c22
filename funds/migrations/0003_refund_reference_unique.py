"""One refund per reference: refunds are idempotent in the ledger itself."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("funds", "0002_deposit_requests")]

    operations = [
        migrations.AddConstraint(
            model_name="ledgertransaction",
            constraint=models.UniqueConstraint(
                condition=models.Q(kind="refund") & ~models.Q(reference=""),
                fields=["reference"],
                name="ledger_refund_reference_unique",
            ),
        )
    ]
