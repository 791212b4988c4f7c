"""Self-extracting archives, the unpack side (standard library only).

A self-extracting archive (``portpack pack --create-executable``) is a POSIX sh
header, a gzip'd tar holding a bootstrap (a Python runtime, portpack's unpacker and
zstandard), then an unchanged portpack archive.  The header names the byte offset of
the archive part in a comment line, so :func:`skip_header` lets ``portpack unpack
env.sh`` (or ``cat env.sh | portpack unpack -``) read the archive part directly; the header runs
:func:`portpack.cli.unpack.self_extracting_main` with the bootstrap Python.  See
``docs/self-extracting.md``; :mod:`portpack.packer.selfextract` writes these files.
"""

from __future__ import annotations

import os
import re
from typing import BinaryIO, cast

from portpack.errors import ArchiveError
from portpack.streams import PeekedStream, read_exactly

#: First bytes of every self-extracting archive.
SHEBANG = b"#!/bin/sh\n"
#: The header's second line; its number is the self-extracting format's version.
MAGIC = b"# portpack self-extracting archive, format 1\n"
SFX_FORMAT_VERSION = 1
#: The header names the archive part's offset in this line (decimal).
OFFSET_LINE = re.compile(rb"^# archive offset: ([0-9]{1,15})$", re.MULTILINE)
#: Headers are at most this long (they are padded to a multiple of 4 KiB).
MAX_HEADER = 64 << 10
_MAGIC_PREFIX = b"# portpack self-extracting archive, format "
_SKIP_CHUNK = 1 << 20


def archive_offset(header: bytes, name: str) -> int:
    """The offset of the archive part named by a self-extracting ``header``.

    ``header`` is the start of a file that begins with ``#!``; raise
    :class:`ArchiveError` if it is not a self-extracting archive this portpack reads.
    """
    lines = header.split(b"\n", 2)
    if len(lines) < 3 or not lines[1].startswith(_MAGIC_PREFIX):
        raise ArchiveError(f"{name} is a script, not a portpack archive or self-extracting archive")
    if lines[1] + b"\n" != MAGIC:
        version = lines[1][len(_MAGIC_PREFIX) :].decode(errors="replace")
        raise ArchiveError(
            f"{name} is a self-extracting archive of format {version}; this portpack "
            f"reads format {SFX_FORMAT_VERSION}",
            hint="Run the file itself (sh FILE), or unpack it with a newer portpack.",
        )
    match = OFFSET_LINE.search(header)
    if match is None:
        raise ArchiveError(f"{name}: the self-extracting header names no archive offset")
    offset = int(match.group(1))
    if offset < len(MAGIC):
        raise ArchiveError(f"{name}: the self-extracting header is corrupt (offset {offset})")
    return offset


def skip_header(stream: BinaryIO, name: str) -> BinaryIO:
    """Return a stream positioned at the portpack archive inside ``stream``.

    A plain archive is returned as it is (the bytes peeked at are given back); for a
    self-extracting archive the header and bootstrap are skipped, by seeking when
    ``stream`` can seek and by reading forward when it is a pipe.
    """
    head = read_exactly(stream, 2)
    if head != b"#!":
        return cast(BinaryIO, PeekedStream(head, stream))
    head += read_exactly(stream, MAX_HEADER - len(head))
    offset = archive_offset(head, name)
    if offset <= len(head):
        return cast(BinaryIO, PeekedStream(head[offset:], stream))
    if _seekable(stream):
        stream.seek(offset - len(head), os.SEEK_CUR)
        return stream
    left = offset - len(head)
    while left:
        data = stream.read(min(left, _SKIP_CHUNK))
        if not data:
            raise ArchiveError(f"{name} is truncated: it ends before its archive part")
        left -= len(data)
    return stream


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False
