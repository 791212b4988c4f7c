"""``unpack``: stream an archive into a new environment (standard library + zstandard).

This module reads the archive and runs the member loop; :mod:`portpack.unpacker.staging`
owns the hidden staging directory the environment is built in (with the final
prefix already written into every placeholder) and its move into place, so an
error or an interrupt never leaves a prefix that looks complete;
:mod:`portpack.unpacker.finish` writes conda-meta, wheels, link scripts and the
activation script.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, BinaryIO, cast

from portpack import outside
from portpack.archive import format as fmt
from portpack.archive.directory import is_archive_directory, open_directory
from portpack.archive.reader import ArchiveReader
from portpack.archive.sfx import skip_header
from portpack.conda.info import read_info
from portpack.conda.record import PackageRecord
from portpack.conda.tarstream import looks_like_tar, sniff
from portpack.errors import UsageError
from portpack.install.activation import DEFAULT_SHELL, normalize_shell
from portpack.install.destination import Destination
from portpack.install.linker import LinkContext, link_package
from portpack.progress import Reporter
from portpack.unpacker import finish, preconditions, staging
from portpack.unpacker.finish import Installed
from portpack.unpacker.sources import SourceOptions, open_archive_source, open_segment_source

if TYPE_CHECKING:
    from portpack.install.prefix_state import PrefixState

#: Threads creating small files while the main thread parses (see portpack/install/writers.py).
#: None by default. On tmpfs one writer helps (large corpus, best of 3: 4.05 s with
#: none, 3.36 s with one), but on ext4 with a cold page cache it adds system time
#: and no speed (5.68/5.99 s with none, 5.71/6.80 s with one), and disks are what
#: environments are unpacked to. Forked writer and installer processes were measured
#: too, and dropped (benchmarks/README.md, "what was tried").
WRITER_THREADS = 0


@dataclass
class UnpackResult:
    """What :func:`unpack` made."""

    prefix: Path
    activation_script: Path
    packages: list[str] = field(default_factory=list)
    """``name-version-build`` of every installed package, in install order."""
    wheels: list[str] = field(default_factory=list)
    """File names of the PyPI wheels installed after the packages."""
    updated: bool = False
    """``update=True`` found an environment and updated it (else: a plain unpack)."""
    reused: list[str] = field(default_factory=list)
    """``name-version-build`` of the packages an update took from the old environment."""
    removed: list[str] = field(default_factory=list)
    """``name-version-build`` of the old environment's packages the archive does not have."""
    replaced: list[str] = field(default_factory=list)
    """``path: reason`` of locally changed files an update replaced (``force``)."""
    unowned_kept: list[str] = field(default_factory=list)
    """Files no package owned that an update took into the new environment."""
    unowned_dropped: list[str] = field(default_factory=list)
    """Files no package owned that an update left out (taken by the new environment,
    or ``keep_unowned=False``)."""
    bytes_read: int = 0
    """An update: the archive's bytes read or downloaded (unchanged packages skipped)."""
    copied_files: int = 0
    """Files of reused packages copied instead of hard linked (another file system,
    links refused, or link scripts to run)."""
    hashed_files: int = 0
    """Files an update read to look for local changes: those whose stat differs from
    what the last unpack recorded (all of them when it recorded none)."""

    @property
    def installed(self) -> list[str]:
        """The packages written from the archive (all of them for a plain unpack)."""
        reused = set(self.reused)
        return [dist for dist in self.packages if dist not in reused]


@dataclass
class _Job:
    """One call of :func:`unpack`: where to, how, and what it installed so far."""

    out: Path
    env_name: str
    force: bool
    run_link_scripts: bool
    strict: bool
    shell: str
    reporter: Reporter
    created: outside.CreatedDirs
    source: SourceOptions = field(default_factory=SourceOptions)
    wheels: list[str] = field(default_factory=list)
    update: bool = False
    keep_unowned: bool = True

    @property
    def prefix(self) -> Path:
        return self.out / self.env_name


