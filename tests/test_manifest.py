"""Tests of portpack.resolve.manifest: pixi.toml, pyproject.toml [tool.pixi] and environment.yml,
read as pixi and conda read them (the shapes of pixi's own manifests and examples)."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portpack.errors import ManifestError
from portpack.resolve.manifest import (
    DEFAULTS_UNIX,
    DEFAULTS_WIN,
    Manifest,
    Platform,
    find_manifest,
    read_manifest,
)


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def _pixi(tmp_path: Path, text: str) -> Manifest:
    return read_manifest(_write(tmp_path, "pixi.toml", text))


def _refused(tmp_path: Path, text: str, name: str = "pixi.toml") -> ManifestError:
    path = _write(tmp_path, name, text)
    with pytest.raises(ManifestError) as info:
        read_manifest(path).solvable()
    assert str(path) in str(info.value)
    return info.value


# --- pixi.toml -------------------------------------------------------------------------------


def test_pixi_workspace(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
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
    base = ["python 3.12.*", "numpy >=1.2", "zlib", "empty", "pinned ==1.0"]
    assert manifest.specs == base
    # channel priority: bioconda (priority 1) before the others, in manifest order.
    assert manifest.channels_for() == ["bioconda", "conda-forge", "https://example.com/channel"]
    assert [p.name for p in manifest.platforms] == ["linux-64", "linux-aarch64"]
    assert manifest.specs_for("linux-64") == [*base, "glibc-tool >=2"]
    assert manifest.specs_for("linux-aarch64") == [*base, "arm-only 1.*"]
    assert manifest.specs_for("linux-ppc64le") == base


def test_pixi_legacy_project_table(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [project]
        name = "old"
        channels = ["conda-forge"]
        platforms = ["linux-64"]

        [dependencies]
        python = ">=3.10,<3.13"
        """,
    )
    solvable = manifest.solvable()
    assert (solvable.channels, solvable.platform) == (["conda-forge"], "linux-64")
    assert solvable.specs == ["python >=3.10,<3.13"]


TOML_11 = """
    [workspace]
    channels = ["conda-forge"]
    platforms = ["linux-64"]

    [dependencies]
    openssl = {
        version = "3.3.1",
        build = "*_0",
    }
    python = { version = ">=3.12",
               channel = "conda-forge" }
    """


def test_toml_11_multiline_inline_tables_in_pixi_toml(tmp_path: Path) -> None:
    """pixi reads TOML 1.1 (its docs' own example); tomllib refuses it."""
    manifest = _pixi(tmp_path, TOML_11)
    assert manifest.specs == ["openssl ==3.3.1 *_0", "conda-forge::python >=3.12"]


