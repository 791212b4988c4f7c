"""Pure prefix-replacement functions: text placeholders, C-string placeholders, shebangs."""

from __future__ import annotations

import re

from portpack.errors import PreconditionError

#: Longest shebang line the Linux kernel honours (excluding the newline).
MAX_SHEBANG = 127
_PYTHON_EXE = re.compile(rb"^python(\d+(\.\d+)?)?$")


def replace_text(data: bytes, placeholder: bytes, prefix: bytes) -> bytes:
    """Replace every occurrence of ``placeholder`` with ``prefix``, then fix the shebang.

    An empty placeholder replaces nothing (``bytes.replace`` would insert the prefix
    between every two bytes).
    """
    if not placeholder:
        return data
    return fix_shebang(data.replace(placeholder, prefix), prefix)


def replace_binary(data: bytes, placeholder: bytes, prefix: bytes, what: str = "") -> bytes:
    """Replace ``placeholder`` inside each C string, padding with NULs to keep the length.

    Raises :class:`PreconditionError` if ``prefix`` is longer than ``placeholder``.
    An empty placeholder replaces nothing.
    """
    if not placeholder:
        return data
    if len(prefix) > len(placeholder):
        raise PreconditionError(
            f"the target prefix ({len(prefix)} bytes) is longer than the binary placeholder "
            f"({len(placeholder)} bytes){' of ' + what if what else ''}",
            hint="Unpack into a shorter directory path.",
        )
    out = bytearray()
    pos = 0
    while (start := data.find(placeholder, pos)) >= 0:
        end = data.find(b"\0", start)
        if end < 0:
            end = len(data)
        segment = data[start:end]
        patched = segment.replace(placeholder, prefix)
        out += data[pos:start]
        out += patched
        out += bytes(len(segment) - len(patched))
        pos = end
    out += data[pos:]
    return bytes(out)


def fix_shebang(data: bytes, prefix: bytes) -> bytes:
    """Rewrite a ``#!`` line that is too long or holds a space (rattler's rule)."""
    if not data.startswith(b"#!"):
        return data
    newline = data.find(b"\n")
    line = data[2:] if newline < 0 else data[2:newline]
    if len(line) + 2 <= MAX_SHEBANG and b" " not in prefix:
        return data
    rest = b"" if newline < 0 else data[newline:]
    if not line.startswith(prefix + b"/"):
        return data
    exe, _, args = line[len(prefix) + 1 :].partition(b" ")
    interpreter = prefix + b"/" + exe
    basename = exe.rsplit(b"/", 1)[-1]
    if _PYTHON_EXE.match(basename):
        head = b"#!/bin/sh\n'''exec' \"" + interpreter + b'" "$0" "$@" #\'\'\''
        return head + rest
    return b"#!/usr/bin/env " + basename + (b" " + args if args else b"") + rest
