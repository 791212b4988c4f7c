"""conda-meta: the records that make a directory a conda environment."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from portpack.conda.record import PackageRecord
from portpack.install.destination import Destination
from portpack.install.linker import LinkedPackage
from portpack.paths import join, safe_relpath

META_DIR = safe_relpath("conda-meta", "conda-meta")
#: Paths encoded per ``json.dumps`` call: big enough for json's C encoder to do the
#: work, small enough that a package of a million paths never has them all as dicts.
_BATCH = 4096


def prefix_record(record: PackageRecord, linked: LinkedPackage) -> dict[str, Any]:
    """The ``conda-meta/<dist>.json`` document of one installed package."""
    doc = _head(record)
    files = sorted(linked.files, key=lambda f: f.path)
    doc["files"] = [f.path for f in files if f.path_type != "directory"]
    doc["paths_data"] = {"paths_version": 1, "paths": [f.to_json() for f in files]}
    doc["link"] = _LINK
    return doc


# type 3: copied. Files come straight from the archive stream, so there is no
# extracted package directory to name as the source.
_LINK = {"source": "", "type": 3}


def _head(record: PackageRecord) -> dict[str, Any]:
    doc = record.to_json()
    for key in ("files", "paths_data", "link"):
        doc.pop(key, None)
    doc["requested_specs"] = []
    return doc


def record_chunks(record: PackageRecord, linked: LinkedPackage) -> Iterator[bytes]:
    """:func:`prefix_record` as JSON, encoded piece by piece.

    The same document, without holding a package's paths as dicts and one string all
    at once (a package with a million paths cost hundreds of MB that way).
    """
    files = sorted(linked.files, key=lambda f: f.path)
    # No indent: json's C encoder is used only without it, and indenting made
    # writing the records of a 7.7k-file environment cost 0.3 s.
    yield json.dumps(_head(record))[:-1].encode()
    yield b', "files": ['
    names = [f.path for f in files if f.path_type != "directory"]
    yield from _items(names, lambda batch: batch)
    yield b'], "paths_data": {"paths_version": 1, "paths": ['
    yield from _items(files, lambda batch: [f.to_json() for f in batch])
    yield b']}, "link": ' + json.dumps(_LINK).encode() + b"}\n"


def _items(items: Sequence[Any], encode: Callable[[Sequence[Any]], Any]) -> Iterator[bytes]:
    """The JSON array ``items`` without its brackets, in batches."""
    for start in range(0, len(items), _BATCH):
        text = json.dumps(encode(items[start : start + _BATCH]))[1:-1]
        yield (b", " if start else b"") + text.encode()


def write_records(
    dest: Destination,
    records: Sequence[tuple[PackageRecord, LinkedPackage]],
    command: str,
    prefix: str | None = None,
) -> None:
    """Write one JSON record per package and ``conda-meta/history`` (which names
    ``prefix``, the environment's final path, when given)."""
    what = "conda-meta"
    dest.ensure_dir(META_DIR, what)
    for record, linked in records:
        # dist was checked where the record entered (PackageRecord.from_json);
        # join checks the file name again.
        rel = join(META_DIR, f"{linked.dist}.json", f"{what} of package {linked.dist}")
        dest.write(rel, record_chunks(record, linked), 0o644, None, what)
    history_rel = join(META_DIR, "history", what)
    dest.write(history_rel, [history(records, command, prefix)], 0o644, None, what)


#: The comment line of ``conda-meta/history`` naming the prefix the environment was
#: unpacked to (its placeholders and entry points hold it): what ``unpack --update``
#: reads to know whether a package's files are right for the prefix as they are.
PREFIX_COMMENT = "# portpack prefix: "


def history(
    records: Sequence[tuple[PackageRecord, LinkedPackage]], command: str, prefix: str | None = None
) -> bytes:
    """conda's ``history`` format: one revision adding every package."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"==> {stamp} <==", f"# cmd: {command}"]
    if prefix is not None and "\n" not in prefix:
        lines.append(PREFIX_COMMENT + prefix)
    for record, linked in records:
        channel = (record.channel or "").rstrip("/").rsplit("/", 1)[-1] or "local"
        lines.append(f"+{channel}::{linked.dist}")
    return ("\n".join(lines) + "\n").encode()
