"""The segments an update wants, from an archive at an ``http(s)://`` URL.

:func:`open_http_segments` reads the archive's metadata first, with ``Range`` requests
for its head that grow until the metadata frame has ended.  Then, for an archive whose
metadata gives every segment's offset (format v2), :class:`HttpSegmentSource` fetches
only the wanted segments' bytes (:mod:`portpack.remote.http_ranges`: coalesced,
several ranges per request where the server allows, each answer checked against the
file the metadata came from).  For a v1 archive, or a server that ignores ``Range``,
it reads the body forward and skips what is not wanted
(:class:`~portpack.archive.segment_read.StreamSegments`).  Either way each stream it
yields is exactly the segment's bytes, checked against its sha256.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO, cast

import zstandard

from portpack.archive.frames import RawInput, read_metadata
from portpack.archive.segment_read import SegmentStream, StreamSegments
from portpack.archive.segment_source import SegmentRef
from portpack.errors import ArchiveError
from portpack.progress import Reporter
from portpack.remote.http import (
    MAX_REQUESTS,
    HttpStream,
    make_settings,
    parse_content_range,
    validator,
    wait_before_retry,
)
from portpack.remote.http_ranges import (
    RangeFetcher,
    Span,
    Validators,
    changed_error,
    check_window,
)
from portpack.remote.http_request import Body, Retry, Settings, request
from portpack.remote.options import SourceOptions

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: The first request asks for this much. Bytes it reads past the metadata frame are
#: wasted unless an update wants them, so it is small: an update downloads at most
#: this much more than the metadata and its changed segments, and a metadata frame
#: larger than it costs one more round trip. Later requests ask for the rest of the
#: metadata frame exactly, as far as its block headers tell (:func:`frame_need`).
HEAD_SIZE = 4 << 10
#: One request for the head asks for at most this much.
MAX_HEAD_REQUEST = 16 << 20
#: A zstd block holds at most this much (RFC 8878, Block_Maximum_Size).
_MAX_BLOCK = 128 << 10
#: Gaps between two wanted ranges at most this long are always fetched with them: they
#: are portpack's header frames between a package's info and payload segments (a few
#: hundred bytes), cheaper than the headers of another part or request.
SMALL_GAP = 1 << 10
#: Longer gaps are fetched with their neighbours while shorter than this and than a
#: sixteenth of the bytes the merged range is wanted for: skipping a gap costs a part
#: (about 100 bytes) in a multi-range request but a round trip when the server takes
#: one range per request, which on common links is worth tens of KiB; the sixteenth
#: keeps what is downloaded within about 1.06 times what is wanted.
MERGE_GAP = 64 << 10


class _Head(io.RawIOBase):
    """The URL's bytes from the first, read forward: the head by ``Range`` requests of
    growing size, the rest (only for a forward walk) as one streamed body."""

    def __init__(self, settings: Settings, reporter: Reporter) -> None:
        super().__init__()
        self._s = settings
        self._reporter = reporter
        self.data = bytearray()
        """Every byte of the head received so far (from byte 0)."""
        self._pos = 0
        self.known: Validators | None = None
        self.ranged = True
        """False once the server answered the first range request with the whole file."""
        self.rest: HttpStream | None = None
        self._requests = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while self._pos >= len(self.data) and self.rest is None:
            if not self._fetch():
                return 0
        if self._pos < len(self.data):
            n = min(len(view), len(self.data) - self._pos)
            view[:n] = self.data[self._pos : self._pos + n]
        else:
            assert self.rest is not None
            n = self.rest.readinto(view)
        self._pos += n
        return n

    def stream_rest(self) -> None:
        """Read on past the head with one streamed (and resumed) request."""
        total = self.known.total if self.known else None
        if self.rest is not None or (total is not None and len(self.data) >= total):
            return
        stream = HttpStream(self._s, self._reporter)
        stream.continue_at(len(self.data), total, self.known.if_range if self.known else None)
        self.rest = stream

    def _fetch(self) -> bool:
        """Read the next piece of the head; False at the end of the file."""
        total = self.known.total if self.known else None
        start = len(self.data)
        if total is not None and start >= total:
            return False
        need = frame_need(self.data)
        if not start:
            need = max(need, HEAD_SIZE)
        elif need <= start:  # past the metadata frame (a forward walk reads on): grow
            need = 2 * start
        size = min(need - start, MAX_HEAD_REQUEST)
        headers = {"Range": f"bytes={start}-{start + size - 1}"}
        if self.known is not None and self.known.if_range is not None:
            headers["If-Range"] = self.known.if_range[1]
        failures = 0
        while True:
            self._requests += 1
            if self._requests > MAX_REQUESTS:
                raise self._s.error(
                    f"cannot download {self._s.name}: {MAX_REQUESTS} requests did not "
                    "read its metadata"
                )
            try:
                return self._take(request(self._s, headers, keep_alive=True), start, size)
            except Retry as exc:
                if len(self.data) > start:  # progress: ask for the rest of the piece
                    return True
                failures += 1
                wait_before_retry(self._s, self._reporter, failures, exc)

    def _take(self, body: Body, start: int, size: int) -> bool:
        """Read one answer for the head into :attr:`data`."""
        if body.status == 200:
            return self._whole(body, start)
        try:
            value = body.response.getheader("Content-Range") or ""
            known = self.known or Validators.of(body, parse_content_range(self._s, value)[2])
            why = known.changed(body)
            if why is not None:
                raise changed_error(self._s, why)
            if known.total is None:
                raise self._s.error(f"{self._s.name}: the server does not say how long it is")
            window = check_window(self._s, known, value)
            self.known = known
            if window.start != start or window.end > start + size:
                raise self._s.error(
                    f"{self._s.name}: asked for bytes {start}-{start + size - 1}, the server "
                    f"sent {window.start}-{window.end - 1}"
                )
            chunk = bytearray(1 << 16)
            while len(self.data) < window.end:
                got = body.readinto(memoryview(chunk)[: window.end - len(self.data)])
                if not got:
                    raise Retry("the connection ended inside a range")
                self.data += chunk[:got]
                self._reporter.on_transfer_progress(got)
            return True
        finally:
            body.close()

    def _whole(self, body: Body, start: int) -> bool:
        """A ``200``: the whole file, for a server without ranges (kept as the rest)."""
        if start or self.known is not None:
            why = self.known.changed(body) if self.known else None
            body.close()
            raise changed_error(self._s, why or "it was sent whole for a range request")
        self.ranged = False
        stream = HttpStream(self._s, self._reporter)
        stream.continue_at(0, body.declared, validator(body.response), body)
        self.rest = stream
        return True

    def close(self) -> None:
        if self.rest is not None:
            self.rest.close()
        super().close()


class HttpSegmentSource:
    """The segments of the archive at one URL (see the module docstring)."""

    def __init__(self, settings: Settings, reporter: Reporter) -> None:
        self._s = settings
        self.name = settings.name
        self.bytes_read = 0
        """Body bytes received: the head, the ranges (with part headers and gaps), or
        the whole body read forward."""
        self._reporter = _Counting(reporter, self)
        self._head = _Head(settings, self._reporter)
        self._fetcher: RangeFetcher | None = None
        try:
            self._raw = RawInput(cast(BinaryIO, self._head), self.name)
            self.metadata = read_metadata(self._raw, zstandard.ZstdDecompressor())
        except BaseException:
            self.close()
            raise
        self.metadata_end = self._raw.offset
        """Where the metadata frame ends: v2 offsets count from here."""

    def segments(self, wanted: Sequence[SegmentRef]) -> Iterator[tuple[SegmentRef, BinaryIO]]:
        refs = list(wanted)
        if not self._head.ranged or any(r.segment.offset is None for r in refs):
            self._head.stream_rest()
            yield from StreamSegments(self._raw, self.metadata).segments(refs)
            return
        spans = self._spans(refs)
        assert self._head.known is not None
        tail = Span(self.metadata_end, len(self._head.data))
        fetcher = RangeFetcher(self._s, self._reporter, self._head.known, _beyond(spans, tail))
        self._fetcher = fetcher
        for ref in refs:
            start = self.metadata_end + cast(int, ref.segment.offset)
            yield ref, cast(BinaryIO, SegmentStream(ref, _Pull(self, start), self.name))

    def _spans(self, refs: list[SegmentRef]) -> list[Span]:
        """The wanted segments' ranges, checked against the file and coalesced."""
        assert self._head.known is not None
        total = self._head.known.total or 0
        spans: list[Span] = []
        wanted = 0
        for ref in refs:
            offset = ref.segment.offset
            start = self.metadata_end + (offset if type(offset) is int else -1)
            end = start + ref.segment.zst_size
            if start < self.metadata_end or end > total or (spans and start < spans[-1].end):
                raise ArchiveError(
                    f"{self.name}: the metadata gives {ref.owner} an impossible offset "
                    f"{offset!r} for {ref.member} (the archive is corrupt)"
                )
            if end == start:
                continue
            last = spans[-1] if spans else None
            gap = start - last.end if last else 0
            if last and (
                gap <= SMALL_GAP or (gap < MERGE_GAP and 16 * gap <= wanted + end - start)
            ):
                spans[-1], wanted = Span(last.start, end), wanted + end - start
            else:
                spans.append(Span(start, end))
                wanted = end - start
        return spans

    def read_at(self, pos: int, n: int) -> bytes:
        """Up to ``n`` wanted bytes from ``pos``: from the head if it holds them."""
        if pos < len(self._head.data):
            return bytes(self._head.data[pos : pos + n])
        assert self._fetcher is not None
        return self._fetcher.read(pos, n)

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        self._head.close()
        self._s.transport.close()

    def __enter__(self) -> HttpSegmentSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Counting(Reporter):
    """Counts the bytes received into the source's :attr:`bytes_read`, passes on retries."""

    def __init__(self, reporter: Reporter, source: HttpSegmentSource) -> None:
        self._reporter = reporter
        self._source = source

    def on_transfer_progress(self, nbytes: int, packages: int = 0) -> None:
        self._source.bytes_read += nbytes

    def on_download_retry(self, name: str, reason: str, delay: float) -> None:
        self._reporter.on_download_retry(name, reason, delay)


