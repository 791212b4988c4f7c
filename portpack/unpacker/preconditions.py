"""Checks made before the unpacker writes a byte."""

from __future__ import annotations

import os
import re

from portpack._platform import UNPACKABLE_PLATFORMS, current_platform, host_glibc_version
from portpack.archive import format as fmt
from portpack.errors import PreconditionError
from portpack.units import human_bytes

_CONSTRAINT = re.compile(r"^(>=|<=|==|!=|>|<|=)?\s*([0-9][0-9A-Za-z.*_+]*)$")


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
    """Every ``__glibc`` constraint of the environment must hold on this machine."""
    for req in requirements:
        name, spec = _split_spec(req.spec)
        if name != "__glibc" or not spec:
            continue
        if glibc is None:
            raise PreconditionError(
                f"package {req.package} needs glibc ({spec}) but this system has none"
            )
        if not version_matches(glibc, spec):
            raise PreconditionError(
                f"package {req.package} needs glibc {spec}, this system has {glibc}",
                hint="Lock for an older system (CONDA_OVERRIDE_GLIBC) or use a newer target.",
            )


def _split_spec(spec: str) -> tuple[str, str]:
    """``"__glibc >=2.17"`` or ``"__glibc>=2.17"`` -> (``"__glibc"``, ``">=2.17"``)."""
    match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(.*)$", spec)
    if not match:
        return "", ""
    return match.group(1), match.group(2).strip()


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


def version_matches(version: str, spec: str) -> bool:
    """Match a version against a conda spec such as ``>=2.17,<3.0.a0`` (``|`` = or)."""
    return any(
        all(_one(version, c.strip()) for c in alt.split(",") if c.strip())
        for alt in spec.split("|")
    )


def _one(version: str, constraint: str) -> bool:
    match = _CONSTRAINT.match(constraint)
    if not match:
        raise PreconditionError(f"cannot understand the version constraint {constraint!r}")
    op, wanted = match.group(1) or "==", match.group(2)
    have = _parts(version)
    if wanted.endswith("*") or op == "=":
        head = _parts(wanted.rstrip("*").rstrip("."))
        prefix_match = _pad(have, len(head))[: len(head)] == head
        return prefix_match != (op == "!=")
    a, b = _pad(have, len(_parts(wanted))), _pad(_parts(wanted), len(have))
    return {
        ">=": a >= b,
        "<=": a <= b,
        ">": a > b,
        "<": a < b,
        "==": a == b,
        "!=": a != b,
    }[op]


def _parts(version: str) -> tuple[int, ...]:
    """Numeric components of a version (``"3.0.a0"`` -> ``(3, 0, 0)``)."""
    parts = []
    for part in re.split(r"[._+-]", version):
        digits = re.match(r"\d*", part)
        parts.append(int(digits.group(0)) if digits and digits.group(0) else 0)
    return tuple(parts)


def _pad(parts: tuple[int, ...], length: int) -> tuple[int, ...]:
    return parts + (0,) * (length - len(parts))


def prefix_is_environment(path: str) -> bool:
    """True if ``path`` looks like a conda environment (has ``conda-meta/history``)."""
    return os.path.isfile(os.path.join(path, "conda-meta", "history"))
