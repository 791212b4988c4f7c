"""Unpacking archives written by pixi-pack (standard library and zstandard only).

The format (its members, ``pixi-pack.json``, ``repodata.json``) is
:mod:`portpack.archive.pixipack`'s; this module only orchestrates.  The archive's
order does not allow one pass over the bytes: ``pixi-pack.json`` comes after the
packages, and inside a ``.conda`` the payload comes before ``info/`` (a ZIP needs its
central directory, at the end).  So the outer tar is read forward only, once, and
each package file is spooled to a private directory beside the staging directory,
one at a time, hashed while it is spooled, read with
:class:`portpack.conda.package_file.PackageFile`, then installed through the same
code as portpack's own archives (:func:`portpack.install.linker.link_package`).

Checks happen as soon as their facts arrive: a ``channel/<subdir>/`` for another
platform is refused before its first package, ``pixi-pack.json`` when it is read,
each package's glibc requirement before it is linked.  Every package's sha256 is
checked against ``repodata.json`` (before linking when the repodata came first,
otherwise at the end), and all of it happens before the environment is renamed
into place.  The packages may come in any order: clobbered paths are settled by the
install order (:mod:`portpack.conda.order`) at the end, by the one clobber registry
of the destination (:class:`portpack.install.clobbers.ClobberRegistry`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from portpack import outside
from portpack._platform import host_glibc_version
from portpack.archive import format as fmt
from portpack.archive import pixipack as pp
from portpack.conda.info import PackageInfo
from portpack.conda.order import install_order
from portpack.conda.package_file import PackageFile
from portpack.conda.record import PackageRecord, dist
from portpack.conda.tarstream import DIRECTORY, ChunkReader, Member, iter_members
from portpack.errors import ArchiveError
from portpack.install.destination import Destination
from portpack.install.linker import LinkContext, LinkedPackage, link_package
from portpack.install.noarch import PythonInfo
from portpack.paths import safe_relpath
from portpack.progress import Reporter
from portpack.unpacker import preconditions

_CHUNK = 1 << 20

#: The hook for PyPI wheels: installs one spooled ``pypi/*.whl`` into the environment
#: being built (its destination, prefix and python are in the context).
#: :func:`portpack.unpacker.streaming.unpack` passes one that installs them with pypa's
#: ``installer`` (:mod:`portpack.install.wheels`); without one, :func:`install` refuses
#: archives that hold wheels.
WheelInstaller = Callable[[Path, LinkContext], None]

Installed = list[tuple[dict[str, Any], LinkedPackage]]
"""Each package's conda-meta record (as JSON) and installed files, in install order."""