def test_toml_11_multiline_inline_tables_in_pyproject(tmp_path: Path) -> None:
    body = textwrap.dedent(TOML_11).replace("[workspace]", "[tool.pixi.workspace]")
    text = "[project]\nname = 'x'\n" + body.replace("[dependencies]", "[tool.pixi.dependencies]")
    path = _write(tmp_path, "pyproject.toml", text)
    assert find_manifest(tmp_path) == path
    assert read_manifest(path).specs == ["openssl ==3.3.1 *_0", "conda-forge::python >=3.12"]


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        # pixi: a bare version is == (it warns that it assumes so), string or table.
        ('"3.3.1"', "foo ==3.3.1"),
        ('{ version = "3.3.1", build = "*_0" }', "foo ==3.3.1 *_0"),
        ('{ version = ">=1.2" }', "foo >=1.2"),
        ('{ version = "*" }', "foo"),
        ('"1.2.*"', "foo 1.2.*"),
        ('"3.3.1|3.4"', "foo ==3.3.1|==3.4"),
        ('{ version = "1.2.*", build = "py312*" }', "foo 1.2.* py312*"),
        ('{ build = "cuda*" }', 'foo[build="cuda*"]'),
        ('{ version = ">=1", channel = "bioconda" }', "bioconda::foo >=1"),
        ('{ channel = "conda-forge" }', "conda-forge::foo"),
        ('{ channel = "https://example.com/ch" }', 'foo[channel="https://example.com/ch/"]'),
        ('{ version = "2.*", build = "h1_0", channel = "x" }', "x::foo 2.* h1_0"),
        ('{ version = "3.11.0", build-number = ">=1" }', 'foo ==3.11.0[build_number=">=1"]'),
        ("{ build-number = 2 }", 'foo[build_number="==2"]'),
        ('{ subdir = "linux-64" }', 'foo[subdir="linux-64"]'),
        ('{ license = "MIT" }', 'foo[license="MIT"]'),
        ('{ md5 = "' + "ab" * 16 + '" }', 'foo[md5="' + "ab" * 16 + '"]'),
        ('{ sha256 = "' + "cd" * 32 + '" }', 'foo[sha256="' + "cd" * 32 + '"]'),
        ('{ file-name = "foo-1.0-0.conda" }', 'foo[fn="foo-1.0-0.conda"]'),
    ],
)
def test_pixi_spec_values(tmp_path: Path, value: str, spec: str) -> None:
    manifest = _pixi(tmp_path, f"[workspace]\n[dependencies]\nfoo = {value}\n")
    assert manifest.specs == [spec]
    import rattler

    rattler.MatchSpec(spec, strict=True)  # what the solver accepts


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ('{ when = "__win" }', "unsupported key 'when'"),
        ('{ version = "1", colour = "red" }', "unsupported key 'colour'"),
        ("{ }", "empty table"),
        ("{ version = 3 }", "must be a string"),
        ('{ version = ["1"] }', "must be a string"),
        ('{ version = "1.2.3.4.5.x,,," }', "invalid version"),
        ("{ build-number = true }", "must be a string"),
        ('{ md5 = "zz" }', "invalid package spec"),
        ('{ path = "../foo" }', "source dependency 'foo'"),
        ('{ git = "https://x/y.git" }', "source dependency 'foo'"),
        ('{ url = "https://x/y.conda" }', "source dependency 'foo'"),
        ("3", "cannot understand dependency foo = 3"),
        ('{ build = "x\\"y" }', "contains a quote"),
        ("{ workspace = true }", "inherits from the workspace"),
    ],
)
def test_pixi_bad_spec_values_name_the_key(tmp_path: Path, value: str, named: str) -> None:
    error = _refused(tmp_path, f"[workspace]\n[dependencies]\nfoo = {value}\n")
    assert "[dependencies] foo" in str(error)
    assert named in str(error)


def test_source_dependency_says_how_to_provide_it(tmp_path: Path) -> None:
    error = _refused(tmp_path, '[workspace]\n[dependencies]\nfoo = { path = "." }\n')
    assert error.hint and "--inject" in error.hint


def test_workspace_dependency_pool(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [workspace]
        [workspace.dependencies]
        numpy = "1.*"
        [dependencies]
        numpy = { workspace = true }
        """,
    )
    assert manifest.specs == ["numpy 1.*"]


def test_host_and_build_dependencies_overwrite_run_dependencies(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [workspace]
        [dependencies]
        a = "1.*"
        [host-dependencies]
        a = "1.2.*"
        b = "*"
        [build-dependencies]
        c = ">=3"
        """,
    )
    assert manifest.specs == ["a 1.2.*", "b", "c >=3"]


def test_constraints(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [workspace]
        [dependencies]
        requests = ">=2.28"
        [constraints]
        openssl = ">=3.0"
        [target.linux.constraints]
        zlib = "<2"
        """,
    )
    assert manifest.solvable(platform="linux-64").constraints == ["openssl >=3.0", "zlib <2"]
    assert manifest.solvable(platform="osx-64").constraints == ["openssl >=3.0"]


def test_pixi_without_dependencies(tmp_path: Path) -> None:
    manifest = _pixi(tmp_path, '[workspace]\nname = "x"\n')
    assert (manifest.specs, manifest.channels_for(), manifest.platforms) == ([], [], [])


# --- platforms -------------------------------------------------------------------------------


def test_platform_tables_as_pixi_writes_them(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [workspace]
        channels = ["conda-forge"]
        platforms = [
          "osx-arm64",
          { platform = "linux-64", cuda = "12.0", glibc = "2.28" },
          { name = "jetson-nano", platform = "linux-aarch64", cuda = "12.8", __foo = "1" },
          { name = "win-64" },
        ]
        [dependencies]
        python = "*"
        """,
    )
    assert manifest.platforms == [
        Platform("osx-arm64", "osx-arm64"),
        Platform("linux-64", "linux-64", (("__cuda", ("12.0", "0")), ("__glibc", ("2.28", "0")))),
        Platform(
            "jetson-nano",
            "linux-aarch64",
            (("__cuda", ("12.8", "0")), ("__foo", ("1", "0"))),
        ),
        Platform("win-64", "win-64"),
    ]
    jetson = manifest.solvable(platform="jetson-nano")
    assert jetson.platform == "linux-aarch64"
    assert jetson.virtual == {"__cuda": ("12.8", "0"), "__foo": ("1", "0")}
    # a subdir picks its only platform
    assert manifest.solvable(platform="linux-aarch64").virtual["__cuda"] == ("12.8", "0")
    assert manifest.solvable(platform="osx-arm64").virtual == {}
    # a subdir the manifest does not list is solved with no declared virtual packages
    assert manifest.solvable(platform="linux-ppc64le").platform == "linux-ppc64le"


