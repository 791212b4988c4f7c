"""Downloading locked packages into a verified cache, concurrently."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from .errors import FetchError, PackageError
from .progress import Reporter

DEFAULT_CONCURRENCY = 50
_CHUNK = 1 << 20
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by portpack.\n"
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/portpack`` (``~/.cache/portpack``) or the platform's cache dir."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("portpack", appauthor=False))


def prepare_cache(cache_dir: Path) -> Path:
    """Create the cache directory with its ``CACHEDIR.TAG``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tag = cache_dir / "CACHEDIR.TAG"
    if not tag.exists():
        _atomic_write(tag, _CACHEDIR_TAG.encode())
    return cache_dir


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _dist(record: dict[str, Any]) -> str:
    return f"{record['name']}-{record['version']}-{record['build']}"


class Fetcher:
    """Fetches package files for records into ``cache_dir``, verifying their checksums."""

    def __init__(
        self,
        cache_dir: Path,
        concurrency: int = DEFAULT_CONCURRENCY,
        reporter: Reporter | None = None,
    ) -> None:
        self.cache_dir = prepare_cache(cache_dir)
        self.concurrency = max(1, concurrency)
        self.reporter = reporter or Reporter()

    def fetch_all(self, records: Sequence[dict[str, Any]]) -> list[Path]:
        """Return the cached path of each record's package file (same order)."""
        with (
            httpx.Client(
                follow_redirects=True,
                timeout=httpx.Timeout(60.0, connect=30.0),
                limits=httpx.Limits(max_connections=self.concurrency),
            ) as client,
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="fetch") as pool,
        ):
            futures = [pool.submit(self.fetch, client, r) for r in records]
            return [f.result() for f in futures]

    def cache_path(self, record: dict[str, Any]) -> Path:
        subdir = str(record.get("subdir") or "noarch")
        return self.cache_dir / "pkgs" / subdir / str(record["fn"])

    def fetch(self, client: httpx.Client, record: dict[str, Any]) -> Path:
        """Fetch one package (or reuse its verified cache entry)."""
        target = self.cache_path(record)
        name = str(record["name"])
        if target.is_file() and _matches(target, record):
            self.reporter.on_download_complete(name, cached=True)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        url = str(record["url"])
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.part-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = _digest_for(record)
                self.reporter.on_download_start(name, record.get("size"))
                for chunk in self._chunks(client, url, record):
                    digest.update(chunk)
                    out.write(chunk)
                    self.reporter.on_download_progress(name, len(chunk))
            _check_digest(digest, record, url)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        self.reporter.on_download_complete(name, cached=False)
        return target

    def _chunks(self, client: httpx.Client, url: str, record: dict[str, Any]) -> Any:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme in ("", "file"):
            yield from _file_chunks(Path(urllib.parse.unquote(parsed.path)), record, url)
            return
        try:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FetchError(
                        f"cannot download package {_dist(record)}: HTTP {response.status_code}",
                        url=url,
                    )
                yield from response.iter_raw(_CHUNK)
        except httpx.HTTPError as exc:
            raise FetchError(f"cannot download package {_dist(record)}: {exc}", url=url) from exc


def _file_chunks(path: Path, record: dict[str, Any], url: str) -> Any:
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
    except OSError as exc:
        raise FetchError(
            f"cannot read package {_dist(record)} from {path}: {exc.strerror or exc}", url=url
        ) from exc


def _digest_for(record: dict[str, Any]) -> Any:
    return hashlib.sha256() if record.get("sha256") else hashlib.md5()


def _expected(record: dict[str, Any]) -> str | None:
    value = record.get("sha256") or record.get("md5")
    return str(value).lower() if value else None


def _check_digest(digest: Any, record: dict[str, Any], url: str) -> None:
    expected = _expected(record)
    if expected is None:
        raise FetchError(
            f"package {_dist(record)} has no sha256 or md5 in the lock; refusing to trust it",
            url=url,
        )
    if digest.hexdigest() != expected:
        raise FetchError(
            f"package {_dist(record)} does not match the checksum in the lock "
            f"({digest.name} {digest.hexdigest()}, expected {expected})",
            url=url,
            hint="The server's file differs from the locked one: lock again or fix the channel.",
        )


def _matches(path: Path, record: dict[str, Any]) -> bool:
    digest = _digest_for(record)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return bool(digest.hexdigest() == _expected(record))


def as_conda(path: Path, cache_dir: Path, what: str) -> Path:
    """Return a ``.conda`` for ``path``, converting a ``.tar.bz2`` once (cached)."""
    if path.name.endswith(".conda"):
        return path
    if not path.name.endswith(".tar.bz2"):
        raise PackageError(f"package {what}: unsupported package file {path.name}")
    out_dir = cache_dir / "converted" / path.parent.name
    target = out_dir / (path.name[: -len(".tar.bz2")] + ".conda")
    source_digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stamp = target.with_suffix(".source-sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text() == source_digest:
        return target
    from conda_package_handling import api as cph

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".convert-"))
    try:
        cph.transmute(str(path), ".conda", out_folder=str(work))
        os.replace(work / target.name, target)
        _atomic_write(stamp, source_digest.encode())
    except Exception as exc:
        raise PackageError(f"package {what}: cannot convert {path.name} to .conda: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
