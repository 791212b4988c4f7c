"""``.tar.bz2`` packages converted to ``.conda`` for packing (cached, converted once)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from portpack.errors import PackageError
from portpack.streams import hash_file


def as_conda(path: Path, cache_dir: Path, what: str) -> Path:
    """Return a ``.conda`` for ``path``, converting a ``.tar.bz2`` once (cached).

    The converted file is named by the source's sha256 and created only if absent
    (a hard link from a private work directory: never replaced, never half-written),
    so concurrent runs never replace a file another one is reading.
    """
    if path.name.endswith(".conda"):
        return path
    if not path.name.endswith(".tar.bz2"):
        raise PackageError(f"package {what}: unsupported package file {path.name}")
    source = hash_file(path)[:16]
    stem = path.name[: -len(".tar.bz2")]
    out_dir = cache_dir / "converted" / path.parent.name
    target = out_dir / f"{stem if stem.endswith(source) else f'{stem}.{source}'}.conda"
    if target.is_file():
        return target
    from conda_package_handling import api as cph

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".convert-"))
    try:
        cph.transmute(str(path), ".conda", out_folder=str(work))
        with contextlib.suppress(FileExistsError):  # another run converted it first
            os.link(work / f"{stem}.conda", target)
    except Exception as exc:
        raise PackageError(f"package {what}: cannot convert {path.name} to .conda: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
