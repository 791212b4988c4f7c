"""The portpack archive format, version 1: names, limits and the metadata model.

An archive is a sequence of zstd frames that decodes to one POSIX tar stream:

``portpack.json``
    This module's :class:`Metadata`, in its own checksummed frame.
``pkgs/<stem>/info.tar``, ``pkgs/<stem>/pkg.tar`` (per package, install order)
    A package's ``info/`` tar and payload tar.  Their compressed bytes are the
    package's own ``info-*.tar.zst`` / ``pkg-*.tar.zst`` frames, copied verbatim;
    tar headers and padding live in small frames of their own between them.
``wheels/<file name>`` (per PyPI wheel, optional, after the last package)
    A wheel file, compressed by portpack; installed after every conda package.

The metadata records the compressed size and sha256 of each verbatim segment, so
an unpacker verifies every byte it writes by hashing the compressed stream.  See
``docs/archive-format.md`` for the full description.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from portpack.conda.package_file import MAX_INFO_SIZE as MAX_INFO_SIZE  # info/ is held in memory
from portpack.conda.record import PackageRecord
from portpack.errors import ArchiveError

FORMAT_NAME = "portpack"
FORMAT_VERSION = 1
METADATA_NAME = "portpack.json"
PACKAGES_DIR = "pkgs"
INFO_MEMBER = "info.tar"
PAYLOAD_MEMBER = "pkg.tar"
WHEELS_DIR = "wheels"
#: Metadata larger than this is refused before parsing (protects the unpacker's memory).
MAX_METADATA_SIZE = 256 << 20


@dataclass(frozen=True)
class Segment:
    """One verbatim run of zstd frames inside the archive."""

    size: int
    """Decoded size in bytes (the size of the outer tar member)."""
    zst_size: int
    """Compressed size in bytes, as stored in the archive."""
    zst_sha256: str
    """sha256 of the compressed bytes, recorded after the package was verified."""


@dataclass(frozen=True)
class PackageEntry:
    """One package of the archive."""

    stem: str
    """File name without extension; names the package's members."""
    record: PackageRecord
    """The repodata record (with ``fn``, ``url``, ``channel``); its JSON is what is stored."""
    info: Segment
    payload: Segment
    installed_size: int
    """Sum of ``size_in_bytes`` over the package's paths."""

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def dist(self) -> str:
        """``name-version-build``, the conda-meta record's stem."""
        return self.record.dist

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON (the record as it was read or given)."""
        return {
            "stem": self.stem,
            "record": self.record.to_json(),
            "info": asdict(self.info),
            "payload": asdict(self.payload),
            "installed_size": self.installed_size,
        }


@dataclass(frozen=True)
class WheelEntry:
    """One PyPI wheel of the archive (member ``wheels/<filename>``)."""

    filename: str
    """The wheel's file name, ``<name>-<version>-<tags>.whl``."""
    name: str
    version: str
    size: int
    """Size of the wheel file (the decoded member)."""
    sha256: str
    """sha256 of the wheel file, checked again when the unpacker spools it."""
    zst_size: int
    """Size of the member's compressed bytes in the archive."""
    zst_sha256: str
    """sha256 of those compressed bytes."""
    installed_size: int
    """Sum of the sizes of the files the wheel holds."""

    @property
    def segment(self) -> Segment:
        """The member's compressed bytes, as a :class:`Segment`."""
        return Segment(self.size, self.zst_size, self.zst_sha256)

    @property
    def member(self) -> str:
        """The outer tar member name."""
        return f"{WHEELS_DIR}/{self.filename}"


@dataclass(frozen=True)
class Placeholder:
    """The shortest binary placeholder of the environment (it bounds the prefix length)."""

    length: int
    package: str
    path: str


@dataclass(frozen=True)
class VirtualRequirement:
    """A package's dependency on a virtual package such as ``__glibc >=2.17``."""

    package: str
    spec: str


