"""Downloading locked packages into a verified cache shared across runs.

Every package is streamed to a temporary file next to its cache entry while its
sha256 (md5 when the lock has no sha256) is computed, checked against the lock, and
renamed into place: an entry is complete and verified or absent, whatever happens to
the process.  A cached entry is reused only after its checksum matches again.

Layout of the cache directory::

    CACHEDIR.TAG
    pkgs/<subdir>/<stem>.<first 16 hex digits of the checksum>.<conda|tar.bz2>
    pkgs/<subdir>/.<entry>.part-XXXX      (a download in progress, flock-ed by its writer)
    converted/<subdir>/...                (.tar.bz2 packages converted to .conda)

Naming entries by their checksum keeps two locks that disagree about a file's
content from ever replacing each other's entry.

Transient failures (connection errors, timeouts, truncated bodies, HTTP 408/429/5xx)
are retried with exponential backoff and jitter, honouring ``Retry-After``, resuming
with a ``Range`` request where the server allows it; mirrors (see
:mod:`portpack.net.config`) are tried in order, and one that failed is tried last for
the packages that follow.  HTTP 401/403/404 fail at once with what to do.

No wait is unbounded (see :class:`portpack.net.config.FetchPolicy`): connecting, each
read, getting a pooled connection, the waits between attempts (``Retry-After``
included) and the number of attempts all have limits, and a failed or interrupted
run ends the downloads in progress and waits a bounded time for its threads.  Every
response gives its connection back to the pool on every path (a slot lost per
failure would, after as many failures as connections, leave every download waiting).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import errno
import hashlib
import http
import os
import random
import shutil
import ssl
import stat
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from portpack.errors import FetchError, PackageError
from portpack.net.auth import Credentials, redact, strip_credentials, url_secrets, with_conda_token
from portpack.net.config import FetchPolicy, NetworkConfig, RedirectError, Transport
from portpack.progress import Reporter
from portpack.streams import hash_file

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

DEFAULT_CONCURRENCY = 50
_CHUNK = 256 << 10
#: A temporary file older than this whose writer holds no lock is a dead run's leftover.
_STALE_AGE = 60.0
#: How long a failed or interrupted run waits for its other downloads to stop.
_GRACE = 5.0
_PART = ".part-"
_PHRASES = {code.value: code.phrase for code in http.HTTPStatus}
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by portpack.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/portpack`` (``~/.cache/portpack``) or the platform's cache dir."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("portpack", appauthor=False))


def prepare_cache(cache_dir: Path) -> Path:
    """Create the cache directory with its ``CACHEDIR.TAG``; remove dead runs' leftovers."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tag = cache_dir / "CACHEDIR.TAG"
        if not tag.exists():
            _atomic_write(tag, _CACHEDIR_TAG.encode())
    except OSError as exc:
        raise FetchError(f"cannot use cache directory {cache_dir}: {exc.strerror or exc}") from exc
    _remove_stale(cache_dir)
    return cache_dir


def _remove_stale(cache_dir: Path) -> None:
    now = time.time()
    for part in (cache_dir / "pkgs").glob(f"*/.*{_PART}*"):
        try:
            if now - part.stat().st_mtime < _STALE_AGE:
                continue
            with _open_regular(part) as fh:
                if _try_lock(fh):
                    part.unlink()
        except OSError:
            continue  # gone already, not a file, or not ours to judge


def _open_regular(path: Path) -> IO[bytes]:
    """Open a regular file for reading; anything else (a FIFO whose open would wait for
    a writer, a device) is an ``OSError`` at once."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _try_lock(fh: IO[bytes]) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dist(record: dict[str, Any]) -> str:
    what = record.get(_WHAT)
    return str(what) if what else f"{record['name']}-{record['version']}-{record['build']}"


def _split_ext(fn: str) -> tuple[str, str]:
    for ext in (".conda", ".tar.bz2", ".whl"):
        if fn.endswith(ext):
            return fn[: -len(ext)], ext
    return fn, ""


#: Keys of the records :class:`FileRequest` makes: how messages name the file, and
#: that the file has no checksum to verify.
_WHAT = "_portpack_what"
_UNVERIFIED = "_portpack_unverified"


@dataclass(frozen=True)
class FileRequest:
    """A file to fetch that is not a conda package (a PyPI wheel, say).

    With a ``sha256`` it is verified and cached like a package; without one it is
    fetched again on every run and not verified (the caller hashes what it got).
    """

    name: str
    """What progress reports call it."""
    what: str
    """How error messages name it, e.g. ``requests-2.32.3 (requests-2.32.3-py3-none-any.whl)``."""
    url: str
    """An ``http(s)://`` or ``file://`` URL, or a local path."""
    filename: str
    sha256: str | None = None
    size: int | None = None
    kind: str = "pypi"
    """Names the cache directory it goes in (``pkgs/<kind>/``)."""

    def record(self) -> dict[str, Any]:
        """The request as a record :meth:`Fetcher.fetch_all` takes (to share one run)."""
        return {
            "name": self.name,
            "fn": self.filename,
            "subdir": self.kind,
            "url": self.url,
            "sha256": self.sha256.lower() if self.sha256 else None,
            "size": self.size,
            _WHAT: self.what,
            _UNVERIFIED: not self.sha256,
        }


