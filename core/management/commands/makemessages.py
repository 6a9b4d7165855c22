"""`manage.py makemessages`: Django's command needs GNU gettext; this one extracts with Babel (core.catalogues)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.catalogues import LANGUAGES, po_path, update_catalogues


class Command(BaseCommand):
    help = "Add the strings marked for translation to locale/<language>/LC_MESSAGES/django.po (no GNU gettext)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("-l", "--locale", action="append", default=[], help="a language (default: all)")
        parser.add_argument("-a", "--all", action="store_true", help="every language (the default)")
        parser.add_argument("--no-obsolete", action="store_true", help="drop strings no longer used (the default)")
        parser.add_argument("--keep-obsolete", action="store_true", help="keep strings no longer used, commented")

    def handle(self, *args: Any, **options: Any) -> None:
        languages = options["locale"] or list(LANGUAGES)
        unknown = sorted(set(languages) - set(LANGUAGES))
        if unknown:
            raise CommandError(f"unknown language(s) {', '.join(unknown)}: the catalogues are {', '.join(LANGUAGES)}")
        update_catalogues(languages, keep_obsolete=options["keep_obsolete"])
        for language in languages:
            self.stdout.write(f"updated {po_path(language)}")
