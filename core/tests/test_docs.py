"""The docs stay true: every setting read from the environment is in .env.example and the operations table."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_READ = re.compile(r"""env(?:\.(?:int|bool|list|float|str))?\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def _settings_variables() -> set[str]:
    names = set()
    for path in (ROOT / "rewards_portal" / "settings").glob("*.py"):
        names.update(ENV_READ.findall(path.read_text()))
    return names


def test_every_environment_variable_is_in_env_example():
    documented = set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    missing = sorted(_settings_variables() - documented)
    assert missing == [], f"add these to .env.example (one commented line each): {missing}"


def test_operations_configuration_table_matches_env_example():
    table = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_table.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    operations = (ROOT / "docs" / "operations.md").read_text()
    between = operations.split("<!-- CONFIG:START", 1)[1].split("-->", 1)[1].split("<!-- CONFIG:END -->", 1)[0].strip()
    assert between == table, "docs/operations.md's configuration table is stale: run `python scripts/config_table.py`"


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("##", 1)[0]
    assert "make dev" in quickstart and "make test" in quickstart
