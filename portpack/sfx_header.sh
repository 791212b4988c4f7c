#!/bin/sh
# portpack self-extracting archive, format 1
# archive offset: @ARCHIVE_OFFSET@
#
# Run this file to unpack the conda environment inside it:
#     sh @NAME@ -o /app        (then: . /app/activate.sh)
#     sh @NAME@ --help
# It needs only sh, tail, head, gzip, tar and mktemp: no Python, no zstd, no network.
#
# Layout: this header (@HEADER_SIZE@ bytes), a gzip'd tar of the bootstrap (@BOOTSTRAP@)
# (@BOOT_SIZE@ bytes), then a portpack archive (zstd) from byte @ARCHIVE_OFFSET@ on.
# The bootstrap is extracted into a temporary directory, runs portpack's unpacker on
# the archive part of this file (read in place, never copied) and is removed again.
# Environment: @SUMMARY@ for @PLATFORM@.
# Made by portpack @VERSION@ (docs/self-extracting.md).

boot_start=@BOOT_START@
boot_size=@BOOT_SIZE@
python=@PYTHON@
machine=@MACHINE@
platform=@PLATFORM@

self=$0
say() { printf '%s: %s\n' "${self##*/}" "$*" >&2; }
die() { say "error: $*"; exit "${2:-1}"; }

if [ ! -f "$self" ] || [ ! -r "$self" ]; then
    say "error: cannot read this file as $self; run it by its path (sh ./FILE)"
    exit 2
fi
here=$(uname -m 2>/dev/null || echo unknown)
[ "$(uname -s 2>/dev/null)" = Linux ] && [ "$here" = "$machine" ] \
    || die "this environment is for $platform ($machine); this machine is $(uname -s) $here"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/portpack-sfx.XXXXXXXX") \
    || die "cannot create a temporary directory in ${TMPDIR:-/tmp}; set TMPDIR"
child=
finish() {
    # $1: exit status. Stop the unpacker (it removes its half-built environment),
    # then remove the bootstrap.
    trap - EXIT HUP INT TERM
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    rm -rf "$tmp"
    exit "$1"
}
trap 'finish $?' EXIT
trap 'finish 129' HUP
trap 'finish 130' INT
trap 'finish 143' TERM

tail -c +"$boot_start" -- "$self" | head -c "$boot_size" | gzip -dc | tar -xf - -C "$tmp"
[ -f "$tmp/.portpack-bootstrap" ] \
    || die "cannot extract the bootstrap from $self into $tmp (is the file complete?)"
if ! out=$("$tmp/$python" -I -S -c '' 2>&1); then
    say "error: the bundled Python cannot run here: $out"
    say "If ${TMPDIR:-/tmp} is mounted noexec, set TMPDIR to a directory where programs may run."
    finish 1
fi

# The unpacker runs in the background so that a signal reaches this shell at once;
# 'finish' then forwards it as SIGTERM, which portpack handles like Ctrl-C. (Its
# standard input is /dev/null, as for any background command: it reads none.)
"$tmp/$python" -I -S -B -c 'import sys
sys.path.insert(0, sys.argv.pop(1))
from portpack.cli.unpack import self_extracting_main
sys.exit(self_extracting_main())' "$tmp/site" "$self" "$@" &
child=$!
wait "$child"
status=$?
child=
finish "$status"
