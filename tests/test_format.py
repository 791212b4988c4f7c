"""Tests of portpack.archive.format: the archive metadata model and its JSON form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portpack.archive import format as fmt
from portpack.conda.record import PackageRecord
from portpack.errors import ArchiveError, UnsafeArchiveError


def _metadata(**overrides: Any) -> fmt.Metadata:
    record = {
        "name": "zlib",
        "version": "1.3.1",
        "build": "hb9d3cd8_2",
        "fn": "zlib-1.3.1-hb9d3cd8_2.conda",
        "url": "https://conda.anaconda.org/conda-forge/linux-64/zlib-1.3.1-hb9d3cd8_2.conda",
        "channel": "https://conda.anaconda.org/conda-forge/",
        "depends": ["__glibc >=2.17,<3.0.a0", "libzlib 1.3.1 hb9d3cd8_2"],
        "sha256": "0" * 64,
        "size": 12345,
    }
    fields: dict[str, Any] = {
        "platform": "linux-64",
        "portpack_version": "0.1.0",
        "packages": [
            fmt.PackageEntry(
                stem="zlib-1.3.1-hb9d3cd8_2",
                record=PackageRecord.from_json(record, "test"),
                info=fmt.Segment(size=10240, zst_size=900, zst_sha256="a" * 64),
                payload=fmt.Segment(size=204800, zst_size=50000, zst_sha256="b" * 64),
                installed_size=190000,
            ),
            fmt.PackageEntry(
                stem="python-3.12.4-h0_cpython",
                record=PackageRecord.from_json(
                    {"name": "python", "version": "3.12.4", "build": "h0_cpython"}, "test"
                ),
                info=fmt.Segment(size=512, zst_size=20, zst_sha256="c" * 64),
                payload=fmt.Segment(size=0, zst_size=0, zst_sha256="d" * 64),
                installed_size=0,
            ),
        ],
        "installed_size": 190000,
        "min_binary_placeholder": fmt.Placeholder(
            length=255, package="zlib-1.3.1-hb9d3cd8_2", path="lib/libz.so.1.3.1"
        ),
        "virtual_requirements": [
            fmt.VirtualRequirement("zlib-1.3.1-hb9d3cd8_2", "__glibc >=2.17,<3.0.a0")
        ],
    }
    fields.update(overrides)
    meta = fmt.Metadata(**fields)
    # Header frames of 90 bytes in front of each segment, as the writer places them.
    return fmt.with_offsets(meta, [90] * (2 * len(meta.packages) + len(meta.wheels)))


def test_round_trip_is_exact() -> None:
    meta = _metadata()
    data = meta.to_json()
    again = fmt.Metadata.from_json(data)
    assert again == meta
    assert again.to_json() == data
    assert again.packages[0].name == "zlib"
    assert again.packages[0].dist == "zlib-1.3.1-hb9d3cd8_2"


def test_round_trip_without_optional_fields() -> None:
    meta = _metadata(min_binary_placeholder=None, virtual_requirements=[], packages=[])
    assert fmt.Metadata.from_json(meta.to_json()) == meta


def test_to_json_is_deterministic_with_sorted_keys() -> None:
    data = _metadata().to_json()
    assert data == _metadata().to_json()
    assert data.endswith(b"\n")
    raw = json.loads(data)
    assert list(raw) == sorted(raw)
    assert raw["format"] == "portpack"
    assert raw["format_version"] == fmt.FORMAT_VERSION
    for key in ("packages", "installed_size", "platform", "portpack_version"):
        assert key in raw
    package = raw["packages"][0]
    assert list(package) == sorted(package)
    assert list(package["record"]) == sorted(package["record"])


def test_to_json_ignores_record_insertion_order() -> None:
    meta = _metadata()
    entry = meta.packages[0]
    shuffled = fmt.PackageEntry(
        stem=entry.stem,
        record=PackageRecord.from_json(
            dict(reversed(list(entry.record.to_json().items()))), "test"
        ),
        info=entry.info,
        payload=entry.payload,
        installed_size=entry.installed_size,
    )
    assert _metadata(packages=[shuffled, meta.packages[1]]).to_json() == meta.to_json()


def _raw(**changes: Any) -> bytes:
    raw = json.loads(_metadata().to_json())
    raw.update(changes)
    return json.dumps(raw).encode()


@pytest.mark.parametrize("version", [3, 99, 1 << 70])
def test_newer_format_version_is_refused(version: int) -> None:
    with pytest.raises(ArchiveError) as info:
        fmt.Metadata.from_json(_raw(format_version=version))
    message = info.value.message
    assert f"format version {version}," in message
    assert "versions 1 and 2" in message
    assert "packed by a newer portpack" in message
    assert info.value.hint is not None and "Upgrade portpack" in info.value.hint


def test_offsets_follow_the_segments_and_their_header_frames() -> None:
    meta = _metadata()
    zlib, python = meta.packages
    assert [zlib.info.offset, zlib.payload.offset] == [90, 90 + 900 + 90]
    assert python.info.offset == 90 + 900 + 90 + 50000 + 90
    assert json.loads(meta.to_json())["packages"][0]["payload"]["offset"] == 1080


def _version_1(raw: dict[str, Any]) -> dict[str, Any]:
    raw["format_version"] = 1
    for package in raw["packages"]:
        del package["info"]["offset"], package["payload"]["offset"]
    for wheel in raw.get("wheels", []):
        del wheel["offset"]
    return raw


def test_version_1_without_offsets_is_read_and_written_back_as_it_was() -> None:
    data = json.dumps(_version_1(json.loads(_metadata().to_json())), sort_keys=True, indent=1)
    meta = fmt.Metadata.from_json(data.encode())
    assert meta.format_version == 1
    assert all(seg.offset is None for _, seg in fmt.archive_segments(meta))
    assert meta.to_json() == data.encode() + b"\n"


def test_version_1_with_an_offset_is_refused() -> None:
    raw = _version_1(json.loads(_metadata().to_json()))
    raw["packages"][1]["payload"]["offset"] = 5
    with pytest.raises(ArchiveError, match=r"python-3\.12\.4-h0_cpython has a segment offset"):
        fmt.Metadata.from_json(json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("missing", None),
        ("negative", -1),
        ("a string", "90"),
        ("a float", 90.0),
        ("a bool", True),
        ("before the previous segment's end", 50),
        ("overlapping the previous segment", 989),
        ("a gap too large to hold only a header frame", 990 + fmt.MAX_SEGMENT_GAP + 1),
    ],
)
def test_bad_offsets_are_refused_naming_the_package(where: str, value: Any) -> None:
    raw = json.loads(_metadata().to_json())
    if value is None:
        del raw["packages"][0]["payload"]["offset"]
    else:
        raw["packages"][0]["payload"]["offset"] = value
    with pytest.raises(ArchiveError, match=r"zlib-1\.3\.1-hb9d3cd8_2") as info:
        fmt.Metadata.from_json(json.dumps(raw).encode())
    assert "offset" in info.value.message, where


def test_the_largest_allowed_gap_is_read() -> None:
    raw = json.loads(_metadata().to_json())
    shift = fmt.MAX_SEGMENT_GAP - 90
    raw["packages"][0]["payload"]["offset"] += shift
    raw["packages"][1]["info"]["offset"] += shift
    raw["packages"][1]["payload"]["offset"] += shift
    meta = fmt.Metadata.from_json(json.dumps(raw).encode())
    assert meta.packages[0].payload.offset == 90 + 900 + fmt.MAX_SEGMENT_GAP


def test_wheel_offsets_are_checked_naming_the_wheel() -> None:
    wheel = fmt.WheelEntry(
        "pp_demo-1.0-py3-none-any.whl", "pp-demo", "1.0", 10, "e" * 64, 7, "f" * 64, 10
    )
    meta = _metadata(wheels=[wheel])
    raw = json.loads(meta.to_json())
    assert raw["wheels"][0]["offset"] == meta.packages[1].payload.offset + 90
    assert fmt.Metadata.from_json(meta.to_json()) == meta
    raw["wheels"][0]["offset"] = 3
    with pytest.raises(ArchiveError, match=r"wheel pp_demo-1\.0-py3-none-any\.whl"):
        fmt.Metadata.from_json(json.dumps(raw).encode())


@pytest.mark.parametrize("version", [None, 0, -2, "1", "2", 2.0, True])
def test_other_format_versions_are_refused(version: Any) -> None:
    with pytest.raises(ArchiveError, match="not supported by this portpack"):
        fmt.Metadata.from_json(_raw(format_version=version))


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"not json", b"\xff\xfe\x00garbage", b'{"format": "portpack",'],
)
def test_garbage_json_is_an_archive_error(data: bytes) -> None:
    with pytest.raises(ArchiveError, match=r"portpack\.json is not valid JSON"):
        fmt.Metadata.from_json(data)


@pytest.mark.parametrize("data", [b"[]", b"3", b'"portpack"', b"null"])
def test_json_that_is_not_an_object_is_refused(data: bytes) -> None:
    with pytest.raises(ArchiveError, match="does not describe a portpack archive"):
        fmt.Metadata.from_json(data)


@pytest.mark.parametrize("name", ["conda-pack", "Portpack", None])
def test_wrong_format_name_is_refused(name: Any) -> None:
    with pytest.raises(ArchiveError, match="does not describe a portpack archive"):
        fmt.Metadata.from_json(_raw(format=name))


def test_missing_format_is_refused() -> None:
    raw = json.loads(_metadata().to_json())
    del raw["format"]
    with pytest.raises(ArchiveError, match="does not describe a portpack archive"):
        fmt.Metadata.from_json(json.dumps(raw).encode())


@pytest.mark.parametrize(
    "change",
    [
        {"packages": None},
        {"packages": [{"stem": "x"}]},
        {"platform": 64},
        {"installed_size": "lots"},
        {"min_binary_placeholder": {"length": 1}},
        {"virtual_requirements": [{"package": "x"}]},
    ],
)
def test_malformed_metadata_is_an_archive_error(change: dict[str, Any]) -> None:
    with pytest.raises(ArchiveError, match=r"portpack\.json is malformed"):
        fmt.Metadata.from_json(_raw(**change))


def test_missing_required_field_is_an_archive_error() -> None:
    raw = json.loads(_metadata().to_json())
    del raw["platform"]
    with pytest.raises(ArchiveError, match="malformed"):
        fmt.Metadata.from_json(json.dumps(raw).encode())


def test_unknown_segment_field_is_an_archive_error() -> None:
    raw = json.loads(_metadata().to_json())
    raw["packages"][0]["info"]["extra"] = 1
    with pytest.raises(ArchiveError, match="malformed"):
        fmt.Metadata.from_json(json.dumps(raw).encode())


def test_member_name() -> None:
    assert fmt.member_name("zlib-1.3.1-h0_2", fmt.INFO_MEMBER) == "pkgs/zlib-1.3.1-h0_2/info.tar"
    assert fmt.member_name("zlib-1.3.1-h0_2", fmt.PAYLOAD_MEMBER) == "pkgs/zlib-1.3.1-h0_2/pkg.tar"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"depends": "libzlib"}, ["package zlib", "'depends'", "not a list of strings"]),
        ({"build_number": "2"}, ["package zlib", "'build_number'", "an integer"]),
        ({"url": 7}, ["package zlib", "'url'", "a string"]),
        ({"noarch": "java"}, ["package zlib", "'noarch'"]),
    ],
)
def test_badly_typed_record_field_is_an_archive_error(
    change: dict[str, Any], words: list[str]
) -> None:
    """portpack.json's records are typed by PackageRecord.from_json, naming the field."""
    raw = json.loads(_metadata().to_json())
    raw["packages"][0]["record"].update(change)
    with pytest.raises(ArchiveError) as info:
        fmt.Metadata.from_json(json.dumps(raw).encode())
    assert info.value.message.startswith("portpack.json, the record of zlib-1.3.1-hb9d3cd8_2")
    for word in words:
        assert word in info.value.message


@pytest.mark.parametrize("field", ["name", "version", "build"])
def test_record_field_naming_a_file_is_unsafe(field: str) -> None:
    raw = json.loads(_metadata().to_json())
    raw["packages"][0]["record"][field] = "../x"
    with pytest.raises(UnsafeArchiveError, match=f"its '{field}' is '../x'"):
        fmt.Metadata.from_json(json.dumps(raw).encode())


def test_entries_carry_the_typed_record_and_keep_every_field() -> None:
    meta = fmt.Metadata.from_json(_metadata().to_json())
    record = meta.packages[0].record
    assert isinstance(record, PackageRecord)
    assert (record.name, record.size, record.depends[0]) == (
        "zlib",
        12345,
        "__glibc >=2.17,<3.0.a0",
    )
    assert meta.packages[0].dist == record.dist == "zlib-1.3.1-hb9d3cd8_2"
    # fields portpack does not type are kept, as written
    raw = json.loads(_metadata().to_json())
    raw["packages"][0]["record"]["license"] = "Zlib"
    again = fmt.Metadata.from_json(json.dumps(raw, sort_keys=True, indent=1).encode() + b"\n")
    assert again.packages[0].record.to_json()["license"] == "Zlib"
    assert json.loads(again.to_json()) == raw