class _Cancelled(Exception):
    """Another download failed or the run was interrupted."""


class _Retry(Exception):
    """A failure worth another attempt."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Candidate:
    """One URL to try for a package: the original or a mirror."""

    request_url: str
    """What is requested (may carry a conda token)."""
    display_url: str
    """What is shown and stored (no credentials)."""
    header: str | None
    """``Authorization`` header value, if any."""
    credential: str | None
    """Where its credentials come from (for hints), if it has any."""
    key: str
    """The mirror or origin it belongs to (for preferring healthy ones)."""


class _Partial:
    """A download in progress: its temporary file and running digest."""

    def __init__(self, fh: IO[bytes], record: dict[str, Any]) -> None:
        self.fh = fh
        self.record = record
        self.digest = _digest_for(record)
        self.written = 0
        self.validator: str | None = None
        self.resumed = False

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.digest.update(chunk)
        self.written += len(chunk)

    def reset(self) -> int:
        """Start over; return how many bytes were discarded."""
        discarded = self.written
        self.fh.seek(0)
        self.fh.truncate()
        self.digest = _digest_for(self.record)
        self.written = 0
        self.validator = None
        self.resumed = False
        return discarded


class Fetcher:
    """Fetches package files for records into ``cache_dir``, verifying their checksums.

    ``network`` holds mirrors, proxies, TLS settings and the timeouts and retries
    (:class:`~portpack.net.config.FetchPolicy`); ``retries``, ``backoff`` and ``timeout``
    (the read timeout, and the connect timeout when shorter) override the policy's.
    ``credentials`` default to the auth file of ``network`` (see
    :meth:`portpack.net.auth.Credentials.load`).  The reporter is called from several
    threads at once.
    """

    def __init__(
        self,
        cache_dir: Path,
        concurrency: int = DEFAULT_CONCURRENCY,
        reporter: Reporter | None = None,
        *,
        network: NetworkConfig | None = None,
        credentials: Credentials | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
    ) -> None:
        self.cache_dir = prepare_cache(Path(cache_dir))
        self.concurrency = max(1, concurrency)
        self.reporter = reporter or Reporter()
        self.network = network or NetworkConfig()
        self.credentials = (
            credentials if credentials is not None else Credentials.load(self.network.auth_file)
        )
        policy = self.network.policy
        if retries is not None:
            policy = dataclasses.replace(policy, retries=max(0, retries))
        if backoff is not None:
            policy = dataclasses.replace(policy, backoff=max(0.0, backoff))
        if timeout is not None:
            policy = dataclasses.replace(
                policy,
                read_timeout=timeout,
                connect_timeout=min(policy.connect_timeout, timeout),
            )
        self.policy: FetchPolicy = policy
        self._secrets = self.credentials.secrets()
        self._stop = threading.Event()
        self._health: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- the whole set --------------------------------------------------------------

    def fetch_files(self, requests: Sequence[FileRequest]) -> list[Path]:
        """Return the cached path of each requested file (same order)."""
        return self.fetch_all([request.record() for request in requests])

    def fetch_all(self, records: Sequence[dict[str, Any]]) -> list[Path]:
        """Return the cached path of each record's package file (same order)."""
        records = list(records)
        for record in records:
            self.cache_path(record)  # refuse bad names and missing checksums up front
        sizes = [r.get("size") for r in records]
        total = sum(s for s in sizes if isinstance(s, int))
        self.reporter.on_fetch_start(
            len(records), total if all(isinstance(s, int) for s in sizes) else None
        )
        remote = any(_scheme(str(r["url"])) in ("http", "https") for r in records)
        client = (
            Transport(self.network, min(self.concurrency, len(records)), self.policy)
            if remote
            else None
        )
        self._stop.clear()
        try:
            results = self._run(client, records)
        finally:
            if client is not None:
                client.close()
        self.reporter.on_fetch_complete()
        return results

    def _run(self, client: Transport | None, records: list[dict[str, Any]]) -> list[Path]:
        results: list[Path | None] = [None] * len(records)
        errors: list[BaseException] = []
        # Largest first: the small ones fill the gaps at the end, so no connection is left
        # with a big download after the others finished.
        order = sorted(range(len(records)), key=lambda i: -_size(records[i]))
        todo = ((i, records[i]) for i in order)
        lock = threading.Lock()
        done = threading.Event()
        workers = min(self.concurrency, len(records))
        running = [workers]

        def work() -> None:
            try:
                while not self._stop.is_set():
                    with lock:
                        item = next(todo, None)
                    if item is None:
                        return
                    index, record = item
                    try:
                        results[index] = self.fetch(client, record)
                    except _Cancelled:
                        return
                    except BaseException as exc:
                        with lock:
                            errors.append(exc)
                        self._stop.set()
                        return
            finally:
                with lock:
                    running[0] -= 1
                    if running[0] == 0:
                        done.set()

        def stop() -> None:
            # Wake the workers: waits between attempts end on the event, and reads in
            # progress fail at once; then give them a bounded time to clean up.
            self._stop.set()
            if client is not None:
                client.abort()
            done.wait(_GRACE)

        if workers == 0:
            return []
        for number in range(workers):
            # Daemon threads: a worker that does not stop within the grace time cannot
            # keep the process alive.
            threading.Thread(target=work, name=f"portpack-fetch-{number}", daemon=True).start()
        try:
            while not done.wait(0.25):
                if self._stop.is_set():
                    stop()
                    break
        except BaseException:
            stop()
            raise
        if errors:
            raise errors[0]
        if self._stop.is_set():  # pragma: no cover - only set by errors above
            raise FetchError("fetching was interrupted")
        return [p for p in results if p is not None]

    # -- one package ----------------------------------------------------------------

    def cache_path(self, record: dict[str, Any]) -> Path:
        """Where the package of ``record`` lives in the cache (named by its checksum)."""
        fn = str(record.get("fn") or "")
        subdir = str(record.get("subdir") or "noarch")
        for part, what in ((fn, "file name"), (subdir, "subdir")):
            if not part or "/" in part or "\\" in part or part.startswith(".") or "\0" in part:
                raise PackageError(f"package {_dist(record)} has an invalid {what} {part!r}")
        expected = _expected(record)
        if expected is None and record.get(_UNVERIFIED):
            url = strip_credentials(str(record.get("url", "")))
            expected = "url-" + hashlib.sha256(url.encode()).hexdigest()
        if expected is None:
            raise FetchError(
                f"package {_dist(record)} has no sha256 or md5 in the lock; refusing to trust it",
                url=strip_credentials(str(record.get("url", ""))),
            )
        stem, ext = _split_ext(fn)
        return self.cache_dir / "pkgs" / subdir / f"{stem}.{expected[:16]}{ext}"

    def fetch(self, client: Transport | None, record: dict[str, Any]) -> Path:
        """Fetch one package (or reuse its verified cache entry)."""
        target = self.cache_path(record)
        name = str(record["name"])
        if target.is_file() and not record.get(_UNVERIFIED):
            if _matches(target, record):
                self.reporter.on_download_complete(name, cached=True)
                return target
            self.reporter.warning(
                f"the cached file of {_dist(record)} does not match the lock; downloading it again"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        url = str(record["url"])
        size = record.get("size") if isinstance(record.get("size"), int) else None
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}{_PART}")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w+b") as fh:
                _try_lock(fh)  # tells cache cleaners that this file is alive
                part = _Partial(fh, record)
                self.reporter.on_download_start(name, size)
                if _scheme(url) in ("http", "https"):
                    if client is None:  # pragma: no cover - fetch_all always makes one
                        raise FetchError(f"no HTTP client for {_dist(record)}")
                    self._download(client, record, part)
                else:
                    self._copy_local(url, record, part)
                fh.flush()
                os.replace(tmp, target)  # still locked: nobody mistakes it for a leftover
        finally:
            tmp.unlink(missing_ok=True)
        self.reporter.on_download_complete(name, cached=False)
        return target

    def _copy_local(self, url: str, record: dict[str, Any], part: _Partial) -> None:
        parsed = urllib.parse.urlsplit(url)
        path = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme else Path(url)
        size = record.get("size") if isinstance(record.get("size"), int) else None
        try:
            with _open_regular(path) as src:
                while chunk := src.read(_CHUNK):
                    part.write(chunk)
                    self.reporter.on_download_progress(str(record["name"]), len(chunk))
                    if size is not None and part.written > size:
                        break  # longer than the lock says: the checksum will tell
        except OSError as exc:
            raise FetchError(
                f"cannot read package {_dist(record)} from {path}: {exc.strerror or exc}", url=url
            ) from exc
        error = _digest_error(part, record, url)
        if error:
            raise error

    def _download(self, client: Transport, record: dict[str, Any], part: _Partial) -> None:
        url = str(record["url"])
        name = str(record["name"])
        secrets = [*self._secrets, *url_secrets(url)]
        candidates = self._candidates(url)
        dead: dict[_Candidate, FetchError] = {}
        last: tuple[_Candidate, _Retry] | None = None
        rounds = 0
        policy = self.policy
        started = time.monotonic()
        while True:
            retry_after = 0.0
            for cand in self._ordered(candidates):
                if cand in dead:
                    continue
                if self._stop.is_set():
                    raise _Cancelled
                try:
                    self._attempt(client, cand, part, secrets)
                except _Retry as exc:
                    self._note(cand, ok=False)
                    last = (cand, exc)
                    retry_after = max(retry_after, exc.retry_after or 0.0)
                    continue
                except FetchError as exc:
                    dead[cand] = exc
                    self._progress(name, -part.reset())
                    continue
                error = _digest_error(part, record, cand.display_url)
                if error is None:
                    self._note(cand, ok=True)
                    return
                resumed = part.resumed
                self._progress(name, -part.reset())
                if resumed:  # the pieces came from different versions: fetch it whole
                    last = (cand, _Retry("the resumed download did not match; starting over"))
                    continue
                dead[cand] = error
            if len(dead) == len(candidates):
                raise _combined(record, candidates, dead)
            rounds += 1
            assert last is not None
            cand, failure = last
            delay = self._delay(rounds, retry_after)
            late = time.monotonic() + delay - started > policy.deadline
            if rounds > policy.retries or late:
                why = f"gave up after {rounds} attempts"
                if late and rounds <= policy.retries:
                    why += f": the next would start after the {policy.deadline:g} s retry deadline"
                raise FetchError(
                    f"cannot download package {_dist(record)} from {cand.display_url}: "
                    f"{failure.reason} ({why})",
                    url=cand.display_url,
                    hint="The network or the server keeps failing: run again later (what "
                    "was downloaded stays in the cache), or add a mirror (--config).",
                )
            self.reporter.on_download_retry(
                name, redact(f"{failure.reason} ({cand.display_url})", secrets), delay
            )
            if self._stop.wait(delay):
                raise _Cancelled

    def _attempt(
        self, client: Transport, cand: _Candidate, part: _Partial, secrets: list[str]
    ) -> None:
        """One request: stream (the rest of) the body into ``part``."""
        import urllib3.exceptions

        record = part.record
        name = str(record["name"])
        size = record.get("size") if isinstance(record.get("size"), int) else None
        headers = {}
        if cand.header:
            headers["Authorization"] = cand.header
        if part.written:
            headers["Range"] = f"bytes={part.written}-"
            if part.validator:
                headers["If-Range"] = part.validator
        response = None
        complete = False
        try:
            response = client.get(cand.request_url, headers)
            self._check_status(response, cand, part)
            while chunk := response.read1(_CHUNK):  # what has arrived, up to _CHUNK
                if self._stop.is_set():
                    raise _Cancelled
                part.write(chunk)
                self._progress(name, len(chunk))
                if size is not None and part.written > size:
                    break  # longer than the lock says: the checksum will tell
            else:
                complete = True
        except RedirectError as exc:
            raise FetchError(
                f"cannot download package {_dist(record)}: {redact(str(exc), secrets)}",
                url=cand.display_url,
            ) from None
        except ValueError:
            if self._stop.is_set():  # a TLS socket shut down under its reader by abort()
                raise _Cancelled from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if self._stop.is_set():
                raise _Cancelled from None  # ended by abort(): not a failure of its own
            if _is_tls_failure(exc):
                host = urllib.parse.urlsplit(cand.display_url).hostname or cand.display_url
                raise FetchError(
                    f"cannot download package {_dist(record)}: the TLS certificate of {host} "
                    f"cannot be verified ({redact(_reason(exc), secrets)})",
                    url=cand.display_url,
                    hint="For a private certificate authority give its certificate with "
                    f"--ca-bundle FILE (or SSL_CERT_FILE); to skip verification for this "
                    f"host only, use --insecure-host {host}.",
                ) from None
            if isinstance(exc, urllib3.exceptions.LocationValueError):
                raise FetchError(
                    f"cannot download package {_dist(record)}: unsupported URL",
                    url=cand.display_url,
                ) from None
            raise _Retry(redact(_reason(exc, policy=self.policy), secrets)) from None
        finally:
            if response is not None:
                # Back to the pool on every path; closed first unless read to its end,
                # so that a half-read connection is never reused.
                client.release(response, reuse=complete)
        if size is not None and part.written < size:
            raise _Retry(f"the body ended after {part.written} of {size} bytes")

    def _check_status(self, response: Any, cand: _Candidate, part: _Partial) -> None:
        status = int(response.status)
        name = str(part.record["name"])
        if status == 206 and part.written:
            if _range_start(response.headers.get("Content-Range")) != part.written:
                self._progress(name, -part.reset())
                raise _Retry("the server resumed at the wrong offset")
            part.resumed = True
            return
        if status == 200:
            if part.written:
                self._progress(name, -part.reset())
            etag = response.headers.get("ETag")
            strong = etag if etag and not etag.startswith("W/") else None
            part.validator = strong or response.headers.get("Last-Modified")
            return
        reason = f"HTTP {status} {response.reason or _PHRASES.get(status, '')}".rstrip()
        if status in (408, 425, 429) or status >= 500:
            raise _Retry(reason, _retry_after(response.headers.get("Retry-After")))
        if status in (206, 416):  # a range we did not ask for, or one it cannot serve
            self._progress(name, -part.reset())
            raise _Retry(reason)
        raise _http_error(part.record, cand, status, reason)

    # -- mirrors, credentials, backoff --------------------------------------------------

    def _candidates(self, url: str) -> list[_Candidate]:
        clean = strip_credentials(url)
        out = []
        for mirror, mirror_url in self.network.mirror_urls(clean):
            key = mirror or _origin(mirror_url)
            if mirror_url == clean and url != clean:
                out.append(_Candidate(url, clean, None, "the URL in the lock", key))
                continue
            found = self.credentials.lookup(mirror_url)
            if found is None:
                out.append(_Candidate(mirror_url, mirror_url, None, None, key))
                continue
            entry, auth = found
            source = f"the entry {entry!r} of {self.credentials.source or 'the credentials'}"
            request = mirror_url
            if auth.kind == "conda-token":
                request = with_conda_token(mirror_url, auth.token)
            out.append(_Candidate(request, mirror_url, auth.header(), source, key))
        return out

    def _ordered(self, candidates: list[_Candidate]) -> list[_Candidate]:
        with self._lock:
            return sorted(candidates, key=lambda c: self._health.get(c.key, 0) > 0)

    def _note(self, cand: _Candidate, ok: bool) -> None:
        with self._lock:
            self._health[cand.key] = 0 if ok else self._health.get(cand.key, 0) + 1

    def _delay(self, rounds: int, retry_after: float) -> float:
        """The wait before the next round: backoff with jitter, or what the server asked
        for (``Retry-After``), never longer than the policy's ``max_wait``."""
        cap = self.policy.max_wait
        exponent = min(rounds - 1, 64)  # 2**64 backoffs are past any cap already
        backoff = min(cap, self.policy.backoff * 2.0**exponent) * random.uniform(0.5, 1.0)
        return max(backoff, min(retry_after, cap))

    def _progress(self, name: str, nbytes: int) -> None:
        if nbytes:
            self.reporter.on_download_progress(name, nbytes)


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def _origin(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc}/"


