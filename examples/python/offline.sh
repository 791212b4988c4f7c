#!/usr/bin/env bash
# The python example without conda-forge: lock, pack, unpack and check against a
# local channel of stand-in packages (see ../_localchannel.py and README.md).
#
#   ./offline.sh                            # python3 from PATH
#   PYTHON=/usr/bin/python3 ./offline.sh    # any python3 3.10 or newer
#   PORTPACK=/path/to/portpack ./offline.sh # a portpack installed elsewhere
#
# It installs portpack from this clone into .local-channel/venv, made from PYTHON
# (see ../_offline_env.sh); that interpreter becomes the channel's "python" package.
# Needs PyPI (or pip's configured index) on the first run only, never a conda channel.
#
# Leaves .local-channel/ (channel, downloads, caches), offline.lock and env.tar here;
# the environment is unpacked into a temporary directory that is removed at the end.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"
LOCAL=$HERE/.local-channel

# shellcheck source=../_offline_env.sh
. "$HERE/../_offline_env.sh"

# pip, rattler and portpack keep their caches in .local-channel, not in ~/.cache.
export XDG_CACHE_HOME=$LOCAL/cache PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/portpack-example-python.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n=== %s\n' "$*" >&2; }
run() {
    printf '+ %s\n' "$*" >&2
    "$@"
}

step "1/4 build the local channel (python $("$PYTHON" -c 'import platform; print(platform.python_version())'), requests, httpx)"
CHANNEL=$("$PYTHON" "$HERE/../_localchannel.py" python "$LOCAL")

step "2/4 lock (no python = 3.12.* pin: the local python is the interpreter above)"
run "${PORTPACK_CMD[@]}" lock -c "$CHANNEL" python requests httpx -o offline.lock

step "3/4 pack"
run "${PORTPACK_CMD[@]}" pack -l offline.lock -o env.tar --cache-dir "$LOCAL/pkgs"
ls -l env.tar >&2

step "4/4 unpack and check"
run "${PORTPACK_CMD[@]}" unpack env.tar -o "$WORK"
run "$WORK/env/bin/python" test_env.py
# The charset-normalizer package's entry point, written at unpack time:
run "$WORK/env/bin/normalizer" --version
printf '\noffline python example: OK\n'
