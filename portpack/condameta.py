"""conda-meta: the records that make a directory a conda environment."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from .linker import LinkedPackage
from .prefix import Destination

META_DIR = "conda-meta"


def prefix_record(record: dict[str, Any], linked: LinkedPackage) -> dict[str, Any]:
    """The ``conda-meta/<dist>.json`` document of one installed package."""
    doc = dict(record)
    doc["requested_specs"] = []
    files = sorted(linked.files, key=lambda f: f.path)
    doc["files"] = [f.path for f in files if f.path_type != "directory"]
    doc["paths_data"] = {"paths_version": 1, "paths": [f.to_json() for f in files]}
    # type 3: copied. Files come straight from the archive stream, so there is no
    # extracted package directory to name as the source.
    doc["link"] = {"source": "", "type": 3}
    return doc


def write_records(
    dest: Destination,
    records: Sequence[tuple[dict[str, Any], LinkedPackage]],
    command: str,
) -> None:
    """Write one JSON record per package and ``conda-meta/history``."""
    what = "conda-meta"
    dest.ensure_dir(META_DIR, what)
    for record, linked in records:
        doc = prefix_record(record, linked)
        # No indent: json's C encoder is used only without it, and indenting made
        # writing the records of a 7.7k-file environment cost 0.3 s.
        data = json.dumps(doc).encode() + b"\n"
        dest.write(f"{META_DIR}/{linked.dist}.json", [data], 0o644, None, what)
    dest.write(f"{META_DIR}/history", [history(records, command)], 0o644, None, what)


def history(records: Sequence[tuple[dict[str, Any], LinkedPackage]], command: str) -> bytes:
    """conda's ``history`` format: one revision adding every package."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"==> {stamp} <==", f"# cmd: {command}"]
    for record, linked in records:
        channel = str(record.get("channel") or "").rstrip("/").rsplit("/", 1)[-1] or "local"
        lines.append(f"+{channel}::{linked.dist}")
    return ("\n".join(lines) + "\n").encode()
