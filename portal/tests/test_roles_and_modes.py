"""Roles decide which pages open (403 with a readable page); the live/sandbox switch changes the data."""

import pytest
from django_tenants.utils import tenant_context

from funds.services import funds_deposit
from portal.permissions import ROLE_PERMISSIONS, Perm, has_perm

PAGES = {"/": Perm.VIEW, "/send/": Perm.SEND, "/bulk/": Perm.BULK, "/orders/": Perm.VIEW, "/funds/": Perm.FUNDS,
         "/developers/": Perm.DEVELOPERS, "/team/": Perm.TEAM, "/audit/": Perm.AUDIT, "/reports/": Perm.REPORTS,
         "/search/": Perm.VIEW}  # fmt: skip


@pytest.mark.parametrize("role", ["admin", "manager", "finance", "viewer"])
def test_pages_open_by_role(signed_in, role):
    client, user = signed_in(role)
    for path, perm in PAGES.items():
        response = client.get(path)
        expected = 200 if perm in ROLE_PERMISSIONS[role] else 403
        assert response.status_code == expected, (role, path, response.status_code)
        if expected == 403:
            text = response.content.decode()
            assert "have access to this page" in text and user.get_role_display() in text


def test_viewer_gets_a_readable_403_on_team_and_no_team_link(signed_in):
    client, _ = signed_in("viewer")
    response = client.get("/team/")
    assert response.status_code == 403
    assert "Ask an admin of Alpha Corp" in response.content.decode()
    nav = client.get("/").content.decode()
    assert 'href="/team/"' not in nav and 'href="/funds/"' not in nav and 'href="/send/"' not in nav
    assert 'href="/orders/"' in nav


def test_permission_map():
    class U:
        is_authenticated = True
        is_active = True

    user = U()
    user.role = "manager"
    assert has_perm(user, Perm.SEND) and has_perm(user, Perm.BULK) and not has_perm(user, Perm.FUNDS)
    user.role = "finance"
    assert has_perm(user, Perm.FUNDS) and has_perm(user, Perm.VIEW) and not has_perm(user, Perm.SEND)
    user.is_active = False
    assert not has_perm(user, Perm.VIEW)


def test_sandbox_switch_shows_the_twin_schema_and_keeps_the_session(signed_in, funded_a):
    with tenant_context(funded_a.sandbox):
        funds_deposit(currency="USD", amount="77.00")
    client, _ = signed_in("viewer")
    live = client.get("/").content.decode()
    assert "1,000.00" in live and 'data-testid="sandbox-banner"' not in live
    response = client.post("/mode/", {"mode": "sandbox", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    sandbox = client.get("/").content.decode()  # still signed in: the session was saved in the live schema
    assert "77.00" in sandbox and "1,000.00" not in sandbox and 'data-testid="sandbox-banner"' in sandbox
    assert client.get("/").status_code == 200
    client.post("/mode/", {"mode": "live"})
    assert "1,000.00" in client.get("/").content.decode()


def test_team_page_in_sandbox_mode_still_shows_live_staff(signed_in):
    client, user = signed_in("admin")
    client.post("/mode/", {"mode": "sandbox"})
    page = client.get("/team/").content.decode()
    assert user.email in page and "shared by live and sandbox" in page


def test_mode_switch_ignores_unsafe_next_and_bad_modes(signed_in):
    client, _ = signed_in("viewer")
    assert client.post("/mode/", {"mode": "sandbox", "next": "https://evil.test/"})["Location"] == "/"
    client.post("/mode/", {"mode": "production"})
    assert 'data-testid="sandbox-banner"' in client.get("/").content.decode()  # unchanged: still sandbox


def test_mode_switch_needs_a_signed_in_user(client_a):
    response = client_a.post("/mode/", {"mode": "sandbox"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_role_required_decorator_runs_function_views_in_the_sandbox(rf, signed_in, funded_a):
    from django.db import connection

    from portal.mixins import MODE_SESSION_KEY, role_required

    seen = []

    @role_required(Perm.FUNDS)
    def view(request):
        from django.http import HttpResponse

        seen.append(connection.schema_name)
        return HttpResponse("ok")

    client, user = signed_in("finance")
    request = rf.get("/x")
    request.tenant = funded_a
    request.user = user
    with tenant_context(funded_a):
        request.session = client.session
        request.session[MODE_SESSION_KEY] = "sandbox"
        connection.set_tenant(funded_a)
        assert view(request).status_code == 200
        assert connection.schema_name == funded_a.schema_name  # switched back after the view
    assert seen == [funded_a.sandbox.schema_name]
