"""Logos stored and served by the platform: what uploads are accepted, how they are served (cached for ever, never
sniffed), and the lettered tile wherever a brand has none, so no page shows a broken or hot-linked image."""

import io

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from catalog.images import LOGO_MAX_BYTES, brand_logo_set, image_store
from catalog.models import Brand, StoredImage
from core.errors import ApplicationError
from fulfillment.services import reward_fulfil
from testsupport.orders import link_order


def png(width=64, height=32, colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_png_is_stored_once_and_served_with_long_caching(db):
    data = png()
    first = image_store(data=data)
    again = image_store(data=data)
    assert first.key == again.key and first.key.endswith(".png") and StoredImage.objects.count() == 1
    assert (first.width, first.height, first.content_type) == (64, 32, "image/png")

    response = Client(HTTP_HOST="localhost").get(f"/media/logos/{first.key}")

    assert response.status_code == 200 and response.content == data
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    cached = Client(HTTP_HOST="localhost").get(f"/media/logos/{first.key}", HTTP_IF_NONE_MATCH=response["ETag"])
    assert cached.status_code == 304 and cached.content == b""
    assert Client(HTTP_HOST="localhost").get(f"/media/logos/{'0' * 64}.png").status_code == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "SVG"),
        (b"  <svg onload='alert(1)'></svg>", "SVG"),
        (b"GIF89a" + b"\x00" * 40, "not an image we can read"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "not an image we can read"),
        (b"x" * (LOGO_MAX_BYTES + 1), "512 KB"),
        (b"", "empty"),
    ],
)
def test_svg_oversized_and_disguised_files_are_refused(db, data, message):
    with pytest.raises(ApplicationError) as refused:
        image_store(data=data)
    assert refused.value.code == "invalid_image" and message in refused.value.detail
    assert not StoredImage.objects.exists()


def test_too_many_pixels_and_other_formats_are_refused(db):
    import struct
    import zlib

    from PIL import Image

    with pytest.raises(ApplicationError, match="2048 pixels"):
        image_store(data=png(3000, 10))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    # A 20,000 px square (a decompression bomb to Pillow) is too big, not unreadable (review: it said unreadable).
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(ApplicationError, match="2048 pixels"):
        image_store(data=bomb)
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, format="GIF")
    with pytest.raises(ApplicationError, match="PNG, JPEG or WebP"):
        image_store(data=gif.getvalue())


def test_claim_page_shows_the_uploaded_logo_or_the_brands_initials_never_a_hot_link(api_a, funded_a, shop):
    Brand.objects.filter(pk=shop.coffee_usd.brand_id).update(logo_url="https://img.example/lumen.png")
    created = api_a.post("/api/v1/orders", link_order(shop.coffee_usd)).json()["rewards"][0]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=created["id"])
    token = created["claim_url"].rsplit("/r/", 1)[1]

    page = Client(HTTP_HOST="localhost").get(f"/r/{token}").content.decode()
    assert "img.example" not in page
    assert 'class="logo logo-tile" role="img" aria-label="Lumen Coffee"' in page and ">LC</span>" in page

    brand = Brand.objects.get(pk=shop.coffee_usd.brand_id)
    brand_logo_set(brand=brand, data=png())
    page = Client(HTTP_HOST="localhost").get(f"/r/{token}").content.decode()
    assert f'<img class="logo" src="/media/logos/{brand.logo_id}"' in page and "logo-tile" not in page


def test_api_upload_gives_an_id_a_program_can_use(api_a, tenant_a, make_api_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = api_a._client.post("/api/v1/logos", {"file": SimpleUploadedFile("l.png", png(), "image/png")})
    assert upload.status_code == 201, upload.content
    body = upload.json()
    assert body["url"].endswith(f"/media/logos/{body['id']}") and (body["width"], body["height"]) == (64, 32)
    svg = SimpleUploadedFile("l.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")
    refused = api_a._client.post("/api/v1/logos", {"file": svg})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_image"
    reader = make_api_client(tenant_a, scopes=["read"])
    assert (
        reader._client.post("/api/v1/logos", {"file": SimpleUploadedFile("l.png", png(), "image/png")}).status_code
        == 403
    )

    created = api_a.post("/api/v1/programs", {"slug": "branded", "name": "Branded", "branding": {"logo": body["id"]}})
    assert created.status_code == 201 and created.json()["branding"]["logo_url"] == body["url"]
    unknown = api_a.post("/api/v1/programs", {"slug": "ghost", "name": "Ghost", "branding": {"logo": "nope.png"}})
    assert unknown.status_code == 422 and "branding" in unknown.json()["errors"]
