"""Finding rewards and reading totals fast at any size.

- `reference`: a short human id per reward ("RW-7K3Q-92"), drawn by the database from a sequence through a
  bijective scramble (multiply by an odd constant modulo 2^30), so it is unique by construction, looks random,
  and every insert path (ORM, COPY, INSERT ... SELECT) gets one. Existing rows get theirs as the column is added.
- `search_text`: a stored generated column (lower-cased reference, recipient, external id, metadata values)
  behind a trigram GIN index where pg_trgm is installed (core.0001), else prefix (text_pattern_ops) indexes:
  orders.search picks the matching plan.
- Rollups: statement-level triggers append per-(day, status, currency) reward deltas and per-(day, currency,
  program, product, department) spend deltas (captures less refunds) in the transaction that changes a reward
  or posts to the ledger; orders.rollups folds them into the rollup tables. Backfilled here from what exists.

Every statement is one line: tenant provisioning replays this SQL statement by statement (tenants.provisioning
splits the collected SQL at line ends with a semicolon).
"""

from django.db import migrations, models


def one_line(sql: str) -> str:
    return " ".join(line.strip() for line in sql.strip().splitlines())


REFERENCE_FUNCTION = [
    "CREATE SEQUENCE IF NOT EXISTS orders_reward_reference_seq;",
    one_line("""
    CREATE OR REPLACE FUNCTION orders_reward_reference() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
    DECLARE n bigint := nextval('orders_reward_reference_seq');
    x bigint := ((n % 1073741824) * 387420489 + 712345678) % 1073741824;
    hi bigint := n / 1073741824;
    alphabet text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    ref text := '';
    BEGIN
    FOR i IN 1..6 LOOP ref := substr(alphabet, (x % 32)::int + 1, 1) || ref; x := x / 32; END LOOP;
    ref := 'RW-' || substr(ref, 1, 4) || '-' || substr(ref, 5, 2);
    WHILE hi > 0 LOOP ref := ref || substr(alphabet, (hi % 32)::int + 1, 1); hi := hi / 32; END LOOP;
    RETURN ref;
    END $$;
    """),
]

SEARCH = [
    one_line("""
    ALTER TABLE orders_reward ADD COLUMN search_text text GENERATED ALWAYS AS (lower(
    reference || ' ' || recipient_name || ' ' || recipient_email || ' ' || recipient_phone || ' ' || external_id
    || ' ' || jsonb_path_query_array(metadata, '$.*')::text)) STORED;
    """),
    one_line("""
    DO $$ DECLARE trgm_schema text; BEGIN
    SELECT n.nspname INTO trgm_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
    EXECUTE format('CREATE INDEX reward_search_trgm ON orders_reward USING gin (search_text %I.gin_trgm_ops)',
    trgm_schema);
    EXECUTE format('CREATE INDEX order_metadata_trgm ON orders_order USING gin
    (lower(jsonb_path_query_array(metadata, ''$.*'')::text) %I.gin_trgm_ops)', trgm_schema);
    ELSE
    CREATE INDEX reward_email_prefix ON orders_reward (lower(recipient_email) text_pattern_ops);
    CREATE INDEX reward_name_prefix ON orders_reward (lower(recipient_name) text_pattern_ops);
    END IF;
    CREATE INDEX reward_external_id ON orders_reward (external_id) WHERE external_id <> '';
    END $$;
    """),
]

