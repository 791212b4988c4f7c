"""Nothing outside the prefix, whatever the metadata says (issue 11, classes 1, 2, 3, 5, 9).

Every archive here has clean member names: the escape would come through metadata
that becomes a path (a record's name/version/build, index.json's name in the clobber
directory, python_site_packages_path and the noarch paths mapped through it, entry
points, wheel RECORD paths).  Each case is built in both archive formats (portpack's
and pixi-pack's), unpacked with the library (for the typed error) and with the CLI
(for the exit status and the message), and a canary tree around the output directory
must come out unchanged.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pixipack_archive import build_pixi_pack

import portpack
from hostile import Member, RawPackage, make_archive, record, write_conda
from portpack.conda.record import check_package_fields
from portpack.errors import PortpackError, UnsafeArchiveError
from portpack.install.clobbers import clobber_path
from portpack.install.destination import Destination
from portpack.install.verify import verify
from portpack.outside import remove_tree
from portpack.paths import safe_relpath
from treesnap import snapshot

FORMATS = ["portpack", "pixi-pack"]
OK = Member("share/ok.txt", b"fine\n")
PYTHON_BIN = Member("bin/python3.11", b"#!/bin/sh\n", mode=0o755)


def python_package(**index: Any) -> RawPackage:
    return RawPackage(
        "python", [PYTHON_BIN], index={"version": "3.11.7", "subdir": "linux-64", **index}
    )


def build(fmt: str, work: Path, packages: list[RawPackage], **kw: Any) -> Path:
    """The archive of ``packages`` in format ``fmt`` (install order as given)."""
    if fmt == "portpack":
        return make_archive(work / "build", packages)
    build_dir = work / "build"
    build_dir.mkdir(parents=True, exist_ok=True)
    pairs = []
    for pkg in packages:
        path = write_conda(build_dir, pkg)
        rec = record(pkg, path)
        rec["subdir"] = "noarch" if rec.get("subdir") in (None, "noarch") else rec["subdir"]
        pairs.append((rec, path))
    return build_pixi_pack(work, "pixi", pairs, **kw)


class Area:
    """A canary tree around the output directory: ``area/{canary/,out/}``."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "area"
        self.canary = self.root / "canary"
        self.out = self.root / "out"
        (self.canary / "sub").mkdir(parents=True)
        (self.canary / "x.json").write_text("canary\n")
        (self.canary / "sub" / "keep.txt").write_text("keep\n")
        os.symlink("sub", self.canary / "link")
        self.out.mkdir()
        self.tmp = tmp_path
        self.before = self.state()

    def state(self) -> tuple[Any, ...]:
        return (
            snapshot(self.canary),
            sorted(os.listdir(self.root)),
            sorted(os.listdir(self.tmp)),
            sorted(os.listdir(self.tmp.parent)),
        )

    def assert_untouched(self) -> None:
        assert self.state() == self.before

    def assert_no_environment(self) -> None:
        assert sorted(os.listdir(self.out)) == [], "a half-made environment was left behind"


