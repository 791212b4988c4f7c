"""Downloading locked packages (and other files) into a verified cache shared across runs.

Every file is streamed to a temporary file next to its cache entry while its sha256
(md5 when the lock has no sha256) is computed, checked against the lock, and renamed
into place: an entry is complete and verified or absent, whatever happens to the
process (see :mod:`portpack.net.cache`).  A cached entry is reused only after its
checksum matches again.

Transient failures (connection errors, timeouts, truncated bodies, HTTP 408/429/5xx)
are retried with exponential backoff and jitter, honouring ``Retry-After``, resuming
with a ``Range`` request where the server allows it; mirrors (see
:mod:`portpack.net.config`) are tried in order, and one that failed is tried last for
the packages that follow.  HTTP 401/403/404 fail at once with what to do (see
:mod:`portpack.net.failures`).

No wait is unbounded (see :class:`portpack.net.config.FetchPolicy`): connecting, each
read, getting a pooled connection, the waits between attempts (``Retry-After``
included) and the number of attempts all have limits, and a failed or interrupted
run ends the downloads in progress and waits a bounded time for its threads.  Every
response gives its connection back to the pool on every path (a slot lost per
failure would, after as many failures as connections, leave every download waiting).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portpack.conda.record import PackageRecord
from portpack.errors import FetchError
from portpack.net import failures
from portpack.net.auth import Credentials, redact, strip_credentials, url_secrets, with_conda_token
from portpack.net.cache import (
    default_cache_dir,
    entry_path,
    matches,
    open_regular,
    partial_file,
    prepare_cache,
)
from portpack.net.config import FetchPolicy, NetworkConfig
from portpack.net.failures import Cancelled, Candidate, Retry
from portpack.net.oci_mirror import RegistrySettings, fetch_blob, is_oci_mirror
from portpack.net.parallel import run_parallel
from portpack.net.request import Download, FileRequest, Partial
from portpack.net.transport import RedirectError, Transport
from portpack.progress import Reporter

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Download",
    "Fetcher",
    "FileRequest",
    "default_cache_dir",
    "prepare_cache",
]

DEFAULT_CONCURRENCY = 50
_CHUNK = 256 << 10


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
        self.policy: FetchPolicy = _policy(self.network.policy, retries, backoff, timeout)
        self._secrets = self.credentials.secrets()
        self._stop = threading.Event()
        self._health: dict[str, int] = {}
        self._lock = threading.Lock()
        self._s3: Any = None

    # -- the whole set --------------------------------------------------------------

    def fetch_all(
        self, records: Sequence[PackageRecord], files: Sequence[FileRequest] = ()
    ) -> list[Path]:
        """The cached path of each record's package file, then of each of ``files``."""
        return self.fetch_downloads(
            [*map(Download.of_record, records), *map(Download.of_file, files)]
        )

    def fetch_files(self, requests: Sequence[FileRequest]) -> list[Path]:
        """Return the cached path of each requested file (same order)."""
        return self.fetch_all((), requests)

    def fetch_downloads(self, downloads: Sequence[Download]) -> list[Path]:
        """Return the cached path of each download (same order), all in one run."""
        items = list(downloads)
        for item in items:
            self.cache_path(item)  # refuse bad names and missing checksums up front
        sizes = [item.size for item in items]
        total = sum(s for s in sizes if s is not None)
        self.reporter.on_fetch_start(len(items), total if None not in sizes else None)
        remote = any(_scheme(item.url) in ("http", "https") for item in items)
        client = (
            Transport(self.network, min(self.concurrency, len(items)), self.policy)
            if remote
            else None
        )
        self._stop.clear()
        try:
            results = run_parallel(
                items,
                lambda item: self.fetch(client, item),
                workers=min(self.concurrency, len(items)),
                stop=self._stop,
                abort=client.abort if client is not None else None,
                key=lambda item: -(item.size or 0),
            )
        finally:
            if client is not None:
                client.close()
        self.reporter.on_fetch_complete()
        return results

    # -- one file -------------------------------------------------------------------

    def cache_path(self, download: Download) -> Path:
        """Where ``download`` lives in the cache (named by its checksum)."""
        return entry_path(self.cache_dir, download)

    def fetch(self, client: Transport | None, download: Download) -> Path:
        """Fetch one file (or reuse its verified cache entry)."""
        target = self.cache_path(download)
        if target.is_file() and download.verified:
            if matches(target, download):
                self.reporter.on_download_complete(download.name, cached=True)
                return target
            self.reporter.warning(
                f"the cached file of {download.what} does not match the lock; downloading it again"
            )
        with partial_file(target) as fh:
            part = Partial(fh, download)
            self.reporter.on_download_start(download.name, download.size)
            if _scheme(download.url) in ("http", "https"):
                if client is None:  # pragma: no cover - fetch_downloads always makes one
                    raise FetchError(f"no HTTP client for {download.what}")
                self._download(client, part)
            elif _scheme(download.url) == "s3":  # same checksum and cache; S3's client
                progress = lambda n: self._progress(part, n)  # noqa: E731
                self._s3_access().download(download.url, part, self._stop, download.size, progress)
                if error := failures.digest_error(download, part.digest, download.url):
                    raise error
            else:
                self._copy_local(part)
        self.reporter.on_download_complete(download.name, cached=False)
        return target

    def _s3_access(self) -> Any:
        from portpack.net.s3 import S3Access  # only for s3:// URLs: boto3 is an extra

        with self._lock:
            self._s3 = self._s3 or S3Access(self.network, self.concurrency)
            return self._s3

    def _copy_local(self, part: Partial) -> None:
        download = part.download
        parsed = urllib.parse.urlsplit(download.url)
        path = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme else Path(download.url)
        try:
            with open_regular(path) as src:
                while chunk := src.read(_CHUNK):
                    part.write(chunk)
                    self.reporter.on_download_progress(download.name, len(chunk))
                    if download.size is not None and part.written > download.size:
                        break  # longer than the lock says: the checksum will tell
        except OSError as exc:
            raise FetchError(
                f"cannot read {download.what} from {path}: {exc.strerror or exc}",
                url=download.url,
            ) from exc
        error = failures.digest_error(download, part.digest, download.url)
        if error:
            raise error

    def _download(self, client: Transport, part: Partial) -> None:
        """Try the candidates (mirrors) in rounds until one gives the right bytes."""
        download = part.download
        secrets = [*self._secrets, *url_secrets(download.url)]
        candidates = self._candidates(download.url)
        dead: dict[Candidate, FetchError] = {}
        rounds = 0
        started = time.monotonic()
        while True:
            failed = self._round(client, part, candidates, dead, secrets)
            if failed is None:
                return
            rounds += 1
            (cand, failure), wait_for = failed
            delay = self._delay(rounds, wait_for)
            late = time.monotonic() + delay - started > self.policy.deadline
            if rounds > self.policy.retries or late:
                raise failures.gave_up(download, cand, failure, rounds, self.policy)
            self.reporter.on_download_retry(
                download.name, redact(f"{failure.reason} ({cand.display_url})", secrets), delay
            )
            if self._stop.wait(delay):
                raise Cancelled

    def _round(
        self,
        client: Transport,
        part: Partial,
        candidates: list[Candidate],
        dead: dict[Candidate, FetchError],
        secrets: list[str],
    ) -> tuple[tuple[Candidate, Retry], float] | None:
        """One attempt per live candidate: None on success, else the last retryable
        failure and the longest ``Retry-After``.  Final failures go into ``dead``; when
        every candidate is dead, their combined error is raised."""
        last: tuple[Candidate, Retry] | None = None
        wait_for = 0.0
        for cand in self._ordered(candidates):
            if cand in dead:
                continue
            if self._stop.is_set():
                raise Cancelled
            try:
                self._attempt(client, cand, part, secrets)
            except Retry as exc:
                self._note(cand, ok=False)
                last = (cand, exc)
                wait_for = max(wait_for, exc.retry_after or 0.0)
                continue
            except FetchError as exc:
                dead[cand] = exc
                self._progress(part, -part.reset())
                continue
            error = failures.digest_error(part.download, part.digest, cand.display_url)
            if error is None:
                self._note(cand, ok=True)
                return None
            resumed = part.resumed
            self._progress(part, -part.reset())
            if resumed:  # the pieces came from different versions: fetch it whole
                last = (cand, Retry("the resumed download did not match; starting over"))
                continue
            dead[cand] = error
        if len(dead) == len(candidates):
            raise failures.combined(part.download, candidates, dead)
        assert last is not None  # a live candidate that did not succeed failed retryably
        return last, wait_for

    def _attempt(
        self, client: Transport, cand: Candidate, part: Partial, secrets: list[str]
    ) -> None:
        """One request: stream (the rest of) the body into ``part``."""
        import urllib3.exceptions

        download = part.download
        response = None
        complete = False
        if is_oci_mirror(cand.request_url):
            self._attempt_oci(cand, part)
            return
        try:
            response = client.get(cand.request_url, _headers(cand, part))
            self._check_status(response, cand, part)
            complete = self._stream(response, part)
        except RedirectError as exc:
            raise FetchError(
                f"cannot download {download.what}: {redact(str(exc), secrets)}",
                url=cand.display_url,
            ) from None
        except ValueError:
            if self._stop.is_set():  # a TLS socket shut down under its reader by abort()
                raise Cancelled from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if self._stop.is_set():
                raise Cancelled from None  # ended by abort(): not a failure of its own
            raise failures.network_error(exc, download, cand, secrets, self.policy) from None
        finally:
            if response is not None:
                # Back to the pool on every path; closed first unless read to its end,
                # so that a half-read connection is never reused.
                client.release(response, reuse=complete)
        if download.size is not None and part.written < download.size:
            raise Retry(f"the body ended after {part.written} of {download.size} bytes")

    def _attempt_oci(self, cand: Candidate, part: Partial) -> None:
        """One attempt from an OCI mirror (see :mod:`portpack.net.oci_mirror`)."""

        def write(chunk: bytes) -> None:
            if self._stop.is_set():
                raise Cancelled
            part.write(chunk)
            self._progress(part, len(chunk))

        settings = RegistrySettings.of(self.network)
        resumed = fetch_blob(cand.request_url, part.download, part.written, write, settings)
        if part.written and not resumed:  # no resume: start over before writing anything new
            self._progress(part, -part.reset())
            fetch_blob(cand.request_url, part.download, 0, write, settings)
        size = part.download.size
        if size is not None and part.written < size:
            raise Retry(f"the blob ended after {part.written} of {size} bytes")

    def _stream(self, response: Any, part: Partial) -> bool:
        """Copy the body into ``part``; True if it was read to its end."""
        size = part.download.size
        while chunk := response.read1(_CHUNK):  # what has arrived, up to _CHUNK
            if self._stop.is_set():
                raise Cancelled
            part.write(chunk)
            self._progress(part, len(chunk))
            if size is not None and part.written > size:
                return False  # longer than the lock says: the checksum will tell
        return True

    def _check_status(self, response: Any, cand: Candidate, part: Partial) -> None:
        status = int(response.status)
        if status == 206 and part.written:
            if failures.range_start(response.headers.get("Content-Range")) != part.written:
                self._progress(part, -part.reset())
                raise Retry("the server resumed at the wrong offset")
            part.resumed = True
            return
        if status == 200:
            if part.written:
                self._progress(part, -part.reset())
            etag = response.headers.get("ETag")
            strong = etag if etag and not etag.startswith("W/") else None
            part.validator = strong or response.headers.get("Last-Modified")
            return
        why = failures.status_reason(response)
        if failures.is_transient(status):
            raise Retry(why, failures.retry_after(response.headers.get("Retry-After")))
        if status in (206, 416):  # a range we did not ask for, or one it cannot serve
            self._progress(part, -part.reset())
            raise Retry(why)
        raise failures.http_error(part.download, cand, status, why)

    # -- mirrors, credentials, backoff --------------------------------------------------

    def _candidates(self, url: str) -> list[Candidate]:
        clean = strip_credentials(url)
        out = []
        for mirror, mirror_url in self.network.mirror_urls(clean):
            key = mirror or _origin(mirror_url)
            if is_oci_mirror(mirror_url):  # its registry client finds its own credentials
                out.append(Candidate(mirror_url, mirror_url, None, None, key))
                continue
            if mirror_url == clean and url != clean:
                out.append(Candidate(url, clean, None, "the URL in the lock", key))
                continue
            found = self.credentials.lookup(mirror_url)
            if found is None:
                out.append(Candidate(mirror_url, mirror_url, None, None, key))
                continue
            entry, auth = found
            source = f"the entry {entry!r} of {self.credentials.source or 'the credentials'}"
            request = mirror_url
            if auth.kind == "conda-token":
                request = with_conda_token(mirror_url, auth.token)
            out.append(Candidate(request, mirror_url, auth.header(), source, key))
        return out

    def _ordered(self, candidates: list[Candidate]) -> list[Candidate]:
        with self._lock:
            return sorted(candidates, key=lambda c: self._health.get(c.key, 0) > 0)

    def _note(self, cand: Candidate, ok: bool) -> None:
        with self._lock:
            self._health[cand.key] = 0 if ok else self._health.get(cand.key, 0) + 1

    def _delay(self, rounds: int, retry_after: float) -> float:
        """The wait before the next round: backoff with jitter, or what the server asked
        for (``Retry-After``), never longer than the policy's ``max_wait``."""
        cap = self.policy.max_wait
        exponent = min(rounds - 1, 64)  # 2**64 backoffs are past any cap already
        backoff = min(cap, self.policy.backoff * 2.0**exponent) * random.uniform(0.5, 1.0)
        return max(backoff, min(retry_after, cap))

    def _progress(self, part: Partial, nbytes: int) -> None:
        if nbytes:
            self.reporter.on_download_progress(part.download.name, nbytes)


def _policy(
    policy: FetchPolicy, retries: int | None, backoff: float | None, timeout: float | None
) -> FetchPolicy:
    """``policy`` with the fetcher's explicit overrides."""
    if retries is not None:
        policy = dataclasses.replace(policy, retries=max(0, retries))
    if backoff is not None:
        policy = dataclasses.replace(policy, backoff=max(0.0, backoff))
    if timeout is not None:
        policy = dataclasses.replace(
            policy, read_timeout=timeout, connect_timeout=min(policy.connect_timeout, timeout)
        )
    return policy


def _headers(cand: Candidate, part: Partial) -> dict[str, str]:
    headers = {}
    if cand.header:
        headers["Authorization"] = cand.header
    if part.download.accept:
        headers["Accept"] = part.download.accept
    if part.written:
        headers["Range"] = f"bytes={part.written}-"
        if part.validator:
            headers["If-Range"] = part.validator
    return headers


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def _origin(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc}/"
