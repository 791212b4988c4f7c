"""Checked segment streams, and a forward walk of an archive that skips what is not wanted.

:class:`CheckedSegment` is the stream every remote :class:`SegmentSource` yields:
exactly ``zst_size`` bytes, hashed as they pass; the read that completes the segment
checks its sha256 and raises instead of handing on the last bytes of a segment that
does not match.

:class:`SequentialSegments` reads an archive front to back from any forward stream
(an HTTP body of a server without ranges, a v1 archive, a pipe), using the layout
:func:`~portpack.remote.oci_layout.layer_plan` derives from the metadata: portpack's
small frames are decoded and checked, wanted segments are yielded, the others are
read and discarded.  For the lead: u-format's sequential source for pipes does the
same on the archive side; one of the two should serve both.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO, cast

from portpack.archive import format as fmt
from portpack.archive.segment_source import SegmentRef
from portpack.conda.tarstream import BLOCK
from portpack.errors import ArchiveError
from portpack.remote.oci_layout import (
    MAX_FRAME_DECODED,
    ArchiveCursor,
    check_frame,
    layer_plan,
    metadata_of,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_CHUNK = 1 << 20
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class CheckedSegment(io.RawIOBase):
    """One segment's ``zst_size`` compressed bytes, read through ``pull`` and checked.

    ``pull(n)`` returns up to ``n`` (at least one) of the next bytes, or ``b""`` when
    its source ended early.  ``where`` names the archive (a masked URL, a reference).
    """

    def __init__(self, ref: SegmentRef, where: str, pull: Callable[[int], bytes]) -> None:
        super().__init__()
        self.ref = ref
        self.name = where
        self.left = ref.segment.zst_size
        """Bytes of the segment not yet read."""
        self._pull = pull
        self._hash = hashlib.sha256()
        if not self.left:
            self._check()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.closed:
            raise ValueError("read of a closed segment stream")
        if not self.left or not len(view):
            return 0
        data = self._pull(min(len(view), self.left))
        if not data:
            raise ArchiveError(
                f"{self.name} ended inside {self.ref.member} of {self.ref.owner} "
                f"({self.left} of its {self.ref.segment.zst_size} bytes missing)"
            )
        if len(data) > self.left:
            raise ArchiveError(f"{self.name}: internal error: a segment read too far")
        self._hash.update(data)
        self.left -= len(data)
        if not self.left:
            self._check()
        view[: len(data)] = data
        return len(data)

    def _check(self) -> None:
        if self._hash.hexdigest() != self.ref.segment.zst_sha256:
            raise ArchiveError(
                f"{self.name}: {self.ref.owner}: {self.ref.member} does not match the digest "
                "recorded at pack time; the archive is corrupt (or the server sent bytes "
                "that are not this archive's)"
            )


class SequentialSegments:
    """A :class:`SegmentSource` reading an archive forward from just after its metadata.

    ``cursor`` has just read ``meta``'s frame; ``close`` releases what it reads.
    :attr:`bytes_read` is kept by whoever counts the bytes below the cursor.
    """

    def __init__(
        self, meta: fmt.Metadata, cursor: ArchiveCursor, close: Callable[[], None]
    ) -> None:
        self.name = cursor.name
        self.metadata = meta
        self.bytes_read = 0
        self._meta = meta
        self._cursor = cursor
        self._close = close

    def segments(self, wanted: Sequence[SegmentRef]) -> Iterator[tuple[SegmentRef, BinaryIO]]:
        plan = layer_plan(self._meta)[1:]
        todo = list(wanted)
        cursor = self._cursor
        for i, spec in enumerate(plan):
            if not todo:
                return
            where = f"{self.name} at byte {cursor.offset}"
            if spec.segment is None:
                following = plan[i + 1].segment if i + 1 < len(plan) else None
                _, decoded = cursor.frame(spec.pad + MAX_FRAME_DECODED)
                check_frame(decoded, spec, following.size if following else None, where)
                continue
            if spec.member != todo[0].member:
                self._skip(spec.segment.zst_size, spec.member)
                continue
            ref = todo.pop(0)
            if ref.segment != spec.segment:
                raise ArchiveError(f"{self.name}: {ref.owner} is not the archive's {ref.member}")
            stream = CheckedSegment(ref, self.name, cursor.read)
            yield ref, cast(BinaryIO, stream)
            self._skip(stream.left, ref.member)  # what the consumer left unread
        if todo:
            raise ArchiveError(
                f"{self.name} has no {todo[0].member} after the segments before it "
                "(the segments wanted are not in the archive's order)"
            )

    def _skip(self, size: int, member: str) -> None:
        left = size
        while left:
            data = self._cursor.read(min(left, _CHUNK))
            if not data:
                raise ArchiveError(f"{self.name} is truncated inside {member}")
            left -= len(data)

    def close(self) -> None:
        self._close()


def read_metadata(cursor: ArchiveCursor) -> fmt.Metadata:
    """The metadata of the archive ``cursor`` starts at (it then stands after its frame)."""
    magic = cursor.read(len(_ZSTD_MAGIC))
    cursor.unread(magic)
    if magic != _ZSTD_MAGIC:
        raise ArchiveError(
            f"{cursor.name} is not a portpack archive (it does not start with a zstd "
            "frame); only portpack archives are read in parts"
        )
    _, decoded = cursor.frame(fmt.MAX_METADATA_SIZE + 4 * BLOCK)
    return fmt.Metadata.from_json(metadata_of(decoded, cursor.name))


def open_forward_segments(
    stream: BinaryIO, name: str, close: Callable[[], None]
) -> SequentialSegments:
    """Read the metadata of the archive ``stream`` holds; its segments are then read
    forward (a pipe works; a file is read, not sought in)."""
    counted = _Counted(stream)
    cursor = ArchiveCursor(cast(BinaryIO, counted), name)
    meta = read_metadata(cursor)
    walk = SequentialSegments(meta, cursor, close)
    counted.source = walk
    walk.bytes_read = counted.count
    return walk


class _Counted:
    """A stream's reads, counted into a source's :attr:`bytes_read`."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0
        self.source: SequentialSegments | None = None

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.count += len(data)
        if self.source is not None:
            self.source.bytes_read = self.count
        return data

    def seekable(self) -> bool:
        return False
