"""Segment sources for local archives: files, pipes, self-extracting files and folders.

The :class:`~portpack.archive.segment_source.SegmentSource`\\ s an update reads
from when its archive is on this machine (standard library and zstandard only):

* :class:`StreamSegments` reads any forward stream that stands after the metadata
  frame (a pipe, standard input, an HTTP body, a version 1 file): it reads and checks
  each small header frame as the full reader does and skips the segments not wanted,
  by seeking when the stream is a seekable file and by reading otherwise.
* :class:`OffsetSegments` seeks straight to each wanted segment of a version 2 file
  by its recorded offset; nothing else is read.
* :class:`FolderSegments` opens the wanted members' files of a ``pack
  --directory-only`` folder, never through a symlink.

:func:`open_local_segments` picks the right one.  Every stream handed out is
:class:`SegmentStream`: exactly ``zst_size`` bytes, checked against ``zst_sha256``
before its last byte is handed on.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, cast

import zstandard

from portpack.archive import format as fmt
from portpack.archive import sfx
from portpack.archive.directory import (
    PIXI_PACK_METADATA,
    Folder,
    is_archive_directory,
    stored_name,
)
from portpack.archive.frames import (
    RawInput,
    check_header_frame,
    check_offset,
    check_trailer,
    read_metadata,
)
from portpack.archive.segment_source import SegmentRef, SegmentSource, package_refs, wheel_ref
from portpack.conda.tarstream import BLOCK, looks_like_tar
from portpack.errors import ArchiveError
from portpack.streams import PeekedStream, read_exactly

_CHUNK = 1 << 20


class SegmentStream(io.RawIOBase):
    """Exactly one segment's compressed bytes, checked against its digest at the end.

    ``pull(n)`` returns up to ``n`` bytes of the source (``b""`` at its end).  The
    digest is checked when the last byte arrives, before it is returned; a source
    that ends early is a truncated archive.
    """

    def __init__(self, ref: SegmentRef, pull: Callable[[int], bytes], name: str) -> None:
        super().__init__()
        self.ref = ref
        self.left = ref.segment.zst_size
        self._pull = pull
        self._name = name
        self._sha256 = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        """Up to ``n`` bytes (all that is left when ``n`` is negative or None)."""
        if self.closed:
            raise ValueError("read of a closed segment stream")
        if n is None or n < 0:
            parts = []
            while self.left:
                parts.append(self.read(min(self.left, _CHUNK)))
            return b"".join(parts)
        want = min(n, self.left)
        data = self._pull(want) if want else b""
        if want and not data:
            raise ArchiveError(
                f"{self._name} is truncated inside {self.ref.member} of {self.ref.owner}"
            )
        self.left -= len(data)
        self._sha256.update(data)
        if not self.left and not self._checked:
            self._check()
        return data

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def _check(self) -> None:
        self._checked = True
        if self._sha256.hexdigest() != self.ref.segment.zst_sha256:
            raise ArchiveError(
                f"{self._name}: {self.ref.owner}: {self.ref.member} does not match the "
                "digest recorded at pack time; the archive is corrupt"
            )


def _in_order(
    wanted: Sequence[SegmentRef], every: list[SegmentRef], name: str, first: int = 0
) -> list[int]:
    """The archive position of each wanted segment; refuse refs the archive lacks.

    Positions must rise, starting at ``first`` (a stream read forward cannot go back).
    """
    index = {(ref.member, ref.segment): i for i, ref in enumerate(every)}
    positions: list[int] = []
    for ref in wanted:
        position = index.get((ref.member, ref.segment))
        if position is None or position < (positions[-1] + 1 if positions else first):
            raise ArchiveError(
                f"{name}: {ref.owner}: {ref.member} is not a segment of this archive "
                "(or was asked for out of archive order)"
            )
        positions.append(position)
    return positions


def all_refs(metadata: fmt.Metadata) -> list[SegmentRef]:
    """Every segment of the archive, in archive order."""
    refs = [ref for entry in metadata.packages for ref in package_refs(entry)]
    return refs + [wheel_ref(wheel) for wheel in metadata.wheels]


class StreamSegments:
    """Segments of a forward stream read in order; header frames read and checked."""

    def __init__(
        self,
        raw: RawInput,
        metadata: fmt.Metadata,
        seekable: bool = False,
        closer: Callable[[], object] | None = None,
    ) -> None:
        self.name = raw.name
        self._closer = closer
        self._raw = raw
        self._base = raw.offset
        self._metadata = metadata
        self._seek = seekable
        self._dctx = zstandard.ZstdDecompressor()
        self._every = all_refs(metadata)
        self._next = 0
        """The archive position of the next segment, whose header frame is next."""
        self._pad = 0
        self._broken = False

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the stream (metadata included; skipped by seeking: not)."""
        return self._raw.bytes_read

    @bytes_read.setter
    def bytes_read(self, value: int) -> None:
        self._raw.bytes_read = value

    def segments(self, wanted: Sequence[SegmentRef]) -> Iterator[tuple[SegmentRef, BinaryIO]]:
        """Yield the wanted segments, skipping the others; stop after the last one.

        A later call goes on from there (its segments come after these); call
        :meth:`finish` after the last one to read the stream to its end.
        """
        if self._broken:
            raise ArchiveError(f"{self.name}: the archive stream was left inside a segment")
        chosen = _in_order(wanted, self._every, self.name, self._next)
        for position in chosen:
            self._skip_to(position)
            ref = self._every[position]
            self._header(ref)
            stream = SegmentStream(ref, self._raw.read, self.name)
            self._broken = True  # until the consumer is done with it
            yield ref, cast(BinaryIO, stream)
            self._raw.skip(stream.left, self._seek)  # what the consumer left unread
            stream.close()
            self._broken = False
            self._next, self._pad = position + 1, -ref.segment.size % BLOCK

    def finish(self) -> None:
        """Go through the rest of the archive, checking its frames and its end."""
        if self._broken:
            raise ArchiveError(f"{self.name}: the archive stream was left inside a segment")
        self._skip_to(len(self._every))
        check_trailer(self._raw, self._dctx, self._pad)

    def _header(self, ref: SegmentRef) -> None:
        check_header_frame(self._raw, self._dctx, self._pad, ref.member, ref.segment.size)
        check_offset(self._raw, self._base, ref.owner, ref.member, ref.segment)

    def _skip_to(self, position: int) -> None:
        """Skip the segments before ``position`` (seeking past them when it can)."""
        while self._next < position:
            ref = self._every[self._next]
            self._header(ref)
            self._raw.skip(ref.segment.zst_size, self._seek)
            self._next, self._pad = self._next + 1, -ref.segment.size % BLOCK

    def close(self) -> None:
        """Close the stream if this source opened it (a stream given stays open)."""
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()


