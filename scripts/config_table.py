"""Print the configuration table of docs/operations.md from .env.example (the single source for variables).

Each variable in .env.example is a `# NAME=example` (or `NAME=example`) line after its comment lines; a
`# --- Section ---` line starts a section. Run `python scripts/config_table.py` and paste the output
between the CONFIG markers in docs/operations.md (core/tests/test_docs.py checks they agree).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = re.compile(r"^#?\s?([A-Z][A-Z0-9_]+)=(.*)$")


def rows(path: Path = ROOT / ".env.example") -> list[tuple[str, str, str, str]]:
    """(section, name, example, meaning) for every variable, in file order."""
    section, comments, out, last = "", [], [], ""
    for raw in path.read_text().splitlines():
        line = raw.rstrip()
        if line.startswith("# ---"):
            section, comments = line.strip("# -"), []
            continue
        match = ASSIGNMENT.match(line)
        if match:
            name, example = match.groups()
            meaning = " ".join(comments).strip() or last  # consecutive variables share their comment
            out.append((section, name, example.strip(), meaning))
            comments, last = [], meaning
            continue
        if line.startswith("#") and section:
            comments.append(line.lstrip("# ").strip())
            last = ""
        elif not line:
            comments, last = [], ""
    return out


def table() -> str:
    lines = ["| variable | example | meaning |", "|---|---|---|"]
    seen = set()
    for _section, name, example, meaning in rows():
        if name in seen:
            continue
        seen.add(name)
        cell = meaning.replace("|", "\\|")
        shown = f"`{example}`" if example else ""
        lines.append(f"| `{name}` | {shown} | {cell} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
