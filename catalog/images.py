"""Logos the platform stores and serves itself (brands in the catalogue, tenants' programs), and the lettered
tile shown where there is none.

Why stored: a logo on someone else's host breaks (moved, hot-link protection, a dev server's port) and tells
that host who opened a gift and when. So uploads are checked and kept in the database (StoredImage), and served
from /media/logos/<key> with a year of caching (the key is the SHA-256 of the bytes: a URL never changes
meaning). What is accepted: PNG, JPEG or WebP, at most LOGO_MAX_BYTES and LOGO_MAX_SIDE pixels a side, decoded
by Pillow to prove it is the image it claims to be. SVG is refused rather than sanitised: an SVG is a document
that can carry scripts and external references, and a logo needs none of that.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from core.errors import ApplicationError

from .models import Brand, StoredImage

LOGO_MAX_BYTES = 512 * 1024  # a crisp 512 px PNG logo is well under 100 KB
LOGO_MAX_SIDE = 2048
FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}
LOGO_PATH = "/media/logos/"
# Paths this app draws itself (catalog.views.demo_brand_logo): shown as paths, whatever host the URL named.
APP_DRAWN_PREFIX = "/demo/brand-logos/"
# Tile colours with white text readable on each (WCAG AA for large text).
PALETTE = ("#4f46e5", "#0f766e", "#b45309", "#be123c", "#1d4ed8", "#7c3aed", "#047857", "#9d174d")


def _refuse(message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_image", status=422, errors={"logo": [message]})


def image_store(*, data: bytes) -> StoredImage:
    """Check an uploaded logo and keep it (the same bytes twice are stored once); `invalid_image` (422) else."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise _refuse(_("The file is empty."))
    if len(data) > LOGO_MAX_BYTES:
        raise _refuse(_("The logo is larger than 512 KB; upload a smaller PNG, JPEG or WebP."))
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype")) or b"<svg" in head:
        raise _refuse(_("SVG logos are not accepted (an SVG can carry scripts): upload a PNG, JPEG or WebP."))
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
            width, height = image.size
            if kind not in FORMATS:
                raise _refuse(_("Upload a PNG, JPEG or WebP image."))
            if width > LOGO_MAX_SIDE or height > LOGO_MAX_SIDE:
                raise _refuse(_("The logo may be at most 2048 pixels wide and high."))
            image.verify()  # the whole file decodes: not a truncated or disguised one
    except Image.DecompressionBombError:  # Pillow refuses to open > 2 x MAX_IMAGE_PIXELS: far over our limit
        raise _refuse(_("The logo may be at most 2048 pixels wide and high.")) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise _refuse(_("This file is not an image we can read: upload a PNG, JPEG or WebP.")) from None
    content_type, extension = FORMATS[kind]
    key = f"{hashlib.sha256(data).hexdigest()}.{extension}"
    stored, _created = StoredImage.objects.get_or_create(
        key=key, defaults={"content_type": content_type, "data": data, "width": width, "height": height}
    )
    return stored


def image_get(*, key: str) -> StoredImage | None:
    return StoredImage.objects.filter(key=key).first()


def logo_path(key: str) -> str:
    return f"{LOGO_PATH}{key}" if key else ""


def absolute(path: str) -> str:
    """A path of this app as a full URL (emails are read far from the app's host)."""
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}" if path.startswith("/") else path


def brand_logo_set(*, brand: Brand, data: bytes) -> Brand:
    """Store an uploaded logo for a catalogue brand (the operator's console or `brand_logo_set`)."""
    brand.logo = image_store(data=data)
    brand.save(update_fields=["logo"])
    return brand


def brand_logo_src(brand: Brand | None) -> str:
    """Where a brand's logo is served by this app, as a path; "" when it has none (show the lettered tile)."""
    if brand is None:
        return ""
    if brand.logo_id:
        return logo_path(str(brand.logo_id))
    path = urlsplit(brand.logo_url or "").path
    return path if path.startswith(APP_DRAWN_PREFIX) else ""


def initials(name: str) -> str:
    """Up to two letters for a lettered logo tile: "Lumen Coffee" → "LC"."""
    words = [word for word in (name or "").replace("&", " ").split() if word[:1].isalnum()]
    return "".join(word[0] for word in words[:2]).upper() or "?"


def tile_colour(seed: str) -> str:
    return PALETTE[hashlib.sha256(seed.encode()).digest()[0] % len(PALETTE)]


def logo_context(src: str, name: str) -> dict[str, Any]:
    """What the `logo` template tag draws: the image, or the name's initials on a colour of its own."""
    return {"src": src, "name": name, "initials": initials(name), "colour": tile_colour(name or "?")}
