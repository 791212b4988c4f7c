"""``pack --prefix``: an installed conda environment as the records to pack.

The environment's ``conda-meta/*.json`` records become the lock-equivalent record list
that :func:`portpack.pack` packs exactly as it packs a lock.  Each package is taken, as
its original ``.conda`` / ``.tar.bz2`` file, from the first place holding a copy whose
sha256 (md5 when the record has none) matches the record: portpack's own cache, the
file the record names (conda's ``package_tarball_full_path``), conda's package caches
(``$CONDA_PKGS_DIRS``, condarc's ``pkgs_dirs``, ``<root>/pkgs``, ``~/.conda/pkgs``) and
pixi's and rattler's (``$PIXI_CACHE_DIR``, ``$RATTLER_CACHE_DIR``,
``~/.cache/rattler/cache``, each with ``pkgs/``).  A copy that does not match is
skipped with a warning; without a good copy the package is downloaded by the record's
URL through the fetcher (its cache, mirrors and credentials).

Before anything is fetched the prefix is compared with its records.  Files that no
record owns (pip installs, edits, the files of records of channel ``pypi``, which
conda writes for PyPI packages), files a record owns whose type or content changed,
and files a record owns that are missing are refused
(:class:`~portpack.errors.PrefixContentError`, which lists them) unless
``unowned="ignore"``: then the packages are packed as published, so unowned files are
left out and modified or missing files come back as their package has them.  Never
part of a package and skipped: ``conda-meta/`` itself, ``__pycache__/*.pyc`` (written
by python when it runs) and a ``CACHEDIR.TAG`` at the top (rattler writes one).
"""

from __future__ import annotations

import csv
import hashlib
import os
import posixpath
import stat
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portpack._platform import current_platform
from portpack.conda.record import PackageRecord
from portpack.errors import (
    FetchError,
    PackageError,
    PrefixContentError,
    UnsafeArchiveError,
    UsageError,
)
from portpack.net.config import NetworkConfig
from portpack.net.fetch import Download, Fetcher
from portpack.net.transport import Transport
from portpack.paths import safe_relpath
from portpack.progress import Reporter
from portpack.resolve.lockfile import LockedEnvironment

#: What ``unowned`` may be: refuse to pack, or pack the packages as published.
UNOWNED_POLICIES = ("refuse", "ignore")
META_DIR = "conda-meta"
_EXTENSIONS = (".conda", ".tar.bz2")
#: Keys of a conda-meta record that describe the installation, not the package.
_PREFIX_KEYS = frozenset(
    {
        "files",
        "paths_data",
        "link",
        "requested_spec",
        "requested_specs",
        "extracted_package_dir",
        "package_tarball_full_path",
        "installed_system_menus",
        "auth",
    }
)
_CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
_MISSING = "missing"
_ABSENT = "absent"
#: Paths named per group in a report (the rest are counted).
_LISTED = 10
#: Largest conda-meta record, condarc or RECORD file read.
_MAX_METADATA = 256 << 20
_MAX_CONDARC = 1 << 20
_CHUNK = 1 << 20
#: Where conda reads condarc files (conda's own search path, POSIX).
_CONDARC_PATHS = (
    "/etc/conda/.condarc",
    "/etc/conda/condarc",
    "/etc/conda/condarc.d/",
    "/var/lib/conda/.condarc",
    "/var/lib/conda/condarc",
    "/var/lib/conda/condarc.d/",
    "$CONDA_ROOT/.condarc",
    "$CONDA_ROOT/condarc",
    "$CONDA_ROOT/condarc.d/",
    "$XDG_CONFIG_HOME/conda/.condarc",
    "$XDG_CONFIG_HOME/conda/condarc",
    "$XDG_CONFIG_HOME/conda/condarc.d/",
    "~/.config/conda/.condarc",
    "~/.config/conda/condarc",
    "~/.config/conda/condarc.d/",
    "~/.conda/.condarc",
    "~/.conda/condarc",
    "~/.conda/condarc.d/",
    "~/.condarc",
    "$CONDA_PREFIX/.condarc",
    "$CONDA_PREFIX/condarc",
    "$CONDA_PREFIX/condarc.d/",
    "$CONDARC",
)


def _dist(record: Mapping[str, Any]) -> str:
    return f"{record['name']}-{record['version']}-{record['build']}"


def _key(record: Mapping[str, Any]) -> tuple[str, str]:
    return str(record.get("fn")), str(record.get("sha256") or record.get("md5") or "").lower()