def unpack(
    archive: str | os.PathLike[str] | BinaryIO = "environment.tar",
    output_dir: str | os.PathLike[str] = ".",
    env_name: str = "env",
    *,
    force: bool = False,
    run_link_scripts: bool = False,
    strict: bool = False,
    shell: str = DEFAULT_SHELL,
    reporter: Reporter | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    auth_file: str | os.PathLike[str] | None = None,
    netrc_file: str | os.PathLike[str] | None = None,
    insecure_hosts: Sequence[str] = (),
    update: bool = False,
    keep_unowned: bool = True,
) -> UnpackResult:
    """Unpack ``archive`` (a path or a binary stream, read front to back) into
    ``output_dir/env_name`` and write the activation script for ``shell`` into
    ``output_dir`` (``activate.sh`` for bash and zsh).

    ``archive`` is a portpack archive, a self-extracting one, a folder written by
    ``pack --directory-only`` or a pixi-pack archive (a plain tar). The path ``-`` is
    a file named ``-``: the command line reads standard input itself and passes a stream.
    ``archive`` may also be an ``http://``/``https://`` URL or an ``oci://`` reference,
    streamed into the prefix and never written to disk; ``ca_bundle``, ``auth_file``,
    ``netrc_file`` and ``insecure_hosts`` (registries allowed plain HTTP) say how to
    reach it (:class:`~portpack.unpacker.sources.SourceOptions`).
    ``update``: bring the environment at ``output_dir/env_name`` (made by portpack,
    pixi-unpack or conda) to the archive, taking the files of unchanged packages from it
    (:mod:`portpack.unpacker.update`); ``force`` then replaces files changed in it, which
    are refused otherwise (:class:`~portpack.errors.LocalChangesError`), and
    ``keep_unowned`` says whether files no package owns are kept. Without an
    environment there, it is a plain unpack.
    Raises a :class:`~portpack.errors.PortpackError` subclass on any failure, and
    then leaves no partial environment behind (an update leaves the old one as it was).
    """
    reporter = reporter or Reporter()
    _check_env_name(env_name)
    shell = normalize_shell(shell)
    out = Path(os.path.abspath(output_dir))
    outside.check_directory(out)
    created = outside.CreatedDirs()  # removed again (if still empty) when the unpack fails
    job = _Job(out, env_name, force, run_link_scripts, strict, shell, reporter, created)
    job.source = SourceOptions(ca_bundle, auth_file, netrc_file, tuple(insecure_hosts))
    job.update, job.keep_unowned = update, keep_unowned
    try:
        return _unpack(archive, job)
    except BaseException:
        created.remove()
        raise


def _unpack(archive: str | os.PathLike[str] | BinaryIO, job: _Job) -> UnpackResult:
    with ExitStack() as stack:
        state = _update_state(job)
        if state is not None:  # URLs and references are read by range or layer
            return _update(job, archive, stack, state)
        archive = open_archive_source(archive, stack, job.source, job.reporter)
        stream, name = _open(archive, stack)
        counted = _Counted(stream)
        stream, head = sniff(cast(BinaryIO, counted))
        stack.callback(job.reporter.on_transfer_complete)
        if looks_like_tar(head):
            linked, script = _pixi_pack(job, stream, name, counted, _size_of(archive))
        else:
            reader = ArchiveReader(stream, name)
            stack.callback(reader.close)
            linked, script = _portpack(job, reader, counted)
        return UnpackResult(job.prefix, script, [pkg.dist for _, pkg in linked], job.wheels)
    raise AssertionError("unreachable")  # pragma: no cover


def _update_state(job: _Job) -> PrefixState | None:
    """The environment ``--update`` updates; None: none is there, a plain unpack."""
    if not job.update:
        return None
    from portpack.install.prefix_state import read_prefix  # only for --update

    return read_prefix(job.prefix)


def _update(
    job: _Job,
    archive: str | os.PathLike[str] | BinaryIO,
    stack: ExitStack,
    state: PrefixState,
) -> UnpackResult:
    from portpack.unpacker.update import run

    # Byte ranges from a URL, layers from a registry, seeks in a file: the segments only.
    meta, source = open_segment_source(archive, stack, job.source, job.reporter)
    stack.callback(job.reporter.on_transfer_complete)
    job.reporter.on_transfer_start("Updating", *_totals(meta), lambda: source.bytes_read)
    linked, script, report = run(job, meta, source, state)
    plan = report.plan
    return UnpackResult(
        job.prefix,
        script,
        [pkg.dist for _, pkg in linked],
        job.wheels,
        updated=True,
        reused=[pkg.dist for record, pkg in linked if record.name in plan.reuse],
        removed=[record.dist for record in plan.changes.removed],
        replaced=list(plan.modified),
        unowned_kept=report.kept,
        unowned_dropped=report.dropped,
        copied_files=report.copied_files,
        hashed_files=plan.hashed_files,
        bytes_read=source.bytes_read,
    )


def _pixi_pack(
    job: _Job, stream: BinaryIO, name: str, counted: _Counted, size: int | None
) -> tuple[Installed, Path]:
    """A pixi-pack archive: platform, glibc and integrity are checked while it streams."""
    from portpack.unpacker import (
        pixipack as pixipack_read,  # only for pixi-pack archives: keeps start-up short
    )

    target = staging.check_target(job.prefix, job.force)
    job.created.make(job.out)
    job.reporter.on_transfer_start("Unpacking", None, size, counted.position)
    prefix = str(job.prefix)
    hook = finish.pixi_pack_wheels(prefix, job.reporter, job.wheels)

    def install(dest: Destination) -> Installed:
        records = pixipack_read.install(
            stream,
            name,
            dest,
            prefix,
            strict=job.strict,
            reporter=job.reporter,
            wheel_installer=hook,
        )
        # pixipack returns its records as JSON: typed here, at the boundary.
        return [
            (PackageRecord.from_json(record, f"{name}, the record of {pkg.dist}"), pkg)
            for record, pkg in records
        ]

    return _build(job, name, target, install)