def test_two_platforms_of_one_subdir_need_a_name(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [workspace]
        platforms = [
          { name = "linux-64-cuda", platform = "linux-64", cuda = "12.0" },
          { name = "linux-64-cpu", platform = "linux-64" },
        ]
        [dependencies]
        python = "*"
        [target."*-cuda".dependencies]
        cuda-runtime = "*"
        """,
    )
    with pytest.raises(
        ManifestError, match=r"several platforms .* \(linux-64-cuda, linux-64-cpu\)"
    ):
        manifest.solvable(platform="linux-64")
    assert manifest.solvable(platform="linux-64-cuda").specs == ["python", "cuda-runtime"]
    assert manifest.solvable(platform="linux-64-cpu").specs == ["python"]
    assert manifest.solvable(platform="linux-64-cpu").virtual == {}


@pytest.mark.parametrize(
    ("platforms", "named"),
    [
        ("3", "[workspace.platforms] must be an array"),
        ("[3]", "[workspace.platforms][0] must be a table"),
        ('["linux-65"]', "unknown platform 'linux-65'"),
        ('[{ name = "x" }]', "unknown platform 'x'"),
        ('[{ platform = "linux-64", gpu = "1" }]', "unknown key 'gpu'"),
        ('[{ platform = "linux-64", cuda = 12 }]', "must be a string"),
        ('[{ platform = "linux-64", cuda = "a.b.c!" }]', "is not a version"),
        ('["linux-64", "linux-64"]', "listed twice"),
        ("[[1, 2]]", "must be a table"),
    ],
)
def test_bad_platforms_name_the_key(tmp_path: Path, platforms: str, named: str) -> None:
    error = _refused(tmp_path, f"[workspace]\nplatforms = {platforms}\n")
    assert named in str(error)


# --- target selectors ------------------------------------------------------------------------

SELECTORS = """
    [workspace]
    platforms = ["linux-64", "linux-aarch64", "osx-arm64", "osx-64", "win-64"]
    [dependencies]
    base = "*"
    [target.unix.dependencies]
    unix-only = "*"
    [target.linux.dependencies]
    linux-only = "*"
    [target.osx.dependencies]
    osx-only = "*"
    [target.win.dependencies]
    win-only = "*"
    [target.osx-arm64.dependencies]
    arm-mac = "*"
    [target."linux-*".dependencies]
    base = ">=2"
    """


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux-64", ["base >=2", "unix-only", "linux-only"]),
        ("linux-aarch64", ["base >=2", "unix-only", "linux-only"]),
        ("osx-arm64", ["base", "unix-only", "osx-only", "arm-mac"]),
        ("osx-64", ["base", "unix-only", "osx-only"]),
        ("win-64", ["base", "win-only"]),
    ],
)
def test_target_selectors_apply_as_in_pixi(
    tmp_path: Path, platform: str, expected: list[str]
) -> None:
    """unix = linux + osx, linux = every linux-*, a glob on the platform name; a later
    matching target replaces a package's spec."""
    assert _pixi(tmp_path, SELECTORS).specs_for(platform) == expected


def test_expression_selector_is_refused(tmp_path: Path) -> None:
    error = _refused(
        tmp_path, "[workspace]\n[target.\"if(host_platform == 'linux-64')\".dependencies]\n"
    )
    assert "if(...)" in str(error)


# --- system requirements ---------------------------------------------------------------------


def test_system_requirements_become_virtual_packages(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [workspace]
        platforms = ["linux-64", "osx-arm64", "win-64"]
        [dependencies]
        python = "*"
        [system-requirements]
        linux = "5.10"
        libc = { family = "glibc", version = "2.17" }
        cuda = "12"
        macos = "13.0"
        archspec = "x86_64_v3"
        """,
    )
    assert manifest.solvable(platform="linux-64").virtual == {
        "__linux": ("5.10", "0"),
        "__glibc": ("2.17", "0"),
        "__cuda": ("12", "0"),
        "__archspec": ("1", "x86_64_v3"),
    }
    assert manifest.solvable(platform="osx-arm64").virtual == {
        "__cuda": ("12", "0"),
        "__osx": ("13.0", "0"),
        "__archspec": ("1", "x86_64_v3"),
    }
    assert "__glibc" not in manifest.solvable(platform="win-64").virtual


def test_libc_as_a_string_and_another_family(tmp_path: Path) -> None:
    base = "[workspace]\nplatforms = ['linux-64']\n[system-requirements]\n"
    assert _pixi(tmp_path, base + 'libc = "2.31"\n').solvable().virtual == {
        "__glibc": ("2.31", "0")
    }
    musl = _pixi(tmp_path, base + 'libc = { family = "musl", version = "1.2" }\n')
    assert musl.solvable().virtual == {"__musl": ("1.2", "0")}


def test_feature_system_requirements_combine_highest_wins(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [workspace]
        platforms = ["linux-64"]
        [system-requirements]
        cuda = "11.8"
        [feature.gpu.system-requirements]
        cuda = "12.4"
        [environments]
        gpu = ["gpu"]
        """,
    )
    assert manifest.solvable("gpu").virtual == {"__cuda": ("12.4", "0")}
    assert manifest.solvable().virtual == {"__cuda": ("11.8", "0")}


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('gpu = "1"', "unknown system requirement"),
        ("cuda = true", "must be a string"),
        ('libc = { family = "glibc" }', "libc takes family and version"),
        ("libc = [1]", "must be a string"),
    ],
)
def test_bad_system_requirements(tmp_path: Path, table: str, named: str) -> None:
    error = _refused(tmp_path, f"[workspace]\n[system-requirements]\n{table}\n")
    assert "[system-requirements]" in str(error) and named in str(error)


