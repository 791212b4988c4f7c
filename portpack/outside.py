"""Everything portpack creates outside an environment's prefix goes through here.

Output directories, staging directories, activation scripts, archives and
lockfiles live in directories other users may share (``-o /tmp/x``). So:

* files are created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` under an unpredictable
  name and then renamed into place (a rename replaces a symlink planted at the
  target, it never follows it);
* directories are created with ``mkdir`` (which never follows a symlink at the
  name it creates) and remembered, so a failed run removes what it made, and only
  that;
* the final move of an environment never replaces what it did not check
  (``renameat2`` with ``RENAME_NOREPLACE`` / ``RENAME_EXCHANGE`` on Linux);
* every ``OSError`` becomes a :class:`~portpack.errors.UsageError` naming the path.

Standard library only (ctypes is imported lazily, for the final move).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from portpack.errors import UsageError

MARK = ".portpack-"
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: Errors of writing an output file that are the output's, not the input's, fault.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return (exc.strerror or str(exc)).lower()


def output_error(exc: OSError, path: str | os.PathLike[str], what: str) -> UsageError:
    """A one-paragraph error for ``exc`` raised while ``what`` (``"cannot create ..."``)."""
    return UsageError(
        f"{what} {os.fspath(path)}: {_reason(exc)}",
        hint="Choose another output location (one you may write to).",
    )


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise _not_a_directory(path) from None
    except OSError as exc:
        raise output_error(exc, path, "cannot look at") from None


def _not_a_directory(path: Path) -> UsageError:
    for parent in [path, *path.parents]:
        st = _stat_or_none(parent)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            return UsageError(f"{parent} is not a directory (it is in the path {path})")
    return UsageError(f"a component of {path} is not a directory")


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def check_directory(path: str | os.PathLike[str]) -> None:
    """Check, creating nothing, that ``path`` is or can be made a writable directory.

    The nearest existing ancestor must be a directory this process may write to.
    """
    target = Path(os.path.abspath(path))
    existing = target
    while True:
        st = _stat_or_none(existing)
        if st is not None or existing.parent == existing:
            break
        if _lstat(existing) is not None:  # a dangling symlink: mkdir would fail
            raise UsageError(f"{existing} is a symlink to nothing (in the path {target})")
        existing = existing.parent
    if st is None:
        raise UsageError(f"cannot create {target}: no existing directory above it")
    if not stat.S_ISDIR(st.st_mode):
        if existing == target:
            raise UsageError(f"{target} exists and is not a directory")
        raise UsageError(f"{existing} is not a directory (it is in the path {target})")
    if not os.access(existing, os.W_OK | os.X_OK):
        try:
            readonly = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except OSError:
            readonly = False
        reason = "it is on a read-only file system" if readonly else "permission denied"
        raise UsageError(
            f"cannot write to {existing}: {reason}",
            hint="Choose another output location (one you may write to).",
        )


class CreatedDirs:
    """The directories one run created, to remove (if still empty) when it fails."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def make(self, path: str | os.PathLike[str], mode: int = 0o777) -> Path:
        """Create ``path`` and its missing parents; remember each one created."""
        target = Path(os.path.abspath(path))
        missing = []
        probe = target
        while _lstat(probe) is None and probe.parent != probe:
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, mode)
            except FileExistsError:
                if not os.path.isdir(directory):
                    raise UsageError(f"{directory} exists and is not a directory") from None
                continue  # made by someone else meanwhile: not ours to remove
            except NotADirectoryError:
                raise _not_a_directory(directory) from None
            except OSError as exc:
                raise output_error(exc, directory, "cannot create the directory") from None
            self.paths.append(directory)
        st = _stat_or_none(target)
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{target} exists and is not a directory")
        return target

    def remove(self) -> None:
        """Remove the directories made (deepest first) that are still empty."""
        for directory in reversed(self.paths):
            try:
                os.rmdir(directory)
            except OSError:
                break  # not empty (someone else's files) or gone: stop climbing
        self.paths.clear()


