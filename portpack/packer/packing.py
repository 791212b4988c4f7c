"""``pack``: resolve what to pack, fetch it, write one archive.

The three steps have a module each: :mod:`portpack.packer.plan` (resolve: a lock,
manifest, specs or prefix into typed records and wheels; also the dry run),
the fetch below (:class:`~portpack.net.fetch.Fetcher`, or the prefix's package
caches first) and :mod:`portpack.packer.write` (the outputs).  The options are made
once (:mod:`portpack.packer.options`) and passed through.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from portpack.archive import format as fmt
from portpack.net.fetch import DEFAULT_CONCURRENCY, Fetcher, default_cache_dir
from portpack.packer.options import ARCHIVE_FORMATS, Network, PackOptions, StrPath
from portpack.packer.plan import PackPlan, PlannedFile, RefusedPackage, Resolved, plan, resolve
from portpack.packer.write import Fetched, build_metadata, write
from portpack.progress import Reporter

if TYPE_CHECKING:
    from portpack.remote.oci_archive import PushResult

__all__ = [
    "ARCHIVE_FORMATS",
    "PackPlan",
    "PackResult",
    "PlannedFile",
    "RefusedPackage",
    "build_metadata",
    "pack",
    "pack_with",
    "plan",
]


@dataclass
class PackResult:
    """What :func:`pack` wrote."""

    output: str
    """The path written, or ``"<stream>"``."""
    platform: str
    packages: list[str]
    metadata: fmt.Metadata | None
    """The portpack archive's metadata (None for ``archive_format="pixi-pack"``)."""
    archive_format: str = "portpack"
    wheels: list[str] = field(default_factory=list)
    """File names of the PyPI wheels packed."""
    push: PushResult | None = None
    """For ``output="oci://..."``: what the push to the registry did."""


def pack(
    specs: Sequence[str] = (),
    *,
    channels: Sequence[str] = (),
    manifest: StrPath | None = None,
    lockfile: StrPath | None = None,
    environment: str = "default",
    platform: str | None = None,
    output: StrPath | BinaryIO = "environment.tar",
    cache_dir: StrPath | None = None,
    relock: bool = False,
    concurrency: int | None = None,
    virtual_packages: Sequence[str] = (),
    archive_format: str = "portpack",
    reporter: Reporter | None = None,
    inject: Sequence[StrPath] = (),
    no_cache: bool = False,
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
    directory_only: bool = False,
) -> PackResult:
    """Resolve what to pack, fetch it, and write the archive to ``output``.

    ``output`` is a path or a binary stream (standard output: ``sys.stdout.buffer``),
    or an ``oci://HOST/REPO:TAG`` reference: the archive is then written to a temporary
    file in the package cache, pushed (:func:`portpack.packer.push.pack_and_push`) and
    removed;
    ``directory_only`` writes the archive's members into the folder ``output``
    instead, which ``unpack`` takes too.  ``prefix`` packs an installed environment
    instead of a lock; ``inject`` adds local packages and wheels; the network options
    (``config``, ``auth_file``, ``ca_bundle``, ``insecure_hosts``, ``concurrency``,
    ``cache_dir``, ``no_cache``) say how packages are fetched; ``create_executable``
    writes a self-extracting archive.  :mod:`portpack.packer.options` describes each.
    """
    keywords = dict(locals())  # the parameters: every one is an option but the reporter
    del keywords["reporter"]
    return pack_with(PackOptions.from_keywords(keywords), reporter or Reporter())


def pack_with(options: PackOptions, reporter: Reporter) -> PackResult:
    """:func:`pack` for options already made: resolve, fetch, write (and push, for an
    ``oci://`` output)."""
    target = options.output.target
    if isinstance(target, str) and target.lower().startswith("oci://"):
        from portpack.packer.push import pack_and_push

        network = options.network
        cache = Path(network.cache_dir) if network.cache_dir is not None else default_cache_dir()
        result, pushed = pack_and_push(options, cache, lambda made: pack_with(made, reporter))
        result.output, result.push = pushed.ref, pushed
        return result
    options.output.check()  # before any download: a bad output is known at once
    resolved = resolve(options, reporter)
    with contextlib.ExitStack() as scratch:  # temporary directories, removed at the end
        fetched = _fetch(options.network, resolved, reporter, scratch)
        metadata = write(options.output, fetched, options.inputs.channels, reporter)
    path = options.output.path
    return PackResult(
        output=os.fspath(path) if path is not None else "<stream>",
        platform=resolved.platform,
        packages=[r.dist for r in resolved.records],
        metadata=metadata,
        archive_format=options.output.archive_format,
        wheels=[w.filename for w in resolved.wheels],
    )


def _fetch(
    network: Network, resolved: Resolved, reporter: Reporter, scratch: contextlib.ExitStack
) -> Fetched:
    """Every package and wheel file, in the cache (one run, one progress report)."""
    cache = _cache_for(network, scratch)
    workers = network.concurrency or resolved.network.concurrency or DEFAULT_CONCURRENCY
    make_fetcher = Fetcher if resolved.source is None else resolved.source.fetcher
    fetcher = make_fetcher(cache, workers, reporter, network=resolved.network)
    files = fetcher.fetch_all(resolved.records, [w.request() for w in resolved.wheels])
    count = len(resolved.records)
    wheel_dir = _scratch_dir(cache, scratch) if resolved.wheels else None
    return Fetched(resolved, files[:count], files[count:], cache, wheel_dir, fetcher)


def _cache_for(network: Network, scratch: contextlib.ExitStack) -> Path:
    """The package cache, or (``no_cache``) a temporary directory removed after ``pack``."""
    if not network.no_cache:
        return Path(network.cache_dir) if network.cache_dir is not None else default_cache_dir()
    temporary = tempfile.TemporaryDirectory(prefix="portpack-pkgs-")
    return Path(scratch.enter_context(temporary))


def _scratch_dir(cache: Path, scratch: contextlib.ExitStack) -> Path:
    """A directory in the cache's file system, removed when ``pack`` returns."""
    cache.mkdir(parents=True, exist_ok=True)
    temporary = tempfile.TemporaryDirectory(prefix=".pack-", dir=cache)
    return Path(scratch.enter_context(temporary))
