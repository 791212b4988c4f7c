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
from portpack.errors import LockfileError, PreconditionError
from portpack.lockfile import read_lock

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
