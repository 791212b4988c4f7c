"""``pack --prefix``: packing an installed environment from its conda-meta records.

Environments are installed from the fixture channel, served over HTTP on 127.0.0.1 so
their records carry download URLs the tests can watch: by ``portpack unpack`` (its
records are a lock's) or by ``rattler.install``.  Conda's, pixi's and rattler's
package-cache variables and the home directory point into each test's own directory,
so only the caches a test makes are found.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import portpack
from faultserver import FaultServer, Status
from portpack.errors import PrefixContentError
from portpack.packer.prefix_source import package_dirs
from portpack.progress import RecordingReporter
from support.channel import PY_VERSION, RATTLER_COMPATIBLE
from support.rattler_install import install_with_rattler
from treesnap import diff, snapshot, without_empty_clobber_dirs

SPECS = ["hello-c", "greet", "pyscript", "oldformat", "legacy", "emptydir", "actpkg"]
HELLO = "hello-c-1.0-hb0f4dca_0.conda"
SITE = f"lib/python{PY_VERSION}/site-packages"
#: Written by every unpack with the time in it.
HISTORY = ("conda-meta/history",)
_CACHE_VARS = (
    "CONDA_PKGS_DIRS",
    "CONDARC",
    "CONDA_ROOT",
    "CONDA_PREFIX",
    "CONDA_EXE",
    "MAMBA_ROOT_PREFIX",
    "PIXI_CACHE_DIR",
    "RATTLER_CACHE_DIR",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (*_CACHE_VARS, "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))


@pytest.fixture(scope="module")
def server(fixture_channel: Path) -> Iterator[FaultServer]:
    with FaultServer(fixture_channel) as running:
        yield running


@pytest.fixture(scope="module")
def file_lock(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lock")
    return portpack.lock(
        SPECS, channels=[str(fixture_channel)], platforms=["linux-64"], output=work / "pixi.lock"
    )


@pytest.fixture(scope="module")
def archive(
    file_lock: Path,
    fixture_channel: Path,
    server: FaultServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The environment packed from a lock whose packages are on the HTTP channel."""
    work = tmp_path_factory.mktemp("archive")
    text = file_lock.read_text().replace(f"file://{fixture_channel}/", server.url)
    lock = work / "pixi.lock"
    lock.write_text(text.replace(f"{fixture_channel}/", server.url))
    portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=work / "cache")
    return work / "env.tar"


