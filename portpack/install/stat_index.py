"""The stat index: how each installed file looked when its unpack finished.

``unpack --update`` reuses a package's files only if none was changed in the
environment, and hashing every one of them reads the whole environment. So, as
git's index does, every unpack records the device, inode, size, mtime and ctime of
the files it installed in ``conda-meta/.portpack-stat``, and the check hashes only
a file whose ``lstat`` differs from its entry, or whose entry is *racy*: its ctime
is not older than the index itself (a change within the same clock tick could leave
the stat as recorded). A user cannot set a ctime, so an edit that restores the size
and the mtime still shows.

The index is a cache. It is written after the environment is in place and the
replaced one removed (removing hard links changes the ctime of the files they
shared), and when it is missing, unreadable, of another version, another device or
not well formed, the check hashes every file, as it does for environments made by
conda or pixi-unpack. Its format: a JSON header line, then lines that each hold a
JSON array of up to 4096 rows ``[path, inode, size, mtime_ns, ctime_ns]``, so that
the writer never holds a million-path environment as one document.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from portpack import outside
from portpack.install.condameta import META_DIR

#: Its name in the environment (not ``*.json``: conda reads those as records).
INDEX_NAME = f"{META_DIR}/.portpack-stat"
VERSION = 1
#: The largest index read (a million paths take about 80 MB).
MAX_SIZE = 1 << 30
_BATCH = 4096

Entry = tuple[int, int, int, int]
"""inode, size, mtime_ns, ctime_ns."""


def write(prefix: Path, paths: Iterable[str]) -> int:
    """Record the stat of ``paths`` (relative to ``prefix``; missing ones are left
    out); the number recorded. Raises :class:`OSError` or
    :class:`~portpack.errors.UsageError` when the index cannot be written."""
    root = os.fspath(prefix)
    dev = os.lstat(root).st_dev
    count = 0
    with outside.atomic_file(prefix / INDEX_NAME) as fh:
        fh.write(json.dumps({"portpack_stat_index": VERSION, "dev": dev}).encode() + b"\n")
        rows: list[tuple[str, int, int, int, int]] = []
        for rel in paths:
            try:
                st = os.lstat(f"{root}/{rel}")
            except OSError:
                continue
            rows.append((rel, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            if len(rows) >= _BATCH:
                count += _write_rows(fh, rows)
        count += _write_rows(fh, rows)
    return count


def _write_rows(fh: BinaryIO, rows: list[tuple[str, int, int, int, int]]) -> int:
    """One line: a JSON array of ``rows`` (then emptied)."""
    n = len(rows)
    if n:
        fh.write(json.dumps(rows).encode() + b"\n")
        rows.clear()
    return n


class StatIndex:
    """The index of one environment, as read (see the module docstring)."""

    def __init__(self, root: Path, dev: int, written_ns: int, entries: dict[str, Entry]) -> None:
        self._root = os.fspath(root)
        self._dev = dev
        self._written_ns = written_ns
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def unchanged(self, rel: str) -> bool:
        """Whether the file at ``rel`` is as recorded and not racy (True: no need to
        read it; False: it must be hashed)."""
        entry = self._entries.get(rel)
        if entry is None:
            return False
        try:
            st = os.lstat(f"{self._root}/{rel}")
        except OSError:
            return False
        ino, size, mtime_ns, ctime_ns = entry
        return (
            st.st_dev == self._dev
            and st.st_ino == ino
            and st.st_size == size
            and st.st_mtime_ns == mtime_ns
            and st.st_ctime_ns == ctime_ns
            and ctime_ns < self._written_ns
        )


def read(prefix: Path) -> StatIndex | None:
    """The index of the environment at ``prefix``; None when it has no usable one."""
    path = prefix / INDEX_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SIZE:
            return None
        try:
            header = json.loads(fh.readline())
            if not isinstance(header, dict) or header.get("portpack_stat_index") != VERSION:
                return None
            dev = header.get("dev")
            # An array of rows per line, none with a raw newline inside: one parse.
            body = fh.read().rstrip(b"\n").replace(b"\n", b",")
            entries = {}
            for batch in json.loads(b"[" + body + b"]"):
                for rel, *numbers in batch:
                    if not isinstance(rel, str) or not _numbers(numbers):
                        return None
                    entries[rel] = (numbers[0], numbers[1], numbers[2], numbers[3])
        except (ValueError, TypeError, OSError):
            return None
    if type(dev) is not int:
        return None
    return StatIndex(prefix, dev, st.st_mtime_ns, entries)


def _numbers(values: list[object]) -> bool:
    return len(values) == 4 and all(type(v) is int for v in values)


__all__ = ["INDEX_NAME", "StatIndex", "read", "write"]
