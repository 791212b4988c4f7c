"""Tests of portpack.conda.info: reading info/ tars (paths.json and the legacy layout)."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

from portpack.conda.info import LEGACY_PLACEHOLDER, PathEntry, read_info
from portpack.errors import PackageError, PortpackError

INDEX = {"name": "foo", "version": "1.0", "build": "h0_0", "build_number": 0, "depends": []}
WHAT = "foo-1.0-h0_0"


def _info_tar(
    files: dict[str, bytes | str | dict[str, Any]], symlinks: tuple[str, ...] = ()
) -> bytes:
    """An info/ tar holding ``files`` (dicts become JSON, str become UTF-8)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, content in files.items():
            if isinstance(content, dict):
                content = json.dumps(content)
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name in symlinks:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "index.json"
            tf.addfile(info)
    return buf.getvalue()


def _paths_json(*paths: dict[str, Any]) -> dict[str, Any]:
    return {"paths": list(paths), "paths_version": 1}


# --- paths.json ------------------------------------------------------------------------------


def test_paths_json_entries() -> None:
    tar = _info_tar(
        {
            "info/index.json": INDEX,
            "info/paths.json": _paths_json(
                {
                    "_path": "bin/foo",
                    "path_type": "hardlink",
                    "sha256": "ab" * 32,
                    "size_in_bytes": 10,
                },
                {"_path": "lib/libfoo.so", "path_type": "softlink", "size_in_bytes": 3},
                {"_path": "share/empty", "path_type": "directory"},
                {
                    "_path": "etc/foo.conf",
                    "path_type": "hardlink",
                    "size_in_bytes": 20,
                    "prefix_placeholder": "/opt/ph_text",
                    "file_mode": "text",
                },
                {
                    "_path": "lib/libbar.so.1",
                    "path_type": "hardlink",
                    "size_in_bytes": 300,
                    "prefix_placeholder": "/opt/ph_binary",
                    "file_mode": "binary",
                },
                {"_path": "share/nolink.txt", "size_in_bytes": 1, "no_link": True},
            ),
        }
    )
    info = read_info(tar, WHAT)
    assert info.index == INDEX
    assert not info.legacy
    assert info.entry_points == []
    assert info.noarch is None
    assert info.paths == [
        PathEntry("bin/foo", "hardlink", sha256="ab" * 32, size=10),
        PathEntry("lib/libfoo.so", "softlink", size=3),
        PathEntry("share/empty", "directory"),
        PathEntry(
            "etc/foo.conf", "hardlink", size=20, placeholder="/opt/ph_text", file_mode="text"
        ),
        PathEntry(
            "lib/libbar.so.1",
            "hardlink",
            size=300,
            placeholder="/opt/ph_binary",
            file_mode="binary",
        ),
        PathEntry("share/nolink.txt", "hardlink", size=1, no_link=True),
    ]
    assert info.installed_size == 10 + 3 + 20 + 300 + 1


def test_paths_json_placeholder_without_file_mode_is_text() -> None:
    tar = _info_tar(
        {
            "info/index.json": INDEX,
            "info/paths.json": _paths_json({"_path": "bin/x", "prefix_placeholder": "/opt/p"}),
        }
    )
    [entry] = read_info(tar, WHAT).paths
    assert (entry.path_type, entry.placeholder, entry.file_mode) == ("hardlink", "/opt/p", "text")


def test_paths_json_wins_over_legacy_files() -> None:
    tar = _info_tar(
        {
            "info/files": "old/path\n",
            "info/index.json": INDEX,
            "info/paths.json": _paths_json({"_path": "new/path"}),
        }
    )
    info = read_info(tar, WHAT)
    assert [p.path for p in info.paths] == ["new/path"]
    assert not info.legacy


def test_dot_slash_member_names_are_accepted() -> None:
    tar = _info_tar({"./info/index.json": INDEX, "./info/paths.json": _paths_json({"_path": "a"})})
    assert [p.path for p in read_info(tar, WHAT).paths] == ["a"]


def test_other_info_files_and_symlinks_are_ignored() -> None:
    tar = _info_tar(
        {
            "info/index.json": INDEX,
            "info/paths.json": _paths_json({"_path": "a"}),
            "info/about.json": b"not even json",
            "info/recipe/meta.yaml": b"{{ jinja }}",
            "info/test/paths.json": b"{broken",
        },
        symlinks=("info/link.json",),  # not a regular file: not read
    )
    info = read_info(tar, WHAT)
    assert [p.path for p in info.paths] == ["a"]
    assert info.entry_points == []


def test_link_json_entry_points_and_noarch() -> None:
    index = {**INDEX, "noarch": "python", "subdir": "noarch"}
    link = {
        "noarch": {"type": "python", "entry_points": ["foo = foo.cli:main", "foo-x = foo:x"]},
        "package_metadata_version": 1,
    }
    tar = _info_tar(
        {
            "info/index.json": index,
            "info/link.json": link,
            "info/paths.json": _paths_json({"_path": "site-packages/foo/__init__.py"}),
        }
    )
    info = read_info(tar, WHAT)
    assert info.entry_points == ["foo = foo.cli:main", "foo-x = foo:x"]
    assert info.noarch == "python"


def test_link_json_without_entry_points() -> None:
    tar = _info_tar(
        {
            "info/index.json": {**INDEX, "noarch": "generic"},
            "info/link.json": {"noarch": {"type": "generic"}},
            "info/paths.json": _paths_json(),
        }
    )
    info = read_info(tar, WHAT)
    assert info.entry_points == []
    assert info.noarch == "generic"
    assert info.paths == []
    assert info.installed_size == 0


