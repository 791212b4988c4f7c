"""The one path check: which strings may name something inside an environment.

Every string from an archive, a record or a package that becomes a path inside a
prefix goes through :func:`safe_relpath` (or :func:`join`, which checks the result
again).  Both return a :data:`RelPath`, the only type the destination
(:class:`portpack.install.destination.Destination`) accepts, so mypy rejects a path
that skipped the check.
"""

from __future__ import annotations

from typing import NewType

from portpack.errors import UnsafeArchiveError

RelPath = NewType("RelPath", str)
"""A relative path checked by :func:`safe_relpath`: no ``..``, ``.`` or empty
component, not absolute, no NUL or backslash, no trailing slash.  Make one only
with :func:`safe_relpath` or :func:`join` (tests/test_prefix.py checks that no other
module calls ``RelPath(...)`` or casts to it)."""


def safe_relpath(name: str, what: str) -> RelPath:
    """Normalize a path from an archive; refuse absolute paths, ``..``, NUL and empty names."""
    path = name
    while path.startswith("./"):
        path = path[2:]
    path = path.rstrip("/")
    if not path or path[0] == "/" or "\0" in path or "\\" in path:
        raise UnsafeArchiveError(f"{what}: refusing unsafe path {name!r}")
    # An empty, "." or ".." component shows as one of these substrings once the path
    # is framed by slashes: a few C-level tests, where splitting took 7 % of the
    # unpacker's Python time (this runs once per file).
    framed = f"/{path}/"
    if "//" in framed or "/./" in framed or "/../" in framed:
        raise UnsafeArchiveError(f"{what}: refusing unsafe path {name!r}")
    # No RelPath(path) call: this runs once per file, and the NewType is the identity.
    return path  # type: ignore[return-value]


def parent_of(rel: RelPath) -> RelPath:
    """The directory holding ``rel`` (``""``: the root): a part of a checked path is one."""
    return rel.rpartition("/")[0]  # type: ignore[return-value]


def join(base: RelPath, name: str, what: str) -> RelPath:
    """``base/name``, checked again as a whole (``name`` may come from metadata)."""
    return safe_relpath(f"{base}/{name}", what)
