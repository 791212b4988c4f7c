"""Property tests on metadata: every field that becomes a path, drawn from a hostile
alphabet, in both archive formats.  The invariant: nothing outside the output
directory changes, and the unpack either succeeds (and verifies) or fails with a
typed error leaving no environment.

tests/test_fuzz.py mutates archive bytes; this file keeps every archive well formed
and puts the hostility in the fields (a record's name/version/build, index.json,
paths.json ``_path``, python_site_packages_path, link.json entry points, wheel
RECORD paths).  The default run is derandomized and takes a few seconds; for more:

    PORTPACK_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_metadata.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_metadata_paths import Area, _wheel, build, python_package

import portpack
from hostile import Member, RawPackage
from portpack.install.verify import verify

EXAMPLES = int(os.environ.get("PORTPACK_FUZZ_EXAMPLES", "60"))
FIXED = "PORTPACK_FUZZ_EXAMPLES" not in os.environ
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=FIXED,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Pieces of hostile strings: separators, dot runs, NUL, backslash, whitespace and
#: unicode look-alikes (division slash, fraction slash, fullwidth full stop and
#: solidus, one-dot leader), plus harmless letters so that some strings are legal.
TOKENS = [
    "/", "..", ".", "\0", "\\", " ", "\n", "-", "_", "+", "!", "~", "a", "b", "1", "é",
    "\u2215", "\u2044", "\uff0e", "\uff0f", "\u2024",
]  # fmt: skip
LONG = ["x" * 300, "d/" * 700, "../" * 40, "." * 256]
HOSTILE = st.lists(st.sampled_from(TOKENS) | st.sampled_from(LONG), min_size=0, max_size=8).map(
    "".join
)

OK = Member("share/ok.txt", b"fine\n")
NOARCH = RawPackage(
    "noarchy",
    [Member("site-packages/noarchy/__init__.py", b"x = 1\n"), Member("python-scripts/tool", b"")],
    index={"noarch": "python"},
    depends=["python"],
)
CLEAN = {"name": "target", "version": "1.0", "build": "0"}
FIELDS = [
    "record.name",
    "record.version",
    "record.build",
    "index.name",
    "index.version",
    "index.build",
    "paths._path",
    "python_site_packages_path",
    "entry_point",
    "link.json",
    "clobber.index.name",
]


def packages_for(field: str, value: Any) -> list[RawPackage]:
    """A small environment whose ``field`` holds ``value``."""
    kind, _, key = field.partition(".")
    if kind == "record":
        return [RawPackage("target", [OK], record={key: value})]
    if kind == "index":
        return [RawPackage("target", [OK], index={key: value}, record=dict(CLEAN))]
    if field == "paths._path":
        paths = [
            {"_path": "share/ok.txt", "path_type": "hardlink", "size_in_bytes": 5},
            {"_path": value, "path_type": "directory"},
        ]
        return [RawPackage("target", [OK], paths=paths)]
    if field == "python_site_packages_path":
        return [python_package(python_site_packages_path=value), NOARCH]
    if field == "entry_point":
        link = {"noarch": {"type": "python", "entry_points": [f"{value} = os:getcwd"]}}
        pkg = RawPackage(
            "target", [Member("site-packages/t/__init__.py", b"")], index={"noarch": "python"}
        )
        pkg.link = link
        return [python_package(), pkg]
    if field == "link.json":
        pkg = RawPackage(
            "target", [Member("site-packages/t/__init__.py", b"")], index={"noarch": "python"}
        )
        pkg.link = value
        return [python_package(), pkg]
    assert field == "clobber.index.name"
    first = RawPackage(
        "aaa", [Member("share/same.txt", b"a\n")], index={"name": value}, record={"name": "aaa"}
    )
    return [first, RawPackage("bbb", [Member("share/same.txt", b"b\n")])]


LINK_JSON = st.one_of(
    st.builds(
        lambda eps: {"noarch": {"type": "python", "entry_points": eps}},
        st.lists(HOSTILE | HOSTILE.map(lambda s: f"{s} = {s}:{s}"), max_size=3),
    ),
    st.builds(lambda v: {"noarch": v}, st.none() | HOSTILE | st.lists(HOSTILE, max_size=2)),
)


def check(tmp_path: Path, fmt: str, packages: list[RawPackage], **kw: Any) -> None:
    work = tmp_path / os.urandom(6).hex()
    work.mkdir()
    pixi_kw = dict(kw)
    if fmt == "pixi-pack" and any("name" in p.index for p in packages):
        pixi_kw.setdefault("with_repodata", False)  # the dist then comes from index.json
    try:
        archive = build(fmt, work, packages, **(pixi_kw if fmt == "pixi-pack" else {}))
    except (UnicodeEncodeError, ValueError):
        return  # the test's tar writer cannot store this name (NUL in a file name)
    area = Area(work)
    try:
        result = portpack.unpack(archive, area.out)
    except portpack.PortpackError as exc:
        assert str(exc).strip()
        area.assert_no_environment()
    else:
        assert verify(result.prefix).ok
    area.assert_untouched()


@FUZZ
@given(
    fmt=st.sampled_from(["portpack", "pixi-pack"]),
    field=st.sampled_from(FIELDS),
    value=HOSTILE,
    link=LINK_JSON,
)
def test_hostile_metadata_fields_stay_inside(
    tmp_path: Path, fmt: str, field: str, value: str, link: Any
) -> None:
    check(tmp_path, fmt, packages_for(field, link if field == "link.json" else value))


@settings(FUZZ, max_examples=max(EXAMPLES // 6, 5))
@given(path=HOSTILE)
def test_hostile_wheel_record_paths_stay_inside(tmp_path: Path, path: str) -> None:
    if not path or "\0" in path:
        path = path.replace("\0", "") or "x"
    wheel = _wheel({path: b"x = 1\n", "fz/__init__.py": b""}, name="fz")
    check(tmp_path, "pixi-pack", [python_package()], wheels={"fz-1.0-py3-none-any.whl": wheel})


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_has_a_refused_escape(tmp_path: Path, field: str) -> None:
    """The property test above could pass by never reaching a check: an escape in each
    field is refused (in the portpack format; tests/test_metadata_paths.py has both)."""
    value: Any = "../../../../escape" if field != "entry_point" else "../../escape"
    if field == "link.json":
        value = {"noarch": {"type": "python", "entry_points": ["../../x = os:getcwd"]}}
    archive = build("portpack", tmp_path, packages_for(field, value))
    area = Area(tmp_path)
    with pytest.raises(portpack.PortpackError):
        portpack.unpack(archive, area.out)
    area.assert_no_environment()
    area.assert_untouched()
