"""Lockfiles: portpack's own, real pixi.lock files of several format versions, selection."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import rattler

import portpack
from portpack.conda.record import PackageRecord
from portpack.errors import (
    IncompleteEnvironmentError,
    LockfileError,
    PreconditionError,
    SolveError,
    UsageError,
)
from portpack.resolve.lockfile import read_lock
from portpack.resolve.locking import locked_records

DATA = Path(__file__).parent / "data"
PORTPACK = [sys.executable, "-m", "portpack"]


def render(template: str, channel: Path, dest: Path) -> Path:
    """Fill a lockfile template with the fixture channel's URL and package digests."""
    repodata = json.loads((channel / "noarch" / "repodata.json").read_text())
    records = {r["name"]: r for r in repodata["packages.conda"].values()}

    def field(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        return str(records[name][kind.lower()])

    text = (DATA / template).read_text().replace("@CHANNEL@", channel.as_uri() + "/")
    dest.write_text(re.sub(r"@(SHA256|MD5|SIZE):([\w-]+)@", field, text))
    return dest


@pytest.mark.parametrize("template", ["pixi-v5.lock.in", "pixi-v6.lock.in"])
def test_old_pixi_lock_versions_pack_with_env_and_platform(
    template: str, fixture_channel: Path, tmp_path: Path
) -> None:
    lock = render(template, fixture_channel, tmp_path / "pixi.lock")
    result = portpack.pack(
        lockfile=lock,
        environment="extra",
        platform="linux-64",
        output=tmp_path / "extra.tar",
        cache_dir=tmp_path / "cache",
    )
    assert sorted(result.packages) == ["actpkg-1.0-0", "clobber-a-1.0-0"]
    unpacked = portpack.unpack(tmp_path / "extra.tar", tmp_path / "out")
    assert (unpacked.prefix / "share/clobber.txt").is_file()
    default = portpack.pack(
        lockfile=lock,
        platform="linux-aarch64",
        output=tmp_path / "arm.tar",
        cache_dir=tmp_path / "cache",
    )
    assert default.platform == "linux-aarch64" and default.packages == ["actpkg-1.0-0"]


def test_pixi_lock_written_by_rattler_is_packed_via_cli(
    fixture_channel: Path, tmp_path: Path
) -> None:
    """A pixi.lock with two environments, written through py-rattler as pixi does."""
    records = {
        r.name.normalized: r for r in _solve(fixture_channel, ["hello-c", "actpkg", "clobber-a"])
    }
    lock = rattler.LockFile([rattler.LockPlatform("linux-64")])
    platform = rattler.LockPlatform("linux-64")
    for env, names in (("default", ["hello-c"]), ("tools", ["actpkg", "clobber-a"])):
        lock.set_channels(env, [rattler.LockChannel(fixture_channel.as_uri() + "/")])
        for name in names:
            lock.add_conda_package(env, platform, records[name])
    lock.to_path(tmp_path / "pixi.lock")
    (tmp_path / "pixi.toml").write_text(
        '[workspace]\nname = "x"\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n'
    )
    out = subprocess.run(
        [
            *PORTPACK,
            "pack",
            "-m",
            "pixi.toml",
            "-e",
            "tools",
            "-p",
            "linux-64",
            "--cache-dir",
            "cache",
            "-o",
            "tools.tar",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = portpack.unpack(tmp_path / "tools.tar", tmp_path / "o")
    assert sorted(p.split("-1.0")[0] for p in result.packages) == ["actpkg", "clobber-a"]


def _solve(channel: Path, specs: list[str]) -> list[rattler.RepoDataRecord]:
    import asyncio

    return asyncio.run(
        rattler.solve([rattler.Channel(str(channel))], specs, platforms=["linux-64", "noarch"])
    )


def test_missing_environment_and_platform_are_named(fixture_channel: Path, tmp_path: Path) -> None:
    lock = render("pixi-v6.lock.in", fixture_channel, tmp_path / "pixi.lock")
    with pytest.raises(LockfileError, match=r"no environment 'nope'.*default, extra"):
        read_lock(lock, "nope", "linux-64")
    with pytest.raises(LockfileError, match="not locked for osx-arm64"):
        read_lock(lock, "default", "osx-arm64")


def test_archive_for_other_platform_is_refused_on_unpack(
    fixture_channel: Path, tmp_path: Path
) -> None:
    lock = render("pixi-v6.lock.in", fixture_channel, tmp_path / "pixi.lock")
    portpack.pack(
        lockfile=lock,
        platform="linux-aarch64",
        output=tmp_path / "arm.tar",
        cache_dir=tmp_path / "cache",
    )
    with pytest.raises(PreconditionError, match="for linux-aarch64 but this machine is linux-64"):
        portpack.unpack(tmp_path / "arm.tar", tmp_path / "out")
    assert not (tmp_path / "out" / "env").exists()


def test_portpack_lock_is_read_back_by_rattler(fixture_channel: Path, tmp_path: Path) -> None:
    path = portpack.lock(
        ["actpkg", "clobber-a"],
        channels=[str(fixture_channel)],
        platforms=["linux-64", "linux-aarch64"],
        output=tmp_path / "p.lock",
    )
    lock = rattler.LockFile.from_path(path)
    env = lock.default_environment()
    assert env is not None
    assert sorted(p.name for p in env.platforms()) == ["linux-64", "linux-aarch64"]
    names = {
        r.name.normalized for r in env.conda_repodata_records_for_platform(env.platforms()[0]) or []
    }
    assert names == {"actpkg", "clobber-a"}


# --- what a lock holds that portpack cannot pack as is ---------------------------------------

SOURCE_LOCK = """\
version: 6
environments:
  default:
    channels:
    - url: @CHANNEL@
    packages:
      linux-64:
      - conda: @CHANNEL@noarch/actpkg-1.0-0.conda
      - conda: .
      - conda: ./tools
@EXTRA_ENVS@
packages:
- conda: @CHANNEL@noarch/actpkg-1.0-0.conda
  subdir: noarch
  noarch: generic
  sha256: @SHA256:actpkg@
  md5: @MD5:actpkg@
  license: MIT
  size: @SIZE:actpkg@
  timestamp: 1700000000000
- conda: .
  name: mysrc
  version: 0.1.0
  build: h1234_0
  subdir: noarch
  variants:
    target_platform: noarch
  depends:
  - actpkg
- conda: ./tools
  name: mytool
  version: '2.0'
  build: h5678_0
  subdir: noarch
  depends:
  - mysrc
@EXTRA_PACKAGES@
"""

ONLY_SOURCE_ENV = """\
  only-source:
    channels:
    - url: @CHANNEL@
    packages:
      linux-64:
      - conda: .
  only-pypi:
    channels:
    - url: @CHANNEL@
    packages:
      linux-64:
      - pypi: https://example.com/wheels/rich-13.0-py3-none-any.whl
  no-python:
    channels:
    - url: @CHANNEL@
    packages:
      linux-64:
      - conda: @CHANNEL@noarch/greetlib-1.0-0.conda
      - conda: @CHANNEL@noarch/actpkg-1.0-0.conda"""

EXTRA_PACKAGES = """\
- pypi: https://example.com/wheels/rich-13.0-py3-none-any.whl
  name: rich
  version: '13.0'
  sha256: 0000000000000000000000000000000000000000000000000000000000000000
- conda: @CHANNEL@noarch/greetlib-1.0-0.conda
  subdir: noarch
  noarch: python
  sha256: @SHA256:greetlib@
  md5: @MD5:greetlib@
  depends:
  - python
  license: MIT
  size: @SIZE:greetlib@
  timestamp: 1700000000000"""


@pytest.fixture
def source_lock(fixture_channel: Path, tmp_path: Path) -> Path:
    template = tmp_path / "source.lock.in"
    text = SOURCE_LOCK.replace("@EXTRA_ENVS@", ONLY_SOURCE_ENV)
    template.write_text(text.replace("@EXTRA_PACKAGES@", EXTRA_PACKAGES))
    return render(str(template), fixture_channel, tmp_path / "pixi.lock")


def _built(tmp_path: Path, name: str, version: str, depends: list[str]) -> Path:
    from support.pkgwriter import PackageSpec, write_conda

    spec = PackageSpec(name, version, depends=depends, files={f"share/{name}.txt": name})
    return write_conda(tmp_path / "built", spec)


def test_source_packages_are_read_from_the_lock(source_lock: Path) -> None:
    locked = read_lock(source_lock, "default", "linux-64")
    assert [r.name for r in locked.records] == ["actpkg"]
    assert [s.describe() for s in locked.sources] == [
        "mysrc 0.1.0 h1234_0 (conda: .)",
        "mytool 2.0 h5678_0 (conda: ./tools)",
    ]


def test_source_packages_are_refused_by_name(source_lock: Path, tmp_path: Path) -> None:
    with pytest.raises(LockfileError) as info:
        portpack.pack(lockfile=source_lock, output=tmp_path / "x.tar", cache_dir=tmp_path / "c")
    message = str(info.value)
    assert "2 source packages" in message
    assert "mysrc 0.1.0 h1234_0 (conda: .)" in message
    assert "mytool 2.0 h5678_0 (conda: ./tools)" in message
    assert info.value.hint and "--inject" in info.value.hint
    assert not (tmp_path / "x.tar").exists()


def test_injected_builds_take_the_place_of_source_packages(
    source_lock: Path, tmp_path: Path
) -> None:
    mysrc = _built(tmp_path, "mysrc", "0.1.0", ["actpkg"])
    mytool = _built(tmp_path, "mytool", "2.0", ["mysrc"])
    with pytest.raises(LockfileError, match=r"mytool 2.0 h5678_0 \(conda: ./tools\): not built"):
        portpack.pack(
            lockfile=source_lock,
            output=tmp_path / "x.tar",
            cache_dir=tmp_path / "c",
            inject=[mysrc],
        )
    result = portpack.pack(
        lockfile=source_lock,
        output=tmp_path / "env.tar",
        cache_dir=tmp_path / "c",
        inject=[mysrc, mytool],
    )
    assert [p.rsplit("-", 2)[0] for p in result.packages] == ["actpkg", "mysrc", "mytool"]
    unpacked = portpack.unpack(tmp_path / "env.tar", tmp_path / "out")
    assert (unpacked.prefix / "share/mytool.txt").read_text() == "mytool"


def test_injected_build_of_another_version_is_refused(source_lock: Path, tmp_path: Path) -> None:
    wrong = _built(tmp_path, "mysrc", "0.2.0", ["actpkg"])
    tool = _built(tmp_path, "mytool", "2.0", ["mysrc"])
    with pytest.raises(
        LockfileError, match=r"mysrc 0.1.0 h1234_0 \(conda: .\): --inject gives version 0.2.0"
    ):
        portpack.pack(
            lockfile=source_lock,
            output=tmp_path / "x.tar",
            cache_dir=tmp_path / "c",
            inject=[wrong, tool],
        )


def test_a_lock_of_only_source_packages_names_them(source_lock: Path, tmp_path: Path) -> None:
    with pytest.raises(LockfileError) as info:
        portpack.pack(
            lockfile=source_lock,
            environment="only-source",
            output=tmp_path / "x.tar",
            cache_dir=tmp_path / "c",
        )
    assert "1 source package (built by pixi-build)" in str(info.value)
    assert "mysrc 0.1.0" in str(info.value)
    assert "no packages" not in str(info.value)


def test_an_environment_of_only_pypi_packages_says_so(source_lock: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [*PORTPACK, "pack", "-l", str(source_lock), "-e", "only-pypi", "-o", "x.tar"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert "has only PyPI packages (rich) and no conda packages" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "x.tar").exists()


def test_noarch_python_without_python_is_refused_at_pack_time(
    source_lock: Path, tmp_path: Path
) -> None:
    with pytest.raises(IncompleteEnvironmentError) as info:
        portpack.pack(
            lockfile=source_lock,
            environment="no-python",
            output=tmp_path / "x.tar",
            cache_dir=tmp_path / "c",
        )
    assert "noarch python packages but no python package" in str(info.value)
    assert "greetlib-1.0-0" in str(info.value)
    assert not (tmp_path / "x.tar").exists()


# -- typed records and atomic writing ---------------------------------------------------------


def test_read_lock_gives_typed_records_dependencies_first(
    fixture_channel: Path, tmp_path: Path
) -> None:
    lock = render("pixi-v6.lock.in", fixture_channel, tmp_path / "pixi.lock")
    locked = read_lock(lock, "extra", "linux-64")
    assert all(isinstance(r, PackageRecord) for r in locked.records)
    by_name = {r.name: r for r in locked.records}
    repodata = json.loads((fixture_channel / "noarch" / "repodata.json").read_text())
    published = {r["name"]: r for r in repodata["packages.conda"].values()}
    for name, record in by_name.items():
        assert record.sha256 == published[name]["sha256"]
        assert record.dist == f"{name}-{record.version}-{record.build}"
        assert record.url is not None and record.url.startswith(fixture_channel.as_uri())
        assert record.to_json()["fn"] == record.fn  # the JSON behind it is kept whole
    seen: set[str] = set()
    for record in locked.records:  # every dependency in the set comes before its dependent
        needs = {d.split()[0] for d in record.depends} & set(by_name)
        assert needs <= seen, (record.name, needs - seen)
        seen.add(record.name)


def test_locked_records_of_a_solve_are_typed(fixture_channel: Path) -> None:
    _, records = locked_records(["actpkg"], channels=[str(fixture_channel)])
    assert [r.name for r in records] == ["actpkg"]
    assert isinstance(records[0], PackageRecord) and records[0].subdir == "noarch"


def test_lock_writes_whole_or_nothing(fixture_channel: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir" / "env.lock"
    written = portpack.lock(["actpkg"], channels=[str(fixture_channel)], output=out)
    assert written == out and [r.name for r in read_lock(out, "default", _here()).records] == [
        "actpkg"
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["env.lock"]  # no temp file left
    before = out.read_bytes()
    with pytest.raises(SolveError):
        portpack.lock(["no-such-package"], channels=[str(fixture_channel)], output=out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["env.lock"]


def test_a_failed_lock_write_leaves_nothing(fixture_channel: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # the output is a directory: refused, and nothing is written
    (target / "keep").write_text("x")
    with pytest.raises(UsageError):
        portpack.lock(["actpkg"], channels=[str(fixture_channel)], output=target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert sorted(p.name for p in target.iterdir()) == ["keep"]


def _here() -> str:
    from portpack._platform import current_platform

    return current_platform()


def test_a_lock_write_that_fails_midway_leaves_the_old_lock(
    fixture_channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk cannot be had here: the writer is made to fail after half a file."""
    import errno

    out = tmp_path / "env.lock"
    out.write_text("the old lock\n")

    def half_then_full(self: rattler.LockFile, path: object) -> None:
        Path(str(path)).write_text("version: 6\nenvironments:\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rattler.LockFile, "to_path", half_then_full)
    with pytest.raises(UsageError, match=r"env\.lock"):
        portpack.lock(["actpkg"], channels=[str(fixture_channel)], output=out)
    assert out.read_text() == "the old lock\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.lock"]