@dataclass
class _Installed:
    """One package record of ``conda-meta``."""

    record: dict[str, Any]
    """The repodata part (what a lock holds)."""
    source: str
    """``conda-meta/<file>.json``."""
    paths: dict[str, dict[str, Any]]
    """Each path it owns, with its ``paths_data`` entry (empty when only in ``files``)."""
    tarball_dirs: list[Path]
    """Directories the record names as holding its package file."""


@dataclass
class _PypiRecord:
    """A record conda wrote for a PyPI package (channel ``pypi``): no conda package."""

    label: str
    paths: set[str]


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


@dataclass
class PrefixSource:
    """An environment read for packing: its records, contents and package caches."""

    prefix: Path
    locked: LockedEnvironment
    """The lock-equivalent records, dependencies first."""
    contents: PrefixContents
    package_dirs: list[Path]
    """Package caches searched (existing directories only), in order."""
    _tarball_dirs: dict[tuple[str, str], list[Path]] = field(default_factory=dict)

    def fetcher(
        self,
        cache_dir: Path,
        concurrency: int,
        reporter: Reporter | None = None,
        *,
        network: NetworkConfig | None = None,
    ) -> Fetcher:
        """A :class:`~portpack.net.fetch.Fetcher` that looks in the package caches first."""
        return _PrefixFetcher(self, cache_dir, concurrency, reporter, network=network)

    def locked_environment(self, *_args: object, **_options: object) -> LockedEnvironment:
        """Stands in for :func:`portpack.resolve.locking.locked_environment`: the records."""
        return self.locked

    def candidates(self, record: Mapping[str, Any]) -> list[Path]:
        """Where the package file of ``record`` may be, most specific first."""
        fn = str(record["fn"])
        seen: dict[Path, None] = {}
        for directory in [*self._tarball_dirs.get(_key(record), []), *self.package_dirs]:
            seen.setdefault(directory / fn)
        return list(seen)

    def is_prefix_record(self, record: Mapping[str, Any]) -> bool:
        return _key(record) in self._tarball_dirs


class _PrefixFetcher(Fetcher):
    """Takes each package of the environment from a package cache, else downloads it."""

    def __init__(
        self,
        source: PrefixSource,
        cache_dir: Path,
        concurrency: int,
        reporter: Reporter | None,
        *,
        network: NetworkConfig | None,
    ) -> None:
        super().__init__(cache_dir, concurrency, reporter, network=network)
        self._source = source

    def fetch(self, client: Transport | None, download: Download) -> Path:
        if download.record is None or not self._source.is_prefix_record(download.record.raw):
            return super().fetch(client, download)  # an injected wheel or package
        record = download.record.raw
        rejected = []
        own = self.cache_path(download)
        for candidate in [own, *self._source.candidates(record)]:
            problem = _verify(candidate, record)
            if problem is None:
                self.reporter.on_download_complete(str(record["name"]), cached=True)
                return candidate
            if problem == _ABSENT:
                continue
            rejected.append(f"{candidate} ({problem})")
            if candidate != own:  # the fetcher warns about its own entry itself
                self.reporter.warning(
                    f"{candidate} is not the package {_dist(record)} of the environment "
                    f"({problem}); not using it"
                )
        if not record.get("url"):
            raise FetchError(
                f"package {_dist(record)} is in none of the package caches and its record "
                "has no URL to download it from",
                hint=self._looked(record, rejected),
            )
        try:
            return super().fetch(client, download)
        except FetchError as exc:
            raise FetchError(
                f"package {_dist(record)} is in none of the package caches, and {exc.message}",
                url=exc.url,
                hint=self._looked(record, rejected) + (f"\n{exc.hint}" if exc.hint else ""),
            ) from exc

    def _looked(self, record: Mapping[str, Any], rejected: list[str]) -> str:
        places = [
            str(self.cache_dir / "pkgs"),
            *(str(p.parent) for p in self._source.candidates(record)),
        ]
        text = f"Looked for {record['fn']} in: {', '.join(places)}."
        if rejected:
            text += f" Not matching the record: {'; '.join(rejected)}."
        return text + " Put the file in one of them or name its directory in $CONDA_PKGS_DIRS."


