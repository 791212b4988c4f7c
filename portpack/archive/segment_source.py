"""Reading only some segments of an archive (``unpack --update``): the shared interface.

A full unpack reads an archive front to back (:mod:`portpack.archive.reader`). An
update needs only the segments of the packages and wheels that changed, and each
source of archives gets them its own way: a seekable file seeks past the rest, a
pipe reads and discards it, an HTTP server is asked for byte ranges, an OCI
registry for the changed layers' blobs. Each of those is a :class:`SegmentSource`;
the update consumes them all through this interface.

Every stream a source yields holds exactly the segment's ``zst_size`` compressed
bytes and checks them against its ``zst_sha256`` when it reaches the end, raising
:class:`~portpack.errors.ArchiveError` naming the owner and the archive: a source
never hands on bytes it has not checked by the time the consumer sees the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from portpack.archive import format as fmt


@dataclass(frozen=True)
class SegmentRef:
    """One segment an update wants: whose it is, which member, and what it must hash to."""

    owner: str
    """``package <dist>`` or ``wheel <file name>``: names it in error messages."""
    member: str
    """The outer tar member it is the content of (``pkgs/<stem>/pkg.tar``, ``wheels/<file>``)."""
    segment: fmt.Segment


class SegmentSource(Protocol):
    """Where the segments of one archive come from."""

    name: str
    """The archive's name in messages (a path, a URL, an ``oci://`` reference)."""
    bytes_read: int
    """Raw bytes read or downloaded from the source so far, metadata included."""

    def segments(self, wanted: Sequence[SegmentRef]) -> Iterator[tuple[SegmentRef, BinaryIO]]:
        """Yield each of ``wanted`` (given in archive order) with a stream of its
        compressed bytes; the consumer reads each stream to its end, or closes it,
        before asking for the next."""
        ...

    def close(self) -> None:
        """Release connections and files (safe to call more than once)."""
        ...


def package_refs(entry: fmt.PackageEntry) -> tuple[SegmentRef, SegmentRef]:
    """The info and payload segments of a package, in archive order."""
    owner = f"package {entry.dist}"
    return (
        SegmentRef(owner, fmt.member_name(entry.stem, fmt.INFO_MEMBER), entry.info),
        SegmentRef(owner, fmt.member_name(entry.stem, fmt.PAYLOAD_MEMBER), entry.payload),
    )


def wheel_ref(wheel: fmt.WheelEntry) -> SegmentRef:
    """The segment of a wheel."""
    return SegmentRef(f"wheel {wheel.filename}", wheel.member, wheel.segment)
