"""``unpack``: stream an archive into a new environment (standard library + zstandard).

The environment is built in a hidden sibling directory with the final prefix
already written into every placeholder, then renamed into place, so an error or
an interrupt never leaves a prefix that looks complete.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from portpack import outside
from portpack.archive import format as fmt
from portpack.archive.directory import is_archive_directory, open_directory
from portpack.archive.reader import ArchiveReader
from portpack.archive.sfx import skip_header
from portpack.conda.info import read_info
from portpack.conda.record import PackageRecord
from portpack.conda.tarstream import looks_like_tar, sniff
from portpack.errors import ArchiveError, InstallError, UsageError
from portpack.install.activation import (
    DEFAULT_SHELL,
    SHELLS,
    activation_script,
    normalize_shell,
    script_name,
)
from portpack.install.condameta import write_records
from portpack.install.destination import Destination
from portpack.install.linker import LinkContext, LinkedPackage, link_package
from portpack.install.noarch import PythonInfo
from portpack.progress import Reporter
from portpack.unpacker import preconditions

if TYPE_CHECKING:
    from portpack.unpacker import pixipack as pixipack_read

STAGING_MARK = outside.MARK
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
) -> UnpackResult:
    """Unpack ``archive`` (a path or a binary stream, read front to back) into
    ``output_dir/env_name`` and write the activation script for ``shell`` into
    ``output_dir`` (``activate.sh`` for bash and zsh).

    ``archive`` is a portpack archive, a self-extracting one, a folder written by
    ``pack --directory-only`` or a pixi-pack archive (a plain tar). The path ``-`` is
    a file named ``-``: the command line reads standard input itself and passes a stream.
    Raises a :class:`~portpack.errors.PortpackError` subclass on any failure, and
    then leaves no partial environment behind.
    """
    reporter = reporter or Reporter()
    _check_env_name(env_name)
    shell = normalize_shell(shell)
    out = Path(os.path.abspath(output_dir))
    outside.check_directory(out)
    created = outside.CreatedDirs()  # removed again (if still empty) when the unpack fails
    try:
        return _unpack(
            archive, out, env_name, force, run_link_scripts, strict, shell, reporter, created
        )
    except BaseException:
        created.remove()
        raise


def _unpack(
    archive: str | os.PathLike[str] | BinaryIO,
    out: Path,
    env_name: str,
    force: bool,
    run_link_scripts: bool,
    strict: bool,
    shell: str,
    reporter: Reporter,
    created: outside.CreatedDirs,
) -> UnpackResult:
    prefix = out / env_name
    wheels: list[str] = []
    with ExitStack() as stack:
        stream, name = _open(archive, stack)
        counted = _Counted(stream)
        stream, head = sniff(cast(BinaryIO, counted))
        stack.callback(reporter.on_transfer_complete)
        if looks_like_tar(head):
            from portpack.unpacker import (
                pixipack as pixipack_read,  # only for pixi-pack archives: keeps start-up short
            )

            # pixi-pack: platform, glibc and integrity are checked while it streams.
            target = _check_target(prefix, force)
            created.make(out)
            reporter.on_transfer_start("Unpacking", None, _size_of(archive), counted.position)
            linked, script = _build(
                out,
                env_name,
                name,
                target,
                _Finish(run_link_scripts, shell),
                lambda dest: _typed(
                    pixipack_read.install(
                        stream,
                        name,
                        dest,
                        str(prefix),
                        strict=strict,
                        reporter=reporter,
                        wheel_installer=_pixi_pack_wheels(str(prefix), reporter, wheels),
                    ),
                    name,
                ),
            )
        else:
            reader = ArchiveReader(stream, name)
            stack.callback(reader.close)
            target = _check_target(prefix, force)
            preconditions.check_all(reader.metadata, str(prefix), str(out))
            _check_wheels(reader.metadata, name)
            created.make(out)
            reporter.on_transfer_start("Unpacking", *_totals(reader.metadata), counted.position)
            linked, script = _build(
                out,
                env_name,
                name,
                target,
                _Finish(run_link_scripts, shell),
                lambda dest: _install_all(reader, dest, str(prefix), strict, reporter, wheels),
            )
        return UnpackResult(prefix, script, [pkg.dist for _, pkg in linked], wheels)
    raise AssertionError("unreachable")  # pragma: no cover


Installed = list[tuple[PackageRecord, LinkedPackage]]


def _typed(records: list[tuple[dict[str, Any], LinkedPackage]], name: str) -> Installed:
    """pixipack returns its records as JSON: typed here, at the boundary."""
    return [
        (PackageRecord.from_json(record, f"{name}, the record of {pkg.dist}"), pkg)
        for record, pkg in records
    ]


@dataclass
class _Target:
    """What was at the prefix when the unpack checked it: the final move replaces only that."""

    path: Path
    kind: str
    """``"absent"``, ``"empty"`` (an empty directory) or ``"environment"`` (with --force)."""
    stat: os.stat_result | None = None


@dataclass
class _Finish:
    """What happens once the environment is in place, before the old one is removed."""

    run_link_scripts: bool
    shell: str


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


def _build(
    out: Path,
    env_name: str,
    name: str,
    target: _Target,
    finish: _Finish,
    install: Callable[[Destination], Installed],
) -> tuple[Installed, Path]:
    """Install into a hidden staging directory, write conda-meta, move into place, then
    run link scripts and write the activation script; any failure puts back what was there.
    """
    prefix = out / env_name
    remove_stale_staging(out, env_name)
    staging: Path | None = None
    dest: Destination | None = None
    placed: os.stat_result | None = None
    try:  # from the moment the staging directory exists: an interrupt must remove it
        staging = outside.make_private_dir(out, env_name)
        staging.chmod(0o777 & ~_umask())
        dest = Destination(str(staging), threads=WRITER_THREADS)
        linked = install(dest)
        write_records(dest, linked, f"portpack unpack {name}")
        dest.close()
        staged = os.lstat(staging)
        _move_into_place(staging, target)
        placed = staged
        if finish.run_link_scripts:
            _run_link_scripts(prefix, [record for record, _ in linked])
        script = _write_activation(out, prefix, finish.shell)
    except BaseException:
        if dest is not None:
            dest.abort()
        if staging is None:  # interrupted between its mkdir and the assignment
            outside.remove_own_private_dirs(out, env_name)
        else:
            if placed is not None:
                _move_back(staging, target, placed)
            outside.remove_tree(staging)
        raise
    outside.remove_tree(staging)  # the replaced environment (--force), if any
    return linked, script


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def _check_target(prefix: Path, force: bool) -> _Target:
    try:
        st = os.lstat(prefix)
    except FileNotFoundError:
        return _Target(prefix, "absent")
    except OSError as exc:
        raise outside.output_error(exc, prefix, "cannot look at") from None
    if stat.S_ISDIR(st.st_mode) and not _has_entries(prefix):
        return _Target(prefix, "empty", st)  # replaced when the environment is complete
    if not force:
        raise UsageError(
            f"{prefix} already exists and is not empty",
            hint="Use --force to replace it, or choose another --output-directory/--env-name.",
        )
    if not preconditions.prefix_is_environment(str(prefix)):
        raise UsageError(f"refusing to replace {prefix}: it is not a conda environment")
    return _Target(prefix, "environment", st)


def _has_entries(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except OSError as exc:
        raise outside.output_error(exc, path, "cannot read the directory") from None


def remove_stale_staging(out: Path, env_name: str) -> None:
    """Remove staging directories left by killed runs (their process is gone)."""
    for stem in (env_name, *(script_name(shell) for shell in SHELLS)):
        for path in out.glob(f".{stem}{STAGING_MARK}*"):
            pid = path.name[len(stem) + 1 + len(STAGING_MARK) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                if path.is_dir() and not path.is_symlink():
                    outside.remove_tree(path)
                else:
                    path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _python_info(meta: fmt.Metadata) -> PythonInfo | None:
    for entry in meta.packages:
        if entry.name == "python":
            return PythonInfo.from_record(entry.record)
    return None


def _install_all(
    reader: ArchiveReader,
    dest: Destination,
    prefix: str,
    strict: bool,
    reporter: Reporter,
    wheels: list[str],
) -> Installed:
    ctx = LinkContext(
        destination=dest,
        prefix=prefix,
        python=_python_info(reader.metadata),
        warn=reporter.warning,
        strict=strict,
    )
    linked = []
    total = len(reader.metadata.packages)
    for index, (entry, info_tar, payload) in enumerate(reader.packages()):
        reporter.on_package_start(entry.name, index, total)
        info = read_info(info_tar, entry.dist)
        linked.append((entry.record, link_package(ctx, entry.dist, info, payload)))
        payload.close()
        reporter.on_package_complete(entry.name)
    if reader.metadata.wheels and ctx.python is not None:
        _install_wheels(reader, dest, prefix, ctx.python, reporter, wheels)
    return linked


def _check_wheels(meta: fmt.Metadata, name: str) -> None:
    """Wheels need the environment's python and the ``installer`` library."""
    if not meta.wheels:
        return
    filenames = ", ".join(w.filename for w in meta.wheels)
    if _python_info(meta) is None:
        raise ArchiveError(
            f"{name} holds PyPI wheels ({filenames}) but no python package to install them into"
        )
    _require_installer(filenames)


