"""Writing archives in pixi-pack's layout (``portpack pack --format pixi-pack``).

The result is what pixi-pack writes: a plain tar whose members are sorted by name
the way pixi-pack walks its output directory, with the package files as they were
downloaded, a ``repodata.json`` per subdir, ``environment.yml`` and
``pixi-pack.json``.  Receivers can use pixi-unpack, ``micromamba create -f
environment.yml`` / ``conda env create`` in the extracted folder, or portpack.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from portpack import outside
from portpack._version import __version__
from portpack.archive.pixipack import (
    CHANNEL_DIR,
    ENVIRONMENT_FILE,
    FORMAT_VERSION,
    METADATA_NAME,
    PYPI_DIR,
    REPODATA_NAME,
)
from portpack.conda.record import PackageRecord
from portpack.errors import PackageError
from portpack.progress import Reporter

#: The modification time tar-rs writes in its deterministic mode (as pixi-pack does).
MTIME = 1153704088
#: Keys of a locked record that are not part of a repodata.json entry.
_LOCK_ONLY = ("fn", "url", "channel")

Member = tuple[str, bytes | Path | None]
"""An archive member: its name and its content (bytes, a file, or None for a directory)."""


def _subdir(record: PackageRecord) -> str:
    subdir = record.subdir
    if not subdir or "/" in subdir:
        raise PackageError(f"package {record.dist} has no valid subdir in the lock")
    return subdir


def repodata(subdir: str, records: Sequence[PackageRecord]) -> dict[str, Any]:
    """The ``repodata.json`` of ``subdir`` listing ``records`` (keyed by file name)."""
    tables: dict[str, dict[str, Any]] = {"packages": {}, "packages.conda": {}}
    for record in records:
        key = "packages.conda" if record.fn.endswith(".conda") else "packages"
        raw = record.to_json()
        tables[key][record.fn] = {k: v for k, v in sorted(raw.items()) if k not in _LOCK_ONLY}
    return {
        "info": {"subdir": subdir},
        "packages": dict(sorted(tables["packages"].items())),
        "packages.conda": dict(sorted(tables["packages.conda"].items())),
        "removed": [],
        "repodata_version": 2,
    }


def wheel_requirement(filename: str) -> str:
    """``name==version`` from a wheel's file name (``name-version-...whl``)."""
    parts = filename[: -len(".whl")].split("-")
    if not filename.endswith(".whl") or len(parts) < 5:
        raise PackageError(f"{filename} is not a wheel file name")
    return f"{parts[0]}=={parts[1]}"


def environment_yml(records: Sequence[PackageRecord], wheels: Sequence[str] = ()) -> str:
    """``environment.yml`` for conda and micromamba, in pixi-pack's exact form."""
    lines = ["channels:", f"  - ./{CHANNEL_DIR}", "  - nodefaults", "dependencies:"]
    lines += [f"  - {r.name}={r.version}={r.build}" for r in records]
    if wheels:
        lines += ["  - pip:", "    - --no-index", f"    - --find-links ./{PYPI_DIR}"]
        lines += [f"    - {wheel_requirement(name)}" for name in wheels]
    return "\n".join(lines) + "\n"


def metadata(platform: str) -> dict[str, Any]:
    """``pixi-pack.json``: pixi-pack's fields, plus the portpack version that wrote it."""
    return {
        "version": FORMAT_VERSION,
        "pixi-pack-version": None,
        "platform": platform,
        "portpack-version": __version__,
    }


def _json(doc: Any) -> bytes:
    return json.dumps(doc, indent=2).encode()


