"""pixi-pack's archive format: its names, its metadata and its checks (standard library only).

A pixi-pack archive is a plain tar, its members sorted by name as pixi-pack walks
its output directory::

    channel/<subdir>/<package>.conda | .tar.bz2   (sorted with repodata.json)
    channel/<subdir>/repodata.json
    environment.yml
    pixi-pack.json                                {"version": "1", "platform": ...}
    pypi/<wheel>.whl

:func:`classify` says what a member is, :func:`parse_metadata` and
:func:`parse_repodata` read the two JSON files, :func:`check_package` compares a
package file with its ``repodata.json`` record.  The unpacker
(:mod:`portpack.unpacker.pixipack`), ``inspect`` (:mod:`portpack.archive.summary`) and
the writer (:mod:`portpack.archive.pixipack_write`) share them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from portpack.archive import format as fmt
from portpack.conda.package_file import PACKAGE_EXTENSIONS
from portpack.conda.record import PackageRecord
from portpack.errors import ArchiveError

METADATA_NAME = "pixi-pack.json"
ENVIRONMENT_FILE = "environment.yml"
CHANNEL_DIR = "channel"
PYPI_DIR = "pypi"
REPODATA_NAME = "repodata.json"
#: The only ``version`` of ``pixi-pack.json`` there is.
FORMAT_VERSION = "1"
#: ``repodata.json`` / ``pixi-pack.json`` larger than this are refused (held in memory).
MAX_JSON_SIZE = fmt.MAX_METADATA_SIZE


@dataclass(frozen=True)
class PixiPackMetadata:
    """The content of ``pixi-pack.json``."""

    version: str
    platform: str
    pixi_pack_version: str | None = None
    portpack_version: str | None = None
    """Set when portpack wrote the archive (``portpack pack --format pixi-pack``)."""


@dataclass(frozen=True)
class Part:
    """What one member of a pixi-pack archive is (:func:`classify`)."""

    kind: str
    """``metadata``, ``environment``, ``repodata``, ``package``, ``wheel``, ``subdir``
    (the directory ``channel/<subdir>/``), ``portpack`` (``portpack.json``: a
    decompressed portpack archive), ``directory`` (another one) or ``unknown``."""
    path: str
    subdir: str = ""
    fn: str = ""


def classify(name: str, is_dir: bool) -> Part:
    """What the member ``name`` of a pixi-pack archive is."""
    path = name.removeprefix("./").rstrip("/")
    parts = path.split("/")
    if path == fmt.METADATA_NAME:
        return Part("portpack", path)
    if is_dir:
        if len(parts) == 2 and parts[0] == CHANNEL_DIR:
            return Part("subdir", path, subdir=parts[1])
        return Part("directory", path)
    if path == METADATA_NAME:
        return Part("metadata", path)
    if path == ENVIRONMENT_FILE:
        return Part("environment", path)
    if len(parts) == 3 and parts[0] == CHANNEL_DIR:
        subdir, fn = parts[1], parts[2]
        if fn == REPODATA_NAME:
            return Part("repodata", path, subdir, fn)
        if fn.endswith(PACKAGE_EXTENSIONS):
            return Part("package", path, subdir, fn)
        return Part("unknown", path, subdir, fn)
    if len(parts) == 2 and parts[0] == PYPI_DIR and parts[1].endswith(".whl"):
        return Part("wheel", path, fn=parts[1])
    return Part("unknown", path)


def _optional(raw: Mapping[str, object], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def parse_metadata(data: bytes, where: str) -> PixiPackMetadata:
    """Parse ``pixi-pack.json``; refuse format versions other than 1."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{where}: {METADATA_NAME} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("platform"), str):
        raise ArchiveError(f"{where}: {METADATA_NAME} does not name a platform")
    version = raw.get("version")
    if version != FORMAT_VERSION:
        raise ArchiveError(
            f"{where}: pixi-pack archive format version {version!r} is not supported "
            f"(portpack reads version {FORMAT_VERSION!r})"
        )
    return PixiPackMetadata(
        version=version,
        platform=raw["platform"],
        pixi_pack_version=_optional(raw, "pixi-pack-version"),
        portpack_version=_optional(raw, "portpack-version"),
    )


def parse_repodata(data: bytes, where: str) -> dict[str, PackageRecord]:
    """The records of a ``repodata.json`` by file name (``packages`` and ``packages.conda``).

    Each is checked as :meth:`PackageRecord.from_json` checks a record: ``name``,
    ``version`` and ``build`` become file names (``conda-meta/<dist>.json``).
    """
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{where} is not valid JSON: {exc}") from exc
    out: dict[str, PackageRecord] = {}
    for key in ("packages", "packages.conda"):
        table = raw.get(key) if isinstance(raw, dict) else None
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ArchiveError(f"{where}: {key!r} is not an object")
        for fn, record in table.items():
            if not isinstance(record, dict):
                raise ArchiveError(f"{where}: the record of {fn} is malformed")
            out[fn] = PackageRecord.from_json(record, f"{where}, the record of {fn}")
    return out


@dataclass(frozen=True)
class PackageFacts:
    """What reading one package file of the archive found."""

    subdir: str
    fn: str
    dist: str
    """``name-version-build`` from the package's ``info/index.json``."""
    sha256: str
    size: int


def check_package(
    archive: str, records: Mapping[str, PackageRecord], found: PackageFacts
) -> str | None:
    """Check a package file against its subdir's ``repodata.json`` ``records``.

    Raises :class:`ArchiveError` when the record is missing or does not match; returns
    a warning when the record has no sha256 (the file could not be verified).
    """
    where = f"{CHANNEL_DIR}/{found.subdir}/{REPODATA_NAME}"
    package = f"package {found.subdir}/{found.fn}"
    record = records.get(found.fn)
    if record is None:
        raise ArchiveError(f"{archive}: {package} is not in {where}")
    if record.dist != found.dist:
        raise ArchiveError(
            f"{archive}: {where} describes {found.fn} as {record.dist}, "
            f"but the package is {found.dist}"
        )
    if record.sha256 and record.sha256.lower() != found.sha256:
        raise ArchiveError(
            f"{archive}: {package} does not match the sha256 in {where} (got "
            f"{found.sha256}, expected {record.sha256}); the archive is corrupt"
        )
    if record.size is not None and record.size != found.size:
        raise ArchiveError(
            f"{archive}: {package} is {found.size} bytes, {where} says {record.size}; "
            "the archive is corrupt"
        )
    if not record.sha256:
        return f"{where} has no sha256 for {found.fn}; it was not verified"
    return None


def package_url(archive: str, subdir: str, fn: str) -> str:
    """The URL a conda-meta record gives a package of the archive ``archive``: a
    ``file://`` URL for a path, the archive's own URL (as given, already masked by
    the source that streamed it) for one read from ``http(s)://``."""
    if "://" in archive:
        base = archive.split("#", 1)[0]
    elif archive.startswith("<"):
        base = "file:///dev/stdin"
    else:
        base = Path(os.path.abspath(archive)).as_uri()
    return f"{base}#{CHANNEL_DIR}/{subdir}/{fn}"


__all__ = [
    "CHANNEL_DIR",
    "ENVIRONMENT_FILE",
    "FORMAT_VERSION",
    "METADATA_NAME",
    "PYPI_DIR",
    "REPODATA_NAME",
    "PackageFacts",
    "Part",
    "PixiPackMetadata",
    "check_package",
    "classify",
    "package_url",
    "parse_metadata",
    "parse_repodata",
]