def refused(
    tmp_path: Path,
    fmt: str,
    packages: list[RawPackage],
    words: list[str],
    error: type[PortpackError] = UnsafeArchiveError,
    **kw: Any,
) -> None:
    """The library raises ``error`` and the CLI exits non-zero with one paragraph naming
    ``words``; nothing changes outside the output directory, which stays empty."""
    archive = build(fmt, tmp_path, packages, **kw)
    area = Area(tmp_path)
    with pytest.raises(error) as caught:
        portpack.unpack(archive, area.out)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    area.assert_no_environment()
    area.assert_untouched()
    cli = subprocess.run(
        [sys.executable, "-m", "portpack", "unpack", str(archive), "-o", str(area.out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode != 0
    assert "Traceback" not in cli.stderr
    assert "\n\n" not in cli.stderr.strip(), cli.stderr
    for word in words:
        assert word in cli.stderr, cli.stderr
    area.assert_no_environment()
    area.assert_untouched()


# -- class 1: record fields used as file names ------------------------------------------

ESCAPES = {
    "build": "0/../../../../x",
    "version": "1.0/../../../x",
    "name": "../../../x",
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("field", sorted(ESCAPES))
def test_record_field_naming_a_path_is_refused(tmp_path: Path, fmt: str, field: str) -> None:
    """The archive's record (portpack.json / repodata.json) alone is hostile."""
    pkg = RawPackage("evil", [OK], record={field: ESCAPES[field]})
    refused(tmp_path, fmt, [pkg], [f"'{field}'", ESCAPES[field]])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("field", sorted(ESCAPES))
def test_index_json_field_naming_a_path_is_refused(tmp_path: Path, fmt: str, field: str) -> None:
    """index.json alone is hostile (pixi-pack without repodata takes the dist from it)."""
    clean = {"name": "evil", "version": "1.0", "build": "0"}
    pkg = RawPackage("evil", [OK], index={field: ESCAPES[field]}, record=clean)
    kw = {"with_repodata": False} if fmt == "pixi-pack" else {}
    refused(tmp_path, fmt, [pkg], ["info/index.json", f"'{field}'"], **kw)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ".hidden"),
        ("name", "a\0b"),
        ("name", "a b"),
        ("name", "a\u2215b"),  # division slash, a look-alike of "/"
        ("name", "x" * 129),
        ("version", "1\uff0e0"),  # fullwidth full stop
        ("version", ".1"),
        ("version", "1..2"),
        ("version", "1\\2"),
        ("build", "h0\n"),
        ("build", "0-1"),
        ("build", ""),
        ("build", 0),
        ("version", None),
    ],
)
def test_package_fields_follow_condas_rules(field: str, value: Any) -> None:
    rec = {"name": "pkg", "version": "1.0", "build": "h0_1", field: value}
    if value is None:
        del rec[field]
    with pytest.raises(UnsafeArchiveError, match=f"'{field}'"):
        check_package_fields(rec, "somewhere")


@pytest.mark.parametrize(
    ("name", "version", "build"),
    [
        ("_libgcc_mutex", "0.1", "conda_forge"),
        ("python", "3.12.7", "hc5c86c4_0_cpython"),
        ("r-base", "4.3.1", "h7d5e2e5_1"),
        ("libstdcxx-ng", "13.2.0", "h7e041cc_5"),
        ("ca-certificates", "2024.8.30", "hbcca054_0"),
        ("openjdk", "1!8.0.1", "py_0"),
        ("PyYAML", "6.0.1", "py311h459d7ec_1"),
        ("tzdata", "2024b", "hc8b5060_0"),
        ("cuda-version", "12.0", "hffde075_2+cuda12"),
    ],
)
def test_real_package_fields_are_accepted(name: str, version: str, build: str) -> None:
    rec = {"name": name, "version": version, "build": build}
    assert check_package_fields(rec, "x") == f"{name}-{version}-{build}"


# -- class 2: the clobber destination ----------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_clobbered_file_cannot_be_moved_out_by_index_name(tmp_path: Path, fmt: str) -> None:
    """The losing package's file would move to __clobbers__/<index.json name>/<path>."""
    first = RawPackage("aaa", [Member("share/same.txt", b"a\n")], index={"name": "../../../../x"})
    first.record["name"] = "aaa"
    second = RawPackage("bbb", [Member("share/same.txt", b"b\n")])
    kw = {"with_repodata": False} if fmt == "pixi-pack" else {}
    refused(tmp_path, fmt, [first, second], ["info/index.json", "'name'", "../../../../x"], **kw)


def test_clobber_path_checks_what_it_is_given() -> None:
    """Defence in depth: the clobber directory is made with the path check too."""
    path = safe_relpath("share/x", "t")
    assert clobber_path("aaa", path, "t") == "__clobbers__/aaa/share/x"
    for bad in ("..", "../x", "a/../..", "/abs", "a\0"):
        with pytest.raises(UnsafeArchiveError, match="unsafe path"):
            clobber_path(bad, path, "t")


@pytest.mark.parametrize("fmt", FORMATS)
def test_clobbering_still_keeps_both_files_inside(tmp_path: Path, fmt: str) -> None:
    first = RawPackage("aaa", [Member("share/same.txt", b"a\n")])
    second = RawPackage("bbb", [Member("share/same.txt", b"b\n")], depends=["aaa"])
    archive = build(fmt, tmp_path, [first, second])
    area = Area(tmp_path)
    result = portpack.unpack(archive, area.out)
    assert (result.prefix / "share/same.txt").read_bytes() == b"b\n"
    assert (result.prefix / "__clobbers__/aaa/share/same.txt").read_bytes() == b"a\n"
    assert verify(result.prefix).ok
    area.assert_untouched()


# -- class 3: path-valued metadata after mapping -----------------------------------------

NOARCH = RawPackage(
    "noarchy",
    [Member("site-packages/noarchy/__init__.py", b"x = 1\n"), Member("python-scripts/tool", b"")],
    index={"noarch": "python"},
    depends=["python"],
)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "site", ["../../../../outside", "/tmp/abs-site-packages", "lib/../../x", "lib//sp"]
)
def test_site_packages_path_outside_is_refused(tmp_path: Path, fmt: str, site: str) -> None:
    python = python_package(python_site_packages_path=site)
    refused(tmp_path, fmt, [python, NOARCH], ["python_site_packages_path", "python"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_site_packages_path_is_honoured_inside(tmp_path: Path, fmt: str) -> None:
    python = python_package(python_site_packages_path="lib/python3.11t/site-packages")
    archive = build(fmt, tmp_path, [python, NOARCH])
    area = Area(tmp_path)
    result = portpack.unpack(archive, area.out)
    assert (result.prefix / "lib/python3.11t/site-packages/noarchy/__init__.py").is_file()
    assert (result.prefix / "bin/tool").is_file()
    area.assert_untouched()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "spec", ["../../evil = os:system", "a/b = os:system", ".. = os:system", "x\\y = os:path"]
)
def test_entry_point_names_cannot_escape(tmp_path: Path, fmt: str, spec: str) -> None:
    pkg = RawPackage(
        "evil",
        [Member("site-packages/evil/__init__.py", b"")],
        index={"noarch": "python"},
        link={"noarch": {"type": "python", "entry_points": [spec]}, "package_metadata_version": 1},
    )
    refused(tmp_path, fmt, [python_package(), pkg], ["invalid entry point"], error=PortpackError)


def _hash(data: bytes) -> str:
    import base64
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"sha256={digest}"


def _wheel(files: dict[str, bytes], name: str = "evilwheel", version: str = "1.0") -> bytes:
    """A wheel whose RECORD lists ``files`` as given, with their hashes."""
    dist_info = f"{name}-{version}.dist-info"
    meta = {
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        for path, text in meta.items():
            zf.writestr(path, text)
        contents = {**files, **{p: t.encode() for p, t in meta.items()}}
        record_lines = [f"{p},{_hash(d)},{len(d)}" for p, d in contents.items()]
        record_lines.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record_lines) + "\n")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../../../outside.py", "unsafe path"),
        ("evilwheel-1.0.data/data/../../../../x", "unsafe path"),
        ("/tmp/abs.py", "absolute"),
    ],
)
def test_wheel_record_paths_cannot_escape(tmp_path: Path, path: str, reason: str) -> None:
    """pixi-pack's pypi/*.whl: the RECORD (and zip) names go through the path check."""
    wheel = _wheel({path: b"pwned = 1\n", "evilwheel/__init__.py": b""})
    refused(
        tmp_path,
        "pixi-pack",
        [python_package()],
        ["evilwheel-1.0-py3-none-any.whl", reason],
        error=PortpackError,
        wheels={"evilwheel-1.0-py3-none-any.whl": wheel},
    )


