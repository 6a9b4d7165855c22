"""Provisioning replays the tenant migrations' SQL; the result must be the migrated template, exactly."""

from django.db import connection
from django_tenants.utils import get_tenant_base_schema, tenant_context

from accounts.models import User
from tenants.models import SchemaTemplate

SHAPE = {
    "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         a.attidentity, pg_get_expr(d.adbin, d.adrelid)
                  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                  WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped""",
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
