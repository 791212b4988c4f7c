"""``inspect``: what an archive holds, read without unpacking it (stdlib + zstandard).

For a portpack archive only the metadata frame at its start is read (after the
header of a self-extracting archive).  A pixi-pack archive has no such summary: its
tar headers are walked, seeking over the package data, and each package's ``info/``
is read from inside its file (a ``.conda`` is a ZIP, so that is its central
directory and its small info member).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from portpack.archive import format as fmt
from portpack.archive import pixipack as pp
from portpack.archive.reader import open_metadata
from portpack.archive.sfx import skip_header
from portpack.conda.info import PackageInfo
from portpack.conda.package_file import PackageFile
from portpack.conda.record import PackageRecord
from portpack.conda.tarstream import looks_like_tar, sniff
from portpack.conda.version import Version, parse_constraint, split_dependency
from portpack.errors import ArchiveError, UsageError

if TYPE_CHECKING:
    import tarfile

# tarfile and zipfile (the pixi-pack side) are imported where they are used:
# ``import portpack`` stays cheap for ``portpack unpack``.


@dataclass(frozen=True)
class PackageSummary:
    """One package of an archive."""

    name: str
    version: str
    build: str
    subdir: str
    size: int | None
    """Size of the package file (what a download costs), when known."""
    installed_size: int | None
    """Bytes its files take once installed, when known."""


@dataclass(frozen=True)
class ArchiveSummary:
    """What :func:`inspect` found."""

    archive: str
    format: str
    """``portpack`` or ``pixi-pack``."""
    format_version: str
    platform: str
    portpack_version: str | None
    """The portpack that packed it (None for archives written by pixi-pack)."""
    pixi_pack_version: str | None
    packages: list[PackageSummary]
    download_size: int
    """Sum of the package files' sizes."""
    installed_size: int | None
    """Bytes the environment takes once unpacked (None when a package does not say)."""
    python_version: str | None
    glibc: str | None
    """The oldest glibc the environment accepts (the highest ``__glibc`` lower bound)."""
    archive_size: int | None = None
    wheels: list[str] = field(default_factory=list)
    """PyPI wheels (``wheels/*.whl`` of a portpack archive, ``pypi/*.whl`` of pixi-pack's)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        return asdict(self)


def min_glibc(depends: Iterable[str], where: str = "an archive") -> str | None:
    """The highest lower bound among ``__glibc`` dependencies (``"__glibc >=2.17"``).

    Constraints are read by :mod:`portpack.conda.version`; one it cannot read raises
    :class:`ArchiveError` naming ``where`` and the dependency.
    """
    best: Version | None = None
    for dep in depends:
        if not dep.lstrip().startswith("__glibc"):
            continue  # other dependencies are not read (nor refused) here
        name, spec = split_dependency(dep, where, ArchiveError)
        if name != "__glibc" or not spec:
            continue
        bound = parse_constraint(spec, f"{where}: {dep!r}", ArchiveError).lower_bound()
        if bound is not None and (best is None or bound > best):
            best = bound
    return str(best) if best is not None else None


def inspect(archive: str | os.PathLike[str] | BinaryIO) -> ArchiveSummary:
    """Summarize a portpack or pixi-pack archive: a path or a binary stream.

    A pixi-pack archive is read with seeks (over its package data): as a stream it must
    be seekable.
    """
    if isinstance(archive, (str, os.PathLike)):
        name = str(archive)
        try:
            with open(archive, "rb") as fh:
                return _inspect_stream(fh, name, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            raise UsageError(f"cannot open archive {name}: {exc.strerror or exc}") from exc
    return _inspect_stream(archive, str(getattr(archive, "name", "<stream>")), None)


def _inspect_stream(stream: BinaryIO, name: str, size: int | None) -> ArchiveSummary:
    # A self-extracting archive holds a portpack archive after its header.
    head_stream, head = sniff(skip_header(stream, name))
    if not looks_like_tar(head):
        return summarize_metadata(open_metadata(head_stream, name), name, size)
    try:
        stream.seek(0)
    except (AttributeError, OSError, ValueError):
        raise UsageError(
            f"{name} is a pixi-pack archive: inspect needs it as a file, not a pipe"
        ) from None
    return _pixi_pack_summary(stream, name, size)


def summarize_metadata(meta: fmt.Metadata, name: str, size: int | None) -> ArchiveSummary:
    """The summary of a portpack archive whose metadata ``meta`` is (read elsewhere)."""
    packages = []
    for entry in meta.packages:
        record = entry.record
        file_size = record.size
        packages.append(
            PackageSummary(
                name=entry.name,
                version=record.version,
                build=record.build,
                subdir=record.subdir,
                size=file_size
                if file_size is not None
                else entry.info.zst_size + entry.payload.zst_size,
                installed_size=entry.installed_size,
            )
        )
    return ArchiveSummary(
        archive=name,
        format=fmt.FORMAT_NAME,
        format_version=str(meta.format_version),
        platform=meta.platform,
        portpack_version=meta.portpack_version,
        pixi_pack_version=None,
        packages=sorted(packages, key=lambda p: p.name),
        download_size=sum(p.size or 0 for p in packages),
        installed_size=meta.installed_size,
        python_version=_python(packages),
        glibc=min_glibc([v.spec for v in meta.virtual_requirements], name),
        archive_size=size,
        wheels=[w.filename for w in meta.wheels],
    )


def _python(packages: list[PackageSummary]) -> str | None:
    return next((p.version for p in packages if p.name == "python"), None)


@dataclass
class _PixiPackParts:
    """What walking a pixi-pack archive's tar headers found."""

    meta: pp.PixiPackMetadata | None = None
    repodata: dict[str, dict[str, PackageRecord]] = field(default_factory=dict)
    packages: list[tuple[pp.Part, int, PackageInfo]] = field(default_factory=list)
    """Each package file: where it is, its size and its ``info/``."""
    wheels: list[str] = field(default_factory=list)