@dataclass
class _Installed:
    facts: pp.PackageFacts
    index: dict[str, Any]
    linked: LinkedPackage


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


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
        self.staging = Path(dest.root.rstrip("/"))
        self.wheel_installer = wheel_installer
        self.metadata: pp.PixiPackMetadata | None = None
        self.repodata: dict[str, dict[str, PackageRecord]] = {}
        self.installed: list[_Installed] = []
        self.wheels: list[str] = []
        self._subdirs: set[str] = set()
        self._glibc = host_glibc_version()
        self._spool_dir: Path | None = None

    def run(self, stream: BinaryIO) -> Installed:
        """Read the whole archive; return each package's conda-meta record and files."""
        # Beside the staging directory, named like it (a killed run's is removed with it).
        parent, stem = self.staging.parent, self.staging.name.lstrip(".")
        self._spool_dir = outside.make_private_dir(parent, f"{stem}-spool")
        try:
            reader = ChunkReader(_chunks(stream), self.name)
            for member in iter_members(reader):
                self._member(member, reader)
        finally:
            outside.remove_tree(self._spool_dir)
        return self._finish()

    # -- members ------------------------------------------------------------------

    def _member(self, member: Member, reader: ChunkReader) -> None:
        part = pp.classify(member.name, member.type == DIRECTORY)
        if part.kind == "portpack":
            raise ArchiveError(
                f"{self.name} is a decompressed portpack archive; unpack the zstd-compressed "
                "archive that portpack pack wrote"
            )
        if part.kind == "subdir":
            self._check_subdir(part.subdir)
        if part.kind in ("subdir", "directory", "environment"):
            return  # environment.yml: for conda users; the records are in repodata.json
        if not member.is_file:
            self.reporter.warning(f"{self.name}: ignoring {part.path} (not a regular file)")
        elif part.kind == "metadata":
            self.metadata = pp.parse_metadata(self._small(member, reader), self.name)
            preconditions.check_platform(self.metadata.platform)
        elif part.kind == "repodata":
            self._check_subdir(part.subdir)
            self._repodata(part.subdir, self._small(member, reader))
        elif part.kind == "package":
            self._check_subdir(part.subdir)
            self._package(part.subdir, part.fn, member, reader)
        elif part.kind == "wheel":
            self._wheel(part.fn, member, reader)
        else:
            self.reporter.warning(f"{self.name}: ignoring {part.path}")

    def _small(self, member: Member, reader: ChunkReader) -> bytes:
        if member.size > pp.MAX_JSON_SIZE:
            raise ArchiveError(f"{self.name}: {member.name} is larger than allowed")
        return bytes(reader.read(member.size))

    def _check_subdir(self, subdir: str) -> None:
        if subdir in self._subdirs:
            return
        if subdir != "noarch":
            preconditions.check_platform(subdir)
        self._subdirs.add(subdir)

    def _repodata(self, subdir: str, data: bytes) -> None:
        where = f"{self.name}: {pp.CHANNEL_DIR}/{subdir}/{pp.REPODATA_NAME}"
        records = pp.parse_repodata(data, where)
        self.repodata[subdir] = records
        for record in records.values():
            if record.name == "python" and self.ctx.python is None:
                self.ctx.python = PythonInfo.from_record(record.to_json())
        for pkg in self.installed:
            if pkg.facts.subdir == subdir:
                self._verify(pkg.facts)

    def _spool(self, member: Member, reader: ChunkReader, fn: str) -> tuple[Path, str]:
        assert self._spool_dir is not None
        path = self._spool_dir / safe_relpath(fn, f"{self.name}: {fn}")
        digest = hashlib.sha256()
        try:
            fh = open(path, "wb")  # noqa: SIM115 (closed by the with below)
        except OSError as exc:
            raise outside.output_error(exc, path, "cannot spool a package to") from None
        with fh:
            for piece in reader.pieces(member.size):  # an input error is the archive's
                digest.update(piece)
                try:
                    fh.write(piece)
                except OSError as exc:
                    raise outside.output_error(exc, path, "cannot spool a package to") from None
        return path, digest.hexdigest()

    def _package(self, subdir: str, fn: str, member: Member, reader: ChunkReader) -> None:
        if any(p.facts.fn == fn and p.facts.subdir == subdir for p in self.installed):
            raise ArchiveError(f"{self.name}: package {subdir}/{fn} appears twice")
        spool, sha256 = self._spool(member, reader, fn)
        try:
            with open(spool, "rb") as raw, PackageFile(raw, fn, f"{subdir}/{fn}") as package:
                info = package.info()
                facts = pp.PackageFacts(subdir, fn, dist(info.index), sha256, member.size)
                self._check(facts, info)
                self._link(facts, info, package.payload())
        finally:
            spool.unlink(missing_ok=True)

    def _check(self, facts: pp.PackageFacts, info: PackageInfo) -> None:
        """Check one package before it is linked; raise on any problem."""
        if facts.subdir in self.repodata:
            self._verify(facts)
        depends = [str(d) for d in info.index.get("depends") or []]
        preconditions.check_glibc(
            [fmt.VirtualRequirement(facts.dist, d) for d in depends if d.startswith("__glibc")],
            self._glibc,
        )
        preconditions.check_disk_space(info.installed_size, str(self.staging.parent))
        if info.noarch == "python" and self.ctx.python is None:
            raise ArchiveError(
                f"{self.name}: package {facts.dist} is a noarch python package, but no python "
                "package came before it in the archive"
            )

    def _link(self, facts: pp.PackageFacts, info: PackageInfo, payload: Iterator[bytes]) -> None:
        name = str(info.index.get("name"))
        self.reporter.on_package_start(name, len(self.installed), 0)
        reader = ChunkReader(payload, f"payload of package {facts.dist}")
        linked = link_package(self.ctx, facts.dist, info, reader)
        if name == "python" and self.ctx.python is None:
            self.ctx.python = PythonInfo.from_record(info.index)
        self.installed.append(_Installed(facts, info.index, linked))
        self.reporter.on_package_complete(name)

    def _verify(self, facts: pp.PackageFacts) -> None:
        warning = pp.check_package(self.name, self.repodata[facts.subdir], facts)
        if warning is not None:
            self.reporter.warning(warning)

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

    def _finish(self) -> Installed:
        self._check_complete()
        records = [self._record(pkg) for pkg in self.installed]
        position = {record.name: i for i, record in enumerate(install_order(records))}
        self.ctx.clobbers.settle(lambda name: position[name])
        # conda-meta is written from JSON (install.condameta): the record's boundary.
        installed = [
            (r.to_json(), pkg.linked) for r, pkg in zip(records, self.installed, strict=True)
        ]
        return sorted(installed, key=lambda item: position[str(item[0]["name"])])

    def _check_complete(self) -> None:
        if self.metadata is None:
            raise ArchiveError(
                f"{self.name} is neither a portpack nor a pixi-pack archive "
                f"(a tar without {pp.METADATA_NAME})"
            )
        if self.wheels:
            raise ArchiveError(
                f"{self.name} holds PyPI wheels, which portpack cannot install yet: "
                f"{', '.join(sorted(self.wheels))}",
                hint="Unpack it with pixi-unpack, or pack the environment without PyPI packages.",
            )
        for subdir, records in self.repodata.items():
            present = {p.facts.fn for p in self.installed if p.facts.subdir == subdir}
            missing = sorted(set(records) - present)
            if missing:
                raise ArchiveError(
                    f"{self.name}: {pp.CHANNEL_DIR}/{subdir}/{pp.REPODATA_NAME} lists packages "
                    f"the archive does not hold: {', '.join(missing)}"
                )

    def _record(self, pkg: _Installed) -> PackageRecord:
        """The conda-meta record of an installed package: its repodata.json record (or
        its index.json with the file's hash), with where it came from."""
        facts = pkg.facts
        where = f"{self.name}: package {facts.subdir}/{facts.fn}"
        if facts.subdir in self.repodata:
            record = self.repodata[facts.subdir][facts.fn]
        else:
            record = PackageRecord.from_json(
                {**pkg.index, "sha256": facts.sha256, "size": facts.size}, where
            )
        return record.replace(
            where,
            fn=facts.fn,
            url=pp.package_url(self.name, facts.subdir, facts.fn),
            channel=record.channel or "",
        )


def install(
    stream: BinaryIO,
    name: str,
    dest: Destination,
    prefix: str,
    *,
    strict: bool = False,
    reporter: Reporter | None = None,
    wheel_installer: WheelInstaller | None = None,
) -> Installed:
    """Install the pixi-pack archive ``stream`` into ``dest`` (the staging directory of
    ``prefix``); return each package's conda-meta record and installed files.

    A package file is spooled next to the staging directory while it is installed.
    """
    unpacker = PixiPackUnpacker(
        name, dest, prefix, strict=strict, reporter=reporter, wheel_installer=wheel_installer
    )
    return unpacker.run(stream)


__all__ = ["Installed", "PixiPackUnpacker", "WheelInstaller", "install"]
