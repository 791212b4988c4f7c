"""Reading ``.conda`` packages for packing: where their zstd segments are, and what they hold.

A ``.conda`` is a ZIP whose members are stored uncompressed, so each inner
``*.tar.zst`` is a contiguous byte range of the file that the packer copies
verbatim into the archive.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import zstandard

from . import format as fmt
from .errors import PackageError
from .pkginfo import PackageInfo, read_info

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ByteRange:
    """A contiguous run of bytes in a package file."""

    offset: int
    length: int


@dataclass(frozen=True)
class AnalyzedPackage:
    """A verified ``.conda`` file, ready to be copied into an archive."""

    path: Path
    info_range: ByteRange
    payload_range: ByteRange
    info_segment: fmt.Segment
    payload_segment: fmt.Segment
    info: PackageInfo


def analyze(path: Path, what: str) -> AnalyzedPackage:
    """Locate, hash and measure the info and payload segments of a ``.conda`` file."""
    info_range, payload_range = _locate(path, what)
    with open(path, "rb") as fh:
        info_segment, info_tar = _measure(fh, info_range, what, keep=True)
        payload_segment, _ = _measure(fh, payload_range, what, keep=False)
    info = read_info(info_tar, what)
    return AnalyzedPackage(path, info_range, payload_range, info_segment, payload_segment, info)


def _locate(path: Path, what: str) -> tuple[ByteRange, ByteRange]:
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            found: dict[str, ByteRange] = {}
            for zinfo in zf.infolist():
                kind = zinfo.filename.split("-", 1)[0]
                if kind in ("info", "pkg") and zinfo.filename.endswith(".tar.zst"):
                    if zinfo.compress_type != zipfile.ZIP_STORED:
                        raise PackageError(f"package {what}: {zinfo.filename} is not stored")
                    found[kind] = _data_range(fh, zinfo, what)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError(f"package {what}: {path} is not a valid .conda file: {exc}") from exc
    if set(found) != {"info", "pkg"}:
        raise PackageError(f"package {what}: {path} lacks an info-*.tar.zst or pkg-*.tar.zst")
    return found["info"], found["pkg"]


def _data_range(fh: object, zinfo: zipfile.ZipInfo, what: str) -> ByteRange:
    fh.seek(zinfo.header_offset)  # type: ignore[attr-defined]
    fields = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))  # type: ignore[attr-defined]
    if fields[0] != b"PK\x03\x04":
        raise PackageError(f"package {what}: corrupt ZIP local header for {zinfo.filename}")
    start = zinfo.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
    return ByteRange(start, zinfo.compress_size)


def _measure(fh: object, rng: ByteRange, what: str, keep: bool) -> tuple[fmt.Segment, bytes]:
    """Hash the compressed bytes and count (or keep) the decoded ones."""
    fh.seek(rng.offset)  # type: ignore[attr-defined]
    digest = hashlib.sha256()
    dctx = zstandard.ZstdDecompressor()
    kept: list[bytes] = []
    decoded = 0
    source = _Limited(fh, rng.length, digest)
    try:
        reader = dctx.stream_reader(
            cast("IO[bytes]", source), read_size=_READ_CHUNK, read_across_frames=True
        )
        while chunk := reader.read(_READ_CHUNK * 4):
            decoded += len(chunk)
            if keep:
                if decoded > fmt.MAX_INFO_SIZE:
                    raise PackageError(f"package {what}: info/ is larger than allowed")
                kept.append(chunk)
    except zstandard.ZstdError as exc:
        raise PackageError(f"package {what}: corrupt zstd data: {exc}") from exc
    if source.left:
        raise PackageError(f"package {what}: truncated .conda file")
    segment = fmt.Segment(size=decoded, zst_size=rng.length, zst_sha256=digest.hexdigest())
    return segment, b"".join(kept)


class _Limited:
    def __init__(self, fh: object, size: int, digest: hashlib._Hash) -> None:
        self._fh = fh
        self.left = size
        self._digest = digest

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 or n > self.left else n
        data: bytes = self._fh.read(n)  # type: ignore[attr-defined]
        self.left -= len(data)
        self._digest.update(data)
        return data
