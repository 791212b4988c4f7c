"""Install one package from its streamed payload tar into a :class:`Destination`.

This applies the conda install semantics: placeholder replacement, noarch python
remapping, symlinks, empty directories, entry points; and returns what goes into
the package's conda-meta record.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from portpack.conda.info import PackageInfo, PathEntry
from portpack.conda.tarstream import DIRECTORY, HARDLINK, SYMLINK, ChunkReader, Member, iter_members
from portpack.errors import PackageError, UnsafeArchiveError
from portpack.install.clobbers import ClobberRegistry
from portpack.install.destination import Destination
from portpack.install.noarch import EntryPoint, PythonInfo
from portpack.install.placeholders import replace_binary, replace_text
from portpack.paths import RelPath, safe_relpath

#: An installed path: the package's paths.json entry, completed in place by the linker.
InstalledFile = PathEntry


#: Files with placeholders are patched in memory; larger ones are refused.
MAX_PATCHED_FILE = 1 << 30


@dataclass
class LinkContext:
    """What every package's installation needs to know."""

    destination: Destination
    prefix: str
    """The final, absolute prefix (placeholders are replaced with it)."""
    python: PythonInfo | None
    warn: Callable[[str], None] = lambda message: None
    """Receives warnings (clobbered files, suspicious symlinks)."""
    strict: bool = False
    """Refuse symlinks that point outside the prefix instead of warning."""
    now: int = field(default_factory=lambda: int(time.time()))
    defer_clobbers: bool = False
    """The install order is known only at the end (pixi-pack archives): warn at settle."""
    clobbers: ClobberRegistry = field(init=False)
    """Who wrote each path so far; resolves clobbering (rattler's rule)."""

    def __post_init__(self) -> None:
        self.clobbers = ClobberRegistry(
            self.destination, lambda message: self.warn(message), quiet=self.defer_clobbers
        )


@dataclass
class LinkedPackage:
    """The outcome of installing one package."""

    dist: str
    files: list[InstalledFile]


def link_package(
    ctx: LinkContext, dist: str, info: PackageInfo, payload: ChunkReader
) -> LinkedPackage:
    """Write the package's payload and entry points; return its installed files."""
    python = _python_for(ctx, dist, info)
    # index.json's name was checked (pkginfo.read_info): it names __clobbers__/<name>/.
    owner = (str(info.index.get("name") or dist), dist)
    wanted = {p.path: p for p in info.paths}
    originals: dict[str, bytes] = {}
    for member in iter_members(payload):
        name = safe_relpath(member.name, f"package {dist}")
        entry = wanted.get(name)
        if entry is None:
            if not info.legacy:
                continue
            entry = wanted[name] = PathEntry(path=name)
        if not entry.installed:
            name = entry.path  # the same path; keep paths.json's string, drop the tar's
        what = f"package {dist}, file {name}"
        target = python.map_path(name, what) if python else name
        if member.type != DIRECTORY:
            ctx.clobbers.claim_file(target, dist)
        else:
            ctx.clobbers.claim_dir(target, dist)
        if member.type == SYMLINK:
            _check_symlink_target(ctx, target, member.linkname, what)
            ctx.destination.symlink(target, member.linkname, what)
            record = _record(entry, target, "softlink")
            # As rattler records it: the digest of the link's target string.
            record.sha256_in_prefix = hashlib.sha256(member.linkname.encode()).hexdigest()
        elif member.type == DIRECTORY:
            ctx.destination.ensure_dir(target, what)
            if entry.path_type == "directory":
                _record(entry, target, "directory")
        elif member.is_file:
            _write_member(ctx, entry, target, member, payload, what, originals)
        elif member.type == HARDLINK:
            data = _hardlink_source(ctx, member.linkname, wanted, originals, what)
            _write_file(ctx, entry, target, data, member, what, originals)
        else:
            raise UnsafeArchiveError(
                f"{what}: refusing tar member of type {member.type!r} (device, FIFO or unknown)"
            )
    _create_missing_directories(ctx, info, wanted, python, dist)
    del wanted, originals  # before the owners table grows by as many paths
    files = [p for p in info.paths if p.installed]
    if info.entry_points:
        files += _entry_points(ctx, dist, info, python)
    for record in files:
        ctx.clobbers.own(record, owner)
    return LinkedPackage(dist=dist, files=files)


def _check_symlink_target(ctx: LinkContext, target: RelPath, link: str, what: str) -> None:
    if link.startswith("/"):
        inside = link == ctx.prefix or link.startswith(ctx.prefix.rstrip("/") + "/")
    else:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(target), link))
        inside = not (resolved == ".." or resolved.startswith("../"))
    if inside:
        return
    message = f"{what}: symlink {target} points outside the environment ({link})"
    if ctx.strict:
        raise UnsafeArchiveError(message)
    ctx.warn(message)


