"""Tests of portpack.conda.version: conda's version order and constraints, case by case.

Where py-rattler (the solver's library, which implements conda's rules) is importable,
the order and the matches are also checked against it, so the two cannot drift apart.
"""

from __future__ import annotations

import itertools
import re

import pytest
import rattler

from portpack.conda.version import parse_constraint, parse_version, split_dependency
from portpack.errors import PackageError, PreconditionError

#: conda's documented order (pkg-specs "Version ordering"), ascending; a tuple is a run of
#: equal versions.
ORDERED: list[tuple[str, ...]] = [
    ("0.4", "0.4.0"),
    ("0.4.1.rc", "0.4.1.RC"),
    ("0.4.1",),
    ("0.5a1",),
    ("0.5b3",),
    ("0.5C1",),
    ("0.5",),
    ("0.9.6",),
    ("0.960923",),
    ("1.0",),
    ("1.1dev1",),
    ("1.1_",),
    ("1.1a1",),
    ("1.1.0dev1", "1.1.dev1"),
    ("1.1.a1", "1.1.0a1"),
    ("1.1.0rc1",),
    ("1.1.0", "1.1", "1.1.0.0"),
    ("1.1.0post1", "1.1.post1"),
    ("1.1post1",),
    ("1996.07.12",),
    ("1!0.4.1",),
    ("1!3.1.1.6",),
    ("2!0.4.1",),
]


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def test_versions_sort_in_condas_documented_order() -> None:
    flat = [(rank, v) for rank, run in enumerate(ORDERED) for v in run]
    for (rank_a, a), (rank_b, b) in itertools.product(flat, repeat=2):
        va, vb = parse_version(a), parse_version(b)
        assert (va < vb) == (rank_a < rank_b), (a, b)
        assert (va == vb) == (rank_a == rank_b), (a, b)
        if va == vb:
            assert hash(va) == hash(vb), (a, b)


EXTRA = [
    "2.17",
    "2.9",
    "2.28",
    "2.280",
    "3.0.a0",
    "3.0",
    "2.17+local",
    "2.17+local.2",
    "1.0-1",
    "10.1.1",
    "1.2.3.4.5",
    "2.0b1",
    "2.0.dev0",
    "2.0post",
    "0",
    "abc",
]


@pytest.mark.parametrize(
    ("a", "b"),
    list(itertools.combinations([v for run in ORDERED for v in run] + EXTRA, 2)),
)
def test_version_order_agrees_with_rattler(a: str, b: str) -> None:
    mine = _sign((parse_version(a) > parse_version(b)) - (parse_version(a) < parse_version(b)))
    ra, rb = rattler.Version(a), rattler.Version(b)
    theirs = _sign((ra > rb) - (ra < rb))
    assert mine == theirs, (a, b)


def test_version_keeps_its_text() -> None:
    assert str(parse_version(" 2.17 ")) == "2.17"
    assert str(parse_version("1!2.0+Local")) == "1!2.0+Local"


@pytest.mark.parametrize("text", ["", "2..17", ".2", "2.", "2.17$", "2 17", "2.*", "+1", "1+"])
def test_not_a_version(text: str) -> None:
    with pytest.raises(PackageError, match=r"glibc of this machine: .* is not a conda version"):
        parse_version(text, "glibc of this machine")


MATCHES = [
    ("2.17", ">=2.17", True),
    ("2.28", ">=2.17", True),
    ("2.16", ">=2.17", False),
    ("2.9", ">=2.17", False),  # numeric, not lexicographic
    ("2.17.0", ">=2.17", True),
    ("2.28", ">=2.17,<3.0.a0", True),
    ("3.0", ">=2.17,<3.0.a0", False),
    ("3.0a1", ">=2.17,<3.0.a0", True),  # 3.0.a0 is 3.0.0a0: 3.0a1 comes before it
    ("2.16", ">=2.17,<3.0.a0", False),
    ("2.28", "2.28.*", True),
    ("2.28.1", "2.28.*", True),
    ("2.28.1", "2.28*", True),
    ("2.29", "2.28.*", False),
    ("2.280", "2.28.*", False),
    ("2.3", "2.*", True),
    ("3.3", "2.*", False),
    ("2", "2.0.*", True),
    ("2.1", "2.0.*", False),
    ("2.30", "!=2.30", False),
    ("2.31", "!=2.30", True),
    ("2.30.1", "!=2.30.*", False),
    ("2.31", "!=2.30.*", True),
    ("2.28.1", "=2.28", True),
    ("2.17", "=2.0", False),
    ("2.17", "2.17", True),
    ("2.17.0", "2.17", True),
    ("2.17.1", "2.17", False),
    ("2.17", "==2.17", True),
    ("2.18", "==2.17", False),
    ("2.17", "<2.17", False),
    ("2.17a1", "<2.17", True),  # conda: <1.0 admits 1.0a
    ("2.17", "<=2.17", True),
    ("2.18", ">2.17", True),
    ("2.17", ">2.17", False),
    ("2.17.post1", ">2.17", True),
    ("2.18", ">=2.17.*", True),  # read as >=2.17, as conda and rattler do
    ("2.17", "~=2.17", True),
    ("2.99", "~=2.17", True),
    ("3.0", "~=2.17", False),
    ("2.16", "~=2.17", False),
    ("2.17.5", "~=2.17.2", True),
    ("2.18", "~=2.17.2", False),
    ("2.12", "<2.5|>=2.17", False),
    ("2.4", "<2.5|>=2.17", True),
    ("2.35", ">=2.17,<2.20|>=2.30,<2.40", True),
    ("2.25", ">=2.17,<2.20|>=2.30,<2.40", False),
    ("2.25", "(>=2.17|<1),<2.20", False),
    ("0.5", "(>=2.17|<1),<2.20", True),
    ("2.18", "(>=2.17|<1),<2.20", True),
    ("2.28", ">= 2.17 , < 3.0.a0", True),
    ("2.28", "*", True),
    ("1!1.0", ">=2.17", True),  # a higher epoch is newer
    ("2.17+local", "==2.17", False),
    ("2.17+local", "2.17.*", True),
    ("2.17", "2.17.*,!=2.17.0", False),
    ("2.17.1", "2.17.*,!=2.17.0", True),
]


