"""`manage.py compilemessages`: .po to .mo with Babel (core.catalogues), where Django's command needs GNU gettext."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from core.catalogues import compile_catalogues


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/django.po to .mo (only those that changed, unless --force)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--force", action="store_true", help="compile every catalogue")

    def handle(self, *args: Any, **options: Any) -> None:
        for path in compile_catalogues(force=options["force"]):
            self.stdout.write(f"compiled {path}")
