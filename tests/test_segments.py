"""Format v2 offsets and the local segment sources (issue 15): read only some segments.

Archives are built with tests/hostile.py (packages of incompressible files, so the
segments are large enough for "not read" to be measurable), plus one wheel.  What a
source yields is compared with the bytes the packer copied from the package files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import zstandard

import portpack
from hostile import (
    Member,
    RawPackage,
    analyze,
    record,
    replace_metadata,
    to_version_1,
    write_conda,
)
from portpack.archive import format as fmt
from portpack.archive import sfx
from portpack.archive import writer as archive_writer
from portpack.archive.directory import open_directory
from portpack.archive.reader import ArchiveReader
from portpack.archive.segment_decode import iter_packages, iter_wheels
from portpack.archive.segment_read import (
    FolderSegments,
    OffsetSegments,
    StreamSegments,
    all_refs,
    open_local_segments,
)
from portpack.archive.segment_source import SegmentRef, SegmentSource, package_refs, wheel_ref
from portpack.errors import ArchiveError, UnsafeArchiveError
from portpack.install.verify import verify
from portpack.packer import packing
from treesnap import diff, snapshot

WHEEL = "pp_demo-1.0-py3-none-any.whl"
NAMES = ("alpha", "beta", "gamma")


def _package(name: str) -> RawPackage:
    rng = __import__("random").Random(name)
    files = [Member(f"share/{name}/{i}.bin", rng.randbytes(40_000)) for i in range(4)]
    return RawPackage(name, files)


@dataclass
class Built:
    """One archive in every form, and the bytes the packer copied into it."""

    v2: Path
    v1: Path
    folder: Path
    sfx: Path
    truth: dict[str, bytes]
    """Each member's stored (compressed) bytes, read from the package files."""
    metadata: fmt.Metadata


def _wheel(dest: Path) -> tuple[fmt.WheelEntry, Path]:
    import hashlib

    data = os.urandom(30_000)
    compressed = zstandard.ZstdCompressor().compress(data)
    path = dest / f"{WHEEL}.zst"
    path.write_bytes(compressed)
    entry = fmt.WheelEntry(
        WHEEL, "pp-demo", "1.0", len(data), hashlib.sha256(data).hexdigest(),
        len(compressed), hashlib.sha256(compressed).hexdigest(), len(data),
    )  # fmt: skip
    return entry, path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("segments")
    packages = [_package(name) for name in NAMES]
    files = [write_conda(root, pkg) for pkg in packages]
    records = [record(pkg, path) for pkg, path in zip(packages, files, strict=True)]
    analyzed = [analyze(path, pkg) for path, pkg in zip(files, packages, strict=True)]
    wheel, wheel_file = _wheel(root)
    metadata = packing.build_metadata("linux-64", records, analyzed, [wheel])
    v2 = root / "env.tar"
    with open(v2, "wb") as fh:
        archive_writer.write_archive(fh, metadata, analyzed, [wheel_file])
    archive_writer.write_directory(root / "folder", metadata, analyzed, [wheel_file])
    header = sfx.SHEBANG + sfx.MAGIC + b"# archive offset: 4096\n"
    (root / "env.sh").write_bytes(header.ljust(4096, b"#") + v2.read_bytes())
    truth = {wheel_ref(wheel).member: wheel_file.read_bytes()}
    for entry, pkg in zip(metadata.packages, analyzed, strict=True):
        data = pkg.path.read_bytes()
        info, payload = package_refs(entry)
        truth[info.member] = data[pkg.info_range.offset :][: pkg.info_range.length]
        truth[payload.member] = data[pkg.payload_range.offset :][: pkg.payload_range.length]
    v1 = to_version_1(v2, root / "v1.tar")
    return Built(v2, v1, root / "folder", root / "env.sh", truth, metadata)


