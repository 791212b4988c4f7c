"""An installed environment compared with what its conda-meta records describe.

:func:`scan` walks the prefix (without recursion, following no link) and sorts what
it finds: files no record owns (grouped by the PyPI package they belong to, from
conda's ``pypi`` records and ``*.dist-info/RECORD``), files a record owns whose
type or content changed, and files a record owns that are missing.  Never part of
a package and skipped: ``conda-meta/`` itself, ``__pycache__/*.pyc`` (written by
python when it runs) and a ``CACHEDIR.TAG`` at the top (rattler writes one).
"""

from __future__ import annotations

import csv
import os
import posixpath
import stat
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portpack.errors import PackageError
from portpack.packer.local_files import digest, nofollow_opener, read_small
from portpack.packer.prefix_meta import MAX_METADATA, META_DIR, Installed, PypiRecord

_CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
MISSING = "missing"
#: Paths named per group in a report (the rest are counted).
_LISTED = 10


@dataclass
class PrefixContents:
    """How the prefix differs from what its records describe."""

    unowned: list[str] = field(default_factory=list)
    """Files no conda package owns."""
    groups: list[tuple[str, list[str]]] = field(default_factory=list)
    """Unowned files by the PyPI package they belong to (``label``, paths)."""
    modified: list[str] = field(default_factory=list)
    """``path: reason`` of owned files whose type or content changed."""
    missing: list[str] = field(default_factory=list)
    """Owned files that are not in the prefix."""
    skipped: int = 0
    """Runtime caches and installer files, never part of a package."""
    checked: int = 0
    """Owned paths compared with their records."""

    @property
    def clean(self) -> bool:
        """Whether the prefix is exactly what its records describe."""
        return not (self.unowned or self.modified or self.missing)

    def describe(self) -> str:
        """The differences, one line per group, with counts and the first paths."""
        lines = []
        if self.unowned:
            lines.append(f"  {_count(len(self.unowned), 'file')} that no conda package owns:")
            grouped: set[str] = set()
            for label, paths in self.groups:
                grouped.update(paths)
                lines.append(f"    {label}: {_count(len(paths), 'file')} ({_listing(paths)})")
            other = [p for p in self.unowned if p not in grouped]
            if other:
                what = "other file" if self.groups else "file"
                lines.append(f"    {_count(len(other), what)}: {_listing(other)}")
        if self.modified:
            lines.append(
                f"  {_count(len(self.modified), 'modified file')}: {_listing(self.modified)}"
            )
        if self.missing:
            lines.append(f"  {_count(len(self.missing), 'missing file')}: {_listing(self.missing)}")
        return "\n".join(lines)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _listing(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_LISTED])
    return shown if len(paths) <= _LISTED else f"{shown}, and {len(paths) - _LISTED} more"