@pytest.fixture(scope="module")
def all_packages(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return sorted(fixture_channel.glob("*/*.conda")) + sorted(fixture_channel.glob("*/*.tar.bz2"))


@pytest.fixture
def env(archive: Path, tmp_path: Path) -> Path:
    """A fresh environment, unpacked from :func:`archive` (its records have HTTP URLs)."""
    return portpack.unpack(archive, tmp_path, "env").prefix


def conda_pkgs(directory: Path, packages: list[Path]) -> Path:
    """A conda-style package cache: the package files side by side."""
    directory.mkdir(parents=True, exist_ok=True)
    for package in packages:
        shutil.copyfile(package, directory / package.name)
    return directory


def corrupt(path: Path) -> None:
    """Change one byte (the size stays: only the checksum can tell)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def pack(prefix: Path, tmp_path: Path, **options: Any) -> tuple[portpack.PackResult, list[str]]:
    reporter = RecordingReporter()
    result = portpack.pack(
        prefix=prefix,
        output=tmp_path / "repacked.tar",
        cache_dir=tmp_path / "portpack-cache",
        reporter=reporter,
        **options,
    )
    return result, reporter.warnings


def unpack_in_place(prefix: Path, archive: Path) -> Path:
    """Move ``prefix`` aside and unpack ``archive`` at its path; return the old one."""
    old = prefix.with_name(prefix.name + "-before")
    os.rename(prefix, old)
    portpack.unpack(archive, prefix.parent, prefix.name)
    return old


def package_requests(server: FaultServer) -> list[str]:
    return [r.name for r in server.requests if r.name.endswith((".conda", ".tar.bz2"))]


def run(path: Path) -> str:
    return subprocess.run([path], capture_output=True, text=True, check=True).stdout


# -- where the packages come from -----------------------------------------------------


def test_round_trip_from_a_conda_package_cache_without_network(
    archive: Path,
    env: Path,
    all_packages: list[Path],
    server: FaultServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONDA_PKGS_DIRS", str(conda_pkgs(tmp_path / "pkgs", all_packages)))
    asked = len(package_requests(server))
    result, warnings = pack(env, tmp_path)
    assert package_requests(server)[asked:] == []  # every package from the cache
    assert warnings == []
    assert {p.rsplit("-", 2)[0] for p in result.packages} >= set(SPECS) | {"python", "greetlib"}
    # the records are the lock's: packed exactly as the lock was, byte for byte
    assert (tmp_path / "repacked.tar").read_bytes() == archive.read_bytes()

    before = unpack_in_place(env, tmp_path / "repacked.tar")
    assert diff(snapshot(before, skip=HISTORY), snapshot(env, skip=HISTORY)) == []
    assert run(env / "bin" / "hello") == f"prefix={env}\n"


def test_downloads_by_the_record_url_when_no_cache_has_it(
    env: Path, server: FaultServer, tmp_path: Path
) -> None:
    asked = len(package_requests(server))
    pack(env, tmp_path)
    fetched = package_requests(server)[asked:]
    assert sorted(fetched) == sorted(
        json.loads(p.read_text())["fn"] for p in (env / "conda-meta").glob("*.json")
    )
    before = unpack_in_place(env, tmp_path / "repacked.tar")
    assert diff(snapshot(before, skip=HISTORY), snapshot(env, skip=HISTORY)) == []
    assert run(env / "bin" / "greet") == f"hello from greetlib\nprefix={env}\n"


def test_conda_installation_layout_and_record_tarball_path(
    archive: Path, all_packages: list[Path], server: FaultServer, tmp_path: Path
) -> None:
    """``<root>/envs/<name>`` finds ``<root>/pkgs``; a record's own tarball path is used."""
    root = tmp_path / "miniforge3"
    env = portpack.unpack(archive, root / "envs", "work").prefix
    elsewhere = conda_pkgs(tmp_path / "elsewhere", [p for p in all_packages if p.name == HELLO])
    conda_pkgs(root / "pkgs", [p for p in all_packages if p.name != HELLO])
    record_path = next((env / "conda-meta").glob("hello-c-*.json"))
    record = json.loads(record_path.read_text())
    record["package_tarball_full_path"] = str(elsewhere / HELLO)
    record_path.write_text(json.dumps(record))
    asked = len(package_requests(server))
    pack(env, tmp_path)
    assert package_requests(server)[asked:] == []


def test_condarc_pkgs_dirs_and_pixi_cache_are_searched(
    env: Path,
    all_packages: list[Path],
    server: FaultServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    half = len(all_packages) // 2
    pkgs = conda_pkgs(tmp_path / "from-condarc", all_packages[:half])
    condarc = tmp_path / "home" / ".condarc"
    condarc.parent.mkdir(parents=True, exist_ok=True)
    condarc.write_text(f"channels: [conda-forge]\npkgs_dirs:\n  - {pkgs}\n")
    conda_pkgs(tmp_path / "pixi-cache" / "pkgs", all_packages[half:])
    monkeypatch.setenv("PIXI_CACHE_DIR", str(tmp_path / "pixi-cache"))
    assert package_dirs(env)[:2] == [pkgs, tmp_path / "pixi-cache" / "pkgs"]
    asked = len(package_requests(server))
    pack(env, tmp_path)
    assert package_requests(server)[asked:] == []


def test_a_corrupt_cached_copy_is_skipped_and_downloaded(
    env: Path,
    all_packages: list[Path],
    server: FaultServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pkgs = conda_pkgs(tmp_path / "pkgs", all_packages)
    corrupt(pkgs / HELLO)
    monkeypatch.setenv("CONDA_PKGS_DIRS", str(pkgs))
    asked = len(package_requests(server))
    _, warnings = pack(env, tmp_path)
    assert package_requests(server)[asked:] == [HELLO]
    assert len(warnings) == 1
    assert str(pkgs / HELLO) in warnings[0] and "sha256" in warnings[0]
    before = unpack_in_place(env, tmp_path / "repacked.tar")
    assert diff(snapshot(before, skip=HISTORY), snapshot(env, skip=HISTORY)) == []


def test_md5_only_records_are_verified_by_md5(
    env: Path,
    all_packages: list[Path],
    server: FaultServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Older conda records carry only an md5."""
    for path in (env / "conda-meta").glob("*.json"):
        record = json.loads(path.read_text())
        del record["sha256"]
        path.write_text(json.dumps(record))
    pkgs = conda_pkgs(tmp_path / "pkgs", all_packages)
    corrupt(pkgs / HELLO)
    monkeypatch.setenv("CONDA_PKGS_DIRS", str(pkgs))
    asked = len(package_requests(server))
    _, warnings = pack(env, tmp_path)
    assert package_requests(server)[asked:] == [HELLO]
    assert "md5" in warnings[0]


def test_a_package_found_nowhere_is_an_error_naming_it_and_the_places(
    env: Path,
    all_packages: list[Path],
    server: FaultServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pkgs = conda_pkgs(tmp_path / "pkgs", [p for p in all_packages if p.name != HELLO])
    (pkgs / HELLO).write_bytes(b"not a package")
    monkeypatch.setenv("CONDA_PKGS_DIRS", str(pkgs))
    server.fail(HELLO, Status(404))
    with pytest.raises(portpack.FetchError) as info:
        pack(env, tmp_path)
    error = info.value
    assert "hello-c-1.0-hb0f4dca_0 is in none of the package caches" in error.message
    assert "HTTP 404" in error.message
    assert error.hint is not None
    assert f"Looked for {HELLO} in: " in error.hint and str(pkgs) in error.hint
    assert f"{pkgs / HELLO} (13 bytes" in error.hint  # the copy that did not match
    assert not (tmp_path / "repacked.tar").exists()


def test_a_record_without_url_found_nowhere(env: Path, tmp_path: Path) -> None:
    record_path = next((env / "conda-meta").glob("hello-c-*.json"))
    record = json.loads(record_path.read_text())
    del record["url"], record["channel"]
    record_path.write_text(json.dumps(record))
    with pytest.raises(
        portpack.FetchError,
        match=r"hello-c-1\.0-hb0f4dca_0 is in none of the package caches and its record has no URL",
    ):
        pack(env, tmp_path)


def test_a_rattler_installed_environment_round_trips(fixture_channel: Path, tmp_path: Path) -> None:
    """rattler keeps no package files in its cache: they come from the records' URLs."""
    lock = portpack.lock(
        RATTLER_COMPATIBLE,
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=tmp_path / "rattler.lock",
    )
    prefix = tmp_path / "env"
    rattler_cache = tmp_path / "home" / ".cache" / "rattler" / "cache" / "pkgs"
    install_with_rattler(lock, prefix, cache_dir=rattler_cache)
    assert (prefix / "CACHEDIR.TAG").is_file()
    result, warnings = pack(prefix, tmp_path)
    assert warnings == []  # CACHEDIR.TAG is rattler's, not a package's
    assert len(result.packages) == len(RATTLER_COMPATIBLE)
    intended = ("CACHEDIR.TAG", "conda-meta")  # as in tests/test_differential.py
    theirs = without_empty_clobber_dirs(snapshot(prefix, skip=intended))
    unpack_in_place(prefix, tmp_path / "repacked.tar")
    assert diff(theirs, snapshot(prefix, skip=intended)) == []


# -- what the records do not describe -------------------------------------------------


def test_unowned_files_are_listed_and_refused_then_left_out(env: Path, tmp_path: Path) -> None:
    (env / "share" / "notes.txt").write_text("mine\n")
    dist = env / SITE / "extra-0.3.dist-info"
    dist.mkdir()
    (env / SITE / "extra.py").write_text("X = 1\n")
    (dist / "INSTALLER").write_text("pip\n")
    (dist / "METADATA").write_text("Name: extra\nVersion: 0.3\n")
    (dist / "RECORD").write_text(
        "extra.py,sha256=x,6\nextra-0.3.dist-info/INSTALLER,,\nextra-0.3.dist-info/METADATA,,\n"
        "extra-0.3.dist-info/RECORD,,\n../../../bin/extra,,\n"
    )
    (env / "bin" / "extra").write_text("#!/bin/sh\n")

    with pytest.raises(PrefixContentError) as info:
        pack(env, tmp_path)
    error = info.value
    assert "6 files that no conda package owns" in error.message
    assert "PyPI package extra 0.3 (installed by pip): 5 files" in error.message
    assert "1 other file: share/notes.txt" in error.message
    assert error.unowned == sorted(
        ["bin/extra", "share/notes.txt", f"{SITE}/extra.py"]
        + [f"{SITE}/extra-0.3.dist-info/{n}" for n in ("INSTALLER", "METADATA", "RECORD")]
    )
    assert error.hint is not None and "--unowned=ignore" in error.hint
    assert not (tmp_path / "repacked.tar").exists()

    _, warnings = pack(env, tmp_path, unowned="ignore")
    assert len(warnings) == 1 and "share/notes.txt" in warnings[0]
    before = unpack_in_place(env, tmp_path / "repacked.tar")
    left_out = {f"{SITE}/extra-0.3.dist-info", *error.unowned}
    expected = {p: v for p, v in snapshot(before, skip=HISTORY).items() if p not in left_out}
    assert diff(expected, snapshot(env, skip=HISTORY)) == []


def test_modified_and_missing_owned_files_are_refused_then_restored(
    env: Path, tmp_path: Path
) -> None:
    original = (env / "share" / "hello" / "config.txt").read_text()
    (env / "share" / "hello" / "config.txt").write_text(original.upper())  # same size
    (env / "bin" / "hello-script").unlink()
    (env / "lib" / "libhello.so.1").unlink()
    (env / "lib" / "libhello.so.1").write_text("not a link\n")
    with pytest.raises(PrefixContentError) as info:
        pack(env, tmp_path)
    error = info.value
    assert error.missing == ["bin/hello-script"]
    assert error.modified == [
        "lib/libhello.so.1 (not a symlink)",
        "share/hello/config.txt (content differs)",
    ]
    assert error.unowned == []
    assert (
        "2 modified files" in error.message and "1 missing file: bin/hello-script" in error.message
    )

    pack(env, tmp_path, unowned="ignore")
    unpack_in_place(env, tmp_path / "repacked.tar")
    assert (env / "share" / "hello" / "config.txt").read_text() == original
    assert (env / "bin" / "hello-script").is_file()
    assert (env / "lib" / "libhello.so.1").is_symlink()


def test_bytecode_written_by_running_python_is_not_unowned(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    run(env / "bin" / "greet")  # imports greetlib: python writes __pycache__/*.pyc
    assert list((env / SITE).rglob("__pycache__/*.pyc"))
    _, warnings = pack(env, tmp_path)
    assert warnings == []
    unpack_in_place(env, tmp_path / "repacked.tar")
    assert not list((env / SITE).rglob("__pycache__/*.pyc"))


def test_pypi_records_in_conda_meta_are_reported_as_pypi(env: Path, tmp_path: Path) -> None:
    """conda writes records of channel ``pypi`` for PyPI packages: no conda package."""
    (env / SITE / "requests").mkdir()
    (env / SITE / "requests" / "__init__.py").write_text("")
    record = {
        "name": "requests",
        "version": "2.32.3",
        "build": "pypi_0",
        "build_number": 0,
        "channel": "pypi",
        "subdir": "pypi",
        "files": [f"{SITE}/requests/__init__.py"],
    }
    (env / "conda-meta" / "requests-2.32.3-pypi_0.json").write_text(json.dumps(record))
    with pytest.raises(PrefixContentError) as info:
        pack(env, tmp_path)
    assert (
        "PyPI package requests 2.32.3 (conda-meta/requests-2.32.3-pypi_0.json, channel pypi): "
        f"1 file ({SITE}/requests/__init__.py)"
    ) in info.value.message
    result, _ = pack(env, tmp_path, unowned="ignore")
    assert not [p for p in result.packages if p.startswith("requests")]


# -- hostile or broken environments -----------------------------------------------------


def test_a_record_path_outside_the_prefix_is_refused(env: Path, tmp_path: Path) -> None:
    record_path = next((env / "conda-meta").glob("hello-c-*.json"))
    record = json.loads(record_path.read_text())
    record["files"].append("../../outside.txt")
    record_path.write_text(json.dumps(record))
    with pytest.raises(
        portpack.PackageError,
        match=r"conda-meta/hello-c-1\.0-hb0f4dca_0\.json.*"
        r"unsafe path '\.\./\.\./outside\.txt'",
    ):
        pack(env, tmp_path)


def test_a_record_file_name_with_a_slash_is_refused(env: Path, tmp_path: Path) -> None:
    record_path = next((env / "conda-meta").glob("hello-c-*.json"))
    record = json.loads(record_path.read_text())
    record["fn"] = "../hello-c-1.0-hb0f4dca_0.conda"
    record_path.write_text(json.dumps(record))
    with pytest.raises(
        portpack.PackageError, match=r"hello-c-1\.0-hb0f4dca_0 has an invalid file name"
    ):
        pack(env, tmp_path)


def test_a_record_whose_version_would_name_a_path_is_refused_before_fetching(
    env: Path, tmp_path: Path
) -> None:
    record_path = next((env / "conda-meta").glob("hello-c-*.json"))
    record = json.loads(record_path.read_text())
    record["version"] = "1.0/../../x"  # becomes conda-meta/<name>-<version>-<build>.json
    record_path.write_text(json.dumps(record))
    with pytest.raises(portpack.UnsafeArchiveError, match=r"hello-c-.*'version'"):
        pack(env, tmp_path)
    assert not (tmp_path / "portpack-cache").exists()
    assert not (tmp_path / "repacked.tar").exists()


def test_a_fifo_where_the_record_says_its_package_is_is_never_read(
    env: Path, server: FaultServer, tmp_path: Path
) -> None:
    trap = tmp_path / "trap"
    trap.mkdir()
    os.mkfifo(trap / HELLO)  # reading it would wait for a writer forever
    record_path = next((env / "conda-meta").glob("hello-c-*.json"))
    record = json.loads(record_path.read_text())
    record["package_tarball_full_path"] = str(trap / HELLO)
    record_path.write_text(json.dumps(record))
    asked = len(package_requests(server))
    _, warnings = pack(env, tmp_path)
    assert HELLO in package_requests(server)[asked:]
    assert any("not a regular file" in w for w in warnings)


def test_a_record_that_is_a_fifo_or_a_symlink_is_refused_without_reading(
    env: Path, tmp_path: Path
) -> None:
    os.mkfifo(env / "conda-meta" / "fifo-1.0-0.json")
    with pytest.raises(portpack.PackageError, match=r"fifo-1\.0-0\.json is not a regular file"):
        pack(env, tmp_path)
    os.unlink(env / "conda-meta" / "fifo-1.0-0.json")
    os.symlink("/dev/zero", env / "conda-meta" / "zero-1.0-0.json")
    with pytest.raises(portpack.PackageError, match=r"cannot read the record .*zero-1\.0-0\.json"):
        pack(env, tmp_path)


def test_deeply_nested_unowned_directories_are_reported(env: Path, tmp_path: Path) -> None:
    deep = env / "share"
    try:
        for _ in range(1200):  # deeper than Python's recursion limit
            deep = deep / "d"
            deep.mkdir()
        (deep / "leaf.txt").write_text("x\n")
        with pytest.raises(PrefixContentError) as info:
            pack(env, tmp_path)
        assert info.value.unowned == ["share/" + "d/" * 1200 + "leaf.txt"]
    finally:  # shallow first would need recursion to remove: remove from the bottom
        (deep / "leaf.txt").unlink(missing_ok=True)
        while deep != env / "share":
            deep.rmdir()
            deep = deep.parent


def test_not_an_environment_and_conflicting_options(env: Path, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(portpack.UsageError, match="is not a conda environment"):
        pack(tmp_path / "plain", tmp_path)
    with pytest.raises(portpack.UsageError, match="no such directory"):
        pack(tmp_path / "absent", tmp_path)
    with pytest.raises(portpack.UsageError, match="either --prefix or"):
        pack(env, tmp_path, lockfile=tmp_path / "pixi.lock")
    with pytest.raises(portpack.UsageError, match="--unowned needs --prefix"):
        portpack.pack(lockfile=tmp_path / "pixi.lock", unowned="ignore")
    with pytest.raises(portpack.UsageError, match="is for linux-64, not osx-arm64"):
        pack(env, tmp_path, platform="osx-arm64")


def test_cli_refuses_unowned_files_and_packs_with_the_flag(env: Path, tmp_path: Path) -> None:
    (env / "share" / "notes.txt").write_text("mine\n")
    command = [
        sys.executable,
        "-m",
        "portpack",
        "pack",
        "--prefix",
        str(env),
        "-o",
        str(tmp_path / "cli.tar"),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    refused = subprocess.run(command, capture_output=True, text=True, check=False)
    assert refused.returncode == 2
    assert "1 file that no conda package owns" in refused.stderr
    assert "share/notes.txt" in refused.stderr and "Traceback" not in refused.stderr
    packed = subprocess.run(
        [*command, "--unowned", "ignore"], capture_output=True, text=True, check=False
    )
    assert packed.returncode == 0, packed.stderr
    assert "warning" in packed.stderr and "share/notes.txt" in packed.stderr
    assert "Packed " in packed.stdout and (tmp_path / "cli.tar").is_file()


def test_dry_run_of_a_prefix_lists_its_packages_without_writing(env: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "portpack",
            "pack",
            "--prefix",
            str(env),
            "--dry-run",
            "--json",
            "-o",
            str(tmp_path / "never.tar"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    recorded = sorted(p.name for p in (env / "conda-meta").glob("*.json"))
    assert sorted(f"{p['name']}-{p['version']}-{p['build']}.json" for p in plan["packages"]) == (
        recorded
    )
    assert not (tmp_path / "never.tar").exists()
