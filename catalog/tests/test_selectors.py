from django_tenants.utils import tenant_context

from catalog.selectors import product_list_for_tenant


def test_smoke(catalog, tenant_a):
    with tenant_context(tenant_a):
        assert product_list_for_tenant().count() == 6
