"""Packing with a warm package cache: the per-package analysis cache and the copy paths.

A second ``pack`` with the same cache reuses each package's analysis (the payload is
not decoded again), and the payload bytes go into the archive with
``copy_file_range`` (a file), ``sendfile`` (a pipe) or plain writes (a Python
stream). None of that may change a byte of the archive, and a cache entry that does
not fit the package file any more is ignored.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import portpack
from portpack.errors import ArchiveError

SPECS = ["hello-c", "oldformat", "actpkg"]  # oldformat is a .tar.bz2: converted, then cached


@pytest.fixture(scope="module")
def lock(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lock")
    return portpack.lock(
        SPECS, channels=[str(fixture_channel)], platforms=["linux-64"], output=work / "pp.lock"
    )


def _pack(lock: Path, out: Path, cache: Path) -> bytes:
    portpack.pack(lockfile=lock, output=out, cache_dir=cache)
    return out.read_bytes()


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "analysis").glob("*.json"))


def test_second_pack_reuses_the_analysis_and_is_identical(lock: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _pack(lock, tmp_path / "a.tar", cache)
    assert len(_entries(cache)) == len(SPECS)
    stamps = [p.stat().st_mtime_ns for p in _entries(cache)]
    assert _pack(lock, tmp_path / "b.tar", cache) == first
    assert [p.stat().st_mtime_ns for p in _entries(cache)] == stamps  # read, not rewritten


def test_a_lying_cache_entry_is_caught_at_unpack(lock: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _pack(lock, tmp_path / "a.tar", cache)
    for entry in _entries(cache):
        doc = json.loads(entry.read_text())
        doc["payload_segment"]["zst_sha256"] = "0" * 64
        entry.write_text(json.dumps(doc))
    _pack(lock, tmp_path / "b.tar", cache)
    with pytest.raises(ArchiveError, match="does not match the digest"):
        portpack.unpack(tmp_path / "b.tar", tmp_path / "out")
    assert not (tmp_path / "out" / "env").exists()


def test_entries_that_no_longer_fit_are_ignored(lock: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _pack(lock, tmp_path / "a.tar", cache)
    entries = _entries(cache)
    # One entry is garbage; the others describe a file that has since been touched.
    entries[0].write_text("{not json")
    for entry in entries[1:]:
        doc = json.loads(entry.read_text())
        doc["payload_segment"]["zst_sha256"] = "0" * 64
        entry.write_text(json.dumps(doc))
    touched = 0
    for package in cache.rglob("*"):
        if package.is_file() and package.name.endswith((".conda", ".tar.bz2")):
            stat = package.stat()
            os.utime(package, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
            touched += 1
    assert touched >= len(SPECS)
    assert _pack(lock, tmp_path / "b.tar", cache) == first


def test_unwritable_analysis_cache_still_packs(lock: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _pack(lock, tmp_path / "a.tar", cache)
    for entry in _entries(cache):
        entry.unlink()
    (cache / "analysis").rmdir()
    (cache / "analysis").write_text("a file where the analysis directory should be\n")
    assert _pack(lock, tmp_path / "b.tar", cache) == first
    assert _pack(lock, tmp_path / "c.tar", cache) == first


def test_file_pipe_and_python_stream_get_the_same_bytes(lock: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    to_file = _pack(lock, tmp_path / "a.tar", cache)
    stream = io.BytesIO()
    portpack.pack(lockfile=lock, output=stream, cache_dir=cache)
    command = [sys.executable, "-m", "portpack", "pack", "-l", str(lock), "-o", "-"]
    piped = subprocess.run(
        [*command, "--cache-dir", str(cache)], capture_output=True, check=True
    ).stdout
    assert stream.getvalue() == to_file
    assert piped == to_file


def test_appending_to_an_open_file_keeps_what_was_there(lock: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    plain = _pack(lock, tmp_path / "a.tar", cache)
    target = tmp_path / "b.bin"
    with open(target, "wb") as fh:
        fh.write(b"HEADER")
        portpack.pack(lockfile=lock, output=fh, cache_dir=cache)
        assert fh.tell() == len(b"HEADER") + len(plain)
        fh.write(b"TRAILER")
    assert target.read_bytes() == b"HEADER" + plain + b"TRAILER"
