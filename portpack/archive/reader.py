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
from typing import BinaryIO, cast

import zstandard

from portpack.archive import format as fmt
from portpack.archive.frames import (  # RawInput, read_frame, FrameError: used from here too
    FrameError,
    RawInput,
    check_header_frame,
    check_offset,
    check_trailer,
    decode_segment,
    read_frame,
    read_metadata,
)
from portpack.conda.tarstream import BLOCK, ChunkReader, Member
from portpack.errors import ArchiveError

_QUEUE_DEPTH = 16
#: Seconds close() waits for the reader thread to notice it must stop.
_CLOSE_WAIT = 0.5
#: Seconds of one slice of the consumer's wait for the reader thread.
_GET_SLICE = 0.1


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
        try:
            decoded = yield from decode_segment(self._dctx, cast(BinaryIO, source), seg.size)
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
        check_trailer(self._raw, self._dctx, pad)

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


__all__ = [
    "ArchiveReader",
    "FrameError",
    "Member",
    "PayloadStream",
    "RawInput",
    "open_metadata",
    "read_frame",
]
