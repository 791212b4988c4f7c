"""The layers of a portpack archive's OCI artifact, and the scanner that finds them.

:func:`layer_plan` says, from an archive's metadata alone, which layers its artifact
has, in order; :class:`ArchiveCursor` reads the archive once, front to back (a pipe
works), and cuts it into those layers: it decodes portpack's own small frames to find
where they end (and checks the tar headers they hold), and hands each verbatim
segment on as a body whose bytes are checked against the digest the metadata records.
docs/archive-format.md ("OCI artifacts") describes the mapping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from portpack.archive import format as fmt
from portpack.archive.reader import RawInput
from portpack.conda.tarstream import BLOCK, parse_header, parse_pax
from portpack.errors import ArchiveError
from portpack.remote._http import Body

ARTIFACT_TYPE = "application/vnd.portpack.environment.v1"
CONFIG_MEDIA_TYPE = "application/vnd.portpack.metadata.v1+json"
FRAME_MEDIA_TYPE = "application/vnd.portpack.frame.v1+zstd"
INFO_MEDIA_TYPE = "application/vnd.portpack.package.info.v1+zstd"
PAYLOAD_MEDIA_TYPE = "application/vnd.portpack.package.payload.v1+zstd"
WHEEL_MEDIA_TYPE = "application/vnd.portpack.wheel.v1+zstd"
#: The tar member a layer holds, or whose header a frame layer holds.
MEMBER_ANNOTATION = "org.portpack.member"
PLATFORM_ANNOTATION = "org.portpack.platform"
END_MEMBER = "(end of archive)"
#: A frame between segments holds at most padding and a pax + ustar header.
MAX_FRAME_DECODED = 4 * BLOCK
_FEED = 256
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LayerSpec:
    """One layer as the metadata predicts it."""

    media_type: str
    member: str
    segment: fmt.Segment | None = None
    """The verbatim segment (its digest and size are known); None for a frame."""
    pad: int = 0
    """Zero bytes a frame starts with (the previous member's padding)."""


def layer_plan(meta: fmt.Metadata) -> list[LayerSpec]:
    """The layers of the artifact of an archive with ``meta``, in order."""
    out = [LayerSpec(FRAME_MEDIA_TYPE, fmt.METADATA_NAME)]
    pad = 0
    for entry in meta.packages:
        info = fmt.member_name(entry.stem, fmt.INFO_MEMBER)
        payload = fmt.member_name(entry.stem, fmt.PAYLOAD_MEMBER)
        out.append(LayerSpec(FRAME_MEDIA_TYPE, info, pad=pad))
        out.append(LayerSpec(INFO_MEDIA_TYPE, info, entry.info))
        out.append(LayerSpec(FRAME_MEDIA_TYPE, payload, pad=-entry.info.size % BLOCK))
        out.append(LayerSpec(PAYLOAD_MEDIA_TYPE, payload, entry.payload))
        pad = -entry.payload.size % BLOCK
    for wheel in meta.wheels:
        out.append(LayerSpec(FRAME_MEDIA_TYPE, wheel.member, pad=pad))
        out.append(LayerSpec(WHEEL_MEDIA_TYPE, wheel.member, wheel.segment))
        pad = -wheel.size % BLOCK
    out.append(LayerSpec(FRAME_MEDIA_TYPE, END_MEMBER, pad=pad))
    return out


# -- reading the archive once, front to back ------------------------------------------


class ArchiveCursor(RawInput):
    """The archive's raw bytes, read forward; frames are found by decoding them."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        super().__init__(stream, name)
        try:
            self._seekable = bool(stream.seekable()) and stream.tell() == 0
        except (AttributeError, OSError, ValueError):
            self._seekable = False

    def frame(self, limit: int) -> tuple[bytes, bytes]:
        """The raw bytes and decoded content of the zstd frame that starts here."""
        start = self.offset
        dobj = zstandard.ZstdDecompressor().decompressobj()
        raw: list[bytes] = []
        decoded: list[bytes] = []
        size = 0
        while not dobj.eof:
            piece = self.read(_FEED)  # small pieces bound what one call can expand to
            if not piece:
                raise ArchiveError(f"{self.name} is truncated at byte {self.offset}")
            try:
                out = dobj.decompress(piece)
            except zstandard.ZstdError as exc:
                raise ArchiveError(
                    f"{self.name}: corrupt zstd frame at byte {start}: {exc}"
                ) from exc
            raw.append(piece)
            decoded.append(out)
            size += len(out)
            if size > limit:
                raise ArchiveError(f"{self.name}: the frame at byte {start} is larger than allowed")
        data = b"".join(raw)
        if dobj.unused_data:
            unused = dobj.unused_data
            self.unread(unused)
            data = data[: len(data) - len(unused)]
        return data, b"".join(decoded)

    def segment(self, seg: fmt.Segment, what: str) -> tuple[Body, bool]:
        """A body of the segment's bytes here (checked against its digest as sent).

        Returns ``(body, replayable)``.  Call :meth:`past` once the body was sent or
        not needed.
        """
        start = self.offset

        def chunks() -> Iterator[bytes]:
            if self._seekable:
                self._stream.seek(start)
                self._pending, self.offset = b"", start
            digest = hashlib.sha256()
            left = seg.zst_size
            while left:
                data = self.read(min(left, _CHUNK))
                if not data:
                    raise ArchiveError(f"{self.name} is truncated inside {what}")
                digest.update(data)
                left -= len(data)
                yield data
            if digest.hexdigest() != seg.zst_sha256:
                raise ArchiveError(
                    f"{self.name}: {what} (archive bytes {start}-{start + seg.zst_size}) does "
                    "not match the digest recorded at pack time; the archive is corrupt"
                )

        self._segment = (start, chunks)
        return Body(seg.zst_size, chunks, replayable=self._seekable), self._seekable

    def past(self, seg: fmt.Segment, sent: bool) -> None:
        """Move past the segment (read and checked unless it was sent or can be sought)."""
        start, chunks = self._segment
        if self._seekable:
            self._stream.seek(start + seg.zst_size)
            self._pending, self.offset = b"", start + seg.zst_size
        elif not sent:
            for _ in chunks():
                pass

    def at_end(self) -> bool:
        return not self.read(1)


def check_frame(decoded: bytes, spec: LayerSpec, size: int | None, where: str) -> None:
    """A frame between segments holds the padding and the expected member's header."""
    pad = spec.pad
    if spec.member == END_MEMBER:
        if len(decoded) != pad + 2 * BLOCK or decoded.strip(b"\0"):
            raise ArchiveError(f"{where}: corrupt end of archive")
        return
    if len(decoded) < pad + BLOCK or decoded[:pad].strip(b"\0") or (len(decoded) - pad) % BLOCK:
        raise ArchiveError(f"{where}: corrupt member header for {spec.member}")
    block = decoded[pad:]
    member = parse_header(block[-BLOCK:], where)
    name, msize = member.name, member.size
    if len(block) > BLOCK:
        pax_hdr = parse_header(block[:BLOCK], where)
        pax = parse_pax(block[BLOCK : BLOCK + pax_hdr.size], where)
        name, msize = pax.get("path", name), int(pax.get("size", msize))
    if name != spec.member or msize != size:
        raise ArchiveError(
            f"{where}: expected member {spec.member!r} of {size} bytes, found {name!r}"
        )


def metadata_of(decoded: bytes, name: str) -> bytes:
    """The ``portpack.json`` bytes in the decoded first frame."""
    if len(decoded) < BLOCK:
        raise ArchiveError(f"{name} is not a portpack archive (too short)")
    header = parse_header(decoded[:BLOCK], name)
    if header.name != fmt.METADATA_NAME or BLOCK + header.size > len(decoded):
        raise ArchiveError(
            f"{name} is not a portpack archive: it does not start with {fmt.METADATA_NAME}"
        )
    return decoded[BLOCK : BLOCK + header.size]
