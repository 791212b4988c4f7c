"""Unpacking archives written by pixi-pack (standard library and zstandard only).

A pixi-pack archive is a plain tar, its members sorted by name as pixi-pack walks
its output directory::

    channel/<subdir>/<package>.conda | .tar.bz2   (sorted with repodata.json)
    channel/<subdir>/repodata.json
    environment.yml
    pixi-pack.json                                {"version": "1", "platform": ...}
    pypi/<wheel>.whl

Its order does not allow one pass over the bytes: ``pixi-pack.json`` comes after
the packages, and inside a ``.conda`` the payload comes before ``info/`` (a ZIP
needs its central directory, at the end).  So the outer tar is read forward only,
once, and each package file is spooled to a temporary file beside the staging
directory, one at a time, hashed while it is spooled, then installed through the
same code as portpack's own archives (:func:`portpack.install.linker.link_package`).

Checks happen as soon as their facts arrive: a ``channel/<subdir>/`` for another
platform is refused before its first package, ``pixi-pack.json`` when it is read,
each package's glibc requirement before it is linked.  Every package's sha256 is
checked against ``repodata.json`` (before linking when the repodata came first,
otherwise at the end), and all of it happens before the environment is renamed
into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import zstandard

from portpack._platform import host_glibc_version
from portpack.archive import format as fmt
from portpack.conda.info import PackageInfo, read_info
from portpack.conda.record import check_package_fields
from portpack.conda.tarstream import BLOCK, DIRECTORY, ChunkReader, Member, iter_members
from portpack.errors import ArchiveError, PackageError
from portpack.install.destination import Destination
from portpack.install.linker import LinkContext, LinkedPackage, link_package
from portpack.install.noarch import PythonInfo
from portpack.progress import Reporter
from portpack.unpacker import preconditions

METADATA_NAME = "pixi-pack.json"
ENVIRONMENT_FILE = "environment.yml"
CHANNEL_DIR = "channel"
PYPI_DIR = "pypi"
REPODATA_NAME = "repodata.json"
#: The only ``version`` of ``pixi-pack.json`` there is.
FORMAT_VERSION = "1"
PACKAGE_EXTENSIONS = (".conda", ".tar.bz2")
_CHUNK = 1 << 20
#: ``repodata.json`` / ``pixi-pack.json`` larger than this are refused (held in memory).
_MAX_JSON = fmt.MAX_METADATA_SIZE

#: The hook for PyPI wheels: installs one spooled ``pypi/*.whl`` into the environment
#: being built (its destination, prefix and python are in the context).
#: :func:`portpack.unpacker.streaming.unpack` passes one that installs them with pypa's
#: ``installer`` (:mod:`portpack.install.wheels`); without one, :func:`install` refuses
#: archives that hold wheels.
WheelInstaller = Callable[[Path, LinkContext], None]


@dataclass(frozen=True)
class PixiPackMetadata:
    """The content of ``pixi-pack.json``."""

    version: str
    platform: str
    pixi_pack_version: str | None = None
    portpack_version: str | None = None
    """Set when portpack wrote the archive (``portpack pack --format pixi-pack``)."""


def parse_metadata(data: bytes, where: str) -> PixiPackMetadata:
    """Parse ``pixi-pack.json``; refuse format versions other than 1."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{where}: {METADATA_NAME} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("platform"), str):
        raise ArchiveError(f"{where}: {METADATA_NAME} does not name a platform")
    version = raw.get("version")
    if version != FORMAT_VERSION:
        raise ArchiveError(
            f"{where}: pixi-pack archive format version {version!r} is not supported "
            f"(portpack reads version {FORMAT_VERSION!r})"
        )
    optional = {k: raw.get(k) for k in ("pixi-pack-version", "portpack-version")}
    return PixiPackMetadata(
        version=version,
        platform=raw["platform"],
        pixi_pack_version=optional["pixi-pack-version"]
        if isinstance(optional["pixi-pack-version"], str)
        else None,
        portpack_version=optional["portpack-version"]
        if isinstance(optional["portpack-version"], str)
        else None,
    )


