"""Message catalogues without GNU gettext (core.catalogues): `compile` (.po to .mo, run by scripts/venv.sh before
every make target and by the Docker build), `check` (make lint: every string translated, no bare text in the
recipient's templates) and `update` (make messages: add new strings to locale/*/django.po).

    python scripts/messages.py compile|check|update
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import catalogues  # noqa: E402


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "compile":
        catalogues.compile_catalogues(force="--force" in argv)
        return 0
    if command == "update":
        catalogues.update_catalogues(keep_obsolete="--keep-obsolete" in argv)
        return 0
    if command == "check":
        problems = catalogues.check()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                f"{len(problems)} translation problem(s): mark text with {{% translate %}} / gettext, run "
                "`make messages`, then write the Malay in locale/ms/LC_MESSAGES/django.po",
                file=sys.stderr,
            )
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
