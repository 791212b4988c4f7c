"""Read an archive from an ``http://`` or ``https://`` URL as a forward-only stream.

:func:`open_url` returns a read-only binary stream that ``portpack.unpack`` reads like
a file: nothing is written to disk.  On the standard library only (``http.client``,
``ssl``), because it runs on targets without pip.

* TLS is verified against the system store (which honours ``SSL_CERT_FILE`` and
  ``SSL_CERT_DIR``), or against ``ca_bundle`` alone when one is given.
* Credentials (:mod:`portpack.remote.netrc_auth`) are chosen per request for the
  request's own host, so a redirect to another host carries none of the first host's;
  they never appear in an error (URLs are named with their secrets masked).
* A cut connection (reset, timeout, a body shorter than its ``Content-Length``) is
  resumed with ``Range: bytes=N-`` and ``If-Range`` (the strong ETag, else
  ``Last-Modified``); the ``206``'s ``Content-Range`` must start at ``N`` and name the
  same total.  A ``200`` to that request (no range support, or the file changed) is an
  error once bytes were handed to the reader, since they cannot be taken back.
* Every wait is bounded: connect and each read by ``timeout``, consecutive failed
  attempts by ``retries`` (with capped, jittered exponential backoff), all requests of
  one stream by :data:`MAX_REQUESTS`, redirects by :data:`MAX_REDIRECTS`.
* A body longer than its ``Content-Length`` is refused, not cut short silently.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import os
import random
import re
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portpack._version import __version__
from portpack.errors import FetchError, UsageError
from portpack.progress import Reporter
from portpack.remote.netrc_auth import Credential, Credentials, redact, redact_url

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for a connection, and for each read."""
DEFAULT_RETRIES = 5
"""Failed attempts in a row (no byte arrived in between) that are retried."""
DEFAULT_BACKOFF = 0.5
"""Seconds before the first retry; doubled per failure in a row, up to :data:`BACKOFF_CAP`."""
BACKOFF_CAP = 30.0
MAX_REDIRECTS = 10
MAX_REQUESTS = 200
"""Requests one stream makes at most, whatever the progress between them."""
EXTRA_BYTES_WAIT = 2.0
"""Seconds to wait, after the declared body, for bytes beyond ``Content-Length``."""

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class _Retry(Exception):
    """An attempt failed in a way worth retrying (the message says how)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        """The server's ``Retry-After``, in seconds, if it sent one."""


@dataclass
class _Settings:
    url: str
    context: ssl.SSLContext
    credentials: Credentials
    timeout: float
    retries: int
    backoff: float
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = redact_url(self.url)

    def error(self, message: str, hint: str | None = None) -> FetchError:
        secrets = self.credentials.secrets()
        return FetchError(
            redact(message, secrets),
            url=self.name,
            hint=redact(hint, secrets) if hint else None,
        )


