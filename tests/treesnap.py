"""Snapshots of installed prefixes, for comparing two installations."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from portpack.install.stat_index import INDEX_NAME


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, int, str]]:
    """Map each relative path to (kind, permission bits, sha256 or symlink target)."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel.startswith(skip):
                continue
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", 0, "")
            elif rel.endswith(STAT_INDEX):
                out[rel] = ("file", mode, stat_index_paths(Path(path)))
            else:
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                out[rel] = ("file", mode, digest)
    return out


#: The stat index holds inode numbers and times, which differ between two
#: installations by nature: compared by the paths it lists.
STAT_INDEX = INDEX_NAME


def stat_index_paths(path: Path) -> str:
    lines = path.read_bytes().splitlines()[1:]
    paths = sorted(row[0] for line in lines for row in json.loads(line))
    return "stat index of: " + hashlib.sha256(json.dumps(paths).encode()).hexdigest()


def diff(a: dict[str, tuple[str, int, str]], b: dict[str, tuple[str, int, str]]) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    lines = [f"only in first: {p}" for p in sorted(a.keys() - b.keys())]
    lines += [f"only in second: {p}" for p in sorted(b.keys() - a.keys())]
    lines += [
        f"differs: {p}: {a[p]} != {b[p]}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]
    ]
    return lines


def without_empty_clobber_dirs(tree: dict[str, tuple[str, int, str]]) -> dict[str, Any]:
    """Drop directories under ``__clobbers__`` that hold no file (rattler leftovers)."""
    files = [p for p, (kind, _, _) in tree.items() if kind != "dir"]
    return {
        p: v
        for p, v in tree.items()
        if not (
            p.startswith("__clobbers__")
            and v[0] == "dir"
            and not any(f.startswith(p + "/") for f in files)
        )
    }
