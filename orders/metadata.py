"""Custom key/values ("metadata") on orders and rewards: the client's own ids and labels, checked at the door.

Limits in the spirit of Stripe's: a flat object of at most 20 keys, each key 1-40 characters of letters,
digits, `_`, `-` or `.`, each value a string of at most 500 characters without control characters. They are
searchable (the values join the reward's search text) and exported with the order.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _

from core.errors import ApplicationError
from core.text import control_character_error

MAX_KEYS = 20
MAX_VALUE_CHARS = 500
KEY_RE = re.compile(r"[A-Za-z0-9_.\-]{1,40}")


def metadata_problems(value: Any) -> list[str]:
    """Why `value` is not acceptable metadata (every reason), or [] when it is."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [_('Metadata is an object of string values, e.g. {"department": "Sales"}.')]
    problems = []
    if len(value) > MAX_KEYS:
        problems.append(_("At most %(n)d keys (%(given)d given).") % {"n": MAX_KEYS, "given": len(value)})
    for key, item in list(value.items())[: MAX_KEYS + 1]:
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            problems.append(
                _("Key %(key)s: use 1-40 letters, digits, _ - or . characters.") % {"key": repr(str(key)[:40])}
            )
        elif not isinstance(item, str):
            problems.append(_("%(key)s: values are strings.") % {"key": key})
        elif len(item) > MAX_VALUE_CHARS:
            problems.append(_("%(key)s: at most %(n)d characters.") % {"key": key, "n": MAX_VALUE_CHARS})
        elif problem := control_character_error(item):
            problems.append(f"{key}: {problem}")
    return problems


def metadata_clean(value: Any, *, path: str = "metadata") -> dict[str, str]:
    """`value` as stored metadata ({} for none); refused with a 422 naming `path` when it breaks a limit."""
    problems = metadata_problems(value)
    if problems:
        raise ApplicationError(
            _("The metadata is not valid: %(problems)s") % {"problems": " ".join(problems)},
            code="validation_error",
            errors={path: problems},
        )
    return dict(value or {})
