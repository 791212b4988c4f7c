"""``pack``'s last step: the fetched packages written as the output asks.

Four outputs: portpack's archive, pixi-pack's archive, a self-extracting archive,
and (``directory_only``) the members of either archive in a folder.  A file or
folder is written through :mod:`portpack.outside` (it appears whole or not at
all); a stream is written as it is given (the caller owns it, e.g. standard output).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from portpack import outside
from portpack._version import __version__
from portpack.archive import format as fmt
from portpack.archive.segments import AnalysisCache, AnalyzedPackage, analyze
from portpack.archive.writer import place, write_archive, write_directory
from portpack.conda.record import PackageRecord
from portpack.errors import PackageError
from portpack.net.auth import strip_record
from portpack.packer.convert import as_conda
from portpack.progress import Reporter

if TYPE_CHECKING:
    from portpack.net.fetch import Fetcher
    from portpack.packer.bootstrap import Bootstrap
    from portpack.packer.options import Output, SelfExtracting
    from portpack.packer.plan import Resolved
    from portpack.packer.pypi import PackedWheel

#: The name a self-extracting archive written to a nameless stream calls itself.
_STREAM_NAME = "env.sh"


@dataclass(frozen=True)
class Fetched:
    """What ``pack`` resolved, with the files fetched for it."""

    resolved: Resolved
    packages: list[Path]
    """The package file of each record (same order)."""
    wheels: list[Path]
    """The file of each wheel (same order)."""
    cache: Path
    """The package cache they are in."""
    scratch: Path | None
    """A directory in the cache's file system, removed after ``pack`` (with wheels)."""
    fetcher: Fetcher
    """The fetcher that fetched them (the self-extractor's downloads use it too)."""


def write(
    output: Output, fetched: Fetched, channels: Sequence[str], reporter: Reporter
) -> fmt.Metadata | None:
    """Write ``fetched`` to ``output``; the portpack archive's metadata (None: pixi-pack).

    ``channels`` are where a self-extracting archive's bootstrap python is solved from.
    """
    if output.archive_format == "pixi-pack":
        _write_pixi_pack(output, fetched, reporter)
        return None
    records = fetched.resolved.records
    packages = _analyze_all(records, fetched.packages, fetched.cache)
    packed = _prepare_wheels(fetched)
    metadata = build_metadata(
        fetched.resolved.platform, records, packages, [w.entry for w in packed]
    )
    compressed = [w.compressed for w in packed]
    if output.directory_only:
        assert output.path is not None  # Output refuses a folder on a stream
        write_directory(output.path, metadata, packages, compressed, reporter)
        return metadata
    bootstrap = None
    if output.executable is not None:
        bootstrap = _bootstrap(output.executable, fetched, packages, channels, reporter)
    try:
        _emit(output, metadata, packages, compressed, bootstrap, reporter)
    finally:
        if bootstrap is not None:
            bootstrap.close()
    return metadata


def _write_pixi_pack(output: Output, fetched: Fetched, reporter: Reporter) -> None:
    """pixi-pack's plain tar of the package files (or its folder)."""
    from portpack.archive.pixipack_write import write_pixi_pack_dir, write_pixi_pack_to

    resolved = fetched.resolved
    wheels = [
        _named(path, wheel.filename, fetched.scratch)
        for path, wheel in zip(fetched.wheels, resolved.wheels, strict=True)
    ]
    records = resolved.records
    files = fetched.packages
    if output.directory_only:
        assert output.path is not None  # Output refuses a folder on a stream
        write_pixi_pack_dir(output.path, resolved.platform, records, files, wheels, reporter)
    else:
        assert output.target is not None  # pack always has one (plan writes nothing)
        write_pixi_pack_to(output.target, resolved.platform, records, files, wheels, reporter)


