"""Manifests solved end to end against a local channel: what pixi would lock is locked."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import rattler

import portpack
from portpack.errors import ManifestError, SolveError
from support.channel import index_channel
from support.pkgwriter import PackageSpec, write_conda

PACKAGES = [
    PackageSpec("base-pkg", "1.0", build="h1_0"),
    PackageSpec("base-pkg", "1.1", build="h1_0"),
    PackageSpec("unix-pkg", "1.0"),
    PackageSpec("linux-pkg", "1.0"),
    PackageSpec("osx-pkg", "1.0"),
    PackageSpec("needs-cuda", "1.0", depends=["__cuda >=12"]),
    PackageSpec("needs-new-glibc", "1.0", depends=["__glibc >=2.99"]),
    PackageSpec("tool", "1.0"),
]


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("channel")
    (root / "linux-64").mkdir()
    for spec in PACKAGES:
        write_conda(root / "noarch", spec)
    index_channel(root)
    return root


def _manifest(directory: Path, channel: Path, body: str) -> Path:
    path = directory / "pixi.toml"
    header = f"[workspace]\nchannels = [{str(channel)!r}]\nplatforms = ['linux-64']\n"
    path.write_text(header + textwrap.dedent(body))
    return path


def _locked(lock: Path, platform: str = "linux-64", env: str = "default") -> dict[str, str]:
    environment = rattler.LockFile.from_path(lock).environment(env)
    assert environment is not None
    (chosen,) = [p for p in environment.platforms() if p.name == platform]
    records = environment.conda_repodata_records_for_platform(chosen) or []
    return {r.name.normalized: str(r.version) for r in records}


def test_toml_11_spec_table_and_selectors_are_solved(channel: Path, tmp_path: Path) -> None:
    manifest = _manifest(
        tmp_path,
        channel,
        """
        [dependencies]
        base-pkg = {
            version = "1.0",
            build = "h1_*",
        }
        [target.unix.dependencies]
        unix-pkg = "*"
        [target.linux.dependencies]
        linux-pkg = "*"
        [target.osx.dependencies]
        osx-pkg = "*"
        """,
    )
    lock = portpack.lock(manifest=manifest, output=tmp_path / "pixi.lock")
    # the bare version in the table is ==1.0 (1.1 would win otherwise)
    assert _locked(lock) == {"base-pkg": "1.0", "unix-pkg": "1.0", "linux-pkg": "1.0"}
    osx = portpack.lock(manifest=manifest, platforms=["osx-arm64"], output=tmp_path / "o.lock")
    assert _locked(osx, "osx-arm64") == {"base-pkg": "1.0", "unix-pkg": "1.0", "osx-pkg": "1.0"}


def test_system_requirements_are_the_solves_virtual_packages(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONDA_OVERRIDE_CUDA", raising=False)
    monkeypatch.delenv("CONDA_OVERRIDE_GLIBC", raising=False)
    without = _manifest(tmp_path, channel, "[dependencies]\nneeds-cuda = '*'\n")
    with pytest.raises(SolveError, match="__cuda"):
        portpack.lock(manifest=without, output=tmp_path / "x.lock")
    with_cuda = _manifest(
        tmp_path,
        channel,
        """
        [dependencies]
        needs-cuda = "*"
        needs-new-glibc = "*"
        [system-requirements]
        cuda = "12.4"
        libc = { family = "glibc", version = "2.99" }
        """,
    )
    lock = portpack.lock(manifest=with_cuda, output=tmp_path / "pixi.lock")
    assert _locked(lock) == {"needs-cuda": "1.0", "needs-new-glibc": "1.0"}


def test_platform_table_declares_virtual_packages(channel: Path, tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [workspace]
            channels = [{str(channel)!r}]
            platforms = [{{ platform = "linux-64", cuda = "12.0" }}]
            [dependencies]
            needs-cuda = "*"
            """
        )
    )
    lock = portpack.lock(manifest=path, output=tmp_path / "pixi.lock")
    assert _locked(lock) == {"needs-cuda": "1.0"}


def test_pack_an_environment_of_features_from_a_manifest(channel: Path, tmp_path: Path) -> None:
    manifest = _manifest(
        tmp_path,
        channel,
        """
        [dependencies]
        base-pkg = "*"
        [feature.tools.dependencies]
        tool = "*"
        [feature.gpu.system-requirements]
        cuda = "12"
        [feature.gpu.dependencies]
        needs-cuda = "*"
        [environments]
        tools = ["tools"]
        gpu = { features = ["gpu", "tools"], no-default-feature = true }
        """,
    )
    result = portpack.pack(
        manifest=manifest,
        environment="tools",
        platform="linux-64",
        output=tmp_path / "tools.tar",
        cache_dir=tmp_path / "cache",
    )
    assert sorted(result.packages) == ["base-pkg-1.1-h1_0", "tool-1.0-0"]
    gpu = portpack.lock(manifest=manifest, environment="gpu", output=tmp_path / "gpu.lock")
    assert _locked(gpu, env="gpu") == {"needs-cuda": "1.0", "tool": "1.0"}


def test_pypi_dependencies_are_refused_when_locking(channel: Path, tmp_path: Path) -> None:
    manifest = _manifest(
        tmp_path, channel, "[dependencies]\nbase-pkg = '*'\n[pypi-dependencies]\nrich = '*'\n"
    )
    with pytest.raises(ManifestError, match=r"PyPI dependencies.*\[pypi-dependencies\]"):
        portpack.lock(manifest=manifest, output=tmp_path / "x.lock")
    assert not (tmp_path / "x.lock").exists()


def test_cli_names_the_manifest_key_without_traceback(channel: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    manifest = _manifest(tmp_path, channel, "[dependencies]\nbase-pkg = { colour = 'red' }\n")
    out = subprocess.run(
        [sys.executable, "-m", "portpack", "lock", "-m", str(manifest), "-o", "x.lock"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert "[dependencies] base-pkg: unsupported key 'colour'" in out.stderr
    assert "Traceback" not in out.stderr
