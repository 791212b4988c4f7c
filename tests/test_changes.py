"""portpack.conda.changes: which packages an update keeps, replaces, adds and removes."""

from __future__ import annotations

from portpack.conda.changes import compare, same_package_file
from portpack.conda.record import PackageRecord


def _record(name: str, version: str = "1.0", **digests: str) -> PackageRecord:
    raw = {
        "name": name,
        "version": version,
        "build": "0",
        "build_number": 0,
        "subdir": "linux-64",
        "fn": f"{name}-{version}-0.conda",
        **digests,
    }
    return PackageRecord.from_json(raw, "test")


def test_packages_sort_into_added_removed_changed_unchanged() -> None:
    old = [_record("a", sha256="1" * 64), _record("b", sha256="2" * 64), _record("c")]
    new = [_record("a", sha256="1" * 64), _record("b", "2.0", sha256="3" * 64), _record("d")]
    changes = compare(old, new)
    assert [r.name for r in changes.unchanged] == ["a"]
    assert [(c.old.version, c.new.version) for c in changes.changed] == [("1.0", "2.0")]
    assert [r.name for r in changes.added] == ["d"]
    assert [r.name for r in changes.removed] == ["c"]
    assert not changes.identical
    assert compare(old, old[:2]).removed == [old[2]]


def test_identity_is_the_package_digest_not_the_version() -> None:
    rebuilt = _record("a", sha256="1" * 64), _record("a", sha256="9" * 64)
    assert not same_package_file(*rebuilt)  # same name-version-build, another file
    assert same_package_file(
        _record("a", md5="f" * 32), _record("a", sha256="1" * 64, md5="f" * 32)
    )
    assert not same_package_file(_record("a"), _record("a"))  # nothing proves it the same
    assert compare([rebuilt[0]], [rebuilt[0]]).identical
