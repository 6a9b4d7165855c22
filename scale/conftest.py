"""Fixtures of `make test-scale` tests: a real PgBouncer in front of this run's test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from testsupport import pgbouncer


@pytest.fixture(scope="session")
def pooler(django_db_setup) -> Iterator[pgbouncer.PgBouncer]:
    """PgBouncer, pool_mode=transaction, ONE server connection to the test database."""
    if not pgbouncer.binary():
        pytest.skip("PgBouncer tests skipped: pgbouncer is not installed (apt-get install pgbouncer)")
    db = settings.DATABASES["default"]
    bouncer = pgbouncer.PgBouncer(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], pool_size=1)
    yield bouncer
    bouncer.stop()
