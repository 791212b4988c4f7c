"""portpack: portable conda environments in pure Python.

``lock`` solves specs into a pixi-format lockfile, ``pack`` writes one
zstd-compressed archive of the locked packages, and ``unpack`` streams such an
archive into a working environment.  Importing this package is cheap: the
solver, the HTTP client and click load only when ``lock`` or ``pack`` is used,
so ``unpack`` needs nothing but the standard library and zstandard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portpack._version import __version__
from portpack.archive.summary import ArchiveSummary, PackageSummary
from portpack.errors import (
    ArchiveError,
    FetchError,
    InstallError,
    LocalChangesError,
    LockfileError,
    ManifestError,
    PackageError,
    PortpackError,
    PreconditionError,
    PrefixContentError,
    SolveError,
    UnsafeArchiveError,
    UsageError,
)
from portpack.progress import Reporter

if TYPE_CHECKING:
    from portpack.packer.packing import PackResult, pack
    from portpack.packer.push import PushResult, push
    from portpack.resolve.locking import lock
    from portpack.unpacker.diffing import DiffReport, diff
    from portpack.unpacker.sources import inspect
    from portpack.unpacker.streaming import UnpackResult, unpack

#: Public names and the module each is loaded from on first use.
_LAZY = {
    "lock": "resolve.locking",
    "pack": "packer.packing",
    "PackResult": "packer.packing",
    "push": "packer.push",
    "PushResult": "packer.push",
    "inspect": "unpacker.sources",
    "diff": "unpacker.diffing",
    "DiffReport": "unpacker.diffing",
    "unpack": "unpacker.streaming",
    "UnpackResult": "unpacker.streaming",
}

__all__ = [
    "ArchiveError",
    "ArchiveSummary",
    "DiffReport",
    "FetchError",
    "InstallError",
    "LocalChangesError",
    "LockfileError",
    "ManifestError",
    "PackResult",
    "PackageError",
    "PackageSummary",
    "PortpackError",
    "PreconditionError",
    "PrefixContentError",
    "PushResult",
    "Reporter",
    "SolveError",
    "UnpackResult",
    "UnsafeArchiveError",
    "UsageError",
    "__version__",
    "diff",
    "inspect",
    "lock",
    "pack",
    "push",
    "unpack",
]


def __getattr__(name: str) -> Any:
    """Load each side (solver, HTTP client, unpacker) only when it is used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'portpack' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