def test_wheel_scheme_follows_the_checked_site_packages(tmp_path: Path) -> None:
    wheel = _wheel({"goodwheel/__init__.py": b"ok = 1\n"}, name="goodwheel")
    python = python_package(python_site_packages_path="lib/python3.11t/site-packages")
    archive = build(
        "pixi-pack", tmp_path, [python], wheels={"goodwheel-1.0-py3-none-any.whl": wheel}
    )
    area = Area(tmp_path)
    result = portpack.unpack(archive, area.out)
    assert (result.prefix / "lib/python3.11t/site-packages/goodwheel/__init__.py").is_file()
    area.assert_untouched()


# -- class 5: an empty prefix_placeholder ------------------------------------------------

DATA = b"#!/bin/sh\necho no placeholder here\n" + bytes(range(256))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["text", "binary"])
def test_empty_placeholder_is_no_placeholder(tmp_path: Path, fmt: str, mode: str) -> None:
    """As conda reads it: the file is written unchanged and recorded without one."""
    import hashlib

    entry = {
        "_path": "share/data.bin",
        "path_type": "hardlink",
        "sha256": hashlib.sha256(DATA).hexdigest(),
        "size_in_bytes": len(DATA),
        "prefix_placeholder": "",
        "file_mode": mode,
    }
    pkg = RawPackage("empty", [Member("share/data.bin", DATA)], paths=[entry])
    _unpacks_unchanged(tmp_path, fmt, pkg)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("line", ['"" text share/data.bin', "'' binary share/data.bin"])