@dataclass(frozen=True)
class Metadata:
    """Everything an unpacker must know before it writes a byte."""

    platform: str
    portpack_version: str
    packages: list[PackageEntry]
    installed_size: int
    min_binary_placeholder: Placeholder | None = None
    virtual_requirements: list[VirtualRequirement] = field(default_factory=list)
    wheels: list[WheelEntry] = field(default_factory=list)
    """PyPI wheels, installed after the packages (omitted from the JSON when empty)."""
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        """Serialize deterministically (sorted keys, no timestamps).

        Without wheels the ``wheels`` key is left out, so such archives stay exactly
        what portpack wrote before wheels were supported.
        """
        doc = asdict(dataclasses.replace(self, packages=[]))
        doc["packages"] = [entry.to_json() for entry in self.packages]
        if not self.wheels:
            del doc["wheels"]
        return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Metadata:
        """Parse and validate; raise :class:`ArchiveError` on anything unexpected."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArchiveError(f"{METADATA_NAME} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            raise ArchiveError(f"{METADATA_NAME} does not describe a portpack archive")
        version = raw.get("format_version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise ArchiveError(
                f"archive format version {version!r} is not supported by this portpack "
                f"(it reads version {FORMAT_VERSION})",
                hint="Unpack it with the portpack version that packed it, or a newer one.",
            )
        try:
            return _metadata_from_dict(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"{METADATA_NAME} is malformed: {exc!r}") from exc


def _metadata_from_dict(raw: dict[str, Any]) -> Metadata:
    packages = [_entry(p) for p in raw["packages"]]
    mbp = raw.get("min_binary_placeholder")
    return Metadata(
        platform=_str(raw["platform"]),
        portpack_version=_str(raw["portpack_version"]),
        packages=packages,
        installed_size=int(raw["installed_size"]),
        min_binary_placeholder=_placeholder(mbp) if mbp else None,
        virtual_requirements=[_requirement(v) for v in raw.get("virtual_requirements", [])],
        wheels=_wheels(raw.get("wheels", [])),
    )


def _wheels(raw: list[dict[str, Any]]) -> list[WheelEntry]:
    wheels = [_check_wheel(WheelEntry(**w)) for w in raw]
    names = [w.filename for w in wheels]
    if len(set(names)) != len(names):
        raise ValueError("a wheel is listed twice")
    return wheels


def _check_wheel(wheel: WheelEntry) -> WheelEntry:
    fn = wheel.filename
    if not (
        isinstance(fn, str)
        and fn.endswith(".whl")
        and fn.count("-") >= 4
        and "/" not in fn
        and "\\" not in fn
        and "\0" not in fn
        and not fn.startswith(".")
    ):
        raise ValueError(f"invalid wheel file name {fn!r}")
    if not (isinstance(wheel.name, str) and wheel.name and isinstance(wheel.version, str)):
        raise ValueError(f"wheel {fn} lacks a name or version")
    sizes = (wheel.size, wheel.zst_size, wheel.installed_size)
    if any(type(v) is not int or v < 0 for v in sizes):
        raise ValueError(f"invalid sizes of wheel {fn}")
    if not (_is_sha256(wheel.sha256) and _is_sha256(wheel.zst_sha256)):
        raise ValueError(f"invalid sha256 of wheel {fn}")
    return wheel


def _placeholder(raw: dict[str, Any]) -> Placeholder:
    value = Placeholder(**raw)
    if type(value.length) is not int or not isinstance(value.package, str):
        raise TypeError(f"invalid min_binary_placeholder {raw!r}")
    return value


def _requirement(raw: dict[str, Any]) -> VirtualRequirement:
    value = VirtualRequirement(**raw)
    if not (isinstance(value.package, str) and isinstance(value.spec, str)):
        raise TypeError(f"invalid virtual requirement {raw!r}")
    return value


def _entry(raw: dict[str, Any]) -> PackageEntry:
    stem = _str(raw["stem"])
    info, payload = Segment(**raw["info"]), Segment(**raw["payload"])
    for seg in (info, payload):
        ints = (seg.size, seg.zst_size)
        if any(type(v) is not int or v < 0 for v in ints) or not _is_sha256(seg.zst_sha256):
            raise ValueError(f"invalid segment of package {stem}")
    # The one record check: name, version and build become file names
    # (conda-meta/<name>-<version>-<build>.json), the other fields are typed.
    record = PackageRecord.from_json(raw["record"], f"{METADATA_NAME}, the record of {stem}")
    entry = PackageEntry(stem, record, info, payload, int(raw["installed_size"]))
    if entry.info.size > MAX_INFO_SIZE:
        raise ValueError(f"info/ of package {entry.stem} is larger than {MAX_INFO_SIZE} bytes")
    if not entry.stem or "/" in entry.stem or entry.stem in (".", ".."):
        raise ValueError(f"invalid package stem {entry.stem!r}")
    return entry


def _is_sha256(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def member_name(stem: str, member: str) -> str:
    """The outer tar member name of a package's info or payload tar."""
    return f"{PACKAGES_DIR}/{stem}/{member}"