def read_prefix(
    prefix: str | os.PathLike[str],
    *,
    platform: str | None = None,
    unowned: str | None = None,
    reporter: Reporter | None = None,
) -> PrefixSource:
    """Read the environment at ``prefix`` for packing (see the module docstring).

    ``unowned`` is ``"refuse"`` (the default) or ``"ignore"``.  Raises
    :class:`UsageError` for a directory that is not an environment,
    :class:`PackageError` for a malformed or unsafe record and
    :class:`PrefixContentError` for what the records do not describe.
    """
    policy = unowned or "refuse"
    if policy not in UNOWNED_POLICIES:
        raise UsageError(f"unknown --unowned {policy!r}; choose {' or '.join(UNOWNED_POLICIES)}")
    reporter = reporter or Reporter()
    root = Path(prefix).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"--prefix {prefix}: no such directory")
    if not (root / META_DIR).is_dir():
        raise UsageError(f"{root} is not a conda environment (it has no {META_DIR} directory)")
    installed, pypi = _read_records(root / META_DIR)
    if not installed:
        what = f" (only PyPI records: {', '.join(p.label for p in pypi)})" if pypi else ""
        raise UsageError(f"the environment {root} has no conda packages to pack{what}")
    platform = _platform_of(installed, platform, root)
    contents = scan(root, installed, pypi)
    if not contents.clean:
        summary = contents.describe()
        if policy == "refuse":
            raise PrefixContentError(
                f"the environment {root} holds what its conda records do not describe:\n{summary}",
                unowned=contents.unowned,
                modified=contents.modified,
                missing=contents.missing,
                hint="portpack packs the environment's conda packages as published. To pack "
                "anyway, pass --unowned=ignore: files no package owns are left out, and "
                "modified or missing files come back as their package has them. Add PyPI "
                "packages as wheels with --inject FILE.whl.",
            )
        reporter.warning(f"packing the conda packages of {root} as published:\n{summary}")
    from portpack.packer.inject import install_order

    by_name = sorted(installed, key=lambda i: str(i.record["name"]))
    records = install_order([i.record for i in by_name])
    return PrefixSource(
        prefix=root,
        locked=LockedEnvironment(
            platform,
            [PackageRecord.from_json(r, f"{root}/{META_DIR}", PackageError) for r in records],
        ),
        contents=contents,
        package_dirs=package_dirs(root),
        _tarball_dirs={_key(i.record): i.tarball_dirs for i in installed},
    )


# -- conda-meta ---------------------------------------------------------------------


def _read_records(meta: Path) -> tuple[list[_Installed], list[_PypiRecord]]:
    installed: list[_Installed] = []
    pypi: list[_PypiRecord] = []
    names: dict[str, str] = {}
    for path in sorted(meta.glob("*.json")):
        source = f"{META_DIR}/{path.name}"
        doc = _load_json(path, source)
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), str) and doc[k] for k in ("name", "version", "build")
        ):
            raise PackageError(f"{source} is not a conda package record (no name, version, build)")
        paths = _owned_paths(doc, source)
        if _is_pypi(doc):
            label = f"PyPI package {doc['name']} {doc['version']} ({source}, channel pypi)"
            pypi.append(_PypiRecord(label, set(paths)))
            continue
        dist = _dist(doc)
        fn = doc.get("fn")
        if not isinstance(fn, str) or not _plain_name(fn) or not fn.endswith(_EXTENSIONS):
            raise PackageError(f"{source}: package {dist} has an invalid file name {fn!r}")
        if not (_is_hex(doc.get("sha256"), 64) or _is_hex(doc.get("md5"), 32)):
            raise PackageError(
                f"{source}: package {dist} has no valid sha256 or md5, so no package file "
                "can be verified against it"
            )
        name = str(doc["name"])
        if name in names:
            raise PackageError(
                f"the environment has two records of {name}: {names[name]}, {source}"
            )
        names[name] = source
        record = {k: v for k, v in doc.items() if k not in _PREFIX_KEYS}
        if not isinstance(record.get("url"), str):
            record["url"] = _url_from_channel(record)
        installed.append(_Installed(record, source, paths, _tarball_dirs(doc, fn)))
    return installed, pypi


def _load_json(path: Path, source: str) -> Any:
    import json

    try:
        with open(path, "rb", opener=_nofollow) as fh:  # never a FIFO, device or symlink
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise PackageError(f"{source} is not a regular file")
            data = fh.read(_MAX_METADATA + 1)
        if len(data) > _MAX_METADATA:
            raise PackageError(f"{source} is larger than {_MAX_METADATA >> 20} MiB")
        return json.loads(data)
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read the record {source}: {exc}") from exc


