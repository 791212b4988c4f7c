"""A path that is a file in one package and a directory in another, against rattler.

The packages are rebuilt from conda/rattler's ``test-data/clobber`` recipes
(``recipe-with-dir.yaml``, ``recipe-file-and-dir.yaml``, ``recipe-file-and-dir-rev.yaml``):
the same names, versions and payloads, written with the test package writer.

rattler (py-rattler 0.28) installs each set; the package later in its install order
keeps the path and the other packages' files move to ``__clobbers__/<name>/<path>``
with ``original_path`` in their records. portpack must do the same, from both archive
formats. For ``clobber-fd-1..3`` rattler's records say so but its tree does not (it
leaves the winner's file under ``__clobbers__`` too, see docs/differences.md), so that
set is compared with rattler by records and checked by content.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import portpack
from support.channel import index_channel
from support.pkgwriter import PackageSpec, write_conda
from support.rattler_install import install_with_rattler
from treesnap import diff, snapshot

INTENDED = ("CACHEDIR.TAG", "conda-meta")

SETS: dict[str, dict[str, dict[str, str]]] = {
    "with-dir": {
        "clobber-with-dir": {"dir/clobber.txt": "clobber-1\n"},
        "clobber-without-dir": {"dir": "clobber-1\n"},
    },
    "fd": {
        "clobber-fd-1": {"clobber": "clobber-fd-1\n"},
        "clobber-fd-2": {"clobber/clobber-fd-2.txt": "clobber-fd-2\n"},
        "clobber-fd-3": {"clobber/clobber-fd-3.txt": "clobber-fd-3\n"},
    },
    "fd-rev": {
        "clobber-fd-rev-3": {"clobber": "clobber-fd-rev-3\n"},
        "clobber-fd-rev-2": {"clobber/clobber-fd-rev-2.txt": "clobber-fd-rev-2\n"},
        "clobber-fd-rev-1": {"clobber/clobber-fd-rev-1.txt": "clobber-fd-rev-1\n"},
    },
}


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fd-channel")
    (root / "linux-64").mkdir()
    (root / "noarch").mkdir()
    for packages in SETS.values():
        for name, files in packages.items():
            write_conda(root / "noarch", PackageSpec(name, "0.1.0", files=files))
    index_channel(root)
    return root


def records(prefix: Path) -> dict[str, list[tuple[str, Any]]]:
    out = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        doc = json.loads(path.read_text())
        paths = doc["paths_data"]["paths"]
        out[doc["name"]] = sorted((p["_path"], p.get("original_path")) for p in paths)
        assert sorted(doc["files"]) == sorted(p["_path"] for p in paths)
    return out


def install_both(channel: Path, names: list[str], work: Path, fmt: str) -> tuple[Path, Path]:
    lock = portpack.lock(
        names, channels=[str(channel)], platforms=["linux-64"], output=work / "pixi.lock"
    )
    theirs = work / "rattler" / "env"
    install_with_rattler(lock, theirs)
    archive = work / "env.tar"
    portpack.pack(lockfile=lock, output=archive, cache_dir=work / "cache", archive_format=fmt)
    result = portpack.unpack(archive, work / "out")
    return theirs, result.prefix


@pytest.mark.parametrize("fmt", ["portpack", "pixi-pack"])
@pytest.mark.parametrize("which", ["with-dir", "fd-rev"])
def test_file_and_directory_installed_like_rattler(
    channel: Path, tmp_path: Path, which: str, fmt: str
) -> None:
    theirs, ours = install_both(channel, list(SETS[which]), tmp_path, fmt)
    assert diff(snapshot(theirs, skip=INTENDED), snapshot(ours, skip=INTENDED)) == []
    assert records(ours) == records(theirs)
    assert any(original for paths in records(ours).values() for _, original in paths)


@pytest.mark.parametrize("fmt", ["portpack", "pixi-pack"])
def test_file_replacing_directories_keeps_the_later_package(
    channel: Path, tmp_path: Path, fmt: str
) -> None:
    theirs, ours = install_both(channel, list(SETS["fd"]), tmp_path, fmt)
    assert records(ours) == records(theirs)
    # What the records say is what is on disk: every recorded path is there, with
    # the content of the package that owns it.
    for name, paths in records(ours).items():
        for path, _ in paths:
            assert (ours / path).read_text() == SETS["fd"][name][
                path.split("/", 2)[2] if path.startswith("__clobbers__/") else path
            ]
    assert (ours / "clobber").read_text() == "clobber-fd-1\n"
