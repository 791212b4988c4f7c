"""Tests of portpack.install.noarch: noarch-python path remapping and entry-point scripts."""

from __future__ import annotations

import pytest

from portpack.conda.record import PackageRecord
from portpack.errors import PackageError, UnsafeArchiveError
from portpack.install.noarch import EntryPoint, PythonInfo

PY312 = PythonInfo(version="3.12", site_packages="lib/python3.12/site-packages")


# --- PythonInfo ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [("3.12.4", "3.12"), ("3.9", "3.9"), ("3.13.0rc1", "3.13"), ("3.10.14.post1", "3.10")],
)
def test_from_record_default_site_packages(version: str, expected: str) -> None:
    info = PythonInfo.from_record({"name": "python", "version": version, "build": "h0_cpython"})
    assert info.version == expected
    assert info.site_packages == f"lib/python{expected}/site-packages"
    assert info.interpreter == f"bin/python{expected}"


def test_from_record_honours_python_site_packages_path() -> None:
    record = {
        "name": "python",
        "version": "3.13.1",
        "python_site_packages_path": "lib/python3.13t/site-packages",
    }
    info = PythonInfo.from_record(record)
    assert info.site_packages == "lib/python3.13t/site-packages"
    assert info.version == "3.13"
    assert info.map_path("site-packages/foo.py") == "lib/python3.13t/site-packages/foo.py"


def test_from_record_takes_the_typed_record() -> None:
    raw = {
        "name": "python",
        "version": "3.13.1",
        "build": "h0_cp313t",
        "python_site_packages_path": "lib/python3.13t/site-packages",
    }
    info = PythonInfo.from_record(PackageRecord.from_json(raw, "test"))
    assert info == PythonInfo.from_record(raw)
    assert info.site_packages == "lib/python3.13t/site-packages"
    hostile = PackageRecord.from_json({**raw, "python_site_packages_path": "../../etc"}, "test")
    with pytest.raises(UnsafeArchiveError, match="python_site_packages_path"):
        PythonInfo.from_record(hostile)


def test_from_record_empty_site_packages_path_uses_default() -> None:
    info = PythonInfo.from_record({"version": "3.11.9", "python_site_packages_path": None})
    assert info.site_packages == "lib/python3.11/site-packages"


def test_from_record_unreadable_version() -> None:
    with pytest.raises(PackageError, match="cannot read the python version from '3'"):
        PythonInfo.from_record({"version": "3"})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("site-packages/foo/__init__.py", "lib/python3.12/site-packages/foo/__init__.py"),
        (
            "site-packages/foo-1.0.dist-info/RECORD",
            "lib/python3.12/site-packages/foo-1.0.dist-info/RECORD",
        ),
        ("python-scripts/foo", "bin/foo"),
        ("python-scripts/sub/tool.py", "bin/sub/tool.py"),
        ("share/man/man1/foo.1", "share/man/man1/foo.1"),
        ("etc/conda/activate.d/foo.sh", "etc/conda/activate.d/foo.sh"),
        # Only the directory itself is remapped, not look-alike names.
        ("site-packages-extra/x", "site-packages-extra/x"),
        ("python-scripts.txt", "python-scripts.txt"),
        ("lib/site-packages/x", "lib/site-packages/x"),
    ],
)
def test_map_path(path: str, expected: str) -> None:
    assert PY312.map_path(path) == expected


# --- EntryPoint.parse ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("foo = foo.cli:main", EntryPoint("foo", "foo.cli", "main")),
        ("foo=foo:main", EntryPoint("foo", "foo", "main")),
        (
            "  my-tool  =  pkg.sub_mod : Klass.run ",
            EntryPoint("my-tool", "pkg.sub_mod", "Klass.run"),
        ),
        ("tool.py = _priv:_main2", EntryPoint("tool.py", "_priv", "_main2")),
    ],
)
def test_parse_valid(spec: str, expected: EntryPoint) -> None:
    assert EntryPoint.parse(spec, "pkg-1.0-py_0") == expected


@pytest.mark.parametrize(
    "spec",
    [
        "../evil = foo:main",
        "bin/evil = foo:main",
        "evil\\x = foo:main",
        "ev\0il = foo:main",
        ".hidden = foo:main",
        ". = foo:main",
        "= foo:main",
        "foo = :main",
        "foo = foo:",
        "foo = foo",
        "foo = 1foo:main",
        "foo = foo..bar:main",
        "foo = .foo:main",
        "foo = foo.:main",
        "foo = foo:main.",
        "foo = foo:2main",
        "foo = foo-bar:main",
        "foo = foo:main [extra]",
        "foo bar = foo:main",
        "",
    ],
)
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(PackageError) as info:
        EntryPoint.parse(spec, "pkg-1.0-py_0")
    assert "pkg-1.0-py_0" in str(info.value)
    assert repr(spec) in str(info.value)


# --- scripts ---------------------------------------------------------------------------------


def test_script_is_byte_exact() -> None:
    script = EntryPoint("foo", "foo.cli", "main").script("/opt/env", PY312)
    assert script == (
        b"#!/opt/env/bin/python3.12\n"
        b"# -*- coding: utf-8 -*-\n"
        b"import re\n"
        b"import sys\n"
        b"\n"
        b"from foo.cli import main\n"
        b"\n"
        b"if __name__ == '__main__':\n"
        b"\tsys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n"
        b"\tsys.exit(main())\n"
    )


def test_script_imports_the_head_of_a_dotted_function() -> None:
    script = EntryPoint("x", "pkg.mod", "App.run.now").script("/p", PY312)
    lines = script.decode().splitlines()
    assert "from pkg.mod import App" in lines
    assert lines[-1] == "\tsys.exit(App.run.now())"


def test_script_is_valid_python() -> None:
    script = EntryPoint("x", "pkg.mod", "App.run").script("/p", PY312)
    compile(script, "x", "exec")


def test_script_with_a_long_prefix_uses_the_sh_trampoline() -> None:
    prefix = "/long/" + "p" * 120
    script = EntryPoint("foo", "foo", "main").script(prefix, PY312)
    first, second, rest = script.split(b"\n", 2)
    assert first == b"#!/bin/sh"
    assert second == f"'''exec' \"{prefix}/bin/python3.12\" \"$0\" \"$@\" #'''".encode()
    assert rest.startswith(b"# -*- coding: utf-8 -*-\nimport re\n")
    assert rest.endswith(b"\tsys.exit(main())\n")
    compile(script, "foo", "exec")  # the trampoline is also valid python


def test_script_prefix_at_the_shebang_limit_is_kept() -> None:
    interpreter = "/bin/python3.12"
    prefix = "/" + "q" * (127 - 2 - len(interpreter) - 1)
    script = EntryPoint("foo", "foo", "main").script(prefix, PY312)
    assert script.startswith(f"#!{prefix}{interpreter}\n".encode())
    longer = EntryPoint("foo", "foo", "main").script(prefix + "q", PY312)
    assert longer.startswith(b"#!/bin/sh\n")


def test_script_with_a_space_in_the_prefix_uses_the_sh_trampoline() -> None:
    script = EntryPoint("foo", "foo", "main").script("/home/my user/env", PY312)
    assert script.startswith(
        b"#!/bin/sh\n'''exec' \"/home/my user/env/bin/python3.12\" \"$0\" \"$@\" #'''\n"
    )
