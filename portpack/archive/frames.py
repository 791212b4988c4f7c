"""The raw bytes of a portpack archive and its own small frames (standard library and zstandard).

Between the verbatim package segments an archive holds small zstd frames of its own:
the metadata frame first, a frame with the tar padding and the next member's header
in front of each segment, and the end-of-archive frame.  The full reader
(:mod:`portpack.archive.reader`) and the segment sources
(:mod:`portpack.archive.segment_read`) read and check them with these functions.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import IO, BinaryIO, cast

import zstandard

from portpack.archive import format as fmt
from portpack.conda.tarstream import BLOCK, parse_header, parse_pax
from portpack.errors import ArchiveError

RAW_CHUNK = 1 << 18
#: Decoded bytes asked of the decompressor at a time.
DECODED_CHUNK = 1 << 20
_FRAME_FEED = 256


class RawInput:
    """Buffered forward reader of the raw archive bytes that can push bytes back."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self._stream = stream
        self._pending = b""
        self.offset = 0
        """Offset in the archive of the next byte returned."""
        self.name = name
        self.bytes_read = 0
        """Bytes taken from ``stream`` so far (bytes skipped by seeking are not)."""

    def read(self, n: int) -> bytes:
        """Return up to ``n`` bytes; ``b""`` only at the end of the input."""
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
        else:
            data = self._stream.read(n)
            self.bytes_read += len(data)
        self.offset += len(data)
        return data

    def skip(self, n: int, seek: bool) -> None:
        """Move ``n`` bytes forward: by seeking the stream if ``seek``, else by reading.

        A seek past the end is not noticed here; the next read finds the end.
        """
        held = min(n, len(self._pending))
        self._pending = self._pending[held:]
        self.offset += held
        left = n - held
        if seek and left:
            try:
                self._stream.seek(left, 1)
            except (OSError, OverflowError, ValueError) as exc:
                raise ArchiveError(f"{self.name}: cannot skip {left} bytes: {exc}") from exc
            self.offset += left
            return
        while left:
            data = self.read(min(left, RAW_CHUNK))
            if not data:
                raise ArchiveError(f"{self.name} is truncated at byte {self.offset}")
            left -= len(data)

    def unread(self, data: bytes) -> None:
        """Give back bytes read too far (a frame ended inside them)."""
        self._pending = data + self._pending
        self.offset -= len(data)


class FrameError(ArchiveError):
    """A zstd frame could not be decoded; ``head`` holds its first decoded bytes."""

    def __init__(self, message: str, head: bytes) -> None:
        super().__init__(message)
        self.head = head


def read_frame(raw: RawInput, dctx: zstandard.ZstdDecompressor, limit: int) -> bytes:
    """Decode exactly one zstd frame (portpack's own small frames)."""
    start = raw.offset
    dobj = dctx.decompressobj()
    out: list[bytes] = []
    size = 0

    def fail(message: str) -> FrameError:
        return FrameError(message, b"".join(out)[:BLOCK])

    while not dobj.eof:
        # Small inputs bound what one call can produce (a zstd block expands at most
        # ~32768x), so a hostile frame cannot balloon memory before the limit check.
        chunk = raw.read(_FRAME_FEED)
        if not chunk:
            raise fail(f"{raw.name} is truncated at byte {raw.offset}")
        try:
            data = dobj.decompress(chunk)
        except zstandard.ZstdError as exc:
            raise fail(f"{raw.name}: corrupt zstd frame at byte {start}: {exc}") from exc
        size += len(data)
        out.append(data)
        if size > limit:
            raise fail(f"{raw.name}: frame at byte {start} is larger than allowed")
    if dobj.unused_data:
        raw.unread(dobj.unused_data)
    return b"".join(out)


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _not_first(name: str, member: str) -> ArchiveError:
    return ArchiveError(
        f"{name} is not a portpack archive: its first member is {member!r}, "
        f"not {fmt.METADATA_NAME} (a portpack archive starts with it)"
    )


def _member_name(block: bytes) -> str | None:
    """The member name of a tar header block, or None if ``block`` is not one."""
    if len(block) < BLOCK:
        return None
    try:
        return parse_header(block[:BLOCK], "").name
    except ArchiveError:
        return None


