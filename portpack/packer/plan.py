"""What to pack: a lock, manifest, specs or prefix resolved into records and wheels.

:func:`resolve` is ``pack``'s first step (nothing is downloaded): the options are
checked, the lock is read (or solved, or the prefix read), injected packages are
added and the result is refused when it cannot make a working environment.
:func:`plan` is ``pack --dry-run``: the same resolution, shown as a :class:`PackPlan`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portpack.conda.record import PackageRecord
from portpack.errors import UsageError
from portpack.packer.options import PackOptions, StrPath
from portpack.progress import Reporter

if TYPE_CHECKING:
    from portpack.net.config import NetworkConfig
    from portpack.packer.options import Inputs
    from portpack.packer.prefix_source import PrefixSource
    from portpack.packer.pypi import Wheel
    from portpack.resolve.lockfile import LockedEnvironment, PypiEntry, SourcePackage


@dataclass(frozen=True)
class PlannedFile:
    """One file ``pack`` would put into the archive."""

    name: str
    version: str
    build: str | None
    """The conda build string (None for a wheel)."""
    filename: str
    size: int | None
    """Bytes, from the lock record (or the local file); None when unknown."""
    source: str
    """The URL or local path the file comes from (credentials masked)."""


@dataclass(frozen=True)
class RefusedPackage:
    """A locked package ``pack`` cannot put into the archive, and why."""

    name: str
    location: str
    reason: str


@dataclass
class PackPlan:
    """What :func:`plan` found that :func:`~portpack.pack` would pack (nothing downloaded)."""

    platform: str
    archive_format: str
    packages: list[PlannedFile]
    wheels: list[PlannedFile] = field(default_factory=list)
    refused: list[RefusedPackage] = field(default_factory=list)
    skipped: list[RefusedPackage] = field(default_factory=list)
    """Packages left out with a warning (``ignore_pypi_non_wheel``)."""

    @property
    def total_size(self) -> int:
        """Bytes of every file whose size is known."""
        return sum(f.size or 0 for f in (*self.packages, *self.wheels))

    @property
    def unknown_sizes(self) -> int:
        """How many files have no size in the lock."""
        return sum(f.size is None for f in (*self.packages, *self.wheels))

    @property
    def ok(self) -> bool:
        """Whether ``pack`` would go ahead (nothing refused)."""
        return not self.refused

    def to_json(self) -> dict[str, Any]:
        """The plan as a JSON document (what ``pack --dry-run --json`` prints)."""
        return {
            "platform": self.platform,
            "format": self.archive_format,
            "ok": self.ok,
            "packages": [dataclasses.asdict(p) for p in self.packages],
            "wheels": [
                {k: v for k, v in dataclasses.asdict(w).items() if k != "build"}
                for w in self.wheels
            ],
            "refused": [dataclasses.asdict(r) for r in self.refused],
            "skipped": [dataclasses.asdict(r) for r in self.skipped],
            "total_size": self.total_size,
            "unknown_sizes": self.unknown_sizes,
        }


@dataclass(frozen=True)
class Resolved:
    """What ``pack`` packs, before anything is downloaded."""

    platform: str
    records: list[PackageRecord]
    """The conda packages, dependencies first."""
    wheels: list[Wheel]
    source: PrefixSource | None
    """The installed environment they come from (None: a lock)."""
    network: NetworkConfig


@dataclass
class SetAside:
    """What :func:`plan` lists instead of refusing it (``resolve`` fills it)."""

    non_wheels: list[PypiEntry] = field(default_factory=list)
    """The lock's PyPI packages that are not wheels."""
    sources: list[tuple[SourcePackage, str]] = field(default_factory=list)
    """The lock's unbuilt source packages, with the reason."""


@dataclass(frozen=True)
class _Environment:
    """The records of one environment and platform, typed (a lock's or a prefix's)."""

    where: str
    platform: str
    records: list[PackageRecord]
    pypi: list[PypiEntry] = field(default_factory=list)
    sources: list[SourcePackage] = field(default_factory=list)


