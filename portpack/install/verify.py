"""``verify``: check an unpacked environment against its conda-meta records (stdlib only).

Files installed from PyPI wheels are not in conda-meta: a ``*.dist-info/RECORD`` in
site-packages that no conda package owns lists them, with their sha256 and size.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portpack.errors import UsageError
from portpack.streams import hash_file

#: Written by Python itself when the environment runs; never part of a package.
_RUNTIME_CACHE = "__pycache__"


@dataclass
class VerifyReport:
    """What :func:`verify` found; ``ok`` when nothing is missing, modified or extra."""

    prefix: Path
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    """Paths whose type, size or sha256 differ from the record, with the reason."""
    extra: list[str] = field(default_factory=list)
    """Files no record lists (``__pycache__`` written at run time excluded)."""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.modified or self.extra)


def verify(prefix: str | os.PathLike[str]) -> VerifyReport:
    """Check every recorded file of the environment at ``prefix``."""
    root = Path(prefix)
    meta = root / "conda-meta"
    if not (meta / "history").is_file():
        raise UsageError(f"{root} is not a conda environment (no conda-meta/history)")
    report = VerifyReport(prefix=root)
    recorded: set[str] = set()
    for rel, entry in recorded_entries(root):
        _check_into(report, recorded, rel, entry)
    report.extra = sorted(_extras(root, recorded))
    return report


def recorded_entries(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every path the environment's records list: conda-meta's ``paths_data``, then the
    ``RECORD`` of each wheel no conda package owns (path relative to ``root``, entry)."""
    out = [
        (str(entry["_path"]), entry)
        for record_path in sorted((root / "conda-meta").glob("*.json"))
        for entry in _paths(record_path)
    ]
    conda = {rel for rel, _ in out}
    for record_file in _wheel_records(root, conda):
        out += _record_entries(root, record_file)
    return out


def check_entry(path: Path, entry: dict[str, Any]) -> str | None:
    """How ``path`` differs from its record ``entry`` (a ``paths_data`` entry as JSON):
    ``"missing"``, another reason, or None when it matches."""
    return _check(path, entry)


def unowned(root: Path, conda_paths: Iterable[str] | None = None) -> list[str]:
    """Files and symlinks below ``root`` no record lists (``__pycache__`` excluded);
    ``conda_paths``: the conda-meta records' paths, when the caller read them already
    (the wheels' ``RECORD`` files are read here either way)."""
    if conda_paths is None:
        return sorted(_extras(root, {rel for rel, _ in recorded_entries(root)}))
    recorded = set(conda_paths)
    for record_file in _wheel_records(root, recorded):
        recorded.update(rel for rel, _ in _record_entries(root, record_file))
    return sorted(_extras(root, recorded))


def _check_into(report: VerifyReport, recorded: set[str], rel: str, entry: dict[str, Any]) -> None:
    recorded.add(rel)
    report.checked += 1
    problem = _check(report.prefix / rel, entry)
    if problem == "missing":
        report.missing.append(rel)
    elif problem:
        report.modified.append(f"{rel}: {problem}")


def _wheel_records(root: Path, recorded: set[str]) -> list[str]:
    """``RECORD`` files of site-packages that no conda package owns (installed wheels)."""
    found = []
    for site in _site_packages(root):
        for path in sorted(site.glob("*.dist-info/RECORD")):
            rel = path.relative_to(root).as_posix()
            if rel not in recorded:
                found.append(rel)
    return found


def _site_packages(root: Path) -> list[Path]:
    """``lib/pythonX.Y/site-packages``, or where the python record says it is."""
    dirs = set(root.glob("lib/python*/site-packages"))
    for record in root.glob("conda-meta/python-[0-9]*.json"):
        try:
            custom = json.loads(record.read_text()).get("python_site_packages_path")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(custom, str) and custom and not custom.startswith("/"):
            dirs.add(root / custom)
    return sorted(d for d in dirs if d.is_dir())


def _record_entries(root: Path, record_file: str) -> list[tuple[str, dict[str, Any]]]:
    """``(path relative to the prefix, conda-style entry)`` for each line of a RECORD."""
    site = posixpath.dirname(posixpath.dirname(record_file))
    try:
        rows = list(csv.reader((root / record_file).read_text().splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read {root / record_file}: {exc}") from exc
    out = []
    for row in rows:
        if not row or not row[0]:
            continue
        rel = posixpath.normpath(posixpath.join(site, row[0]))
        if rel.startswith("../") or rel.startswith("/"):
            continue  # outside the prefix: not this environment's to check
        entry: dict[str, Any] = {}
        algorithm, _, value = (row[1] if len(row) > 1 else "").partition("=")
        if algorithm == "sha256" and value:
            try:
                entry["sha256"] = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
            except ValueError:
                entry["sha256"] = "not a valid sha256"  # reported as modified
        if len(row) > 2 and row[2].isdigit():
            entry["size_in_bytes"] = int(row[2])
        out.append((rel, entry))
    return out


def _paths(record_path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(record_path.read_text())
        return list(doc["paths_data"]["paths"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read the conda-meta record {record_path}: {exc}") from exc


def _check(path: Path, entry: dict[str, Any]) -> str | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return "missing"
    kind = entry.get("path_type", "hardlink")
    if kind == "directory":
        return None if stat.S_ISDIR(st.st_mode) else "not a directory"
    if kind == "softlink":
        if not stat.S_ISLNK(st.st_mode):
            return "not a symlink"
        want = entry.get("sha256_in_prefix")
        target = os.readlink(path).encode()
        if want and hashlib.sha256(target).hexdigest() != want:
            return "symlink target changed"
        return None
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    size = entry.get("size_in_bytes")
    if size is not None and st.st_size != size:
        return f"size {st.st_size}, recorded {size}"
    want = entry.get("sha256_in_prefix") or entry.get("sha256")
    if want and hash_file(path) != want:
        return "content differs (sha256)"
    return None


def _extras(root: Path, recorded: set[str]) -> list[str]:
    """Files and symlinks below ``root`` (outside ``conda-meta/``) not in ``recorded``."""
    out: list[str] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        runtime_cache = os.path.basename(rel_dir) == _RUNTIME_CACHE
        with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if rel != "conda-meta":
                        pending.append(rel)
                elif rel not in recorded and not (runtime_cache and rel.endswith(".pyc")):
                    out.append(rel)
    return out
