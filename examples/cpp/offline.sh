#!/usr/bin/env bash
# The C++ example without conda-forge: lock, pack and unpack a locally built zstd,
# then compile main.cpp against the unpacked environment (see README.md).
#
#   ./offline.sh                            # python3 from PATH
#   PYTHON=/usr/bin/python3 ./offline.sh    # any python3 3.10 or newer
#   PORTPACK=/path/to/portpack ./offline.sh # a portpack installed elsewhere
#
# It installs portpack from this clone into .local-channel/venv, made from PYTHON
# (see ../_offline_env.sh). Needs PyPI (or pip's configured index) on the first run
# only, never a conda channel.
# The compiler is the system gcc/g++: a conda gcc cannot be built offline (the real
# example gets g++, binutils and the sysroot from conda-forge's cxx-compiler).
#
# Leaves .local-channel/ (channel, downloads, caches), offline.lock and env.tar here;
# the environment and the demo binary go to a temporary directory removed at the end.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"
LOCAL=$HERE/.local-channel

# shellcheck source=../_offline_env.sh
. "$HERE/../_offline_env.sh"
CXX=${CXX:-g++}

# pip, rattler and portpack keep their caches in .local-channel, not in ~/.cache.
export XDG_CACHE_HOME=$LOCAL/cache PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/portpack-example-cpp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n=== %s\n' "$*" >&2; }
run() {
    printf '+ %s\n' "$*" >&2
    "$@"
}

step "1/4 build the local channel (zstd from the zstandard sdist's bundled sources)"
CHANNEL=$("$PYTHON" "$HERE/../_localchannel.py" cpp "$LOCAL")

step "2/4 lock"
run "${PORTPACK_CMD[@]}" lock -c "$CHANNEL" zstd -o offline.lock

step "3/4 pack"
run "${PORTPACK_CMD[@]}" pack -l offline.lock -o env.tar --cache-dir "$LOCAL/pkgs"
ls -l env.tar >&2

step "4/4 unpack, compile main.cpp with the system $CXX against the environment, run it"
run "${PORTPACK_CMD[@]}" unpack env.tar -o "$WORK"
(
    # shellcheck disable=SC1091  # written by portpack unpack
    . "$WORK/activate.sh"
    P=$CONDA_PREFIX
    run "$CXX" main.cpp -I"$P/include" -L"$P/lib" -Wl,-rpath,"$P/lib" -lzstd -o "$WORK/demo"
    run "$WORK/demo"

    # The demo must load the environment's libzstd (the system may have its own).
    lib=$(ldd "$WORK/demo" | awk '$1 ~ /^libzstd\.so/ {print $3}')
    echo "demo loads $lib" >&2
    [[ $lib == "$P/lib/"* ]] || { echo "FAIL: libzstd is not the environment's" >&2; exit 1; }
    # libzstd.pc held the build prefix as a placeholder: it must name the new prefix.
    grep -qx "prefix=$P" "$P/lib/pkgconfig/libzstd.pc" ||
        { echo "FAIL: libzstd.pc was not relocated" >&2; exit 1; }
    echo "libzstd.pc: prefix=$P" >&2
)
printf '\noffline cpp example: OK\n'
