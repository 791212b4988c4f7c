"""An installed environment's ``conda-meta`` records, read for ``pack --prefix``.

Each ``conda-meta/*.json`` of a conda package gives its repodata record (the keys
that describe the installation dropped), the paths it owns and the directories it
names as holding its package file.  conda's records of PyPI packages (channel
``pypi``) own files but no conda package.  Nothing is trusted: names, file names,
checksums and every owned path are checked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portpack._platform import current_platform
from portpack.conda.record import PackageRecord, dist
from portpack.errors import PackageError, UnsafeArchiveError, UsageError
from portpack.packer.local_files import nofollow_opener
from portpack.paths import safe_relpath

META_DIR = "conda-meta"
_EXTENSIONS = (".conda", ".tar.bz2")
#: Keys of a conda-meta record that describe the installation, not the package.
_PREFIX_KEYS = frozenset(
    {
        "files",
        "paths_data",
        "link",
        "requested_spec",
        "requested_specs",
        "extracted_package_dir",
        "package_tarball_full_path",
        "installed_system_menus",
        "auth",
    }
)
#: Largest conda-meta record (or wheel RECORD file) read.
MAX_METADATA = 256 << 20


@dataclass
class Installed:
    """One package record of ``conda-meta``."""

    record: PackageRecord
    """The repodata part (what a lock holds)."""
    source: str
    """``conda-meta/<file>.json``."""
    paths: dict[str, dict[str, Any]]
    """Each path it owns, with its ``paths_data`` entry (empty when only in ``files``)."""
    tarball_dirs: list[Path]
    """Directories the record names as holding its package file."""


@dataclass
class PypiRecord:
    """A record conda wrote for a PyPI package (channel ``pypi``): no conda package."""

    label: str
    paths: set[str]


def read_records(meta: Path) -> tuple[list[Installed], list[PypiRecord]]:
    """The conda packages and the PyPI packages the records of ``meta`` describe."""
    installed: list[Installed] = []
    pypi: list[PypiRecord] = []
    names: dict[str, str] = {}
    for path in sorted(meta.glob("*.json")):
        source = f"{META_DIR}/{path.name}"
        doc = _load_json(path, source)
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), str) and doc[k] for k in ("name", "version", "build")
        ):
            raise PackageError(f"{source} is not a conda package record (no name, version, build)")
        paths = _owned_paths(doc, source)
        if _is_pypi(doc):
            label = f"PyPI package {doc['name']} {doc['version']} ({source}, channel pypi)"
            pypi.append(PypiRecord(label, set(paths)))
            continue
        record = _package_record(doc, source)
        if record.name in names:
            raise PackageError(
                f"the environment has two records of {record.name}: {names[record.name]}, {source}"
            )
        names[record.name] = source
        installed.append(Installed(record, source, paths, _tarball_dirs(doc, record.fn)))
    return installed, pypi


def _package_record(doc: dict[str, Any], source: str) -> PackageRecord:
    """The repodata part of a conda-meta record, checked to name a verifiable file."""
    fn = doc.get("fn")
    if not isinstance(fn, str) or not _plain_name(fn) or not fn.endswith(_EXTENSIONS):
        raise PackageError(f"{source}: package {dist(doc)} has an invalid file name {fn!r}")
    if not (_is_hex(doc.get("sha256"), 64) or _is_hex(doc.get("md5"), 32)):
        raise PackageError(
            f"{source}: package {dist(doc)} has no valid sha256 or md5, so no package file "
            "can be verified against it"
        )
    record = {k: v for k, v in doc.items() if k not in _PREFIX_KEYS}
    if not isinstance(record.get("url"), str):
        record["url"] = _url_from_channel(record)
    return PackageRecord.from_json(record, source, PackageError)


def _load_json(path: Path, source: str) -> Any:
    import json

    try:
        with open(path, "rb", opener=nofollow_opener) as fh:  # never a FIFO, device or symlink
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise PackageError(f"{source} is not a regular file")
            data = fh.read(MAX_METADATA + 1)
        if len(data) > MAX_METADATA:
            raise PackageError(f"{source} is larger than {MAX_METADATA >> 20} MiB")
        return json.loads(data)
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read the record {source}: {exc}") from exc


def _owned_paths(doc: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    owned: dict[str, dict[str, Any]] = {}
    paths_data = doc.get("paths_data")
    entries = paths_data.get("paths") if isinstance(paths_data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("_path"), str):
            raise PackageError(f"{source}: malformed paths_data entry {entry!r:.80}")
        owned[_checked(entry["_path"], source)] = entry
    files = doc.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise PackageError(f"{source}: 'files' is not a list of paths")
    for name in files:
        owned.setdefault(_checked(name, source), {})
    return owned


def _checked(path: str, source: str) -> str:
    try:
        return safe_relpath(path, source)
    except UnsafeArchiveError as exc:
        raise PackageError(f"{exc.message}; the record cannot be trusted") from None


def _is_pypi(doc: Mapping[str, Any]) -> bool:
    """conda's records of PyPI packages: channel and subdir ``pypi``, build ``pypi_0``."""
    return doc.get("channel") == "pypi" or doc.get("subdir") == "pypi"


def _plain_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


def _is_hex(value: Any, length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == length
        and all(c in "0123456789abcdef" for c in value.lower())
    )


def _url_from_channel(record: Mapping[str, Any]) -> str:
    """``<channel>/<subdir>/<fn>`` when the channel is a URL, else ``""`` (cannot download)."""
    channel = record.get("channel")
    if isinstance(channel, str) and "://" in channel:
        return f"{channel.rstrip('/')}/{record.get('subdir') or 'noarch'}/{record['fn']}"
    return ""


def _tarball_dirs(doc: Mapping[str, Any], fn: str) -> list[Path]:
    """Directories the record names: its tarball's and its extracted directory's parent."""
    dirs = []
    tarball = doc.get("package_tarball_full_path")
    if isinstance(tarball, str) and os.path.isabs(tarball):
        base = os.path.basename(tarball)
        if base == fn or fn.startswith(f"{base}."):  # some write it without the extension
            dirs.append(Path(tarball).parent)
    extracted = doc.get("extracted_package_dir")
    if isinstance(extracted, str) and os.path.isabs(extracted):
        dirs.append(Path(extracted).parent)
    return dirs


def platform_of(installed: list[Installed], platform: str | None, root: Path) -> str:
    """The platform of the environment's packages (or this machine's), checked
    against the ``platform`` asked for."""
    subdirs = sorted({i.record.subdir or "noarch" for i in installed} - {"noarch"})
    if len(subdirs) > 1:
        raise PackageError(f"the environment {root} mixes packages for {', '.join(subdirs)}")
    found = subdirs[0] if subdirs else None
    if platform and found and platform != found:
        raise UsageError(f"the environment {root} is for {found}, not {platform}")
    return platform or found or current_platform()
