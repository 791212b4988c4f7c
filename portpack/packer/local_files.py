"""Reading files of an installed environment and of package caches, safely.

Nothing here follows a symlink it was not told to, reads a FIFO or a device (which
could block forever), or reads more than a bound.  Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

_CHUNK = 1 << 20


def read_small(path: Path, limit: int, *, follow: bool = False) -> str:
    """At most ``limit`` bytes of a regular file as text; ``""`` for anything else."""
    try:
        with open(path, "rb", opener=follow_opener if follow else nofollow_opener) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return ""
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def nofollow_opener(path: str, flags: int) -> int:
    """An ``open`` opener that never follows a symlink or blocks on a FIFO."""
    return follow_opener(path, flags | getattr(os, "O_NOFOLLOW", 0))


def follow_opener(path: str, flags: int) -> int:
    """An ``open`` opener that never blocks on a FIFO."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def digest(path: str | os.PathLike[str], algorithm: str, *, follow: bool) -> str:
    """Hash a regular file; anything else (a FIFO, a device) is refused, never read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        hasher = hashlib.new(algorithm)
        while chunk := fh.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()