class _Pull:
    """Reads one segment's bytes forward from ``start``."""

    def __init__(self, source: HttpSegmentSource, start: int) -> None:
        self._source = source
        self._pos = start

    def __call__(self, n: int) -> bytes:
        data = self._source.read_at(self._pos, n)
        self._pos += len(data)
        return data


def frame_need(data: bytes | bytearray) -> int:
    """How far ``data`` (the file's first bytes) must reach to hold the zstd frame it
    starts with, as far as the frame's header and block headers tell so far: its end
    once the last block's header was seen, else the next block header's end."""
    if len(data) < 6:
        return 18  # the longest frame header
    fhd = data[4]
    single = (fhd >> 5) & 1
    fcs = (0 if not single else 1, 2, 4, 8)[fhd >> 6]
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
    while pos + 3 <= len(data):
        header = int.from_bytes(data[pos : pos + 3], "little")
        kind, size = (header >> 1) & 3, header >> 3
        pos += 3 + (1 if kind == 1 else size)
        if kind == 3 or size > _MAX_BLOCK:
            return pos  # not a valid block: the decoder says so once it has the bytes
        if header & 1:
            return pos + (4 if fhd & 4 else 0)
    return pos + 3


def _merge(gap: int, wanted: int) -> bool:
    """Whether to fetch a gap with the ranges around it (``wanted`` bytes with it)."""
    return gap <= SMALL_GAP or (gap < MERGE_GAP and 16 * gap <= wanted)


def _beyond(spans: list[Span], tail: Span) -> list[Span]:
    """``spans`` without what the head already holds (the bytes up to ``tail.end``)."""
    out = []
    for span in spans:
        if span.end <= tail.end:
            continue
        out.append(Span(max(span.start, tail.end), span.end))
    return out


def open_http_segments(
    url: str, options: SourceOptions | None = None, *, reporter: Reporter | None = None
) -> HttpSegmentSource:
    """Read the metadata of the archive at ``url`` and return its segment source.

    ``options`` are those of :func:`~portpack.remote.http.open_url`; ``reporter``
    hears of retries.  Close the source when done.
    """
    return HttpSegmentSource(make_settings(url, options), reporter or Reporter())
