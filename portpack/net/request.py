"""What the fetcher is asked to download: typed requests, no private keys in records.

A :class:`Download` is made from a :class:`~portpack.conda.record.PackageRecord`
(:meth:`Download.of_record`) or from a :class:`FileRequest` (a PyPI wheel, the
self-extractor's wheel index and zstandard wheel): the URL, the cache file name and
subdirectory, the checksum to verify, and how progress reports and messages name it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, Any

from portpack.conda.record import PackageRecord


@dataclass(frozen=True)
class FileRequest:
    """A file to fetch that is not a conda package (a PyPI wheel, say).

    With a ``sha256`` it is verified and cached like a package; without one it is
    fetched again on every run and not verified (the caller checks what it got).
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
    noun: str = "package"
    """What messages call it before ``what`` (``package requests-2.32.3 (...)``)."""
    accept: str | None = None
    """The ``Accept`` header of the request (e.g. the PEP 691 JSON index type)."""
    checksum_from: str = "the lock"
    """Where ``sha256`` comes from (named when the file does not match it)."""


@dataclass(frozen=True)
class Download:
    """One file for :class:`~portpack.net.fetch.Fetcher`: where from, where to, how checked."""

    url: str
    fn: str
    """The file name (its cache entry is named after it and its checksum)."""
    subdir: str
    """The cache directory it goes in (``pkgs/<subdir>/``)."""
    name: str
    """What progress reports call it."""
    what: str
    """How messages name it: ``package hello-1.0-0``."""
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    verified: bool = True
    """False: there is no checksum; it is fetched on every run and not checked."""
    accept: str | None = None
    checksum_from: str = "the lock"
    record: PackageRecord | None = None
    """The package record it was made from, if any."""

    @classmethod
    def of_record(cls, record: PackageRecord) -> Download:
        """The package file of ``record`` (verified by its sha256, else its md5)."""
        return cls(
            url=record.url or "",
            fn=record.fn,
            subdir=record.subdir or "noarch",
            name=record.name,
            what=f"package {record.dist}",
            sha256=record.sha256.lower() if record.sha256 else None,
            md5=record.md5.lower() if record.md5 else None,
            size=record.size,
            record=record,
        )

    @classmethod
    def of_file(cls, request: FileRequest) -> Download:
        """The file of ``request`` (verified only when it gives a sha256)."""
        return cls(
            url=request.url,
            fn=request.filename,
            subdir=request.kind,
            name=request.name,
            what=f"{request.noun} {request.what}",
            sha256=request.sha256.lower() if request.sha256 else None,
            size=request.size,
            verified=bool(request.sha256),
            accept=request.accept,
            checksum_from=request.checksum_from,
        )

    @property
    def expected(self) -> str | None:
        """The checksum the file must have (sha256, else md5), lower case."""
        return self.sha256 or self.md5 or None

    def digest(self) -> Any:
        """A fresh hash object of the algorithm :attr:`expected` is in."""
        return hashlib.sha256() if self.sha256 or not self.verified else hashlib.md5()


class Partial:
    """A download in progress: its temporary file and running digest."""

    def __init__(self, fh: IO[bytes], download: Download) -> None:
        self.fh = fh
        self.download = download
        self.digest = download.digest()
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
        self.digest = self.download.digest()
        self.written = 0
        self.validator = None
        self.resumed = False
        return discarded
