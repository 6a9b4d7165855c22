"""Batch rows are stored with half of each page free (fillfactor 50), so that a chunk marking its rows done (their
`status` and `reward_id`, neither indexed) writes each new row version on the row's own page: a HOT update, with no
new entry in the row's two indexes (the primary key and (batch, row_number)). With full pages every marked row
moved to a new page and wrote both entries again. bench/pg_writes.py, alternating chunks between two schemas: −7 %
of a chunk's PostgreSQL CPU (B/A median 0.927 over 15 pairs, an unchanged schema 0.981).

The table is not larger for it once its rows are handled: the old and new versions of a marked row share a page
instead of filling two; only a batch waiting to be confirmed takes twice the pages it did. The upload pays ~1 ms of
PostgreSQL CPU per 1,000 rows for the extra pages (11.4 → 12.4 ms for an upload and confirm), acceptance saves ~7.
Rows already stored keep their pages; new uploads get the free space. The reverse restores full pages for new rows.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0009_row_reward_unconstrained"),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE batches_batchrow SET (fillfactor = 50);",
            "ALTER TABLE batches_batchrow RESET (fillfactor);",
        ),
    ]