def _portpack(job: _Job, reader: ArchiveReader, counted: _Counted) -> tuple[Installed, Path]:
    """A portpack archive: everything is checked against its metadata before a byte is written."""
    target = staging.check_target(job.prefix, job.force)
    preconditions.check_all(reader.metadata, str(job.prefix), str(job.out))
    finish.check_wheels(reader.metadata, reader.name)
    job.created.make(job.out)
    job.reporter.on_transfer_start("Unpacking", *_totals(reader.metadata), counted.position)
    return _build(job, reader.name, target, lambda dest: _install_all(reader, dest, job))


def _build(
    job: _Job, name: str, target: staging.Target, install: Callable[[Destination], Installed]
) -> tuple[Installed, Path]:
    """Install into the staging directory and write conda-meta; once it is in place, run
    link scripts and write the activation script."""

    def fill(dest: Destination) -> Installed:
        linked = install(dest)
        finish.write_conda_meta(dest, linked, name, job.prefix)
        return linked

    def placed(linked: Installed) -> Path:
        if job.run_link_scripts:
            finish.run_link_scripts(job.prefix, [record for record, _ in linked])
        return finish.write_activation(job.out, job.prefix, job.shell)

    linked, script = staging.build(target, WRITER_THREADS, fill, placed)
    finish.write_stat_index(job.prefix, linked, job.reporter)
    return linked, script


class _Counted:
    """A stream that counts the bytes read from it (for the progress display)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0
        self.name = getattr(stream, "name", "<stream>")

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.count += len(data)
        return data

    def position(self) -> int:
        return self.count


def _totals(meta: fmt.Metadata) -> tuple[int, int]:
    """Packages and wheels of a portpack archive, and its bytes (from its metadata)."""
    sizes = [e.info.zst_size + e.payload.zst_size for e in meta.packages]
    sizes += [w.zst_size for w in meta.wheels]
    return len(sizes), sum(sizes)


def _size_of(archive: str | os.PathLike[str] | BinaryIO) -> int | None:
    """The size of an archive file, None for a pipe, a stream or a folder."""
    if not isinstance(archive, (str, os.PathLike)):
        return None
    try:
        info = os.stat(archive)
    except OSError:
        return None
    return info.st_size if S_ISREG(info.st_mode) else None


def _check_env_name(env_name: str) -> None:
    if not env_name or "/" in env_name or env_name in (".", "..") or "\0" in env_name:
        raise UsageError(f"invalid environment name {env_name!r}")


def _open(archive: str | os.PathLike[str] | BinaryIO, stack: ExitStack) -> tuple[BinaryIO, str]:
    """The archive's stream, past the sh header and bootstrap of a self-extracting file."""
    stream, name = _open_raw(archive, stack)
    return skip_header(stream, name), name


def _open_raw(archive: str | os.PathLike[str] | BinaryIO, stack: ExitStack) -> tuple[BinaryIO, str]:
    if isinstance(archive, (str, os.PathLike)):
        if is_archive_directory(archive):  # written by pack --directory-only
            return stack.enter_context(open_directory(archive)), str(archive)
        try:
            return stack.enter_context(open(archive, "rb", buffering=0)), str(archive)
        except OSError as exc:
            raise UsageError(f"cannot open archive {archive}: {exc.strerror or exc}") from exc
    name = getattr(archive, "name", None)
    return archive, name if isinstance(name, str) else "<stream>"


def _install_all(reader: ArchiveReader, dest: Destination, job: _Job) -> Installed:
    """The package loop: each package's info and payload as the reader yields them.

    Moved, not changed: ``benchmarks/bench_hot.py`` (``unpack``) times the whole
    unpack, whose per-file work is in the reader and ``link_package``.
    """
    prefix = str(job.prefix)
    ctx = LinkContext(
        destination=dest,
        prefix=prefix,
        python=finish.python_info(reader.metadata),
        warn=job.reporter.warning,
        strict=job.strict,
    )
    linked: Installed = []
    total = len(reader.metadata.packages)
    reporter = job.reporter
    for index, (entry, info_tar, payload) in enumerate(reader.packages()):
        reporter.on_package_start(entry.name, index, total)
        info = read_info(info_tar, entry.dist)
        linked.append((entry.record, link_package(ctx, entry.dist, info, payload)))
        payload.close()
        reporter.on_package_complete(entry.name)
    if reader.metadata.wheels and ctx.python is not None:
        finish.install_wheels(
            reader.wheels(), len(reader.metadata.wheels), reader.name, dest, prefix,
            ctx.python, reporter, job.wheels,
        )  # fmt: skip
    return linked