def _bootstrap(
    options: SelfExtracting,
    fetched: Fetched,
    packages: list[AnalyzedPackage],
    channels: Sequence[str],
    reporter: Reporter,
) -> Bootstrap:
    """The self-extracting archive's bootstrap (python, zstandard, portpack)."""
    from portpack.packer.bootstrap import prepare_bootstrap
    from portpack.packer.bootstrap_wheel import DEFAULT_WHEEL_INDEX

    return prepare_bootstrap(
        fetched.resolved.platform,
        fetched.resolved.records,
        packages,
        fetcher=fetched.fetcher,
        channels=channels,
        bootstrap_python=options.bootstrap_python,
        zstandard_wheel=options.zstandard_wheel,
        wheel_index=options.wheel_index or DEFAULT_WHEEL_INDEX,
        with_wheels=bool(fetched.wheels),
    )


def _emit(
    output: Output,
    metadata: fmt.Metadata,
    packages: list[AnalyzedPackage],
    wheels: list[Path],
    bootstrap: Bootstrap | None,
    reporter: Reporter,
) -> None:
    """Write the archive (behind the bootstrap, if any) to the file or stream."""

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

    if output.stream is not None:
        emit(output.stream, stream_name(output.stream))
        output.stream.flush()
        return
    assert output.path is not None  # pack always has a target (plan writes nothing)
    target = Path(output.path)
    with outside.atomic_file(target, 0o644 if bootstrap is None else 0o755) as fh:
        emit(fh, target.name)


def stream_name(stream: BinaryIO) -> str:
    """The file name of an open stream, or ``env.sh`` (standard output, a pipe, a buffer)."""
    name = getattr(stream, "name", None)
    if not isinstance(name, str) or not name or name.startswith("<"):
        return _STREAM_NAME
    return os.path.basename(name) or _STREAM_NAME


def _named(path: Path, filename: str, scratch: Path | None) -> Path:
    """``path`` under its wheel file name (cache entries carry a checksum in theirs)."""
    assert scratch is not None  # pack makes one when there are wheels
    target = scratch / filename
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return target


def _prepare_wheels(fetched: Fetched) -> list[PackedWheel]:
    """Hash, list and compress each fetched wheel (in parallel)."""
    if not fetched.wheels:
        return []
    from portpack.packer.pypi import prepare

    scratch = fetched.scratch
    assert scratch is not None  # pack makes one when there are wheels
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(
            pool.map(lambda w, f: prepare(w, f, scratch), fetched.resolved.wheels, fetched.wheels)
        )


def _analyze_all(
    records: list[PackageRecord], files: list[Path], cache: Path
) -> list[AnalyzedPackage]:
    """Where each package's zstd frames are (cached by sha256), in parallel."""

    def one(item: tuple[PackageRecord, Path]) -> AnalyzedPackage:
        record, path = item
        # AnalysisCache takes the record as JSON (the boundary with portpack.archive).
        cached = AnalysisCache.for_record(cache, record)
        return analyze(as_conda(path, cache, record.dist), record.dist, cached)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(pool.map(one, zip(records, files, strict=True)))


def _stem(fn: str) -> str:
    for ext in (".conda", ".tar.bz2"):
        if fn.endswith(ext):
            return fn[: -len(ext)]
    return fn


def build_metadata(
    platform: str,
    records: Sequence[PackageRecord | Mapping[str, Any]],
    packages: list[AnalyzedPackage],
    wheels: Sequence[fmt.WheelEntry] = (),
) -> fmt.Metadata:
    """Everything the unpacker checks before writing: sizes, placeholders, virtual deps.

    Records given as JSON are typed (and so checked) here: pack never writes a record
    the unpacker would refuse.  The segment offsets are those the archive will have.
    """
    entries = []
    shortest: fmt.Placeholder | None = None
    virtual = []
    for record, pkg in zip(records, packages, strict=True):
        raw = record.to_json() if isinstance(record, PackageRecord) else dict(record)
        entry = fmt.PackageEntry(
            stem=_stem(str(raw["fn"])),
            # no credentials in the archive or conda-meta
            record=PackageRecord.from_json(strip_record(raw), "the locked records", PackageError),
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
            for dep in raw.get("depends", [])
            if dep.startswith("__")
        ]
    metadata = fmt.Metadata(
        platform=platform,
        portpack_version=__version__,
        packages=entries,
        installed_size=sum(e.installed_size for e in entries)
        + sum(w.installed_size for w in wheels),
        min_binary_placeholder=shortest,
        virtual_requirements=virtual,
        wheels=list(wheels),
    )
    return place(metadata)