def _require_installer(filenames: str) -> None:
    try:
        import installer.destinations  # noqa: F401 (only checks that it can be imported)
    except ImportError as exc:
        raise InstallError(
            f"installing the PyPI wheels {filenames} needs the 'installer' library, "
            f"which cannot be imported ({exc})",
            hint="Install it next to portpack (pip install installer), or unpack with a "
            "self-extracting archive (portpack pack --create-executable).",
        ) from None


def _install_wheels(
    reader: ArchiveReader,
    dest: Destination,
    prefix: str,
    python: PythonInfo,
    reporter: Reporter,
    wheels: list[str],
) -> None:
    """Install the archive's wheels, after every package (their python is in place)."""
    from portpack.install.wheels import WheelInstaller

    installer = WheelInstaller(dest, prefix, python, reporter.warning)
    total = len(reader.metadata.wheels)
    try:
        for index, (entry, stream) in enumerate(reader.wheels()):
            reporter.on_package_start(entry.name, index, total)
            installer.from_stream(entry, stream, reader.name)
            wheels.append(entry.filename)
            reporter.on_package_complete(entry.name)
    finally:
        installer.close()


def _pixi_pack_wheels(
    prefix: str, reporter: Reporter, wheels: list[str]
) -> pixipack_read.WheelInstaller:
    """The hook :mod:`portpack.unpacker.pixipack` installs ``pypi/*.whl`` with."""

    def install(path: Path, ctx: LinkContext) -> None:
        if ctx.python is None:
            raise ArchiveError(
                f"the archive holds the PyPI wheel {path.name} but no python package to "
                "install it into"
            )
        _require_installer(path.name)
        from portpack.install.wheels import WheelInstaller

        # pixi-pack records no hash of its wheels: the wheel's own RECORD is checked.
        WheelInstaller(ctx.destination, prefix, ctx.python, reporter.warning).install(
            path, verified=False
        )
        wheels.append(path.name)

    return install


