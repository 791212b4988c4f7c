"""Lockfiles in pixi's ``pixi.lock`` format, read and written through py-rattler."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rattler

from portpack import outside
from portpack.conda.record import PackageRecord
from portpack.errors import LockfileError, PortpackError

DEFAULT_ENVIRONMENT = "default"


@dataclass(frozen=True)
class PypiEntry:
    """A PyPI package of a lockfile (a wheel, a source distribution, a directory...)."""

    name: str
    version: str
    location: str
    """A URL, or an absolute path (paths relative to the lockfile are resolved)."""
    sha256: str | None = None
    """The sha256 the lock gives for the file, if any."""


@dataclass(frozen=True)
class SourcePackage:
    """A conda package the lock builds from source (pixi-build: ``conda: .`` or a path)."""

    name: str
    location: str
    """Where the source is, as the lock writes it (``.``, a path, a git URL...)."""
    version: str | None = None
    build: str | None = None

    def describe(self) -> str:
        """``name version build (conda: location)`` for messages."""
        parts = [self.name, self.version or "", self.build or ""]
        return f"{' '.join(p for p in parts if p)} (conda: {self.location})"


@dataclass
class LockedEnvironment:
    """The records of one environment and platform of a lockfile."""

    platform: str
    records: list[PackageRecord]
    """The conda packages' repodata records (with ``fn``, ``url``, ``channel``),
    dependencies first."""
    pypi: list[PypiEntry] = field(default_factory=list)
    """PyPI packages, sorted by name."""
    sources: list[SourcePackage] = field(default_factory=list)
    """Conda packages the lock builds from source: portpack cannot build them, so
    ``pack`` refuses them unless a built package is injected (see :mod:`portpack.packer.inject`)."""
    environment: str = DEFAULT_ENVIRONMENT


def write_lock(
    path: Path,
    channels: Sequence[rattler.Channel],
    records: Mapping[str, Sequence[rattler.RepoDataRecord]],
    environment: str = DEFAULT_ENVIRONMENT,
) -> None:
    """Write a pixi-format lockfile with one environment and one entry per platform.

    It is written whole or not at all (:func:`portpack.outside.atomic_path`); missing
    parent directories are created.
    """
    platforms = {name: rattler.LockPlatform(name) for name in records}
    lock = rattler.LockFile(list(platforms.values()))
    lock.set_channels(environment, [rattler.LockChannel(str(c.base_url)) for c in channels])
    for name, platform_records in records.items():
        for record in platform_records:
            lock.add_conda_package(environment, platforms[name], record)
    with outside.atomic_path(path) as tmp:
        lock.to_path(tmp)


def read_lock(path: Path, environment: str, platform: str) -> LockedEnvironment:
    """Read ``environment`` for ``platform``; raise :class:`LockfileError` clearly."""
    if not path.is_file():
        raise LockfileError(f"lockfile {path} does not exist")
    try:
        lock = rattler.LockFile.from_path(path)
    except Exception as exc:  # py-rattler reports parse errors with its own exception types
        raise LockfileError(f"cannot read lockfile {path}: {exc}") from exc
    env = lock.environment(environment)
    if env is None:
        names = ", ".join(sorted(name for name, _ in lock.environments())) or "none"
        raise LockfileError(f"lockfile {path} has no environment {environment!r} (it has: {names})")
    for lock_platform in env.platforms():
        if lock_platform.name == platform:
            break
    else:
        have = ", ".join(p.name for p in env.platforms()) or "none"
        raise LockfileError(
            f"environment {environment!r} of {path} is not locked for {platform} "
            f"(it is for: {have})",
            hint="Choose one with --platform, or lock again for this platform.",
        )
    records = env.conda_repodata_records_for_platform(lock_platform) or []
    pypi = [_pypi_entry(p, path.parent) for p in env.pypi_packages().get(platform, [])]
    sources = [
        _source(p)
        for p in env.packages(lock_platform) or []
        if isinstance(p, rattler.CondaLockedSourcePackage)
    ]
    return LockedEnvironment(
        platform=platform,
        records=package_records(records, f"lockfile {path}", LockfileError),
        pypi=sorted(pypi, key=lambda p: (p.name, p.location)),
        sources=sorted(sources, key=lambda p: p.name),
        environment=environment,
    )


def _source(package: rattler.CondaLockedSourcePackage) -> SourcePackage:
    record = package.package_record
    version = package.version
    return SourcePackage(
        name=str(package.name),
        location=str(package.location),
        version=str(version) if version is not None else None,
        build=str(record.build) if record is not None else None,
    )


def _pypi_entry(package: rattler.PypiLockedPackage, base: Path) -> PypiEntry:
    location = str(package.location)
    if "://" not in location and not location.startswith("git+"):
        location = str((base / location).resolve())
    return PypiEntry(str(package.name), str(package.version), location, _sha256(package))


def _sha256(package: rattler.PypiLockedPackage) -> str | None:
    hashes = package.hashes
    try:
        digest = hashes.sha256 if hashes is not None else None
    except AttributeError:  # py-rattler wraps a missing hash in an empty PackageHashes
        return None
    return digest.hex() if digest else None


def package_records(
    records: Sequence[rattler.RepoDataRecord],
    where: str,
    error: type[PortpackError] = LockfileError,
) -> list[PackageRecord]:
    """``records`` as :class:`PackageRecord`, dependencies before dependents (rattler's
    order), deterministic; a record of the wrong shape raises ``error`` naming ``where``."""
    by_name = {r.name.normalized: r for r in sorted(records, key=lambda r: r.name.normalized)}
    ordered = rattler.RepoDataRecord.sort_topologically(list(by_name.values()))
    return [
        PackageRecord.from_json(json.loads(by_name[p.name.normalized].to_json()), where, error)
        for p in ordered
    ]
