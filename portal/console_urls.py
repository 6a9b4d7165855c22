"""The operator console on the public host: portal/console_views.py."""

from django.urls import path

from . import console_views as views

app_name = "console"

urlpatterns = [
    path("", views.home_view, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("tenants/", views.tenants_view, name="tenants"),
    path("tenants/<slug:slug>/status", views.tenant_status_view, name="tenant_status"),
    path("deposits/", views.deposits_view, name="deposits"),
    path(
        "deposits/<str:schema>/<uuid:request_id>/<str:action>",
        views.deposit_resolve_view,
        name="deposit_resolve",
    ),
    path("catalog/", views.catalog_view, name="catalog"),
    path("health/", views.health_view, name="health"),
]
