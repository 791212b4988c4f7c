"""What a pixi-pack user types: ``pack --dry-run``, pixi-pack's option names, and
``--directory-only`` folders that ``unpack`` installs from (both formats).

The locks are pixi.lock files written by py-rattler for the fixture channel; the
hostile folders are what an attacker could hand over instead of an archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

import portpack
from fetchsupport import SMALL_SPECS, LockTemplate
from portpack.resolve.lockfile import read_lock
from portpack.units import human_bytes

PORTPACK = [sys.executable, "-m", "portpack"]
#: Nothing listens here: a lock pointing at it cannot be downloaded.
DEAD = "http://127.0.0.1:9/channel/"


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PORTPACK, *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def template(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> LockTemplate:
    return LockTemplate.make(fixture_channel, SMALL_SPECS, tmp_path_factory.mktemp("lock"))


@pytest.fixture(scope="module")
def local_lock(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pixi.lock of hello-c and python from the fixture channel (file:// URLs)."""
    work = tmp_path_factory.mktemp("project")
    return portpack.lock(
        ["hello-c", "python"],
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=work / "pixi.lock",
    )


# -- pack --dry-run ---------------------------------------------------------------------


def test_dry_run_lists_packages_and_sizes_from_the_lock_without_downloading(
    template: LockTemplate, tmp_path: Path
) -> None:
    lock = template.write(tmp_path / "pixi.lock", DEAD)
    records = [r.to_json() for r in read_lock(lock, "default", "linux-64").records]
    out = cli("pack", "-l", lock, "-p", "linux-64", "--dry-run", "--cache-dir", "c", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Would pack 4 packages for linux-64 (portpack format):")
    for record in records:
        line = next(x for x in out.stdout.splitlines() if x.split()[:1] == [record["name"]])
        assert record["version"] in line and record["build"] in line
    total = sum(r["size"] for r in records)
    assert f"Total: {human_bytes(total)}" in out.stdout
    # Nothing fetched, nothing written: the packages' server does not even exist.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pixi.lock"]

    doc = json.loads(
        cli("pack", "-l", lock, "-p", "linux-64", "--dry-run", "--json", cwd=tmp_path).stdout
    )
    assert doc["ok"] is True and doc["platform"] == "linux-64" and doc["format"] == "portpack"
    assert [(p["name"], p["filename"], p["size"]) for p in doc["packages"]] == [
        (r["name"], r["fn"], r["size"]) for r in records
    ]
    assert all(p["source"].startswith(DEAD) for p in doc["packages"])
    assert doc["total_size"] == total and doc["wheels"] == [] and doc["refused"] == []


def test_dry_run_plan_is_a_typed_object(template: LockTemplate, tmp_path: Path) -> None:
    from portpack.packer.packing import PackPlan, plan

    lock = template.write(tmp_path / "pixi.lock", DEAD)
    result = plan(lockfile=lock, platform="linux-64", archive_format="pixi-pack")
    assert isinstance(result, PackPlan) and result.ok
    assert result.archive_format == "pixi-pack"
    assert {p.name for p in result.packages} == set(SMALL_SPECS)


def test_dry_run_refuses_source_distributions_by_name(local_lock: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load(local_lock.read_text())
    sdist = "https://files.example/pp_sdist-1.0.tar.gz"
    wheel = "https://files.example/pp_wheel-2.0-py3-none-any.whl"
    doc["environments"]["default"]["packages"]["linux-64"] += [{"pypi": sdist}, {"pypi": wheel}]
    doc["packages"] += [
        {"pypi": sdist, "name": "pp-sdist", "version": "1.0"},
        {"pypi": wheel, "name": "pp-wheel", "version": "2.0"},
    ]
    lock = tmp_path / "pixi.lock"
    lock.write_text(yaml.safe_dump(doc, sort_keys=False))

    out = cli("pack", "-l", lock, "-p", "linux-64", "--dry-run", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "and 1 PyPI wheel for linux-64" in out.stdout
    assert f"Refused: pp-sdist ({sdist}): PyPI package that is not a wheel" in out.stdout
    assert "(1 size unknown)" in out.stdout  # a wheel by URL: the lock has no size

    doc = json.loads(
        cli("pack", "-l", lock, "-p", "linux-64", "--dry-run", "--json", cwd=tmp_path).stdout
    )
    assert doc["ok"] is False
    assert doc["refused"] == [
        {"name": "pp-sdist", "location": sdist, "reason": "PyPI package that is not a wheel"}
    ]
    assert [(w["name"], w["size"]) for w in doc["wheels"]] == [("pp-wheel", None)]

    skipping = cli(
        "pack", "-l", lock, "--dry-run", "--json", "--ignore-pypi-non-wheel", cwd=tmp_path
    )
    assert skipping.returncode == 0, skipping.stderr
    assert json.loads(skipping.stdout)["skipped"][0]["name"] == "pp-sdist"


def test_dry_run_refuses_unbuilt_source_packages_by_name(
    fixture_channel: Path, tmp_path: Path
) -> None:
    from test_lockfile import SOURCE_LOCK, render

    from support.pkgwriter import PackageSpec, write_conda

    # A pixi-build lock: actpkg from the channel, mysrc (conda: .) and mytool (./tools).
    template = tmp_path / "source.lock.in"
    template.write_text(SOURCE_LOCK.replace("@EXTRA_ENVS@", "").replace("@EXTRA_PACKAGES@", ""))
    lock = render(str(template), fixture_channel, tmp_path / "pixi.lock")

    out = cli("pack", "-l", lock, "-p", "linux-64", "--dry-run", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "Refused: mysrc (.): source package (pixi-build), not built" in out.stdout
    assert "Refused: mytool (./tools): source package (pixi-build), not built" in out.stdout
    assert "Would pack 1 package for linux-64" in out.stdout  # the rest is listed

    built = [
        write_conda(tmp_path / "built", PackageSpec("mysrc", "0.1.0", depends=["actpkg"])),
        write_conda(tmp_path / "built", PackageSpec("mytool", "2.0", depends=["mysrc"])),
    ]
    injected = [x for path in built for x in ("-i", str(path))]
    out = cli("pack", "-l", lock, "-p", "linux-64", "--dry-run", "--json", *injected, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["ok"] and plan["refused"] == []
    mysrc = next(p for p in plan["packages"] if p["name"] == "mysrc")
    assert mysrc["size"] == built[0].stat().st_size and mysrc["source"] == built[0].as_uri()


def test_json_without_dry_run_is_a_usage_error(local_lock: Path, tmp_path: Path) -> None:
    out = cli("pack", "-l", local_lock, "--json", cwd=tmp_path)
    assert out.returncode == 2 and "--json needs --dry-run" in out.stderr


# -- pixi-pack's option names -------------------------------------------------------------


def test_pixi_pack_option_names(local_lock: Path, tmp_path: Path) -> None:
    out = cli(
        "pack", "-l", local_lock, "--output-file", "a.tar", "--use-cache", "cache", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.tar").is_file()
    assert any((tmp_path / "cache").rglob("*.conda"))  # the cache --use-cache names
    out = cli("pack", "-l", local_lock, "-o", "b.tar", "--use-cache", "cache", "-q", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    out = cli("pack", "-l", local_lock, "-o", "c.tar", "--use-cache", "cache", "-v", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.splitlines()
    assert {"  python-3.11.7-h_portpack_0", "  hello-c-1.0-hb0f4dca_0"} <= set(listed)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "c.tar").read_bytes()


def test_positional_project_directory_or_manifest_as_pixi_pack_takes_it(
    local_lock: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(local_lock, project / "pixi.lock")
    (project / "pixi.toml").write_text(
        '[workspace]\nname = "p"\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n'
        '[dependencies]\nhello-c = "*"\n'
    )
    for given in ("project", "project/pixi.toml", str(project)):
        out = cli("pack", given, "-p", "linux-64", "--dry-run", "--json", cwd=tmp_path)
        assert out.returncode == 0, (given, out.stderr)
        names = {p["name"] for p in json.loads(out.stdout)["packages"]}
        assert names == {"hello-c", "python"}, given  # the lock's, not a new solve
    (project / "pixi.toml").unlink()  # a folder with only a pixi.lock
    out = cli("pack", "project", "-p", "linux-64", "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    out = cli("pack", "empty", "--dry-run", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "empty is a folder without pixi.toml" in out.stderr
    out = cli("pack", "nowhere/pixi.toml", "--dry-run", cwd=tmp_path)
    assert out.returncode != 0 and "nowhere/pixi.toml" in out.stderr


# -- --directory-only ---------------------------------------------------------------------


def _tree(root: Path) -> dict[str, str | None]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else None
        for p in sorted(root.rglob("*"))
    }


def test_pixi_pack_directory_only_is_the_archive_unpacked(local_lock: Path, tmp_path: Path) -> None:
    common = ("pack", "-l", local_lock, "--format", "pixi-pack", "--use-cache", "cache")
    assert cli(*common, "-o", "env.tar", cwd=tmp_path).returncode == 0
    out = cli(*common, "--directory-only", cwd=tmp_path)  # default output: ./environment
    assert out.returncode == 0, out.stderr
    assert "into environment" in out.stdout
    with tarfile.open(tmp_path / "env.tar") as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    assert _tree(tmp_path / "environment") == _tree(tmp_path / "extracted")
    assert {"pixi-pack.json", "environment.yml", "channel/linux-64/repodata.json"} <= set(
        _tree(tmp_path / "environment")
    )
    # An existing, non-empty folder is not overwritten.
    again = cli(*common, "--directory-only", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".environment")]


@pytest.mark.parametrize("archive_format", ["portpack", "pixi-pack"])
def test_unpack_from_a_directory_only_folder(
    local_lock: Path, tmp_path: Path, archive_format: str
) -> None:
    out = cli(
        "pack", "-l", local_lock, "--format", archive_format, "--directory-only", "-o", "d",
        "--use-cache", "cache", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = cli("unpack", "d", "-o", "dest", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Unpacked 2 packages into" in out.stdout
    hello = subprocess.run([tmp_path / "dest/env/bin/hello"], capture_output=True, text=True)
    assert hello.returncode == 0 and hello.stdout
    # The folder is what a tar of the same format would hold: inspect-free check.
    if archive_format == "portpack":
        meta = json.loads((tmp_path / "d/portpack.json").read_text())
        for package in meta["packages"]:
            stored = tmp_path / "d/pkgs" / package["stem"] / "pkg.tar.zst"
            assert stored.stat().st_size == package["payload"]["zst_size"]
            assert (
                hashlib.sha256(stored.read_bytes()).hexdigest()
                == (package["payload"]["zst_sha256"])
            )


def _pack_dir(local_lock: Path, tmp_path: Path, archive_format: str) -> Path:
    out = cli(
        "pack", "-l", local_lock, "--format", archive_format, "--directory-only", "-o", "d",
        "--use-cache", "cache", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return tmp_path / "d"


def _refused(tmp_path: Path, folder: Path, *words: str) -> None:
    out = cli("unpack", folder, "-o", "dest", cwd=tmp_path)
    assert out.returncode != 0, out.stdout
    assert "portpack: error: " in out.stderr and "Traceback" not in out.stderr
    for word in words:
        assert word in out.stderr, out.stderr
    dest = tmp_path / "dest"
    assert not dest.exists() or not any(dest.iterdir()), list(dest.iterdir())


def test_portpack_folder_is_checked_like_an_archive(local_lock: Path, tmp_path: Path) -> None:
    folder = _pack_dir(local_lock, tmp_path, "portpack")
    meta = json.loads((folder / "portpack.json").read_text())
    stem = next(p["stem"] for p in meta["packages"] if p["record"]["name"] == "hello-c")
    payload = folder / "pkgs" / stem / "pkg.tar.zst"
    good = payload.read_bytes()

    # A symlink to a file outside the folder is not followed, even to a valid payload.
    outside = tmp_path / "outside.zst"
    outside.write_bytes(good)
    payload.unlink()
    payload.symlink_to(outside)
    _refused(tmp_path, folder, "pkg.tar.zst", "symlink")

    # The package folder itself replaced by a symlink to a complete copy.
    payload.unlink()
    payload.write_bytes(good)
    shutil.move(folder / "pkgs" / stem, tmp_path / "moved")
    (folder / "pkgs" / stem).symlink_to(tmp_path / "moved")
    _refused(tmp_path, folder, "symlink")
    (folder / "pkgs" / stem).unlink()
    shutil.move(tmp_path / "moved", folder / "pkgs" / stem)
    payload.unlink()

    # A FIFO in a payload's place: refused at once, the unpack does not wait on it.
    os.mkfifo(payload)
    _refused(tmp_path, folder, "pkg.tar.zst", "not a regular file")
    payload.unlink()

    # Same size, one byte changed: the digest recorded at pack time catches it.
    payload.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    _refused(tmp_path, folder, "corrupt")
    payload.write_bytes(good[:-5])  # truncated
    _refused(tmp_path, folder, "pkg.tar.zst")

    # A stem that climbs out of the folder (the metadata is hostile too).
    payload.write_bytes(good)
    meta["packages"][0]["stem"] = "../../outside"
    (folder / "portpack.json").write_text(json.dumps(meta))
    _refused(tmp_path, folder, "stem")


def test_pixi_pack_folder_is_checked_like_an_archive(local_lock: Path, tmp_path: Path) -> None:
    folder = _pack_dir(local_lock, tmp_path, "pixi-pack")
    package = next((folder / "channel/linux-64").glob("hello-c-*.conda"))
    good = package.read_bytes()

    # A package that is a symlink to a file outside: refused, never read.
    outside = tmp_path / package.name
    outside.write_bytes(good)
    package.unlink()
    package.symlink_to(outside)
    _refused(tmp_path, folder, "refusing channel/linux-64/" + package.name, "symlink")

    # A whole subdir that is a symlink out of the folder.
    package.unlink()
    shutil.move(folder / "channel/linux-64", tmp_path / "subdir")
    (tmp_path / "subdir" / package.name).write_bytes(good)
    (folder / "channel/linux-64").symlink_to(tmp_path / "subdir")
    _refused(tmp_path, folder, "refusing channel/linux-64", "symlink")
    (folder / "channel/linux-64").unlink()
    shutil.move(tmp_path / "subdir", folder / "channel/linux-64")

    # A package changed on disk: repodata.json's sha256 catches it.
    package.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    _refused(tmp_path, folder, "sha256")

    # A FIFO among the files is refused, never opened.
    os.mkfifo(folder / "channel/linux-64/zz.conda")
    _refused(tmp_path, folder, "zz.conda", "special file")
    (folder / "channel/linux-64/zz.conda").unlink()

    # Another platform's folder is refused as another platform's archive is.
    package.write_bytes(good)
    meta = json.loads((folder / "pixi-pack.json").read_text())
    (folder / "pixi-pack.json").write_text(json.dumps(meta | {"platform": "osx-arm64"}))
    _refused(tmp_path, folder, "osx-arm64")


def test_a_folder_that_is_no_archive(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file.txt").write_text("hello")
    _refused(tmp_path, tmp_path / "stuff", "stuff", "--directory-only")
    (tmp_path / "link").symlink_to(tmp_path / "stuff")
    out = cli("unpack", "link", "-o", "dest", cwd=tmp_path)  # a symlink is not a folder here
    assert out.returncode != 0 and "Traceback" not in out.stderr


def test_directory_only_refuses_stdout_and_self_extracting(
    local_lock: Path, tmp_path: Path
) -> None:
    for extra in (("-o", "-"), ("--create-executable",)):
        out = cli("pack", "-l", local_lock, "--directory-only", *extra, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert "--directory-only" in out.stderr and "Traceback" not in out.stderr
    assert os.listdir(tmp_path) == []
