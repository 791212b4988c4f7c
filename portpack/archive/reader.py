"""Forward-only reader of portpack archives (standard library and zstandard only).

A background thread reads the raw archive once, front to back, decodes its zstd
frames (zstandard releases the GIL while decoding), hashes every verbatim package
segment and hands decoded chunks to the consumer through a bounded queue, so
memory stays flat however large the archive is.  Nothing here seeks: the input
may be a pipe.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

import zstandard

from portpack.archive import format as fmt
from portpack.conda.tarstream import BLOCK, ChunkReader, Member, parse_header, parse_pax
from portpack.errors import ArchiveError

_RAW_CHUNK = 1 << 18
_DECODED_CHUNK = 1 << 20
_QUEUE_DEPTH = 16
_FRAME_FEED = 256
#: Seconds close() waits for the reader thread to notice it must stop.
_CLOSE_WAIT = 0.5
#: Seconds of one slice of the consumer's wait for the reader thread.
_GET_SLICE = 0.1


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
            self._stream.seek(left, 1)
            self.offset += left
            return
        while left:
            data = self.read(min(left, _RAW_CHUNK))
            if not data:
                raise ArchiveError(f"{self.name} is truncated at byte {self.offset}")
            left -= len(data)

    def unread(self, data: bytes) -> None:
        """Give back bytes read too far (a frame ended inside them)."""
        self._pending = data + self._pending
        self.offset -= len(data)


class _SegmentSource:
    """Serves exactly ``size`` raw bytes of a segment to zstd, hashing them."""

    def __init__(self, raw: RawInput, size: int) -> None:
        self._raw = raw
        self.left = size
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        data = self._raw.read(n)
        self.left -= len(data)
        self.sha256.update(data)
        return data


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


@dataclass
class _PackageStart:
    entry: fmt.PackageEntry
    info: bytes


@dataclass
class _WheelStart:
    entry: fmt.WheelEntry


class _PackageEnd:
    pass


@dataclass
class _Failure:
    error: BaseException


class _Stop(Exception):
    pass


class ArchiveReader:
    """Reads an archive in a background thread; iterate :meth:`packages` to consume it."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self._raw = RawInput(stream, name)
        self._dctx = zstandard.ZstdDecompressor()
        self.name = name
        self.metadata = self._read_metadata()
        self._queue: queue.Queue[object] = queue.Queue(_QUEUE_DEPTH)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: object = None
        """The first wheel, seen by :meth:`packages` and handed on to :meth:`wheels`."""

    def _read_metadata(self) -> fmt.Metadata:
        metadata = read_metadata(self._raw, self._dctx)
        self._base = self._raw.offset
        """Where the metadata frame ends: segment offsets count from here."""
        return metadata

    # -- producer (background thread) -------------------------------------------------

    def _put(self, item: object) -> None:
        while True:
            if self._stop.is_set():
                raise _Stop
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _produce(self) -> None:
        # SIGINT/SIGTERM are for the main thread, whose handlers stop the unpack: keep
        # the kernel from choosing this thread, which may sit in read() on a pipe.
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            pad = 0
            for entry in self.metadata.packages:
                info_name = fmt.member_name(entry.stem, fmt.INFO_MEMBER)
                self._header_frame(pad, info_name, entry.info.size)
                owner = f"package {entry.dist}"
                info = b"".join(self._segment(owner, entry.info, info_name))
                pkg_name = fmt.member_name(entry.stem, fmt.PAYLOAD_MEMBER)
                self._header_frame(-entry.info.size % BLOCK, pkg_name, entry.payload.size)
                self._put(_PackageStart(entry, info))
                for chunk in self._segment(owner, entry.payload, pkg_name):
                    self._put(chunk)
                self._put(_PackageEnd())
                pad = -entry.payload.size % BLOCK
            for wheel in self.metadata.wheels:
                self._header_frame(pad, wheel.member, wheel.size)
                self._put(_WheelStart(wheel))
                for chunk in self._segment(f"wheel {wheel.filename}", wheel.segment, wheel.member):
                    self._put(chunk)
                self._put(_PackageEnd())
                pad = -wheel.size % BLOCK
            self._trailer(pad)
            self._put(None)
        except _Stop:
            return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            try:
                self._put(_Failure(exc))
            except _Stop:
                return

    def _header_frame(self, pad: int, expected: str, size: int) -> None:
        check_header_frame(self._raw, self._dctx, pad, expected, size)

    def _segment(self, owner: str, seg: fmt.Segment, what: str) -> Iterator[bytes]:
        """Decode one verbatim segment of ``owner`` (``package <dist>``, ``wheel <file>``)."""
        check_offset(self._raw, self._base, owner, what, seg)
        start = self._raw.offset
        source = _SegmentSource(self._raw, seg.zst_size)
        reader = self._dctx.stream_reader(
            cast("IO[bytes]", source), read_size=_RAW_CHUNK, read_across_frames=True
        )
        decoded = 0
        try:
            while chunk := reader.read(_DECODED_CHUNK):
                decoded += len(chunk)
                if decoded > seg.size:
                    break
                yield chunk
        except zstandard.ZstdError as exc:
            raise ArchiveError(
                f"{self.name}: {owner}: corrupt data in {what} "
                f"(archive bytes {start}-{start + seg.zst_size}): {exc}"
            ) from exc
        if source.left:
            raise ArchiveError(
                f"{self.name} is truncated inside {what} of {owner} (at byte {self._raw.offset})"
            )
        if decoded != seg.size or source.sha256.hexdigest() != seg.zst_sha256:
            raise ArchiveError(
                f"{self.name}: {owner}: {what} does not match the digest recorded "
                f"at pack time (archive bytes {start}-{start + seg.zst_size}); "
                "the archive is corrupt"
            )

    def _trailer(self, pad: int) -> None:
        where = f"{self.name} at byte {self._raw.offset}"
        block = read_frame(self._raw, self._dctx, pad + 2 * BLOCK)
        if len(block) != pad + 2 * BLOCK or block.strip(b"\0"):
            raise ArchiveError(f"{where}: corrupt end of archive")
        rest = self._raw.read(1 << 16)
        if rest:
            raise ArchiveError(f"{where}: unexpected data after the end of the archive")

    # -- consumer ---------------------------------------------------------------------

    def _get(self) -> object:
        """The next item from the reader thread; every wait is bounded.

        The wait is cut into short slices: between them the main thread runs its
        signal handlers (a signal the kernel gave to another thread does not wake a
        blocked lock), and a reader thread that died without an answer is noticed.
        """
        while True:
            try:
                item = self._queue.get(timeout=_GET_SLICE)
                break
            except queue.Empty:
                thread = self._thread
                if thread is not None and thread.is_alive():
                    continue
                try:  # it may have answered just before it ended
                    item = self._queue.get_nowait()
                    break
                except queue.Empty:
                    raise ArchiveError(
                        f"{self.name}: the archive reader stopped unexpectedly"
                    ) from None
        if isinstance(item, _Failure):
            raise item.error
        return item

    def packages(self) -> Iterator[tuple[fmt.PackageEntry, bytes, PayloadStream]]:
        """Yield each package's entry, ``info/`` tar bytes and payload stream, in order.

        The consumer must read or :meth:`PayloadStream.close` each payload before the
        next one; ``close`` raises if the package's digest did not match.  When the
        archive has wheels, iterate :meth:`wheels` next; otherwise the reader is done.
        """
        self._thread = threading.Thread(target=self._produce, name="portpack-reader", daemon=True)
        self._thread.start()
        item: object = None
        done = False
        try:
            while isinstance(item := self._get(), _PackageStart):
                payload = PayloadStream(self, f"payload of package {item.entry.dist}")
                yield item.entry, item.info, payload
                payload.close()
            if item is not None and not isinstance(item, _WheelStart):
                raise ArchiveError(f"{self.name}: internal reader state error")
            self._held = item
            done = True
        finally:
            if not done or item is None:
                self.close()

    def wheels(self) -> Iterator[tuple[fmt.WheelEntry, PayloadStream]]:
        """After :meth:`packages`: yield each wheel's entry and decoded bytes, in order.

        The same rules apply: read or close each stream before the next one.
        """
        item, self._held = self._held, None
        try:
            while item is not None:
                if not isinstance(item, _WheelStart):
                    raise ArchiveError(f"{self.name}: internal reader state error")
                stream = PayloadStream(self, f"wheel {item.entry.filename}")
                yield item.entry, stream
                stream.close()
                item = self._get()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the reader thread (safe to call more than once).

        A thread blocked reading a pipe that stays open (an interrupted ``... | portpack
        unpack -`` whose writer is still alive) cannot be woken: after a short wait it
        is left behind. It is a daemon thread, and it stops at its next hand-over or
        when its input ends; the unpack it served has already failed.
        """
        self._stop.set()
        if self._thread is not None:
            deadline = time.monotonic() + _CLOSE_WAIT
            while self._thread.is_alive() and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.05)
            self._thread = None


class PayloadStream(ChunkReader):
    """The decoded payload tar of one package (or a wheel), as a :class:`ChunkReader`."""

    def __init__(self, reader: ArchiveReader, what: str) -> None:
        self._reader = reader
        self._done = False
        super().__init__(self._pull(), what)

    def _pull(self) -> Iterator[bytes]:
        while not self._done:
            item = self._reader._get()
            if isinstance(item, _PackageEnd):
                self._done = True
                return
            if not isinstance(item, bytes):
                raise ArchiveError("internal reader state error")
            yield item

    def close(self) -> None:
        """Drain what is left of the payload and wait for its digest check."""
        self.drain()


def open_metadata(stream: BinaryIO, name: str) -> fmt.Metadata:
    """Read only the metadata of an archive (for ``inspect``)."""
    return ArchiveReader(stream, name).metadata


__all__ = ["ArchiveReader", "Member", "PayloadStream", "open_metadata"]
