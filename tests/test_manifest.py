"""Tests of portpack.manifest: pixi.toml, pyproject.toml [tool.pixi] and environment.yml."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from portpack.errors import ManifestError
from portpack.manifest import Manifest, find_manifest, read_manifest


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


# --- pixi.toml -------------------------------------------------------------------------------


def test_pixi_workspace(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pixi.toml",
        """
        [workspace]
        name = "demo"
        channels = [
            "conda-forge",
            "https://example.com/channel",
            {channel = "bioconda", priority = 1},
        ]
        platforms = ["linux-64", "linux-aarch64"]

        [dependencies]
        python = "3.12.*"
        numpy = ">=1.2"
        zlib = "*"
        empty = ""
        pinned = "==1.0 "

        [target.linux-64.dependencies]
        glibc-tool = ">=2"
        [target.linux-aarch64.dependencies]
        arm-only = { version = "1.*" }
        [target.osx-arm64.activation]
        scripts = ["x.sh"]
        """,
    )
    manifest = read_manifest(path)
    assert manifest == Manifest(
        path=path,
        specs=["python 3.12.*", "numpy >=1.2", "zlib", "empty", "pinned ==1.0"],
        channels=["conda-forge", "https://example.com/channel", "bioconda"],
        platforms=["linux-64", "linux-aarch64"],
        target_specs={
            "linux-64": ["glibc-tool >=2"],
            "linux-aarch64": ["arm-only 1.*"],
            "osx-arm64": [],
        },
    )
    base = ["python 3.12.*", "numpy >=1.2", "zlib", "empty", "pinned ==1.0"]
    assert manifest.specs_for("linux-64") == [*base, "glibc-tool >=2"]
    assert manifest.specs_for("linux-aarch64") == [*base, "arm-only 1.*"]
    assert manifest.specs_for("linux-ppc64le") == base


def test_pixi_legacy_project_table(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pixi.toml",
        """
        [project]
        name = "old"
        channels = ["conda-forge"]
        platforms = ["linux-64"]

        [dependencies]
        python = ">=3.10,<3.13"
        """,
    )
    manifest = read_manifest(path)
    assert manifest.channels == ["conda-forge"]
    assert manifest.platforms == ["linux-64"]
    assert manifest.specs == ["python >=3.10,<3.13"]


@pytest.mark.parametrize(
    ("table", "spec"),
    [
        ('{ version = ">=1.2" }', "foo >=1.2"),
        ('{ version = "*" }', "foo"),
        ("{ }", "foo"),
        ('{ version = "1.2.*", build = "py312*" }', "foo 1.2.* py312*"),
        ('{ build = "cuda*" }', "foo * cuda*"),
        ('{ version = ">=1", channel = "bioconda" }', "bioconda::foo >=1"),
        ('{ channel = "conda-forge" }', "conda-forge::foo"),
        ('{ version = "2.*", build = "h1_0", channel = "x" }', "x::foo 2.* h1_0"),
    ],
)
def test_pixi_table_dependencies(tmp_path: Path, table: str, spec: str) -> None:
    path = _write(tmp_path, "pixi.toml", f"[workspace]\n[dependencies]\nfoo = {table}\n")
    assert read_manifest(path).specs == [spec]


def test_pixi_without_dependencies(tmp_path: Path) -> None:
    path = _write(tmp_path, "pixi.toml", '[workspace]\nname = "x"\n')
    manifest = read_manifest(path)
    assert (manifest.specs, manifest.channels, manifest.platforms) == ([], [], [])


def test_pyproject_tool_pixi(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pyproject.toml",
        """
        [project]
        name = "mypkg"
        version = "0.1"

        [tool.pixi.workspace]
        channels = ["conda-forge"]
        platforms = ["linux-64"]

        [tool.pixi.dependencies]
        python = "3.11.*"
        requests = { version = ">=2" }

        [tool.pixi.target.linux-64.dependencies]
        patchelf = "*"
        """,
    )
    manifest = read_manifest(path)
    assert manifest.channels == ["conda-forge"]
    assert manifest.platforms == ["linux-64"]
    assert manifest.specs == ["python 3.11.*", "requests >=2"]
    assert manifest.specs_for("linux-64") == ["python 3.11.*", "requests >=2", "patchelf"]


def test_pyproject_without_tool_pixi_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "pyproject.toml", '[project]\nname = "x"\n[tool.ruff]\nline-length = 1\n'
    )
    with pytest.raises(ManifestError, match=r"has no \[tool.pixi\] table"):
        read_manifest(path)


# --- environment.yml -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["environment.yml", "environment.yaml", "env.yml"])
def test_environment_yml(tmp_path: Path, name: str) -> None:
    path = _write(
        tmp_path,
        name,
        """
        name: demo
        channels:
          - conda-forge
          - bioconda
          - nodefaults
        dependencies:
          - python=3.12
          - numpy >=1.26
          - conda-forge::zlib
          - samtools
        """,
    )
    manifest = read_manifest(path)
    assert manifest == Manifest(
        path=path,
        specs=["python=3.12", "numpy >=1.26", "conda-forge::zlib", "samtools"],
        channels=["conda-forge", "bioconda"],
        platforms=[],
    )


def test_environment_yml_without_channels(tmp_path: Path) -> None:
    path = _write(tmp_path, "environment.yml", "dependencies:\n  - python\n")
    assert read_manifest(path).channels == []
    assert read_manifest(path).specs == ["python"]


def test_environment_yml_pip_section_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "environment.yml",
        """
        dependencies:
          - python
          - pip
          - pip:
            - requests==2.31
            - rich
        """,
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert str(path) in message
    assert "pip dependencies are not supported" in message
    assert "requests==2.31, rich" in message
    assert info.value.hint


def test_environment_yml_empty_pip_section_is_a_manifest_error(tmp_path: Path) -> None:
    # "- pip:" with every package commented out is YAML null, not a list.
    path = _write(tmp_path, "environment.yml", "dependencies:\n  - python\n  - pip:\n")
    with pytest.raises(ManifestError, match="pip"):
        read_manifest(path)


def test_environment_yml_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "environment.yml", "- python\n- numpy\n")
    with pytest.raises(ManifestError, match="is not a conda environment file"):
        read_manifest(path)


def test_environment_yml_invalid_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "environment.yml", "dependencies: [python\n")
    with pytest.raises(ManifestError, match=f"cannot read {path}"):
        read_manifest(path)


def test_environment_yml_odd_dependency(tmp_path: Path) -> None:
    path = _write(tmp_path, "environment.yml", "dependencies:\n  - {conda: x}\n")
    with pytest.raises(ManifestError, match="cannot understand dependency"):
        read_manifest(path)


# --- errors ----------------------------------------------------------------------------------


def test_pypi_dependencies_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pixi.toml",
        """
        [workspace]
        channels = ["conda-forge"]
        [dependencies]
        python = "*"
        [pypi-dependencies]
        requests = "*"
        """,
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(path) in str(info.value)
    assert "[pypi-dependencies] are not supported" in str(info.value)
    assert info.value.hint and "pixi.lock" in info.value.hint


def test_target_pypi_dependencies_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "pixi.toml", "[workspace]\n[target.linux-64.pypi-dependencies]\nrich = '*'\n"
    )
    with pytest.raises(ManifestError, match=r"\[target.linux-64.pypi-dependencies\]"):
        read_manifest(path)


def test_empty_pypi_dependencies_table_is_fine(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "pixi.toml", "[workspace]\n[dependencies]\na = '*'\n[pypi-dependencies]\n"
    )
    assert read_manifest(path).specs == ["a"]


@pytest.mark.parametrize(
    "table", ['{ path = "../foo" }', '{ git = "https://x/y.git" }', '{ url = "https://x/y.conda" }']
)
def test_source_dependencies_are_refused(tmp_path: Path, table: str) -> None:
    path = _write(tmp_path, "pixi.toml", f"[workspace]\n[dependencies]\nfoo = {table}\n")
    with pytest.raises(ManifestError, match="source dependency 'foo' is not supported"):
        read_manifest(path)


def test_odd_dependency_value_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "pixi.toml", "[workspace]\n[dependencies]\nfoo = 3\n")
    with pytest.raises(ManifestError, match="cannot understand dependency foo = 3"):
        read_manifest(path)


def test_odd_channel_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "pixi.toml", "[workspace]\nchannels = [{ name = 'x' }]\n")
    with pytest.raises(ManifestError, match="cannot understand channel"):
        read_manifest(path)


def test_redefined_default_environment_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "pixi.toml", "[workspace]\n[environments]\ndefault = ['x']\n")
    with pytest.raises(ManifestError, match="default environment"):
        read_manifest(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    with pytest.raises(ManifestError, match=f"manifest {path} does not exist"):
        read_manifest(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "pixi.toml", "[workspace\nchannels = [\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert f"cannot read {path}" in str(info.value)


# --- find_manifest ---------------------------------------------------------------------------


def test_find_manifest_prefers_pixi_toml(tmp_path: Path) -> None:
    _write(tmp_path, "environment.yml", "dependencies: [python]\n")
    _write(tmp_path, "pyproject.toml", "[tool.pixi.workspace]\n")
    assert find_manifest(tmp_path) == tmp_path / "pyproject.toml"
    _write(tmp_path, "pixi.toml", "[workspace]\n")
    assert find_manifest(tmp_path) == tmp_path / "pixi.toml"


def test_find_manifest_ignores_pyproject_without_tool_pixi(tmp_path: Path) -> None:
    _write(tmp_path, "pyproject.toml", "[project]\nname = 'x'\n[tool.black]\n")
    assert find_manifest(tmp_path) is None
    _write(tmp_path, "environment.yaml", "dependencies: [python]\n")
    assert find_manifest(tmp_path) == tmp_path / "environment.yaml"
    _write(tmp_path, "environment.yml", "dependencies: [python]\n")
    assert find_manifest(tmp_path) == tmp_path / "environment.yml"


def test_find_manifest_empty_directory(tmp_path: Path) -> None:
    assert find_manifest(tmp_path) is None


def test_find_manifest_ignores_a_directory_named_like_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").mkdir()
    _write(tmp_path, "environment.yml", "dependencies: [python]\n")
    assert find_manifest(tmp_path) == tmp_path / "environment.yml"
