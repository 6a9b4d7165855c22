"""Languages: which ones the platform speaks (settings.LANGUAGES) and how the language of a reward, a claim page or
a message is chosen — the recipient's, else the program's, else the tenant's, else the browser's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header


def supported_locales() -> list[str]:
    return [code for code, _ in settings.LANGUAGES]


def locale_normalize(value: object) -> str:
    """'ms', 'ms-MY', 'ms_my' → 'ms'; '' when the platform does not speak it (or nothing was given)."""
    text = str(value or "").strip().replace("_", "-").lower()
    if not text or len(text) > 16:
        return ""
    try:
        return translation.get_supported_language_variant(text)
    except LookupError:
        return ""


def locale_choose(*candidates: object) -> str:
    """The first candidate the platform speaks, normalised; '' when none is."""
    for candidate in candidates:
        code = locale_normalize(candidate)
        if code:
            return code
    return ""


def locale_from_accept_language(header: str) -> str:
    """The browser's most preferred language the platform speaks; '' when it asks for none of them."""
    for code, _quality in parse_accept_lang_header(header or ""):
        if code == "*":
            continue
        chosen = locale_normalize(code)
        if chosen:
            return chosen
    return ""


@contextmanager
def language(code: str) -> Iterator[str]:
    """Render in `code` (or the default language when it is ''), restoring the caller's language after."""
    chosen = locale_normalize(code) or settings.LANGUAGE_CODE
    with translation.override(chosen):
        yield chosen
