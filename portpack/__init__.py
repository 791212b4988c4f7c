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
    SolveError,
    UnsafeArchiveError,
    UsageError,
)
from .inspect import ArchiveSummary, PackageSummary, inspect
from .progress import Reporter
from .unpacking import UnpackResult, unpack

if TYPE_CHECKING:
    from .locking import lock
    from .packing import PackResult, pack

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
    """Load the lock/pack side (py-rattler, httpx) only when it is used."""
    if name == "lock":
        from .locking import lock

        return lock
    if name in ("pack", "PackResult"):
        from . import packing

        return getattr(packing, name)
    raise AttributeError(f"module 'portpack' has no attribute {name!r}")
