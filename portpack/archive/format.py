"""The portpack archive format, version 2: names, limits and the metadata model.

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
an unpacker verifies every byte it writes by hashing the compressed stream, and
(since version 2) where each segment starts, so a reader that wants only some
segments seeks or asks for byte ranges.  Version 1 archives (no offsets) are read
too.  See ``docs/archive-format.md`` for the full description.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from portpack.conda.package_file import MAX_INFO_SIZE as MAX_INFO_SIZE  # info/ is held in memory
from portpack.conda.record import PackageRecord
from portpack.errors import ArchiveError

FORMAT_NAME = "portpack"
FORMAT_VERSION = 2
#: The versions this portpack reads: 1 (no segment offsets) and 2.
READ_VERSIONS = (1, 2)
METADATA_NAME = "portpack.json"
PACKAGES_DIR = "pkgs"
INFO_MEMBER = "info.tar"
PAYLOAD_MEMBER = "pkg.tar"
WHEELS_DIR = "wheels"
#: Metadata larger than this is refused before parsing (protects the unpacker's memory).
MAX_METADATA_SIZE = 256 << 20
#: The most bytes allowed between one segment's end and the next one's start (v2).
#: Only a header frame sits there: padding (< 512 bytes) and a pax + ustar header
#: (at most 4 blocks, the readers' own limit), at most ~2.6 KiB compressed even when
#: stored raw. 8 KiB leaves room for that and refuses metadata that would hide data
#: in the gaps a seeking reader never reads.
MAX_SEGMENT_GAP = 8 << 10


@dataclass(frozen=True)
class Segment:
    """One verbatim run of zstd frames inside the archive."""

    size: int
    """Decoded size in bytes (the size of the outer tar member)."""
    zst_size: int
    """Compressed size in bytes, as stored in the archive."""
    zst_sha256: str
    """sha256 of the compressed bytes, recorded after the package was verified."""
    offset: int | None = None
    """Where the first compressed byte is, counted from the first byte after the
    metadata frame (format version 2; None in version 1 and before packing)."""

    def to_json(self) -> dict[str, Any]:
        """The segment as JSON (``offset`` only when it is known)."""
        doc = asdict(self)
        if self.offset is None:
            del doc["offset"]
        return doc


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
            "info": self.info.to_json(),
            "payload": self.payload.to_json(),
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
    offset: int | None = None
    """Where the compressed bytes start (as :attr:`Segment.offset`)."""

    @property
    def segment(self) -> Segment:
        """The member's compressed bytes, as a :class:`Segment`."""
        return Segment(self.size, self.zst_size, self.zst_sha256, self.offset)

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON (``offset`` only when it is known)."""
        doc = asdict(self)
        if self.offset is None:
            del doc["offset"]
        return doc

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
        doc = asdict(dataclasses.replace(self, packages=[], wheels=[]))
        doc["packages"] = [entry.to_json() for entry in self.packages]
        doc["wheels"] = [wheel.to_json() for wheel in self.wheels]
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
        version = _check_version(raw.get("format_version"))
        try:
            metadata = _metadata_from_dict(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"{METADATA_NAME} is malformed: {exc!r}") from exc
        metadata = dataclasses.replace(metadata, format_version=version)
        _check_offsets(metadata)
        return metadata


def _check_version(version: Any) -> int:
    readable = " and ".join(str(v) for v in READ_VERSIONS)
    if type(version) is int and version > FORMAT_VERSION:
        raise ArchiveError(
            f"the archive is of format version {version}, newer than this portpack "
            f"reads (versions {readable}): it was packed by a newer portpack",
            hint="Upgrade portpack to unpack it.",
        )
    if type(version) is not int or version not in READ_VERSIONS:
        raise ArchiveError(
            f"archive format version {version!r} is not supported by this portpack "
            f"(it reads versions {readable})"
        )
    return version


def archive_segments(metadata: Metadata) -> Iterator[tuple[str, Segment]]:
    """Every segment of the archive in order, with its owner (``package <dist>``, ...)."""
    for entry in metadata.packages:
        yield f"package {entry.dist}", entry.info
        yield f"package {entry.dist}", entry.payload
    for wheel in metadata.wheels:
        yield f"wheel {wheel.filename}", wheel.segment


def _check_offsets(metadata: Metadata) -> None:
    """Version 1 has no offsets; version 2 has one per segment, in order, gaps bounded."""
    end = 0
    for owner, seg in archive_segments(metadata):
        offset = seg.offset
        if metadata.format_version == 1:
            if offset is not None:
                raise ArchiveError(
                    f"{METADATA_NAME}: {owner} has a segment offset, which format "
                    "version 1 does not have; the metadata is corrupt"
                )
            continue
        if type(offset) is not int or offset < 0:
            raise ArchiveError(
                f"{METADATA_NAME}: {owner} has no valid segment offset ({offset!r}); "
                "format version 2 records one for every segment"
            )
        if offset < end or offset - end > MAX_SEGMENT_GAP:
            raise ArchiveError(
                f"{METADATA_NAME}: the segment offset of {owner} ({offset}) does not "
                f"follow the previous segment (which ends at {end}); the metadata is corrupt"
            )
        end = offset + seg.zst_size


def with_offsets(metadata: Metadata, gaps: Sequence[int]) -> Metadata:
    """``metadata`` in the current format with every segment's offset filled in.

    ``gaps`` are the sizes of the header frames in front of each segment, in archive
    order (:func:`archive_segments`): the archive holds them and the segments after
    the metadata frame, back to back.
    """
    offsets: list[int] = []
    position = 0
    for gap, (_, seg) in zip(gaps, archive_segments(metadata), strict=True):
        offsets.append(position + gap)
        position += gap + seg.zst_size
    placed = iter(offsets)
    packages = [
        dataclasses.replace(
            entry,
            info=dataclasses.replace(entry.info, offset=next(placed)),
            payload=dataclasses.replace(entry.payload, offset=next(placed)),
        )
        for entry in metadata.packages
    ]
    wheels = [dataclasses.replace(w, offset=next(placed)) for w in metadata.wheels]
    return dataclasses.replace(
        metadata, packages=packages, wheels=wheels, format_version=FORMAT_VERSION
    )


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