# --- features and environments ---------------------------------------------------------------

ENVIRONMENTS = """
    [workspace]
    channels = ["conda-forge"]
    platforms = ["linux-64", "osx-arm64", "win-64"]

    [dependencies]
    python = "3.12.*"

    [feature.test.dependencies]
    pytest = "*"
    python = ">=3.10"

    [feature.cuda]
    channels = [{ channel = "nvidia", priority = 1 }, "conda-forge"]
    platforms = ["linux-64", "win-64"]
    system-requirements = { cuda = "12" }
    [feature.cuda.dependencies]
    cuda-runtime = "*"
    [feature.cuda.target.win.dependencies]
    cuda-win = "*"

    [feature.lint]
    platforms = ["linux-64", "osx-arm64"]
    [feature.lint.dependencies]
    ruff = "*"

    [environments]
    test = ["test"]
    gpu = { features = ["cuda", "test"] }
    lint = { features = ["lint"], no-default-feature = true }
    both = ["cuda", "lint"]
    grouped = { features = ["test"], solve-group = "default" }
    """


def test_environments_compose_features_as_pixi(tmp_path: Path) -> None:
    manifest = _pixi(tmp_path, ENVIRONMENTS)
    assert manifest.environment_names() == ["default", "test", "gpu", "lint", "both", "grouped"]
    # the environment's features in order, then the default feature: every spec is kept
    assert manifest.specs_for("linux-64", "test") == ["pytest", "python >=3.10", "python 3.12.*"]
    gpu = manifest.solvable("gpu", "win-64")
    assert gpu.specs == ["cuda-runtime", "cuda-win", "pytest", "python >=3.10", "python 3.12.*"]
    assert gpu.channels == ["nvidia", "conda-forge"]
    assert gpu.virtual == {"__cuda": ("12", "0")}
    assert [p.name for p in manifest.platforms_for("gpu")] == ["linux-64", "win-64"]
    lint = manifest.solvable("lint", "osx-arm64")
    assert (lint.specs, lint.channels) == (["ruff"], ["conda-forge"])
    # platforms: the intersection of the features'
    assert [p.name for p in manifest.platforms_for("both")] == ["linux-64"]
    assert manifest.solvable("both").platform == "linux-64"
    with pytest.raises(ManifestError, match="environment 'lint' is not for win-64"):
        manifest.solvable("lint", "win-64")


