"""Portal test fixtures: staff users, a Django client on a tenant host, and a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from testsupport.browser import chromium_page
from testsupport.portal import make_staff, portal_client, sign_in


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
    port = live_http.rsplit(":", 1)[1]
    with chromium_page(f"http://{committed_tenant.slug}.localhost:{port}") as page:
        yield page
