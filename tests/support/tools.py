"""The programs the tests run that are not Python packages, and what to do without one.

``dev/test`` installs them (with apt-get, as root); a plain ``pytest`` run on a machine
without one must say which program is missing and how to get it. Tests call them by
name through :mod:`subprocess`; ``tests/conftest.py`` turns the ``FileNotFoundError``
of a missing one into a test failure with :func:`missing_message`. Builders that need
one up front call :func:`require`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: Program -> Debian package, for what the tests run (see dev/test, which installs them).
SYSTEM_TOOLS = {
    "zstd": "zstd",
    "gcc": "gcc",
    "fish": "fish",
    "zsh": "zsh",
    "debootstrap": "debootstrap",
    "tar": "tar",
    "ldd": "libc-bin",
    "chroot": "coreutils",
    "mount": "mount",
}
#: Where a program lives that may be missing from a non-root PATH.
_SBIN = (Path("/usr/sbin"), Path("/sbin"))


class MissingTool(RuntimeError):
    """A program a test needs is not installed."""

    def __init__(self, name: str) -> None:
        super().__init__(missing_message(name))
        self.name = name


def missing_message(name: str) -> str:
    """One paragraph: which program is missing and how to get it."""
    package = SYSTEM_TOOLS.get(name)
    how = f"`apt-get install {package}` (Debian package {package})" if package else "install it"
    return (
        f"{name} is not installed (not found on PATH): this test runs it. Run the test "
        f"suite with ./dev/test, which installs the programs the tests need (as root, "
        f"with apt-get), or {how}."
    )


def find(name: str) -> str | None:
    """The path of program *name* (PATH, then /usr/sbin and /sbin), or None."""
    found = shutil.which(name)
    if found is None:
        found = next((str(d / name) for d in _SBIN if (d / name).is_file()), None)
    return found


def require(name: str) -> str:
    """The path of program *name*; raise :class:`MissingTool` if it is not installed."""
    found = find(name)
    if found is None:
        raise MissingTool(name)
    return found


def missing() -> list[str]:
    """The programs of :data:`SYSTEM_TOOLS` that are not installed."""
    return [name for name in SYSTEM_TOOLS if find(name) is None]