def _walk_pixi_pack(stream: BinaryIO, name: str) -> _PixiPackParts:
    import tarfile

    found = _PixiPackParts()
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:  # reads headers only, seeking over the data
                part = pp.classify(member.name, member.isdir())
                if not member.isfile():
                    continue
                if part.kind == "metadata":
                    found.meta = pp.parse_metadata(_read(tar, member, name), name)
                elif part.kind == "repodata":
                    where = f"{name}: {part.path}"
                    data = _read(tar, member, name)
                    found.repodata[part.subdir] = pp.parse_repodata(data, where)
                elif part.kind == "package":
                    fileobj = tar.extractfile(member)
                    assert fileobj is not None
                    what = f"{part.subdir}/{part.fn}"
                    with PackageFile(fileobj, part.fn, what) as package:
                        found.packages.append((part, member.size, package.info()))
                elif part.kind == "wheel":
                    found.wheels.append(part.fn)
    except tarfile.TarError as exc:
        raise ArchiveError(f"{name} is a corrupt tar: {exc}") from exc
    return found


def _pixi_pack_summary(stream: BinaryIO, name: str, size: int | None) -> ArchiveSummary:
    found = _walk_pixi_pack(stream, name)
    meta = found.meta
    if meta is None:
        raise ArchiveError(
            f"{name} is neither a portpack nor a pixi-pack archive "
            f"(a tar without {pp.METADATA_NAME})"
        )
    packages = []
    depends: list[str] = []
    for part, file_size, info in found.packages:
        record = found.repodata.get(part.subdir, {}).get(part.fn)
        if record is None:  # no repodata.json: the package's own index.json
            record = PackageRecord.from_json(info.index, f"{name}: package {part.path}")
        depends += record.depends
        packages.append(
            PackageSummary(
                name=record.name,
                version=record.version,
                build=record.build,
                subdir=part.subdir,
                size=file_size,
                installed_size=info.installed_size,
            )
        )
    return ArchiveSummary(
        archive=name,
        format="pixi-pack",
        format_version=meta.version,
        platform=meta.platform,
        portpack_version=meta.portpack_version,
        pixi_pack_version=meta.pixi_pack_version,
        packages=sorted(packages, key=lambda p: p.name),
        download_size=sum(p.size or 0 for p in packages),
        installed_size=sum(p.installed_size or 0 for p in packages),
        python_version=_python(packages),
        glibc=min_glibc(depends, name),
        archive_size=size,
        wheels=sorted(found.wheels),
    )


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> bytes:
    if member.size > fmt.MAX_METADATA_SIZE:
        raise ArchiveError(f"{name}: {member.name} is larger than allowed")
    fileobj = tar.extractfile(member)
    assert fileobj is not None
    return fileobj.read()


__all__ = ["ArchiveSummary", "PackageSummary", "inspect", "min_glibc"]
