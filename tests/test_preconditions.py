"""Tests of portpack.unpacker.preconditions: the checks made before the unpacker writes a byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portpack._platform import current_platform
from portpack.archive import format as fmt
from portpack.errors import PreconditionError
from portpack.unpacker.preconditions import (
    check_disk_space,
    check_glibc,
    check_platform,
    check_prefix_length,
)

# --- check_glibc -----------------------------------------------------------------------------


def _req(spec: str, package: str = "libfoo-1.0-h0_0") -> fmt.VirtualRequirement:
    return fmt.VirtualRequirement(package=package, spec=spec)


def test_check_glibc_passes() -> None:
    check_glibc([_req("__glibc >=2.17,<3.0.a0"), _req("__glibc >=2.28")], "2.28")


def test_check_glibc_failure_names_package_and_versions() -> None:
    reqs = [_req("__glibc >=2.17,<3.0.a0", "ok-1-0"), _req("__glibc >=2.34", "newlib-2.0-h1_0")]
    with pytest.raises(PreconditionError) as info:
        check_glibc(reqs, "2.28")
    message = str(info.value)
    assert "newlib-2.0-h1_0" in message
    assert ">=2.34" in message
    assert "2.28" in message
    assert "ok-1-0" not in message
    assert info.value.hint


def test_check_glibc_spec_without_space() -> None:
    # "__glibc>=2.34" is as valid a match spec as "__glibc >=2.34".
    with pytest.raises(PreconditionError, match="newlib"):
        check_glibc([_req("__glibc>=2.34,<3.0.a0", "newlib")], "2.28")


def test_check_glibc_without_glibc_on_the_system() -> None:
    with pytest.raises(PreconditionError, match=r"package libfoo-1\.0-h0_0 needs glibc"):
        check_glibc([_req("__glibc >=2.17")], None)


@pytest.mark.parametrize(
    ("spec", "glibc", "holds"),
    [
        ("__glibc >=2.17,<3.0.a0", "2.28", True),
        ("__glibc >=2.17,<3.0.a0", "2.9", False),  # numeric, not lexicographic
        ("__glibc 2.28.*", "2.28", True),
        ("__glibc 2.28.*", "2.280", False),
        ("__glibc <2.5|>=2.17", "2.12", False),
        ("__glibc ~=2.17", "2.39", True),
        ("__glibc >=2.17 0", "2.28", True),  # a build string does not hide the version
    ],
)
def test_check_glibc_reads_condas_constraints(spec: str, glibc: str, holds: bool) -> None:
    if holds:
        check_glibc([_req(spec)], glibc)
    else:
        with pytest.raises(PreconditionError, match="needs glibc"):
            check_glibc([_req(spec)], glibc)


@pytest.mark.parametrize(
    "spec", ["__glibc >=two,,", "__glibc >=2.17 <3", "__glibc 1.*.3", "__glibc[version='>=2']"]
)
def test_check_glibc_refuses_a_constraint_it_cannot_read(spec: str) -> None:
    with pytest.raises(PreconditionError) as info:
        check_glibc([_req(spec, "newlib-2.0-h1_0")], "2.28")
    assert str(info.value).startswith("package newlib-2.0-h1_0: ")
    assert "\n" not in str(info.value)


def test_check_glibc_ignores_other_virtual_packages() -> None:
    reqs = [_req("__cuda >=12"), _req("__unix"), _req("__linux >=99"), _req("__glibc")]
    check_glibc(reqs, None)
    check_glibc(reqs, "2.17")


# --- check_platform --------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["osx-64", "osx-arm64", "win-64", "noarch", "linux-32"])
def test_check_platform_refuses_unsupported_archives(platform: str) -> None:
    with pytest.raises(PreconditionError) as info:
        check_platform(platform, host="linux-64")
    assert f"the archive is for {platform}" in str(info.value)
    assert "linux-64" in str(info.value)


def test_check_platform_refuses_another_linux_arch_with_a_hint() -> None:
    with pytest.raises(PreconditionError) as info:
        check_platform("linux-aarch64", host="linux-64")
    assert "linux-aarch64" in info.value.message
    assert "this machine is linux-64" in info.value.message
    assert info.value.hint == "Pack the environment again with --platform linux-64."


@pytest.mark.parametrize("platform", ["linux-64", "linux-aarch64", "linux-ppc64le"])
def test_check_platform_accepts_the_host(platform: str) -> None:
    check_platform(platform, host=platform)


def test_check_platform_defaults_to_this_machine() -> None:
    host = current_platform()
    if host == "linux-64":
        check_platform("linux-64")
    with pytest.raises(PreconditionError):
        check_platform("linux-ppc64le" if host != "linux-ppc64le" else "linux-64")


# --- check_prefix_length ---------------------------------------------------------------------


def test_check_prefix_length_message() -> None:
    placeholder = fmt.Placeholder(length=20, package="libbar-2.0-h0_1", path="lib/libbar.so")
    prefix = "/a/prefix/that/is/too/long"
    with pytest.raises(PreconditionError) as info:
        check_prefix_length(placeholder, prefix)
    message = info.value.message
    assert prefix in message
    assert f"{len(prefix)} bytes long" in message
    assert "lib/libbar.so" in message
    assert "libbar-2.0-h0_1" in message
    assert "room for only 20 bytes" in message


def test_check_prefix_length_counts_bytes_not_characters() -> None:
    placeholder = fmt.Placeholder(length=10, package="p", path="f")
    check_prefix_length(placeholder, "/" + "x" * 9)
    with pytest.raises(PreconditionError, match="11 bytes long"):
        check_prefix_length(placeholder, "/" + "é" * 5)  # 6 characters, 11 bytes


def test_check_prefix_length_without_binary_placeholder() -> None:
    check_prefix_length(None, "/" + "x" * 10_000)


# --- check_disk_space ------------------------------------------------------------------------


def test_check_disk_space_fits(tmp_path: Path) -> None:
    check_disk_space(0, str(tmp_path))
    check_disk_space(1, str(tmp_path))


def test_check_disk_space_huge_size_fails(tmp_path: Path) -> None:
    huge = shutil.disk_usage(tmp_path).total * 1000 + 1
    with pytest.raises(PreconditionError) as info:
        check_disk_space(huge, str(tmp_path))
    assert str(tmp_path) in info.value.message
    assert f"({huge} bytes)" in info.value.message
    assert info.value.hint