def resolve(
    options: PackOptions, reporter: Reporter, set_aside: SetAside | None = None
) -> Resolved:
    """Read what ``options`` name to pack and check it (no package is downloaded).

    ``set_aside`` given: the lock's PyPI packages that are not wheels and its unbuilt
    source packages go there instead of being refused (or skipped).
    """
    network = options.network.load(reporter)
    inputs = options.inputs
    env, source = _environment(inputs, network, reporter)
    injected = _local_records(inputs.conda_files, env.platform)
    if set_aside is not None:
        env = _set_aside_sources(env, injected, set_aside)
    records = _checked_records(env, injected, reporter)
    pypi = env.pypi
    if set_aside is not None:
        from portpack.packer.pypi import wheel_filename

        set_aside.non_wheels += [e for e in pypi if wheel_filename(e.location) is None]
        pypi = [e for e in pypi if wheel_filename(e.location) is not None]
    wheels = _wheels(records, pypi, inputs.wheel_files, inputs.ignore_pypi_non_wheel, reporter)
    if options.output.executable is not None:
        from portpack.packer.bootstrap import check_platform

        check_platform(env.platform)
    return Resolved(env.platform, records, wheels, source, network)


def _environment(
    inputs: Inputs, network: NetworkConfig, reporter: Reporter
) -> tuple[_Environment, PrefixSource | None]:
    """The records ``inputs`` name: an installed prefix's, or a lock's (read or solved)."""
    if inputs.prefix is not None:
        from portpack.packer.prefix_source import read_prefix

        source = read_prefix(
            inputs.prefix, platform=inputs.platform, unowned=inputs.unowned, reporter=reporter
        )
        where = f"the environment {source.prefix} for {source.platform}"
        return _Environment(where, source.platform, source.records), source
    from portpack.resolve.locking import locked_environment

    locked = locked_environment(
        inputs.specs,
        channels=inputs.channels,
        manifest=inputs.manifest,
        lockfile=inputs.lockfile,
        environment=inputs.environment,
        platform=inputs.platform,
        relock=inputs.relock,
        virtual_packages=inputs.virtual_packages,
        network=network,
    )
    return _from_lock(locked), None


def _from_lock(locked: LockedEnvironment) -> _Environment:
    """A lock's environment (its records are typed by :mod:`portpack.resolve.lockfile`)."""
    where = f"environment {locked.environment!r} for {locked.platform}"
    records = list(locked.records)
    return _Environment(where, locked.platform, records, list(locked.pypi), list(locked.sources))


def _local_records(conda_files: Sequence[StrPath], platform: str) -> list[PackageRecord]:
    if not conda_files:
        return []
    from portpack.packer.inject import local_records

    return local_records(conda_files, platform)


def _set_aside_sources(
    env: _Environment, injected: Sequence[PackageRecord], set_aside: SetAside
) -> _Environment:
    """``env`` without its unbuilt source packages, which go to ``set_aside``; as it
    is when nothing else is left (then :func:`_checked_records` says what is wrong)."""
    from portpack.packer.inject import unbuilt_sources

    missing = unbuilt_sources(env.sources, injected)
    if not missing or not (env.records or injected):
        return env
    set_aside.sources += missing
    unbuilt = {id(source) for source, _ in missing}
    return dataclasses.replace(env, sources=[s for s in env.sources if id(s) not in unbuilt])


def _checked_records(
    env: _Environment, injected: list[PackageRecord], reporter: Reporter
) -> list[PackageRecord]:
    """The environment's records with the injected packages, refused when they cannot
    make a working environment: unbuilt source packages, only PyPI packages, no
    packages at all, or noarch python packages without python."""
    from portpack.packer.inject import check_noarch_python, check_sources
    from portpack.packer.inject import inject as add_local

    check_sources(env.sources, injected, env.where)
    records = add_local(env.records, injected, reporter) if injected else env.records
    if not records:
        if env.pypi:
            names = ", ".join(p.name for p in env.pypi)
            raise UsageError(
                f"{env.where} has only PyPI packages ({names}) and no conda packages: a "
                "portpack archive needs at least a conda python to install wheels into",
                hint="Add python (and the environment's other conda dependencies) to the "
                "manifest's [dependencies] and lock again, or --inject a python package.",
            )
        raise UsageError(f"{env.where} has no packages")
    check_noarch_python(records)
    return records


