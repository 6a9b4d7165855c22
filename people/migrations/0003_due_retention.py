"""A change to the privacy settings (the retention period set, changed or removed) notes the schema for recipient
retention (tenants.due, kind `retention`), which then works out when its next reward falls due under the new period.

A statement trigger calling public.tenant_due_note() (tenants migration 0009, run on the public schema first). One
line per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

from tenants.due_sql import change_trigger_sql

CREATE, DROP = change_trigger_sql("people_privacysettings", "retention", "INSERT OR UPDATE")


class Migration(migrations.Migration):
    dependencies = [
        ("people", "0002_privacysettings"),
        ("tenants", "0015_due_retention_totals"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
