"""The translation check `make lint` runs (scripts/messages.py check): it must fail on what a Malay reader would
see in English — bare text in a recipient template, a marked string with no Malay, a translation that drops a
placeholder — and pass on the repository as it is."""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from core import catalogues

PAGE = catalogues.ROOT / "templates" / "claim" / "page.html"


def _catalogue(tmp_path: Path, entries: dict[str, str]) -> Path:
    """A locale dir whose ms catalogue holds `entries` (msgid → msgstr)."""
    catalog = Catalog(locale="ms", domain="django", fuzzy=False)
    for msgid, msgstr in entries.items():
        catalog.add(msgid, msgstr)
    path = tmp_path / "locale" / "ms" / "LC_MESSAGES" / "django.po"
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        write_po(handle, catalog)
    return tmp_path / "locale"


def test_the_recipient_templates_have_no_bare_text_now():
    assert catalogues.recipient_template_problems() == []


def test_bare_text_added_to_the_claim_page_fails_the_check():
    source = PAGE.read_text().replace(
        "{% block content %}", '{% block content %}\n<p>Scan me at the till</p><img src="/x.png" alt="Brand logo">', 1
    )

    problems = [str(problem) for problem in catalogues.template_text_problems(PAGE, source=source)]

    assert any("Scan me at the till" in problem and "page.html:5" in problem for problem in problems), problems
    assert any("Brand logo" in problem for problem in problems), problems


def test_text_inside_translate_tags_and_variables_passes():
    source = (
        '{% load i18n %}<p class="x">{% translate "Hello" %} {{ name }} · —</p>'
        "{% blocktranslate with n=name %}Hi {{ n }}{% endblocktranslate %}"
        '<img alt="{% translate "Logo" %}"><script>var words = "not read";</script>'
    )
    assert catalogues.template_text_problems(PAGE, source=source) == []


def test_a_marked_string_without_malay_fails_the_check(tmp_path):
    template_dir = tmp_path / "src" / "templates" / "claim"
    template_dir.mkdir(parents=True)
    (template_dir / "new.html").write_text('{% load i18n %}<p>{% translate "Your gift has a twin" %}</p>')
    extracted = catalogues.extract_messages(tmp_path / "src")
    assert [message.id for message in extracted if message.id] == ["Your gift has a twin"]

    missing = catalogues.catalogue_problems(extracted, ["ms"], locale_dir=_catalogue(tmp_path / "a", {}))
    untranslated = catalogues.catalogue_problems(
        extracted, ["ms"], locale_dir=_catalogue(tmp_path / "b", {"Your gift has a twin": ""})
    )
    translated = catalogues.catalogue_problems(
        extracted, ["ms"], locale_dir=_catalogue(tmp_path / "c", {"Your gift has a twin": "Hadiah anda ada kembar"})
    )

    assert len(missing) == 1 and "is not in the catalogue" in str(missing[0])
    assert len(untranslated) == 1 and "has no ms translation" in str(untranslated[0])
    assert translated == []


def test_a_translation_that_loses_a_placeholder_fails_the_check(tmp_path):
    extracted = Catalog(fuzzy=False)
    extracted.add("%(company)s sent you a gift", locations=[("templates/emails/reward.html", 1)])

    problems = catalogues.catalogue_problems(
        extracted, ["ms"], locale_dir=_catalogue(tmp_path, {"%(company)s sent you a gift": "Anda menerima hadiah"})
    )

    assert len(problems) == 1 and "other placeholders" in str(problems[0])


def test_compiling_writes_a_catalogue_django_reads(tmp_path):
    from django.utils import translation

    locale_dir = _catalogue(tmp_path, {"Reveal code": "Tunjukkan kod"})
    [written] = catalogues.compile_catalogues(locale_dir=locale_dir)
    assert written.suffix == ".mo" and catalogues.compile_catalogues(locale_dir=locale_dir) == []  # unchanged: kept
    # and the project's own compiled Malay catalogue is what Django serves
    with translation.override("ms"):
        assert translation.gettext("Reveal code") == "Tunjukkan kod"
