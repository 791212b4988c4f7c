"""Tests of portpack.resolve.solve.virtual_packages (no network, no solving)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from portpack._platform import current_platform
from portpack.errors import UsageError
from portpack.resolve.solve import virtual_packages

FOREIGN_LINUX = "linux-aarch64" if current_platform() != "linux-aarch64" else "linux-64"
ARCH = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CONDA_OVERRIDE_GLIBC", "CONDA_OVERRIDE_CUDA", "CONDA_OVERRIDE_OSX"):
        monkeypatch.delenv(var, raising=False)


def _as_dict(platform: str, extra: Sequence[str] = ()) -> dict[str, tuple[str, str]]:
    """name -> (version, build string) of the virtual packages for ``platform``."""
    packages = virtual_packages(platform, extra)
    names = [str(p.name.normalized) for p in packages]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    return {str(p.name.normalized): (str(p.version), str(p.build_string)) for p in packages}


def test_foreign_linux_defaults() -> None:
    assert _as_dict(FOREIGN_LINUX) == {
        "__archspec": ("1", ARCH[FOREIGN_LINUX]),
        "__glibc": ("2.28", "0"),
        "__linux": ("4.18", "0"),
        "__unix": ("0", "0"),
    }


def test_ppc64le_defaults() -> None:
    found = _as_dict("linux-ppc64le")
    assert found["__archspec"] == ("1", "ppc64le")
    assert found["__glibc"] == ("2.28", "0")


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("osx-arm64", {"__archspec": ("1", "arm64"), "__osx": ("11.0", "0"), "__unix": ("0", "0")}),
        ("osx-64", {"__archspec": ("1", "x86_64"), "__osx": ("10.13", "0"), "__unix": ("0", "0")}),
        ("win-64", {"__archspec": ("1", "x86_64"), "__win": ("0", "0")}),
    ],
)
def test_other_os_defaults(platform: str, expected: dict[str, tuple[str, str]]) -> None:
    if platform == current_platform():
        pytest.skip("detected, not defaulted, on this machine")
    assert _as_dict(platform) == expected


def test_glibc_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDA_OVERRIDE_GLIBC", "2.17")
    assert _as_dict(FOREIGN_LINUX)["__glibc"] == ("2.17", "0")


def test_empty_glibc_override_removes_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDA_OVERRIDE_GLIBC", "")
    found = _as_dict(FOREIGN_LINUX)
    assert "__glibc" not in found
    assert "__linux" in found


def test_cuda_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "__cuda" not in _as_dict(FOREIGN_LINUX)
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.4")
    assert _as_dict(FOREIGN_LINUX)["__cuda"] == ("12.4", "0")


def test_extra_adds_a_package() -> None:
    found = _as_dict(FOREIGN_LINUX, ["__cuda=12.0"])
    assert found["__cuda"] == ("12.0", "0")
    assert found["__glibc"] == ("2.28", "0")


def test_extra_with_build_string_replaces_a_default() -> None:
    found = _as_dict(FOREIGN_LINUX, ["__glibc=2.17", "__archspec=1=neoverse_n1"])
    assert found["__glibc"] == ("2.17", "0")
    assert found["__archspec"] == ("1", "neoverse_n1")


def test_extra_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDA_OVERRIDE_GLIBC", "2.34")
    assert _as_dict(FOREIGN_LINUX, ["__glibc=2.12"])["__glibc"] == ("2.12", "0")


@pytest.mark.parametrize("item", ["cuda=12.0", "__cuda", "__cuda=", "=12", "", "_cuda=1"])
def test_malformed_extra_is_a_usage_error(item: str) -> None:
    with pytest.raises(UsageError) as info:
        virtual_packages(FOREIGN_LINUX, [item])
    assert repr(item) in str(info.value)
    assert "__NAME=VERSION[=BUILD]" in str(info.value)


@pytest.mark.parametrize("item", ["__glibc=2..17", "__glibc=2.17=a b", "__glibc=2.17$"])
def test_unreadable_extra_is_a_usage_error_naming_it(item: str) -> None:
    with pytest.raises(UsageError) as info:
        virtual_packages(FOREIGN_LINUX, [item])
    assert str(info.value).startswith(f"--virtual-package {item}: virtual package __glibc")


def test_unreadable_override_is_a_usage_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONDA_OVERRIDE_GLIBC", "2..17")
    with pytest.raises(UsageError, match=r"^CONDA_OVERRIDE_GLIBC: virtual package __glibc 2\.\.17"):
        virtual_packages(FOREIGN_LINUX)


def test_extra_name_is_compared_normalized() -> None:
    assert _as_dict(FOREIGN_LINUX, ["__GLIBC=2.12"])["__glibc"] == ("2.12", "0")
    assert "__GLIBC" not in _as_dict(FOREIGN_LINUX, ["__GLIBC=2.12"])


def test_this_machine_is_detected() -> None:
    host = current_platform()
    found = _as_dict(host)
    if host.startswith("linux-"):
        assert {"__unix", "__linux", "__archspec"} <= set(found)


def test_this_machine_honours_glibc_override(monkeypatch: pytest.MonkeyPatch) -> None:
    host = current_platform()
    if not host.startswith("linux-"):
        pytest.skip("glibc exists only on Linux")
    monkeypatch.setenv("CONDA_OVERRIDE_GLIBC", "2.17")
    assert _as_dict(host)["__glibc"][0] == "2.17"
    assert _as_dict(host, ["__glibc=2.5"])["__glibc"] == ("2.5", "0")


def _declared(
    platform: str, declared: dict[str, tuple[str, str]], extra: Sequence[str] = ()
) -> dict[str, tuple[str, str]]:
    packages = virtual_packages(platform, extra, declared)
    return {str(p.name.normalized): (str(p.version), str(p.build_string)) for p in packages}


def test_declared_replace_defaults_and_detection() -> None:
    """A manifest's system requirements are what the solve assumes, as in pixi."""
    declared = {"__glibc": ("2.17", "0"), "__cuda": ("12.4", "0")}
    for platform in (FOREIGN_LINUX, current_platform()):
        found = _declared(platform, declared)
        assert found["__glibc"] == ("2.17", "0")
        assert found["__cuda"] == ("12.4", "0")


def test_condas_override_wins_over_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "11.8")
    found = _declared(FOREIGN_LINUX, {"__cuda": ("12.4", "0"), "__glibc": ("2.17", "0")})
    assert found["__cuda"] == ("11.8", "0")
    assert found["__glibc"] == ("2.17", "0")


def test_command_line_wins_over_declared() -> None:
    found = _declared(FOREIGN_LINUX, {"__cuda": ("12.4", "0")}, ["__cuda=12.0"])
    assert found["__cuda"] == ("12.0", "0")
