"""Taking an unchanged package's files from the old environment (``unpack --update``).

Each file is hard linked from the old prefix into the staging directory beside it
(the same file system), or copied where a link is refused; symlinks are made again
with the target they have. The paths are claimed in the same
:class:`~portpack.install.clobbers.ClobberRegistry` the linker uses, in install
order, so clobbering over the new set of packages comes out as in a fresh unpack,
and the package's conda-meta record is rebuilt from the same typed entries.

The old environment is read without following a symlink on the way to a file (each
directory is opened with ``O_NOFOLLOW``), and nothing writes into a linked inode:
the destination only creates new files and renames.
"""

from __future__ import annotations

import errno
import os

from portpack.conda.info import PathEntry
from portpack.conda.record import PackageRecord
from portpack.errors import UsageError
from portpack.install.linker import LinkContext, LinkedPackage
from portpack.paths import RelPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class OldTree:
    """The old environment's directories, opened one component at a time, no symlinks."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._open: tuple[str, int] | None = None
        self.linked = 0
        self.copied = 0

    def dir_fd(self, rel_dir: str, what: str) -> int:
        """A descriptor of directory ``rel_dir`` (``""``: the root), the last one cached."""
        if self._open is not None and self._open[0] == rel_dir:
            return self._open[1]
        self.close()
        fd = self._walk(rel_dir, what)
        self._open = (rel_dir, fd)
        return fd

    def _walk(self, rel_dir: str, what: str) -> int:
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise _gone(self.root, "", exc, what) from None
        for part in rel_dir.split("/") if rel_dir else ():
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _gone(self.root, rel_dir, exc, what) from None
            finally:
                os.close(fd)
            fd = child
        return fd

    def readlink(self, rel: RelPath, what: str) -> str:
        """The target of symlink ``rel``."""
        parent, _, name = rel.rpartition("/")
        try:
            return os.readlink(name, dir_fd=self.dir_fd(parent, what))
        except OSError as exc:
            raise _gone(self.root, rel, exc, what) from None

    def close(self) -> None:
        """Close the cached directory (safe to call more than once)."""
        if self._open is not None:
            os.close(self._open[1])
            self._open = None


def _gone(root: str, rel: str, exc: OSError, what: str) -> UsageError:
    reason = "a symlink is on the way" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else ""
    return UsageError(
        f"{what}: cannot read {os.path.join(root, rel)} in the environment being updated: "
        f"{reason or exc.strerror or exc}",
        hint="It changed while the update ran, or it was changed by hand: the environment "
        "was left as it is. Run the update again (with --force to replace changed files).",
    )


def link_reused(
    ctx: LinkContext, tree: OldTree, record: PackageRecord, files: list[PathEntry], copy: bool
) -> LinkedPackage:
    """Put ``files`` (the package's conda-meta entries, none clobbered) into the new
    environment from ``tree``; ``copy``: never hard link (link scripts will run)."""
    dist = record.dist
    for entry in files:
        target = entry.path
        what = f"package {dist}, file {target}"
        if entry.path_type == "directory":
            ctx.clobbers.claim_dir(target, dist)
            ctx.destination.ensure_dir(target, what)
            continue
        ctx.clobbers.claim_file(target, dist)
        if entry.path_type == "softlink":
            ctx.destination.symlink(target, tree.readlink(target, what), what)
            continue
        parent, _, name = target.rpartition("/")
        source = tree.dir_fd(parent, what)
        if ctx.destination.link_from(target, source, name, copy, what):
            tree.linked += 1
        else:
            tree.copied += 1
    owner = (record.name, dist)
    for entry in files:
        ctx.clobbers.own(entry, owner)
    return LinkedPackage(dist=dist, files=list(files))
