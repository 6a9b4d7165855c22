"""The message catalogues (locale/<language>/LC_MESSAGES/django.po) without GNU gettext: extracting the strings
marked for translation (Babel's Python extractor, over Django's own template-to-gettext translation), compiling
.po to .mo (Babel), and the lint check that no string, and no recipient-facing template text, is left untranslated.

Imports neither Django settings nor the apps: `scripts/venv.sh` compiles with it before any server or test starts,
and the Docker build compiles with it before the image is sealed.
"""

from __future__ import annotations

import html
import io
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "locale"
DOMAIN = "django"
# The languages with a catalogue. `en` is the source language (its msgstr stay empty: gettext falls back to
# the msgid); every other one must translate every message.
LANGUAGES = ("en", "ms")
SOURCE_LANGUAGE = "en"
# What the recipient sees (claim pages, emails, SMS): besides having translations, these templates may hold no
# text outside {% translate %} / {% blocktranslate %}.
RECIPIENT_TEMPLATE_DIRS = ("templates/claim", "templates/emails")
# Not shipped to users: tests, test and benchmark helpers, scripts, migrations, third-party and scratch trees.
SKIP_DIRS = {
    ".git",
    ".venv",
    "var",
    "node_modules",
    "staticfiles",
    "locale",
    "tests",
    "testsupport",
    "bench",
    "resilience",
    "scripts",
    "migrations",
    "__pycache__",
    "docs",
}
KEYWORDS = {
    "_": None,
    "gettext": None,
    "gettext_lazy": None,
    "gettext_noop": None,
    "ngettext": (1, 2),
    "ngettext_lazy": (1, 2),
    "pgettext": ((1, "c"), 2),
    "pgettext_lazy": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
    "npgettext_lazy": ((1, "c"), 2, 3),
}
COMMENT_TAGS = ("Translators:",)
# Fixed header dates: a date that changed on every extraction would make every branch's catalogue conflict.
HEADER_DATE = datetime(2026, 12, 1, tzinfo=UTC)
HEADER_COMMENT = (
    "# Messages of rewards_portal. `make messages` adds new strings here:\n"
    "# translate every one, keeping each %(name)s placeholder (`make lint` checks).\n"
    "# `make` compiles this file to django.mo (scripts/messages.py compile)."
)