def _range_start(content_range: str | None) -> int | None:
    # "bytes 100-199/200"
    if not content_range or not content_range.startswith("bytes "):
        return None
    start = content_range[len("bytes ") :].partition("-")[0]
    return int(start) if start.isdigit() else None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason(exc: BaseException, policy: FetchPolicy | None = None) -> str:
    import urllib3.exceptions as u3

    text = str(exc) or type(exc).__name__
    if isinstance(exc, u3.EmptyPoolError) and policy is not None:
        return f"no free connection within {policy.pool_timeout:g} s"
    if isinstance(exc, u3.NewConnectionError | u3.NameResolutionError | ConnectionRefusedError):
        return f"cannot connect ({text})"  # before timeouts: urllib3 makes it a subclass
    if isinstance(exc, u3.TimeoutError | TimeoutError):
        return f"timed out ({text})"
    if isinstance(exc, u3.ProxyError):
        return f"the proxy failed ({text})"
    if isinstance(exc, u3.ProtocolError | ConnectionError):
        return f"the connection broke ({text})"
    return f"{type(exc).__name__}: {text}"


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _http_error(record: dict[str, Any], cand: _Candidate, status: int, reason: str) -> FetchError:
    host = urllib.parse.urlsplit(cand.display_url).hostname or cand.display_url
    message = f"cannot download package {_dist(record)}: {reason} from {cand.display_url}"
    hint: str | None = None
    if status == 401:
        if cand.credential:
            hint = f"The server rejected the credentials from {cand.credential}: renew them."
        else:
            hint = (
                "The channel needs credentials: give an auth file (--auth-file or "
                f"$RATTLER_AUTH_FILE) with an entry for {host}, e.g. "
                f'{{"{host}": {{"BearerToken": "<token>"}}}} '
                f'(or "BasicHTTP": {{"username": ..., "password": ...}}, or "CondaToken").'
            )
    elif status == 403:
        hint = (
            f"The credentials from {cand.credential} do not grant access to this file."
            if cand.credential
            else f"{host} refuses access without credentials: add an entry for it to the "
            "auth file (--auth-file or $RATTLER_AUTH_FILE)."
        )
    elif status in (404, 410):
        hint = (
            "The channel no longer serves this file: lock again, or list a mirror that "
            "has it in the config file (--config, [mirrors])."
        )
    return FetchError(message, url=cand.display_url, hint=hint)


