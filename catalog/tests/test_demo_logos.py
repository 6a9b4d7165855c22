"""The demo brands' logos are drawn by the app: the claim page never shows a broken image or calls elsewhere."""

from django.core.management import call_command
from django.test import Client

from catalog.models import Brand


def test_demo_catalogue_logos_are_served_by_the_app(db, settings):
    settings.PUBLIC_BASE_URL = "http://localhost:8000"
    call_command("catalog_load_demo")
    brand = Brand.objects.get(slug="maple-and-pine")
    assert brand.logo_url == "http://localhost:8000/demo/brand-logos/maple-and-pine.svg"
    assert not Brand.objects.exclude(logo_url__startswith="http://localhost:8000/demo/brand-logos/").exists()

    response = Client(HTTP_HOST="localhost").get("/demo/brand-logos/maple-and-pine.svg")
    assert response.status_code == 200 and response["Content-Type"].startswith("image/svg+xml")
    body = response.content.decode()
    assert body.startswith("<svg") and ">MP</text>" in body and 'aria-label="Maple &amp; Pine Home"' in body
    assert Client(HTTP_HOST="localhost").get("/demo/brand-logos/no-such-brand.svg").status_code == 404