def test_solve_group_is_refused_by_name(tmp_path: Path) -> None:
    manifest = _pixi(tmp_path, ENVIRONMENTS)
    with pytest.raises(ManifestError, match="solve-group 'default'"):
        manifest.solvable("grouped")


def test_unknown_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no environment 'nope' \(it has: default, test"):
        _pixi(tmp_path, ENVIRONMENTS).solvable("nope")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[environments]\nx = ['missing']\n", "uses feature 'missing'"),
        ("[environments]\nx = 'test'\n", "[environments.x] must be a table"),
        ("[environments]\nx = { features = ['a'], colour = 1 }\n", "unknown key 'colour'"),
        ("[environments]\nx = { no-default-feature = 'yes' }\n", "must be a boolean"),
        ("[feature.a]\nplatforms = ['osx-64']\n", "'osx-64' is not among the workspace's"),
        ("[feature.a]\ncolour = 1\n", "unknown key [feature.a.colour]"),
        ("[feature.a]\nchannel-priority = 'loose'\n", "'loose' is not one of"),
        ("[feature.a]\nchannels = 'conda-forge'\n", "must be an array"),
        ("[feature]\na = 1\n", "[feature.a] must be a table"),
        ("[colour]\n", "unknown table [colour]"),
        ("[target.linux-64]\ncolour = 1\n", "unknown key [target.linux-64.colour]"),
        ("[target]\nlinux-64 = 1\n", "[target.linux-64] must be a table"),
        ("[dependencies]\n", None),
    ],
)
def test_bad_tables_name_the_key(tmp_path: Path, text: str, named: str | None) -> None:
    path = _write(tmp_path, "pixi.toml", "[workspace]\nplatforms = ['linux-64']\n" + text)
    if named is None:
        read_manifest(path).solvable()
        return
    with pytest.raises(ManifestError) as info:
        read_manifest(path).solvable()
    assert str(path) in str(info.value) and named in str(info.value)


def test_channel_priority_and_strategy(tmp_path: Path) -> None:
    manifest = _pixi(
        tmp_path,
        """
        [workspace]
        channel-priority = "disabled"
        solve-strategy = "lowest"
        exclude-newer = "2025-01-01"
        [feature.a]
        channel-priority = "strict"
        [environments]
        a = ["a"]
        """,
    )
    solvable = manifest.solvable()
    assert (solvable.channel_priority, solvable.strategy) == ("disabled", "lowest")
    assert solvable.exclude_newer == datetime.datetime(2025, 1, 2, tzinfo=datetime.timezone.utc)
    with pytest.raises(ManifestError, match="different channel-priority values"):
        manifest.solvable("a")


# --- PyPI: refused when solving, never dropped ------------------------------------------------


def test_pypi_dependencies_are_refused_when_solving(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pixi.toml",
        """
        [workspace]
        channels = ["conda-forge"]
        platforms = ["linux-64"]
        [dependencies]
        python = "*"
        [pypi-dependencies]
        requests = "*"
        [feature.extra.target.linux-64.pypi-dependencies]
        rich = "*"
        [feature.conda.dependencies]
        zlib = "*"
        [environments]
        extra = { features = ["extra"], no-default-feature = true }
        conda = { features = ["conda"], no-default-feature = true }
        """,
    )
    manifest = read_manifest(path)
    with pytest.raises(ManifestError) as info:
        manifest.solvable()
    assert str(path) in str(info.value)
    assert "PyPI dependencies" in str(info.value) and "[pypi-dependencies]" in str(info.value)
    assert info.value.hint and "pixi.lock" in info.value.hint
    with pytest.raises(ManifestError, match=r"\[feature.extra.target.linux-64.pypi-dependencies\]"):
        manifest.solvable("extra")
    assert manifest.solvable("conda").specs == ["zlib"]


