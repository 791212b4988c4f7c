"""Read an archive from an ``http://`` or ``https://`` URL as a forward-only stream.

:func:`open_url` returns a read-only binary stream that ``portpack.unpack`` reads like
a file: nothing is written to disk.  On the standard library only (``http.client``,
``ssl``), because it runs on targets without pip.

* TLS is verified against the system store (which honours ``SSL_CERT_FILE`` and
  ``SSL_CERT_DIR``), or against ``ca_bundle`` alone when the options
  (:class:`~portpack.remote.options.SourceOptions`) give one.
* Credentials (:mod:`portpack.remote.netrc_auth`) are chosen per request for the
  request's own host, so a redirect to another host carries none of the first host's;
  they never appear in an error (URLs are named with their secrets masked).
* A cut connection (reset, timeout, a body shorter than its ``Content-Length``) is
  resumed with ``Range: bytes=N-`` and ``If-Range`` (the strong ETag, else
  ``Last-Modified``); the ``206``'s ``Content-Range`` must start at ``N`` and name the
  same total.  A ``200`` to that request (no range support, or the file changed) is an
  error once bytes were handed to the reader, since they cannot be taken back.
* Every wait is bounded: connect and each read by the options' ``timeout``,
  consecutive failed attempts by ``retries`` (with capped, jittered exponential
  backoff), all requests of one stream by :data:`MAX_REQUESTS`, redirects by
  :data:`MAX_REDIRECTS`.
* A body longer than its ``Content-Length`` is refused, not cut short silently.
"""

from __future__ import annotations

import http.client
import io
import os
import random
import re
import ssl
import time
from typing import TYPE_CHECKING

from portpack.errors import UsageError
from portpack.progress import Reporter
from portpack.remote.http_request import (
    MAX_REDIRECTS,
    Body,
    Retry,
    Settings,
    request,
    valid_http_url,
)
from portpack.remote.netrc_auth import Credentials, redact, redact_url
from portpack.remote.options import SourceOptions

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

BACKOFF_CAP = 30.0
"""The longest wait between two attempts (the options' ``backoff`` doubles up to it)."""
MAX_REQUESTS = 200
"""Requests one stream makes at most, whatever the progress between them."""
__all__ = ["MAX_REDIRECTS", "HttpStream", "make_settings", "open_url"]

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def open_url(
    url: str, options: SourceOptions | None = None, *, reporter: Reporter | None = None
) -> HttpStream:
    """Open the archive at ``url`` for reading forward (see the module docstring), as
    ``options`` say (defaults: the system store, no auth file, ``$NETRC``).

    The first response is awaited here, so a wrong URL, missing credentials or an
    untrusted certificate raise :class:`~portpack.errors.FetchError` at once; bad
    options (an unreadable CA bundle, auth or netrc file) raise
    :class:`~portpack.errors.UsageError`.  ``reporter`` hears of retries
    (``on_download_retry``) and of the bytes read (``on_transfer_progress``).
    """
    stream = HttpStream(make_settings(url, options), reporter or Reporter())
    try:
        stream._next_response()
    except BaseException:
        stream.close()
        raise
    return stream


def make_settings(url: str, options: SourceOptions | None = None) -> Settings:
    """How to reach ``url`` with ``options``, checked (the TLS certificates of
    ``options.insecure_hosts`` are not verified)."""
    if not valid_http_url(url):
        raise UsageError(f"not an http:// or https:// URL: {redact_url(url)}")
    options = options or SourceOptions()
    settings = Settings(
        url,
        _ssl_context(options.ca_bundle),
        Credentials(auth_file=options.auth_file, netrc_file=options.netrc_file),
        options.timeout,
        options.retries,
        options.backoff,
    )
    for host in options.insecure_hosts:
        settings.transport.skip_verification(host)
    return settings


