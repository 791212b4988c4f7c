"""Decoding the segments a :class:`~portpack.archive.segment_source.SegmentSource` yields.

Shaped like :meth:`ArchiveReader.packages() <portpack.archive.reader.ArchiveReader.packages>`
and ``wheels()``, for only the packages and wheels an update asks for (standard
library and zstandard only).  Each segment's compressed stream is decoded as it is
read; its decoded size is checked against the metadata, and the source checks the
compressed bytes' digest before it hands on the last of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

import zstandard

from portpack.archive import format as fmt
from portpack.archive.frames import decode_segment
from portpack.archive.segment_read import StreamSegments
from portpack.archive.segment_source import SegmentRef, SegmentSource, package_refs, wheel_ref
from portpack.conda.tarstream import ChunkReader
from portpack.errors import ArchiveError


def decode(stream: BinaryIO, ref: SegmentRef, name: str) -> Iterator[bytes]:
    """The decoded bytes of one segment's compressed ``stream`` (of archive ``name``)."""
    seg = ref.segment
    try:
        decoded = yield from decode_segment(zstandard.ZstdDecompressor(), stream, seg.size)
        rest = stream.read()  # the source checks the digest when it reaches the end
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"{name}: {ref.owner}: corrupt data in {ref.member}: {exc}") from exc
    if decoded != seg.size or rest:
        raise ArchiveError(
            f"{name}: {ref.owner}: {ref.member} decodes to "
            f"{'more than ' if decoded > seg.size else ''}{decoded} bytes, not the "
            f"{seg.size} recorded at pack time; the archive is corrupt"
        )


def _next(streams: Iterator[tuple[SegmentRef, BinaryIO]], name: str) -> tuple[SegmentRef, BinaryIO]:
    item = next(streams, None)
    if item is None:
        raise ArchiveError(f"{name}: the archive source ended before the segments asked for")
    return item


def _close(streams: Iterator[tuple[SegmentRef, BinaryIO]]) -> None:
    close = getattr(streams, "close", None)  # a generator: run its cleanup now
    if close is not None:
        close()


def _archive_order(
    metadata: fmt.Metadata, entries: Iterable[fmt.PackageEntry]
) -> list[fmt.PackageEntry]:
    by_id = {id(entry): i for i, entry in enumerate(metadata.packages)}
    positions = []
    for entry in entries:
        position = by_id.get(id(entry))
        if position is None:
            if entry not in metadata.packages:
                raise ArchiveError(f"package {entry.dist} is not in the archive's metadata")
            position = metadata.packages.index(entry)
        positions.append(position)
    return [metadata.packages[i] for i in sorted(set(positions))]


def iter_packages(
    source: SegmentSource, metadata: fmt.Metadata, entries: Iterable[fmt.PackageEntry]
) -> Iterator[tuple[fmt.PackageEntry, bytes, ChunkReader]]:
    """Yield each of ``entries`` (packages of ``metadata``) in archive order, with its
    ``info/`` tar bytes and its decoded payload tar.

    Read or :meth:`~portpack.conda.tarstream.ChunkReader.drain` each payload before
    the next package: it is drained (and so checked) when the next one is asked for.
    """
    chosen = _archive_order(metadata, entries)
    streams = source.segments([ref for entry in chosen for ref in package_refs(entry)])
    try:
        for entry in chosen:
            info_ref, info_stream = _next(streams, source.name)
            info = b"".join(decode(info_stream, info_ref, source.name))
            payload_ref, payload_stream = _next(streams, source.name)
            payload = ChunkReader(
                decode(payload_stream, payload_ref, source.name), f"payload of package {entry.dist}"
            )
            yield entry, info, payload
            payload.drain()
        next(streams, None)  # let the source finish its last segment
    finally:
        _close(streams)


def iter_wheels(
    source: SegmentSource, wheels: Iterable[fmt.WheelEntry]
) -> Iterator[tuple[fmt.WheelEntry, ChunkReader]]:
    """Yield each of ``wheels`` in the order given (archive order) with its decoded file.

    Call it after :func:`iter_packages` (wheels follow the packages in an archive);
    a forward stream is then read on to the end of the archive and its end checked.
    """
    chosen = list(wheels)
    streams = source.segments([wheel_ref(wheel) for wheel in chosen])
    try:
        for wheel in chosen:
            ref, stream = _next(streams, source.name)
            reader = ChunkReader(decode(stream, ref, source.name), f"wheel {wheel.filename}")
            yield wheel, reader
            reader.drain()
        next(streams, None)
    finally:
        _close(streams)
    if isinstance(source, StreamSegments):
        source.finish()