class OffsetSegments:
    """Segments of a seekable version 2 file, reached by seeking to their offsets."""

    def __init__(
        self, fh: BinaryIO, base: int, metadata: fmt.Metadata, name: str, owned: bool
    ) -> None:
        self.name = name
        self.bytes_read = 0
        self._fh = fh
        self._owned = owned
        self._base = base
        """The file position of the first byte after the metadata frame."""
        self._metadata = metadata

    def _pull(self, n: int) -> bytes:
        data = self._fh.read(n)
        self.bytes_read += len(data)
        return data

    def segments(self, wanted: Sequence[SegmentRef]) -> Iterator[tuple[SegmentRef, BinaryIO]]:
        """Seek to each wanted segment and yield it."""
        _in_order(wanted, all_refs(self._metadata), self.name)
        for ref in wanted:
            assert ref.segment.offset is not None  # version 2: Metadata checked every one
            self._fh.seek(self._base + ref.segment.offset)
            stream = SegmentStream(ref, self._pull, self.name)
            yield ref, cast(BinaryIO, stream)
            stream.close()

    def close(self) -> None:
        """Close the file if this source opened it."""
        if self._owned:
            self._fh.close()


class FolderSegments:
    """Segments of a ``pack --directory-only`` folder: one file per member."""

    def __init__(self, folder: Folder, metadata: fmt.Metadata, name: str, bytes_read: int) -> None:
        self.name = name
        self.bytes_read = bytes_read
        self._folder = folder
        self._metadata = metadata

    def segments(self, wanted: Sequence[SegmentRef]) -> Iterator[tuple[SegmentRef, BinaryIO]]:
        """Open each wanted member's file (no symlink followed) and yield it."""
        _in_order(wanted, all_refs(self._metadata), self.name)
        for ref in wanted:
            rel = stored_name(ref.member)
            fd, size = self._folder.open_file(rel)
            with os.fdopen(fd, "rb", buffering=0) as fh:
                if size != ref.segment.zst_size:
                    raise ArchiveError(
                        f"{self.name}: {rel} is {size} bytes, {fmt.METADATA_NAME} says "
                        f"{ref.segment.zst_size}; the folder is corrupt"
                    )
                stream = SegmentStream(ref, self._counted(cast(BinaryIO, fh)), self.name)
                yield ref, cast(BinaryIO, stream)
                stream.close()

    def _counted(self, fh: BinaryIO) -> Callable[[int], bytes]:
        def pull(n: int) -> bytes:
            data = fh.read(n)
            self.bytes_read += len(data)
            return data

        return pull

    def close(self) -> None:
        """Close the folder."""
        self._folder.close()


def _no_segments(name: str) -> ArchiveError:
    return ArchiveError(
        f"{name} is a pixi-pack archive: it holds whole package files, not portpack's "
        "segments, so its packages cannot be read one by one",
        hint="Unpack it in full, or pack the environment again in portpack's format.",
    )


