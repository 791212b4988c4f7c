"""``TarFile.extractall`` with an extraction filter on every Python the tests support.

Filters (``filter="data"``...) came in 3.12 and in the 3.11.4 / 3.10.12 security
releases; Debian 12's python3 is 3.11.2 and has none, so ``extractall(filter=...)``
is a ``TypeError`` there. Without them, members that would land outside *dest*
(absolute names, ``..``, links pointing out) are refused before anything is written.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path


def extract_all(tar: tarfile.TarFile, dest: str | os.PathLike[str], filter: str = "data") -> None:
    """Extract every member of *tar* into *dest* with the named filter."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter=filter)
        return
    root = Path(dest).resolve()
    members = tar.getmembers()
    for member in members:
        targets = [member.name]
        if member.issym():
            targets.append(os.path.join(os.path.dirname(member.name), member.linkname))
        elif member.islnk():
            targets.append(member.linkname)
        for name in targets:
            where = (root / name).resolve()
            if os.path.isabs(name) or (where != root and root not in where.parents):
                raise tarfile.TarError(f"{member.name}: leaves {root}")
    tar.extractall(root, members=members)
