"""URL configuration: health, the API (tenant from credential), docs, admin (operator, public schema), portal."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.tenant_settings import TenantSettingsApi
from catalog.views import demo_brand_logo, stored_logo
from core.health import healthz, readyz
from fulfillment import views_claim
from observability.views import metrics
from points import page as points_page
from tenants.apis import TokenApi

api_v1: list[URLPattern | URLResolver] = [
    path("tokens", TokenApi.as_view(), name="token-create"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("tenant", TenantSettingsApi.as_view(), name="tenant-settings"),
    path("", include("funds.urls")),
    path("", include("webhooks.urls")),
    path("", include("catalog.urls")),
    path("", include("programs.urls")),
    path("", include("people.urls")),
    path("", include("automations.urls")),
    path("", include("orders.urls")),
    path("", include("fulfillment.urls")),
    path("", include("batches.urls")),
    path("", include("points.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),  # Prometheus; token or network allowlist (observability/views.py)
    path("api/v1/", include(api_v1)),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("anymail/", include("anymail.urls")),  # email provider tracking webhooks (bounces)
    path("console/", include("portal.console.urls")),  # operator console, public host only
    path("demo/brand-logos/<slug:slug>.svg", demo_brand_logo, name="demo-brand-logo"),
    # Uploaded logos (catalog/images.py), on every host: claim pages, the portal and emails show them.
    re_path(r"^media/logos/(?P<key>[0-9a-f]{64}\.(?:png|jpg|webp))$", stored_logo, name="stored-logo"),
    # Recipient claim pages (public host; the tenant comes from the token): fulfillment/claim_page.py
    path("r/<str:token>", views_claim.claim_page, name="claim-page"),
    # The open pixel of reward emails (fulfillment/engagement.py): public host, the tenant comes from the token.
    path("e/<str:token>.gif", views_claim.email_open_pixel, name="email-open-pixel"),
    path("c/<str:token>", views_claim.email_click, name="email-click"),
    path("r/<str:token>/reveal", views_claim.claim_reveal_view, name="claim-reveal"),
    path("r/<str:token>/verify/send", views_claim.claim_verify_send_view, name="claim-verify-send"),
    path("r/<str:token>/verify", views_claim.claim_verify_view, name="claim-verify"),
    path("r/<str:token>/choose", views_claim.claim_choose_view, name="claim-choose"),
    path("r/<str:token>/address", views_claim.claim_address_view, name="claim-address"),
    # The recipients' points page, on tenant hosts (the tenant comes from the host): points/page.py
    path("p/", points_page.points_home, name="points-page"),
    path("p/login/<str:token>", points_page.points_login, name="points-login"),
    path("p/logout", points_page.points_logout, name="points-logout"),
    path("p/redeem", points_page.points_redeem_view, name="points-redeem"),
    path("p/done", points_page.points_redeemed, name="points-redeemed"),
    # The staff portal, on tenant hosts only (its views answer 404 on the public host): portal/urls.py
    path("", include("portal.urls")),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
