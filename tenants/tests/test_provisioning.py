"""Provisioning replays the tenant migrations' SQL; the result must be the migrated template, exactly."""

import itertools

from django.db import connection
from django_tenants.utils import get_tenant_base_schema, tenant_context

from accounts.models import User
from tenants import provisioning
from tenants.models import SchemaTemplate

SHAPE = {
    "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         a.attidentity, pg_get_expr(d.adbin, d.adrelid)
                  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                  WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped""",
    # Storage parameters (batches 0010: a fillfactor).
    "storage": """SELECT c.relname, c.reloptions::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = %s AND c.reloptions IS NOT NULL""",
    "indexes": """SELECT regexp_replace(indexdef, ' ON \\S+\\.', ' ON ') FROM pg_indexes WHERE schemaname = %s""",
    "constraints": """SELECT c.relname, con.contype, pg_get_constraintdef(con.oid)
                      FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
                      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s""",
}


def _shape(schema: str) -> dict[str, set]:
    shape = {}
    with connection.cursor() as cursor:
        for name, sql in SHAPE.items():
            cursor.execute(sql, [schema])
            rows = cursor.fetchall()
            # constraint definitions name the referenced table with its schema when it is not on the path
            shape[name] = {tuple(str(v).replace(f"{schema}.", "").replace(f'"{schema}".', "") for v in row)
                           for row in rows}  # fmt: skip
    return shape


def test_provisioned_schema_matches_the_migrated_template(tenant_a):
    template = _shape(get_tenant_base_schema())
    assert ("batches_batchrow", "{fillfactor=50}") in template["storage"]
    for schema in (tenant_a.schema_name, tenant_a.sandbox.schema_name):
        provisioned = _shape(schema)
        for part in SHAPE:
            assert provisioned[part] == template[part], (part, provisioned[part] ^ template[part])
    assert SchemaTemplate.objects.count() >= 1


def test_provisioned_schema_has_migration_records_and_working_sequences(tenant_a):
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{tenant_a.schema_name}".django_migrations')
        provisioned = cursor.fetchone()[0]
        cursor.execute(f'SELECT count(*) FROM "{get_tenant_base_schema()}".django_migrations')
        assert provisioned == cursor.fetchone()[0] > 20
    with tenant_context(tenant_a):
        user = User.objects.create_user("seq@alpha.example", "a-long-password")
        assert user.pk >= 1
        from django.contrib.contenttypes.models import ContentType

        assert ContentType.objects.get_for_model(User).model == "user"


def test_a_column_added_with_a_default_then_dropped_is_added_without_one():
    """The pair Django writes for a NOT NULL column with a default becomes one ADD COLUMN (the schema being built is
    empty); a default that stays, or a column with more after its nullability, is left as it is."""
    from tenants.provisioning import fold_added_defaults

    statements = [
        'ALTER TABLE "orders_order" ADD COLUMN "metadata" jsonb DEFAULT \'{}\'::jsonb NOT NULL;',
        'ALTER TABLE "orders_order" ALTER COLUMN "metadata" DROP DEFAULT;',
        'ALTER TABLE "programs_program" ADD COLUMN "on_expiry" varchar(8) DEFAULT \'NOT NULL\' NULL;',
        'ALTER TABLE "programs_program" ALTER COLUMN "on_expiry" DROP DEFAULT;',
        'ALTER TABLE "orders_reward" ADD COLUMN "reference" varchar(20) DEFAULT (orders_reward_reference()) '
        "NOT NULL UNIQUE;",
        'ALTER TABLE "orders_reward" ALTER COLUMN "reference" DROP DEFAULT;',
        'ALTER TABLE "orders_reward" ADD COLUMN "locale" varchar(16) DEFAULT \'\' NOT NULL;',
        'CREATE INDEX "x" ON "orders_reward" ("locale");',
    ]
    assert fold_added_defaults(statements) == [
        'ALTER TABLE "orders_order" ADD COLUMN "metadata" jsonb NOT NULL;',
        'ALTER TABLE "programs_program" ADD COLUMN "on_expiry" varchar(8) NULL;',
        *statements[4:],
    ]


def test_the_template_has_no_added_default_dropped_at_once():
    statements, _ = provisioning.schema_template_get()
    pairs = [
        (first, second)
        for first, second in itertools.pairwise(statements)
        if " ADD COLUMN " in first and " DEFAULT " in first and second.endswith(" DROP DEFAULT;")
    ]
    assert pairs == []
    assert any(" ADD COLUMN " in s and " DEFAULT " not in s for s in statements)  # the folded ones
