"""A read compiled once (core.precompiled) returns what its queryset returns, in whichever schema is current."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from catalog.models import Product
from core.precompiled import Precompiled
from programs.models import CatalogRule, CatalogRuleMode

PRODUCT_BY_ID: Precompiled[Product] = Precompiled(
    lambda pk: Product.objects.select_related("brand", "supplier").filter(pk=pk), markers=[uuid.UUID(int=0)]
)
RULES: Precompiled[CatalogRule] = Precompiled(lambda: CatalogRule.objects.all(), markers=[])


def test_same_objects_as_the_queryset_with_related_rows_in_one_query(shop):
    expected = Product.objects.select_related("brand", "supplier").get(pk=shop.books_gbp.pk)
    with CaptureQueriesContext(connection) as queries:
        product = PRODUCT_BY_ID.first(shop.books_gbp.pk)
        assert product is not None
        assert product.brand.name == expected.brand.name and product.supplier.name == expected.supplier.name
    assert len(queries) == 1
    assert {f.attname: getattr(product, f.attname) for f in Product._meta.concrete_fields} == {
        f.attname: getattr(expected, f.attname) for f in Product._meta.concrete_fields
    }
    assert product._state.adding is False
    assert PRODUCT_BY_ID.first(uuid.uuid4()) is None


def test_runs_in_the_current_tenant_schema(tenant_a, tenant_b, shop):
    with schema_context(tenant_a.schema_name):
        CatalogRule.objects.create(mode=CatalogRuleMode.DENY, product_ids=[shop.coffee_usd.pk])
        [rule] = RULES.fetch()  # the first call compiles, in tenant A's schema
        assert rule.product_ids == [shop.coffee_usd.pk]  # array of UUIDs converted as the ORM does
    with schema_context(tenant_b.schema_name):
        assert RULES.fetch() == []


def test_a_marker_that_does_not_reach_the_sql_once_is_refused(db):
    twice = Precompiled(lambda sku: Product.objects.filter(sku=sku) | Product.objects.filter(name=sku), ["\x00m"])
    with pytest.raises(ValueError, match="2 times"):
        twice.fetch("x")
