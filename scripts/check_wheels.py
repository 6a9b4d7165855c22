"""`make lint`: every pinned requirement has a wheel on the registry for each interpreter x platform the README
promises (scripts/platforms.py), so a version bump that drops one fails in CI, not on a newcomer's laptop.

Per target, one `pip download --only-binary=:all: --python-version X --platform P` of requirements-dev.txt and
requirements-embedded.txt into a throwaway folder, dependencies included, as `make` installs them (pure-python
`py3-none-any` wheels count). Where that fails, each pin is tried alone (`--no-deps`) so the table names every
missing one. Only the registry counts: pip config files, PIP_INDEX_URL / PIP_FIND_LINKS and local wheel folders
are ignored. Downloads come from pip's own persistent cache on a re-run (PIP_CACHE_DIR; ~30 s on 2 CPUs).
Exit 1: a wheel is missing; exit 2: the registry cannot be reached (CI can reach it; offline, run ruff alone).

    python scripts/check_wheels.py [--index-url URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from platforms import EMBEDDED_PLATFORMS, EMBEDDED_PYTHONS  # noqa: E402

REQUIREMENT_FILES = ("requirements-dev.txt", "requirements-embedded.txt")  # the first includes requirements.txt
PYPI = "https://pypi.org/simple/"
# Kept from the environment: where pip caches and how it reaches the network; everything else about PIP_* names
# other package sources or changes what gets picked.
KEPT_PIP_VARIABLES = ("PIP_CACHE_DIR", "PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY")
UNREACHABLE = ("connection broken by", "Max retries exceeded", "NewConnectionError", "Could not fetch URL")
PARALLEL = 3  # pip downloads at once: mostly waiting on the network, 3 keeps 2 CPUs busy


@dataclass(frozen=True)
class Target:
    python: tuple[int, int]
    platform: str  # the README's name
    tag: str  # pip --platform

    @property
    def label(self) -> str:
        return f"cp{self.python[0]}{self.python[1]} {self.platform}"


class RegistryUnreachable(Exception):
    pass


def pins(path: Path) -> list[str]:
    """The requirement lines of a requirements file, following `-r` includes."""
    found: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            found += pins(path.parent / line.split(maxsplit=1)[1])
        elif line and not line.startswith("-"):
            found.append(line)
    return found


def pip_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_") or key in KEPT_PIP_VARIABLES}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no config file at all
    return env


def pip(args: list[str], *, index_url: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", *args, "--index-url", index_url, "--disable-pip-version-check"]
    command += ["--timeout", "30", "--retries", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env=pip_environment(), cwd=ROOT)
    if result.returncode and any(sign in result.stderr for sign in UNREACHABLE):
        raise RegistryUnreachable(_network_error(result))
    return result


def _network_error(result: subprocess.CompletedProcess) -> str:
    """The last reason pip gave for a failed connection (e.g. a name that does not resolve)."""
    reasons = [line for line in result.stderr.splitlines() if any(sign in line for sign in UNREACHABLE)]
    if not reasons:
        return _errors(result) or result.stderr.strip()[-300:]
    return reasons[-1].split("connection broken by", 1)[-1].strip(" ':")[:300]


def _errors(result: subprocess.CompletedProcess) -> str:
    return "\n".join(line for line in result.stderr.splitlines() if line.startswith("ERROR:"))


def download(target: Target, requirements: list[str], *, index_url: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="rp-wheels-") as folder:
        args = ["download", "--only-binary=:all:", "--implementation", "cp", "--platform", target.tag]
        args += ["--python-version", ".".join(map(str, target.python)), "--dest", folder]
        return pip([*args, "--quiet", "--progress-bar", "off", *requirements], index_url=index_url)


def check_target(target: Target, all_pins: list[str], *, index_url: str) -> tuple[list[str], str]:
    """(pins without a wheel for target, pip's errors about a dependency); ([], "") when everything installs."""
    files = [arg for name in REQUIREMENT_FILES for arg in ("-r", name)]
    result = download(target, files, index_url=index_url)
    if result.returncode == 0:
        return [], ""
    # pip stops at the first pin it cannot satisfy: drop that one and ask again, once per missing pin.
    missing: list[str] = []
    remaining = list(all_pins)
    while remaining:
        alone = download(target, ["--no-deps", *remaining], index_url=index_url)
        if alone.returncode == 0:
            break
        errors = _errors(alone).replace(" ", "").lower()
        culprit = next((pin for pin in remaining if f"for{pin.replace(' ', '').lower()}" in errors), None)
        if culprit is None:
            return missing, _errors(alone) or alone.stderr.strip()[-500:]
        missing.append(culprit)
        remaining.remove(culprit)
    return missing, "" if missing else (_errors(result) or result.stderr.strip()[-500:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-url", default=PYPI, help=f"the registry (default {PYPI})")
    index_url = parser.parse_args().index_url
    all_pins = [pin for name in REQUIREMENT_FILES for pin in pins(ROOT / name)]
    targets = [Target(python, entry[0], entry[-1]) for python in EMBEDDED_PYTHONS for entry in EMBEDDED_PLATFORMS]
    started = time.monotonic()
    try:
        probe = pip(["index", "versions", "pip"], index_url=index_url)
        if probe.returncode:
            raise RegistryUnreachable(_network_error(probe))
        with ThreadPoolExecutor(PARALLEL) as pool:
            outcomes = list(pool.map(lambda target: check_target(target, all_pins, index_url=index_url), targets))
    except RegistryUnreachable as exc:
        print(f"wheel check: cannot reach the package registry {index_url}; it needs the registry (CI has it).")
        print(f"  pip said: {exc}")
        print("  Offline, lint with `.venv/bin/ruff check . && .venv/bin/ruff format --check .` alone.")
        return 2
    seconds = time.monotonic() - started
    matrix = f"CPython {', '.join('.'.join(map(str, p)) for p in EMBEDDED_PYTHONS)} x "
    matrix += " and ".join(name for name, *_ in EMBEDDED_PLATFORMS)
    if not any(missing or dependency for missing, dependency in outcomes):
        print(f"wheel check: {len(all_pins)} pins and their dependencies have wheels for {matrix} ({seconds:.0f} s)")
        return 0
    print(f"wheel check: NOT every requirement has a wheel for {matrix} (the README promises it; {seconds:.0f} s)")
    print()
    rows = sorted({pin for missing, _ in outcomes for pin in missing})
    if rows:
        width = max(len(pin) for pin in rows)
        print(f"| {'requirement':<{width}} | " + " | ".join(target.label for target in targets) + " |")
        print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(target.label) + 2) for target in targets) + "|")
        for pin in rows:
            cells = [
                ("MISSING" if pin in missing else "wheel").ljust(len(target.label))
                for target, (missing, _) in zip(targets, outcomes, strict=True)
            ]
            print(f"| {pin:<{width}} | " + " | ".join(cells) + " |")
        print()
    for target, (_missing, dependency) in zip(targets, outcomes, strict=True):
        if dependency:
            print(f"{target.label}: every pin has a wheel, but a dependency does not:\n  {dependency}")
    print("Pin a version that has the wheels, or change the promise in README.md and scripts/platforms.py together.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
