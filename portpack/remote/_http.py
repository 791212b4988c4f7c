"""The one small HTTP/1.1 client of remote/, on :mod:`http.client` (standard library only).

The registry client (:mod:`portpack.remote.oci`) sends through :meth:`Transport.request`
(retries here); an archive URL's GETs (:mod:`portpack.remote.http_request`) through
:meth:`Transport.send`, one attempt each, since :mod:`portpack.remote.http` resumes
and retries them itself.  TLS is verified against the system store (``SSL_CERT_FILE`` is honoured by
:mod:`ssl`) or a given CA bundle.  Every wait is bounded: connecting and each read
have a timeout.  Requests are retried a bounded number of times, with backoff, on
5xx and 429 answers and on cut connections, when their body can be sent again.
One connection per origin is kept and reused.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from portpack.errors import FetchError
from portpack.remote.proxy import Proxy, ProxyRule, environment_proxy, parse_proxy

CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
RETRIES = 4
#: Longest wait between two attempts (also caps a server's Retry-After).
MAX_BACKOFF = 20.0
#: Error bodies and small documents are read at most this far.
SMALL_BODY = 1 << 16
_CHUNK = 1 << 20
#: What a cut or refused connection raises.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, socket.timeout, ssl.SSLError are OSErrors
    http.client.HTTPException,
)


class RegistryError(FetchError):
    """A registry answered with an error, could not be reached or sent bad data."""


class RegistryAuthError(RegistryError):
    """The registry wants credentials that were not given or refused them."""


class NotFoundError(RegistryError):
    """The repository, tag, manifest or blob does not exist."""


class BlobIntegrityError(RegistryError):
    """A blob's bytes do not match its digest or size."""


@dataclass
class Body:
    """A request body of known size; ``chunks`` is called again for each attempt."""

    size: int
    chunks: Callable[[], Iterable[bytes]]
    replayable: bool = True

    @classmethod
    def of(cls, data: bytes) -> Body:
        return cls(len(data), lambda: [data])


