"""Archives for the segment-source tests: two versions that differ in two packages.

portpack writes format v2; :func:`without_offsets` makes a v1 archive of one (as an
older portpack wrote it), and :func:`with_offsets` a v2 archive again by walking its
zstd frames with zstandard alone (not portpack's reader), which checks the offsets
the writer records against an independent count.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from hostile import Member, RawPackage, make_archive, replace_metadata
from portpack.archive import format as fmt
from portpack.archive.segment_source import SegmentRef, package_refs


def _random(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def packages(version: str) -> list[RawPackage]:
    """alpha, gamma and epsilon stay; beta and delta change with ``version``."""
    return [
        RawPackage("alpha", [Member("share/alpha/data.bin", _random("alpha", 300_000))]),
        RawPackage(
            "beta",
            [
                Member("share/beta/data.bin", _random(f"beta {version}", 150_000)),
                Member("bin/beta", b"#!/bin/sh\necho " + version.encode() + b"\n"),
            ],
        ),
        RawPackage("gamma", [Member("share/gamma/data.bin", _random("gamma", 250_000))]),
        RawPackage("delta", [Member("share/delta/data.bin", _random(f"delta {version}", 90_000))]),
        RawPackage("epsilon", [Member(f"share/eps/{i}.txt", b"e%d" % i * 200) for i in range(30)]),
    ]


def _frame_end(data: bytes, pos: int) -> int:
    """Where the zstd frame starting at ``pos`` ends (decoded, to be sure)."""
    dobj = zstandard.ZstdDecompressor().decompressobj()
    dobj.decompress(data[pos : pos + (1 << 20)])
    assert dobj.eof, f"no whole frame at byte {pos}"
    return pos + min(len(data) - pos, 1 << 20) - len(dobj.unused_data)


def _metadata(data: bytes) -> dict[str, Any]:
    frame = zstandard.ZstdDecompressor().decompressobj().decompress(data[: 1 << 20])
    size = int(frame[124:136].strip(b"\0 ") or b"0", 8)
    doc: dict[str, Any] = json.loads(frame[512 : 512 + size])
    return doc


def with_offsets(archive: Path, dest: Path) -> Path:
    """Copy ``archive`` to ``dest`` with every segment's v2 ``offset`` in its metadata."""
    data = archive.read_bytes()
    doc = _metadata(data)
    base = pos = _frame_end(data, 0)
    offsets: list[int] = []
    sizes = [(p["info"], p["payload"]) for p in doc["packages"]]
    for info, payload in sizes:
        for seg in (info, payload):
            pos = _frame_end(data, pos)  # the tar header frame before the segment
            offsets.append(pos - base)
            pos += seg["zst_size"]
    wheel_offsets = []
    for wheel in doc.get("wheels", []):
        pos = _frame_end(data, pos)
        wheel_offsets.append(pos - base)
        pos += wheel["zst_size"]

    def edit(meta: dict[str, Any]) -> None:
        meta["format_version"] = 2
        it = iter(offsets)
        for entry in meta["packages"]:
            entry["info"]["offset"] = next(it)
            entry["payload"]["offset"] = next(it)
        for wheel, offset in zip(meta.get("wheels", []), wheel_offsets, strict=True):
            wheel["offset"] = offset

    return replace_metadata(archive, edit, dest)


def without_offsets(archive: Path, dest: Path) -> Path:
    """Copy ``archive`` to ``dest`` as a format v1 archive: no offsets."""

    def edit(meta: dict[str, Any]) -> None:
        meta["format_version"] = 1
        for entry in meta["packages"]:
            entry["info"].pop("offset", None)
            entry["payload"].pop("offset", None)
        for wheel in meta.get("wheels", []):
            wheel.pop("offset", None)

    return replace_metadata(archive, edit, dest)


@dataclass(frozen=True)
class Versions:
    old: Path
    new: Path
    """v1 archives, as written today."""
    old2: Path
    new2: Path
    """The same with v2 offsets."""


def build(root: Path) -> Versions:
    written = [make_archive(root / v, packages(v)) for v in ("1.4", "1.5")]
    old, new = (without_offsets(w, root / f"v1-{w.parent.name}.tar") for w in written)
    old2 = with_offsets(old, root / "old2.tar")
    new2 = with_offsets(new, root / "new2.tar")
    for mine, theirs in ((old2, written[0]), (new2, written[1])):
        assert metadata_of(mine).packages == metadata_of(theirs).packages  # same offsets
    return Versions(old, new, old2, new2)


def metadata_of(archive: Path) -> fmt.Metadata:
    from portpack.archive.reader import open_metadata

    with open(archive, "rb") as fh:
        return open_metadata(fh, str(archive))


def metadata_end(archive: Path) -> int:
    return _frame_end(archive.read_bytes(), 0)


def changed_refs(old: Path, new: Path) -> list[SegmentRef]:
    """The segments of ``new``'s packages whose package file differs from ``old``'s."""
    before = {e.name: e.record.sha256 for e in metadata_of(old).packages}
    return [
        ref
        for entry in metadata_of(new).packages
        if before.get(entry.name) != entry.record.sha256
        for ref in package_refs(entry)
    ]


def expected_bytes(archive: Path, refs: Sequence[SegmentRef]) -> list[bytes]:
    """Each segment's bytes, cut from the archive file by its v2 offset."""
    data = archive.read_bytes()
    base = metadata_end(archive)
    out = []
    for ref in refs:
        assert ref.segment.offset is not None
        start = base + ref.segment.offset
        out.append(data[start : start + ref.segment.zst_size])
    return out