@pytest.fixture
def pipe() -> Iterator[Any]:
    """``feed(data)``: the read end of a pipe a thread writes ``data`` into."""
    threads: list[threading.Thread] = []
    files: list[BinaryIO] = []

    def feed(data: bytes) -> BinaryIO:
        read_fd, write_fd = os.pipe()

        def write() -> None:
            with open(write_fd, "wb") as out, contextlib.suppress(BrokenPipeError):
                out.write(data)

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        threads.append(thread)
        reader = open(read_fd, "rb", buffering=0)  # noqa: SIM115 (closed below)
        files.append(reader)
        return reader

    yield feed
    for reader in files:
        reader.close()
    for thread in threads:
        thread.join(timeout=10)


def wanted_of(metadata: fmt.Metadata, *names: str) -> list[SegmentRef]:
    refs = [ref for e in metadata.packages if e.name in names for ref in package_refs(e)]
    return refs + [wheel_ref(w) for w in metadata.wheels if "wheel" in names]


def read_all(source: SegmentSource, wanted: list[SegmentRef]) -> dict[str, bytes]:
    out = {}
    for ref, stream in source.segments(wanted):
        out[ref.member] = stream.read()
    return out


def _open(kind: str, built: Built, pipe: Any) -> tuple[fmt.Metadata, SegmentSource]:
    if kind == "file v2":
        return open_local_segments(built.v2, "env.tar")
    if kind == "file v1":
        return open_local_segments(built.v1, "v1.tar")
    if kind == "folder":
        return open_local_segments(built.folder, "folder")
    if kind == "self-extracting":
        return open_local_segments(built.sfx, "env.sh")
    source = {"pipe v2": built.v2, "pipe v1": built.v1, "self-extracting pipe": built.sfx}[kind]
    return open_local_segments(pipe(source.read_bytes()), "<stdin>")


KINDS = {
    "file v2": OffsetSegments,
    "file v1": StreamSegments,
    "pipe v2": StreamSegments,
    "pipe v1": StreamSegments,
    "folder": FolderSegments,
    "self-extracting": OffsetSegments,
    "self-extracting pipe": StreamSegments,
}


@pytest.mark.parametrize("kind", KINDS)
def test_wanted_segments_are_the_packed_bytes(kind: str, built: Built, pipe: Any) -> None:
    metadata, source = _open(kind, built, pipe)
    assert isinstance(source, KINDS[kind])
    assert metadata.format_version == (1 if "v1" in kind else 2)
    wanted = wanted_of(metadata, "beta", "wheel")
    got = read_all(source, wanted)
    assert list(got) == [ref.member for ref in wanted]
    assert got == {ref.member: built.truth[ref.member] for ref in wanted}
    source.close()


@pytest.mark.parametrize("kind", KINDS)
def test_decoded_packages_and_wheels_match_a_full_read(kind: str, built: Built, pipe: Any) -> None:
    with open(built.v2, "rb") as fh:
        reader = ArchiveReader(fh, "env.tar")
        full = {e.dist: (info, bytes(p.read(e.payload.size))) for e, info, p in reader.packages()}
        wheels = {w.filename: bytes(s.read(w.size)) for w, s in reader.wheels()}
    metadata, source = _open(kind, built, pipe)
    chosen = [metadata.packages[2], metadata.packages[1]]  # any order: yielded in archive order
    seen = []
    for entry, info, payload in iter_packages(source, metadata, chosen):
        seen.append(entry.name)
        assert (info, bytes(payload.read(entry.payload.size))) == full[entry.dist]
        assert payload.at_eof()
    assert seen == ["beta", "gamma"]
    got = {w.filename: bytes(s.read(w.size)) for w, s in iter_wheels(source, metadata.wheels)}
    assert got == wheels
    source.close()


def test_a_seekable_file_reads_only_the_metadata_and_the_wanted_segments(built: Built) -> None:
    wanted = wanted_of(built.metadata, "beta")
    wanted_bytes = sum(ref.segment.zst_size for ref in wanted)
    size = built.v2.stat().st_size
    metadata_end = size - sum(seg.zst_size for _, seg in fmt.archive_segments(built.metadata))
    for path in (built.v2, built.v1):
        metadata, source = open_local_segments(path, path.name)
        read_all(source, wanted_of(metadata, "beta"))
        # the metadata frame (and the peek at the start), the wanted segments, and for
        # version 1 a few hundred bytes of each header frame on the way: nothing else
        frames = 0 if path == built.v2 else 600 * len(all_refs(built.metadata))
        assert wanted_bytes < source.bytes_read <= metadata_end + 1024 + frames + wanted_bytes
        assert source.bytes_read < size / 2
        source.close()


