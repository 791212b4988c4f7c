"""``pack``: fetch the locked packages and write one archive."""

from __future__ import annotations

import contextlib
import contextvars
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

from . import format as fmt
from . import outside
from ._version import __version__
from .archive_writer import write_archive
from .auth import strip_record
from .condapkg import AnalysisCache, AnalyzedPackage, analyze
from .errors import UsageError
from .fetch import DEFAULT_CONCURRENCY, Fetcher, as_conda, default_cache_dir
from .locking import locked_environment
from .netconfig import load_network_config
from .progress import Reporter

#: What ``pack`` writes: portpack's zstd archive, or pixi-pack's plain tar layout.
ARCHIVE_FORMATS = ("portpack", "pixi-pack")

if TYPE_CHECKING:
    from .lockfile import PypiEntry
    from .pypi import PackedWheel, Wheel
    from .selfextract import Bootstrap


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
) -> PackResult:
    """Resolve what to pack, fetch it, and write the archive to ``output`` (``"-"``: stdout).

    Network options (see :mod:`portpack.netconfig`): ``config`` (pixi/rattler TOML:
    mirrors, proxies, download concurrency), ``auth_file`` (rattler's credentials JSON),
    ``ca_bundle``, ``insecure_hosts``.  ``concurrency`` defaults to the config file's or
    50.  ``inject`` adds local package files (the result must be complete) and wheels.
    ``no_cache`` downloads into a temporary directory instead of the shared cache.

    PyPI packages of a lockfile are packed when they are wheels; any other kind
    (source distribution, directory, VCS URL) is a :class:`UsageError`, or skipped
    with a warning when ``ignore_pypi_non_wheel``.

    ``create_executable`` writes a self-extracting archive instead (see
    :mod:`portpack.selfextract` for ``bootstrap_python``, ``zstandard_wheel`` and
    ``wheel_index``).
    """
    reporter = reporter or Reporter()
    if archive_format not in ARCHIVE_FORMATS:
        raise UsageError(
            f"unknown archive format {archive_format!r}; choose {' or '.join(ARCHIVE_FORMATS)}"
        )
    if not create_executable and (bootstrap_python or zstandard_wheel or wheel_index):
        raise UsageError(
            "--bootstrap-python, --zstandard-wheel and --wheel-index need --create-executable"
        )
    if isinstance(output, (str, os.PathLike)) and str(output) != "-":
        outside.check_file(output)  # before any download: a bad -o is known at once
    network = load_network_config(
        config,
        auth_file=auth_file,
        ca_bundle=ca_bundle,
        insecure_hosts=insecure_hosts,
        reporter=reporter,
    )
    locked = locked_environment(
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
    platform, records = locked.platform, locked.records
    conda_files = [p for p in inject if not str(p).endswith(".whl")]
    if conda_files:
        from .inject import inject as add_local
        from .inject import local_records

        records = add_local(records, local_records(conda_files, platform), reporter)
    if not records:
        raise UsageError(f"the environment has no packages for {platform}")
    wheels = _wheels(
        records,
        locked.pypi,
        [p for p in inject if str(p).endswith(".whl")],
        ignore_pypi_non_wheel,
        reporter,
    )
    if create_executable:
        from .selfextract import check_platform

        if archive_format != "portpack":
            raise UsageError("--create-executable makes portpack archives only")
        check_platform(platform)
    cache = _cache_for(cache_dir, no_cache)
    workers = concurrency or network.concurrency or DEFAULT_CONCURRENCY
    fetcher = Fetcher(cache, workers, reporter, network=network)
    fetched = fetcher.fetch_all([*records, *(w.request().record() for w in wheels)])
    fetched, wheel_files = fetched[: len(records)], fetched[len(records) :]
    scratch = _scratch_dir(cache) if wheels else None
    if archive_format == "pixi-pack":  # pixi-pack's plain tar of the package files
        from .pixipack_write import write_pixi_pack_to

        named = [_named(f, w.filename, scratch) for f, w in zip(wheel_files, wheels, strict=True)]
        return PackResult(
            output=write_pixi_pack_to(output, platform, records, fetched, named),
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
    if not create_executable:
        _write(output, metadata, packages, compressed)
    else:
        from .selfextract import DEFAULT_WHEEL_INDEX, prepare_bootstrap

        bootstrap = prepare_bootstrap(
            platform,
            records,
            packages,
            cache_dir=cache,
            channels=channels,
            bootstrap_python=bootstrap_python,
            zstandard_wheel=zstandard_wheel,
            wheel_index=wheel_index or DEFAULT_WHEEL_INDEX,
            reporter=reporter,
            with_wheels=bool(wheels),
        )
        try:
            _write(output, metadata, packages, compressed, bootstrap)
        finally:
            bootstrap.close()
    return PackResult(
        output=str(output) if not hasattr(output, "write") else "<stream>",
        platform=platform,
        packages=[e.dist for e in metadata.packages],
        metadata=metadata,
        wheels=[w.filename for w in metadata.wheels],
    )


def _wheels(
    records: list[dict[str, Any]],
    locked: Sequence[PypiEntry],
    inject: Sequence[str | os.PathLike[str]],
    ignore_non_wheel: bool,
    reporter: Reporter,
) -> list[Wheel]:
    """The wheels to pack: the lock's (see :mod:`portpack.pypi`) and injected ones."""
    if not locked and not inject:
        return []
    from . import pypi

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
    from .pypi import prepare

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
            record=strip_record(record),  # no credentials in the archive or conda-meta
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
) -> None:
    def emit(out: BinaryIO, name: str) -> None:
        if bootstrap is None:
            write_archive(out, metadata, packages, wheels)
            return
        from .selfextract import write_self_extracting

        write_self_extracting(
            out, bootstrap, metadata, name, lambda o: write_archive(o, metadata, packages, wheels)
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