def test_empty_pypi_dependencies_table_is_fine(tmp_path: Path) -> None:
    manifest = _pixi(tmp_path, "[workspace]\n[dependencies]\na = '*'\n[pypi-dependencies]\n")
    assert manifest.solvable().specs == ["a"]


def test_pyproject_tool_pixi(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pyproject.toml",
        """
        [project]
        name = "mypkg"
        version = "0.1"
        requires-python = ">=3.11"
        dependencies = ["requests>=2", "numpy"]

        [project.optional-dependencies]
        test = ["pytest"]

        [tool.pixi.workspace]
        channels = ["conda-forge"]
        platforms = ["linux-64"]

        [tool.pixi.dependencies]
        requests = { version = ">=2" }
        numpy = "*"

        [tool.pixi.target.linux-64.dependencies]
        patchelf = "*"

        [tool.pixi.environments]
        test = ["test"]
        """,
    )
    manifest = read_manifest(path)
    # requires-python is the python dependency; conda dependencies cover [project]'s
    assert manifest.specs_for("linux-64") == [
        "requests >=2",
        "numpy",
        "python >=3.11",
        "patchelf",
    ]
    with pytest.raises(ManifestError, match=r"\[project.optional-dependencies\] test"):
        manifest.solvable("test")


def test_pyproject_project_dependencies_are_refused(tmp_path: Path) -> None:
    error = _refused(
        tmp_path,
        """
        [project]
        name = "x"
        dependencies = ["rich>=13", "numpy"]
        [tool.pixi.workspace]
        platforms = ["linux-64"]
        [tool.pixi.dependencies]
        numpy = "*"
        """,
        name="pyproject.toml",
    )
    assert "[project].dependencies: rich" in str(error)
    assert "numpy" not in str(error).split("rich")[1].split(")")[0]


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
          - samtools 1.21
        """,
    )
    solvable = read_manifest(path).solvable(platform="linux-64")
    # conda's reading: "=3.12" is 3.12.*, a bare version is exact
    assert solvable.specs == [
        "python 3.12.*",
        "numpy >=1.26",
        "conda-forge::zlib",
        "samtools ==1.21",
    ]
    assert solvable.channels == ["conda-forge", "bioconda"]


def test_environment_yml_defaults_are_condas_default_channels(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "environment.yml",
        "channels: [conda-forge, defaults, pkgs/main]\ndependencies: [python]\n",
    )
    manifest = read_manifest(path)
    assert DEFAULTS_UNIX == (
        "https://repo.anaconda.com/pkgs/main",
        "https://repo.anaconda.com/pkgs/r",
    )
    assert manifest.solvable(platform="linux-64").channels == ["conda-forge", *DEFAULTS_UNIX]
    assert manifest.solvable(platform="win-64").channels == ["conda-forge", *DEFAULTS_WIN]
    assert not any("conda.anaconda.org" in c for c in manifest.channels_for(subdir="osx-64"))


def test_environment_yml_channel_of_a_spec_is_searched(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "environment.yml", "channels: [conda-forge]\ndependencies: [bioconda::samtools]\n"
    )
    assert read_manifest(path).solvable().channels == ["conda-forge", "bioconda"]


def test_environment_yml_platforms(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "environment.yml", "platforms: [linux-64, osx-arm64]\ndependencies: [python]\n"
    )
    manifest = read_manifest(path)
    assert [p.name for p in manifest.platforms] == ["linux-64", "osx-arm64"]


def test_environment_yml_without_channels(tmp_path: Path) -> None:
    path = _write(tmp_path, "environment.yml", "dependencies:\n  - python\n")
    assert read_manifest(path).solvable().channels == []
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


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("- python\n- numpy\n", "is not a conda environment file"),
        ("dependencies: [python\n", "cannot read"),
        ("dependencies:\n  - {conda: x}\n", "cannot understand dependency"),
        ("dependencies: python\n", "dependencies must be a list"),
        ("channels: [1]\n", "channels[0] must be a string"),
        ("dependencies: ['numpy >=>1']\n", "invalid spec"),
        ("dependencies: ['defaults::numpy']\n", "defaults channels"),
        ("variables: {A: '1'}\n", "variables"),
        ("dependecies: [python]\n", "unknown key 'dependecies'"),
        ("platforms: [linux-65]\n", "unknown platform"),
    ],
)
def test_environment_yml_bad_input_names_the_file(tmp_path: Path, text: str, named: str) -> None:
    path = _write(tmp_path, "environment.yml", text)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(path) in str(info.value) and named in str(info.value)


# --- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    with pytest.raises(ManifestError, match=f"manifest {path} does not exist"):
        read_manifest(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "pixi.toml", "[workspace\nchannels = [\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert f"cannot read {path}" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "workspace = 1\n",
        "[workspace]\nchannels = 1\n",
        "[workspace]\nchannels = [1]\n",
        "[workspace]\nchannels = [{ name = 'x' }]\n",
        "[workspace]\nchannels = [{ channel = 'x', priority = 'high' }]\n",
        "[workspace]\nchannels = [{ channel = 1 }]\n",
        "dependencies = 1\n[workspace]\n",
        "[workspace]\n[dependencies]\n[dependencies.a]\nversion = { x = 1 }\n",
        "[workspace]\n[feature.a.dependencies]\nb = []\n",
        "[workspace]\nexclude-newer = 'tomorrow'\n",
        "[workspace]\nexclude-newer = 7\n",
        "[workspace]\n[system-requirements]\nlinux = { v = 1 }\n",
        "[workspace]\n[environments]\na = [1]\n",
        "[workspace]\n[project]\n",
        "[workspace]\n[exclude-newer]\nnumpy = '1d'\n",
        "[workspace]\n[feature.default]\n",
        "[tool.pixi]\n",
    ],
)
def test_any_unexpected_value_is_a_manifest_error(tmp_path: Path, text: str) -> None:
    """No TypeError, KeyError or AttributeError: always the file and what is wrong."""
    path = _write(tmp_path, "pixi.toml", text)
    with pytest.raises(ManifestError) as info:
        read_manifest(path).solvable()
    assert str(path) in str(info.value)


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


# --- any shape, anywhere: a ManifestError or a manifest, nothing else ------------------------

_SCALARS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["linux-64", "osx-arm64", "*", "1.2.3", ">=1", "conda-forge", "unix", ""]),
    st.integers(-3, 3),
    st.booleans(),
    st.floats(allow_nan=False, width=16),
    st.datetimes(max_value=datetime.datetime(3000, 1, 1)),
    st.dates(),
)
_KEYS = st.one_of(
    st.sampled_from(
        [
            "version",
            "build",
            "channel",
            "platform",
            "name",
            "cuda",
            "libc",
            "family",
            "features",
            "priority",
            "linux",
            "path",
            "dependencies",
            "default",
            "linux-64",
            "workspace",
            "no-default-feature",
            "solve-group",
            "build-number",
            "md5",
        ]
    ),
    st.text(max_size=6),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=8,
)
_ROOT = st.fixed_dictionaries(
    {},
    optional={
        "workspace": st.fixed_dictionaries(
            {},
            optional={
                "channels": _VALUES,
                "platforms": _VALUES,
                "channel-priority": _VALUES,
                "exclude-newer": _VALUES,
                "dependencies": _VALUES,
            },
        ),
        "dependencies": st.dictionaries(_KEYS, _VALUES, max_size=3),
        "constraints": _VALUES,
        "system-requirements": _VALUES,
        "target": st.dictionaries(_KEYS, _VALUES, max_size=2),
        "feature": st.dictionaries(_KEYS, _VALUES, max_size=2),
        "environments": st.dictionaries(_KEYS, _VALUES, max_size=2),
        "pypi-dependencies": _VALUES,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_ROOT)
def test_arbitrary_manifest_values_give_manifest_errors(doc: dict[str, object]) -> None:
    """Whatever the values, reading and solving a manifest either works or raises a
    ManifestError naming the file: never a TypeError, KeyError or AttributeError."""
    from portpack.resolve.pixi_manifest import PixiReader

    path = Path("/nonexistent/pixi.toml")
    try:
        manifest = PixiReader(path, "").manifest(doc)  # type: ignore[arg-type]
        for environment in manifest.environment_names():
            for platform in [p.name for p in manifest.platforms_for(environment)] or [None]:
                manifest.solvable(environment, platform)
    except ManifestError as exc:
        assert str(path) in str(exc)
