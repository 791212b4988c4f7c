"""Byte ranges of one URL, fetched on one kept-alive connection (standard library only).

:class:`RangeFetcher` serves reads at increasing positions inside a list of wanted
spans.  It asks for several spans in one request (``Range: bytes=a-b,c-d``) while the
server answers ``206 multipart/byteranges`` (parsed here, streaming and bounded), and
one span per request once a server has answered a multi-range request with the whole
file (nginx with ``max_ranges 1``, many CDNs); a server may also coalesce spans or
answer only some of them, and the rest is asked for again.  Every answer is checked:
``206``, each part's ``Content-Range`` inside what was asked and naming the file's
length, ``If-Range`` on the validator the first answer gave, and its ``ETag`` and
``Last-Modified`` the same, so that a file replaced on the server is refused, never
mixed with the bytes already read.  A connection cut mid-range is resumed from the
byte it stopped at (bounded retries with backoff, as :mod:`portpack.remote.http`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from portpack.errors import FetchError
from portpack.progress import Reporter
from portpack.remote.http import MAX_REQUESTS, parse_content_range, validator, wait_before_retry
from portpack.remote.http_request import Body, Retry, Settings, request

#: Spans asked for in one multi-range request (Apache refuses more than 200 by default;
#: 32 keeps the Range header near 1 KiB, far below the usual 8 KiB header limits).
MAX_RANGES = 32
#: A multipart answer's part headers, and the text around its parts, are at most this long.
MAX_PART_HEADERS = 8 << 10
#: One read from the connection asks for at most this much: http.client fills the whole
#: buffer before it returns, and a connection cut meanwhile loses what it had.
_READ = 64 << 10


@dataclass(frozen=True)
class Span:
    """Bytes ``start`` up to (not including) ``end`` of the file."""

    start: int
    end: int


@dataclass(frozen=True)
class Validators:
    """What the first answer said about the file, so later answers can be matched to it."""

    total: int | None
    if_range: tuple[str, str] | None
    """The strong ``ETag``, else ``Last-Modified``: sent as ``If-Range``."""
    etag: str | None
    modified: str | None

    @classmethod
    def of(cls, body: Body, total: int | None) -> Validators:
        response = body.response
        etag, modified = response.getheader("ETag"), response.getheader("Last-Modified")
        return cls(total, validator(response), etag, modified)

    def changed(self, body: Body) -> str | None:
        """Why ``body`` is of another file than the first answer, or None."""
        for name, known in (("ETag", self.etag), ("Last-Modified", self.modified)):
            now = body.response.getheader(name)
            if known is not None and now is not None and now != known:
                return f"its {name} was {known}, now {now}"
        return None


def changed_error(settings: Settings, why: str) -> FetchError:
    return settings.error(
        f"{settings.name} changed on the server while it was being read ({why}); nothing "
        "more is read from it, so that no part of another archive is mixed in",
        hint="Run the command again to read the new archive from the start.",
    )


def check_window(settings: Settings, known: Validators, content_range: str) -> Span:
    """The span a ``Content-Range`` names, checked against the file's length."""
    first, last, total = parse_content_range(settings, content_range)
    if total != known.total:
        raise changed_error(settings, f"its length was {known.total}, now {total}")
    return Span(first, last + 1)


