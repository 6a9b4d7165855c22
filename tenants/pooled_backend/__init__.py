"""django-tenants' PostgreSQL backend behind a pooler in transaction mode (PgBouncer `pool_mode=transaction`)."""
