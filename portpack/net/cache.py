"""The package cache: its directory, entry names, verified reuse, and partial downloads.

Layout of the cache directory::

    CACHEDIR.TAG
    pkgs/<subdir>/<stem>.<first 16 hex digits of the checksum>.<conda|tar.bz2|whl>
    pkgs/<subdir>/.<entry>.part-XXXX      (a download in progress, flock-ed by its writer)
    converted/<subdir>/...                (.tar.bz2 packages converted to .conda)

Naming entries by their checksum keeps two locks that disagree about a file's
content from ever replacing each other's entry.  An entry is complete and verified
or absent: it is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from portpack import outside
from portpack.errors import FetchError, PackageError
from portpack.net.auth import strip_credentials
from portpack.net.request import Download
from portpack.streams import hash_file

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

#: A temporary file older than this whose writer holds no lock is a dead run's leftover.
STALE_AGE = 60.0
PART = ".part-"
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by portpack.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/portpack`` (``~/.cache/portpack``) or the platform's cache dir."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("portpack", appauthor=False))


def prepare_cache(cache_dir: Path) -> Path:
    """Create the cache directory with its ``CACHEDIR.TAG``; remove dead runs' leftovers."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tag = cache_dir / "CACHEDIR.TAG"
        if not tag.exists():
            outside.write_text(tag, _CACHEDIR_TAG)
    except OSError as exc:
        raise FetchError(f"cannot use cache directory {cache_dir}: {exc.strerror or exc}") from exc
    _remove_stale(cache_dir)
    return cache_dir


def _remove_stale(cache_dir: Path) -> None:
    now = time.time()
    for part in (cache_dir / "pkgs").glob(f"*/.*{PART}*"):
        try:
            if now - part.stat().st_mtime < STALE_AGE:
                continue
            with open_regular(part) as fh:
                if try_lock(fh):
                    part.unlink()
        except OSError:
            continue  # gone already, not a file, or not ours to judge


def open_regular(path: Path) -> IO[bytes]:
    """Open a regular file for reading; anything else (a FIFO whose open would wait for
    a writer, a device) is an ``OSError`` at once."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def try_lock(fh: IO[bytes]) -> bool:
    """Take ``fh``'s exclusive ``flock`` without waiting; False if another holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def split_ext(fn: str) -> tuple[str, str]:
    for ext in (".conda", ".tar.bz2", ".whl"):
        if fn.endswith(ext):
            return fn[: -len(ext)], ext
    return fn, ""


def entry_path(cache_dir: Path, download: Download) -> Path:
    """Where ``download`` lives in the cache (named by its checksum)."""
    for part, what in ((download.fn, "file name"), (download.subdir, "subdir")):
        if not part or "/" in part or "\\" in part or part.startswith(".") or "\0" in part:
            raise PackageError(f"{download.what} has an invalid {what} {part!r}")
    expected = download.expected
    if expected is None and not download.verified:
        url = strip_credentials(download.url)
        expected = "url-" + hashlib.sha256(url.encode()).hexdigest()
    if expected is None:
        raise FetchError(
            f"{download.what} has no sha256 or md5 in the lock; refusing to trust it",
            url=strip_credentials(download.url),
        )
    stem, ext = split_ext(download.fn)
    return cache_dir / "pkgs" / download.subdir / f"{stem}.{expected[:16]}{ext}"


def matches(path: Path, download: Download) -> bool:
    """Whether the file at ``path`` has the checksum ``download`` expects."""
    try:
        return hash_file(path, download.digest()) == download.expected
    except OSError:
        return False


@contextmanager
def partial_file(target: Path) -> Iterator[IO[bytes]]:
    """A locked temporary file next to ``target``, renamed to it when the block succeeds.

    Not :func:`portpack.outside.atomic_file`: a download in progress must be found
    and judged by other runs' stale-file cleaning (:func:`prepare_cache`), so its name
    is ``.<entry>.part-XXXX`` and its writer holds an ``flock`` on it until after the
    rename (a live writer's file is never mistaken for a dead run's leftover).  The
    block may also read the file back and rewrite it (``w+b``) when a resumed
    download starts over.  On any failure the file is removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}{PART}")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as fh:
            try_lock(fh)  # tells cache cleaners that this file is alive
            yield fh
            fh.flush()
            os.replace(tmp, target)  # still locked: nobody mistakes it for a leftover
    finally:
        tmp.unlink(missing_ok=True)
