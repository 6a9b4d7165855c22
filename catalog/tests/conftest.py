"""Catalogue fixtures built through the services: a small catalogue across currencies and countries."""

from __future__ import annotations

import pytest

from testsupport.catalog import SmallCatalog, make_small_catalog


@pytest.fixture
def catalog(db) -> SmallCatalog:
    return make_small_catalog()
