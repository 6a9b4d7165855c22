"""The trigram index of a reward's search text leaves out its reference (the text's first word): the index is on
`substr(search_text, strpos(search_text, ' ') + 1)`, the recipient, external id and metadata values.

A reference is six random characters: of a bulk row's ~41 trigrams its 11 (8 of them random, so each a posting
list of its own in a different part of the index) were the dearest to insert, and a part of a random code finds
nothing anyone meant. orders.search matches a reference whole instead (with or without `RW-`, any case) through
its unique btree index, alone or among other words. bench/pg_writes.py, alternating bulk chunks between two
schemas: −9 % of a chunk's PostgreSQL CPU (B/A median 0.909 over 15 pairs; an unchanged schema 0.981).

Where the schema has no trigram index (no pg_trgm when orders 0009 ran: prefix indexes instead) nothing changes.
The column itself is unchanged (no table rewrite); the index is rebuilt with a plain CREATE INDEX, beside the old
one, which is then dropped and replaced: while it builds the tenant's reward writes wait (its SHARE lock) but
reads and searches go on (a DROP INDEX first would lock the table against every read for the whole build; the
swap at the end holds that lock only until the schema's migration commits). Nothing is rebuilt where the index is
already on the new expression (an operator may build it first with CREATE INDEX CONCURRENTLY and rename it:
CHANGELOG upgrade notes). One line per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations


def one_line(sql: str) -> str:
    return " ".join(line.strip() for line in sql.strip().splitlines())


def _rebuild(expression: str, *, built: str) -> str:
    """Rebuild the trigram index on `expression` where it exists and is not yet on it (`built`: whether its
    definition mentions substr, as the index of 0026 does)."""
    return one_line(f"""
    DO $$ DECLARE trgm_schema text; BEGIN
    SELECT n.nspname INTO trgm_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL AND EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema()
    AND indexname = 'reward_search_trgm' AND (indexdef LIKE '%substr(%') IS DISTINCT FROM {built}) THEN
    EXECUTE format('CREATE INDEX reward_search_trgm_next ON orders_reward USING gin (({expression}) %I.gin_trgm_ops)',
    trgm_schema);
    DROP INDEX reward_search_trgm;
    ALTER INDEX reward_search_trgm_next RENAME TO reward_search_trgm;
    END IF;
    END $$;
    """)


# orders.search.SEARCH_WORDS, for this table: the search text after the reference.
WORDS = "substr(search_text, strpos(search_text, '' '') + 1)"


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0025_due_notes_together"),
    ]

    operations = [
        migrations.RunSQL(_rebuild(WORDS, built="true"), _rebuild("search_text", built="false")),
    ]