def _combined(
    record: dict[str, Any], candidates: list[_Candidate], dead: dict[_Candidate, FetchError]
) -> FetchError:
    if len(candidates) == 1:
        return dead[candidates[0]]
    first = dead[candidates[0]]
    reasons = "".join(f"\n  - {error.message}" for error in dead.values())
    return FetchError(
        f"cannot download package {_dist(record)} from any of its mirrors:{reasons}",
        url=first.url,
        hint=first.hint,
    )


def _digest_for(record: dict[str, Any]) -> Any:
    return hashlib.sha256() if record.get("sha256") or record.get(_UNVERIFIED) else hashlib.md5()


def _expected(record: dict[str, Any]) -> str | None:
    value = record.get("sha256") or record.get("md5")
    return str(value).lower() if value else None


def _digest_error(part: _Partial, record: dict[str, Any], url: str) -> FetchError | None:
    expected = _expected(record)
    actual = part.digest.hexdigest()
    if actual == expected or (expected is None and record.get(_UNVERIFIED)):
        return None
    return FetchError(
        f"package {_dist(record)} from {url} does not match the checksum in the lock "
        f"({part.digest.name} {actual}, expected {expected})",
        url=url,
        hint="The server's file differs from the locked one: lock again or fix the channel.",
    )


def _matches(path: Path, record: dict[str, Any]) -> bool:
    try:
        return hash_file(path, _digest_for(record)) == _expected(record)
    except OSError:
        return False


def as_conda(path: Path, cache_dir: Path, what: str) -> Path:
    """Return a ``.conda`` for ``path``, converting a ``.tar.bz2`` once (cached).

    The converted file is named by the source's sha256 and created only if absent, so
    concurrent runs never replace a file another one is reading.
    """
    if path.name.endswith(".conda"):
        return path
    if not path.name.endswith(".tar.bz2"):
        raise PackageError(f"package {what}: unsupported package file {path.name}")
    source = hash_file(path)[:16]
    stem = path.name[: -len(".tar.bz2")]
    out_dir = cache_dir / "converted" / path.parent.name
    target = out_dir / f"{stem if stem.endswith(source) else f'{stem}.{source}'}.conda"
    if target.is_file():
        return target
    from conda_package_handling import api as cph

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".convert-"))
    try:
        cph.transmute(str(path), ".conda", out_folder=str(work))
        with contextlib.suppress(FileExistsError):  # another run converted it first
            os.link(work / f"{stem}.conda", target)
    except Exception as exc:
        raise PackageError(f"package {what}: cannot convert {path.name} to .conda: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _size(record: dict[str, Any]) -> int:
    size = record.get("size")
    return size if isinstance(size, int) else 0
