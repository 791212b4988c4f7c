"""Installing PyPI wheels into the environment being built, with pypa's ``installer``.

Imported only for archives that hold wheels: the rest of the unpack path needs the
standard library and zstandard only.  ``installer`` reads the wheel, places its
files by scheme, writes console-script launchers and the ``RECORD``; every file
goes through the staging :class:`~portpack.install.destination.Destination`, so a wheel can
neither write outside the environment or through a symlink, nor replace a file a
conda package (or another wheel) installed.  Launchers and ``#!python`` scripts get
the *final* prefix's interpreter (installer falls back to a ``/bin/sh`` trampoline
for paths longer than a kernel shebang allows or with spaces); ``.dist-info`` gets
``INSTALLER`` (``portpack``) as pip's does.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.records import Hash, RecordEntry
from installer.sources import WheelFile

from portpack.archive import format as fmt
from portpack.conda.tarstream import ChunkReader
from portpack.errors import ArchiveError, InstallError, PackageError, PortpackError
from portpack.install.destination import Destination
from portpack.install.noarch import PythonInfo
from portpack.paths import RelPath, join, safe_relpath

#: The ``INSTALLER`` file of every wheel portpack installs.
INSTALLER_NAME = "portpack"
_CHUNK = 1 << 20


@dataclass
class InstalledWheel:
    """A wheel installed into the environment."""

    filename: str
    files: list[str]
    """Paths written, relative to the prefix."""


class _StagingDestination(SchemeDictionaryDestination):
    """installer's scheme destination, writing through portpack's :class:`Destination`."""

    def __init__(
        self, dest: Destination, schemes: dict[str, RelPath | None], interpreter: str, what: str
    ) -> None:
        super().__init__(
            scheme_dict={k: f"{dest.root}/{v or ''}".rstrip("/") for k, v in schemes.items()},
            interpreter=interpreter,
            script_kind="posix",
        )
        self.dest = dest
        self.schemes = schemes
        self.what = what
        self.written: list[str] = []

    def write_to_fs(
        self, scheme: str, path: str, stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        base = self.schemes[scheme]
        # A RECORD path goes through the path check, joined to its scheme's directory.
        inner = safe_relpath(path, self.what)  # the error names the RECORD path as given
        rel = join(base, inner, self.what) if base else inner
        if self.dest.exists(rel):
            raise InstallError(
                f"{self.what}: {rel} is already in the environment (installed by a conda "
                "package or another wheel)",
                hint="A project must come either from conda or from PyPI: remove it from "
                "one of them and lock again.",
            )
        digest = hashlib.sha256()
        size = 0

        def pieces() -> Iterator[bytes]:
            nonlocal size
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        self.dest.write(rel, pieces(), 0o755 if is_executable else 0o644, None, self.what)
        self.written.append(rel)
        value = base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")
        return RecordEntry(path, Hash("sha256", value), size)


def schemes(python: PythonInfo, project: str, what: str) -> dict[str, RelPath | None]:
    """Where each wheel scheme goes, relative to the prefix (a conda python's layout);
    ``None``: the prefix itself."""
    return {
        "purelib": python.site_packages,
        "platlib": python.site_packages,
        "scripts": safe_relpath("bin", what),
        "data": None,
        "headers": safe_relpath(f"include/python{python.version}/{project}", what),
    }


def install_wheel(
    path: Path,
    filename: str,
    dest: Destination,
    prefix: str,
    python: PythonInfo,
    *,
    verified: bool,
    warn: Callable[[str], None],
) -> InstalledWheel:
    """Install the wheel at ``path`` (named ``filename``) into ``dest``, the staging
    directory of ``prefix``.

    ``verified``: the file's sha256 was checked already, so only the names in its
    ``RECORD`` are validated (otherwise every file's hash is, too).
    """
    what = f"wheel {filename}"
    try:
        with zipfile.ZipFile(path) as zf:
            source = WheelFile(zf)  # name and version come from the file's name
            target = _StagingDestination(
                dest,
                schemes(python, source.distribution, what),
                f"{prefix}/{python.interpreter}",
                what,
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                source.validate_record(validate_contents=not verified)
                install(source, target, {"INSTALLER": f"{INSTALLER_NAME}\n".encode()})
    except PortpackError:
        raise
    except (InstallerError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise PackageError(f"{what} cannot be installed: {_reason(exc)}") from exc
    except OSError as exc:
        raise InstallError(f"{what}: {exc.strerror or exc}") from exc
    for warning in caught:
        warn(f"{what}: {warning.message}")
    return InstalledWheel(filename, target.written)


def _reason(exc: BaseException) -> str:
    issues = getattr(exc, "issues", None)
    if isinstance(issues, list) and issues:
        return "; ".join(str(i) for i in issues[:5])
    return str(exc) or type(exc).__name__


class WheelInstaller:
    """Installs the wheels of one unpack, after its conda packages.

    A wheel is a ZIP, which needs random access: each one is spooled to a file in a
    private directory inside the staging directory (never the whole archive),
    hashed while it is spooled, installed and deleted.
    """

    def __init__(
        self, dest: Destination, prefix: str, python: PythonInfo, warn: Callable[[str], None]
    ) -> None:
        self.dest = dest
        self.prefix = prefix
        self.python = python
        self.warn = warn
        self.installed: list[InstalledWheel] = []
        self._spool: Path | None = None

    def from_stream(self, entry: fmt.WheelEntry, stream: ChunkReader, archive: str) -> None:
        """Spool ``entry``'s bytes from ``stream``, check its sha256, install it."""
        path = self._spool_dir() / entry.filename
        digest = hashlib.sha256()
        try:
            with open(path, "wb") as fh:
                for piece in stream.pieces(entry.size):
                    digest.update(piece)
                    fh.write(piece)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise InstallError(f"wheel {entry.filename}: cannot spool it: {exc}") from exc
        try:
            if digest.hexdigest() != entry.sha256:
                raise ArchiveError(
                    f"{archive}: wheel {entry.filename} does not match the sha256 recorded at "
                    f"pack time (got {digest.hexdigest()}, expected {entry.sha256}); "
                    "the archive is corrupt"
                )
            self.install(path, verified=True)
        finally:
            path.unlink(missing_ok=True)

    def install(self, path: Path, *, verified: bool) -> None:
        """Install the wheel file ``path`` (named as the wheel)."""
        self.dest.flush()  # files of conda packages still being written must be on disk
        self.installed.append(
            install_wheel(
                path,
                path.name,
                self.dest,
                self.prefix,
                self.python,
                verified=verified,
                warn=self.warn,
            )
        )

    def _spool_dir(self) -> Path:
        if self._spool is None:
            self._spool = Path(tempfile.mkdtemp(prefix=".portpack-wheels-", dir=self.dest.root))
        return self._spool

    def close(self) -> None:
        """Remove the spool directory."""
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None


__all__ = ["INSTALLER_NAME", "InstalledWheel", "WheelInstaller", "install_wheel", "schemes"]
