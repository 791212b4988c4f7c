"""Tests of the offline fixtures themselves (tests/support)."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path

import conda_package_handling.api as cph
import pytest
import rattler

from support import cache
from support.channel import (
    ALL_PACKAGES,
    NO_PYTHON,
    PY_VERSION,
    RATTLER_ALSO_INSTALLS,
    RATTLER_COMPATIBLE,
    RATTLER_REJECTS,
    TAR_BZ2_PACKAGES,
    find_package,
)
from support.pkgwriter import Entry, PackageSpec, write_conda, write_tar_bz2
from support.rattler_install import install_with_rattler, solve


def _run(*argv: str | Path) -> str:
    return subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _repodata_files(channel: Path) -> dict[str, str]:
    """Package name -> archive file name over all subdirs."""
    files = {}
    for subdir in ("linux-64", "noarch"):
        repodata = json.loads((channel / subdir / "repodata.json").read_text())
        for key in ("packages", "packages.conda"):
            files.update({rec["name"]: fn for fn, rec in repodata.get(key, {}).items()})
    return files


def test_repodata_lists_every_package(fixture_channel: Path) -> None:
    files = _repodata_files(fixture_channel)
    assert set(ALL_PACKAGES) <= files.keys()
    for name in ALL_PACKAGES:
        suffix = ".tar.bz2" if name in TAR_BZ2_PACKAGES else ".conda"
        assert files[name].endswith(suffix), name


@pytest.mark.parametrize("name", ALL_PACKAGES)
def test_package_metadata_matches_content(fixture_channel: Path, name: str, tmp_path: Path) -> None:
    """rattler parses every package; paths.json hashes, sizes and placeholders hold."""
    cph.extract(str(find_package(fixture_channel, name)), str(tmp_path))
    assert rattler.IndexJson.from_package_directory(tmp_path).name.normalized == name
    paths = rattler.PathsJson.from_package_directory_with_deprecated_fallback(tmp_path)
    assert paths.paths
    for entry in paths.paths:
        path = tmp_path / entry.relative_path
        if entry.path_type.directory:
            assert path.is_dir() and not path.is_symlink()
            continue
        if entry.path_type.softlink:
            assert path.is_symlink()
            continue
        if entry.sha256 is not None:  # legacy packages have none
            assert hashlib.sha256(path.read_bytes()).digest() == entry.sha256
            # py-rattler reports "size_in_bytes": 0 as None
            assert path.stat().st_size == (entry.size_in_bytes or 0)
        if entry.prefix_placeholder is not None:
            assert entry.prefix_placeholder.placeholder.encode() in path.read_bytes()


def test_solve_python_app(fixture_channel: Path) -> None:
    records = solve(fixture_channel, ["python", "greet", "hello-c"])
    assert {r.name.normalized for r in records} == {"python", "greet", "greetlib", "hello-c"}
    python = next(r for r in records if r.name.normalized == "python")
    assert str(python.version) == platform.python_version()
    assert str(python.build) == "h_portpack_0"


def test_solve_without_python(fixture_channel: Path) -> None:
    assert [r.name.normalized for r in solve(fixture_channel, NO_PYTHON)] == NO_PYTHON


def test_rattler_installs_compatible_set(fixture_channel: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    install_with_rattler(solve(fixture_channel, RATTLER_COMPATIBLE), prefix)

    assert _run(prefix / "bin/hello") == f"prefix={prefix}\n"
    assert _run(prefix / "bin/hello-script") == f"prefix={prefix}\n"
    assert (prefix / "share/hello/config.txt").read_text() == f"prefix is {prefix}\n"
    shebang = (prefix / "share/hello/shebang.sh").read_text().splitlines()[0]
    assert shebang == f"#!{prefix}/bin/hello"
    assert (prefix / "lib/libhello.so.1").readlink() == Path("libhello.so")

    code = "import json, sqlite3, ssl, sys; print(sys.prefix)"
    assert _run(prefix / f"bin/python{PY_VERSION}", "-c", code) == f"{prefix}\n"
    greeting = f"hello from greetlib\nprefix={prefix}\n"
    assert _run(prefix / "bin/greet") == greeting
    assert _run(prefix / "bin/greet-tool") == greeting
    assert _run(prefix / "bin/pyscript") == f"{prefix}\n"

    assert (prefix / "share/oldformat/data.txt").read_text() == f"oldformat prefix={prefix}\n"
    env_vars = json.loads((prefix / "etc/conda/env_vars.d/actpkg.json").read_text())
    assert env_vars == {"ACTPKG_VAR": "yes"}
    # rattler keeps the file of the last package in topological order and moves the
    # others aside; the clobber-b copy is listed under __clobbers__ in its conda-meta.
    assert (prefix / "share/clobber.txt").read_text() == "from clobber-a\n"
    clobbered = prefix / "__clobbers__/clobber-b/share/clobber.txt"
    assert clobbered.read_text() == "from clobber-b\n"


def test_rattler_also_installs_legacy_and_runs_post_link(
    fixture_channel: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    records = solve(fixture_channel, RATTLER_ALSO_INSTALLS)
    install_with_rattler(records, prefix, execute_link_scripts=True)
    assert (prefix / "share/legacy/data.txt").read_text() == f"legacy prefix={prefix}\n"
    assert (prefix / "share/legacy/long.txt").read_text() == f"legacy long prefix={prefix}\n"
    assert (prefix / "share/linkpkg/ran").read_text() == "linkpkg\n"


def test_rattler_rejects_empty_directories(fixture_channel: Path, tmp_path: Path) -> None:
    """Documents why RATTLER_REJECTS is not in RATTLER_COMPATIBLE."""
    with pytest.raises(RuntimeError, match="neither a regular file"):
        install_with_rattler(solve(fixture_channel, RATTLER_REJECTS), tmp_path / "env")


def test_writer_is_deterministic(tmp_path: Path) -> None:
    spec = PackageSpec(
        "det",
        "1.0",
        files={
            "share/det/a.txt": "a\n",
            "share/det/link": Entry.symlink("a.txt"),
            "share/det/dir": Entry.directory(),
        },
    )
    first = write_conda(tmp_path / "one", spec).read_bytes()
    assert write_conda(tmp_path / "two", spec).read_bytes() == first
    bz2_first = write_tar_bz2(tmp_path / "one", spec).read_bytes()
    assert write_tar_bz2(tmp_path / "two", spec).read_bytes() == bz2_first


def test_cached_build_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    source = tmp_path / "input.txt"
    source.write_text("v1")
    calls: list[Path] = []

    def builder(dest: Path) -> Path:
        calls.append(dest)
        dest.mkdir()
        (dest / "out.txt").write_text(source.read_text())
        return dest / "out.txt"

    first = cache.cached_build("demo", builder, [source])
    assert cache.cached_build("demo", builder, [source]) == first
    assert len(calls) == 1 and first.read_text() == "v1"
    source.write_text("v2")
    assert cache.cached_build("demo", builder, [source]).read_text() == "v2"
    assert not list((tmp_path / "cache").glob(".*.tmp-*"))


def test_cached_build_failure_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))

    def broken(dest: Path) -> Path:
        dest.mkdir()
        (dest / "half").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        cache.cached_build("broken", broken, [])
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
