"""The clobber registry: which package holds each path, and who wins a conflict.

Two packages clobber each other when they want the same path (both a file there), or
when one wants a file where the other wants a directory (``dir`` against ``dir/x``).
rattler's rule decides: the package later in the install order keeps the path; every
other claimant's files move to ``__clobbers__/<its name>/<path>`` and their records keep
the path they wanted as ``original_path``. When the directory side wins, every package
with files below the directory keeps them.

While streaming, the later package in the archive wins at once (for portpack archives
the archive order is the install order). A pixi-pack archive may hold its packages in
another order: :meth:`ClobberRegistry.settle` then re-decides every conflict by the
install order, once it is known, and moves the files accordingly.

The registry keeps the installed records themselves (each knows its package in
``owner``): no object per path beyond them, for environments of a million files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from portpack.conda.info import PathEntry
from portpack.install.destination import Destination
from portpack.paths import RelPath, join, parent_of, safe_relpath

CLOBBERS_DIR = safe_relpath("__clobbers__", "clobbered files")


def clobber_path(package: str, path: RelPath, what: str) -> RelPath:
    """``__clobbers__/<package>/<path>``, where a losing package's file goes."""
    return join(join(CLOBBERS_DIR, package, what), path, what)


def _owner(record: PathEntry) -> tuple[str, str]:
    assert record.owner is not None  # set by own() for every record the registry holds
    return record.owner


def _wanted(record: PathEntry) -> RelPath:
    return record.original_path or record.path


@dataclass
class ClobberRegistry:
    """Tracks the file each path holds so far and resolves clobbering."""

    destination: Destination
    warn: Callable[[str], None] = lambda message: None
    quiet: bool = False
    """Leave the warnings to :meth:`settle` (while streaming the winner is not final)."""
    owners: dict[str, PathEntry] = field(default_factory=dict)
    contested: set[RelPath] = field(default_factory=set)
    """Paths that had more than one claimant (what :meth:`settle` re-decides)."""
    against_dirs: set[RelPath] = field(default_factory=set)
    """The contested paths where a file met a directory."""
    moved: list[PathEntry] = field(default_factory=list)
    """Records moved to ``__clobbers__`` (some may have been restored since)."""

    # -- while streaming: the newcomer wins --------------------------------------

    def claim_file(self, target: RelPath, dist: str) -> None:
        """Make room for ``dist`` to write a file, symlink or entry point at ``target``."""
        previous = self.owners.pop(target, None)
        if previous is not None:
            self._evict([previous], target, dist)
        elif self.destination.is_dir(target):
            below = [path for path in self.owners if path.startswith(target + "/")]
            self.against_dirs.add(target)
            self._evict([self.owners.pop(path) for path in below], target, dist)
            self.destination.remove_empty_tree(target, f"package {dist}")
        parent = parent_of(target)
        if parent and not self.destination.is_dir(parent):
            self._evict_file_ancestor(parent, dist)

    def claim_dir(self, target: RelPath, dist: str) -> None:
        """Make room for ``dist`` to create the directory ``target``."""
        if not self.destination.is_dir(target):
            self._evict_file_ancestor(target, dist)

    def own(self, record: PathEntry, owner: tuple[str, str]) -> None:
        """Remember that package ``owner`` (name, dist) wrote ``record.path``."""
        if record.path_type != "directory":
            record.owner = owner
            self.owners[record.path] = record

    def _evict_file_ancestor(self, path: RelPath, dist: str) -> None:
        """Move away the file an earlier package has at ``path`` or one of its parents."""
        while path:
            record = self.owners.pop(path, None)
            if record is not None:
                self.against_dirs.add(record.path)
                self._evict([record], record.path, dist)
                return
            path = parent_of(path)

    def _evict(self, records: list[PathEntry], contested: RelPath, dist: str) -> None:
        self.contested.add(contested)
        for record in records:
            self._to_clobbers(record, f"package {dist}")
        if records and not self.quiet:
            self._warn(contested, sorted({_owner(r)[1] for r in records}), dist)

    # -- moving files -------------------------------------------------------------

    def _to_clobbers(self, record: PathEntry, what: str) -> None:
        wanted = _wanted(record)
        moved = clobber_path(_owner(record)[0], wanted, what)
        self.destination.rename(record.path, moved, what)
        record.original_path, record.path = wanted, moved
        self.moved.append(record)

    def _restore(self, record: PathEntry, what: str) -> None:
        moved, wanted = record.path, _wanted(record)
        self.destination.rename(moved, wanted, what)
        record.path, record.original_path = wanted, None
        self.destination.remove_empty_dirs(moved, CLOBBERS_DIR)

    def _warn(self, path: str, losers: Iterable[str], winner: str) -> None:
        self.warn(
            f"{path} is in both {', '.join(losers)} and {winner}; keeping the one of "
            f"{winner} (the others are moved to {CLOBBERS_DIR}/<name>/{path})"
        )

    # -- at the end: rattler's order decides -----------------------------------------

    def settle(self, position: Callable[[str], int]) -> None:
        """Re-decide every conflict: the package last in ``position`` (of a package
        name) wins, and the files move to where that decision puts them."""
        if not self.contested:
            return
        by_wanted: dict[str, list[PathEntry]] = {}
        for record in {id(r): r for r in (*self.owners.values(), *self.moved)}.values():
            by_wanted.setdefault(_wanted(record), []).append(record)
        for contested in sorted(self.contested, key=len):
            related = list(by_wanted.get(contested, []))
            if contested in self.against_dirs:
                below = contested + "/"
                related += [r for w, rs in by_wanted.items() if w.startswith(below) for r in rs]
            if not related:
                continue
            last = max(related, key=lambda r: position(_owner(r)[0]))
            file_wins = _wanted(last) == contested
            keep = [r for r in related if (r is last if file_wins else _wanted(r) != contested)]
            lose = [r for r in related if not any(r is k for k in keep)]
            what = f"package {_owner(last)[1]}"
            for record in lose:
                if record.original_path is None:
                    self.owners.pop(record.path, None)
                    self._to_clobbers(record, what)
            if file_wins and self.destination.is_dir(contested):
                self.destination.remove_empty_tree(contested, what)
            for record in keep:
                if record.original_path is not None:
                    self._restore(record, what)
                    self.owners[record.path] = record
            if lose:
                self._warn(contested, sorted({_owner(r)[1] for r in lose}), _owner(last)[1])
