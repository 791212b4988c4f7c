"""What changes between two sets of package records (``portpack diff``, ``unpack --update``).

Packages are matched by name (an environment holds one package of each name). A
package is *unchanged* only when both records name the same package file: the same
sha256, or, when either record lacks one, the same md5. A record with neither digest
cannot be proven the same and counts as changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from portpack.conda.record import PackageRecord


@dataclass(frozen=True)
class Changed:
    """A package present on both sides whose package file differs."""

    old: PackageRecord
    new: PackageRecord


@dataclass(frozen=True)
class PackageChanges:
    """The package-level difference from ``old`` to ``new``; each list is sorted by name."""

    added: list[PackageRecord] = field(default_factory=list)
    removed: list[PackageRecord] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)
    unchanged: list[PackageRecord] = field(default_factory=list)
    """The records of ``new`` whose package file is the one ``old`` has."""

    @property
    def identical(self) -> bool:
        """True when nothing was added, removed or changed."""
        return not (self.added or self.removed or self.changed)


def same_package_file(old: PackageRecord, new: PackageRecord) -> bool:
    """Whether the two records name the same package file (by digest)."""
    if old.sha256 and new.sha256:
        return old.sha256 == new.sha256
    if old.md5 and new.md5:
        return old.md5 == new.md5
    return False


def compare(old: Iterable[PackageRecord], new: Iterable[PackageRecord]) -> PackageChanges:
    """Match ``old`` and ``new`` by package name and sort each package into one list."""
    before = {record.name: record for record in old}
    after = {record.name: record for record in new}
    changes = PackageChanges()
    for name in sorted(after.keys() | before.keys()):
        was, now = before.get(name), after.get(name)
        if was is None:
            assert now is not None
            changes.added.append(now)
        elif now is None:
            changes.removed.append(was)
        elif same_package_file(was, now):
            changes.unchanged.append(now)
        else:
            changes.changed.append(Changed(was, now))
    return changes
