"""``pack --inject FILE``: local packages added to the locked environment, validated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import portpack
from fetchsupport import REPO_ROOT
from portpack.errors import IncompleteEnvironmentError
from portpack.progress import RecordingReporter
from support.pkgwriter import Entry, PackageSpec, write_conda, write_tar_bz2


@pytest.fixture(scope="module")
def hello_lock(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lock") / "hello.lock"
    return portpack.lock(
        ["hello-c"], channels=[str(fixture_channel)], platforms=["linux-64"], output=out
    )


def _local(tmp: Path, name: str, depends: list[str], tar_bz2: bool = False, **kw: object) -> Path:
    spec = PackageSpec(
        name=name,
        version=str(kw.get("version", "2.0")),
        subdir=kw.get("subdir", "noarch"),  # type: ignore[arg-type]
        depends=depends,
        files={f"share/{name}/README": Entry.file(f"local {name}\n")},
    )
    return (write_tar_bz2 if tar_bz2 else write_conda)(tmp / "local", spec)


def test_injected_packages_are_packed_and_installed(hello_lock: Path, tmp_path: Path) -> None:
    plugin = _local(tmp_path, "plugin", ["hello-c >=1", "helper"])
    helper = _local(tmp_path, "helper", [], tar_bz2=True)
    result = portpack.pack(
        lockfile=hello_lock,
        output=tmp_path / "env.tar",
        cache_dir=tmp_path / "cache",
        inject=[plugin, helper],
    )
    assert sorted(result.packages) == ["hello-c-1.0-hb0f4dca_0", "helper-2.0-0", "plugin-2.0-0"]
    assert result.packages[-1] == "plugin-2.0-0"  # installed after its dependencies
    env = portpack.unpack(tmp_path / "env.tar", tmp_path / "out").prefix
    assert (env / "share" / "plugin" / "README").read_text() == "local plugin\n"
    assert (env / "share" / "helper" / "README").read_text() == "local helper\n"
    assert (env / "conda-meta" / "plugin-2.0-0.json").is_file()


def test_missing_dependencies_are_all_listed(hello_lock: Path, tmp_path: Path) -> None:
    broken = _local(tmp_path, "broken", ["hello-c >=2", "nowhere", "__glibc >=2.17"])
    other = _local(tmp_path, "other", ["also-missing 1.*"])
    with pytest.raises(IncompleteEnvironmentError) as info:
        portpack.pack(
            lockfile=hello_lock,
            output=tmp_path / "env.tar",
            cache_dir=tmp_path / "cache",
            inject=[broken, other],
        )
    assert info.value.missing == [
        ("broken-2.0-0", "hello-c >=2"),
        ("broken-2.0-0", "nowhere"),
        ("other-2.0-0", "also-missing 1.*"),
    ]
    assert not (tmp_path / "env.tar").exists()
    assert not (tmp_path / "cache").exists()  # validated before anything is fetched

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "portpack",
            "pack",
            "-l",
            str(hello_lock),
            "-o",
            "x.tar",
            "--cache-dir",
            str(tmp_path / "c"),
            "-i",
            str(broken),
            "--inject",
            str(other),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert cli.returncode == 1
    assert "3 dependencies are not satisfied" in cli.stderr
    for line in (
        "broken-2.0-0 needs hello-c >=2",
        "broken-2.0-0 needs nowhere",
        "other-2.0-0 needs also-missing 1.*",
    ):
        assert line in cli.stderr


def test_injected_package_replaces_the_locked_one(hello_lock: Path, tmp_path: Path) -> None:
    mine = _local(tmp_path, "hello-c", [], subdir="linux-64", version="9.0")
    reporter = RecordingReporter()
    result = portpack.pack(
        lockfile=hello_lock,
        output=tmp_path / "env.tar",
        cache_dir=tmp_path / "cache",
        inject=[mine],
        reporter=reporter,
    )
    assert result.packages == ["hello-c-9.0-0"]
    assert reporter.warnings == [
        "injected hello-c-9.0-0 replaces the locked hello-c-1.0-hb0f4dca_0"
    ]


def test_package_for_another_platform_or_not_a_package_is_refused(
    hello_lock: Path, tmp_path: Path
) -> None:
    arm = _local(tmp_path, "armpkg", [], subdir="linux-64")
    with pytest.raises(portpack.UsageError, match="is for linux-64, not linux-aarch64"):
        from portpack.packer.inject import local_records

        local_records([arm], "linux-aarch64")
    text = tmp_path / "notes.conda"
    text.write_text("not a zip")
    with pytest.raises(portpack.PackageError, match=r"--inject .*notes\.conda: cannot read"):
        portpack.pack(lockfile=hello_lock, output=tmp_path / "x.tar", inject=[text])
    with pytest.raises(portpack.UsageError, match="no such file"):
        portpack.pack(lockfile=hello_lock, output=tmp_path / "x.tar", inject=[tmp_path / "n.conda"])
