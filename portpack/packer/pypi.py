"""PyPI wheels of a locked environment, the pack side: choose, fetch, compress.

A lock's ``pypi:`` entries name wheels (by URL or local path), source distributions,
directories or VCS URLs.  Only wheels can be packed: anything else is a
:class:`~portpack.errors.UsageError` naming it, or skipped with a warning when the
caller says so (``--ignore-pypi-non-wheel``, as pixi-pack).  ``pack --inject x.whl``
adds wheels the lock does not have.  Wheels are fetched through
:class:`~portpack.net.fetch.Fetcher` (verified when the lock gives a sha256) and
compressed once more by zstd for the archive (see ``docs/archive-format.md``).
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import zstandard

from portpack.archive import format as fmt
from portpack.conda.record import PackageRecord
from portpack.errors import PackageError, UsageError
from portpack.net.fetch import FileRequest
from portpack.progress import Reporter
from portpack.resolve.lockfile import PypiEntry
from portpack.streams import hash_file

#: Wheels are deflate-compressed already: zstd's fastest levels still save 3-4 %
#: at ~900 MB/s, where level 3 saves 5 % at ~150 MB/s (docs/archive-format.md).
COMPRESSION_LEVEL = 1
_PART = r"[^-/\\\0]+"
#: ``name-version[-build]-python-abi-platform.whl``
_WHEEL_NAME = re.compile(rf"^{_PART}-{_PART}(-{_PART})?-{_PART}-{_PART}-{_PART}\.whl$")


@dataclass(frozen=True)
class Wheel:
    """A wheel to pack."""

    name: str
    version: str
    filename: str
    location: str
    """A URL or an absolute path."""
    sha256: str | None = None

    @property
    def what(self) -> str:
        """How messages name it: ``name-version (file name)``."""
        return f"{self.name}-{self.version} ({self.filename})"

    def request(self) -> FileRequest:
        """What the fetcher needs to get it."""
        return FileRequest(
            name=self.name,
            what=self.what,
            url=self.location,
            filename=self.filename,
            sha256=self.sha256,
        )


def wheel_filename(location: str) -> str | None:
    """The wheel file name a lock location points at, or None if it is no wheel."""
    if location.startswith("direct+"):
        location = location[len("direct+") :]
    path = urllib.parse.urlsplit(location).path if "://" in location else location
    name = urllib.parse.unquote(path.rstrip("/").rpartition("/")[2])
    return name if _WHEEL_NAME.match(name) else None


def select_wheels(
    entries: Sequence[PypiEntry], *, ignore_non_wheel: bool = False, reporter: Reporter
) -> list[Wheel]:
    """The wheels among a lock's PyPI entries; refuse (or skip) everything else."""
    wheels = []
    others = []
    for entry in entries:
        filename = wheel_filename(entry.location)
        if filename is None:
            others.append(entry)
            continue
        location = entry.location.removeprefix("direct+")
        wheels.append(Wheel(entry.name, entry.version, filename, location, entry.sha256))
    if others and not ignore_non_wheel:
        listed = "".join(f"\n  - {e.name} ({e.location})" for e in others)
        raise UsageError(
            f"the lock has PyPI packages that are not wheels, which cannot be packed:{listed}",
            hint="Build wheels of them and lock those, or pack without them "
            "(--ignore-pypi-non-wheel).",
        )
    for entry in others:
        reporter.warning(f"skipping PyPI package {entry.name} ({entry.location}): not a wheel")
    return wheels


def injected_wheels(paths: Sequence[str | os.PathLike[str]]) -> list[Wheel]:
    """Wheels for local ``.whl`` files (``pack --inject``); name and version from the name."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    wheels = []
    for given in paths:
        path = Path(given).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"--inject {given}: no such file")
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename as exc:
            raise UsageError(f"--inject {given}: not a valid wheel file name: {exc}") from exc
        wheels.append(Wheel(str(name), str(version), path.name, str(path)))
    return wheels


def combine(locked: list[Wheel], injected: list[Wheel], reporter: Reporter) -> list[Wheel]:
    """The locked wheels with injected ones added (an injected wheel replaces a locked
    one of the same project), sorted by name."""
    by_name = {_canonical(w.name): w for w in injected}
    if len(by_name) != len(injected):
        raise UsageError("--inject: a project is injected as more than one wheel")
    kept = []
    for wheel in locked:
        replacement = by_name.get(_canonical(wheel.name))
        if replacement is None:
            kept.append(wheel)
        else:
            reporter.warning(f"injected {replacement.filename} replaces the locked {wheel.what}")
    if injected:
        reporter.warning(
            "injected wheels are not checked against the environment's python and platform"
        )
    combined = sorted(kept + injected, key=lambda w: (_canonical(w.name), w.filename))
    seen: dict[str, Wheel] = {}
    for wheel in combined:
        if wheel.filename in seen:
            raise UsageError(
                f"wheel {wheel.filename} is locked twice ({seen[wheel.filename].what})"
            )
        seen[wheel.filename] = wheel
    return combined


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_python(records: Sequence[PackageRecord], wheels: Sequence[Wheel]) -> None:
    """Wheels need a ``python`` package in the environment to be installed into."""
    if wheels and not any(r.name == "python" for r in records):
        names = ", ".join(w.filename for w in wheels)
        raise UsageError(
            f"the environment has PyPI wheels ({names}) but no python package to install them into",
            hint="Add python to the environment.",
        )


@dataclass(frozen=True)
class PackedWheel:
    """A wheel ready to be written: its metadata entry and its compressed bytes."""

    entry: fmt.WheelEntry
    compressed: Path


def prepare(wheel: Wheel, path: Path, scratch: Path) -> PackedWheel:
    """Read ``path`` (the fetched wheel) once: hash it, list its sizes, compress it."""
    try:
        with zipfile.ZipFile(path) as zf:
            installed = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError(f"wheel {wheel.what} is not a valid wheel: {exc}") from exc
    target = scratch / f"{wheel.filename}.zst"
    digest = _HashingReader(path)
    try:
        with open(target, "wb") as out:
            cctx = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, write_checksum=True)
            cctx.copy_stream(cast("IO[bytes]", digest), out, size=path.stat().st_size)
    except OSError as exc:
        raise PackageError(f"wheel {wheel.what}: cannot compress it: {exc}") from exc
    finally:
        digest.close()
    entry = fmt.WheelEntry(
        filename=wheel.filename,
        name=wheel.name,
        version=wheel.version,
        size=digest.size,
        sha256=digest.sha256.hexdigest(),
        zst_size=target.stat().st_size,
        zst_sha256=hash_file(target),
        installed_size=installed,
    )
    if wheel.sha256 and entry.sha256 != wheel.sha256.lower():  # changed after fetching
        raise PackageError(f"wheel {wheel.what} changed while it was being packed")
    return PackedWheel(entry, target)


class _HashingReader:
    def __init__(self, path: Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 (closed by close())
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def close(self) -> None:
        self._fh.close()