class _Wire:
    """A response body read in pieces, with lines for multipart headers; counts bytes."""

    def __init__(self, body: Body, fetcher: RangeFetcher) -> None:
        self.body = body
        self._fetcher = fetcher
        self._buffer = b""

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end of the body."""
        if self._buffer:
            data, self._buffer = self._buffer[:n], self._buffer[n:]
            return data
        chunk = bytearray(min(n, _READ))
        got = self.body.readinto(memoryview(chunk))
        self._fetcher.got(got)
        return bytes(chunk[:got])

    def readline(self, limit: int) -> bytes:
        """One line without its line ending; a body cut inside it is a :class:`Retry`."""
        line = b""
        while b"\n" not in line:
            if len(line) > limit:
                raise self._fetcher.settings.error(
                    f"{self._fetcher.settings.name}: malformed multipart/byteranges answer "
                    "(a line is too long)"
                )
            piece = self.read(256)
            if not piece:
                raise Retry("the multipart answer ended early")
            line += piece
        line, _, rest = line.partition(b"\n")
        self._buffer = rest + self._buffer
        return line.rstrip(b"\r")


class _Answer:
    """The parts of one ``206`` answer: one window (a single range) or multipart."""

    def __init__(self, wire: _Wire, window: Span | None, boundary: bytes | None) -> None:
        self.wire = wire
        self._single = window
        self._boundary = boundary
        self.window: Span | None = None
        self.at = 0
        """Absolute position of the next byte of the current window."""
        self._started = False
        self._parts = 0

    def next_window(self, fetcher: RangeFetcher, asked: Sequence[Span]) -> Span | None:
        """Move to the next part (the rest of the current one is skipped); None at the end."""
        if self.window is not None and self.at < self.window.end:
            self.skip(self.window.end - self.at)
        if self._boundary is None:
            window, self._single = self._single, None
        else:
            window = self._next_part(fetcher)
        self.window = window
        if window is not None:
            self.at = window.start
            self._parts += 1
            if not asked[0].start <= window.start < window.end <= asked[-1].end:
                raise fetcher.settings.error(
                    f"{fetcher.settings.name} sent bytes {window.start}-{window.end - 1}, "
                    "which were not asked for"
                )
            if self._parts > len(asked):
                raise fetcher.settings.error(f"{fetcher.settings.name} sent more parts than asked")
        return window

    def _next_part(self, fetcher: RangeFetcher) -> Span | None:
        delimiter = b"--" + (self._boundary or b"")
        limit = MAX_PART_HEADERS
        if self._started and self.wire.readline(limit):  # the CRLF that ends a part's data
            raise fetcher.settings.error(f"{fetcher.settings.name}: malformed multipart answer")
        seen = 0
        while (line := self.wire.readline(limit)) != delimiter:
            seen += len(line) + 2
            if line == delimiter + b"--":
                self._drain()
                return None
            if self._started or seen > limit:  # only a preamble may come before the first
                raise fetcher.settings.error(
                    f"{fetcher.settings.name}: malformed multipart answer (no part delimiter)"
                )
        self._started = True
        content_range = None
        while line := self.wire.readline(limit):
            seen += len(line) + 2
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-range":
                content_range = value.strip()
            if seen > limit:
                raise fetcher.settings.error(f"{fetcher.settings.name}: part headers too long")
        if content_range is None:
            raise fetcher.settings.error(f"{fetcher.settings.name}: a part has no Content-Range")
        return fetcher.window(content_range)

    def _drain(self) -> None:
        """Read the epilogue (a line ending, usually), so the connection can serve again."""
        left = MAX_PART_HEADERS
        while left > 0 and (data := self.wire.read(left)):
            left -= len(data)

    def read(self, n: int) -> bytes:
        assert self.window is not None
        data = self.wire.read(min(n, self.window.end - self.at))
        if not data:
            raise Retry("the connection ended inside a range")
        self.at += len(data)
        return data

    def skip(self, n: int) -> None:
        while n:
            n -= len(self.read(min(n, _READ)))

    def close(self) -> None:
        window = self.window
        if self._boundary is not None and window is not None and self.at >= window.end:
            # Often only the closing delimiter is left: read it (bounded), so that the
            # connection can serve the next request.
            with contextlib.suppress(Retry):
                self._drain()
        self.wire.body.close()


class RangeFetcher:
    """Reads the bytes of ``spans`` (in order, not overlapping) of the URL."""

    def __init__(
        self, settings: Settings, reporter: Reporter, known: Validators, spans: Sequence[Span]
    ) -> None:
        self.settings = settings
        self._reporter = reporter
        self.known = known
        self.spans = list(spans)
        self.multi = True
        """Whether to ask for several spans at once (until the server refuses)."""
        self.received = 0
        """Body bytes received, part headers and skipped gaps included (each is also
        reported to ``reporter.on_transfer_progress``)."""
        self._answer: _Answer | None = None
        self._asked: list[Span] = []
        self._failures = 0
        self._progress = False
        """Whether the current answer has given a byte (one that gives none is a failure)."""
        self._requests = 0
        self._limit = MAX_REQUESTS + 2 * len(self.spans)

    def read(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``pos``, which lies in a span, at or after the last read."""
        while True:
            try:
                data = self._from_answer(pos, n)
                if data:
                    self._failures, self._progress = 0, True
                    return data
                if self._answer is not None and not self._progress:
                    raise Retry(f"an answer held none of the bytes from {pos} on")
                self._request(pos)
            except Retry as exc:
                self._drop()
                self._failures += 1
                wait_before_retry(self.settings, self._reporter, self._failures, exc)

    def _from_answer(self, pos: int, n: int) -> bytes:
        """Bytes at ``pos`` from the current answer; ``b""`` when it has none left."""
        answer = self._answer
        while answer is not None:
            window = answer.window
            if window is not None and answer.at <= pos < window.end:
                answer.skip(pos - answer.at)
                return answer.read(min(n, window.end - pos))
            window = answer.next_window(self, self._asked)
            if window is None:
                return b""
            if window.start > pos:
                raise self.settings.error(
                    f"{self.settings.name} sent bytes {window.start}-{window.end - 1} where "
                    f"bytes from {pos} were asked for"
                )
        return b""

    def got(self, n: int) -> None:
        """Count ``n`` bytes received."""
        self.received += n
        if n:
            self._reporter.on_transfer_progress(n)

    def _request(self, pos: int) -> None:
        """Ask for the rest of the span holding ``pos`` and (if allowed) the next spans."""
        self._drop()
        first = next((i for i, s in enumerate(self.spans) if s.start <= pos < s.end), None)
        if first is None:
            raise FetchError(f"internal error: byte {pos} is in no span wanted")
        count = MAX_RANGES if self.multi else 1
        asked = [Span(pos, self.spans[first].end), *self.spans[first + 1 : first + count]]
        self._requests += 1
        if self._requests > self._limit:
            raise self.settings.error(
                f"cannot download {self.settings.name}: {self._limit} requests did not "
                "fetch the ranges wanted"
            )
        headers = {"Range": "bytes=" + ",".join(f"{s.start}-{s.end - 1}" for s in asked)}
        if self.known.if_range is not None:
            headers["If-Range"] = self.known.if_range[1]
        body = request(self.settings, headers, keep_alive=True)
        try:
            self._answer = self._accept(body, asked)
        except BaseException:
            body.close()
            raise
        self._asked, self._progress = asked, False

    def _accept(self, body: Body, asked: list[Span]) -> _Answer | None:
        why = self.known.changed(body)
        if why is not None:
            raise changed_error(self.settings, why)
        if body.status == 200:
            body.close()
            if len(asked) > 1:  # a server that does not do multi-range sends the whole file
                self.multi = False
                return None
            raise self.settings.error(
                f"{self.settings.name}: the server stopped answering range requests "
                "(it sent the whole file for one range)"
            )
        kind = body.response.headers.get_content_type()
        if kind == "multipart/byteranges":
            boundary = body.response.headers.get_param("boundary")
            if not isinstance(boundary, str) or not 0 < len(boundary) <= 200:
                raise self.settings.error(
                    f"{self.settings.name}: multipart answer lacks a boundary"
                )
            return _Answer(_Wire(body, self), None, boundary.encode("latin-1"))
        window = self.window(body.response.getheader("Content-Range") or "")
        if body.declared is not None and body.declared != window.end - window.start:
            raise self.settings.error(
                f"{self.settings.name}: Content-Length {body.declared} does not match its "
                "Content-Range"
            )
        return _Answer(_Wire(body, self), window, None)

    def window(self, content_range: str) -> Span:
        return check_window(self.settings, self.known, content_range)

    def _drop(self) -> None:
        if self._answer is not None:
            self._answer.close()
            self._answer = None

    def close(self) -> None:
        self._drop()
