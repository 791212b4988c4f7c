"""Checks made before the unpacker writes a byte."""

from __future__ import annotations

import os

from portpack._platform import UNPACKABLE_PLATFORMS, current_platform, host_glibc_version
from portpack.archive import format as fmt
from portpack.conda.version import parse_constraint, parse_version, split_dependency
from portpack.errors import PreconditionError
from portpack.units import human_bytes


def check_all(meta: fmt.Metadata, prefix: str, target_dir: str) -> None:
    """Run every precondition; raise :class:`PreconditionError` on the first failure."""
    check_platform(meta.platform)
    check_glibc(meta.virtual_requirements, host_glibc_version())
    check_prefix_length(meta.min_binary_placeholder, prefix)
    check_disk_space(meta.installed_size, target_dir)


def check_platform(platform: str, host: str | None = None) -> None:
    """The archive's platform must be this machine's, and a Linux one."""
    host = host or current_platform()
    if platform not in UNPACKABLE_PLATFORMS:
        raise PreconditionError(
            f"the archive is for {platform}; portpack unpacks only "
            f"{', '.join(UNPACKABLE_PLATFORMS)} environments"
        )
    if platform != host:
        raise PreconditionError(
            f"the archive is for {platform} but this machine is {host}",
            hint=f"Pack the environment again with --platform {host}.",
        )


def check_glibc(requirements: list[fmt.VirtualRequirement], glibc: str | None) -> None:
    """Every ``__glibc`` constraint of the environment must hold on this machine.

    Constraints are read by :mod:`portpack.conda.version`; one it cannot read raises
    :class:`PreconditionError` naming the package.
    """
    host = None if glibc is None else parse_version(glibc, "this system's glibc", PreconditionError)
    for req in requirements:
        if not req.spec.lstrip().startswith("__glibc"):
            continue  # other virtual packages are not checked (nor read) here
        where = f"package {req.package}"
        name, spec = split_dependency(req.spec, where, PreconditionError)
        if name != "__glibc" or not spec:
            continue
        constraint = parse_constraint(spec, where, PreconditionError)
        if host is None:
            raise PreconditionError(
                f"package {req.package} needs glibc ({spec}) but this system has none"
            )
        if not constraint.matches(host):
            raise PreconditionError(
                f"package {req.package} needs glibc {spec}, this system has {glibc}",
                hint="Lock for an older system (CONDA_OVERRIDE_GLIBC) or use a newer target.",
            )


def check_prefix_length(placeholder: fmt.Placeholder | None, prefix: str) -> None:
    """The prefix must fit into the shortest binary placeholder."""
    if placeholder is not None and len(prefix.encode()) > placeholder.length:
        raise PreconditionError(
            f"the target prefix {prefix} is {len(prefix.encode())} bytes long, but "
            f"{placeholder.path} of package {placeholder.package} has room for only "
            f"{placeholder.length} bytes",
            hint="Unpack into a shorter directory path.",
        )


def check_disk_space(installed_size: int, target_dir: str) -> None:
    """The target filesystem must have room for the installed environment."""
    existing = os.path.abspath(target_dir)
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    stats = os.statvfs(existing)
    free = stats.f_bavail * stats.f_frsize
    if free < installed_size:
        raise PreconditionError(
            f"{target_dir} has {human_bytes(free)} free but the environment needs "
            f"{human_bytes(installed_size)} ({installed_size} bytes)",
            hint="Free some space or unpack elsewhere.",
        )


def prefix_is_environment(path: str) -> bool:
    """True if ``path`` looks like a conda environment (has ``conda-meta/history``)."""
    return os.path.isfile(os.path.join(path, "conda-meta", "history"))