def layout(
    platform: str,
    records: Sequence[PackageRecord],
    files: Sequence[Path],
    wheels: Sequence[Path] = (),
) -> list[Member]:
    """Every member of the archive, in pixi-pack's order (a walk sorted by file name)."""
    by_subdir: dict[str, dict[str, bytes | Path | None]] = {"noarch": {}}
    for record, path in zip(records, files, strict=True):
        fn = record.fn
        if "/" in fn or not fn.endswith((".conda", ".tar.bz2")):
            raise PackageError(f"package {record.dist} has an invalid file name {fn!r}")
        by_subdir.setdefault(_subdir(record), {})[fn] = path
    for subdir, members in by_subdir.items():
        chosen = [r for r in records if _subdir(r) == subdir]
        members[REPODATA_NAME] = _json(repodata(subdir, chosen))
    # "channel" < "environment.yml" < "pixi-pack.json" < "pypi", as pixi-pack's walk.
    out: list[Member] = [(CHANNEL_DIR, None)]
    for subdir in sorted(by_subdir, key=str.encode):
        out.append((f"{CHANNEL_DIR}/{subdir}", None))
        members = by_subdir[subdir]
        out += [
            (f"{CHANNEL_DIR}/{subdir}/{fn}", members[fn]) for fn in sorted(members, key=str.encode)
        ]
    out.append((ENVIRONMENT_FILE, environment_yml(records, [w.name for w in wheels]).encode()))
    out.append((METADATA_NAME, _json(metadata(platform))))
    if wheels:
        out.append((PYPI_DIR, None))
        out += [(f"{PYPI_DIR}/{w.name}", w) for w in sorted(wheels, key=lambda w: w.name.encode())]
    return out


def _info(name: str, size: int, directory: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = MTIME
    info.uname = info.gname = ""
    return info


def write_pixi_pack(
    out: BinaryIO,
    platform: str,
    records: Sequence[PackageRecord],
    files: Sequence[Path],
    wheels: Sequence[Path] = (),
    reporter: Reporter | None = None,
) -> None:
    """Write the pixi-pack archive of ``records`` (whose package files are ``files``)."""
    members = layout(platform, records, files, wheels)
    reporter = reporter or Reporter()
    reporter.on_transfer_start("Writing", *_totals(members))
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
            for name, content in members:
                if content is None:
                    tar.addfile(_info(name, 0, directory=True))
                elif isinstance(content, bytes):
                    tar.addfile(_info(name, len(content), directory=False), io.BytesIO(content))
                else:
                    with open(content, "rb") as fh:
                        size = fh.seek(0, 2)
                        fh.seek(0)
                        tar.addfile(_info(name, size, directory=False), fh)
                    reporter.on_transfer_progress(size, 1)
    finally:
        reporter.on_transfer_complete()


def _totals(members: Sequence[Member]) -> tuple[int, int]:
    """The package and wheel files among ``members``, and their bytes."""
    files = [c for _, c in members if isinstance(c, Path)]
    return len(files), sum(os.stat(f).st_size for f in files)


def write_pixi_pack_to(
    output: str | os.PathLike[str] | BinaryIO,
    platform: str,
    records: Sequence[PackageRecord],
    files: Sequence[Path],
    wheels: Sequence[Path] = (),
    reporter: Reporter | None = None,
) -> str:
    """Write the archive to a path (atomically) or a binary stream; name what was written."""
    if not isinstance(output, (str, os.PathLike)):
        write_pixi_pack(output, platform, records, files, wheels, reporter)
        output.flush()
        return "<stream>"
    with outside.atomic_file(output, 0o644) as fh:
        write_pixi_pack(fh, platform, records, files, wheels, reporter)
    return str(output)


def write_pixi_pack_dir(
    output: str | os.PathLike[str],
    platform: str,
    records: Sequence[PackageRecord],
    files: Sequence[Path],
    wheels: Sequence[Path] = (),
    reporter: Reporter | None = None,
) -> str:
    """Write the archive's members into the folder ``output`` (``--directory-only``),
    as pixi-pack 0.7.6+ does; the folder appears only once it is complete."""
    import shutil

    members = layout(platform, records, files, wheels)
    reporter = reporter or Reporter()
    reporter.on_transfer_start("Writing", *_totals(members))
    try:
        with outside.atomic_directory(output) as root:
            for name, content in members:
                path = root / name
                if content is None:
                    path.mkdir(mode=0o755)
                elif isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    shutil.copyfile(content, path)
                    reporter.on_transfer_progress(path.stat().st_size, 1)
    finally:
        reporter.on_transfer_complete()
    return str(output)