def _owned_paths(doc: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    owned: dict[str, dict[str, Any]] = {}
    paths_data = doc.get("paths_data")
    entries = paths_data.get("paths") if isinstance(paths_data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("_path"), str):
            raise PackageError(f"{source}: malformed paths_data entry {entry!r:.80}")
        owned[_checked(entry["_path"], source)] = entry
    files = doc.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise PackageError(f"{source}: 'files' is not a list of paths")
    for name in files:
        owned.setdefault(_checked(name, source), {})
    return owned


def _checked(path: str, source: str) -> str:
    try:
        return safe_relpath(path, source)
    except UnsafeArchiveError as exc:
        raise PackageError(f"{exc.message}; the record cannot be trusted") from None


def _is_pypi(doc: Mapping[str, Any]) -> bool:
    """conda's records of PyPI packages: channel and subdir ``pypi``, build ``pypi_0``."""
    return doc.get("channel") == "pypi" or doc.get("subdir") == "pypi"


def _plain_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


def _is_hex(value: Any, length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == length
        and all(c in "0123456789abcdef" for c in value.lower())
    )


def _url_from_channel(record: Mapping[str, Any]) -> str:
    """``<channel>/<subdir>/<fn>`` when the channel is a URL, else ``""`` (cannot download)."""
    channel = record.get("channel")
    if isinstance(channel, str) and "://" in channel:
        return f"{channel.rstrip('/')}/{record.get('subdir') or 'noarch'}/{record['fn']}"
    return ""


def _tarball_dirs(doc: Mapping[str, Any], fn: str) -> list[Path]:
    """Directories the record names: its tarball's and its extracted directory's parent."""
    dirs = []
    tarball = doc.get("package_tarball_full_path")
    if isinstance(tarball, str) and os.path.isabs(tarball):
        base = os.path.basename(tarball)
        if base == fn or fn.startswith(f"{base}."):  # some write it without the extension
            dirs.append(Path(tarball).parent)
    extracted = doc.get("extracted_package_dir")
    if isinstance(extracted, str) and os.path.isabs(extracted):
        dirs.append(Path(extracted).parent)
    return dirs


def _platform_of(installed: list[_Installed], platform: str | None, root: Path) -> str:
    subdirs = sorted({str(i.record.get("subdir") or "noarch") for i in installed} - {"noarch"})
    if len(subdirs) > 1:
        raise PackageError(f"the environment {root} mixes packages for {', '.join(subdirs)}")
    found = subdirs[0] if subdirs else None
    if platform and found and platform != found:
        raise UsageError(f"the environment {root} is for {found}, not {platform}")
    return platform or found or current_platform()


# -- the prefix against its records -------------------------------------------------


def scan(
    root: Path, installed: list[_Installed], pypi: Sequence[_PypiRecord] = ()
) -> PrefixContents:
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
        if problem == _MISSING:
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
            with open(root / rel, "rb", opener=_nofollow) as fh:
                return fh.read(len(_CACHEDIR_SIGNATURE)) == _CACHEDIR_SIGNATURE
        except OSError:
            return False
    return False


def _groups(
    root: Path, unowned: list[str], pypi: Sequence[_PypiRecord]
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
    text = _read_small(root / rel, _MAX_METADATA)
    members = set()
    try:
        for row in csv.reader(text.splitlines()):
            if row and row[0]:
                members.add(posixpath.normpath(posixpath.join(site, row[0])))
    except csv.Error:
        pass  # a broken RECORD: its files are listed one by one instead
    return members


def _installer(root: Path, rel: str) -> str:
    text = _read_small(root / rel, 200).strip().splitlines()
    name = text[0] if text else ""
    return "".join(c for c in name if c.isprintable())[:40] or "an unknown installer"


def _read_small(path: Path, limit: int, *, follow: bool = False) -> str:
    try:
        with open(path, "rb", opener=_follow if follow else _nofollow) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return ""
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _nofollow(path: str, flags: int) -> int:
    return _follow(path, flags | getattr(os, "O_NOFOLLOW", 0))


def _follow(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _check(root: Path, rel: str, entry: Mapping[str, Any]) -> str | None:
    """``None`` if the path is as recorded, else what differs (or ``_MISSING``)."""
    path = os.path.join(root, rel)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return _MISSING
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
        actual = _digest(path, "sha256", follow=False)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return None if actual == want.lower() else "content differs"


def _digest(path: str | os.PathLike[str], algorithm: str, *, follow: bool) -> str:
    """Hash a regular file; anything else (a FIFO, a device) is refused, never read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        digest = hashlib.new(algorithm)
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, record: Mapping[str, Any]) -> str | None:
    """``None`` if ``path`` is the record's package file, ``_ABSENT``, or what is wrong."""
    try:
        st = path.stat()
    except OSError:
        return _ABSENT
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    size = record.get("size")
    if isinstance(size, int) and st.st_size != size:
        return f"{st.st_size} bytes, the record says {size}"
    algorithm = "sha256" if record.get("sha256") else "md5"
    expected = str(record.get(algorithm)).lower()
    try:
        actual = _digest(path, algorithm, follow=True)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return None if actual == expected else f"{algorithm} {actual}, the record says {expected}"


# -- package caches -----------------------------------------------------------------


def package_dirs(prefix: Path, environ: Mapping[str, str] | None = None) -> list[Path]:
    """The package caches of conda, mamba, pixi and rattler that exist, in search order."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    roots = _conda_roots(prefix, env)
    dirs: list[str | Path] = [d for d in env.get("CONDA_PKGS_DIRS", "").split(",") if d.strip()]
    dirs += _condarc_pkgs_dirs(roots, prefix, env, home)
    dirs += [root / "pkgs" for root in roots]
    dirs.append(home / ".conda" / "pkgs")
    for var in ("PIXI_CACHE_DIR", "RATTLER_CACHE_DIR"):
        if env.get(var):
            dirs.append(Path(env[var]) / "pkgs")
    xdg = env.get("XDG_CACHE_HOME")
    if xdg:
        dirs.append(Path(xdg) / "pixi" / "pkgs")
    base = home / "Library" / "Caches" if sys.platform == "darwin" else Path(xdg or home / ".cache")
    dirs.append(base / "rattler" / "cache" / "pkgs")
    out: dict[Path, None] = {}
    for entry in dirs:
        path = Path(os.path.expandvars(os.path.expanduser(str(entry).strip())))
        if path.is_absolute() and path.is_dir():
            out.setdefault(path)
    return list(out)


def _conda_roots(prefix: Path, env: Mapping[str, str]) -> list[Path]:
    """Installations the prefix may belong to: ``<root>/envs/<name>``, itself, the env's."""
    roots = [prefix]
    if prefix.parent.name == "envs":
        roots.insert(0, prefix.parent.parent)
    for var in ("CONDA_ROOT", "MAMBA_ROOT_PREFIX"):
        if env.get(var):
            roots.append(Path(env[var]))
    if env.get("CONDA_EXE"):
        roots.append(Path(env["CONDA_EXE"]).parent.parent)
    return list(dict.fromkeys(roots))


def _condarc_pkgs_dirs(
    roots: list[Path], prefix: Path, env: Mapping[str, str], home: Path
) -> list[str]:
    """``pkgs_dirs`` of every condarc conda would read (unreadable ones are skipped)."""
    values = {
        "CONDA_ROOT": [str(r) for r in roots],
        "CONDA_PREFIX": list(dict.fromkeys([str(prefix), env.get("CONDA_PREFIX", "")])),
        "XDG_CONFIG_HOME": [env.get("XDG_CONFIG_HOME", "")],
        "CONDARC": [env.get("CONDARC", "")],
    }
    files: list[Path] = []
    for template in _CONDARC_PATHS:
        variable = template[1:].split("/", 1)[0] if template.startswith("$") else None
        for value in values.get(variable, [""]) if variable else [""]:
            if variable and not value:
                continue
            text = template.replace(f"${variable}", value) if variable else template
            if text.startswith("~"):
                text = str(home) + text[1:]
            path = Path(text)
            if template.endswith("condarc.d/"):
                files += sorted(p for p in path.glob("*.y*ml") if p.suffix in (".yml", ".yaml"))
            else:
                files.append(path)
    dirs: list[str] = []
    for path in dict.fromkeys(files):
        dirs += _pkgs_dirs_of(path)
    return dirs


def _pkgs_dirs_of(path: Path) -> list[str]:
    try:
        if not path.is_file():
            return []
        text = _read_small(path, _MAX_CONDARC, follow=True)
        import yaml

        doc = yaml.safe_load(text)
    except Exception:  # a broken condarc: conda would complain, we just look elsewhere
        return []
    entries = doc.get("pkgs_dirs") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries[:100] if isinstance(e, str)]
