"""End to end: lock -> pack -> unpack into a new path, then use the environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rattler

import portpack
from portpack.errors import PreconditionError, UsageError
from support.channel import ENV_SPECS
from treesnap import diff, snapshot

PORTPACK = [sys.executable, "-m", "portpack"]


@pytest.fixture(scope="module")
def packed(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive of the full fixture environment, made through the library API."""
    work = tmp_path_factory.mktemp("packed")
    lock = portpack.lock(
        ENV_SPECS,
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=work / "portpack.lock",
    )
    result = portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=work / "cache")
    assert sorted(p.rsplit("-", 2)[0] for p in result.packages) == sorted([*ENV_SPECS, "greetlib"])
    return work / "env.tar"


@pytest.fixture(scope="module")
def unpacked(packed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The environment unpacked into a path unlike any build prefix."""
    target = tmp_path_factory.mktemp("target") / "deploy" / "app"
    result = portpack.unpack(packed, target)
    assert result.prefix == target / "env"
    assert result.activation_script == target / "activate.sh"
    return result.prefix


def run(*args: str | Path, **kwargs: object) -> str:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert proc.returncode == 0, proc.stderr
    return str(proc.stdout)


def test_relocated_executable_prints_new_prefix(unpacked: Path) -> None:
    assert run(unpacked / "bin" / "hello").strip() == f"prefix={unpacked}"


def test_text_placeholder_holds_new_prefix(unpacked: Path) -> None:
    assert (unpacked / "share/hello/config.txt").read_text().strip() == f"prefix is {unpacked}"


def test_shebang_points_into_new_prefix(unpacked: Path) -> None:
    first = (unpacked / "share/hello/shebang.sh").read_text().splitlines()[0]
    assert first == f"#!{unpacked}/bin/hello"
    assert run(unpacked / "bin" / "pyscript").strip().endswith(str(unpacked))


def test_python_runs_from_new_prefix(unpacked: Path) -> None:
    out = run(unpacked / "bin" / "python3", "-c", "import json, sqlite3, sys; print(sys.prefix)")
    assert out.strip() == str(unpacked)


def test_entry_point_runs(unpacked: Path) -> None:
    out = run(unpacked / "bin" / "greet")
    assert "hello from greetlib" in out
    assert f"prefix={unpacked}" in out
    assert (unpacked / "bin" / "greet-tool").is_file()
    site = unpacked / f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    assert (site / "greet" / "cli.py").is_file()


def test_symlink_and_empty_directory(unpacked: Path) -> None:
    assert os.readlink(unpacked / "lib/libhello.so.1") == "libhello.so"
    assert (unpacked / "share/emptydir/empty").is_dir()
    assert not any((unpacked / "share/emptydir/empty").iterdir())


def test_tar_bz2_and_legacy_packages_are_relocated(unpacked: Path) -> None:
    assert str(unpacked) in (unpacked / "share/oldformat/data.txt").read_text()
    legacy = [p for p in (unpacked / "share").rglob("*") if "legacy" in str(p) and p.is_file()]
    assert legacy and any(str(unpacked) in p.read_text() for p in legacy)
    assert not any("anaconda1anaconda2" in p.read_text() for p in legacy)


def test_activation_script(unpacked: Path) -> None:
    script = unpacked.parent / "activate.sh"
    out = run(
        "sh",
        "-c",
        f'. "{script}" && command -v hello && echo "$CONDA_PREFIX" "$ACTPKG_VAR" "$ACTPKG_ACTIVE"',
    )
    lines = out.split()
    assert lines[0] == str(unpacked / "bin" / "hello")
    assert lines[1:] == [str(unpacked), "yes", "1"]


def test_conda_meta_is_real(unpacked: Path) -> None:
    meta = unpacked / "conda-meta"
    assert (meta / "history").read_text().startswith("==> ")
    records = sorted(meta.glob("*.json"))
    assert len(records) == len(ENV_SPECS) + 1
    for path in records:
        record = rattler.PrefixRecord.from_path(path)
        assert path.name == f"{record.name.normalized}-{record.version}-{record.build}.json"
        for rel in record.files:
            assert (unpacked / rel).exists() or (unpacked / rel).is_symlink(), rel
    greet = json.loads(next(meta.glob("greet-1.0-*.json")).read_text())
    kinds = {p["_path"]: p["path_type"] for p in greet["paths_data"]["paths"]}
    assert kinds["bin/greet"] == "unix_python_entry_point"


def test_link_scripts_run_only_on_request(packed: Path, unpacked: Path, tmp_path: Path) -> None:
    assert not (unpacked / "share/linkpkg/ran").exists()
    result = portpack.unpack(packed, tmp_path, run_link_scripts=True)
    assert (result.prefix / "share/linkpkg/ran").read_text().strip() == "linkpkg"


def test_clobbering_warns_and_names_both_packages(packed: Path, tmp_path: Path) -> None:
    reporter = portpack.progress.RecordingReporter()
    result = portpack.unpack(packed, tmp_path, reporter=reporter)
    clobbers = [w for w in reporter.warnings if "share/clobber.txt" in w]
    assert len(clobbers) == 1
    assert "clobber-a" in clobbers[0] and "clobber-b" in clobbers[0]
    assert (result.prefix / "share/clobber.txt").is_file()


def test_stdin_gives_the_same_prefix(packed: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    portpack.unpack(packed, target)
    first = snapshot(target, skip=("env/conda-meta/history",))
    shutil.rmtree(target)
    with open(packed, "rb") as fh:
        subprocess.run([*PORTPACK, "unpack", "-", "-o", str(target), "-q"], stdin=fh, check=True)
    assert diff(first, snapshot(target, skip=("env/conda-meta/history",))) == []


def test_archive_is_a_valid_tar_zst(packed: Path) -> None:
    names = run("tar", "--zstd", "-tf", packed).split()
    assert names[0] == "portpack.json"
    assert sum(n.endswith("/info.tar") for n in names) == len(ENV_SPECS) + 1
    assert sum(n.endswith("/pkg.tar") for n in names) == len(ENV_SPECS) + 1


def test_packing_is_deterministic(packed: Path, tmp_path: Path) -> None:
    lock = packed.parent / "portpack.lock"
    again = portpack.pack(
        lockfile=lock, output=tmp_path / "again.tar", cache_dir=packed.parent / "cache"
    )
    assert Path(again.output).read_bytes() == packed.read_bytes()


def test_prefix_longer_than_binary_placeholder_is_refused(packed: Path, tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120) / ("y" * 120)
    with pytest.raises(PreconditionError, match=r"lib/libhello\.so of package hello-c"):
        portpack.unpack(packed, deep)
    assert not deep.exists() or not any(deep.iterdir())


def test_existing_environment_needs_force(packed: Path, tmp_path: Path) -> None:
    portpack.unpack(packed, tmp_path)
    with pytest.raises(UsageError, match="already exists"):
        portpack.unpack(packed, tmp_path)
    (tmp_path / "env" / "marker").write_text("old")
    portpack.unpack(packed, tmp_path, force=True)
    assert not (tmp_path / "env" / "marker").exists()
    assert (tmp_path / "env" / "bin" / "hello").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_background_writers_give_the_same_prefix(
    packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portpack.unpacker import streaming as unpacking

    skip = ("env/conda-meta/history",)
    portpack.unpack(packed, tmp_path / "out")
    plain = snapshot(tmp_path / "out", skip)
    shutil.rmtree(tmp_path / "out")
    monkeypatch.setattr(unpacking, "WRITER_THREADS", 2)
    portpack.unpack(packed, tmp_path / "out")
    assert diff(plain, snapshot(tmp_path / "out", skip)) == []