@dataclass
class Response:
    """An answer; read :attr:`raw` (streaming) or :meth:`read_small`, then :meth:`close`."""

    status: int
    headers: http.client.HTTPMessage
    raw: http.client.HTTPResponse
    url: str
    _release: Callable[[bool], None] = field(repr=False)
    sock: socket.socket | None = field(default=None, repr=False)
    """The connection's socket (its read timeout can be shortened)."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def read_small(self, limit: int = SMALL_BODY) -> bytes:
        """The body, refused if longer than ``limit``; closes the response."""
        try:
            data = self.raw.read(limit + 1)
        except NETWORK_ERRORS as exc:
            self.close(reuse=False)
            raise RegistryError(f"{self.url}: connection lost: {exc}", url=self.url) from exc
        self.close()
        if len(data) > limit:
            raise RegistryError(f"{self.url}: answer larger than {limit} bytes", url=self.url)
        return data

    def close(self, reuse: bool = True) -> None:
        self._release(reuse and self.raw.isclosed())


class Transport:
    """Sends requests to one or more origins, reusing one connection per origin."""

    def __init__(
        self,
        *,
        ca_bundle: str | None = None,
        context: ssl.SSLContext | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        retries: int = RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        proxy: ProxyRule = environment_proxy,
    ) -> None:
        self._ca_bundle = ca_bundle
        self._proxy_rule = proxy
        self._proxied: dict[tuple[str, str], Proxy | None] = {}
        self._unverified: set[str] = set()
        self._context: ssl.SSLContext | None = context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self._sleep = sleep
        self._idle: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                self._context = ssl.create_default_context(cafile=self._ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"cannot read the CA bundle {self._ca_bundle}: {exc}") from exc
        return self._context

    def skip_verification(self, netloc: str) -> None:
        """Do not verify the TLS certificate of ``netloc`` (``host`` or ``host:port``, a
        host the caller lists as insecure); every other host stays verified."""
        self._unverified.add(netloc.lower())

    def _context_for(self, netloc: str) -> ssl.SSLContext:
        host = (urllib.parse.urlsplit(f"//{netloc}").hostname or "").lower()
        if not {netloc.lower(), host} & self._unverified:
            return self.context()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def speaks_tls(self, netloc: str) -> bool:
        """Whether ``netloc`` answers TLS (docker's probe of a registry that may use plain
        HTTP); a certificate that fails verification is an error, not a reason for HTTP."""
        try:
            response = self.send("GET", f"https://{netloc}/v2/", {})
        except ssl.SSLCertVerificationError as exc:
            raise RegistryError(
                f"cannot reach https://{netloc}: {network_reason(exc)}",
                hint="Give its CA with --ca-bundle (or SSL_CERT_FILE), or list the host "
                "with --insecure-host to skip verification.",
            ) from None
        except NETWORK_ERRORS:
            return False
        response.raw.read(SMALL_BODY)
        response.close()
        return True

    def proxy(self, scheme: str, netloc: str) -> Proxy | None:
        """The proxy requests to this origin go through (the rule is asked once per origin)."""
        key = (scheme, netloc)
        if key not in self._proxied:
            found = self._proxy_rule(f"{scheme}://{netloc}/")
            self._proxied[key] = parse_proxy(found) if found else None
        return self._proxied[key]

    def _connect(self, scheme: str, netloc: str, fresh: bool) -> http.client.HTTPConnection:
        conn = self._idle.pop((scheme, netloc), None)
        if conn is not None and not fresh:
            return conn
        if conn is not None:
            conn.close()
        parsed = urllib.parse.urlsplit(f"{scheme}://{netloc}")
        host, port = parsed.hostname or "", parsed.port
        proxy = self.proxy(scheme, netloc)
        via, via_port = (proxy.host, proxy.port) if proxy else (host, port)
        new: http.client.HTTPConnection
        if scheme == "https":
            new = http.client.HTTPSConnection(
                via, via_port, timeout=self.connect_timeout, context=self._context_for(netloc)
            )
            if proxy is not None:  # TLS to the URL's host, inside a CONNECT tunnel
                auth = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else {}
                new.set_tunnel(host, port, headers=auth)
        else:
            new = http.client.HTTPConnection(via, via_port, timeout=self.connect_timeout)
        new.connect()
        if new.sock is not None:
            new.sock.settimeout(self.read_timeout)
        return new

    def send(
        self, method: str, url: str, headers: dict[str, str], body: Body | None = None
    ) -> Response:
        """One attempt: send the request and return the answer's status and headers."""
        parsed = urllib.parse.urlsplit(url)
        target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        proxy = self.proxy(parsed.scheme, parsed.netloc) if parsed.scheme == "http" else None
        if proxy is not None:  # plain http through a proxy: the absolute form
            target = f"http://{parsed.netloc.rpartition('@')[2]}{target}"
        # A body that cannot be sent again gets a new connection: an idle one the server
        # has closed would fail it after its bytes were taken from the pipe.
        fresh = body is not None and not body.replayable
        conn = self._connect(parsed.scheme, parsed.netloc, fresh)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            if proxy is not None and proxy.authorization:
                conn.putheader("Proxy-Authorization", proxy.authorization)
            for name, value in headers.items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(body.size))
            elif method in ("PUT", "POST", "PATCH"):
                conn.putheader("Content-Length", "0")
            conn.endheaders()
            if body is not None:
                _send_body(conn, body)
            sock = conn.sock  # getresponse() drops it from a connection that will close
            raw = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        key = (parsed.scheme, parsed.netloc)

        def release(reuse: bool) -> None:
            if reuse and not raw.will_close:
                old = self._idle.pop(key, None)
                if old is not None:
                    old.close()
                self._idle[key] = conn
            else:
                conn.close()

        if method == "HEAD":
            raw.read()
        return Response(raw.status, raw.headers, raw, url, release, sock)

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body | None = None,
        *,
        what: str,
        retries: int | None = None,
    ) -> Response:
        """Send with bounded retries on 5xx, 429 and cut connections.

        A body that cannot be sent again (read from a pipe) is not retried once sent.
        ``what`` names the operation in errors (never a credential).
        """
        attempt = 0
        limit = self.retries if retries is None else retries
        while True:
            attempt += 1
            last = attempt > limit or (body is not None and not body.replayable)
            try:
                response = self.send(method, url, headers, body)
            except NETWORK_ERRORS as exc:
                if last:
                    raise RegistryError(
                        f"{what}: cannot reach {_origin(url)}: {network_reason(exc)}", url=url
                    ) from exc
                self._sleep(_backoff(attempt, None))
                continue
            if (response.status >= 500 or response.status == 429) and not last:
                retry_after = response.header("Retry-After")
                response.raw.read(SMALL_BODY)
                response.close()
                self._sleep(_backoff(attempt, retry_after))
                continue
            return response

    def close(self) -> None:
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()


def _send_body(conn: http.client.HTTPConnection, body: Body) -> None:
    sent = 0
    for chunk in body.chunks():
        sent += len(chunk)
        if sent > body.size:
            raise RegistryError(f"internal error: body longer than {body.size} bytes")
        conn.send(chunk)
    if sent != body.size:
        raise RegistryError(f"internal error: body of {sent} bytes, {body.size} announced")


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after.strip()), MAX_BACKOFF)
    return min(0.25 * 2.0 ** (attempt - 1), MAX_BACKOFF)


def _origin(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc.rpartition('@')[2]}"


def network_reason(exc: BaseException) -> str:
    """What went wrong with a connection, in words (a certificate, a timeout, ...)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message})"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def read_chunks(response: Response, chunk: int = _CHUNK) -> Iterator[bytes]:
    """The body of ``response`` in chunks (network errors propagate)."""
    while data := response.raw.read(chunk):
        yield data
