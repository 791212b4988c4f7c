"""Writing portpack archives (see :mod:`portpack.archive.format`)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import tarfile
from collections.abc import Sequence
from typing import BinaryIO

import zstandard

from portpack.archive import format as fmt
from portpack.archive.segments import AnalyzedPackage, ByteRange
from portpack.conda.tarstream import BLOCK
from portpack.progress import Reporter

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
    reporter: Reporter | None = None,
) -> None:
    """Write the archive for ``metadata`` whose packages are ``packages`` (same order).

    ``wheels`` are the compressed wheel files (see :mod:`portpack.packer.pypi`) of
    ``metadata.wheels``, in the same order.  ``reporter`` hears of each member
    written (:meth:`~portpack.progress.Reporter.on_transfer_start`).  The metadata is
    written in the current format version, with the offsets :func:`place` gives it.
    """
    reporter = reporter or Reporter()
    reporter.on_transfer_start("Writing", *_totals(metadata))
    try:
        _write_members(out, metadata, packages, wheels, reporter)
    finally:
        reporter.on_transfer_complete()


def _totals(metadata: fmt.Metadata) -> tuple[int, int]:
    """Packages and wheels, and the bytes of their stored members."""
    sizes = [e.info.zst_size + e.payload.zst_size for e in metadata.packages]
    sizes += [w.zst_size for w in metadata.wheels]
    return len(sizes), sum(sizes)


def _write_members(
    out: BinaryIO,
    metadata: fmt.Metadata,
    packages: Sequence[AnalyzedPackage],
    wheels: Sequence[str | os.PathLike[str]],
    reporter: Reporter,
) -> None:
    cctx = _compressor()
    # The header frames are compressed first: their sizes place every segment, and
    # the offsets go into the metadata written in front of them.
    frames, end = _header_frames(metadata, cctx)
    metadata = fmt.with_offsets(metadata, [len(f) for f in frames])
    meta = metadata.to_json()
    block = _header(fmt.METADATA_NAME, len(meta)) + meta + bytes(-len(meta) % BLOCK)
    out.write(cctx.compress(block))
    headers = iter(frames)
    for entry, pkg in zip(metadata.packages, packages, strict=True):
        out.write(next(headers))
        _copy(pkg, pkg.info_range, out)
        out.write(next(headers))
        _copy(pkg, pkg.payload_range, out)
        reporter.on_transfer_progress(entry.info.zst_size + entry.payload.zst_size, 1)
    for wheel, path in zip(metadata.wheels, wheels, strict=True):
        out.write(next(headers))
        _copy_file(path, ByteRange(0, wheel.zst_size), out)
        reporter.on_transfer_progress(wheel.zst_size, 1)
    out.write(end)


def _compressor() -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(
        level=_FRAME_LEVEL, write_checksum=True, write_content_size=True
    )


def _header_frames(
    metadata: fmt.Metadata, cctx: zstandard.ZstdCompressor
) -> tuple[list[bytes], bytes]:
    """The frame in front of each segment (archive order), and the end-of-archive frame.

    Each holds the previous member's tar padding and the next member's header; they
    depend only on names and sizes, so they are the same every time.
    """
    frames = []
    pad = 0
    for entry in metadata.packages:
        info = fmt.member_name(entry.stem, fmt.INFO_MEMBER)
        frames.append(cctx.compress(bytes(pad) + _header(info, entry.info.size)))
        payload = fmt.member_name(entry.stem, fmt.PAYLOAD_MEMBER)
        pad = -entry.info.size % BLOCK
        frames.append(cctx.compress(bytes(pad) + _header(payload, entry.payload.size)))
        pad = -entry.payload.size % BLOCK
    for wheel in metadata.wheels:
        frames.append(cctx.compress(bytes(pad) + _header(wheel.member, wheel.size)))
        pad = -wheel.size % BLOCK
    return frames, cctx.compress(bytes(pad) + bytes(2 * BLOCK))


def place(metadata: fmt.Metadata) -> fmt.Metadata:
    """``metadata`` with the segment offsets :func:`write_archive` gives it."""
    frames, _ = _header_frames(metadata, _compressor())
    return fmt.with_offsets(metadata, [len(f) for f in frames])


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


def write_directory(
    target: str | os.PathLike[str],
    metadata: fmt.Metadata,
    packages: Sequence[AnalyzedPackage],
    wheels: Sequence[str | os.PathLike[str]] = (),
    reporter: Reporter | None = None,
) -> None:
    """Write the archive's members into the folder ``target`` (``--directory-only``).

    ``portpack.json`` as the archive would hold it, and each member's stored bytes
    (the zstd frames the archive would hold) in ``<member>.zst``: see
    docs/archive-format.md.  The folder appears only once it is complete.
    """
    from portpack import outside
    from portpack.archive.directory import stored_name

    reporter = reporter or Reporter()
    reporter.on_transfer_start("Writing", *_totals(metadata))
    metadata = place(metadata)  # the offsets of the equivalent archive (the same JSON)
    with contextlib.ExitStack() as stack:
        stack.callback(reporter.on_transfer_complete)
        root = stack.enter_context(outside.atomic_directory(target))
        (root / fmt.METADATA_NAME).write_bytes(metadata.to_json())
        for entry, pkg in zip(metadata.packages, packages, strict=True):
            (root / fmt.PACKAGES_DIR / entry.stem).mkdir(parents=True)
            for member, rng in (
                (fmt.INFO_MEMBER, pkg.info_range),
                (fmt.PAYLOAD_MEMBER, pkg.payload_range),
            ):
                with open(root / stored_name(fmt.member_name(entry.stem, member)), "wb") as out:
                    _copy(pkg, rng, out)
            reporter.on_transfer_progress(entry.info.zst_size + entry.payload.zst_size, 1)
        if metadata.wheels:
            (root / fmt.WHEELS_DIR).mkdir()
        for wheel, path in zip(metadata.wheels, wheels, strict=True):
            with open(root / stored_name(wheel.member), "wb") as out:
                _copy_file(path, ByteRange(0, wheel.zst_size), out)
            reporter.on_transfer_progress(wheel.zst_size, 1)