def po_path(language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


# --- extraction -----------------------------------------------------------------------------------------


def _source_files(root: Path) -> Iterator[Path]:
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(name for name in dirs if name not in SKIP_DIRS and not name.startswith("."))
        for name in sorted(files):
            path = Path(directory) / name
            if name.endswith(".py") or (path.suffix in {".html", ".txt"} and "templates" in path.parts):
                yield path


def _extract_file(path: Path) -> Iterator[tuple[int, str | tuple[str, ...], list[str], str | None]]:
    from django.utils.translation.template import templatize

    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        # Django hands this to xgettext, which does not mind indentation; Python's tokenizer (Babel's) does.
        # Calls never span lines (templatize writes each message with repr), so dedenting every line is safe.
        text = "\n".join(line.lstrip() for line in templatize(text, origin=str(path)).split("\n"))
    yield from extract("python", io.BytesIO(text.encode("utf-8")), keywords=KEYWORDS, comment_tags=COMMENT_TAGS)


def extract_messages(root: Path = ROOT) -> Catalog:
    """Every string marked for translation in the project's code and templates, as a template catalogue."""
    template = Catalog(project="rewards_portal", creation_date=HEADER_DATE, fuzzy=False)
    for path in _source_files(root):
        relative = path.relative_to(root).as_posix()
        for lineno, message, comments, context in _extract_file(path):
            template.add(message, None, [(relative, lineno)], auto_comments=comments, context=context)
    return template


def _write_po(catalog: Catalog, path: Path) -> None:
    buffer = io.BytesIO()
    # No line numbers and messages sorted by id: two branches adding strings rarely touch the same lines.
    write_po(buffer, catalog, width=100, sort_output=True, include_lineno=False, omit_header=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, buffer.getvalue())


def _read_po(path: Path, language: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def update_catalogues(languages: Iterable[str] = LANGUAGES, *, root: Path = ROOT, keep_obsolete: bool = False) -> None:
    """makemessages: add new strings to each language's .po (untranslated), keep every translation already made."""
    template = extract_messages(root)
    for language in languages:
        path = po_path(language)
        catalog = (
            _read_po(path, language)
            if path.exists()
            else Catalog(locale=language, domain=DOMAIN, project="rewards_portal", fuzzy=False)
        )
        catalog.header_comment = HEADER_COMMENT
        catalog.project, catalog.version = "rewards_portal", "1"
        catalog.last_translator = catalog.language_team = "rewards_portal contributors"
        catalog.msgid_bugs_address = ""
        catalog.creation_date = HEADER_DATE
        catalog.revision_date = HEADER_DATE
        catalog.fuzzy = False
        # No fuzzy matching: a guessed translation of a different sentence is worse than none (the lint says so).
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        if not keep_obsolete:
            catalog.obsolete.clear()
        _write_po(catalog, path)


# --- compilation ----------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    """Readers (a starting worker) see the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def compile_catalogues(*, force: bool = False, locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Write each .mo whose .po is newer (or every one with force); returns the files written."""
    written = []
    for po in sorted(locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo = po.with_suffix(".mo")
        if not force and mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        catalog = _read_po(po, po.parent.parent.name)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        _atomic_write(mo, buffer.getvalue())
        written.append(mo)
    return written


# --- the lint check -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdrf]|%[sdrf]")
_TAG = re.compile(r"<[^>]*>", re.S)
_VISIBLE_ATTRIBUTE = re.compile(r"""\b(?:alt|title|placeholder|aria-label)\s*=\s*(["'])(.*?)\1""", re.S | re.I)
_INVISIBLE_BLOCK = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.S | re.I)
_ATTRIBUTE = re.compile(r"""[\w:-]+\s*=\s*(["'])[^"'<>]*\1""")
_LETTER = re.compile(r"[^\W\d_]")


def _message_ids(message: Message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, (list, tuple)) else (str(message.id),)


def _message_strings(message: Message) -> tuple[str, ...]:
    return tuple(message.string) if isinstance(message.string, (list, tuple)) else (str(message.string or ""),)


def catalogue_problems(
    template: Catalog, languages: Iterable[str] = LANGUAGES, *, locale_dir: Path = LOCALE_DIR
) -> list[Problem]:
    """Strings missing from a catalogue, untranslated or fuzzy, or translated with other placeholders."""
    problems: list[Problem] = []
    for language in languages:
        path = po_path(language, locale_dir)
        where = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        if not path.exists():
            problems.append(Problem(where, "missing: run `make messages`"))
            continue
        catalog = _read_po(path, language)
        for message in template:
            if not message.id:
                continue
            found = catalog.get(message.id, context=message.context)
            label = repr(_message_ids(message)[0])
            places = ", ".join(f"{file}" for file, _ in message.locations)
            if found is None:
                problems.append(Problem(where, f"{label} ({places}) is not in the catalogue: run `make messages`"))
                continue
            if language == SOURCE_LANGUAGE:
                continue
            strings = _message_strings(found)
            if found.fuzzy or not all(s.strip() for s in strings):
                problems.append(Problem(where, f"{label} ({places}) has no {language} translation"))
                continue
            wanted = {name for text in _message_ids(found) for name in _PLACEHOLDER.findall(text)}
            for text in strings:
                if set(_PLACEHOLDER.findall(text)) != wanted:
                    problems.append(Problem(where, f"{label}: the {language} translation has other placeholders"))
    return problems


def template_text_problems(path: Path, *, source: str | None = None) -> list[Problem]:
    """Text in a recipient-facing template that is outside {% translate %}/{% blocktranslate %}: visible text
    between tags and alt/title/placeholder/aria-label values. Script and style bodies are not looked at (keep
    their words in data- attributes, translated)."""
    from django.template.base import Lexer, TokenType

    text = path.read_text(encoding="utf-8") if source is None else source
    problems: list[Problem] = []
    depth = 0  # inside blocktranslate or comment
    pending: list[tuple[int, str]] = []  # (line, text); tags and variables as NUL
    for token in Lexer(text).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split(" ", 1)[0]
            if name in {"blocktranslate", "blocktrans", "comment"}:
                depth += 1
            elif name in {"endblocktranslate", "endblocktrans", "endcomment"}:
                depth -= 1
            pending.append((token.lineno or 0, "\x00"))  # a tag splits text runs
        elif token.token_type == TokenType.VAR:
            pending.append((token.lineno or 0, "\x00"))
        elif token.token_type == TokenType.TEXT and depth == 0:
            pending.append((token.lineno or 0, token.contents))
    joined = "".join(chunk for _, chunk in pending)
    # Line numbers: map offsets in the joined text back to token lines.
    starts: list[tuple[int, int]] = []
    offset = 0
    for lineno, chunk in pending:
        starts.append((offset, lineno))
        offset += len(chunk)

    def line_of(position: int) -> int:
        """The template line of `position` in the joined text: its token's line, plus the newlines before it."""
        chunk_start, line = 0, 1
        for start, lineno in starts:
            if start > position:
                break
            chunk_start, line = start, lineno
        return line + joined.count("\n", chunk_start, position)

    visible = _INVISIBLE_BLOCK.sub(lambda m: " " * len(m.group(0)), joined)
    where_base = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    for match in _VISIBLE_ATTRIBUTE.finditer(visible):
        value = match.group(2).replace("\x00", "")
        if _LETTER.search(html.unescape(value)):
            problems.append(Problem(f"{where_base}:{line_of(match.start())}", f"untranslated attribute {value!r}"))
    # Tags, and attributes a parent's tag gets from a block ({% block body_attrs %} style="…"{% endblock %}).
    bare = _ATTRIBUTE.sub(
        lambda m: re.sub(r"[^\x00]", " ", m.group(0)), _TAG.sub(lambda m: " " * len(m.group(0)), visible)
    )
    for run in re.finditer(r"[^\x00]+", bare):
        words = html.unescape(run.group(0)).strip()
        if _LETTER.search(words):
            first = run.start() + len(run.group(0)) - len(run.group(0).lstrip())
            problems.append(Problem(f"{where_base}:{line_of(first)}", f"untranslated text {words[:60]!r}"))
    return problems


def recipient_template_problems(root: Path = ROOT) -> list[Problem]:
    problems: list[Problem] = []
    for directory in RECIPIENT_TEMPLATE_DIRS:
        for path in sorted((root / directory).rglob("*")):
            if path.suffix in {".html", ".txt"}:
                problems.extend(template_text_problems(path))
    return problems


def check(root: Path = ROOT) -> list[Problem]:
    """Everything `make lint` refuses: catalogues behind the code, missing translations, bare template text."""
    return recipient_template_problems(root) + catalogue_problems(extract_messages(root))