def parse_repodata(data: bytes, where: str) -> dict[str, dict[str, Any]]:
    """The records of a ``repodata.json`` by file name (``packages`` and ``packages.conda``)."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{where} is not valid JSON: {exc}") from exc
    out: dict[str, dict[str, Any]] = {}
    for key in ("packages", "packages.conda"):
        table = raw.get(key) if isinstance(raw, dict) else None
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ArchiveError(f"{where}: {key!r} is not an object")
        for fn, record in table.items():
            if not isinstance(record, dict):
                raise ArchiveError(f"{where}: the record of {fn} is malformed")
            # name, version and build become file names (conda-meta/<dist>.json).
            check_package_fields(record, f"{where}, the record of {fn}")
            out[fn] = record
    return out


def dist_of(record: dict[str, Any]) -> str:
    """``name-version-build`` of a record or ``index.json``."""
    return f"{record.get('name')}-{record.get('version')}-{record.get('build')}"


# -- package files ------------------------------------------------------------------


def _zstd_chunks(raw: IO[bytes], what: str) -> Iterator[bytes]:
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    try:
        while chunk := reader.read(_CHUNK):
            yield chunk
    except (zstandard.ZstdError, zipfile.BadZipFile, OSError) as exc:
        raise PackageError(f"package {what}: corrupt compressed data: {exc}") from exc


def _conda_member(zf: zipfile.ZipFile, kind: str, what: str) -> str:
    for name in zf.namelist():
        if name.startswith(f"{kind}-") and name.endswith(".tar.zst"):
            return name
    raise PackageError(f"package {what} has no {kind}-*.tar.zst")


def conda_info(zf: zipfile.ZipFile, what: str) -> bytes:
    """The decoded ``info/`` tar of an open ``.conda``."""
    with zf.open(_conda_member(zf, "info", what)) as raw:
        out = bytearray()
        for chunk in _zstd_chunks(raw, what):
            out += chunk
            if len(out) > fmt.MAX_INFO_SIZE:
                raise PackageError(f"package {what}: info/ is larger than allowed")
    return bytes(out)


def conda_payload(zf: zipfile.ZipFile, what: str) -> Iterator[bytes]:
    """The decoded payload tar of an open ``.conda``, in chunks."""
    with zf.open(_conda_member(zf, "pkg", what)) as raw:
        yield from _zstd_chunks(raw, what)


def _bz2_members(raw: IO[bytes], what: str) -> tuple[ChunkReader, Iterator[Member]]:
    import bz2  # lazily: a bootstrap python may lack libbz2 (self-extracting archives)

    def chunks() -> Iterator[bytes]:
        decoded = bz2.BZ2File(raw)
        try:
            while chunk := decoded.read(_CHUNK):
                yield chunk
        except (OSError, EOFError) as exc:
            raise PackageError(f"package {what}: corrupt bzip2 data: {exc}") from exc

    reader = ChunkReader(chunks(), f"package {what}")
    return reader, iter_members(reader)


def _is_info(name: str) -> bool:
    name = name.removeprefix("./")
    return name == "info" or name.startswith("info/")


def _tar_header(member: Member, size: int) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.type = tarfile.REGTYPE if member.is_file else member.type
    info.mode = member.mode
    info.size = size
    info.mtime = member.mtime
    info.linkname = member.linkname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def tar_bz2_info(raw: IO[bytes], what: str) -> bytes:
    """The ``info/*`` files of a ``.tar.bz2`` as a tar of their own.

    Reading stops after the contiguous run of ``info/`` members (first in packages
    written by conda-package-handling and rattler, in the middle of older ones).
    """
    reader, members = _bz2_members(raw, what)
    out = bytearray()
    seen = False
    for member in members:
        if not _is_info(member.name):
            if seen:
                break
            continue
        seen = True
        name = member.name.removeprefix("./")
        if member.is_file and name.count("/") == 1:
            out += _tar_header(member, member.size) + reader.read(member.size)
            out += bytes(-member.size % BLOCK)
            if len(out) > fmt.MAX_INFO_SIZE:
                raise PackageError(f"package {what}: info/ is larger than allowed")
    return bytes(out + bytes(2 * BLOCK))


def tar_bz2_payload(raw: IO[bytes], what: str) -> Iterator[bytes]:
    """The members of a ``.tar.bz2`` outside ``info/``, as a tar stream in chunks."""
    reader, members = _bz2_members(raw, what)
    for member in members:
        if _is_info(member.name):
            continue
        size = member.size if member.is_file else 0
        yield _tar_header(member, size)
        for piece in reader.pieces(size):
            yield bytes(piece)
        if size % BLOCK:
            yield bytes(-size % BLOCK)
    yield bytes(2 * BLOCK)


# -- install order ------------------------------------------------------------------


def _dependency_name(spec: str) -> str:
    return re.split(r"[ =]", spec.strip(), maxsplit=1)[0]


def install_order(records: list[dict[str, Any]]) -> list[str]:
    """Package names in the order rattler installs them (its ``sort_topologically``).

    Dependencies come before dependents, depth first from the roots (packages nothing
    depends on), names sorted at each step so the order does not depend on the input's.
    A dependency cycle is broken first, preferring to drop the edge from an arch
    package to a noarch one (so noarch python packages come last).  Where rattler's
    choice of edge depends on its hash map's order (a cycle of arch packages only),
    the cycle is entered from its first name in sorted order.
    """
    by_name = {str(r["name"]): r for r in records}

    def deps(name: str) -> list[str]:
        return [_dependency_name(d) for d in by_name[name].get("depends") or []]

    breaks = _cycle_breaks(_cycles(by_name, deps), by_name)
    needed = {d for n in by_name for d in deps(n) if (n, d) not in breaks}
    # Roots are pushed in sorted order, so the last one is resolved first.
    stack: list[tuple[bool, str]] = [(False, n) for n in sorted(set(by_name) - needed)]
    visited: set[str] = set()
    order: list[str] = []
    while stack:
        install, name = stack.pop()
        if install:
            order.append(name)
            continue
        if name in visited or name not in by_name:  # not in by_name: a virtual package
            continue
        visited.add(name)
        stack.append((True, name))
        stack += [(False, d) for d in sorted(deps(name)) if (name, d) not in breaks]
    return order + sorted(set(by_name) - set(order))


def _cycles(
    by_name: dict[str, dict[str, Any]], deps: Callable[[str], list[str]]
) -> list[list[str]]:
    found: list[list[str]] = []
    visited: set[str] = set()
    for start in sorted(by_name):
        # Iterative depth-first search; ``path`` is the current chain of dependencies.
        path: list[str] = []
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                path.pop()
                continue
            if node in path:
                found.append(path[path.index(node) :])
                continue
            if node in visited:
                continue
            visited.add(node)
            path.append(node)
            stack.append((node, True))
            if node in by_name:
                stack += [(d, False) for d in reversed(deps(node))]
    return found


def _cycle_breaks(
    cycles: list[list[str]], by_name: dict[str, dict[str, Any]]
) -> set[tuple[str, str]]:
    """One edge (dependent, dependency) to ignore per cycle."""
    breaks: set[tuple[str, str]] = set()
    for cycle in cycles:
        for i, first in enumerate(cycle):
            second = cycle[(i + 1) % len(cycle)]
            first_arch = not by_name[first].get("noarch")
            second_arch = not by_name[second].get("noarch")
            if first_arch and not second_arch:
                breaks.add((first, second))
                break
            if (second_arch and not first_arch) or i == len(cycle) - 1:
                breaks.add((second, first))
                break
    return breaks


# -- unpacking ----------------------------------------------------------------------


@dataclass
class _Installed:
    subdir: str
    fn: str
    sha256: str
    size: int
    index: dict[str, Any]
    linked: LinkedPackage


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def archive_url(name: str) -> str:
    """A ``file://`` URL naming the archive (conda-meta records need a URL)."""
    if name.startswith("<"):
        return "file:///dev/stdin"
    return Path(os.path.abspath(name)).as_uri()


class PixiPackUnpacker:
    """Installs the packages of one pixi-pack archive into a staging :class:`Destination`."""

    def __init__(
        self,
        name: str,
        dest: Destination,
        prefix: str,
        *,
        strict: bool = False,
        reporter: Reporter | None = None,
        wheel_installer: WheelInstaller | None = None,
    ) -> None:
        self.name = name
        self.reporter = reporter or Reporter()
        self.ctx = LinkContext(
            destination=dest,
            prefix=prefix,
            python=None,
            warn=self.reporter.warning,
            strict=strict,
            defer_clobbers=True,
        )
        self.target_dir = os.path.dirname(dest.root.rstrip("/")) or "."
        self.spool_dir = Path(dest.root.rstrip("/") + "-spool")
        self.wheel_installer = wheel_installer
        self.metadata: PixiPackMetadata | None = None
        self.repodata: dict[str, dict[str, dict[str, Any]]] = {}
        self.installed: list[_Installed] = []
        self.wheels: list[str] = []
        self._subdirs: set[str] = set()
        self._glibc = host_glibc_version()

    def run(self, stream: BinaryIO) -> list[tuple[dict[str, Any], LinkedPackage]]:
        """Read the whole archive; return each package's conda-meta record and files."""
        self.spool_dir.mkdir()
        try:
            reader = ChunkReader(_chunks(stream), self.name)
            for member in iter_members(reader):
                self._member(member, reader)
        finally:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
        return self._finish()

    # -- members ------------------------------------------------------------------

    def _member(self, member: Member, reader: ChunkReader) -> None:
        path = member.name.removeprefix("./").rstrip("/")
        parts = path.split("/")
        if path == fmt.METADATA_NAME:
            raise ArchiveError(
                f"{self.name} is a decompressed portpack archive; unpack the zstd-compressed "
                "archive that portpack pack wrote"
            )
        if member.type == DIRECTORY:
            if len(parts) == 2 and parts[0] == CHANNEL_DIR:
                self._check_subdir(parts[1])
            return
        if not member.is_file:
            self.reporter.warning(f"{self.name}: ignoring {path} (not a regular file)")
            return
        if path == METADATA_NAME:
            self.metadata = parse_metadata(self._small(member, reader), self.name)
            preconditions.check_platform(self.metadata.platform)
        elif path == ENVIRONMENT_FILE:
            return  # for conda and micromamba users; the records come from repodata.json
        elif len(parts) == 3 and parts[0] == CHANNEL_DIR:
            subdir, fn = parts[1], parts[2]
            self._check_subdir(subdir)
            if fn == REPODATA_NAME:
                self._repodata(subdir, self._small(member, reader))
            elif fn.endswith(PACKAGE_EXTENSIONS):
                self._package(subdir, fn, member, reader)
            else:
                self.reporter.warning(f"{self.name}: ignoring {path}")
        elif len(parts) == 2 and parts[0] == PYPI_DIR and parts[1].endswith(".whl"):
            self._wheel(parts[1], member, reader)
        else:
            self.reporter.warning(f"{self.name}: ignoring {path}")

    def _small(self, member: Member, reader: ChunkReader) -> bytes:
        if member.size > _MAX_JSON:
            raise ArchiveError(f"{self.name}: {member.name} is larger than allowed")
        return bytes(reader.read(member.size))

    def _check_subdir(self, subdir: str) -> None:
        if subdir in self._subdirs:
            return
        if subdir != "noarch":
            preconditions.check_platform(subdir)
        self._subdirs.add(subdir)

    def _repodata(self, subdir: str, data: bytes) -> None:
        where = f"{self.name}: {CHANNEL_DIR}/{subdir}/{REPODATA_NAME}"
        records = parse_repodata(data, where)
        self.repodata[subdir] = records
        for record in records.values():
            if record["name"] == "python" and self.ctx.python is None:
                self.ctx.python = PythonInfo.from_record(record)
        for pkg in self.installed:
            if pkg.subdir == subdir:
                self._verify(pkg)

    def _spool(self, member: Member, reader: ChunkReader, fn: str) -> tuple[Path, str]:
        path = self.spool_dir / fn
        digest = hashlib.sha256()
        with open(path, "wb") as fh:
            for piece in reader.pieces(member.size):
                digest.update(piece)
                fh.write(piece)
        return path, digest.hexdigest()

    def _package(self, subdir: str, fn: str, member: Member, reader: ChunkReader) -> None:
        if any(p.fn == fn and p.subdir == subdir for p in self.installed):
            raise ArchiveError(f"{self.name}: package {subdir}/{fn} appears twice")
        spool, sha256 = self._spool(member, reader, fn)
        try:
            what = f"{subdir}/{fn}"
            if fn.endswith(".conda"):
                with zipfile.ZipFile(spool) as zf:
                    info = read_info(conda_info(zf, what), what)
                    pkg = self._installing(subdir, fn, sha256, member.size, info)
                    payload = conda_payload(zf, pkg.linked.dist)
                    self._link(pkg, info, payload)
            else:
                with open(spool, "rb") as raw:
                    info = read_info(tar_bz2_info(raw, what), what)
                with open(spool, "rb") as raw:
                    pkg = self._installing(subdir, fn, sha256, member.size, info)
                    self._link(pkg, info, tar_bz2_payload(raw, pkg.linked.dist))
        except zipfile.BadZipFile as exc:
            raise PackageError(f"package {subdir}/{fn} is not a valid .conda file: {exc}") from exc
        finally:
            spool.unlink(missing_ok=True)

    def _installing(
        self, subdir: str, fn: str, sha256: str, size: int, info: PackageInfo
    ) -> _Installed:
        """Check one package before it is linked; raise on any problem."""
        dist = dist_of(info.index)
        pkg = _Installed(subdir, fn, sha256, size, info.index, LinkedPackage(dist, []))
        if subdir in self.repodata:
            self._verify(pkg)
        depends = [str(d) for d in info.index.get("depends") or []]
        preconditions.check_glibc(
            [fmt.VirtualRequirement(dist, d) for d in depends if d.startswith("__glibc")],
            self._glibc,
        )
        preconditions.check_disk_space(info.installed_size, self.target_dir)
        if info.noarch == "python" and self.ctx.python is None:
            raise ArchiveError(
                f"{self.name}: package {dist} is a noarch python package, but no python "
                "package came before it in the archive"
            )
        return pkg

    def _link(self, pkg: _Installed, info: PackageInfo, payload: Iterator[bytes]) -> None:
        dist = pkg.linked.dist
        self.reporter.on_package_start(str(info.index.get("name")), len(self.installed), 0)
        pkg.linked = link_package(
            self.ctx, dist, info, ChunkReader(payload, f"payload of package {dist}")
        )
        if info.index.get("name") == "python" and self.ctx.python is None:
            self.ctx.python = PythonInfo.from_record(info.index)
        self.installed.append(pkg)
        self.reporter.on_package_complete(str(info.index.get("name")))

    def _verify(self, pkg: _Installed) -> None:
        where = f"{CHANNEL_DIR}/{pkg.subdir}/{REPODATA_NAME}"
        record = self.repodata[pkg.subdir].get(pkg.fn)
        if record is None:
            raise ArchiveError(f"{self.name}: package {pkg.subdir}/{pkg.fn} is not in {where}")
        if dist_of(record) != pkg.linked.dist:
            raise ArchiveError(
                f"{self.name}: {where} describes {pkg.fn} as {dist_of(record)}, "
                f"but the package is {pkg.linked.dist}"
            )
        want = record.get("sha256")
        if want and str(want).lower() != pkg.sha256:
            raise ArchiveError(
                f"{self.name}: package {pkg.subdir}/{pkg.fn} does not match the sha256 in "
                f"{where} (got {pkg.sha256}, expected {want}); the archive is corrupt"
            )
        if not want:
            self.reporter.warning(f"{where} has no sha256 for {pkg.fn}; it was not verified")
        size = record.get("size")
        if isinstance(size, int) and size != pkg.size:
            raise ArchiveError(
                f"{self.name}: package {pkg.subdir}/{pkg.fn} is {pkg.size} bytes, "
                f"{where} says {size}; the archive is corrupt"
            )

    def _wheel(self, fn: str, member: Member, reader: ChunkReader) -> None:
        if self.wheel_installer is None:
            self.wheels.append(fn)
            return
        spool, _ = self._spool(member, reader, fn)
        try:
            self.wheel_installer(spool, self.ctx)
        finally:
            spool.unlink(missing_ok=True)

    # -- the end ------------------------------------------------------------------

    def _finish(self) -> list[tuple[dict[str, Any], LinkedPackage]]:
        if self.metadata is None:
            raise ArchiveError(
                f"{self.name} is neither a portpack nor a pixi-pack archive "
                f"(a tar without {METADATA_NAME})"
            )
        if self.wheels:
            raise ArchiveError(
                f"{self.name} holds PyPI wheels, which portpack cannot install yet: "
                f"{', '.join(sorted(self.wheels))}",
                hint="Unpack it with pixi-unpack, or pack the environment without PyPI packages.",
            )
        for subdir, records in self.repodata.items():
            present = {p.fn for p in self.installed if p.subdir == subdir}
            missing = sorted(set(records) - present)
            if missing:
                raise ArchiveError(
                    f"{self.name}: {CHANNEL_DIR}/{subdir}/{REPODATA_NAME} lists packages "
                    f"the archive does not hold: {', '.join(missing)}"
                )
        url = archive_url(self.name)
        installed = []
        for pkg in self.installed:
            if pkg.subdir in self.repodata:
                record = dict(self.repodata[pkg.subdir][pkg.fn])
            else:
                record = {**pkg.index, "sha256": pkg.sha256, "size": pkg.size}
            record["fn"] = pkg.fn
            record["url"] = f"{url}#{CHANNEL_DIR}/{pkg.subdir}/{pkg.fn}"
            record.setdefault("channel", "")
            installed.append((record, pkg.linked))
        position = {name: i for i, name in enumerate(install_order([r for r, _ in installed]))}
        self.ctx.clobbers.settle(lambda name: position[name])
        return sorted(installed, key=lambda item: position[str(item[0]["name"])])


def install(
    stream: BinaryIO,
    name: str,
    dest: Destination,
    prefix: str,
    *,
    strict: bool = False,
    reporter: Reporter | None = None,
    wheel_installer: WheelInstaller | None = None,
) -> list[tuple[dict[str, Any], LinkedPackage]]:
    """Install the pixi-pack archive ``stream`` into ``dest`` (the staging directory of
    ``prefix``); return each package's conda-meta record and installed files.

    A package file is spooled next to the staging directory while it is installed.
    """
    unpacker = PixiPackUnpacker(
        name, dest, prefix, strict=strict, reporter=reporter, wheel_installer=wheel_installer
    )
    return unpacker.run(stream)


__all__ = [
    "PixiPackMetadata",
    "PixiPackUnpacker",
    "WheelInstaller",
    "install",
    "parse_metadata",
    "parse_repodata",
]
