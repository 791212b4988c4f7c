"""Differential tests against rattler's installer, the engine behind pixi-unpack.

For the same lock, ``rattler.install`` and ``portpack unpack`` into the same path must
give the same files, bytes, permission bits and symlink targets.  Intended
differences (see docs/differences.md):

- rattler writes ``CACHEDIR.TAG`` into the prefix; portpack does not (a prefix is
  not a cache).
- ``conda-meta/history``: rattler leaves it empty; portpack writes conda's format.
- conda-meta records are compared by content: portpack has no package cache, so it
  records ``link.type`` 3 (copy) with no ``extracted_package_dir``.
- On clobbering, rattler leaves empty ``__clobbers__/<winner>/...`` directories behind
  (it moves the winner's file there and back); portpack creates only what it keeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import portpack
from support.channel import RATTLER_COMPATIBLE
from support.rattler_install import install_with_rattler
from treesnap import diff, snapshot, without_empty_clobber_dirs

INTENDED = ("CACHEDIR.TAG", "conda-meta")
#: paths_data fields that must agree between rattler's records and portpack's.
PATH_FIELDS = (
    "path_type",
    "sha256",
    "sha256_in_prefix",
    "size_in_bytes",
    "file_mode",
    "prefix_placeholder",
    "original_path",
)


def records_by_name(prefix: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in (prefix / "conda-meta").glob("*.json"):
        doc = json.loads(path.read_text())
        out[path.name] = doc
    return out


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    paths = {p["_path"]: {k: p.get(k) for k in PATH_FIELDS} for p in doc["paths_data"]["paths"]}
    top = {
        k: v
        for k, v in doc.items()
        if k not in ("paths_data", "files", "link", "extracted_package_dir")
    }
    return {"top": top, "files": sorted(doc["files"]), "paths": paths}


@pytest.fixture(scope="module")
def lock(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("diff")
    return portpack.lock(
        RATTLER_COMPATIBLE,
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=work / "pixi.lock",
    )


@pytest.fixture(scope="module")
def both(
    lock: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Install with rattler, snapshot, then unpack with portpack into the same path."""
    work = tmp_path_factory.mktemp("both")
    prefix = work / "target" / "env"
    install_with_rattler(lock, prefix)
    theirs = {
        "tree": without_empty_clobber_dirs(snapshot(prefix, skip=INTENDED)),
        "meta": records_by_name(prefix),
    }
    os.rename(prefix, work / "rattler-env")
    portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=work / "cache")
    portpack.unpack(work / "env.tar", prefix.parent, prefix.name)
    ours = {"tree": snapshot(prefix, skip=INTENDED), "meta": records_by_name(prefix)}
    return prefix, theirs, ours


def test_same_files_bytes_modes_and_symlinks(
    both: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    _, theirs, ours = both
    assert len(theirs["tree"]) > 500
    assert diff(theirs["tree"], ours["tree"]) == []


def test_clobbered_file_handled_like_rattler(
    both: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    prefix, theirs, _ = both
    assert "__clobbers__/clobber-b/share/clobber.txt" in theirs["tree"]
    assert (prefix / "__clobbers__/clobber-b/share/clobber.txt").is_file()


def test_conda_meta_records_match_by_content(
    both: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    _, theirs, ours = both
    assert sorted(theirs["meta"]) == sorted(ours["meta"])
    for name in theirs["meta"]:
        assert comparable(ours["meta"][name]) == comparable(theirs["meta"][name]), name


_REINSTALL = r"""
import asyncio, json, os, sys, rattler
lock, prefix, cache = sys.argv[1:4]
env = rattler.LockFile.from_path(lock).default_environment()
records = env.conda_repodata_records_for_platform(env.platforms()[0])
installed = [rattler.PrefixRecord.from_path(p)
             for p in sorted((os.path.join(prefix, "conda-meta", n)
                              for n in os.listdir(os.path.join(prefix, "conda-meta"))
                              if n.endswith(".json")))]
asyncio.run(rattler.install(records, prefix, cache_dir=cache, installed_packages=installed,
                            show_progress=False))
sys.stdout.flush()
os._exit(0)
"""


def inodes(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_ino, st.st_mtime_ns)
    return out


def test_rattler_finds_nothing_to_do(
    both: tuple[Path, dict[str, Any], dict[str, Any]], lock: Path, tmp_path: Path
) -> None:
    prefix, _, _ = both
    before = inodes(prefix)
    subprocess.run(
        [sys.executable, "-c", _REINSTALL, str(lock), str(prefix), str(tmp_path / "cache")],
        check=True,
        timeout=600,
    )
    after = inodes(prefix)
    changed = sorted(p for p in before if after.get(p) != before[p])
    assert changed == []
    assert sorted(after.keys() - before.keys()) in ([], ["CACHEDIR.TAG"])
