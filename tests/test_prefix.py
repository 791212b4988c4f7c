"""The one path check every member goes through (portpack.paths.safe_relpath)."""

from __future__ import annotations

import pytest

from portpack.errors import UnsafeArchiveError
from portpack.paths import safe_relpath


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lib/python3.12/os.py", "lib/python3.12/os.py"),
        ("./bin/python", "bin/python"),
        ("././share/doc/", "share/doc"),
        ("...", "..."),
        ("a/..b/c", "a/..b/c"),
        ("a/b../c", "a/b../c"),
        (".hidden/.profile", ".hidden/.profile"),
        ("lib/libz.so.1.3", "lib/libz.so.1.3"),
    ],
)
def test_accepts_and_normalizes(name: str, expected: str) -> None:
    assert safe_relpath(name, "package p") == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        "./",
        "/etc/passwd",
        "..",
        "../x",
        "a/../../x",
        "a/..",
        "a/./b",
        "a/.",
        "a//b",
        ".",
        "a\\b",
        "a\0b",
    ],
)
def test_refuses(name: str) -> None:
    with pytest.raises(UnsafeArchiveError, match="package p: refusing unsafe path"):
        safe_relpath(name, "package p")
