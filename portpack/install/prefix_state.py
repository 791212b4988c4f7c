"""What a deployed environment holds, read from its conda-meta (``unpack --update``, ``diff``).

Hostile until checked, as an archive is: each record goes through
:meth:`PackageRecord.from_json`, each path of its ``paths_data`` through the one path
check (:func:`portpack.paths.safe_relpath`). The environment is read, never written.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portpack.conda.info import PathEntry
from portpack.conda.record import PackageRecord
from portpack.errors import UsageError
from portpack.install.condameta import META_DIR, PREFIX_COMMENT
from portpack.install.noarch import PythonInfo
from portpack.paths import RelPath, safe_relpath

#: The largest conda-meta record read (a package of a million paths is ~200 MB).
MAX_RECORD_SIZE = 1 << 30
_PATH_TYPES = ("hardlink", "softlink", "directory", "unix_python_entry_point")


@dataclass
class InstalledPackage:
    """One package of the environment: its record and the entries of its installed paths."""

    record: PackageRecord
    files: list[PathEntry] | None
    """``paths_data`` as typed entries; None when the record has none (old conda)."""

    @property
    def prefix_dependent(self) -> bool:
        """Whether its files hold the prefix (placeholders, entry points' shebangs)."""
        return any(
            f.placeholder is not None or f.path_type == "unix_python_entry_point"
            for f in self.files or ()
        )


@dataclass
class PrefixState:
    """The environment at ``root`` as its conda-meta describes it."""

    root: Path
    packages: dict[str, InstalledPackage] = field(default_factory=dict)
    """By package name."""
    recorded_prefix: str | None = None
    """The prefix portpack unpacked it to (``conda-meta/history``); None: not recorded."""

    @property
    def records(self) -> list[PackageRecord]:
        return [p.record for p in self.packages.values()]

    @property
    def python(self) -> PythonInfo | None:
        """Where its noarch python packages were installed."""
        python = self.packages.get("python")
        return None if python is None else PythonInfo.from_record(python.record)

    def paths(self) -> Iterator[str]:
        """Every path the records list."""
        return (f.path for p in self.packages.values() for f in p.files or ())

    def clobbering(self) -> set[str]:
        """Names of the packages that took part in clobbering here (lost or won a path)."""
        wanted: set[str] = {
            f.original_path
            for p in self.packages.values()
            for f in p.files or ()
            if f.original_path is not None
        }
        if not wanted:  # no path was lost: none was contested
            return set()
        ancestors = {parent for w in wanted for parent in _ancestors(w)}
        out = set()
        for name, package in self.packages.items():
            for entry in package.files or ():
                if _contested(entry, wanted, ancestors):
                    out.add(name)
        return out


def _contested(entry: PathEntry, wanted: set[str], ancestors: set[str]) -> bool:
    """Whether ``entry`` lost its path, or holds one another package wanted (the same
    path, a directory above a wanted one, or a file below)."""
    if entry.original_path is not None or entry.path in wanted or entry.path in ancestors:
        return True
    return any(a in wanted for a in _ancestors(entry.path))


def _ancestors(path: str) -> Iterable[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


def read_prefix(root: Path) -> PrefixState | None:
    """The state of the environment at ``root``; None when nothing (or an empty
    directory) is there. Raises :class:`UsageError` for anything else that is not a
    conda environment (no ``conda-meta/history``) and for unreadable records."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot look at {root}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{root} is not a directory, so it is not an environment to update")
    meta = root / META_DIR
    if not os.path.isfile(meta / "history") or os.path.islink(meta):
        if not any(True for _ in os.scandir(root)):
            return None
        raise UsageError(
            f"refusing to update {root}: it is not a conda environment (no conda-meta/history)",
            hint="--update replaces environments made by portpack, pixi-unpack or conda only.",
        )
    state = PrefixState(root, recorded_prefix=_recorded_prefix(meta / "history"))
    for path in sorted(meta.glob("*.json")):
        package = _package(path)
        if package.record.name in state.packages:
            raise UsageError(f"{root}: two conda-meta records name package {package.record.name}")
        state.packages[package.record.name] = package
    return state


def _recorded_prefix(history: Path) -> str | None:
    """The last prefix the history names (None: not portpack's, or not recorded)."""
    found = None
    try:
        with open(history, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(PREFIX_COMMENT):
                    found = line[len(PREFIX_COMMENT) :].rstrip("\n")
    except OSError as exc:
        raise UsageError(f"cannot read {history}: {exc.strerror or exc}") from None
    return found


def _package(path: Path) -> InstalledPackage:
    where = f"the conda-meta record {path}"
    try:
        if path.is_symlink() or path.stat().st_size > MAX_RECORD_SIZE:
            raise UsageError(f"{where} is a symlink or larger than {MAX_RECORD_SIZE} bytes")
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {where}: {exc}") from None
    record = PackageRecord.from_json(doc, where, UsageError)
    paths_data = doc.get("paths_data")
    if not isinstance(paths_data, Mapping) or not isinstance(paths_data.get("paths"), list):
        return InstalledPackage(record, None)
    what = f"{where} (package {record.dist})"
    return InstalledPackage(record, [path_entry(raw, what) for raw in paths_data["paths"]])


def path_entry(raw: Any, what: str) -> PathEntry:
    """One ``paths_data`` entry, typed and checked (its paths through the path check)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("_path"), str):
        raise UsageError(f"{what}: a paths_data entry is not an object with a '_path'")
    path = safe_relpath(raw["_path"], what)
    kind = raw.get("path_type", "hardlink")
    if kind not in _PATH_TYPES:
        raise UsageError(f"{what}: {path}: unknown path_type {kind!r:.40}")
    original = raw.get("original_path")
    return PathEntry(
        path=path,
        path_type=kind,
        sha256=_opt(raw, "sha256", str, what),
        size=_opt(raw, "size_in_bytes", int, what),
        placeholder=_opt(raw, "prefix_placeholder", str, what),
        file_mode=_opt(raw, "file_mode", str, what),
        no_link=raw.get("no_link") is True,
        sha256_in_prefix=_opt(raw, "sha256_in_prefix", str, what),
        original_path=None if original is None else _checked(original, what),
        installed=True,
    )


def _checked(value: Any, what: str) -> RelPath:
    if not isinstance(value, str):
        raise UsageError(f"{what}: an original_path is not a string: {value!r:.80}")
    return safe_relpath(value, what)


def _opt(raw: Mapping[str, Any], key: str, kind: type[Any], what: str) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UsageError(f"{what}: {raw['_path']}: {key!r} is {value!r:.80}")
    return value


__all__ = ["InstalledPackage", "PrefixState", "path_entry", "read_prefix"]