def open_url(
    url: str,
    *,
    ca_bundle: str | os.PathLike[str] | None = None,
    auth_file: str | os.PathLike[str] | None = None,
    netrc_file: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    reporter: Reporter | None = None,
) -> HttpStream:
    """Open the archive at ``url`` for reading forward (see the module docstring).

    The first response is awaited here, so a wrong URL, missing credentials or an
    untrusted certificate raise :class:`~portpack.errors.FetchError` at once; bad
    options (an unreadable CA bundle, auth or netrc file) raise
    :class:`~portpack.errors.UsageError`.  ``reporter`` hears of retries
    (``on_download_retry``) and of the bytes read (``on_transfer_progress``).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not an http:// or https:// URL: {redact_url(url)}")
    if timeout <= 0 or retries < 0 or backoff < 0:
        raise UsageError("timeout must be positive, retries and backoff not negative")
    settings = _Settings(
        url,
        _ssl_context(ca_bundle),
        Credentials(auth_file=auth_file, netrc_file=netrc_file),
        timeout,
        retries,
        backoff,
    )
    stream = HttpStream(settings, reporter or Reporter())
    try:
        stream._next_response()
    except BaseException:
        stream.close()
        raise
    return stream


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

    def __init__(self, settings: _Settings, reporter: Reporter) -> None:
        super().__init__()
        self._s = settings
        self._reporter = reporter
        self.name = settings.name
        """The URL, with its credentials masked (what errors and unpack name)."""
        self.size: int | None = None
        """The archive's length in bytes, once a response declared it."""
        self._body: _Body | None = None
        self._delivered = 0
        self._validator: tuple[str, str] | None = None
        self._failures = 0
        self._requests = 0
        self._done = False

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
            except _Retry as exc:
                self._drop(exc)
                continue
            if n:
                self._delivered += n
                self._failures = 0
                self._reporter.on_transfer_progress(n)
                return n
            if self.size is not None and self._delivered < self.size:
                self._drop(_Retry(f"the body ended after {self._delivered} of {self.size} bytes"))
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

    def _drop(self, failure: _Retry) -> None:
        """Give up the current response and wait before the next attempt."""
        if self._body is not None:
            self._body.close()
            self._body = None
        self._failures += 1
        if self._failures > self._s.retries:
            raise self._s.error(
                f"cannot download {self._s.name}: {failure.reason} "
                f"(gave up after {self._failures} attempts in a row)"
            )
        delay = min(BACKOFF_CAP, self._s.backoff * 2 ** (self._failures - 1))
        delay *= random.uniform(0.5, 1.0)
        if failure.delay is not None:
            delay = min(BACKOFF_CAP, max(delay, failure.delay))
        reason = redact(failure.reason, self._s.credentials.secrets())
        self._reporter.on_download_retry(self._s.name, reason, delay)
        time.sleep(delay)

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
                body = _request(self._s, headers)
                self._accept(body)
            except _Retry as exc:
                self._drop(exc)
                continue
            self._body = body
            return

    def _accept(self, body: _Body) -> None:
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
                self._validator = _validator(body.response)
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


def _validator(response: http.client.HTTPResponse) -> tuple[str, str] | None:
    """What ``If-Range`` may carry: a strong ETag, else ``Last-Modified``."""
    etag = response.getheader("ETag")
    if etag and not etag.startswith("W/"):
        return "ETag", etag
    modified = response.getheader("Last-Modified")
    return ("Last-Modified", modified) if modified else None


def _content_range(settings: _Settings, body: _Body) -> tuple[int, int | None]:
    value = body.response.getheader("Content-Range") or ""
    match = _CONTENT_RANGE.match(value)
    if match is None:
        raise settings.error(
            f"{settings.name} answered a range request with an invalid Content-Range {value!r}"
        )
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        raise settings.error(f"{settings.name} sent an impossible Content-Range {value!r}")
    if body.declared is not None and body.declared != last - first + 1:
        raise settings.error(
            f"{settings.name}: Content-Length {body.declared} does not match "
            f"Content-Range {value!r}"
        )
    return first, total


# -- one request, redirects followed ---------------------------------------------------


def _request(settings: _Settings, extra: dict[str, str]) -> _Body:
    """GET the URL (following redirects); a response the stream can read, or an error."""
    url = settings.url
    for _ in range(MAX_REDIRECTS + 1):
        credential = settings.credentials.for_url(url)
        body = _send(settings, url, extra, credential)
        status = body.status
        if status in (200, 206):
            _check_encoding(settings, body)
            return body
        location = body.response.getheader("Location")
        retry_after = _retry_after(body.response.getheader("Retry-After"))
        body.close()
        if status in _REDIRECT_STATUS and location:
            url = _follow(settings, url, location)
            continue
        if status == 416 and "Range" in extra:
            raise settings.error(
                f"cannot download {settings.name}: the server has no bytes from "
                f"{extra['Range'][len('bytes=') :]} on (HTTP 416), though it declared more: "
                "its Content-Length was wrong or the file shrank"
            )
        if status in _RETRY_STATUS:
            raise _Retry(f"{redact_url(url)} answered HTTP {status}", retry_after)
        raise _status_error(settings, url, status, credential)
    raise settings.error(f"{settings.name} redirected more than {MAX_REDIRECTS} times")


