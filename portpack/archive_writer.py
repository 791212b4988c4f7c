"""Writing portpack archives (see :mod:`portpack.format`)."""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from typing import BinaryIO

import zstandard

from . import format as fmt
from .condapkg import AnalyzedPackage, ByteRange
from .tarstream import BLOCK

_COPY_CHUNK = 1 << 20
#: Our own frames are tiny (tar headers, padding, metadata); level 19 costs nothing here.
_FRAME_LEVEL = 19


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT)


def write_archive(
    out: BinaryIO, metadata: fmt.Metadata, packages: Sequence[AnalyzedPackage]
) -> None:
    """Write the archive for ``metadata`` whose packages are ``packages`` (same order)."""
    cctx = zstandard.ZstdCompressor(
        level=_FRAME_LEVEL, write_checksum=True, write_content_size=True
    )

    def frame(data: bytes) -> None:
        out.write(cctx.compress(data))

    meta = metadata.to_json()
    frame(_header(fmt.METADATA_NAME, len(meta)) + meta + bytes(-len(meta) % BLOCK))
    pad = 0
    for entry, pkg in zip(metadata.packages, packages, strict=True):
        frame(bytes(pad) + _header(fmt.member_name(entry.stem, fmt.INFO_MEMBER), entry.info.size))
        _copy(pkg, pkg.info_range, out)
        name = fmt.member_name(entry.stem, fmt.PAYLOAD_MEMBER)
        frame(bytes(-entry.info.size % BLOCK) + _header(name, entry.payload.size))
        _copy(pkg, pkg.payload_range, out)
        pad = -entry.payload.size % BLOCK
    frame(bytes(pad) + bytes(2 * BLOCK))


def _copy(pkg: AnalyzedPackage, rng: ByteRange, out: BinaryIO) -> None:
    with open(pkg.path, "rb") as fh:
        fh.seek(rng.offset)
        left = rng.length
        while left:
            data = fh.read(min(left, _COPY_CHUNK))
            if not data:
                raise OSError(f"{pkg.path} shrank while it was being packed")
            out.write(data)
            left -= len(data)
