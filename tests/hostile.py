"""Build portpack archives from raw, possibly hostile, package contents."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from portpack.archive import segments as condapkg
from portpack.archive import writer as archive_writer
from portpack.conda.info import PackageInfo
from portpack.conda.record import PackageRecord
from portpack.errors import PortpackError
from portpack.packer import packing


@dataclass
class Member:
    """A tar member: a regular file unless ``type`` says otherwise."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    mode: int = 0o644
    linkname: str = ""


@dataclass
class RawPackage:
    """A package whose info/ and payload are written as given, with no checks."""

    name: str
    payload: list[Member]
    paths: list[dict[str, Any]] | None = None
    """paths.json entries; by default one hardlink entry per regular payload member."""
    index: dict[str, Any] = field(default_factory=dict)
    link: dict[str, Any] | None = None
    depends: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    """Merged into the archive's record last (to make it disagree with index.json)."""
    info: list[Member] = field(default_factory=list)
    """Extra info/ members (e.g. ``info/files`` + ``info/has_prefix`` with ``paths=[]``)."""
    legacy: bool = False
    """Leave out info/paths.json (the package has ``info/files`` in ``info``)."""

    @property
    def stem(self) -> str:
        return f"{self.name}-1.0-0"


def tar_bytes(members: Sequence[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.mode = m.mode
            info.linkname = m.linkname
            info.size = len(m.data) if m.type == tarfile.REGTYPE else 0
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(m.data) if m.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def _default_paths(pkg: RawPackage) -> list[dict[str, Any]]:
    out = []
    for m in pkg.payload:
        if m.type == tarfile.SYMTYPE:
            out.append({"_path": m.name, "path_type": "softlink", "size_in_bytes": 0})
        elif m.type in (tarfile.REGTYPE, tarfile.LNKTYPE):
            out.append(
                {
                    "_path": m.name,
                    "path_type": "hardlink",
                    "sha256": hashlib.sha256(m.data).hexdigest(),
                    "size_in_bytes": len(m.data),
                }
            )
        elif m.type != tarfile.DIRTYPE:
            out.append({"_path": m.name, "path_type": "hardlink"})
    return out


def write_conda(dest: Path, pkg: RawPackage) -> Path:
    index = {
        "name": pkg.name,
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "depends": pkg.depends,
        "subdir": "noarch",
        **pkg.index,
    }
    paths = pkg.paths if pkg.paths is not None else _default_paths(pkg)
    info = [Member("info/index.json", json.dumps(index).encode())]
    if not pkg.legacy:
        info.append(
            Member("info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode())
        )
    info += pkg.info
    if pkg.link is not None:
        info.append(Member("info/link.json", json.dumps(pkg.link).encode()))
    cctx = zstandard.ZstdCompressor(level=3)
    path = dest / f"{pkg.stem}.conda"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        zf.writestr(f"info-{pkg.stem}.tar.zst", cctx.compress(tar_bytes(info)))
        zf.writestr(f"pkg-{pkg.stem}.tar.zst", cctx.compress(tar_bytes(pkg.payload)))
    return path


def record(pkg: RawPackage, path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {
        "name": pkg.name,
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "depends": pkg.depends,
        "subdir": "noarch",
        "fn": path.name,
        "url": path.as_uri(),
        "channel": "local",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **pkg.index,
        **pkg.record,
    }


def analyze(path: Path, pkg: RawPackage) -> condapkg.AnalyzedPackage:
    """condapkg.analyze, or, for a package that portpack pack would refuse, the same
    segments without its checks (the unpacker must refuse such packages by itself)."""
    try:
        return condapkg.analyze(path, pkg.name)
    except PortpackError:
        pass
    info_range, payload_range = condapkg._locate(path, pkg.name)
    with open(path, "rb") as fh:
        info_segment, _ = condapkg._measure(fh, info_range, pkg.name, condapkg._keep_info)
        payload_segment, _ = condapkg._measure(fh, payload_range, pkg.name, lambda c: list(c))
    info = PackageInfo(index={}, paths=[])
    return condapkg.AnalyzedPackage(
        path, info_range, payload_range, info_segment, payload_segment, info
    )


def make_archive(dest: Path, packages: Sequence[RawPackage], platform: str = "linux-64") -> Path:
    """Write a portpack archive of ``packages`` (install order as given) to ``dest/env.tar``."""
    dest.mkdir(parents=True, exist_ok=True)
    files = [write_conda(dest, pkg) for pkg in packages]
    records = [record(pkg, path) for pkg, path in zip(packages, files, strict=True)]
    analyzed = [analyze(p, pkg) for p, pkg in zip(files, packages, strict=True)]
    # pack refuses a hostile record: it is packed with fields pack accepts, then put
    # into portpack.json as it is (the unpacker must refuse it by itself).
    packable = [_packable(r) for r in records]
    metadata = packing.build_metadata(platform, packable, analyzed)
    out = dest / "env.tar"
    with open(out, "wb") as fh:
        archive_writer.write_archive(fh, metadata, analyzed)
    if packable == records:
        return out

    def restore(doc: dict[str, Any]) -> None:
        for entry, raw in zip(doc["packages"], records, strict=True):
            entry["record"] = raw

    packed = out.replace(dest / "packed.tar")
    replace_metadata(packed, restore, out)
    packed.unlink()
    return out


def _packable(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw``, or, if pack would refuse it, a copy with a name, version and build it takes."""
    try:
        PackageRecord.from_json(raw, "test")
    except PortpackError:
        return {**raw, "name": "hostile", "version": "1.0", "build": "0", "depends": []}
    return raw


def replace_metadata(archive: Path, edit: Callable[[dict[str, Any]], None], dest: Path) -> Path:
    """Copy ``archive`` to ``dest`` with its metadata rewritten by ``edit`` (data untouched)."""
    from portpack.archive import format as fmt
    from portpack.archive import reader as archive_reader

    with open(archive, "rb") as fh:
        raw = archive_reader.RawInput(fh, str(archive))
        frame = archive_reader.read_frame(raw, zstandard.ZstdDecompressor(), 1 << 26)
        rest = b"".join(iter(lambda: raw.read(1 << 20), b""))
    header = tarfile.TarInfo(fmt.METADATA_NAME)
    doc = json.loads(frame[512 : 512 + int(frame[124:136].strip(b"\0 ") or b"0", 8)])
    edit(doc)
    body = json.dumps(doc).encode()
    header.size = len(body)
    block = header.tobuf(format=tarfile.PAX_FORMAT) + body + bytes(-len(body) % 512)
    dest.write_bytes(zstandard.ZstdCompressor().compress(block) + rest)
    return dest


def to_version_1(archive: Path, dest: Path) -> Path:
    """``archive`` as a portpack of format version 1 wrote it: no segment offsets.

    Only the metadata frame changes (offsets count from its end, and the rest of the
    bytes are what version 1 wrote for the same input).
    """

    def edit(doc: dict[str, Any]) -> None:
        doc["format_version"] = 1
        for package in doc["packages"]:
            del package["info"]["offset"], package["payload"]["offset"]
        for wheel in doc.get("wheels", []):
            del wheel["offset"]

    return replace_metadata(archive, edit, dest)
