"""Security headers on the API, the claim page, the docs and the admin; HSTS and secure cookies in production."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django_tenants.utils import tenant_context

from core.middleware_security import DEFAULT_POLICY

ROOT = Path(__file__).resolve().parents[2]


def _assert_security_headers(response, what: str) -> None:
    assert response["X-Content-Type-Options"] == "nosniff", what
    assert response["X-Frame-Options"] == "DENY", what
    assert response["Referrer-Policy"] == "same-origin", what
    policy = response["Content-Security-Policy"]
    assert policy == settings.CONTENT_SECURITY_POLICY, what
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, what


def _link_claim_token(api, shop, tenant) -> str:
    from fulfillment.services import reward_fulfil
    from funds.services import funds_deposit

    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100.00")
    created = api.post(
        "/api/v1/orders",
        {
            "type": "link",
            "rewards": [
                {
                    "product_id": str(shop.coffee_usd.id),
                    "amount": "25.00",
                    "delivery_method": "link",
                    "recipient": {"name": "Ada"},
                }
            ],
        },
    ).json()
    with tenant_context(tenant):
        reward_fulfil(reward_id=created["rewards"][0]["id"])
    return created["rewards"][0]["claim_url"].rsplit("/r/", 1)[1]


def test_the_default_policy_is_the_strict_one():
    assert settings.CONTENT_SECURITY_POLICY == DEFAULT_POLICY
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "base-uri 'self'", "form-action 'self'"):
        assert directive in DEFAULT_POLICY


def test_api_responses_carry_the_headers(api_a):
    _assert_security_headers(api_a.get("/api/v1/balances"), "GET /api/v1/balances")
    _assert_security_headers(api_a.get("/api/v1/orders/00000000-0000-0000-0000-000000000000"), "API 404")
    _assert_security_headers(Client().get("/api/v1/balances", HTTP_AUTHORIZATION="Bearer nope"), "API 401")
    _assert_security_headers(Client().get("/api/v1/schema/"), "schema")


def test_claim_pages_carry_the_headers_and_load_nothing_from_elsewhere(tenant_a, api_a, shop):
    token = _link_claim_token(api_a, shop, tenant_a)
    page = Client().get(f"/r/{token}")
    assert page.status_code == 200
    _assert_security_headers(page, "claim page")
    _assert_security_headers(Client().get("/r/" + "x" * 43), "dead claim link")
    html = page.content.decode()
    external = re.findall(r"""(?:src|href|action)=["'](https?:)?//""", html)
    assert not external, "the claim page would load or post to another origin (CSP refuses it)"
    for asset in re.findall(r"""(?:src|href)=["'](/static/[^"']+)""", html):
        assert finders.find(asset.removeprefix("/static/")), asset
    revealed = Client().post(f"/r/{token}/reveal")
    assert revealed.status_code == 200
    _assert_security_headers(revealed, "revealed claim page")
    assert "data:" not in revealed["Content-Security-Policy"].split("img-src", 1)[0]  # data: only for images


def test_admin_and_docs_carry_the_headers(db):
    _assert_security_headers(Client().get("/admin/login/"), "admin login")
    docs = Client().get("/api/docs/")
    assert docs.status_code == 200
    _assert_security_headers(docs, "docs")
    html = docs.content.decode()
    scripts = re.findall(r"""<script[^>]+src=["']([^"']+)""", html)
    styles = re.findall(r"""<link[^>]+href=["']([^"']+)""", html)
    assert scripts and all(src.startswith("/static/") for src in scripts + styles), scripts + styles
    for asset in scripts + styles:
        assert finders.find(asset.removeprefix("/static/")), asset  # served by WhiteNoise after collectstatic


@pytest.fixture
def static_from_finders(settings):
    """WhiteNoise serves app static files without collectstatic (set before live_http builds the app)."""
    settings.WHITENOISE_USE_FINDERS = True


def test_docs_page_renders_in_a_real_browser_under_the_policy(static_from_finders, live_http):
    """Swagger UI (drf-spectacular-sidecar assets, served locally) renders with no CSP violation."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip("no /usr/bin/chromium")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop shares the test thread
    violations: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            response = page.goto(f"{live_http}/api/docs/")
            assert response.status == 200
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            page.wait_for_selector(".swagger-ui .information-container", timeout=20_000)
            page.wait_for_selector(".opblock", timeout=20_000)  # the schema loaded and rendered operations
        finally:
            browser.close()
    assert violations == []


def test_production_settings_turn_on_hsts_secure_cookies_and_https(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "rewards_portal.settings.production",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgresql://rewards:pw@127.0.0.1:1/rewards",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "ALLOWED_HOSTS": "rewards.example.com",
        "ENCRYPTION_KEYS": "dGVzdC1vbmx5LWluc2VjdXJlLWtleS0zMi1ieXRlcyE=",
        "HOME": str(tmp_path),
    }
    script = (
        "import json, django; from django.conf import settings; django.setup(); print(json.dumps({k: getattr("
        "settings, k) for k in ('SECURE_HSTS_SECONDS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SECURE_SSL_REDIRECT', 'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS', 'CONTENT_SECURITY_POLICY', "
        "'SESSION_COOKIE_HTTPONLY', 'DEBUG', 'MIDDLEWARE')}))"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["SECURE_HSTS_SECONDS"] > 0
    assert loaded["SESSION_COOKIE_SECURE"] is True and loaded["CSRF_COOKIE_SECURE"] is True
    assert loaded["SECURE_SSL_REDIRECT"] is True
    assert loaded["SECURE_CONTENT_TYPE_NOSNIFF"] is True and loaded["X_FRAME_OPTIONS"] == "DENY"
    assert loaded["SESSION_COOKIE_HTTPONLY"] is True and loaded["DEBUG"] is False
    assert loaded["CONTENT_SECURITY_POLICY"] == DEFAULT_POLICY
    assert "core.middleware_security.ContentSecurityPolicyMiddleware" in loaded["MIDDLEWARE"]