ROLLUPS = [
    # Backfill from what exists, then keep up with every later change.
    one_line("""
    INSERT INTO orders_rewardstat (day, status, currency, rewards, amount)
    SELECT (created_at AT TIME ZONE 'UTC')::date, status, currency, count(*), sum(amount) FROM orders_reward
    GROUP BY 1, 2, 3;
    """),
    one_line("""
    INSERT INTO orders_spendstat (day, currency, program_id, product_id, department, amount, captures, refunds)
    SELECT (t.created_at AT TIME ZONE 'UTC')::date, t.currency, o.program_id, r.product_id,
    coalesce(left(r.metadata ->> 'department', 100), ''),
    sum(CASE WHEN t.kind = 'capture' THEN t.amount ELSE -t.amount END),
    count(*) FILTER (WHERE t.kind = 'capture'), count(*) FILTER (WHERE t.kind = 'refund')
    FROM funds_ledgertransaction t
    LEFT JOIN orders_reward r ON r.id = (CASE WHEN t.reference ~ '^reward:[0-9a-fA-F-]{36}$'
    THEN substr(t.reference, 8)::uuid END)
    LEFT JOIN orders_order o ON o.id = r.order_id
    WHERE t.kind IN ('capture', 'refund') GROUP BY 1, 2, 3, 4, 5;
    """),
    one_line("""
    CREATE OR REPLACE FUNCTION orders_reward_stat_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (day, status, currency, rewards, amount)
    SELECT (created_at AT TIME ZONE 'UTC')::date, status, currency, count(*), sum(amount) FROM new_rows
    GROUP BY 1, 2, 3;
    RETURN NULL; END $$;
    """),
    one_line("""
    CREATE OR REPLACE FUNCTION orders_reward_stat_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (day, status, currency, rewards, amount)
    SELECT day, status, currency, sum(n), sum(a) FROM (
    SELECT (o.created_at AT TIME ZONE 'UTC')::date AS day, o.status, o.currency, -1 AS n, -o.amount AS a
    FROM old_rows o JOIN new_rows r ON r.id = o.id
    WHERE (o.status, o.created_at, o.currency, o.amount) IS DISTINCT FROM (r.status, r.created_at, r.currency, r.amount)
    UNION ALL
    SELECT (r.created_at AT TIME ZONE 'UTC')::date, r.status, r.currency, 1, r.amount
    FROM old_rows o JOIN new_rows r ON r.id = o.id
    WHERE (o.status, o.created_at, o.currency, o.amount) IS DISTINCT FROM (r.status, r.created_at, r.currency, r.amount)
    ) AS moves GROUP BY 1, 2, 3;
    RETURN NULL; END $$;
    """),
    one_line("""
    CREATE OR REPLACE FUNCTION orders_reward_stat_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (day, status, currency, rewards, amount)
    SELECT (created_at AT TIME ZONE 'UTC')::date, status, currency, -count(*), -sum(amount) FROM old_rows
    GROUP BY 1, 2, 3;
    RETURN NULL; END $$;
    """),
    one_line("""
    CREATE OR REPLACE FUNCTION orders_spend_stat_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_spendstatdelta (day, currency, program_id, product_id, department, amount, captures, refunds)
    SELECT (t.created_at AT TIME ZONE 'UTC')::date, t.currency, o.program_id, r.product_id,
    coalesce(left(r.metadata ->> 'department', 100), ''),
    sum(CASE WHEN t.kind = 'capture' THEN t.amount ELSE -t.amount END),
    count(*) FILTER (WHERE t.kind = 'capture'), count(*) FILTER (WHERE t.kind = 'refund')
    FROM new_rows t
    LEFT JOIN orders_reward r ON r.id = (CASE WHEN t.reference ~ '^reward:[0-9a-fA-F-]{36}$'
    THEN substr(t.reference, 8)::uuid END)
    LEFT JOIN orders_order o ON o.id = r.order_id
    WHERE t.kind IN ('capture', 'refund') GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL; END $$;
    """),
    "CREATE TRIGGER orders_reward_stat_insert AFTER INSERT ON orders_reward REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION orders_reward_stat_insert();",
    "CREATE TRIGGER orders_reward_stat_update AFTER UPDATE ON orders_reward REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION orders_reward_stat_update();",
    "CREATE TRIGGER orders_reward_stat_delete AFTER DELETE ON orders_reward REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION orders_reward_stat_delete();",
    "CREATE TRIGGER orders_spend_stat_insert AFTER INSERT ON funds_ledgertransaction REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION orders_spend_stat_insert();",
]


class Migration(migrations.Migration):

    dependencies = [
        ('funds', '0003_refund_reference_unique'),
        ('orders', '0008_approvals'),
        ('programs', '0002_budget_amount_per_period'),
    ]

    operations = [
        migrations.RunSQL(REFERENCE_FUNCTION, migrations.RunSQL.noop),
        migrations.CreateModel(
            name='RewardStat',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('status', models.CharField(max_length=20)),
                ('currency', models.CharField(max_length=3)),
                ('rewards', models.BigIntegerField(default=0)),
                ('amount', models.DecimalField(decimal_places=4, default=0, max_digits=24)),
            ],
        ),
        migrations.CreateModel(
            name='RewardStatDelta',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('status', models.CharField(max_length=20)),
                ('currency', models.CharField(max_length=3)),
                ('rewards', models.BigIntegerField()),
                ('amount', models.DecimalField(decimal_places=4, max_digits=24)),
            ],
        ),
        migrations.CreateModel(
            name='SpendStat',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('currency', models.CharField(max_length=3)),
                ('program_id', models.BigIntegerField(null=True)),
                ('product_id', models.UUIDField(null=True)),
                ('department', models.CharField(default='', max_length=100)),
                ('amount', models.DecimalField(decimal_places=4, default=0, max_digits=24)),
                ('captures', models.BigIntegerField(default=0)),
                ('refunds', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='SpendStatDelta',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('currency', models.CharField(max_length=3)),
                ('program_id', models.BigIntegerField(null=True)),
                ('product_id', models.UUIDField(null=True)),
                ('department', models.CharField(default='', max_length=100)),
                ('amount', models.DecimalField(decimal_places=4, max_digits=24)),
                ('captures', models.BigIntegerField()),
                ('refunds', models.BigIntegerField()),
            ],
        ),
        migrations.AddField(
            model_name='order',
            name='metadata',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='reward',
            name='external_id',
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name='reward',
            name='metadata',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='reward',
            name='reference',
            field=models.CharField(db_default=models.Func(function='orders_reward_reference', output_field=models.CharField()), editable=False, max_length=20, unique=True),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['po_number'], name='order_po_number'),
        ),
        migrations.AddIndex(
            model_name='reward',
            index=models.Index(fields=['recipient_email'], name='reward_recipient_email'),
        ),
        migrations.AddConstraint(
            model_name='rewardstat',
            constraint=models.UniqueConstraint(fields=('day', 'status', 'currency'), name='reward_stat_key'),
        ),
        migrations.AddConstraint(
            model_name='spendstat',
            constraint=models.UniqueConstraint(fields=('day', 'currency', 'program_id', 'product_id', 'department'), name='spend_stat_key', nulls_distinct=False),
        ),
        migrations.RunSQL(SEARCH, migrations.RunSQL.noop),
        migrations.RunSQL(ROLLUPS, migrations.RunSQL.noop),
    ]
