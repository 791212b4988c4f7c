"""One HTTP(S) GET of an archive URL, redirects followed, for :mod:`portpack.remote.http`.

Sent with the one HTTP client of remote/ (:class:`portpack.remote._http.Transport`,
one attempt per call: the stream retries and resumes).

Credentials are chosen per request for that request's host; the body is read exactly
as long as its ``Content-Length`` says, and more bytes than that are an error.  A
``keep_alive`` request (the byte ranges of :mod:`portpack.remote.http_ranges`) leaves
the connection open for the next one instead: its body ends at ``Content-Length``.
"""

from __future__ import annotations

import email.utils
import http.client
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field

from portpack._version import __version__
from portpack.errors import FetchError
from portpack.remote._http import Response, Transport
from portpack.remote.netrc_auth import Credential, Credentials, redact, redact_url

MAX_REDIRECTS = 10
EXTRA_BYTES_WAIT = 2.0
"""Seconds to wait, after the declared body, for bytes beyond ``Content-Length``."""

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


class Retry(Exception):
    """An attempt failed in a way worth retrying (the message says how)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        """The server's ``Retry-After``, in seconds, if it sent one."""


@dataclass
class Settings:
    url: str
    context: ssl.SSLContext
    credentials: Credentials
    timeout: float
    retries: int
    backoff: float
    name: str = field(init=False)
    transport: Transport = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = redact_url(self.url)
        self.transport = Transport(
            context=self.context, connect_timeout=self.timeout, read_timeout=self.timeout
        )

    def error(self, message: str, hint: str | None = None) -> FetchError:
        secrets = self.credentials.secrets()
        return FetchError(
            redact(message, secrets),
            url=self.name,
            hint=redact(hint, secrets) if hint else None,
        )


def request(settings: Settings, extra: dict[str, str], *, keep_alive: bool = False) -> Body:
    """GET the URL (following redirects); a response the stream can read, or an error."""
    url = settings.url
    for _ in range(MAX_REDIRECTS + 1):
        credential = settings.credentials.for_url(url)
        body = _send(settings, url, extra, credential, keep_alive)
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
            raise Retry(f"{redact_url(url)} answered HTTP {status}", retry_after)
        raise _status_error(settings, url, status, credential)
    raise settings.error(f"{settings.name} redirected more than {MAX_REDIRECTS} times")


def _send(
    settings: Settings,
    url: str,
    extra: dict[str, str],
    cred: Credential | None,
    keep_alive: bool = False,
) -> Body:
    headers = {"User-Agent": f"portpack/{__version__}", "Accept-Encoding": "identity"}
    if not keep_alive:
        headers["Connection"] = "close"
    headers.update(extra)
    if cred is not None:
        headers["Authorization"] = cred.header
    try:
        response = settings.transport.send("GET", url, headers)
    except ssl.SSLCertVerificationError as exc:
        raise settings.error(
            f"cannot download {redact_url(url)}: its TLS certificate is not trusted "
            f"({exc.verify_message})",
            hint="Give the CA that signed it with --ca-bundle or SSL_CERT_FILE.",
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise Retry(f"cannot connect to {redact_url(url)}: {describe(exc)}") from None
    return Body(settings, response, keep_alive)


def _follow(settings: Settings, url: str, location: str) -> str:
    target = urllib.parse.urljoin(url, location)
    if not valid_http_url(target):
        raise settings.error(
            f"{redact_url(url)} redirected to {redact_url(target)}, which is not an "
            "http(s) URL with a host"
        )
    return target


def valid_http_url(url: str) -> bool:
    """True for an ``http://`` or ``https://`` URL with a host and a valid port."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _status_error(
    settings: Settings, url: str, status: int, credential: Credential | None
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


def _check_encoding(settings: Settings, body: Body) -> None:
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


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return "the body ended early"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class Body:
    """One response's body: exactly what its ``Content-Length`` declares, no more."""

    def __init__(self, settings: Settings, sent: Response, keep_alive: bool = False) -> None:
        self._s = settings
        self._sent = sent
        self._keep = keep_alive
        response = sent.raw
        self.response = response
        self.status = response.status
        self._sock = sent.sock
        self.declared: int | None = response.length
        """The body's ``Content-Length`` (None when chunked or not given)."""
        self._left = self.declared
        # http.client would stop at Content-Length and hide extra bytes: read to the end
        # of the connection (the request asked for "Connection: close") and count here.
        # A kept-alive connection's next answer follows the body: stop at its length.
        if not response.chunked and not keep_alive:
            response.length = None

    def readinto(self, view: memoryview) -> int:
        try:
            if self._keep:
                return self._read_kept(view)
            if self._left is None:
                return self.response.readinto(view)
            if self._left == 0:
                if not self._keep:
                    self._check_no_more()
                return 0
            n = self.response.readinto(view[: self._left])
            self._left -= n
            return n
        except (OSError, http.client.HTTPException) as exc:
            raise Retry(f"the connection broke: {describe(exc)}") from None

    def _read_kept(self, view: memoryview) -> int:
        """What has arrived (one read of the socket at most): a connection cut later
        loses none of it, as a read that waits to fill ``view`` would."""
        if self._left == 0:
            return 0
        want = len(view) if self._left is None else min(len(view), self._left)
        data = self.response.read1(want)
        view[: len(data)] = data
        if self._left is not None:
            self._left -= len(data)
            if not self._left:
                self.response.read()  # the end: http.client lets go of the connection
        return len(data)

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
        # http.client lets go of a kept-alive body read to its end: the connection is
        # clean and serves the next request; any other is closed.
        done = self._keep and self.response.isclosed()
        if not done:
            self.response.close()
        self._sent.close(reuse=done)