def test_empty_legacy_has_prefix_is_no_placeholder(tmp_path: Path, fmt: str, line: str) -> None:
    pkg = RawPackage(
        "legacy",
        [Member("share/data.bin", DATA)],
        legacy=True,
        info=[
            Member("info/files", b"share/data.bin\n"),
            Member("info/has_prefix", line.encode() + b"\n"),
        ],
    )
    _unpacks_unchanged(tmp_path, fmt, pkg)


def _unpacks_unchanged(tmp_path: Path, fmt: str, pkg: RawPackage) -> None:
    archive = build(fmt, tmp_path, [pkg])
    area = Area(tmp_path)
    result = portpack.unpack(archive, area.out)
    assert (result.prefix / "share/data.bin").read_bytes() == DATA
    [meta] = (result.prefix / "conda-meta").glob(f"{pkg.name}-*.json")
    [path] = json.loads(meta.read_text())["paths_data"]["paths"]
    assert "prefix_placeholder" not in path
    assert verify(result.prefix).ok
    area.assert_untouched()


# -- class 9: deep paths -----------------------------------------------------------------

DEPTH = 1200


@pytest.mark.parametrize("fmt", FORMATS)
def test_deep_paths_unpack(tmp_path: Path, fmt: str) -> None:
    """A legal path of 1,200 components: no RecursionError, the file is there."""
    deep = "/".join(["d"] * DEPTH) + "/leaf.txt"
    pkg = RawPackage("deep", [Member(deep, b"deep\n"), OK])
    archive = build(fmt, tmp_path, [pkg])
    area = Area(tmp_path)
    result = portpack.unpack(archive, area.out)
    # Read it relative to its directory: the absolute path is longer than some tools like.
    fd = os.open(result.prefix, os.O_RDONLY)
    try:
        with open(deep, "rb", opener=lambda p, f: os.open(p, f, dir_fd=fd)) as fh:
            assert fh.read() == b"deep\n"
    finally:
        os.close(fd)
    [meta] = (result.prefix / "conda-meta").glob("deep-*.json")
    assert deep in json.loads(meta.read_text())["files"]
    area.assert_untouched()
    remove_tree(str(result.prefix))  # pytest's own clean-up recurses per level


@pytest.mark.parametrize("fmt", FORMATS)
def test_deep_paths_then_a_failure_leave_nothing(tmp_path: Path, fmt: str) -> None:
    """The staging tree of a failed unpack is removed however deep it is."""
    deep = "/".join(["d"] * DEPTH) + "/leaf.txt"
    first = RawPackage("deep", [Member(deep, b"deep\n")])
    second = RawPackage("evil", [Member("bin/pw", type=b"1", linkname="etc/shadow")])
    refused(tmp_path, fmt, [first, second], ["package evil", "hard link to unknown member"])


def test_ensure_dir_is_iterative(tmp_path: Path) -> None:
    dest = Destination(str(tmp_path / "root"))
    os.mkdir(dest.root)
    rel = safe_relpath("/".join(["x"] * (sys.getrecursionlimit() + 500)), "t")
    dest.ensure_dir(rel, "t")
    assert os.path.isdir(f"{dest.root}/{rel}")
    remove_tree(dest.root)  # also without recursion
    assert not os.path.exists(dest.root)


# -- the design: nothing but the path check makes a RelPath ------------------------------


def test_only_the_path_check_makes_a_relpath() -> None:
    """RelPath is a NewType: calling it or casting to it elsewhere would skip the check."""
    root = Path(portpack.__file__).parent
    offenders = []
    sources = sorted(root.rglob("*.py"))
    assert root / "install" / "destination.py" in sources
    for source in sources:
        if source.name == "paths.py":
            continue
        text = source.read_text()
        for needle in ("RelPath(", 'cast("RelPath"', "cast(RelPath", "# type: ignore"):
            for line in text.splitlines():
                if needle in line and "RelPath" in line:
                    offenders.append(f"{source.relative_to(root)}: {line.strip()}")
    assert offenders == []


def test_destination_takes_only_checked_paths() -> None:
    """Every public Destination method that names a path is annotated with RelPath."""
    import inspect

    for name, method in inspect.getmembers(Destination, inspect.isfunction):
        if name.startswith("_"):
            continue
        params = inspect.signature(method).parameters
        for param in params.values():
            if param.name in ("rel", "new_rel", "stop"):
                assert param.annotation == "RelPath", (name, param)
