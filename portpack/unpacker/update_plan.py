"""What ``unpack --update`` does to an environment, decided before a byte is written
(and what ``portpack diff`` shows for an environment against an archive).

A package is *reused* (its files taken from the old environment) when
:func:`portpack.conda.changes.compare` finds its package file unchanged and its
files are right for the new environment as they are: the environment records the
prefix it was unpacked to and it is the target (or no file of the package holds
the prefix), noarch python packages find the same python, none of its paths took
part in clobbering in the old environment, and none of its files was changed
there (a file whose stat is as the environment's stat index recorded it after the
last unpack is not read for that). Every other package of the archive is installed
from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portpack.archive import format as fmt
from portpack.conda.changes import PackageChanges, compare
from portpack.errors import LocalChangesError
from portpack.install import stat_index, verify
from portpack.install.noarch import PythonInfo
from portpack.install.prefix_state import InstalledPackage, PrefixState
from portpack.install.stat_index import StatIndex
from portpack.unpacker.finish import python_info

#: Why a package whose file is unchanged is installed again.
NO_PATHS = "its conda-meta record lists no paths_data"
OTHER_PREFIX = "the environment was unpacked to another prefix (or does not say where)"
OTHER_PYTHON = "noarch python, and python's version or site-packages changes"
CLOBBERS = "its files clobber, or are clobbered by, another package's"
MODIFIED = "files of it were changed in the environment (--force replaces them)"


@dataclass
class UpdatePlan:
    """What an update of ``prefix`` to an archive does."""

    prefix: Path
    changes: PackageChanges
    reuse: dict[str, InstalledPackage] = field(default_factory=dict)
    """The packages taken from the old environment, by name."""
    reinstall: dict[str, str] = field(default_factory=dict)
    """Unchanged packages installed from the archive all the same: name -> why."""
    modified: list[str] = field(default_factory=list)
    """``path: reason`` of changed files of packages that would otherwise be reused."""
    unowned: list[str] = field(default_factory=list)
    """Files of the old environment no record lists (kept unless dropped)."""
    hashed_files: int = 0
    """Files read to look for local changes: those whose stat differs from the stat
    index, or all when the environment has none (:mod:`portpack.install.stat_index`)."""

    @property
    def install(self) -> list[str]:
        """Names of the packages installed from the archive (added, changed, reinstalled)."""
        added = [r.name for r in self.changes.added]
        changed = [c.new.name for c in self.changes.changed]
        return sorted([*added, *changed, *self.reinstall])

    def check_local_changes(self, force: bool) -> None:
        """Refuse changed files unless ``force`` (then they are replaced from the archive)."""
        if self.modified and not force:
            listed = "; ".join(self.modified[:20])
            more = f" (and {len(self.modified) - 20} more)" if len(self.modified) > 20 else ""
            raise LocalChangesError(
                f"{self.prefix} has local changes to files of packages the update keeps: "
                f"{listed}{more}",
                modified=list(self.modified),
                hint="Use --force to replace them with the archive's, or undo the changes.",
            )

    def to_json(self) -> dict[str, Any]:
        """What :func:`portpack.diff` reports about the update, as JSON."""
        return {
            "reuse": sorted(p.record.dist for p in self.reuse.values()),
            "install": self.install,
            "reinstall": dict(sorted(self.reinstall.items())),
            "remove": [r.dist for r in self.changes.removed],
            "modified": list(self.modified),
            "unowned": list(self.unowned),
        }


def plan_update(state: PrefixState, meta: fmt.Metadata, prefix: Path) -> UpdatePlan:
    """Decide, for each package of ``meta``, whether the update reuses it or installs it."""
    changes = compare(state.records, [entry.record for entry in meta.packages])
    plan = UpdatePlan(prefix, changes)
    clobbering = state.clobbering()
    same_python = _same_python(state.python, python_info(meta))
    same_prefix = state.recorded_prefix == str(prefix)
    index = stat_index.read(state.root)
    for record in changes.unchanged:
        old = state.packages[record.name]
        if old.files is None:
            plan.reinstall[record.name] = NO_PATHS
        elif not same_prefix and old.prefix_dependent:
            plan.reinstall[record.name] = OTHER_PREFIX
        elif record.noarch == "python" and not same_python:
            plan.reinstall[record.name] = OTHER_PYTHON
        elif record.name in clobbering:
            plan.reinstall[record.name] = CLOBBERS
        else:
            found = _local_changes(state.root, old, index, plan)
            if found:
                plan.modified += found
                plan.reinstall[record.name] = MODIFIED
            else:
                plan.reuse[record.name] = old
    plan.unowned = verify.unowned(state.root, state.paths())
    return plan


def _same_python(old: PythonInfo | None, new: PythonInfo | None) -> bool:
    return old is not None and old == new


def _local_changes(
    root: Path, package: InstalledPackage, index: StatIndex | None, plan: UpdatePlan
) -> list[str]:
    """``path: reason`` for each file of ``package`` that differs from its record; a
    file the stat index shows unchanged is not read."""
    out = []
    for entry in package.files or ():
        if index is not None and index.unchanged(entry.path):
            continue
        plan.hashed_files += entry.path_type not in ("directory", "softlink")
        problem = verify.check_entry(root / entry.path, entry.to_json())
        if problem:
            out.append(f"{entry.path}: {problem}")
    return out