def scan(root: Path, installed: list[Installed], pypi: Sequence[PypiRecord] = ()) -> PrefixContents:
    """Compare the files under ``root`` with what the records say."""
    owned: dict[str, dict[str, Any]] = {}
    for item in installed:
        owned.update(item.paths)
    contents = PrefixContents(checked=len(owned))
    for rel in _walk(root):
        if rel in owned:
            continue
        if _never_packaged(root, rel):
            contents.skipped += 1
        else:
            contents.unowned.append(rel)
    contents.unowned.sort()
    contents.groups = _groups(root, contents.unowned, pypi)
    items = list(owned.items())
    workers = max(1, min(os.cpu_count() or 2, len(items) // 64))
    batches = [items[i::workers] for i in range(workers)]  # hashlib lets threads run
    with ThreadPoolExecutor(workers) as pool:
        checked = pool.map(lambda batch: [(rel, _check(root, rel, e)) for rel, e in batch], batches)
        problems = sorted(pair for batch in checked for pair in batch)
    for rel, problem in problems:
        if problem == MISSING:
            contents.missing.append(rel)
        elif problem:
            contents.modified.append(f"{rel} ({problem})")
    return contents


def _walk(root: Path) -> list[str]:
    """Everything below ``root`` but directories (relative, ``/``-separated), not following
    links, without recursion (a hostile prefix may nest thousands of directories)."""
    found = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        path = os.path.join(root, rel_dir)
        try:
            with os.scandir(path) as scan:
                entries = list(scan)
        except OSError as exc:
            raise PackageError(f"cannot read {path}: {exc.strerror or exc}") from None
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if not entry.is_dir(follow_symlinks=False):
                found.append(rel)  # files, symlinks (to directories too), FIFOs, sockets
            elif rel != META_DIR:
                pending.append(rel)
    return found


def _never_packaged(root: Path, rel: str) -> bool:
    """Python's bytecode caches, and the cache tag rattler writes at the top."""
    parent, _, name = rel.rpartition("/")
    if name.endswith(".pyc") and posixpath.basename(parent) == "__pycache__":
        return True
    if rel == "CACHEDIR.TAG":
        try:
            with open(root / rel, "rb", opener=nofollow_opener) as fh:
                return fh.read(len(_CACHEDIR_SIGNATURE)) == _CACHEDIR_SIGNATURE
        except OSError:
            return False
    return False


def _groups(
    root: Path, unowned: list[str], pypi: Sequence[PypiRecord]
) -> list[tuple[str, list[str]]]:
    """Unowned files by PyPI package: conda's pypi records, then ``*.dist-info/RECORD``."""
    left = set(unowned)
    groups = []
    for record in pypi:
        paths = sorted(left & record.paths)
        if paths:
            groups.append((record.label, paths))
            left -= set(paths)
    for rel in unowned:
        parent, _, name = rel.rpartition("/")
        if name != "RECORD" or not parent.endswith(".dist-info") or rel not in left:
            continue
        members = _record_members(root, rel) | {p for p in left if p.startswith(f"{parent}/")}
        paths = sorted(left & members)
        stem = posixpath.basename(parent)[: -len(".dist-info")]
        dist, _, version = stem.partition("-")
        installer = _installer(root, f"{parent}/INSTALLER")
        groups.append((f"PyPI package {dist} {version} (installed by {installer})", paths))
        left -= set(paths)
    return groups


def _record_members(root: Path, rel: str) -> set[str]:
    """The paths a wheel's ``RECORD`` lists, relative to the prefix."""
    site = posixpath.dirname(posixpath.dirname(rel))
    text = read_small(root / rel, MAX_METADATA)
    members = set()
    try:
        for row in csv.reader(text.splitlines()):
            if row and row[0]:
                members.add(posixpath.normpath(posixpath.join(site, row[0])))
    except csv.Error:
        pass  # a broken RECORD: its files are listed one by one instead
    return members


def _installer(root: Path, rel: str) -> str:
    text = read_small(root / rel, 200).strip().splitlines()
    name = text[0] if text else ""
    return "".join(c for c in name if c.isprintable())[:40] or "an unknown installer"


def _check(root: Path, rel: str, entry: Mapping[str, Any]) -> str | None:
    """``None`` if the path is as recorded, else what differs (or ``MISSING``)."""
    path = os.path.join(root, rel)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    kind = entry.get("path_type", "hardlink")
    if kind == "directory":
        return None if stat.S_ISDIR(st.st_mode) else "not a directory"
    if kind == "softlink":
        return None if stat.S_ISLNK(st.st_mode) else "not a symlink"
    if not stat.S_ISREG(st.st_mode):
        return "a symlink, not a file" if stat.S_ISLNK(st.st_mode) else "not a regular file"
    placeholder = entry.get("prefix_placeholder")
    size = entry.get("size_in_bytes")
    if isinstance(size, int) and not placeholder and st.st_size != size:
        return f"size {st.st_size}, recorded {size}"
    want = entry.get("sha256_in_prefix") or (None if placeholder else entry.get("sha256"))
    if not isinstance(want, str) or not want:
        return None
    try:
        actual = digest(path, "sha256", follow=False)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return None if actual == want.lower() else "content differs"
