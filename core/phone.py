"""Phone numbers as every delivery path accepts them: E.164 (a plus, a country code, up to 15 digits)."""

from __future__ import annotations

import re

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
