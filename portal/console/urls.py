"""The operator console's URLs (mounted at /console/ on the public host)."""

from django.urls import path

from . import auth, catalog, deposits, health, tenants

app_name = "console"

urlpatterns = [
    path("", tenants.home_view, name="home"),
    path("login/", auth.login_view, name="login"),
    path("login/two-factor/", auth.login_two_factor_view, name="login_two_factor"),
    path("two-factor/", auth.two_factor_view, name="two_factor"),
    path("logout/", auth.logout_view, name="logout"),
    path("language/", auth.language_view, name="language"),
    path("tenants/", tenants.tenants_view, name="tenants"),
    path("tenants/<slug:slug>/status", tenants.tenant_status_view, name="tenant_status"),
    path("deposits/", deposits.deposits_view, name="deposits"),
    path("deposits/instructions/", deposits.deposit_instructions_view, name="deposit_instructions"),
    path(
        "deposits/<str:schema>/<uuid:request_id>/<str:action>",
        deposits.deposit_resolve_view,
        name="deposit_resolve",
    ),
    path("catalog/", catalog.catalog_view, name="catalog"),
    path("health/", health.health_view, name="health"),
]