def _send(settings: _Settings, url: str, extra: dict[str, str], cred: Credential | None) -> _Body:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=settings.timeout, context=settings.context
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=settings.timeout)
    headers = {
        "User-Agent": f"portpack/{__version__}",
        "Accept-Encoding": "identity",
        "Connection": "close",
        **extra,
    }
    if cred is not None:
        headers["Authorization"] = cred.header
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    try:
        conn.request("GET", target, headers=headers)
        sock = conn.sock
        response = conn.getresponse()
    except ssl.SSLCertVerificationError as exc:
        conn.close()
        raise settings.error(
            f"cannot download {redact_url(url)}: its TLS certificate is not trusted "
            f"({exc.verify_message})",
            hint="Give the CA that signed it with --ca-bundle or SSL_CERT_FILE.",
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise _Retry(f"cannot connect to {redact_url(url)}: {_describe(exc)}") from None
    return _Body(settings, conn, response, sock)


def _follow(settings: _Settings, url: str, location: str) -> str:
    target = urllib.parse.urljoin(url, location)
    if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
        raise settings.error(
            f"{redact_url(url)} redirected to {redact_url(target)}, which is not http(s)"
        )
    return target


def _status_error(
    settings: _Settings, url: str, status: int, credential: Credential | None
) -> FetchError:
    where = redact_url(url)
    if status in (401, 403):
        if credential is None:
            hint = (
                "No credentials were found for this host: add it to ~/.netrc (or the file "
                "$NETRC names), or give an --auth-file."
            )
        else:
            hint = f"The credentials from the {credential.source} were refused."
        word = "authentication" if status == 401 else "permission"
        return settings.error(f"cannot download {where}: HTTP {status}, {word} required", hint)
    if status in (404, 410):
        return settings.error(f"cannot download {where}: HTTP {status}, no such file")
    return settings.error(f"cannot download {where}: the server answered HTTP {status}")


def _check_encoding(settings: _Settings, body: _Body) -> None:
    encoding = (body.response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        body.close()
        raise settings.error(
            f"{settings.name} was sent with Content-Encoding {encoding!r}; an archive must "
            "be served as it is (portpack asks for identity)"
        )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return "the body ended early"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class _Body:
    """One response's body: exactly what its ``Content-Length`` declares, no more."""

    def __init__(
        self,
        settings: _Settings,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        sock: socket.socket | None,
    ) -> None:
        self._s = settings
        self.conn = conn
        self.response = response
        self.status = response.status
        self._sock = sock
        self.declared: int | None = response.length
        """The body's ``Content-Length`` (None when chunked or not given)."""
        self._left = self.declared
        # http.client would stop at Content-Length and hide extra bytes: read to the end
        # of the connection (the request asked for "Connection: close") and count here.
        if not response.chunked:
            response.length = None

    def readinto(self, view: memoryview) -> int:
        try:
            if self._left is None:
                return self.response.readinto(view)
            if self._left == 0:
                self._check_no_more()
                return 0
            n = self.response.readinto(view[: self._left])
            self._left -= n
            return n
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry(f"the connection broke: {_describe(exc)}") from None

    def _check_no_more(self) -> None:
        """After the declared body: end of the connection (or silence), not more bytes."""
        if self._sock is not None:
            self._sock.settimeout(min(self._s.timeout, EXTRA_BYTES_WAIT))
        try:
            extra = self.response.readinto(memoryview(bytearray(1)))
        except TimeoutError:
            return  # a server that keeps the connection open despite "Connection: close"
        except (OSError, http.client.HTTPException):
            return
        if extra:
            raise self._s.error(
                f"cannot download {self._s.name}: the server sent more bytes than the "
                f"Content-Length it declared ({self.declared}); what it serves is not what "
                "it describes"
            )

    def close(self) -> None:
        self.response.close()
        self.conn.close()