def _move_into_place(staging: Path, target: _Target) -> None:
    """Move the complete environment to the prefix, replacing only what was checked.

    Afterwards ``staging`` holds the replaced environment (--force), or nothing.
    """
    prefix = target.path
    try:
        if target.kind == "environment":
            assert target.stat is not None
            outside.exchange(staging, prefix)
            if not outside.same_file(staging, target.stat):
                outside.exchange(staging, prefix)  # put back what we did not check
                raise _changed(prefix, "was replaced by something else")
            return
        if target.kind == "empty":
            assert target.stat is not None
            if not outside.same_file(prefix, target.stat):
                raise _changed(prefix, "was replaced by something else")
            try:
                os.rmdir(prefix)
            except OSError:
                raise _changed(prefix, "is no longer empty") from None
        outside.rename_noreplace(staging, prefix)
    except FileExistsError:
        raise _changed(prefix, "appeared") from None
    except OSError as exc:
        raise outside.output_error(exc, prefix, "cannot move the environment to") from None


def _changed(prefix: Path, what: str) -> UsageError:
    return UsageError(
        f"{prefix} {what} while the environment was being unpacked; it was left as it is",
        hint="Nothing was replaced. Run again (with --force to replace an environment).",
    )


def _move_back(staging: Path, target: _Target, placed: os.stat_result) -> None:
    """Undo :func:`_move_into_place` (a link script or the activation script failed)."""
    prefix = target.path
    if not outside.same_file(prefix, placed):
        return  # not ours any more: leave it
    try:
        if target.kind == "environment":
            outside.exchange(prefix, staging)  # the old environment back; ours to remove
            return
        outside.rename_noreplace(prefix, staging)
        if target.kind == "empty":
            os.mkdir(prefix)
    except OSError:
        pass  # the error being raised says what failed; this is best effort


def _write_activation(out: Path, prefix: Path, shell: str = DEFAULT_SHELL) -> Path:
    return outside.write_text(out / script_name(shell), activation_script(str(prefix), shell))


def _run_link_scripts(prefix: Path, records: list[PackageRecord]) -> None:
    """Run ``bin/.<name>-post-link.sh`` of each package, as conda does (opt-in)."""
    for record in records:
        name = record.name
        script = prefix / "bin" / f".{name}-post-link.sh"
        if not script.is_file():
            continue
        env = dict(os.environ)
        env.update(
            PREFIX=str(prefix),
            PKG_NAME=name,
            PKG_VERSION=record.version,
            PKG_BUILDNUM=str(record.build_number),
            PATH=f"{prefix}/bin:{env.get('PATH', '')}",
        )
        import subprocess  # only for --run-link-scripts: keeps start-up short

        result = subprocess.run(
            ["/bin/sh" if not _which("bash") else "bash", str(script)],
            cwd=prefix / "bin",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            raise InstallError(
                f"the post-link script of package {record.dist} failed "
                f"(exit {result.returncode}): {result.stderr.strip()[-2000:]}",
                hint="The new environment was removed and what was at its place before "
                "was kept. Unpack without --run-link-scripts to skip the script.",
            )


# shutil and tempfile are imported only where used: together they cost unpack's
# start-up a dozen modules (zlib, bz2, lzma, random, ...) on a cold page cache.


def _which(command: str) -> str | None:
    import shutil

    return shutil.which(command)