def _ssl_context(ca_bundle: str | os.PathLike[str] | None) -> ssl.SSLContext:
    if ca_bundle is None:
        return ssl.create_default_context()  # the system store, or SSL_CERT_FILE/SSL_CERT_DIR
    try:
        return ssl.create_default_context(cafile=os.fspath(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"cannot use CA bundle {os.fspath(ca_bundle)}: {reason}") from None


class HttpStream(io.RawIOBase):
    """The body of one URL, read forward; reconnects and resumes by itself."""

    def __init__(self, settings: Settings, reporter: Reporter) -> None:
        super().__init__()
        self._s = settings
        self._reporter = reporter
        self.name = settings.name
        """The URL, with its credentials masked (what errors and unpack name)."""
        self.size: int | None = None
        """The archive's length in bytes, once a response declared it."""
        self._body: Body | None = None
        self._delivered = 0
        self._validator: tuple[str, str] | None = None
        self._failures = 0
        self._requests = 0
        self._done = False

    def continue_at(
        self,
        at: int,
        size: int | None,
        known: tuple[str, str] | None,
        body: Body | None = None,
    ) -> None:
        """Read on from byte ``at`` of a body ``size`` long whose validator is ``known``:
        from ``body`` (a response already there), else from a ``Range`` request."""
        self._delivered, self.size, self._validator, self._body = at, size, known, body

    def readable(self) -> bool:
        return True

    def position(self) -> int:
        """Bytes handed to the reader so far."""
        return self._delivered

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._done and len(view):
            if self._body is None:
                self._next_response()
                continue
            try:
                n = self._body.readinto(view)
            except Retry as exc:
                self._drop(exc)
                continue
            if n:
                self._delivered += n
                self._failures = 0
                self._reporter.on_transfer_progress(n)
                return n
            if self.size is not None and self._delivered < self.size:
                self._drop(Retry(f"the body ended after {self._delivered} of {self.size} bytes"))
                continue
            self._body.close()
            self._body = None
            self._done = True
        return 0

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()

    # -- attempts -------------------------------------------------------------------

    def _drop(self, failure: Retry) -> None:
        """Give up the current response and wait before the next attempt."""
        if self._body is not None:
            self._body.close()
            self._body = None
        self._failures += 1
        wait_before_retry(self._s, self._reporter, self._failures, failure)

    def _next_response(self) -> None:
        """Request the rest of the body (all of it while nothing was handed out)."""
        while True:
            self._requests += 1
            if self._requests > MAX_REQUESTS:
                raise self._s.error(
                    f"cannot download {self._s.name}: {MAX_REQUESTS} requests did not finish it"
                )
            headers = {}
            if self._delivered:
                headers["Range"] = f"bytes={self._delivered}-"
                if self._validator is not None:
                    headers["If-Range"] = self._validator[1]
            try:
                body = request(self._s, headers)
                self._accept(body)
            except Retry as exc:
                self._drop(exc)
                continue
            self._body = body
            return

    def _accept(self, body: Body) -> None:
        """Check a response continues the stream where it stopped, and learn its length."""
        try:
            if body.status == 200:
                if self._delivered:
                    raise self._s.error(
                        f"cannot resume {self._s.name} after {self._delivered} bytes: the "
                        "server sent the whole file again (it ignores Range requests, or the "
                        "file changed), and the bytes already read cannot be taken back",
                        hint="Download the archive first, or serve it from a server with "
                        "range support.",
                    )
                self.size = body.declared
                self._validator = validator(body.response)
            else:  # 206, to our Range request
                start, total = _content_range(self._s, body)
                if start != self._delivered or (self.size is not None and total != self.size):
                    raise self._s.error(
                        f"cannot resume {self._s.name}: asked for bytes from "
                        f"{self._delivered} of {self.size}, the server sent "
                        f"{body.response.getheader('Content-Range')}"
                    )
                self.size = total
        except BaseException:
            body.close()
            raise


def wait_before_retry(
    settings: Settings, reporter: Reporter, failures: int, failure: Retry
) -> None:
    """Sleep before attempt ``failures + 1`` (capped, jittered exponential backoff, at
    least the server's ``Retry-After``), or raise once ``failures`` exceed the retries."""
    if failures > settings.retries:
        raise settings.error(
            f"cannot download {settings.name}: {failure.reason} "
            f"(gave up after {failures} attempts in a row)"
        )
    delay = min(BACKOFF_CAP, settings.backoff * 2 ** (failures - 1))
    delay *= random.uniform(0.5, 1.0)
    if failure.delay is not None:
        delay = min(BACKOFF_CAP, max(delay, failure.delay))
    reason = redact(failure.reason, settings.credentials.secrets())
    reporter.on_download_retry(settings.name, reason, delay)
    time.sleep(delay)


def validator(response: http.client.HTTPResponse) -> tuple[str, str] | None:
    """What ``If-Range`` may carry: a strong ETag, else ``Last-Modified``."""
    etag = response.getheader("ETag")
    if etag and not etag.startswith("W/"):
        return "ETag", etag
    modified = response.getheader("Last-Modified")
    return ("Last-Modified", modified) if modified else None


def _content_range(settings: Settings, body: Body) -> tuple[int, int | None]:
    value = body.response.getheader("Content-Range") or ""
    first, last, total = parse_content_range(settings, value)
    if body.declared is not None and body.declared != last - first + 1:
        raise settings.error(
            f"{settings.name}: Content-Length {body.declared} does not match "
            f"Content-Range {value!r}"
        )
    return first, total


def parse_content_range(settings: Settings, value: str) -> tuple[int, int, int | None]:
    """``(first, last, total)`` of a ``Content-Range: bytes first-last/total`` (total
    None for ``*``); an invalid or impossible one is a :class:`FetchError`."""
    match = _CONTENT_RANGE.match(value)
    if match is None:
        raise settings.error(
            f"{settings.name} answered a range request with an invalid Content-Range {value!r}"
        )
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        raise settings.error(f"{settings.name} sent an impossible Content-Range {value!r}")
    return first, last, total