def test_a_pipe_is_read_to_its_end(built: Built, pipe: Any) -> None:
    for path in (built.v2, built.v1):
        data = path.read_bytes()
        metadata, source = open_local_segments(pipe(data), "<stdin>")
        for _ in iter_packages(source, metadata, [metadata.packages[0]]):
            pass
        assert source.bytes_read < len(data)
        for _ in iter_wheels(source, []):
            pass
        assert source.bytes_read == len(data)


def full_read(archive: Path) -> None:
    """Read ``archive`` through the full-stream reader, as unpack does."""
    with open_directory(archive) if archive.is_dir() else open(archive, "rb") as fh:
        reader = ArchiveReader(fh, str(archive))
        for _, _, payload in reader.packages():
            payload.close()
        for _, wheel in reader.wheels():
            wheel.close()


def _flip(data: bytes, needle: bytes) -> bytes:
    start = data.index(needle)
    out = bytearray(data)
    out[start + len(needle) // 2] ^= 0x40
    return bytes(out)


def _corrupted(built: Built, member: str, tmp_path: Path) -> dict[str, Any]:
    """Every kind of source with ``member``'s stored bytes corrupted."""
    needle = built.truth[member]
    out: dict[str, Any] = {}
    for name, path in (("v2", built.v2), ("v1", built.v1)):
        bad = tmp_path / f"{name}.tar"
        bad.write_bytes(_flip(path.read_bytes(), needle))
        out[name] = bad
    folder = tmp_path / "folder"
    shutil.copytree(built.folder, folder)
    stored = folder / f"{member}.zst"
    stored.write_bytes(_flip(stored.read_bytes(), needle))
    out["folder"] = folder
    return out


def test_a_corrupted_wanted_segment_is_refused_naming_the_package(
    built: Built, tmp_path: Path, pipe: Any
) -> None:
    payload = package_refs(built.metadata.packages[1])[1]
    for name, path in _corrupted(built, payload.member, tmp_path).items():
        for archive in (path, pipe(path.read_bytes())) if name != "folder" else (path,):
            metadata, source = open_local_segments(archive, name)
            with pytest.raises(ArchiveError, match=r"package beta-1\.0-0") as info:
                for _, _, reader in iter_packages(source, metadata, [metadata.packages[1]]):
                    reader.drain()
            assert name in info.value.message
            assert "corrupt" in info.value.message
            # the raw segment stream refuses it too, before its last byte is handed on
            metadata, source = open_local_segments(path, name)
            with pytest.raises(ArchiveError, match=r"package beta-1\.0-0.*does not match"):
                read_all(source, [package_refs(metadata.packages[1])[1]])


def test_a_corrupted_unwanted_segment_of_a_seekable_file_is_never_read(
    built: Built, tmp_path: Path
) -> None:
    alpha = package_refs(built.metadata.packages[0])[1]
    for name, path in _corrupted(built, alpha.member, tmp_path).items():
        metadata, source = open_local_segments(path, name)
        got = read_all(source, wanted_of(metadata, "beta", "wheel"))
        assert (
            got[package_refs(metadata.packages[1])[1].member]
            == built.truth[package_refs(metadata.packages[1])[1].member]
        )
        # ...while a full read of the same archive refuses it
        with pytest.raises(ArchiveError, match=r"package alpha-1\.0-0.*corrupt"):
            full_read(path)


def test_a_truncated_archive_is_refused(built: Built, tmp_path: Path, pipe: Any) -> None:
    beta = package_refs(built.metadata.packages[1])[1]
    for path in (built.v2, built.v1):
        data = path.read_bytes()
        cut = data[: data.index(built.truth[beta.member]) + 1000]
        short = tmp_path / f"short-{path.name}"
        short.write_bytes(cut)
        with pytest.raises(ArchiveError, match="truncated"):
            # version 2 is refused on opening (the file ends before its last segment)
            metadata, source = open_local_segments(short, short.name)
            read_all(source, wanted_of(metadata, "beta"))
        metadata, source = open_local_segments(pipe(cut), "<stdin>")
        with pytest.raises(ArchiveError, match=r"truncated inside pkgs/beta-1\.0-0/pkg\.tar"):
            read_all(source, wanted_of(metadata, "beta"))
        # cut after the wanted segment: a pipe notices at its end
        end = data[: data.index(built.truth[beta.member]) + beta.segment.zst_size + 200]
        metadata, source = open_local_segments(pipe(end), "<stdin>")
        for _ in iter_packages(source, metadata, [metadata.packages[1]]):
            pass
        with pytest.raises(ArchiveError, match="truncated"):
            list(iter_wheels(source, []))


@pytest.mark.parametrize("version", [1, 2])
def test_sizes_larger_than_the_file_are_refused_on_opening(
    built: Built, tmp_path: Path, version: int
) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["wheels"][0]["zst_size"] = 1 << 70  # the last segment: the offsets still agree

    archive = built.v1 if version == 1 else built.v2
    huge = replace_metadata(archive, edit, tmp_path / "huge.tar")
    with pytest.raises(ArchiveError, match=r"huge\.tar is truncated: it is \d+ bytes"):
        open_local_segments(huge, "huge.tar")


def _shift_offset(built: Built, tmp_path: Path, delta: int) -> Path:
    def edit(doc: dict[str, Any]) -> None:
        doc["packages"][1]["payload"]["offset"] += delta

    return replace_metadata(built.v2, edit, tmp_path / "lying.tar")


def test_a_lying_offset_is_refused_by_every_reader(built: Built, tmp_path: Path, pipe: Any) -> None:
    lying = _shift_offset(built, tmp_path, 7)
    with pytest.raises(ArchiveError, match=r"package beta-1\.0-0.*records offset") as info:
        full_read(lying)
    assert str(lying) in info.value.message
    without_wheel = tmp_path / "lying-nowheel.tar"
    _without_wheel(lying, without_wheel)
    with pytest.raises(ArchiveError, match=r"package beta-1\.0-0.*records offset"):
        portpack.unpack(without_wheel, tmp_path / "out")
    assert not (tmp_path / "out" / "env").exists()
    _, source = open_local_segments(pipe(lying.read_bytes()), "<stdin>")
    with pytest.raises(ArchiveError, match=r"package beta-1\.0-0.*records offset"):
        read_all(source, wanted_of(built.metadata, "gamma"))  # passing beta's frame is enough
    # seeking by it lands on the wrong bytes, which fail their digest
    metadata, source = open_local_segments(lying, "lying.tar")
    with pytest.raises(ArchiveError, match=r"lying\.tar: package beta-1\.0-0.*does not match"):
        read_all(source, wanted_of(metadata, "beta"))


def test_offsets_out_of_order_are_refused_naming_the_package(built: Built, tmp_path: Path) -> None:
    lying = _shift_offset(built, tmp_path, -100)  # inside beta's own info segment
    with pytest.raises(ArchiveError, match=r"offset of package beta-1\.0-0.*does not follow"):
        open_local_segments(lying, "lying.tar")


def test_segments_not_in_the_archive_or_out_of_order_are_refused(built: Built) -> None:
    metadata, source = open_local_segments(built.v2, "env.tar")
    beta, gamma = wanted_of(metadata, "beta")[1], wanted_of(metadata, "gamma")[0]
    with pytest.raises(ArchiveError, match="out of archive order"):
        read_all(source, [gamma, beta])
    other = SegmentRef(beta.owner, beta.member, fmt.Segment(1, 2, "0" * 64, 5))
    with pytest.raises(
        ArchiveError, match=r"package beta-1\.0-0: pkgs/beta-1\.0-0/pkg\.tar is not"
    ):
        read_all(source, [other])


def test_a_stream_left_half_read_goes_on_to_the_next_segment(built: Built, pipe: Any) -> None:
    metadata, source = open_local_segments(pipe(built.v1.read_bytes()), "<stdin>")
    wanted = wanted_of(metadata, "alpha", "gamma")
    got = {}
    for ref, stream in source.segments(wanted):
        got[ref.member] = stream.read(100)
        stream.close()
    assert got == {ref.member: built.truth[ref.member][:100] for ref in wanted}


def test_version_1_and_2_unpack_to_the_same_tree(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "out"
    trees = []
    for path in (built.v1, built.v2, built.folder):
        no_wheel = tmp_path / f"nowheel-{path.name}"
        _without_wheel(path, no_wheel)
        portpack.unpack(no_wheel, out)
        # (conda-meta/history names the archive unpacked)
        trees.append(snapshot(out / "env", skip=("conda-meta/history",)))
        if path == built.v1:
            assert verify(out / "env").ok
        if not no_wheel.is_dir():  # (inspect reads files)
            summary = portpack.inspect(no_wheel)
            assert [p.name for p in summary.packages] == list(NAMES)
        shutil.rmtree(out)
    assert diff(trees[0], trees[1]) == []
    assert diff(trees[1], trees[2]) == []


def _without_wheel(path: Path, dest: Path) -> None:
    """The archive (or folder) without its fake wheel: what unpack can install."""

    def edit(doc: dict[str, Any]) -> None:
        doc.pop("wheels", None)

    if path.is_dir():
        shutil.copytree(path, dest)
        meta = json.loads((dest / fmt.METADATA_NAME).read_text())
        edit(meta)
        (dest / fmt.METADATA_NAME).write_text(json.dumps(meta))
        return
    # drop the wheel's header frame and segment: cut after the last package, add an end
    metadata, source = open_local_segments(path, path.name)
    source.close()
    stripped = replace_metadata(path, edit, dest)
    data = stripped.read_bytes()
    last = package_refs(metadata.packages[-1])[1]
    cut = data.index(_TRUTH_CACHE[last.member]) + last.segment.zst_size
    pad = -last.segment.size % 512
    dest.write_bytes(data[:cut] + zstandard.ZstdCompressor().compress(bytes(pad + 1024)))


_TRUTH_CACHE: dict[str, bytes] = {}


@pytest.fixture(autouse=True)
def _truth(built: Built) -> None:
    _TRUTH_CACHE.update(built.truth)


def test_a_folder_stream_places_its_offsets_again(built: Built) -> None:
    with open_directory(built.folder) as stream:
        reader = ArchiveReader(stream, "folder")
        for _, _, payload in reader.packages():
            payload.close()
        for _, wheel in reader.wheels():
            wheel.close()
    assert reader.metadata.format_version == 2
    stored = json.loads((built.folder / fmt.METADATA_NAME).read_bytes())
    assert stored == json.loads(built.metadata.to_json())


def test_a_folder_member_behind_a_symlink_is_refused(built: Built, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    shutil.copytree(built.folder, folder)
    beta = wanted_of(built.metadata, "beta")[0]
    stored = folder / f"{beta.member}.zst"
    elsewhere = tmp_path / "elsewhere.zst"
    stored.rename(elsewhere)
    stored.symlink_to(elsewhere)
    _, source = open_local_segments(folder, "folder")
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        read_all(source, [beta])


def test_a_pixi_pack_archive_is_refused_it_has_no_segments(tmp_path: Path, pipe: Any) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("pixi-pack.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    archive = tmp_path / "pixi.tar"
    archive.write_bytes(buf.getvalue())
    folder = tmp_path / "pixi-folder"
    folder.mkdir()
    (folder / "pixi-pack.json").write_text("{}")
    for source in (archive, pipe(buf.getvalue()), folder):
        with pytest.raises(ArchiveError, match="pixi-pack archive: it holds whole package files"):
            open_local_segments(source, "pixi")


def test_an_archive_of_a_newer_format_is_refused_asking_to_upgrade(
    built: Built, tmp_path: Path
) -> None:
    def newer(doc: dict[str, Any]) -> None:
        doc["format_version"] = 3

    future = replace_metadata(built.v2, newer, tmp_path / "future.tar")
    with pytest.raises(ArchiveError, match=r"future\.tar: .*format version 3") as info:
        open_local_segments(future, str(future))
    assert "versions 1 and 2" in info.value.message
    assert info.value.hint is not None and "Upgrade portpack" in info.value.hint