# --- legacy layout ---------------------------------------------------------------------------


def test_legacy_files_has_prefix_and_no_link() -> None:
    has_prefix = (
        "/opt/build_env_placeholder text etc/foo.conf\n"
        "/opt/build_env_placeholder binary lib/libfoo.so\n"
        '"/opt/with space/placeholder" text share/quoted.txt\n'
        "bin/bare-script\n"
        "\n"
    )
    tar = _info_tar(
        {
            "info/index.json": INDEX,
            "info/files": "bin/bare-script\netc/foo.conf\nlib/libfoo.so\n"
            "share/quoted.txt\nshare/plain.txt\n\n",
            "info/has_prefix": has_prefix,
            "info/no_link": "share/plain.txt\n",
        }
    )
    info = read_info(tar, WHAT)
    assert info.legacy
    assert info.paths == [
        PathEntry("bin/bare-script", placeholder=LEGACY_PLACEHOLDER, file_mode="text"),
        PathEntry("etc/foo.conf", placeholder="/opt/build_env_placeholder", file_mode="text"),
        PathEntry("lib/libfoo.so", placeholder="/opt/build_env_placeholder", file_mode="binary"),
        PathEntry("share/quoted.txt", placeholder="/opt/with space/placeholder", file_mode="text"),
        PathEntry("share/plain.txt", no_link=True),
    ]
    assert LEGACY_PLACEHOLDER == "/opt/anaconda1anaconda2anaconda3"
    assert all(p.path_type == "hardlink" for p in info.paths)


def test_legacy_no_softlink_counts_as_no_link() -> None:
    tar = _info_tar(
        {
            "info/index.json": INDEX,
            "info/files": "a\nb\n",
            "info/no_softlink": "b\n",
        }
    )
    assert [(p.path, p.no_link) for p in read_info(tar, WHAT).paths] == [
        ("a", False),
        ("b", True),
    ]


def test_legacy_without_has_prefix() -> None:
    tar = _info_tar({"info/index.json": INDEX, "info/files": "bin/a\r\nlib/b\r\n"})
    info = read_info(tar, WHAT)
    assert info.paths == [PathEntry("bin/a"), PathEntry("lib/b")]
    assert info.legacy


@pytest.mark.parametrize(
    "line", ["/opt/p weird bin/x", "/opt/p text", "a b c d", '"unterminated text bin/x']
)
def test_unparseable_has_prefix_line_names_the_package(line: str) -> None:
    tar = _info_tar(
        {"info/index.json": INDEX, "info/files": "bin/x\n", "info/has_prefix": line + "\n"}
    )
    with pytest.raises(PackageError) as info:
        read_info(tar, WHAT)
    assert WHAT in str(info.value)


# --- errors ----------------------------------------------------------------------------------


def test_missing_index_json() -> None:
    tar = _info_tar({"info/paths.json": _paths_json()})
    with pytest.raises(PackageError, match=f"package {WHAT} has no info/index.json"):
        read_info(tar, WHAT)


@pytest.mark.parametrize("index", [b"[]", b'"foo"', b"null"])
def test_index_json_that_is_not_an_object(index: bytes) -> None:
    tar = _info_tar({"info/index.json": index, "info/paths.json": _paths_json()})
    with pytest.raises(PackageError) as info:
        read_info(tar, WHAT)
    assert WHAT in str(info.value)
    assert "info/index.json" in str(info.value)


def test_neither_paths_json_nor_files() -> None:
    tar = _info_tar({"info/index.json": INDEX})
    with pytest.raises(PackageError, match=f"package {WHAT} has neither info/paths.json"):
        read_info(tar, WHAT)


@pytest.mark.parametrize("name", ["info/index.json", "info/paths.json", "info/link.json"])
def test_malformed_json_names_package_and_file(name: str) -> None:
    files: dict[str, bytes | str | dict[str, Any]] = {
        "info/index.json": INDEX,
        "info/paths.json": _paths_json(),
        "info/link.json": {"noarch": {"type": "python"}},
    }
    files[name] = b'{"paths": ['
    with pytest.raises(PackageError) as info:
        read_info(_info_tar(files), WHAT)
    assert WHAT in str(info.value)
    assert name in str(info.value)
    assert "not valid JSON" in str(info.value)


@pytest.mark.parametrize(
    "doc",
    [
        {"paths_version": 1},  # no "paths"
        {"paths": [{"path_type": "hardlink"}]},  # no "_path"
        {"paths": ["bin/x"]},  # entries are not objects
        {"paths": 3},
    ],
)
def test_malformed_paths_json_names_package(doc: dict[str, Any]) -> None:
    tar = _info_tar({"info/index.json": INDEX, "info/paths.json": doc})
    with pytest.raises(PackageError, match=f"package {WHAT}: info/paths.json is malformed"):
        read_info(tar, WHAT)


def test_paths_json_that_is_not_an_object() -> None:
    tar = _info_tar({"info/index.json": INDEX, "info/paths.json": b"[1, 2]"})
    with pytest.raises(PackageError, match=f"package {WHAT}: info/paths.json is not a JSON object"):
        read_info(tar, WHAT)


def test_truncated_info_tar_is_an_error() -> None:
    tar = _info_tar({"info/index.json": INDEX, "info/paths.json": _paths_json()})
    with pytest.raises(PortpackError) as info:
        read_info(tar[:700], WHAT)
    assert WHAT in str(info.value)
