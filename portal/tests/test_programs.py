"""The Programs page: create and edit a program, refusals next to their fields, managers yes, viewers no."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from programs.models import Program

FORM = {"slug": "kudos", "name": "Kudos", "budget_period": "none", "default_locale": "ms", "points_enabled": "on",
        "points_name": "Kudos", "points_per_unit": "100", "points_currency": "USD", "points_expire_after_days": "365",
        "points_self_redeem": "on"}  # fmt: skip


def test_manager_creates_and_edits_a_program(signed_in, tenant_a):
    client, _ = signed_in("manager")
    response = client.post("/programs/new/", FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    listing = client.get("/programs/").content.decode()
    assert "Kudos" in listing and "100 = 1 USD" in listing
    page = client.get("/programs/kudos/").content.decode()
    assert 'name="points_per_unit"' in page and "disabled" in page  # the rate is fixed once set
    response = client.post("/programs/kudos/", {**FORM, "name": "Kudos 2026", "budget_period": "monthly",
                                                "budget_amount": "500", "budget_currency": "USD"})  # fmt: skip
    assert response.status_code == 302
    with tenant_context(tenant_a):
        program = Program.objects.get(slug="kudos")
    assert (program.name, program.budget_amount, program.points_per_unit, program.default_locale) == (
        "Kudos 2026", 500, 100, "ms")  # fmt: skip


def test_refusals_are_shown_next_to_their_fields(signed_in, tenant_a):
    client, _ = signed_in("admin")
    response = client.post("/programs/new/", {**FORM, "slug": "Bad slug", "points_per_unit": "3",
                                              "budget_period": "monthly"})  # fmt: skip
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="id_slug_error"' in page and 'id="id_points_per_unit_error"' in page
    assert 'id="id_budget_amount_error"' in page
    with tenant_context(tenant_a):
        assert not Program.objects.exists()


def test_viewers_cannot_open_programs(signed_in):
    client, _ = signed_in("viewer")
    assert client.get("/programs/").status_code == 403
    assert client.post("/programs/new/", FORM).status_code == 403


def test_claim_link_settings_are_set_on_the_program_page(signed_in, tenant_a):
    client, _ = signed_in("admin")
    claim = {"claim_days": "60", "on_expiry": "keep", "reminders_after_days": "7, 3",
             "reminders_before_expiry_days": "7", "verification": "email"}  # fmt: skip

    bad = client.post("/programs/new/", {**FORM, **claim, "reminders_after_days": "soon"})
    assert bad.status_code == 200 and 'id="id_reminders_after_days_error"' in bad.content.decode()
    assert client.post("/programs/new/", {**FORM, **claim}).status_code == 302

    with tenant_context(tenant_a):
        program = Program.objects.get(slug="kudos")
    assert (program.claim_days, program.on_expiry, program.claim_verification) == (60, "keep", "email")
    assert program.reminders == {"after_days": [3, 7], "before_expiry_days": [7]}
    page = client.get("/programs/kudos/").content.decode()
    assert 'value="3, 7"' in page and 'value="60"' in page


def test_program_logo_upload_and_branded_email_previews_in_each_language(signed_in, tenant_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.tests.test_logos import png

    client, _ = signed_in("admin")
    form = {**FORM, "sender_name": "Acme People Team", "primary_color": "#0F766E"}
    svg = SimpleUploadedFile("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", content_type="image/svg+xml")
    refused = client.post("/programs/new/", {**form, "logo": svg})
    assert refused.status_code == 200 and 'id="id_logo_error"' in refused.content.decode()

    logo = SimpleUploadedFile("logo.png", png(), content_type="image/png")
    assert client.post("/programs/new/", {**form, "logo": logo}).status_code == 302
    with tenant_context(tenant_a):
        key = Program.objects.get(slug="kudos").branding["logo"]

    page = client.get("/programs/kudos/").content.decode()
    assert f'src="/media/logos/{key}"' in page
    # The previews load their logo from the portal's own host, as the page does: the email's absolute URL
    # (PUBLIC_BASE_URL, another origin) was refused by the page's CSP over http (review: a broken image).
    assert f"src=&quot;/media/logos/{key}&quot;" in page.split('id="email-previews-heading"', 1)[1]
    with tenant_context(tenant_a):  # while the email itself carries the full URL: mail is read anywhere
        from decimal import Decimal

        from django.conf import settings

        from core import crypto
        from fulfillment.delivery import reward_email_context
        from orders.models import Order, Reward

        sent = Reward(order=Order(type="link", program=Program.objects.get(slug="kudos")), product_snapshot={},
                      amount=Decimal("5"), currency="USD", claim_token_encrypted=crypto.encrypt("a-link"))  # fmt: skip
        assert reward_email_context(sent)["logo_url"] == f"{settings.PUBLIC_BASE_URL}/media/logos/{key}"
    assert 'data-testid="email-subject-en">Acme People Team sent you a Lumen Coffee gift<' in page
    assert 'data-testid="email-subject-ms">Acme People Team menghantar hadiah Lumen Coffee kepada anda<' in page
    assert f"/media/logos/{key}" in page.split('data-testid="email-preview-ms"')[0].rsplit("srcdoc=", 1)[1]
    assert "#0F766E" in page

    # saving without a new file keeps the logo; "remove" drops it
    assert client.post("/programs/kudos/", form).status_code == 302
    with tenant_context(tenant_a):
        assert Program.objects.get(slug="kudos").branding["logo"] == key
    assert client.post("/programs/kudos/", {**form, "remove_logo": "on"}).status_code == 302
    with tenant_context(tenant_a):
        assert "logo" not in Program.objects.get(slug="kudos").branding
