"""What completes an environment after its conda packages: PyPI wheels, conda-meta,
the packages' post-link scripts (opt-in) and the activation script."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from portpack import outside
from portpack.archive import format as fmt
from portpack.conda.record import PackageRecord
from portpack.conda.tarstream import ChunkReader
from portpack.errors import ArchiveError, InstallError, PortpackError
from portpack.install import stat_index
from portpack.install.activation import DEFAULT_SHELL, activation_script, script_name
from portpack.install.condameta import write_records
from portpack.install.destination import Destination
from portpack.install.linker import LinkContext, LinkedPackage
from portpack.install.noarch import PythonInfo
from portpack.progress import Reporter

if TYPE_CHECKING:
    from portpack.unpacker import pixipack as pixipack_read

#: Each installed package's record and files, in install order.
Installed = list[tuple[PackageRecord, LinkedPackage]]


def write_conda_meta(
    dest: Destination, linked: Installed, archive_name: str, prefix: Path | None = None
) -> None:
    """The conda-meta records (and history, naming ``prefix``) that make the directory a
    conda environment."""
    write_records(
        dest, linked, f"portpack unpack {archive_name}", None if prefix is None else str(prefix)
    )


def write_stat_index(prefix: Path, linked: Installed, reporter: Reporter) -> None:
    """Record the stat of the installed files for the next ``--update``'s check for
    local changes (:mod:`portpack.install.stat_index`). Without it that check hashes
    every file, so a failure is only a warning."""
    paths = (f.path for _, pkg in linked for f in pkg.files if f.path_type != "directory")
    try:
        stat_index.write(prefix, paths)
    except (OSError, PortpackError) as exc:
        reporter.warning(
            f"cannot write {prefix / stat_index.INDEX_NAME} ({exc}); the next "
            "unpack --update will read every file to look for local changes"
        )


def write_activation(out: Path, prefix: Path, shell: str = DEFAULT_SHELL) -> Path:
    """Write ``out/activate.<shell>`` for the environment at ``prefix``."""
    return outside.write_text(out / script_name(shell), activation_script(str(prefix), shell))


def python_info(meta: fmt.Metadata) -> PythonInfo | None:
    """The python of a portpack archive's environment, if it has one."""
    for entry in meta.packages:
        if entry.name == "python":
            return PythonInfo.from_record(entry.record)
    return None


def check_wheels(meta: fmt.Metadata, name: str) -> None:
    """Wheels need the environment's python and the ``installer`` library."""
    if not meta.wheels:
        return
    filenames = ", ".join(w.filename for w in meta.wheels)
    if python_info(meta) is None:
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


def install_wheels(
    streams: Iterable[tuple[fmt.WheelEntry, ChunkReader]],
    total: int,
    name: str,
    dest: Destination,
    prefix: str,
    python: PythonInfo,
    reporter: Reporter,
    wheels: list[str],
) -> None:
    """Install the archive's wheels (each entry with its decoded bytes, ``total`` of
    them, from archive ``name``), after every package: their python is in place."""
    from portpack.install.wheels import WheelInstaller

    installer = WheelInstaller(dest, prefix, python, reporter.warning)
    try:
        for index, (entry, stream) in enumerate(streams):
            reporter.on_package_start(entry.name, index, total)
            installer.from_stream(entry, stream, name)
            wheels.append(entry.filename)
            reporter.on_package_complete(entry.name)
    finally:
        installer.close()


def pixi_pack_wheels(
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


def run_link_scripts(prefix: Path, records: Sequence[PackageRecord]) -> None:
    """Run ``bin/.<name>-post-link.sh`` of each package, as conda does (opt-in)."""
    for record in records:
        script = prefix / "bin" / f".{record.name}-post-link.sh"
        if script.is_file():
            _run_link_script(prefix, record, script)


def _run_link_script(prefix: Path, record: PackageRecord, script: Path) -> None:
    env = dict(os.environ)
    env.update(
        PREFIX=str(prefix),
        PKG_NAME=record.name,
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
