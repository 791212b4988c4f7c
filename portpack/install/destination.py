"""The destination: the only code that creates files in the environment being built.

Every relative path goes through :func:`portpack.paths.safe_relpath`, the one place
that decides whether a string may name something inside the environment.  It returns
a :data:`~portpack.paths.RelPath`, and every :class:`Destination` operation takes only that type, so
mypy rejects a path built from archive metadata (a record, ``index.json``,
``paths.json``, python's site-packages, an entry point) that skipped the check.
Paths derived from checked ones (``bin/<command>``, ``__clobbers__/<name>/<path>``)
are made with :func:`~portpack.paths.join`, which checks the result again.  Files are created with
``O_EXCL | O_NOFOLLOW`` under directories this object made itself, so no member can
write through a symlink or outside the root.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable

from portpack.errors import InstallError, UnsafeArchiveError
from portpack.install.writers import WriterPool
from portpack.paths import RelPath

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FORBIDDEN_BITS = stat.S_ISUID | stat.S_ISGID


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Destination:
    """Writes files below ``root`` (the staging directory of the environment)."""

    def __init__(self, root: str, threads: int = 0) -> None:
        self.root = root
        self._dirs: set[str] = {""}
        self._symlinks: set[str] = set()
        self._umask = _current_umask()
        self._pool = WriterPool(threads, self._pool_error) if threads else None

    def _pool_error(self, exc: OSError, path: str, what: str) -> Exception:
        rel = path[len(self.root) + 1 :]
        if isinstance(exc, FileExistsError):
            return UnsafeArchiveError(f"{what}: {rel!r} is written twice")
        return _install_error(exc, rel, what)

    def flush(self) -> None:
        """Wait for files still being written in the background; raise their errors."""
        if self._pool is not None:
            self._pool.flush()

    def abort(self) -> None:
        """Stop the writers, abandoning queued files.

        The tree stays: whoever made ``root`` removes it (portpack.unpacker.streaming, which
        knows whether ``root`` still holds the new environment or, after a swap, the
        old one).
        """
        if self._pool is not None:
            self._pool.abort()
            self._pool = None

    def close(self) -> None:
        """Finish background writing (raising its errors) and stop the writers."""
        if self._pool is not None:
            try:
                self._pool.flush()
            finally:
                self._pool.close()
                self._pool = None

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def exists(self, rel: RelPath) -> bool:
        """True if this destination already wrote ``rel`` (pending writes included)."""
        self.flush()
        return os.path.lexists(self._abs(rel))

    def is_dir(self, rel: RelPath) -> bool:
        """True if this destination made directory ``rel`` (and has not removed it)."""
        return rel in self._dirs

    def remove_empty_tree(self, rel: RelPath, what: str) -> None:
        """Remove directory ``rel`` and the directories below it, all empty by now."""
        self.flush()
        below = sorted((d for d in self._dirs if d.startswith(rel + "/")), key=len, reverse=True)
        for path in [*below, rel]:
            try:
                os.rmdir(self._abs(path))
            except OSError as exc:
                raise InstallError(
                    f"{what}: cannot put a file where the directory {rel!r} is: {path!r} "
                    f"holds files no package installed ({exc.strerror or exc})"
                ) from exc
            self._dirs.discard(path)

    def ensure_dir(self, rel: RelPath, what: str) -> None:
        """Create directory ``rel`` and its parents, refusing to pass through a symlink."""
        self._ensure_dir(rel, what)

    def _ensure_dir(self, rel: str, what: str) -> None:
        if rel in self._dirs:
            return
        # Iterative (a legal path may have thousands of components): find the deepest
        # directory made already, then create the missing ones top down.
        missing = [rel]
        parent = rel.rpartition("/")[0]
        while parent not in self._dirs:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for path in reversed(missing):
            self._mkdir(path, what)

    def _mkdir(self, rel: str, what: str) -> None:
        if rel in self._symlinks:
            raise UnsafeArchiveError(f"{what}: refusing to write through symlink {rel!r}")
        try:
            os.mkdir(self._abs(rel), 0o755)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(self._abs(rel)).st_mode):
                raise UnsafeArchiveError(
                    f"{what}: {rel!r} is needed as a directory but is a file or symlink"
                ) from None
        except OSError as exc:
            raise _install_error(exc, rel, what) from exc
        self._dirs.add(rel)

    def _parent(self, rel: str, what: str) -> None:
        parent = rel.rpartition("/")[0]
        if parent not in self._dirs:
            self._ensure_dir(parent, what)

    def _check_mode(self, mode: int, rel: str, what: str) -> int:
        if mode & _FORBIDDEN_BITS:
            raise UnsafeArchiveError(f"{what}: refusing setuid/setgid file {rel!r}")
        return mode & 0o777

    def write_bytes(
        self, rel: RelPath, data: bytes | memoryview, mode: int, mtime: int | None, what: str
    ) -> None:
        """Create regular file ``rel`` holding ``data`` (possibly on a background writer)."""
        if self._pool is None:
            self._write_one(rel, data, mode, mtime, what)
            return
        mode = self._check_mode(mode, rel, what)
        self._parent(rel, what)
        self._pool.submit((self._abs(rel), data, mode, bool(mode & self._umask), mtime, what))

    def write(
        self,
        rel: RelPath,
        pieces: Iterable[bytes | memoryview],
        mode: int,
        mtime: int | None,
        what: str,
    ) -> None:
        """Create regular file ``rel`` from ``pieces`` with permission bits ``mode``."""
        mode = self._check_mode(mode, rel, what)
        fd = self._create(rel, mode, what)
        try:
            for piece in pieces:
                _write_all(fd, piece)
            self._finish(fd, mode, mtime)
        except OSError as exc:
            raise _install_error(exc, rel, what) from exc
        finally:
            os.close(fd)

    def _write_one(
        self, rel: str, data: bytes | memoryview, mode: int, mtime: int | None, what: str
    ) -> None:
        """:meth:`write` for one buffer, the path most files take."""
        mode = self._check_mode(mode, rel, what)
        fd = self._create(rel, mode, what)
        try:
            _write_all(fd, data)
            self._finish(fd, mode, mtime)
        except OSError as exc:
            raise _install_error(exc, rel, what) from exc
        finally:
            os.close(fd)

    def _create(self, rel: str, mode: int, what: str) -> int:
        """Open a new file ``rel`` for writing (never an existing one, never via a symlink)."""
        self._parent(rel, what)
        try:
            return os.open(self._abs(rel), _OPEN_FLAGS, mode)
        except FileExistsError:
            raise UnsafeArchiveError(f"{what}: {rel!r} is written twice") from None
        except OSError as exc:
            raise _install_error(exc, rel, what) from exc

    def _finish(self, fd: int, mode: int, mtime: int | None) -> None:
        if mode & self._umask:  # the umask took bits the package asks for
            os.fchmod(fd, mode)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))

    def symlink(self, rel: RelPath, target: str, what: str) -> None:
        """Create symlink ``rel`` pointing at ``target`` (kept verbatim)."""
        if not target or "\0" in target:
            raise UnsafeArchiveError(f"{what}: symlink {rel!r} has an invalid target")
        self._parent(rel, what)
        try:
            os.symlink(target, self._abs(rel))
        except FileExistsError:
            raise UnsafeArchiveError(f"{what}: {rel!r} is written twice") from None
        except OSError as exc:
            raise _install_error(exc, rel, what) from exc
        self._symlinks.add(rel)

    def link_from(self, rel: RelPath, source_dir: int, name: str, copy: bool, what: str) -> bool:
        """Create ``rel`` as a hard link to the file ``name`` of the directory open as
        ``source_dir`` (never following a symlink), or as a copy of it when ``copy`` is
        set or the file system refuses the link (``EXDEV``, ``EPERM``, ``EMLINK``).
        True when it was linked.

        The linked inode is another environment's: nothing here (or anywhere in the
        destination) writes into an existing file, it only creates and renames.
        """
        self._parent(rel, what)
        if not copy:
            try:
                os.link(name, self._abs(rel), src_dir_fd=source_dir, follow_symlinks=False)
                return True
            except FileExistsError:
                raise UnsafeArchiveError(f"{what}: {rel!r} is written twice") from None
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise _install_error(exc, rel, what) from exc
        self._copy_from(rel, source_dir, name, what)
        return False

    def _copy_from(self, rel: RelPath, source_dir: int, name: str, what: str) -> None:
        try:
            src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=source_dir)
        except OSError as exc:
            raise _install_error(exc, rel, what) from exc
        try:
            st = os.fstat(src)
            if not stat.S_ISREG(st.st_mode):
                raise InstallError(f"{what}: {rel!r} is no longer a regular file")
            mode = self._check_mode(stat.S_IMODE(st.st_mode), rel, what)
            with open(src, "rb", closefd=False) as fh:
                self.write(rel, iter(lambda: fh.read(1 << 20), b""), mode, None, what)
            os.utime(self._abs(rel), ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        except OSError as exc:
            raise _install_error(exc, rel, what) from exc
        finally:
            os.close(src)

    def rename(self, rel: RelPath, new_rel: RelPath, what: str) -> None:
        """Move a file this destination wrote to ``new_rel`` (never over an existing one)."""
        self.flush()
        self._parent(new_rel, what)
        if os.path.lexists(self._abs(new_rel)):
            raise UnsafeArchiveError(f"{what}: {new_rel!r} is written twice")
        try:
            os.rename(self._abs(rel), self._abs(new_rel))
        except OSError as exc:
            raise _install_error(exc, new_rel, what) from exc
        if rel in self._symlinks:
            self._symlinks.discard(rel)
            self._symlinks.add(new_rel)

    def read(self, rel: RelPath) -> bytes:
        """Read back a regular file this destination wrote (for tar hard links)."""
        self.flush()
        fd = os.open(self._abs(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as fh:
            return fh.read()

    def remove_empty_dirs(self, rel: RelPath, stop: RelPath) -> None:
        """Remove the directories above ``rel`` that are empty, up to and including
        ``stop`` (an ancestor of ``rel``); stop at the first one that is not empty."""
        self.flush()
        parent = rel.rpartition("/")[0]
        while parent and (parent == stop or parent.startswith(stop + "/")):
            try:
                os.rmdir(self._abs(parent))
            except OSError:
                return
            self._dirs.discard(parent)
            parent = parent.rpartition("/")[0]


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)  # one call for nearly every file
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _install_error(exc: OSError, rel: str, what: str) -> InstallError:
    if exc.errno == errno.ENOSPC:
        return InstallError(
            f"{what}: no space left on the device while writing {rel!r}",
            hint="Free some disk space or unpack elsewhere; nothing was left behind.",
        )
    return InstallError(f"{what}: cannot write {rel!r}: {exc.strerror or exc}")
