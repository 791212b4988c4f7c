"""A loopback HTTP(S) server serving a directory, with injectable faults.

Used by the fetcher tests and ``benchmarks/bench_fetch.py``.  Features:

* HTTP/1.1 with keep-alive, ``Range`` requests (206; several ranges as
  ``multipart/byteranges``, or the whole file with ``multipart=False``), ``If-Range``
  and ``ETag``; a path
  ending in ``/`` is answered with that directory's ``index.html``.
* Faults queued per file name, one consumed per request (:meth:`FaultServer.fail`):
  :class:`Status` (e.g. 500, or 429 with ``Retry-After``), :class:`Drop` (reset the
  connection mid-body), :class:`Short` (close cleanly before ``Content-Length``),
  :class:`Wrong` (different bytes of the same length), :class:`Stall` (silence before
  the body, or before anything), :class:`Trickle` (a slow body that keeps coming) and
  :class:`Redirect` (optionally with a body that never ends), :class:`Length` (a
  ``Content-Length`` that does not match the body).
* Or faults chosen per request by a function (:attr:`FaultServer.chooser`), given the
  file name and how many requests for it came before (for seeded chaos).
* Credentials required for every request (:class:`Bearer`, :class:`Basic`,
  :class:`CondaToken`), answered with 401 when missing or wrong.
* Per-request latency and a per-connection bandwidth cap (for the benchmark).
* Acting as a plain HTTP proxy: absolute-form request targets are served too and
  logged as ``proxied``.
* TLS with a given server context.

Run it as a script (the benchmark does, so that it does not share the client's GIL)::

    python tests/faultserver.py ROOT [--latency S] [--bandwidth BYTES_PER_S]

It prints its base URL on the first line of standard output and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import io
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_CHUNK = 64 << 10


@dataclass(frozen=True)
class Status:
    """Answer with this status (and an optional ``Retry-After``) instead of the file."""

    code: int
    retry_after: str | None = None


@dataclass(frozen=True)
class Drop:
    """Send ``after`` bytes of the body, then reset the connection (RST)."""

    after: int


@dataclass(frozen=True)
class Short:
    """Send ``after`` bytes of the body, then close the connection cleanly (FIN)."""

    after: int


@dataclass(frozen=True)
class Wrong:
    """Send a body of the right length whose bytes differ from the file's."""


@dataclass(frozen=True)
class Stall:
    """Send the headers, then nothing for ``seconds``, then the body.

    With ``before_headers`` the server accepts the request and sends nothing at all
    for ``seconds`` (then the whole response)."""

    seconds: float
    before_headers: bool = False


@dataclass(frozen=True)
class Trickle:
    """Send the body ``chunk`` bytes at a time, one chunk every ``interval`` seconds."""

    chunk: int
    interval: float


@dataclass(frozen=True)
class Redirect:
    """Answer ``status`` with ``Location: location`` (relative to the server's URL when
    it has no scheme); with ``endless`` its body never ends."""

    location: str
    status: int = 302
    endless: bool = False


@dataclass(frozen=True)
class Length:
    """Declare a ``Content-Length`` ``delta`` bytes off the body really sent (which is
    the whole rest of the file), then close the connection."""

    delta: int


Fault = Status | Drop | Short | Wrong | Stall | Trickle | Redirect | Length


@dataclass(frozen=True)
class Bearer:
    token: str


@dataclass(frozen=True)
class Basic:
    username: str
    password: str


@dataclass(frozen=True)
class CondaToken:
    token: str


Auth = Bearer | Basic | CondaToken