def make_private_dir(parent: Path, stem: str) -> Path:
    """Create ``parent/.{stem}.portpack-<pid>-<random>`` with mode 0700."""
    while True:
        path = parent / f".{stem}{MARK}{os.getpid()}-{os.urandom(6).hex()}"
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        except NotADirectoryError:
            raise _not_a_directory(parent) from None
        except OSError as exc:
            raise output_error(exc, parent, "cannot create a directory in") from None
        return path


def remove_own_private_dirs(parent: Path, stem: str) -> None:
    """Remove the directories :func:`make_private_dir` made for ``stem`` in this process.

    For an interrupt that lands between the ``mkdir`` and the caller learning its name.
    """
    for path in parent.glob(f".{stem}{MARK}{os.getpid()}-*"):
        remove_tree(path)


def _check_file_target(target: Path) -> None:
    st = _lstat(target)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"{target} is a directory",
            hint=f"Give a file name, e.g. {target / 'environment.tar'}"
            if target.suffix == ""
            else None,
        )


def check_file(target: str | os.PathLike[str]) -> None:
    """Check, creating nothing, that ``target`` can be written as a file."""
    path = Path(os.path.abspath(target))
    _check_file_target(path)
    check_directory(path.parent)


@contextmanager
def atomic_file(target: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write ``target`` atomically: a new ``O_EXCL|O_NOFOLLOW`` file, renamed on success.

    Missing parent directories are created (and removed again on failure). The
    file gets ``mode`` (less the umask). A failure leaves nothing behind.
    """
    path = Path(os.path.abspath(target))
    _check_file_target(path)
    created = CreatedDirs()
    created.make(path.parent)
    tmp = None
    try:
        while tmp is None:
            candidate = path.parent / f".{path.name}{MARK}{os.getpid()}-{os.urandom(6).hex()}"
            try:
                fd = os.open(candidate, _FILE_FLAGS, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise output_error(exc, path.parent, "cannot create a file in") from None
            tmp = candidate
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), mode & ~_umask())
        _commit(tmp, path)
    except OSError as exc:
        if tmp is not None:
            _unlink(tmp)
        created.remove()
        if exc.errno in _FULL:
            raise output_error(exc, path, "cannot write") from None
        raise
    except BaseException:
        if tmp is not None:
            _unlink(tmp)
        created.remove()
        raise


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """For writers that need a path: yield a name in a private directory, then move it.

    The private directory is made by this process (mode 0700), so nobody can plant
    anything at the yielded name.
    """
    path = Path(os.path.abspath(target))
    _check_file_target(path)
    created = CreatedDirs()
    created.make(path.parent)
    private = None
    try:
        private = make_private_dir(path.parent, path.name)
        tmp = private / path.name
        yield tmp
        os.chmod(tmp, 0o644 & ~_umask())  # in our own mode-0700 directory
        _commit(tmp, path)
    except OSError as exc:
        created.remove()
        if exc.errno in _FULL:
            raise output_error(exc, path, "cannot write") from None
        raise
    except BaseException:
        created.remove()
        raise
    finally:
        if private is not None:
            remove_tree(private)


@contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a private directory to fill; it becomes ``target`` (missing, or an empty
    folder) when the block ends, never replacing what appeared there meanwhile.
    A failure removes it, and the parents made."""
    path = Path(os.path.abspath(target))
    st = _lstat(path)
    if st is not None and (not stat.S_ISDIR(st.st_mode) or any(path.iterdir())):
        what = "not empty" if stat.S_ISDIR(st.st_mode) else "not a folder"
        raise UsageError(f"{path} already exists and is {what}")
    created, tmp = CreatedDirs(), None
    try:
        created.make(path.parent)
        tmp = make_private_dir(path.parent, path.name)
        yield tmp
        tmp.chmod(0o755)
        try:
            if st is not None:
                path.rmdir()  # the empty folder given (fails if no longer empty)
            rename_noreplace(tmp, path)
        except OSError as exc:  # it changed meanwhile: it is left as it is
            raise output_error(exc, path, "cannot move the folder written to") from None
    except BaseException:
        if tmp is not None:
            remove_tree(tmp)
        created.remove()
        raise


def write_text(target: str | os.PathLike[str], text: str, mode: int = 0o644) -> Path:
    """Write ``text`` to ``target`` atomically (see :func:`atomic_file`)."""
    with atomic_file(target, mode) as fh:
        fh.write(text.encode())
    return Path(os.path.abspath(target))


def _commit(tmp: Path, target: Path) -> None:
    try:
        os.rename(tmp, target)  # replaces a symlink at target; never follows it
    except IsADirectoryError:
        raise UsageError(f"{target} is a directory") from None
    except OSError as exc:
        raise output_error(exc, target, "cannot write") from None


def _unlink(path: Path) -> None:
    with suppress(OSError):
        os.unlink(path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_tree(root: str | os.PathLike[str]) -> None:
    """Remove ``root`` and everything below it, best effort, never following a symlink.

    Without recursion (``shutil.rmtree`` recurses once per level and fails on a tree
    of legal depth, such as a package path of 1,200 components).
    """
    stack = [os.fspath(root)]
    stuck: set[str] = set()
    while stack:
        path = stack[-1]
        try:
            entries = list(os.scandir(path))
        except OSError:
            entries = []
        deeper = False
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in stuck:
                        stack.append(entry.path)
                        deeper = True
                else:
                    os.unlink(entry.path)
            except OSError:
                pass
        if deeper:
            continue
        stack.pop()
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            stuck.add(path)


# -- moves that never replace what was not checked ----------------------------------------

_renameat2: Callable[..., int] | bool | None = False


def _libc_renameat2() -> Callable[..., int] | None:
    global _renameat2
    if _renameat2 is False:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            func: Any = libc.renameat2
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            func.argtypes += [ctypes.c_uint]
            func.restype = ctypes.c_int
            _renameat2 = func
        except (OSError, AttributeError, ImportError):
            _renameat2 = None
    return _renameat2 if callable(_renameat2) else None


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2``; False when this system or file system cannot do ``flags``."""
    func = _libc_renameat2()
    if func is None:
        return False
    import ctypes

    if func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; raise :class:`FileExistsError` if ``dst`` exists.

    Without ``RENAME_NOREPLACE`` (old kernels, some file systems, a Python without
    ctypes such as a self-extracting archive's bootstrap): a directory first claims
    ``dst`` with ``mkdir`` (which fails if anything is there) and then replaces only
    that empty directory of its own (a rename never replaces a non-empty one); a
    file is hard-linked to ``dst`` (which fails if anything is there), then unlinked.
    """
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    if not os.path.isdir(src) or os.path.islink(src):
        os.link(src, dst, follow_symlinks=False)
        os.unlink(src)
        return
    os.mkdir(dst, 0o700)
    try:
        os.rename(src, dst)
    except OSError as exc:
        with suppress(OSError):
            os.rmdir(dst)  # our claim, if it is still empty
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(dst)) from exc
        raise


def exchange(a: Path, b: Path) -> None:
    """Swap ``a`` and ``b`` atomically (both must exist).

    Without ``RENAME_EXCHANGE``: ``b`` is moved to a free name, ``a`` to ``b``, and the
    old ``b`` to ``a`` (three renames; only a crash in between shows it).
    """
    if _rename2(a, b, _RENAME_EXCHANGE):
        return
    aside = b.with_name(f".{b.name}{MARK}{os.getpid()}-{os.urandom(6).hex()}-aside")
    os.rename(b, aside)
    try:
        rename_noreplace(a, b)
    except BaseException:
        os.rename(aside, b)
        raise
    os.rename(aside, a)


def same_file(path: Path, expected: os.stat_result) -> bool:
    """True if ``path`` (not followed) is the very file or directory ``expected`` was."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (expected.st_dev, expected.st_ino)
