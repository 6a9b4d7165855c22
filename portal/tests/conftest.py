"""Portal test fixtures: staff users, a Django client on a tenant host, and a real headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client
from django_tenants.utils import tenant_context

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct-horse-battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def make_staff(tenant, email: str, role: str = "admin", password: str = PASSWORD):
    from accounts.services import staff_create

    with tenant_context(tenant):
        user, _ = staff_create(email=email, role=role, password=password)
    return user


def host_of(tenant) -> str:
    return f"{tenant.slug}.localhost"


def portal_client(tenant) -> Client:
    return Client(HTTP_HOST=host_of(tenant))


def sign_in(client: Client, email: str, password: str = PASSWORD):
    return client.post("/login/", {"email": email, "password": password})


@pytest.fixture
def staff(tenant_a):
    """staff(role="admin", email=None, tenant=tenant_a) -> a user in that tenant's live schema."""
    counter = iter(range(1000))

    def factory(role: str = "admin", email: str | None = None, tenant=None):
        return make_staff(tenant or tenant_a, email or f"{role}{next(counter)}@alpha.test", role)

    return factory


@pytest.fixture
def client_a(tenant_a) -> Client:
    return portal_client(tenant_a)


@pytest.fixture
def signed_in(client_a, staff):
    """signed_in(role) -> (client, user): a Django client signed in on tenant A's host."""

    def factory(role: str = "admin"):
        user = staff(role)
        response = sign_in(client_a, user.email)
        assert response.status_code == 302, response.content
        return client_a, user

    return factory


@pytest.fixture
def static_from_app_dirs(settings) -> None:
    """Tests run without collectstatic: WhiteNoise (built with the live server) serves app static files directly."""
    settings.WHITENOISE_USE_FINDERS = True


@pytest.fixture
def browser_page(static_from_app_dirs, live_http, committed_tenant) -> Iterator:
    """A Playwright page in Debian's headless Chromium, its base URL on the committed tenant's portal host.

    The host is `<slug>.localhost:<port>`: Chromium resolves every *.localhost name to loopback itself.
    """
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) for browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    port = live_http.rsplit(":", 1)[1]
    # Playwright's sync API keeps an event loop in this thread; Django would refuse the test's own ORM calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(
                base_url=f"http://{committed_tenant.slug}.localhost:{port}", viewport={"width": 1280, "height": 800}
            )
            context.set_default_timeout(15_000)
            page = context.new_page()
            try:
                yield page
            finally:
                context.close()
                browser.close()
                # ORM calls made while Playwright's loop was current used their own connection: close it,
                # or the test database cannot be dropped at the end of the run.
                connections.close_all()
    finally:
        connections.close_all()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
