"""Hostile archives: nothing may be written outside the target, and nothing half-made stays."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

import portpack
from hostile import Member, RawPackage, make_archive, replace_metadata
from portpack.errors import PackageError, PortpackError, UnsafeArchiveError
from portpack.progress import RecordingReporter


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def unpack_refused(
    tmp_path: Path,
    packages: list[RawPackage],
    match: str,
    error: type[PortpackError] = UnsafeArchiveError,
    **kwargs: object,
) -> None:
    """Unpacking must fail with ``error``, leave the target empty and touch nothing else."""
    archive = make_archive(tmp_path / "build", packages)
    target = tmp_path / "target"
    target.mkdir()
    outside_before = listing(tmp_path)
    with pytest.raises(error, match=match):
        portpack.unpack(archive, target, **kwargs)  # type: ignore[arg-type]
    assert listing(target) == []
    assert listing(tmp_path) == outside_before


OK = Member("share/ok.txt", b"fine\n")


@pytest.mark.parametrize(
    "name",
    [
        "../escape.txt",
        "share/../../escape.txt",
        "/tmp/abs.txt",
        "./../escape.txt",
        "share//x/../../../e",
    ],
)
def test_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    pkg = RawPackage("evil", [OK, Member(name, b"pwned")])
    unpack_refused(tmp_path, [pkg], "unsafe path")


def test_file_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pkg = RawPackage(
        "evil",
        [
            Member("lib/sneaky", type=tarfile.SYMTYPE, linkname=str(outside)),
            Member("lib/sneaky/pwned.txt", b"pwned"),
        ],
    )
    unpack_refused(tmp_path, [pkg], "through symlink")
    assert list(outside.iterdir()) == []


def test_directory_where_an_earlier_package_has_a_symlink_stays_inside(tmp_path: Path) -> None:
    """A later package's directory clobbers an earlier package's symlink (rattler's rule):
    the symlink moves to ``__clobbers__`` and the file is written inside the prefix,
    never through the link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    first = RawPackage("aaa", [Member("etc/conf", type=tarfile.SYMTYPE, linkname=str(outside))])
    second = RawPackage("bbb", [Member("etc/conf/passwd", b"root::0:0::/:/bin/sh\n")])
    archive = make_archive(tmp_path / "build", [first, second])
    reporter = RecordingReporter()
    prefix = portpack.unpack(archive, tmp_path / "target", reporter=reporter).prefix
    assert list(outside.iterdir()) == []
    assert not (prefix / "etc/conf").is_symlink()
    assert (prefix / "etc/conf/passwd").read_bytes() == b"root::0:0::/:/bin/sh\n"
    assert os.readlink(prefix / "__clobbers__/aaa/etc/conf") == str(outside)
    assert any("aaa" in w and "bbb" in w and "etc/conf" in w for w in reporter.warnings)


def test_hardlink_to_outside_is_refused(tmp_path: Path) -> None:
    pkg = RawPackage(
        "evil", [OK, Member("bin/pw", type=tarfile.LNKTYPE, linkname="../../../etc/passwd")]
    )
    unpack_refused(tmp_path, [pkg], "unsafe path")


def test_hardlink_to_unknown_member_is_refused(tmp_path: Path) -> None:
    pkg = RawPackage("evil", [OK, Member("bin/pw", type=tarfile.LNKTYPE, linkname="etc/shadow")])
    unpack_refused(tmp_path, [pkg], "hard link to unknown member")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices_and_fifos_are_refused(tmp_path: Path, kind: bytes) -> None:
    pkg = RawPackage("evil", [OK, Member("dev/thing", type=kind)])
    unpack_refused(tmp_path, [pkg], "device, FIFO")


@pytest.mark.parametrize("mode", [0o4755, 0o2755])
def test_setuid_and_setgid_are_refused(tmp_path: Path, mode: int) -> None:
    pkg = RawPackage("evil", [Member("bin/su", b"\x7fELF", mode=mode)])
    unpack_refused(tmp_path, [pkg], "setuid/setgid")


def test_paths_json_directory_escaping_is_refused(tmp_path: Path) -> None:
    pkg = RawPackage(
        "evil",
        [OK],
        paths=[
            {"_path": "share/ok.txt", "path_type": "hardlink", "size_in_bytes": 5},
            {"_path": "../../made-by-paths-json", "path_type": "directory"},
        ],
    )
    unpack_refused(tmp_path, [pkg], "unsafe path")


@pytest.mark.parametrize(
    "spec", ["../../evil = os:system", "a/b = os:system", ".hidden = os:system", "x = os:system;rm"]
)
def test_bad_entry_point_names_are_refused(tmp_path: Path, spec: str) -> None:
    python = RawPackage(
        "python",
        [Member("bin/python3.11", b"#!/bin/sh\n", mode=0o755)],
        index={"version": "3.11.7", "subdir": "linux-64"},
    )
    pkg = RawPackage(
        "evil",
        [Member("site-packages/evil/__init__.py", b"")],
        index={"noarch": "python"},
        link={"noarch": {"type": "python", "entry_points": [spec]}, "package_metadata_version": 1},
    )
    unpack_refused(tmp_path, [python, pkg], "invalid entry point", error=PackageError)


def test_symlink_out_of_the_prefix_warns_or_is_refused_with_strict(tmp_path: Path) -> None:
    pkg = RawPackage(
        "links", [OK, Member("share/up", type=tarfile.SYMTYPE, linkname="../../../outside")]
    )
    archive = make_archive(tmp_path / "build", [pkg])
    reporter = RecordingReporter()
    result = portpack.unpack(archive, tmp_path / "lenient", reporter=reporter)
    assert os.readlink(result.prefix / "share/up") == "../../../outside"
    assert any("points outside the environment" in w for w in reporter.warnings)
    unpack_refused(tmp_path, [pkg], "points outside the environment", strict=True)


def test_metadata_naming_a_path_as_package_stem_is_refused(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "build", [RawPackage("fine", [OK])])

    def evil(doc: dict[str, Any]) -> None:
        doc["packages"][0]["stem"] = "../../x-1.0"

    bad = replace_metadata(archive, evil, tmp_path / "bad.tar")
    with pytest.raises(portpack.ArchiveError, match="invalid package stem"):
        portpack.unpack(bad, tmp_path / "t")
    assert not (tmp_path / "t" / "env").exists()
