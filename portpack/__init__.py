"""portpack: portable conda environments in pure Python.

``lock`` solves specs into a pixi-format lockfile, ``pack`` writes one
zstd-compressed archive of the locked packages, and ``unpack`` streams such an
archive into a working environment.  Importing this package is cheap: the
solver, the HTTP client and click load only when ``lock`` or ``pack`` is used,
so ``unpack`` needs nothing but the standard library and zstandard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ArchiveError,
    FetchError,
    InstallError,
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
from .inspect import ArchiveSummary, PackageSummary, inspect
from .progress import Reporter

if TYPE_CHECKING:
    from .locking import lock
    from .packing import PackResult, pack
    from .unpacking import UnpackResult, unpack

#: Public names and the module each is loaded from on first use.
_LAZY = {
    "lock": "locking",
    "pack": "packing",
    "PackResult": "packing",
    "unpack": "unpacking",
    "UnpackResult": "unpacking",
}

__all__ = [
    "ArchiveError",
    "ArchiveSummary",
    "FetchError",
    "InstallError",
    "LockfileError",
    "ManifestError",
    "PackResult",
    "PackageError",
    "PackageSummary",
    "PortpackError",
    "PreconditionError",
    "PrefixContentError",
    "Reporter",
    "SolveError",
    "UnpackResult",
    "UnsafeArchiveError",
    "UsageError",
    "__version__",
    "inspect",
    "lock",
    "pack",
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
