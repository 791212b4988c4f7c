"""The conda platform ("subdir") of this machine, using only the standard library."""

from __future__ import annotations

import os
import sys

_MACHINES = {
    "x86_64": "64",
    "amd64": "64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "i686": "32",
    "armv7l": "armv7l",
}

#: Platforms an archive can be unpacked on.
UNPACKABLE_PLATFORMS = ("linux-64", "linux-aarch64", "linux-ppc64le")


def current_platform() -> str:
    """Return the conda subdir of the running machine, e.g. ``linux-64``."""
    machine = os.uname().machine.lower() if hasattr(os, "uname") else _windows_machine()
    if sys.platform.startswith("linux"):
        return f"linux-{_MACHINES.get(machine, machine)}"
    if sys.platform == "darwin":
        return "osx-arm64" if machine == "arm64" else "osx-64"
    if sys.platform == "win32":
        return "win-64" if machine in ("amd64", "x86_64") else f"win-{machine}"
    return f"{sys.platform}-{machine}"


def host_glibc_version() -> str | None:
    """Return the glibc version of this machine (``"2.36"``), or None without glibc."""
    try:  # "glibc 2.36"; instant, where platform.libc_ver() scans the interpreter binary
        value = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # no confstr, or not glibc
        return None
    name, _, version = (value or "").partition(" ")
    return version if name == "glibc" and version else None


def _windows_machine() -> str:
    import platform

    return platform.machine()
