"""The portal in the company's time zone and the staff member's language: a typed delivery time is that zone's
wall-clock time across a DST change, the page says which zone, and each person reads the portal in en or ms."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django_tenants.utils import tenant_context

from orders.models import Reward
from tenants.tenant_settings import tenant_settings_update
from testsupport.portal import make_staff, portal_client, sign_in

pytestmark = pytest.mark.django_db


def _hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html)[1]


def _send(client, product, deliver_at: str):
    """Preview, then confirm, one email reward delivered at `deliver_at` as typed in the form."""
    page = client.get(f"/send/{product.id}/").content.decode()
    data = {
        "amount": "25.00",
        "recipients": "Ada Lovelace, ada@example.com",
        "delivery_method": "email",
        "deliver_at": deliver_at,
        "idempotency_key": _hidden(page, "idempotency_key"),
    }
    preview = client.post(f"/send/{product.id}/", {**data, "action": "preview"})
    if not preview.context.get("quote"):
        return preview
    return client.post(
        f"/send/{product.id}/",
        {**data, "action": "send", "quote_hash": _hidden(preview.content.decode(), "quote_hash")},
    )


def test_a_typed_delivery_time_is_the_companys_wall_clock_across_a_dst_change(signed_in, funded_a, shop):
    tenant_settings_update(tenant=funded_a, changes={"timezone": "America/New_York"}, actor=None)
    client, _ = signed_in("manager")

    form = client.get(f"/send/{shop.coffee_usd.id}/").content.decode()
    assert "In America/New_York (UTC-05:00). Leave empty to send now." in form
    assert "Times in America/New_York" in form

    # US clocks go forward on 14 March 2027 at 02:00: 9:00 the day before is EST (UTC-5), that day EDT (UTC-4).
    for typed in ("2027-03-13T09:00", "2027-03-14T09:00"):
        assert _send(client, shop.coffee_usd, typed).status_code == 302
    with tenant_context(funded_a):
        times = sorted(Reward.objects.values_list("deliver_at", flat=True))
    assert times == [datetime(2027, 3, 13, 14, 0, tzinfo=UTC), datetime(2027, 3, 14, 13, 0, tzinfo=UTC)]
    # 02:30 that night never happens there: said next to the field, nothing sent
    skipped = _send(client, shop.coffee_usd, "2027-03-14T02:30")
    assert skipped.status_code in (200, 422) and "deliver_at" in skipped.context["form"].errors
    with tenant_context(funded_a):
        assert Reward.objects.count() == 2


def test_each_person_reads_the_portal_in_their_language(signed_in, tenant_a):
    client, _ = signed_in("admin")
    english = client.get("/").content.decode()
    assert '<html lang="en">' in english and ">Dashboard<" in english

    saved = client.post("/account/language/", {"language": "ms"}, follow=True).content.decode()

    assert '<html lang="ms">' in saved and "Bahasa telah disimpan." in saved
    dashboard = client.get("/").content.decode()
    assert ">Papan pemuka<" in dashboard and ">Log keluar<" in dashboard and "Waktu dalam UTC" in dashboard
    assert client.post("/account/language/", {"language": "xx"}).status_code == 422
    # the choice is the person's: a colleague gets the company's default (none here: their browser's)
    make_staff(tenant_a, "colleague@alpha.test", role="viewer")
    colleague = portal_client(tenant_a)
    sign_in(colleague, "colleague@alpha.test")
    assert '<html lang="en">' in colleague.get("/").content.decode()
    colleague.defaults["HTTP_ACCEPT_LANGUAGE"] = "ms-MY,ms;q=0.9"
    assert '<html lang="ms">' in colleague.get("/").content.decode()


def test_admins_set_the_company_zone_and_language_in_settings(signed_in, tenant_a):
    client, _ = signed_in("admin")

    refused = client.post("/settings/company/", {"name": "Alpha", "default_locale": "", "timezone": "Mars/Base"})
    saved = client.post("/settings/company/", {"name": "Alpha Sdn Bhd", "default_locale": "ms",
                                               "timezone": "Asia/Kuala_Lumpur"})  # fmt: skip

    assert refused.status_code == 422 and "timezone" in refused.context["form"].errors
    assert saved.status_code == 302
    tenant_a.refresh_from_db()
    assert (tenant_a.name, tenant_a.default_locale, tenant_a.timezone) == ("Alpha Sdn Bhd", "ms", "Asia/Kuala_Lumpur")
    # the company's default language is now the portal's too, for staff who chose none
    page = client.get("/settings/company/").content.decode()
    assert '<html lang="ms">' in page and "Asia/Kuala_Lumpur (UTC+08:00)" in page