def stream_segments(stream: BinaryIO, name: str) -> tuple[fmt.Metadata, StreamSegments]:
    """The metadata and segments of the archive a forward ``stream`` starts with.

    The stream (a pipe, an HTTP body, a self-extracting file's archive part) is read
    front to back; segments not wanted are read and discarded.
    """
    head = read_exactly(stream, BLOCK)
    if looks_like_tar(head):
        raise _no_segments(name)
    raw = RawInput(cast(BinaryIO, PeekedStream(head, stream)), name)
    metadata = read_metadata(raw, zstandard.ZstdDecompressor())
    return metadata, StreamSegments(raw, metadata)


def open_local_segments(
    archive: str | os.PathLike[str] | BinaryIO, name: str
) -> tuple[fmt.Metadata, SegmentSource]:
    """The metadata and a segment source of a local archive: a path or an open stream.

    A folder (``pack --directory-only``) reads its members' files; a seekable file
    (after a self-extracting header, if any) seeks, by offset in version 2; anything
    else is read forward.  A pixi-pack archive or folder is refused: it has no segments.
    """
    if isinstance(archive, (str, os.PathLike)):
        if is_archive_directory(archive):
            return _folder_segments(os.fspath(archive), name)
        try:
            fh = cast(BinaryIO, open(archive, "rb", buffering=0))  # noqa: SIM115 (the source owns it)
        except OSError as exc:
            raise ArchiveError(f"cannot open archive {archive}: {exc.strerror or exc}") from exc
        try:
            return _file_segments(fh, name, owned=True)
        except BaseException:
            fh.close()
            raise
    return _file_segments(archive, name, owned=False)


def _folder_segments(path: str, name: str) -> tuple[fmt.Metadata, SegmentSource]:
    folder = Folder(path)
    try:
        if folder.exists(fmt.METADATA_NAME):
            meta = folder.read_small(fmt.METADATA_NAME, fmt.MAX_METADATA_SIZE)
            try:
                metadata = fmt.Metadata.from_json(meta)
            except ArchiveError as exc:  # the same error, naming the folder
                raise type(exc)(f"{name}: {exc.message}", hint=exc.hint) from None
            return metadata, FolderSegments(folder, metadata, name, len(meta))
        if folder.exists(PIXI_PACK_METADATA):
            raise _no_segments(name)
        raise ArchiveError(
            f"{name} is a folder without {fmt.METADATA_NAME} or {PIXI_PACK_METADATA}: "
            "not an archive written with --directory-only"
        )
    except BaseException:
        folder.close()
        raise


def _seekable(stream: BinaryIO) -> bool:
    try:
        stream.tell()
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _file_segments(fh: BinaryIO, name: str, owned: bool) -> tuple[fmt.Metadata, SegmentSource]:
    """A file or stream: seek when it can (by offset in version 2), else read forward."""
    closer = fh.close if owned else None
    if not _seekable(fh):
        head = read_exactly(fh, 2)
        stream = sfx.skip_header(cast(BinaryIO, PeekedStream(head, fh)), name)
        metadata, forward = stream_segments(stream, name)
        forward._closer = closer
        return metadata, forward
    start = fh.tell()
    head = read_exactly(fh, 2)
    if head == b"#!":  # a self-extracting file: the archive part starts at its offset
        head += read_exactly(fh, sfx.MAX_HEADER - len(head))
        start += sfx.archive_offset(head, name)
    sniffed = len(head)
    fh.seek(start)
    if looks_like_tar(read_exactly(fh, BLOCK)):
        raise _no_segments(name)
    fh.seek(start)
    raw = RawInput(fh, name)
    metadata = read_metadata(raw, zstandard.ZstdDecompressor())
    raw.bytes_read += sniffed + BLOCK
    base = start + raw.offset
    _check_length(fh, base, metadata, name)
    if metadata.format_version == 1:
        return metadata, StreamSegments(raw, metadata, seekable=True, closer=closer)
    source = OffsetSegments(fh, base, metadata, name, owned)
    source.bytes_read = raw.bytes_read
    return metadata, source


def _check_length(fh: BinaryIO, base: int, metadata: fmt.Metadata, name: str) -> None:
    """Refuse a file that ends before its last segment does (whatever the sizes claim).

    In version 2 the last segment's offset says where that is; in version 1 the
    segments' sizes add up to the least it can be.
    """
    end = base
    for _, seg in fmt.archive_segments(metadata):
        end = (end if seg.offset is None else base + seg.offset) + seg.zst_size
    position = fh.tell()
    size = fh.seek(0, os.SEEK_END)
    fh.seek(position)
    if size < end:
        raise ArchiveError(
            f"{name} is truncated: it is {size} bytes, its segments need at least {end}"
        )
