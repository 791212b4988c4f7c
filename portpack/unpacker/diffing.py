"""``portpack diff``: what changes between two environments or archives (stdlib + zstandard).

Each side is an environment directory (its conda-meta) or a portpack archive: a
file, a folder written by ``pack --directory-only``, an ``http(s)://`` URL or an
``oci://`` reference, of which only the metadata is read. The packages are compared
with :func:`portpack.conda.changes.compare`; from an environment to an archive the
report is exactly what ``unpack --update`` would do (the same
:func:`~portpack.unpacker.update_plan.plan_update`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from portpack.archive import format as fmt
from portpack.archive.directory import is_archive_directory, open_directory
from portpack.archive.reader import open_metadata
from portpack.archive.sfx import skip_header
from portpack.conda.changes import PackageChanges, compare
from portpack.conda.record import PackageRecord
from portpack.conda.tarstream import looks_like_tar, sniff
from portpack.errors import UsageError
from portpack.install.prefix_state import PrefixState, read_prefix
from portpack.unpacker.sources import SourceOptions, is_oci, is_url, open_archive_source
from portpack.unpacker.update_plan import UpdatePlan, plan_update

Side = str | os.PathLike[str]


@dataclass
class DiffReport:
    """What :func:`diff` found."""

    old: str
    new: str
    changes: PackageChanges
    update: UpdatePlan | None = None
    """From an environment to an archive: what ``unpack --update`` would do."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``portpack diff --json``)."""
        changes = self.changes
        doc: dict[str, Any] = {
            "old": self.old,
            "new": self.new,
            "identical": changes.identical,
            "added": [_package(r) for r in changes.added],
            "removed": [_package(r) for r in changes.removed],
            "changed": [
                {"name": c.new.name, "old": _package(c.old), "new": _package(c.new)}
                for c in changes.changed
            ],
            "unchanged": [r.dist for r in changes.unchanged],
        }
        if self.update is not None:
            doc["update"] = self.update.to_json()
        return doc


def _package(record: PackageRecord) -> dict[str, Any]:
    return {"name": record.name, "version": record.version, "build": record.build}


def diff(
    old: Side,
    new: Side,
    *,
    ca_bundle: str | os.PathLike[str] | None = None,
    auth_file: str | os.PathLike[str] | None = None,
    netrc_file: str | os.PathLike[str] | None = None,
    insecure_hosts: Sequence[str] = (),
) -> DiffReport:
    """Compare ``old`` with ``new``: each an environment directory or an archive (a
    path, a ``--directory-only`` folder, an ``http(s)://`` URL, an ``oci://`` reference;
    the options say how to reach one, as for :func:`portpack.unpack`)."""
    return diff_with(old, new, SourceOptions(ca_bundle, auth_file, netrc_file, insecure_hosts))


def diff_with(old: Side, new: Side, options: SourceOptions | None = None) -> DiffReport:
    """:func:`diff`, a remote archive reached as ``options`` say."""
    options = options or SourceOptions()
    before, after = _side(old, options), _side(new, options)
    old_records = before.records if isinstance(before, PrefixState) else _records(before)
    new_records = after.records if isinstance(after, PrefixState) else _records(after)
    report = DiffReport(os.fspath(old), os.fspath(new), compare(old_records, new_records))
    if isinstance(before, PrefixState) and isinstance(after, fmt.Metadata):
        report.update = plan_update(before, after, Path(os.path.abspath(before.root)))
    return report


def _records(meta: fmt.Metadata) -> list[PackageRecord]:
    return [entry.record for entry in meta.packages]


def _side(side: Side, options: SourceOptions) -> PrefixState | fmt.Metadata:
    """An environment's state, or an archive's metadata."""
    if not _remote(side):
        path = Path(side)
        if is_archive_directory(path) and not (path / fmt.METADATA_NAME).exists():
            state = read_prefix(path)
            if state is None:
                raise UsageError(f"{path} is an empty directory, not an environment")
            return state
    return archive_metadata(side, options)


def _remote(side: Side) -> bool:
    text = os.fspath(side)
    return is_oci(text) or is_url(text)


def archive_metadata(archive: Side, options: SourceOptions | None = None) -> fmt.Metadata:
    """The metadata of a portpack archive from any source (nothing else is read)."""
    if is_oci(os.fspath(archive)):
        from portpack.remote.oci_archive import open_artifact

        meta, artifact = open_artifact(os.fspath(archive), options)
        artifact.close()
        return meta
    with ExitStack() as stack:
        opened = open_archive_source(os.fspath(archive), stack, options)
        raw, name = _open(opened, stack)
        stream, head = sniff(skip_header(raw, name))
        if looks_like_tar(head):
            raise UsageError(
                f"{name} is a pixi-pack archive: diff compares portpack archives and "
                "environments (unpack it, then diff the environment)"
            )
        return open_metadata(stream, name)
    raise AssertionError("unreachable")  # pragma: no cover


def _open(archive: str | os.PathLike[str] | BinaryIO, stack: ExitStack) -> tuple[BinaryIO, str]:
    if not isinstance(archive, (str, os.PathLike)):
        return archive, str(getattr(archive, "name", "<stream>"))
    if is_archive_directory(archive):
        return stack.enter_context(open_directory(archive)), os.fspath(archive)
    try:
        return stack.enter_context(open(archive, "rb")), os.fspath(archive)
    except OSError as exc:
        raise UsageError(f"cannot open archive {archive}: {exc.strerror or exc}") from exc