@pytest.mark.parametrize(("version", "spec", "expected"), MATCHES)
def test_matches(version: str, spec: str, expected: bool) -> None:
    assert parse_constraint(spec).matches(version) is expected
    assert parse_constraint(spec).matches(parse_version(version)) is expected


@pytest.mark.parametrize(("version", "spec", "expected"), MATCHES)
def test_matches_agree_with_rattler(version: str, spec: str, expected: bool) -> None:
    theirs = rattler.VersionSpec(spec.replace(" ", ""), strict=False)
    mine = parse_constraint(spec).matches(version)
    assert mine is theirs.matches(rattler.Version(version)), (version, spec)


@pytest.mark.parametrize(
    ("spec", "bound"),
    [
        (">=2.17", "2.17"),
        (">=2.17,<3.0.a0", "2.17"),
        (">=2.17,>=2.28", "2.28"),
        ("<3,>=2.17", "2.17"),
        ("2.17.*", "2.17"),
        ("2.17*", "2.17"),
        ("=2.17", "2.17"),
        ("==2.17", "2.17"),
        ("2.17", "2.17"),
        (">2.17", "2.17"),
        ("~=2.17", "2.17"),
        (">2.12|>=2.5", "2.5"),
        (">=2.5|2.3.*", "2.3"),
        ("(>=2.17|>=2.5),<3", "2.5"),
        ("<3", None),
        ("<=3", None),
        ("!=2.17", None),
        ("!=2.17.*", None),
        ("*", None),
        (">=2.17|<2", None),  # one alternative is unbounded
        ("<3,!=2.5", None),
    ],
)
def test_lower_bound(spec: str, bound: str | None) -> None:
    found = parse_constraint(spec).lower_bound()
    assert (str(found) if found is not None else None) == bound


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        (">=", "has no version"),
        ("2.17,,", "expected a version or '\\(' but found ','"),
        (">=2.17,", "but found the end"),
        ("|2.17", "but found '\\|'"),
        (">=2.17 <3", "a space inside"),
        ("(>=2.17", "is not closed"),
        (">=2.17)", "unexpected '\\)'"),
        ("1.*.3", "wildcard is supported only at the end"),
        ("*2", "wildcard is supported only at the end"),
        ("==2.*", "ambiguous"),
        ("<2.*", "ambiguous"),
        ("~=2.17.*", "ambiguous"),
        (">>2", "unknown operator"),
        ("=>2.17", "unknown operator"),
        ("=<2.17", "unknown operator"),
        ("2..17", "empty segment"),
        (">=2.17$", "a version holds"),
        ("~=2", "needs at least two components"),
    ],
)
def test_malformed_constraints_give_a_clear_error(spec: str, problem: str) -> None:
    with pytest.raises(PreconditionError) as info:
        parse_constraint(spec, "package libfoo-1.0-h0_0", PreconditionError)
    message = str(info.value)
    assert message.startswith("package libfoo-1.0-h0_0: cannot understand the version constraint")
    assert repr(spec.strip()) in message or repr(spec) in message
    assert re.search(problem, message), message
    assert "\n" not in message


def test_error_type_defaults_to_package_error() -> None:
    with pytest.raises(PackageError, match="a dependency: cannot understand"):
        parse_constraint(">=")


@pytest.mark.parametrize(
    ("dependency", "name", "version"),
    [
        ("__glibc >=2.17,<3.0.a0", "__glibc", ">=2.17,<3.0.a0"),
        ("__glibc>=2.17", "__glibc", ">=2.17"),
        ("__glibc", "__glibc", ""),
        ("  __glibc  ", "__glibc", ""),
        ("__glibc 2.17 0", "__glibc", "2.17"),  # the build is dropped
        ("__glibc >=2.17 *", "__glibc", ">=2.17"),
        ("__glibc >=2.17 <3", "__glibc", ">=2.17 <3"),  # left to the constraint to refuse
        ("__glibc=2.17", "__glibc", "=2.17"),
        ("python-abi 3.12.* *_cp312", "python-abi", "3.12.*"),
    ],
)
def test_split_dependency(dependency: str, name: str, version: str) -> None:
    assert split_dependency(dependency) == (name, version)


@pytest.mark.parametrize("dependency", ["", ">=2.17", "__glibc[version='>=2.17']"])
def test_split_dependency_refuses(dependency: str) -> None:
    with pytest.raises(PreconditionError, match="package x-1-0: "):
        split_dependency(dependency, "package x-1-0", PreconditionError)
