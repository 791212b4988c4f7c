"""Reading ``.conda`` packages for packing: where their zstd segments are, and what they hold.

A ``.conda`` is a ZIP whose members are stored uncompressed, so each inner
``*.tar.zst`` is a contiguous byte range of the file that the packer copies
verbatim into the archive.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, cast

import zstandard

from portpack import outside
from portpack.archive import format as fmt
from portpack.conda.info import PackageInfo, PathEntry, read_info
from portpack.conda.record import PackageRecord
from portpack.conda.tarstream import ChunkReader, iter_members
from portpack.errors import PackageError, PortpackError

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ByteRange:
    """A contiguous run of bytes in a package file."""

    offset: int
    length: int


@dataclass(frozen=True)
class AnalyzedPackage:
    """A verified ``.conda`` file, ready to be copied into an archive."""

    path: Path
    info_range: ByteRange
    payload_range: ByteRange
    info_segment: fmt.Segment
    payload_segment: fmt.Segment
    info: PackageInfo


def analyze(path: Path, what: str, cache: AnalysisCache | None = None) -> AnalyzedPackage:
    """Locate, hash and measure the info and payload segments of a ``.conda`` file.

    Every payload file is also checked against the size and sha256 that the
    package's ``paths.json`` declares, so a package that contradicts itself is
    refused at pack time; the archive's segment digests then carry that guarantee
    to the target without hashing every file again there.

    With a ``cache`` (see :class:`AnalysisCache`) the payload is decoded and checked
    only the first time a package is packed; later packs read just its ``info/``.
    """
    if cache is not None:
        found = cache.load(path, what)
        if found is not None:
            return found
    info_range, payload_range = _locate(path, what)
    with open(path, "rb") as fh:
        info_segment, info_chunks = _measure(fh, info_range, what, _keep_info)
        info = read_info(b"".join(info_chunks), what)
        payload_segment, _ = _measure(fh, payload_range, what, _checker(info, what))
    analyzed = AnalyzedPackage(path, info_range, payload_range, info_segment, payload_segment, info)
    if cache is not None:
        cache.store(analyzed)
    return analyzed


class AnalysisCache:
    """Remembers :func:`analyze`'s payload results for one package file.

    An entry is keyed by ``key`` (the package's sha256 from the lock, which the
    fetcher verified) and is used only while the file has the same size,
    modification time and inode as when it was analyzed, and only if the ``info/``
    segment, which is re-read and re-hashed every time, still matches. Entries live
    in ``<package cache>/analysis/`` as small JSON files; failing to write one only
    costs the next pack a full analysis.
    """

    VERSION = 1

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.key = key

    @classmethod
    def for_record(cls, cache_dir: Path, record: PackageRecord) -> AnalysisCache | None:
        """The cache entry of a lock record, or None if it has no sha256."""
        digest = (record.sha256 or "").lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            return None
        return cls(cache_dir / "analysis", digest)

    def _path(self) -> Path:
        return self.directory / f"{self.key}.json"

    @staticmethod
    def _identity(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def load(self, path: Path, what: str) -> AnalyzedPackage | None:
        """The cached analysis of ``path``, with a freshly read ``info/``; None if stale."""
        try:
            doc = json.loads(self._path().read_bytes())
            if doc["version"] != self.VERSION or doc["file"] != self._identity(path):
                return None
            info_range = ByteRange(*doc["info_range"])
            payload_range = ByteRange(*doc["payload_range"])
            cached_info = fmt.Segment(**doc["info_segment"])
            payload_segment = fmt.Segment(**doc["payload_segment"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        with open(path, "rb") as fh:
            info_segment, info_chunks = _measure(fh, info_range, what, _keep_info)
        if info_segment != cached_info:
            return None
        info = read_info(b"".join(info_chunks), what)
        return AnalyzedPackage(path, info_range, payload_range, info_segment, payload_segment, info)

    def store(self, analyzed: AnalyzedPackage) -> None:
        """Record ``analyzed`` (best effort: a read-only cache is fine)."""
        doc = {
            "version": self.VERSION,
            "file": self._identity(analyzed.path),
            "info_range": [analyzed.info_range.offset, analyzed.info_range.length],
            "payload_range": [analyzed.payload_range.offset, analyzed.payload_range.length],
            "info_segment": asdict(analyzed.info_segment),
            "payload_segment": asdict(analyzed.payload_segment),
        }
        with contextlib.suppress(OSError, PortpackError):
            self.directory.mkdir(parents=True, exist_ok=True)
            outside.write_text(self._path(), json.dumps(doc))


def _keep_info(chunks: Iterator[bytes]) -> list[bytes]:
    kept = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > fmt.MAX_INFO_SIZE:
            raise PackageError("info/ is larger than allowed")
        kept.append(chunk)
    return kept


def _checker(info: PackageInfo, what: str) -> Callable[[Iterator[bytes]], list[bytes]]:
    """A consumer of the decoded payload that checks files against ``paths.json``."""
    declared: dict[str, PathEntry] = {p.path: p for p in info.paths if p.path_type == "hardlink"}

    def check(chunks: Iterator[bytes]) -> list[bytes]:
        reader = ChunkReader(chunks, f"payload of package {what}")
        for member in iter_members(reader):
            entry = declared.get(member.name.removeprefix("./"))
            if entry is None or not member.is_file or entry.sha256 is None:
                continue
            digest = hashlib.sha256()
            for piece in reader.pieces(member.size):
                digest.update(piece)
            if digest.hexdigest() != entry.sha256 or entry.size not in (None, member.size):
                raise PackageError(
                    f"package {what}: {entry.path} does not match its size and sha256 "
                    "in info/paths.json; the package is broken"
                )
        reader.drain()  # the tar's end-of-archive padding
        return []

    return check


def _locate(path: Path, what: str) -> tuple[ByteRange, ByteRange]:
    # Not conda.package_file: packing copies the members verbatim (their ranges, hashed).
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            found: dict[str, ByteRange] = {}
            for zinfo in zf.infolist():
                kind = zinfo.filename.split("-", 1)[0]
                if kind in ("info", "pkg") and zinfo.filename.endswith(".tar.zst"):
                    if zinfo.compress_type != zipfile.ZIP_STORED:
                        raise PackageError(f"package {what}: {zinfo.filename} is not stored")
                    found[kind] = _data_range(fh, zinfo, what)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError(f"package {what}: {path} is not a valid .conda file: {exc}") from exc
    if set(found) != {"info", "pkg"}:
        raise PackageError(f"package {what}: {path} lacks an info-*.tar.zst or pkg-*.tar.zst")
    return found["info"], found["pkg"]


def _data_range(fh: object, zinfo: zipfile.ZipInfo, what: str) -> ByteRange:
    fh.seek(zinfo.header_offset)  # type: ignore[attr-defined]
    fields = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))  # type: ignore[attr-defined]
    if fields[0] != b"PK\x03\x04":
        raise PackageError(f"package {what}: corrupt ZIP local header for {zinfo.filename}")
    start = zinfo.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
    return ByteRange(start, zinfo.compress_size)


def _measure(
    fh: object, rng: ByteRange, what: str, consume: Callable[[Iterator[bytes]], list[bytes]]
) -> tuple[fmt.Segment, list[bytes]]:
    """Hash the compressed bytes of a segment and hand its decoded chunks to ``consume``."""
    fh.seek(rng.offset)  # type: ignore[attr-defined]
    digest = hashlib.sha256()
    source = _Limited(fh, rng.length, digest)
    decoded = 0

    def chunks() -> Iterator[bytes]:
        nonlocal decoded
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast("IO[bytes]", source), read_size=_READ_CHUNK, read_across_frames=True
        )
        while chunk := reader.read(_READ_CHUNK * 4):
            decoded += len(chunk)
            yield chunk

    try:
        kept = consume(chunks())
    except zstandard.ZstdError as exc:
        raise PackageError(f"package {what}: corrupt zstd data: {exc}") from exc
    except PortpackError as exc:
        if what in exc.message:
            raise
        raise PackageError(f"package {what}: {exc.message}") from exc
    if source.left:
        raise PackageError(f"package {what}: truncated .conda file")
    segment = fmt.Segment(size=decoded, zst_size=rng.length, zst_sha256=digest.hexdigest())
    return segment, kept


class _Limited:
    def __init__(self, fh: object, size: int, digest: hashlib._Hash) -> None:
        self._fh = fh
        self.left = size
        self._digest = digest

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 or n > self.left else n
        data: bytes = self._fh.read(n)  # type: ignore[attr-defined]
        self.left -= len(data)
        self._digest.update(data)
        return data
