"""Sandbox twins are provisioned on first use: `Tenant.schema_ready`. Every tenant row that exists already has
its schema (tenant_create made both twins' schemas until now), so all existing rows get True: existing twins are
kept as they are. Only tenants created from now on have a twin row whose schema waits for its first use."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0012_due_points"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="schema_ready",
            field=models.BooleanField(default=True),
        ),
    ]
