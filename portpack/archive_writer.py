"""Writing portpack archives (see :mod:`portpack.format`)."""

from __future__ import annotations

import errno
import io
import os
import sys
import tarfile
from collections.abc import Sequence
from typing import BinaryIO

import zstandard

from . import format as fmt
from .condapkg import AnalyzedPackage, ByteRange
from .tarstream import BLOCK

_COPY_CHUNK = 1 << 20
#: copy_file_range / sendfile refused: fall back to reading and writing.
_FALLBACK_ERRNOS = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}
#: Linux's copy_file_range and sendfile (into pipes too); elsewhere read + write.
_KERNEL_COPY = sys.platform.startswith("linux") and hasattr(os, "copy_file_range")
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
    out: BinaryIO,
    metadata: fmt.Metadata,
    packages: Sequence[AnalyzedPackage],
    wheels: Sequence[str | os.PathLike[str]] = (),
) -> None:
    """Write the archive for ``metadata`` whose packages are ``packages`` (same order).

    ``wheels`` are the compressed wheel files (see :mod:`portpack.pypi`) of
    ``metadata.wheels``, in the same order.
    """
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
    for wheel, path in zip(metadata.wheels, wheels, strict=True):
        frame(bytes(pad) + _header(wheel.member, wheel.size))
        _copy_file(path, ByteRange(0, wheel.zst_size), out)
        pad = -wheel.size % BLOCK
    frame(bytes(pad) + bytes(2 * BLOCK))


def _copy(pkg: AnalyzedPackage, rng: ByteRange, out: BinaryIO) -> None:
    _copy_file(pkg.path, rng, out)


def _copy_file(path: str | os.PathLike[str], rng: ByteRange, out: BinaryIO) -> None:
    with open(path, "rb") as fh:
        copied = _copy_in_kernel(fh.fileno(), rng, out)
        fh.seek(rng.offset + copied)
        left = rng.length - copied
        while left:
            data = fh.read(min(left, _COPY_CHUNK))
            if not data:
                raise OSError(f"{path} shrank while it was being packed")
            out.write(data)
            left -= len(data)


def _copy_in_kernel(source: int, rng: ByteRange, out: BinaryIO) -> int:
    """Copy what the kernel can of ``rng`` straight into ``out``'s file; return the count.

    Only for plain files and pipes opened by Python (a wrapper with a ``fileno``,
    such as a compressor, must see every byte): ``copy_file_range`` into a regular
    file, ``sendfile`` into a pipe or socket. Returns 0 when neither applies, and
    the caller copies the rest.
    """
    if not _KERNEL_COPY or type(out) not in (io.BufferedWriter, io.BufferedRandom, io.FileIO):
        return 0
    try:
        target = out.fileno()
        seekable = out.seekable()
        out.flush()
        position = out.tell() if seekable else 0
    except (OSError, ValueError):
        return 0
    done = 0
    try:
        while done < rng.length:
            count = rng.length - done
            if seekable:
                sent = os.copy_file_range(source, target, count, rng.offset + done)
            else:
                sent = os.sendfile(target, source, rng.offset + done, count)
            if sent <= 0:
                break
            done += sent
    except OSError as exc:
        if exc.errno not in _FALLBACK_ERRNOS:
            raise
    if seekable:
        out.seek(position + done)  # the kernel moved the descriptor, not Python's buffer
    return done