def _python_for(ctx: LinkContext, dist: str, info: PackageInfo) -> PythonInfo | None:
    if info.noarch != "python":
        return None
    if ctx.python is None:
        raise PackageError(
            f"package {dist} is a noarch python package but the environment has no python"
        )
    return ctx.python


def _record(entry: PathEntry, target: RelPath, path_type: str) -> InstalledFile:
    """Turn ``entry`` into the record of what was installed at ``target``."""
    entry.path, entry.path_type, entry.installed = target, path_type, True
    entry.placeholder = entry.file_mode = None  # set again for a patched file
    return entry


#: Files up to this size are handed to the destination as one slice of the stream.
_SMALL_FILE = 1 << 20


def _write_member(
    ctx: LinkContext,
    entry: PathEntry,
    target: RelPath,
    member: Member,
    payload: ChunkReader,
    what: str,
    originals: dict[str, bytes],
) -> InstalledFile:
    """Write a regular tar member, streaming large unpatched files piece by piece."""
    if entry.placeholder is None and member.size > _SMALL_FILE:
        record = _record(entry, target, "hardlink")
        ctx.destination.write(target, payload.pieces(member.size), member.mode, member.mtime, what)
        if record.size is None:
            record.size = member.size
        return record
    if entry.placeholder is not None and member.size > MAX_PATCHED_FILE:
        raise PackageError(
            f"{what}: a file with a prefix placeholder of {member.size} bytes is larger than "
            f"portpack patches in memory ({MAX_PATCHED_FILE} bytes)"
        )
    return _write_file(ctx, entry, target, payload.read(member.size), member, what, originals)


def _hardlink_source(
    ctx: LinkContext,
    linkname: str,
    wanted: dict[RelPath, PathEntry],
    originals: dict[str, bytes],
    what: str,
) -> bytes:
    """The original content of the earlier member a tar hard link points at."""
    source = safe_relpath(linkname, what)
    if source in originals:
        return originals[source]
    entry = wanted.get(source)
    if entry is None or not entry.installed or entry.path_type != "hardlink":
        raise UnsafeArchiveError(f"{what}: hard link to unknown member {source!r}")
    return ctx.destination.read(entry.path)


def _write_file(
    ctx: LinkContext,
    entry: PathEntry,
    target: RelPath,
    data: bytes | memoryview,
    member: Member,
    what: str,
    originals: dict[str, bytes],
) -> InstalledFile:
    """Write one file from memory, replacing its placeholder if it has one."""
    source, placeholder, file_mode = entry.path, entry.placeholder, entry.file_mode
    record = _record(entry, target, "hardlink")
    if placeholder is None:
        ctx.destination.write_bytes(target, data, member.mode, member.mtime, what)
        if record.size is None:
            record.size = len(data)
        return record
    data = bytes(data)
    originals[source] = data
    prefix = ctx.prefix.encode()
    if file_mode == "binary":
        patched = replace_binary(data, placeholder.encode(), prefix, what)
    else:
        patched = replace_text(data, placeholder.encode(), prefix)
    # Patched files get "now" as mtime so Python never trusts a stale .pyc.
    ctx.destination.write_bytes(target, patched, member.mode, ctx.now, what)
    record.file_mode = file_mode or "text"
    record.placeholder = placeholder
    record.size = len(patched)
    if record.sha256 is None:
        record.sha256 = hashlib.sha256(data).hexdigest()
    record.sha256_in_prefix = hashlib.sha256(patched).hexdigest()
    return record


def _create_missing_directories(
    ctx: LinkContext,
    info: PackageInfo,
    wanted: dict[RelPath, PathEntry],
    python: PythonInfo | None,
    dist: str,
) -> None:
    for entry in info.paths:
        if entry.installed or wanted.get(entry.path) is not entry:
            continue  # installed, or listed twice (the last entry is the one installed)
        if entry.path_type == "directory":
            what = f"package {dist}"
            target = python.map_path(entry.path, what) if python else entry.path
            ctx.clobbers.claim_dir(target, dist)
            ctx.destination.ensure_dir(target, what)
            _record(entry, target, "directory")
        else:
            raise PackageError(
                f"package {dist}: {entry.path!r} is listed in info/paths.json "
                "but missing from the package payload"
            )


def _entry_points(
    ctx: LinkContext, dist: str, info: PackageInfo, python: PythonInfo | None
) -> list[InstalledFile]:
    assert python is not None  # entry points exist only in noarch python packages
    out = []
    for spec in info.entry_points:
        entry_point = EntryPoint.parse(spec, dist)
        target = entry_point.target(dist)
        ctx.clobbers.claim_file(target, dist)
        script = entry_point.script(ctx.prefix, python)
        ctx.destination.write_bytes(target, script, 0o775, None, f"package {dist}, entry point")
        out.append(
            InstalledFile(
                path=target,
                path_type="unix_python_entry_point",
                sha256=hashlib.sha256(script).hexdigest(),
                size=len(script),
            )
        )
    return out