def _wheels(
    records: list[PackageRecord],
    locked: Sequence[PypiEntry],
    inject: Sequence[StrPath],
    ignore_non_wheel: bool,
    reporter: Reporter,
) -> list[Wheel]:
    """The wheels to pack: the lock's (see :mod:`portpack.packer.pypi`) and injected ones."""
    if not locked and not inject:
        return []
    from portpack.packer import pypi

    chosen = pypi.select_wheels(locked, ignore_non_wheel=ignore_non_wheel, reporter=reporter)
    wheels = pypi.combine(chosen, pypi.injected_wheels(inject), reporter)
    pypi.check_python(records, wheels)
    return wheels


# -- the dry run ------------------------------------------------------------------------


def plan(
    specs: Sequence[str] = (),
    *,
    channels: Sequence[str] = (),
    manifest: StrPath | None = None,
    lockfile: StrPath | None = None,
    environment: str = "default",
    platform: str | None = None,
    relock: bool = False,
    virtual_packages: Sequence[str] = (),
    archive_format: str = "portpack",
    reporter: Reporter | None = None,
    inject: Sequence[StrPath] = (),
    auth_file: StrPath | None = None,
    config: StrPath | None = None,
    ca_bundle: StrPath | None = None,
    insecure_hosts: Sequence[str] = (),
    create_executable: bool = False,
    bootstrap_python: StrPath | None = None,
    zstandard_wheel: StrPath | None = None,
    wheel_index: str | None = None,
    ignore_pypi_non_wheel: bool = False,
    prefix: StrPath | None = None,
    unowned: str | None = None,
) -> PackPlan:
    """What :func:`~portpack.pack` with these options would pack, downloading nothing.

    Sizes come from the lock's records (and the files of ``inject``).  PyPI packages
    that are not wheels are listed as refused (skipped with ``ignore_pypi_non_wheel``)
    instead of raising; every other problem raises as :func:`~portpack.pack` would.
    The options are those of :func:`~portpack.pack` (see :mod:`portpack.packer.options`).
    """
    keywords = dict(locals())  # the parameters: every one is an option but the reporter
    del keywords["reporter"]
    options = PackOptions.from_keywords({**keywords, "output": None})
    return plan_with(options, reporter or Reporter())


def plan_with(options: PackOptions, reporter: Reporter) -> PackPlan:
    """:func:`plan` for options already made."""
    from portpack.net.auth import strip_credentials

    set_aside = SetAside()
    resolved = resolve(options, reporter, set_aside)
    packages = [
        PlannedFile(r.name, r.version, r.build, r.fn, r.size, strip_credentials(r.url or ""))
        for r in resolved.records
    ]
    wheels = [
        PlannedFile(
            w.name,
            w.version,
            None,
            w.filename,
            _local_size(w.location),
            strip_credentials(w.location),
        )
        for w in resolved.wheels
    ]
    refused = [
        RefusedPackage(e.name, strip_credentials(e.location), "PyPI package that is not a wheel")
        for e in set_aside.non_wheels
    ]
    unbuilt = [
        RefusedPackage(
            source.name,
            strip_credentials(source.location),
            f"source package (pixi-build), {why}: build it and --inject the .conda",
        )
        for source, why in set_aside.sources
    ]
    skip = options.inputs.ignore_pypi_non_wheel
    return PackPlan(
        platform=resolved.platform,
        archive_format=options.output.archive_format,
        packages=packages,
        wheels=wheels,
        refused=unbuilt + ([] if skip else refused),
        skipped=refused if skip else [],
    )


def _local_size(location: str) -> int | None:
    """The size of a local file (an injected wheel); None for a URL."""
    if "://" in location and not location.startswith("file://"):
        return None
    path = location.removeprefix("file://")
    try:
        return os.stat(path).st_size
    except OSError:
        return None