def _outer_header(block: bytes, expected: str, size: int, where: str) -> None:
    """Check that a decoded outer header (optionally pax + ustar) names ``expected``."""
    member = parse_header(block[-BLOCK:], where)
    if len(block) > BLOCK:
        pax_hdr = parse_header(block[:BLOCK], where)
        if pax_hdr.type not in (b"x", b"X"):
            raise ArchiveError(f"{where}: unexpected tar header")
        pax = parse_pax(block[BLOCK : BLOCK + pax_hdr.size], where)
        member.name = pax.get("path", member.name)
        member.size = int(pax.get("size", member.size))
    if member.name != expected or member.size != size:
        raise ArchiveError(
            f"{where}: expected member {expected!r} of {size} bytes, "
            f"found {member.name!r} of {member.size} bytes"
        )


def read_metadata(raw: RawInput, dctx: zstandard.ZstdDecompressor) -> fmt.Metadata:
    """Read and check the metadata frame at the start of ``raw`` (it then stands after it)."""
    name = raw.name
    magic = raw.read(len(_ZSTD_MAGIC))
    if not magic:
        raise ArchiveError(f"{name} is empty")
    raw.unread(magic)
    if magic != _ZSTD_MAGIC:
        raise ArchiveError(
            f"{name} is not a portpack or pixi-pack archive "
            "(it starts with neither a zstd frame nor a tar header)"
        )
    try:
        first = read_frame(raw, dctx, fmt.MAX_METADATA_SIZE + 4 * BLOCK)
    except FrameError as exc:
        member = _member_name(exc.head)
        if member is not None and member != fmt.METADATA_NAME:
            raise _not_first(name, member) from None
        raise
    if len(first) < BLOCK:
        raise ArchiveError(f"{name} is not a portpack archive (too short)")
    try:
        header = parse_header(first[:BLOCK], name)
    except ArchiveError:
        raise ArchiveError(f"{name} is not a portpack archive") from None
    if header.name != fmt.METADATA_NAME:
        raise _not_first(name, header.name)
    if BLOCK + header.size > len(first):
        raise ArchiveError(f"{name}: {fmt.METADATA_NAME} is cut short in its frame")
    try:
        return fmt.Metadata.from_json(first[BLOCK : BLOCK + header.size])
    except ArchiveError as exc:  # the same error, naming the archive
        raise type(exc)(f"{name}: {exc.message}", hint=exc.hint) from None


def check_header_frame(
    raw: RawInput, dctx: zstandard.ZstdDecompressor, pad: int, expected: str, size: int
) -> None:
    """Read the small frame in front of a segment: ``pad`` zero bytes and its tar header."""
    where = f"{raw.name} at byte {raw.offset}"
    block = read_frame(raw, dctx, pad + 4 * BLOCK)
    if len(block) < pad + BLOCK or block[:pad].strip(b"\0") or (len(block) - pad) % BLOCK:
        raise ArchiveError(f"{where}: corrupt member header for {expected}")
    _outer_header(block[pad:], expected, size, where)


def check_offset(raw: RawInput, base: int, owner: str, what: str, seg: fmt.Segment) -> None:
    """Refuse a segment that does not start where the metadata says (format version 2)."""
    if seg.offset is not None and raw.offset - base != seg.offset:
        raise ArchiveError(
            f"{raw.name}: {owner}: {what} starts at byte {raw.offset - base} after the "
            f"metadata, but {fmt.METADATA_NAME} records offset {seg.offset}; the archive is corrupt"
        )


def check_trailer(raw: RawInput, dctx: zstandard.ZstdDecompressor, pad: int) -> None:
    """Read the end-of-archive frame; refuse anything after it."""
    where = f"{raw.name} at byte {raw.offset}"
    block = read_frame(raw, dctx, pad + 2 * BLOCK)
    if len(block) != pad + 2 * BLOCK or block.strip(b"\0"):
        raise ArchiveError(f"{where}: corrupt end of archive")
    rest = raw.read(1 << 16)
    if rest:
        raise ArchiveError(f"{where}: unexpected data after the end of the archive")


def decode_segment(
    dctx: zstandard.ZstdDecompressor, stream: BinaryIO, size: int
) -> Generator[bytes, None, int]:
    """The decoded bytes of one segment's compressed ``stream`` (its frames, read to
    their end), stopping one chunk past ``size`` at most: a segment that decodes to
    more than recorded is caught without decoding the rest. Returns how many bytes
    were decoded; raises :class:`zstandard.ZstdError` for corrupt data."""
    reader = dctx.stream_reader(
        cast("IO[bytes]", stream), read_size=RAW_CHUNK, read_across_frames=True
    )
    decoded = 0
    while chunk := reader.read(DECODED_CHUNK):
        decoded += len(chunk)
        if decoded > size:
            break
        yield chunk
    return decoded