@dataclass
class Request:
    """One request the server saw."""

    path: str
    """The file path asked for (without a conda token)."""
    headers: dict[str, str]
    status: int = 0
    sent: int = 0
    proxied: bool = False
    started: float = field(default_factory=time.monotonic)
    attempt: int = 0
    """How many requests for the same file name came before this one."""
    fault: object = None
    """The fault this request was answered with, if any."""

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class _Abort(Exception):
    """The handler dropped the connection on purpose."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
                raise _Abort from None

    def handle(self) -> None:
        with contextlib.suppress(_Abort, ConnectionError, ssl.SSLError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    # -- the request --------------------------------------------------------------

    def _serve(self, head: bool) -> None:
        fs = self.server.owner
        target = self.path
        proxied = "://" in target.split("?", 1)[0]
        path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
        token_ok = True
        if isinstance(fs.auth, CondaToken):
            prefix = f"/t/{fs.auth.token}/"
            token_ok = path.startswith(prefix)
            if token_ok:
                path = path[len(prefix) - 1 :]
        record = Request(path, dict(self.headers.items()), proxied=proxied)
        fs.record(record)
        if fs.latency:
            time.sleep(fs.latency)
        if not self._authorized(fs.auth, token_ok):
            self._status(record, 401, extra={"WWW-Authenticate": 'Bearer realm="fault"'})
            return
        fault = fs.next_fault(record.name)
        if fault is None and fs.chooser is not None:
            fault = fs.chooser(record.name, record.attempt)
        record.fault = fault
        if isinstance(fault, Stall) and fault.before_headers:
            fs.closing.wait(fault.seconds)  # ends early when the server stops
        if isinstance(fault, Redirect):
            self._redirect(record, fault)
            return
        if isinstance(fault, Status):
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._status(record, fault.code, extra=extra)
            return
        file = (fs.root / path.lstrip("/")).resolve()
        if path.endswith("/"):  # a directory's page, as a static server answers it
            file = file / "index.html"
        if fs.root not in file.parents or not file.is_file():
            self._status(record, 404)
            return
        self._send_file(record, file, fault, head)

    def _authorized(self, auth: Auth | None, token_ok: bool) -> bool:
        if auth is None:
            return True
        if isinstance(auth, CondaToken):
            return token_ok
        got = self.headers.get("Authorization", "")
        if isinstance(auth, Bearer):
            return got == f"Bearer {auth.token}"
        expected = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        return got == f"Basic {expected}"

    def _status(self, record: Request, code: int, extra: dict[str, str] | None = None) -> None:
        body = f"{code}\n".encode()
        record.status = code
        self.send_response(code)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, record: Request, fault: Redirect) -> None:
        fs = self.server.owner
        location = fault.location
        if "://" not in location:
            location = fs.url + location.lstrip("/")
        record.status = fault.status
        self.send_response(fault.status)
        self.send_header("Location", location)
        if not fault.endless:
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(1 << 40))
        self.end_headers()
        block = b"x" * _CHUNK
        while not fs.closing.is_set():  # until the client hangs up (the write fails)
            self.wfile.write(block)
            record.sent += len(block)

    def _send_file(self, record: Request, file: Path, fault: Fault | None, head: bool) -> None:
        fs = self.server.owner
        stat = file.stat()
        size = stat.st_size
        etag = f'"{size:x}-{stat.st_mtime_ns:x}"'
        spans: list[tuple[int, int]] = []
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if fs.ranges and wanted and wanted.startswith("bytes=") and if_range in (None, etag):
            spans = _parse_ranges(wanted[len("bytes=") :], size)
            if not spans:
                self._status(record, 416, extra={"Content-Range": f"bytes */{size}"})
                return
            if wanted.replace(" ", "") == "bytes=0-":
                spans = []  # "bytes=0-": the whole file, answered 200 as before
            if len(spans) > 1 and not fs.multipart:
                spans = []  # like nginx's max_ranges 1: a multi-range request gets it all
        boundary = "PORTPACK-TEST-BOUNDARY"
        body: bytes | None = None
        start, length = 0, size
        if len(spans) == 1:
            start, length = spans[0][0], spans[0][1] - spans[0][0] + 1
        elif spans:
            body = _multipart(file, spans, size, boundary)
            length = len(body)
        code = 206 if spans else 200
        record.status = code
        self.send_response(code)
        if body is not None:
            self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
        else:
            self.send_header("Content-Type", "application/octet-stream")
        declared = length + (fault.delta if isinstance(fault, Length) else 0)
        self.send_header("Content-Length", str(declared))
        self.send_header("ETag", etag)
        if fs.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if len(spans) == 1:
            self.send_header("Content-Range", f"bytes {spans[0][0]}-{spans[0][1]}/{size}")
        self.end_headers()
        if head:
            return
        if isinstance(fault, Stall) and not fault.before_headers:
            self.wfile.flush()
            fs.closing.wait(fault.seconds)  # ends early when the server stops
        limit = fault.after if isinstance(fault, Drop | Short) else None
        if isinstance(fault, Length):
            limit = size - start  # the whole rest of the file, whatever was declared
        elif limit is None or limit > length:
            limit = length
        began = time.monotonic()
        with open(file, "rb") if body is None else io.BytesIO(body) as fh:
            fh.seek(start if body is None else 0)
            chunk_size = fault.chunk if isinstance(fault, Trickle) else _CHUNK
            for chunk in _chunks(fh, limit, chunk_size):
                if isinstance(fault, Trickle):
                    self.wfile.flush()
                    time.sleep(fault.interval)
                if isinstance(fault, Wrong):
                    chunk = bytes(b ^ 0x5A for b in chunk)
                self.wfile.write(chunk)
                record.sent += len(chunk)
                if fs.bandwidth:
                    ahead = record.sent / fs.bandwidth - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        if isinstance(fault, Drop):
            self.wfile.flush()
            time.sleep(0.3)  # let the client read what was sent: a reset discards unread data
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            raise _Abort
        if isinstance(fault, Short | Length):
            self.close_connection = True


def _parse_ranges(spec: str, size: int) -> list[tuple[int, int]]:
    """``(first, last)`` of each satisfiable range of a ``Range`` header (RFC 9110)."""
    out = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        if not first:  # a suffix range: the last N bytes
            if not last.isdigit() or not int(last):
                continue
            out.append((max(0, size - int(last)), size - 1))
        elif first.isdigit() and int(first) < size:
            end = int(last) if last.isdigit() else size - 1
            if end >= int(first):
                out.append((int(first), min(end, size - 1)))
    return out


def _multipart(file: Path, spans: list[tuple[int, int]], size: int, boundary: str) -> bytes:
    """A ``multipart/byteranges`` body of ``spans`` of ``file``."""
    data = file.read_bytes()
    parts = []
    for first, last in spans:
        head = (
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
        )
        parts.append(head.encode() + data[first : last + 1])
    return b"".join(parts) + f"\r\n--{boundary}--\r\n".encode()


def _chunks(fh: object, limit: int | None, chunk_size: int = _CHUNK) -> Iterator[bytes]:
    left = limit
    read = fh.read  # type: ignore[attr-defined]
    while True:
        size = chunk_size if left is None else min(chunk_size, left)
        if size <= 0:
            return
        chunk = read(size)
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    owner: FaultServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # failed TLS handshakes and dropped clients are what the tests provoke


class FaultServer:
    """Serve ``root`` on 127.0.0.1 (see the module docstring); use as a context manager."""

    def __init__(
        self,
        root: Path,
        *,
        auth: Auth | None = None,
        tls: ssl.SSLContext | None = None,
        latency: float = 0.0,
        bandwidth: float | None = None,
        ranges: bool = True,
        multipart: bool = True,
        port: int = 0,
    ) -> None:
        self.root = Path(root).resolve()
        self.auth = auth
        self.latency = latency
        self.bandwidth = bandwidth
        self.ranges = ranges
        self.multipart = multipart
        """Whether a request for several ranges gets them (multipart), else the whole file."""
        self.requests: list[Request] = []
        self.chooser: Callable[[str, int], Fault | None] | None = None
        """Chooses the fault of a request no queued fault answers: (file name, attempt)."""
        self._faults: dict[str, list[Fault]] = defaultdict(list)
        self._lock = threading.Lock()
        self.closing = threading.Event()
        """Set by :meth:`stop`: stalls end then."""
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.owner = self
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, ending in ``/``."""
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    def fail(self, name: str, *faults: Fault) -> None:
        """Answer the next requests for file ``name`` with ``faults``, in order."""
        with self._lock:
            self._faults[name].extend(faults)

    def next_fault(self, name: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(name)
            return queue.pop(0) if queue else None

    def record(self, request: Request) -> None:
        with self._lock:
            request.attempt = sum(1 for r in self.requests if r.name == request.name)
            self.requests.append(request)

    def requests_for(self, name: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.name == name]

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def closed_port_url() -> str:
    """A loopback URL nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--bandwidth", type=float, default=None, help="bytes/s per connection")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = FaultServer(
        args.root, latency=args.latency, bandwidth=args.bandwidth, port=args.port
    ).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
