"""The stat index (``conda-meta/.portpack-stat``): ``unpack --update`` reads only the
files of reused packages whose stat changed since the last unpack, still finds every
local change, and reads every file when the index is missing or cannot be trusted."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from update_support import archive, build_channel, fresh, snapshot

import portpack
from portpack.errors import LocalChangesError
from portpack.install import stat_index
from portpack.install.verify import verify
from treesnap import diff

COMMON = ["python==3.12.1", "base", "cl-a", "keepnoarch", "gone", "cl-b==1.0", "npy==1.0"]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("stat-index")
    channel = build_channel(work / "channel")
    sets = {"v1": [*COMMON, "small==1.0"], "v2": [*COMMON, "small==1.1"]}
    return {name: archive(channel, specs, work, name) for name, specs in sets.items()}


def kept_files(env: Path, changed: str = "small") -> list[str]:
    """Regular files of the packages an update from v1 to v2 keeps (all but ``changed``)."""
    out = []
    for record in (env / "conda-meta").glob("*.json"):
        doc = json.loads(record.read_text())
        if doc["name"] != changed:
            paths = doc["paths_data"]["paths"]
            out += [
                p["_path"] for p in paths if p.get("path_type") not in ("directory", "softlink")
            ]
    return sorted(out)


def index_rows(env: Path) -> tuple[dict[str, list[int]], int]:
    """The index's entries by path, and its own mtime."""
    path = env / stat_index.INDEX_NAME
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[0]) == {"portpack_stat_index": 1, "dev": os.lstat(env).st_dev}
    rows = {row[0]: row[1:] for line in lines[1:] for row in json.loads(line)}
    return rows, path.stat().st_mtime_ns


def to_hash(env: Path, files: list[str]) -> int:
    """How many of ``files`` the check must read: not as the index recorded them, or
    racy (changed in the tick the index was written)."""
    rows, written = index_rows(env)
    count = 0
    for rel in files:
        now = stat_row(env / rel)
        count += rows.get(rel) != now or now[3] >= written
    return count


def unpacked_v1(archives: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    """v1 unpacked into ``tmp_path/app``: the output directory and the environment."""
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    return out, out / "env"


def stat_row(path: Path) -> list[int]:
    """What the index records of ``path`` as it is now."""
    st = os.lstat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def rewrite_index_a_tick_later(env: Path) -> None:
    """Write the index again once the clock has moved on, so that no entry is racy."""
    rows, _ = index_rows(env)
    time.sleep(0.05)  # file times move in clock ticks (a few ms); no timing is asserted
    stat_index.write(env, sorted(rows))


def test_every_unpack_records_the_stat_of_what_it_installed(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    _, env = unpacked_v1(archives, tmp_path)
    rows, _ = index_rows(env)
    installed = {
        p["_path"]
        for record in (env / "conda-meta").glob("*.json")
        for p in json.loads(record.read_text())["paths_data"]["paths"]
        if p.get("path_type") != "directory"
    }
    assert set(rows) == installed
    for rel, row in rows.items():
        assert row == stat_row(env / rel), rel
    report = verify(env)  # the index is not a file of the environment's
    assert report.ok


def test_an_update_reads_only_files_whose_stat_changed(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out, env = unpacked_v1(archives, tmp_path)
    kept = kept_files(env)
    rewrite_index_a_tick_later(env)
    touched = "share/base/plain.txt"
    (env / touched).write_bytes((env / touched).read_bytes())  # same bytes, new times
    result = portpack.unpack(archives["v2"], out, update=True)
    assert touched in kept and result.hashed_files == 1  # only it was read
    assert result.installed == ["small-1.1-0"]
    assert diff(snapshot(out), fresh(archives["v2"], out)) == []
    # The update wrote the index after removing the old environment (which changes
    # the ctime of every file it shared), so it describes the files as they are now.
    rows, _ = index_rows(env)
    for rel in kept:
        assert rows[rel] == stat_row(env / rel), rel
    racy = to_hash(env, kept)  # those the update's last moments touched
    back = portpack.unpack(archives["v1"], out, update=True)
    assert back.hashed_files == racy


def test_an_edit_that_restores_size_and_mtime_is_still_found(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out, env = unpacked_v1(archives, tmp_path)
    rewrite_index_a_tick_later(env)
    edited = env / "share/base/plain.txt"
    st = edited.stat()
    edited.write_bytes(b"X" * st.st_size)
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the ctime tells
    with pytest.raises(LocalChangesError) as caught:
        portpack.unpack(archives["v2"], out, update=True)
    assert caught.value.modified == ["share/base/plain.txt: content differs (sha256)"]


def _missing(index: Path) -> None:
    index.unlink()


def _garbage(index: Path) -> None:
    index.write_bytes(b"\x00not json\n[1, 2]\n")


def _other_version(index: Path) -> None:
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(lines[0].replace(b": 1,", b": 99,") + b"".join(lines[1:]))


def _other_device(index: Path) -> None:
    lines = index.read_bytes().splitlines(keepends=True)
    head = json.loads(lines[0])
    head["dev"] += 1
    index.write_bytes(json.dumps(head).encode() + b"\n" + b"".join(lines[1:]))


def _bad_entry(index: Path) -> None:
    with open(index, "ab") as fh:
        fh.write(b'[["share/x", "1", 2, 3, 4]]\n')


def _symlink(index: Path) -> None:
    # A planted symlink to an index that would trust everything is not followed.
    elsewhere = index.parent.parent.parent.parent / "planted-index"
    os.rename(index, elsewhere)
    index.symlink_to(elsewhere)


@pytest.mark.parametrize(
    "damage", [_missing, _garbage, _other_version, _other_device, _bad_entry, _symlink]
)
def test_without_a_usable_index_every_file_is_read(
    archives: dict[str, Path], tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    out, env = unpacked_v1(archives, tmp_path)
    rewrite_index_a_tick_later(env)
    damage(env / stat_index.INDEX_NAME)
    result = portpack.unpack(archives["v2"], out, update=True)
    assert result.hashed_files == len(kept_files(env))
    assert diff(snapshot(out), fresh(archives["v2"], out)) == []
