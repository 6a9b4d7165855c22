"""A program whose reminder schedule (or anything else) changes notes its schema for the reminders sweep
(tenants.due, kind `reminders`), which then works out the next reminder due under the new schedule.

A statement trigger calling public.tenant_due_note() (tenants migration 0009, run on the public schema first). One
line per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

from tenants.due_sql import change_trigger_sql

CREATE, DROP = change_trigger_sql("programs_program", "reminders", "UPDATE")


class Migration(migrations.Migration):
    dependencies = [
        ("programs", "0005_track_email_opens"),
        ("tenants", "0009_due_events"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
