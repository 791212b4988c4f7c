"""``pack``: fetch the locked packages and write one archive."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ParamSpec, TypeVar

from portpack import outside
from portpack._version import __version__
from portpack.archive import format as fmt
from portpack.archive.segments import AnalysisCache, AnalyzedPackage, analyze
from portpack.archive.writer import write_archive, write_directory
from portpack.conda.record import PackageRecord
from portpack.errors import PackageError, UsageError
from portpack.net.auth import strip_record
from portpack.net.config import load_network_config
from portpack.net.fetch import DEFAULT_CONCURRENCY, Fetcher, default_cache_dir
from portpack.packer.convert import as_conda
from portpack.progress import Reporter
from portpack.resolve.locking import locked_environment

#: What ``pack`` writes: portpack's zstd archive, or pixi-pack's plain tar layout.
ARCHIVE_FORMATS = ("portpack", "pixi-pack")

if TYPE_CHECKING:
    from portpack.net.config import NetworkConfig
    from portpack.packer.bootstrap import Bootstrap
    from portpack.packer.prefix_source import PrefixSource
    from portpack.packer.pypi import PackedWheel, Wheel
    from portpack.resolve.lockfile import LockedEnvironment, PypiEntry, SourcePackage


@dataclass
class PackResult:
    """What :func:`pack` wrote."""

    output: str
    platform: str
    packages: list[str]
    metadata: fmt.Metadata | None
    """The portpack archive's metadata (None for ``archive_format="pixi-pack"``)."""
    archive_format: str = "portpack"
    wheels: list[str] = field(default_factory=list)
    """File names of the PyPI wheels packed."""


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
    """What :func:`plan` found that :func:`pack` would pack (nothing downloaded)."""

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


_P = ParamSpec("_P")
_R = TypeVar("_R")
_SCRATCH: contextvars.ContextVar[contextlib.ExitStack] = contextvars.ContextVar("_SCRATCH")


def _with_scratch(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Give ``func`` a scratch space (see :func:`_cache_for`) removed when it returns."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with contextlib.ExitStack() as stack:
            token = _SCRATCH.set(stack)
            try:
                return func(*args, **kwargs)
            finally:
                _SCRATCH.reset(token)

    return wrapper


def _cache_for(cache_dir: str | os.PathLike[str] | None, no_cache: bool) -> Path:
    """The package cache, or (``no_cache``) a temporary directory removed after ``pack``."""
    if not no_cache:
        return Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cache_dir is not None:
        raise UsageError("give either --cache-dir or --no-cache, not both")
    scratch = tempfile.TemporaryDirectory(prefix="portpack-pkgs-")
    return Path(_SCRATCH.get().enter_context(scratch))


@_with_scratch
def pack(
    specs: Sequence[str] = (),
    *,
    channels: Sequence[str] = (),
    manifest: str | os.PathLike[str] | None = None,
    lockfile: str | os.PathLike[str] | None = None,
    environment: str = "default",
    platform: str | None = None,
    output: str | os.PathLike[str] | BinaryIO = "environment.tar",
    cache_dir: str | os.PathLike[str] | None = None,
    relock: bool = False,
    concurrency: int | None = None,
    virtual_packages: Sequence[str] = (),
    archive_format: str = "portpack",
    reporter: Reporter | None = None,
    inject: Sequence[str | os.PathLike[str]] = (),
    no_cache: bool = False,
    auth_file: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    insecure_hosts: Sequence[str] = (),
    create_executable: bool = False,
    bootstrap_python: str | os.PathLike[str] | None = None,
    zstandard_wheel: str | os.PathLike[str] | None = None,
    wheel_index: str | None = None,
    ignore_pypi_non_wheel: bool = False,
    prefix: str | os.PathLike[str] | None = None,
    unowned: str | None = None,
    directory_only: bool = False,
) -> PackResult:
    """Resolve what to pack, fetch it, and write the archive to ``output`` (``"-"``: stdout).

    ``directory_only`` writes the archive's members into the folder ``output``
    instead (see :mod:`portpack.archive.directory`); ``unpack`` takes that folder.

    Network options (see :mod:`portpack.net.config`): ``config`` (pixi/rattler TOML:
    mirrors, proxies, download concurrency), ``auth_file`` (rattler's credentials JSON),
    ``ca_bundle``, ``insecure_hosts``.  ``concurrency`` defaults to the config file's or
    50.  ``inject`` adds local package files (the result must be complete) and wheels.
    ``no_cache`` downloads into a temporary directory instead of the shared cache.

    PyPI packages of a lockfile are packed when they are wheels; any other kind
    (source distribution, directory, VCS URL) is a :class:`UsageError`, or skipped
    with a warning when ``ignore_pypi_non_wheel``.

    ``prefix`` packs an installed environment instead of a lock: its conda-meta records,
    each package from a package cache or its URL (see :mod:`portpack.packer.prefix_source`);
    ``unowned`` (``"refuse"`` or ``"ignore"``) says what to do with files they do not
    describe.

    ``create_executable`` writes a self-extracting archive instead (see
    :mod:`portpack.packer.selfextract` for ``bootstrap_python``, ``zstandard_wheel`` and
    ``wheel_index``).
    """
    reporter = reporter or Reporter()
    if directory_only and create_executable:
        raise UsageError("--directory-only writes a folder: not with --create-executable")
    if directory_only and (not isinstance(output, (str, os.PathLike)) or str(output) == "-"):
        raise UsageError("--directory-only writes a folder, not to standard output or a stream")
    if isinstance(output, (str, os.PathLike)) and str(output) != "-":
        # before any download: a bad -o is known at once
        if directory_only:
            outside.check_directory(output)
        else:
            outside.check_file(output)
    network, platform, records, wheels, source = _resolve(
        specs,
        channels=channels,
        manifest=manifest,
        lockfile=lockfile,
        environment=environment,
        platform=platform,
        relock=relock,
        virtual_packages=virtual_packages,
        archive_format=archive_format,
        reporter=reporter,
        inject=inject,
        auth_file=auth_file,
        config=config,
        ca_bundle=ca_bundle,
        insecure_hosts=insecure_hosts,
        create_executable=create_executable,
        bootstrap_python=bootstrap_python,
        zstandard_wheel=zstandard_wheel,
        wheel_index=wheel_index,
        ignore_pypi_non_wheel=ignore_pypi_non_wheel,
        prefix=prefix,
        unowned=unowned,
    )
    cache = _cache_for(cache_dir, no_cache)
    workers = concurrency or network.concurrency or DEFAULT_CONCURRENCY
    make_fetcher = Fetcher if source is None else source.fetcher
    fetcher = make_fetcher(cache, workers, reporter, network=network)
    typed = [PackageRecord.from_json(r, "the lock", PackageError) for r in records]
    fetched = fetcher.fetch_all(typed, [w.request() for w in wheels])
    fetched, wheel_files = fetched[: len(records)], fetched[len(records) :]
    scratch = _scratch_dir(cache) if wheels else None
    if archive_format == "pixi-pack":  # pixi-pack's plain tar of the package files
        from portpack.archive.pixipack_write import write_pixi_pack_dir, write_pixi_pack_to

        named = [_named(f, w.filename, scratch) for f, w in zip(wheel_files, wheels, strict=True)]
        if directory_only:
            assert isinstance(output, (str, os.PathLike))  # checked above
            written = write_pixi_pack_dir(output, platform, records, fetched, named, reporter)
        else:
            written = write_pixi_pack_to(output, platform, records, fetched, named, reporter)
        return PackResult(
            output=written,
            platform=platform,
            packages=[f"{r['name']}-{r['version']}-{r['build']}" for r in records],
            metadata=None,
            archive_format=archive_format,
            wheels=[w.filename for w in wheels],
        )
    packages = _analyze_all(records, fetched, cache)
    packed = _prepare_wheels(wheels, wheel_files, scratch)
    metadata = build_metadata(platform, records, packages, [w.entry for w in packed])
    compressed = [w.compressed for w in packed]
    if directory_only:
        assert isinstance(output, (str, os.PathLike))  # checked above
        write_directory(output, metadata, packages, compressed, reporter)
    elif not create_executable:
        _write(output, metadata, packages, compressed, reporter=reporter)
    else:
        from portpack.packer.bootstrap import prepare_bootstrap
        from portpack.packer.bootstrap_wheel import DEFAULT_WHEEL_INDEX

        bootstrap = prepare_bootstrap(
            platform,
            typed,
            packages,
            fetcher=fetcher,
            channels=channels,
            bootstrap_python=bootstrap_python,
            zstandard_wheel=zstandard_wheel,
            wheel_index=wheel_index or DEFAULT_WHEEL_INDEX,
            with_wheels=bool(wheels),
        )
        try:
            _write(output, metadata, packages, compressed, bootstrap, reporter)
        finally:
            bootstrap.close()
    return PackResult(
        output=str(output) if not hasattr(output, "write") else "<stream>",
        platform=platform,
        packages=[e.dist for e in metadata.packages],
        metadata=metadata,
        wheels=[w.filename for w in metadata.wheels],
    )


def _resolve(
    specs: Sequence[str],
    *,
    channels: Sequence[str],
    manifest: str | os.PathLike[str] | None,
    lockfile: str | os.PathLike[str] | None,
    environment: str,
    platform: str | None,
    relock: bool,
    virtual_packages: Sequence[str],
    archive_format: str,
    reporter: Reporter,
    inject: Sequence[str | os.PathLike[str]],
    auth_file: str | os.PathLike[str] | None,
    config: str | os.PathLike[str] | None,
    ca_bundle: str | os.PathLike[str] | None,
    insecure_hosts: Sequence[str],
    create_executable: bool,
    bootstrap_python: str | os.PathLike[str] | None,
    zstandard_wheel: str | os.PathLike[str] | None,
    wheel_index: str | None,
    ignore_pypi_non_wheel: bool,
    prefix: str | os.PathLike[str] | None = None,
    unowned: str | None = None,
    non_wheels: list[PypiEntry] | None = None,
    sources: list[tuple[SourcePackage, str]] | None = None,
) -> tuple[NetworkConfig, str, list[dict[str, Any]], list[Wheel], PrefixSource | None]:
    """Check the options and resolve what to pack (no package is downloaded).

    ``non_wheels`` given: the lock's PyPI packages that are not wheels go there
    instead of being refused or skipped; ``sources`` given: the lock's unbuilt source
    packages go there (with the reason) instead of being refused.
    """
    if archive_format not in ARCHIVE_FORMATS:
        raise UsageError(
            f"unknown archive format {archive_format!r}; choose {' or '.join(ARCHIVE_FORMATS)}"
        )
    if not create_executable and (bootstrap_python or zstandard_wheel or wheel_index):
        raise UsageError(
            "--bootstrap-python, --zstandard-wheel and --wheel-index need --create-executable"
        )
    network = load_network_config(
        config,
        auth_file=auth_file,
        ca_bundle=ca_bundle,
        insecure_hosts=insecure_hosts,
        reporter=reporter,
    )
    source = _prefix_source(prefix, unowned, platform, reporter, specs, manifest, lockfile, relock)
    read_locked = locked_environment if source is None else source.locked_environment
    locked = read_locked(
        specs,
        channels=channels,
        manifest=manifest,
        lockfile=lockfile,
        environment=environment,
        platform=platform,
        relock=relock,
        virtual_packages=virtual_packages,
        network=network,
    )
    platform = locked.platform
    conda_files = [p for p in inject if not str(p).endswith(".whl")]
    if sources is not None:
        locked = _set_aside_sources(locked, conda_files, sources)
    records = _checked_records(locked, conda_files, reporter)
    pypi_entries = locked.pypi
    if non_wheels is not None:
        from portpack.packer.pypi import wheel_filename

        non_wheels += [e for e in pypi_entries if wheel_filename(e.location) is None]
        pypi_entries = [e for e in pypi_entries if wheel_filename(e.location) is not None]
    wheels = _wheels(
        records,
        pypi_entries,
        [p for p in inject if str(p).endswith(".whl")],
        ignore_pypi_non_wheel,
        reporter,
    )
    if create_executable:
        from portpack.packer.bootstrap import check_platform

        if archive_format != "portpack":
            raise UsageError("--create-executable makes portpack archives only")
        check_platform(platform)
    return network, platform, records, wheels, source


def _prefix_source(
    prefix: str | os.PathLike[str] | None,
    unowned: str | None,
    platform: str | None,
    reporter: Reporter,
    *others: object,
) -> PrefixSource | None:
    """The environment to pack for ``pack(prefix=...)`` (``others``: what excludes it)."""
    if prefix is None:
        if unowned is not None:
            raise UsageError("--unowned needs --prefix")
        return None
    if any(others):
        raise UsageError("give either --prefix or specs/--manifest/--lockfile/--relock, not both")
    from portpack.packer.prefix_source import read_prefix

    return read_prefix(prefix, platform=platform, unowned=unowned, reporter=reporter)


def plan(
    specs: Sequence[str] = (),
    *,
    channels: Sequence[str] = (),
    manifest: str | os.PathLike[str] | None = None,
    lockfile: str | os.PathLike[str] | None = None,
    environment: str = "default",
    platform: str | None = None,
    relock: bool = False,
    virtual_packages: Sequence[str] = (),
    archive_format: str = "portpack",
    reporter: Reporter | None = None,
    inject: Sequence[str | os.PathLike[str]] = (),
    auth_file: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    insecure_hosts: Sequence[str] = (),
    create_executable: bool = False,
    bootstrap_python: str | os.PathLike[str] | None = None,
    zstandard_wheel: str | os.PathLike[str] | None = None,
    wheel_index: str | None = None,
    ignore_pypi_non_wheel: bool = False,
    prefix: str | os.PathLike[str] | None = None,
    unowned: str | None = None,
) -> PackPlan:
    """What :func:`pack` with these options would pack, without downloading anything.

    Sizes come from the lock's records (and the files of ``inject``).  PyPI packages
    that are not wheels are listed as refused (skipped with ``ignore_pypi_non_wheel``)
    instead of raising; every other problem raises as :func:`pack` would.
    """
    from portpack.net.auth import strip_credentials

    non_wheels: list[PypiEntry] = []
    sources: list[tuple[SourcePackage, str]] = []
    _, platform, records, wheels, _ = _resolve(
        specs,
        channels=channels,
        manifest=manifest,
        lockfile=lockfile,
        environment=environment,
        platform=platform,
        relock=relock,
        virtual_packages=virtual_packages,
        archive_format=archive_format,
        reporter=reporter or Reporter(),
        inject=inject,
        auth_file=auth_file,
        config=config,
        ca_bundle=ca_bundle,
        insecure_hosts=insecure_hosts,
        create_executable=create_executable,
        bootstrap_python=bootstrap_python,
        zstandard_wheel=zstandard_wheel,
        wheel_index=wheel_index,
        ignore_pypi_non_wheel=ignore_pypi_non_wheel,
        prefix=prefix,
        unowned=unowned,
        non_wheels=non_wheels,
        sources=sources,
    )
    packages = [
        PlannedFile(
            name=str(r["name"]),
            version=str(r["version"]),
            build=str(r["build"]),
            filename=str(r["fn"]),
            size=r["size"] if isinstance(r.get("size"), int) else None,
            source=strip_credentials(str(r.get("url") or "")),
        )
        for r in records
    ]
    planned_wheels = [
        PlannedFile(
            name=w.name,
            version=w.version,
            build=None,
            filename=w.filename,
            size=_local_size(w.location),
            source=strip_credentials(w.location),
        )
        for w in wheels
    ]
    refused = [
        RefusedPackage(e.name, strip_credentials(e.location), "PyPI package that is not a wheel")
        for e in non_wheels
    ]
    unbuilt = [
        RefusedPackage(
            source.name,
            strip_credentials(source.location),
            f"source package (pixi-build), {why}: build it and --inject the .conda",
        )
        for source, why in sources
    ]
    return PackPlan(
        platform=platform,
        archive_format=archive_format,
        packages=packages,
        wheels=planned_wheels,
        refused=unbuilt + ([] if ignore_pypi_non_wheel else refused),
        skipped=refused if ignore_pypi_non_wheel else [],
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


def _set_aside_sources(
    locked: LockedEnvironment,
    conda_files: Sequence[str | os.PathLike[str]],
    sources: list[tuple[SourcePackage, str]],
) -> LockedEnvironment:
    """``locked`` without its unbuilt source packages, which go to ``sources``; as it
    is when nothing else is left (then :func:`_checked_records` says what is wrong)."""
    from portpack.packer.inject import local_records, unbuilt_sources

    injected = local_records(conda_files, locked.platform) if conda_files else []
    missing = unbuilt_sources(locked.sources, injected)
    if not missing or not (locked.records or injected):
        return locked
    sources += missing
    unbuilt = {id(source) for source, _ in missing}
    return dataclasses.replace(locked, sources=[s for s in locked.sources if id(s) not in unbuilt])


def _checked_records(
    locked: LockedEnvironment, conda_files: Sequence[str | os.PathLike[str]], reporter: Reporter
) -> list[dict[str, Any]]:
    """The locked records with the injected packages, refused when they cannot make a
    working environment: unbuilt source packages, only PyPI packages, no packages at
    all, or noarch python packages without python."""
    from portpack.packer.inject import check_noarch_python, check_sources, local_records
    from portpack.packer.inject import inject as add_local

    where = f"environment {locked.environment!r} for {locked.platform}"
    injected = local_records(conda_files, locked.platform) if conda_files else []
    check_sources(locked.sources, injected, where)
    locked_records = [r.to_json() for r in locked.records]  # typed records end here, for now
    records = add_local(locked_records, injected, reporter) if injected else locked_records
    if not records:
        if locked.pypi:
            names = ", ".join(p.name for p in locked.pypi)
            raise UsageError(
                f"{where} has only PyPI packages ({names}) and no conda packages: a "
                "portpack archive needs at least a conda python to install wheels into",
                hint="Add python (and the environment's other conda dependencies) to the "
                "manifest's [dependencies] and lock again, or --inject a python package.",
            )
        raise UsageError(f"{where} has no packages")
    check_noarch_python(records)
    return records


def _wheels(
    records: list[dict[str, Any]],
    locked: Sequence[PypiEntry],
    inject: Sequence[str | os.PathLike[str]],
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


def _scratch_dir(cache: Path) -> Path:
    """A directory in the cache's file system, removed when ``pack`` returns."""
    cache.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory(prefix=".pack-", dir=cache)
    return Path(_SCRATCH.get().enter_context(scratch))


def _named(path: Path, filename: str, scratch: Path | None) -> Path:
    """``path`` under its wheel file name (cache entries carry a checksum in theirs)."""
    assert scratch is not None
    target = scratch / filename
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return target


def _prepare_wheels(
    wheels: list[Wheel], files: list[Path], scratch: Path | None
) -> list[PackedWheel]:
    if not wheels:
        return []
    from portpack.packer.pypi import prepare

    assert scratch is not None
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(pool.map(lambda w, f: prepare(w, f, scratch), wheels, files))


def _analyze_all(
    records: list[dict[str, Any]], files: list[Path], cache: Path
) -> list[AnalyzedPackage]:
    def one(item: tuple[dict[str, Any], Path]) -> AnalyzedPackage:
        record, path = item
        what = f"{record['name']}-{record['version']}-{record['build']}"
        return analyze(as_conda(path, cache, what), what, AnalysisCache.for_record(cache, record))

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(pool.map(one, zip(records, files, strict=True)))


def _stem(fn: str) -> str:
    for ext in (".conda", ".tar.bz2"):
        if fn.endswith(ext):
            return fn[: -len(ext)]
    return fn


def build_metadata(
    platform: str,
    records: list[dict[str, Any]],
    packages: list[AnalyzedPackage],
    wheels: Sequence[fmt.WheelEntry] = (),
) -> fmt.Metadata:
    """Everything the unpacker checks before writing: sizes, placeholders, virtual deps."""
    entries = []
    shortest: fmt.Placeholder | None = None
    virtual = []
    for record, pkg in zip(records, packages, strict=True):
        entry = fmt.PackageEntry(
            stem=_stem(str(record["fn"])),
            # no credentials in the archive or conda-meta
            record=PackageRecord.from_json(
                strip_record(record), "the locked records", PackageError
            ),
            info=pkg.info_segment,
            payload=pkg.payload_segment,
            installed_size=pkg.info.installed_size,
        )
        entries.append(entry)
        for path in pkg.info.paths:
            if path.file_mode == "binary" and path.placeholder:
                length = len(path.placeholder.encode())
                if shortest is None or length < shortest.length:
                    shortest = fmt.Placeholder(length, entry.dist, path.path)
        virtual += [
            fmt.VirtualRequirement(entry.dist, dep)
            for dep in record.get("depends", [])
            if dep.startswith("__")
        ]
    return fmt.Metadata(
        platform=platform,
        portpack_version=__version__,
        packages=entries,
        installed_size=sum(e.installed_size for e in entries)
        + sum(w.installed_size for w in wheels),
        min_binary_placeholder=shortest,
        virtual_requirements=virtual,
        wheels=list(wheels),
    )


def _write(
    output: str | os.PathLike[str] | BinaryIO,
    metadata: fmt.Metadata,
    packages: list[AnalyzedPackage],
    wheels: list[Path],
    bootstrap: Bootstrap | None = None,
    reporter: Reporter | None = None,
) -> None:
    def emit(out: BinaryIO, name: str) -> None:
        if bootstrap is None:
            write_archive(out, metadata, packages, wheels, reporter)
            return
        from portpack.packer.selfextract import write_self_extracting

        write_self_extracting(
            out,
            bootstrap,
            metadata,
            name,
            lambda o: write_archive(o, metadata, packages, wheels, reporter),
        )

    if not isinstance(output, (str, os.PathLike)):
        emit(output, os.path.basename(str(getattr(output, "name", ""))) or "env.sh")
        return
    if str(output) == "-":
        emit(sys.stdout.buffer, "env.sh")
        sys.stdout.buffer.flush()
        return
    target = Path(output)
    with outside.atomic_file(target, 0o644 if bootstrap is None else 0o755) as fh:
        emit(fh, target.name)
