"""The bootstrap of a self-extracting archive: a CPython runtime, portpack, zstandard.

The bootstrap is a gzip'd tar (see ``docs/self-extracting.md``): the interpreter and
the standard library parts the unpacker imports, from a conda ``python`` package
(:mod:`portpack.packer.bootstrap_python`), portpack's pure-Python modules, and
zstandard's C backend from its manylinux wheel (:mod:`portpack.packer.bootstrap_wheel`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, cast

import zstandard

from portpack._version import __version__
from portpack.archive.segments import AnalyzedPackage
from portpack.conda.record import PackageRecord
from portpack.errors import PackageError, UsageError
from portpack.packer.bootstrap_python import (
    DEFAULT_BOOTSTRAP_SPEC,
    Limited,
    PythonSource,
    environment_python,
    fetch_bootstrap_python,
    record_channels,
)
from portpack.packer.bootstrap_wheel import DEFAULT_WHEEL_INDEX, check_wheel, find_zstandard_wheel

if TYPE_CHECKING:
    from portpack.net.fetch import Fetcher

#: ``uname -m`` of each platform a self-extracting archive can target.
MACHINES = {"linux-64": "x86_64", "linux-aarch64": "aarch64", "linux-ppc64le": "ppc64le"}
BOOTSTRAP_MARKER = ".portpack-bootstrap"
#: Parts of ``lib/pythonX.Y`` the unpacker never imports, left out of the bootstrap.
STDLIB_SKIP_DIRS = frozenset(
    {
        "site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip",
        "lib2to3", "distutils", "pydoc_data", "unittest", "asyncio", "email", "xml", "http",
        "multiprocessing", "ctypes", "sqlite3", "curses", "dbm", "wsgiref", "xmlrpc", "venv",
        "__phello__", "_pyrepl",
    }
)  # fmt: skip
#: Parts of the standard library left out above that pypa's ``installer`` needs, kept
#: when the archive has PyPI wheels to install.
WHEEL_STDLIB_DIRS = frozenset({"email"})
STDLIB_SKIP_FILES = frozenset({"pydoc.py", "turtle.py", "_pydecimal.py", "doctest.py"})
#: Extension modules (by name before the first ``.``) the unpacker never imports.
DYNLOAD_SKIP = re.compile(
    r"^(_test.*|_xx.*|xxlimited.*|_ctypes.*|_tkinter|_curses.*|readline|_sqlite3|_ssl|_decimal"
    r"|pyexpat|_elementtree|audioop|ossaudiodev|nis|spwd|_dbm|_gdbm|_codecs_.*|_asyncio"
    r"|_multiprocessing|_interp.*|_xxinterp.*)$"
)
#: ``libfoo.so``, ``libfoo.so.1.2``: the python package's own libraries in ``lib/``.
_SHARED_LIBRARY = re.compile(r"^lib[^/]*\.so(\.\d+)*$")
_CHUNK = 1 << 20
_GZIP_LEVEL = 6


@dataclass
class Bootstrap:
    """The bootstrap part of a self-extracting archive, in a temporary file."""

    file: IO[bytes]
    size: int
    python: str
    """The interpreter's path inside the bootstrap, e.g. ``bin/python3.11``."""
    python_dist: str
    python_from_environment: bool
    wheel: str
    """File name of the zstandard wheel the C backend came from."""

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Bootstrap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_platform(platform: str) -> str:
    """The ``uname -m`` of ``platform``; raise :class:`UsageError` if it cannot be a target."""
    if platform not in MACHINES:
        raise UsageError(
            f"cannot create a self-extracting archive for {platform}: it runs on "
            f"{', '.join(MACHINES)} only"
        )
    return MACHINES[platform]


def prepare_bootstrap(
    platform: str,
    records: Sequence[PackageRecord],
    packages: Sequence[AnalyzedPackage],
    *,
    fetcher: Fetcher,
    channels: Sequence[str] = (),
    bootstrap_python: str | os.PathLike[str] | None = None,
    zstandard_wheel: str | os.PathLike[str] | None = None,
    wheel_index: str = DEFAULT_WHEEL_INDEX,
    with_wheels: bool = False,
) -> Bootstrap:
    """Choose the bootstrap python, find the matching zstandard wheel, build the bootstrap.

    The environment's own ``python`` is used when it is 3.10 or newer and
    ``bootstrap_python`` is not given; otherwise ``bootstrap_python`` (a ``.conda`` /
    ``.tar.bz2`` file, or a match spec solved from ``channels`` or the lock's channels,
    default ``python >=3.10``) provides one that is used for unpacking only.  Whatever
    is downloaded (that python, the wheel index page, the wheel) goes through
    ``fetcher``: the pack's cache and network settings.
    """
    machine = check_platform(platform)
    python = None if bootstrap_python is not None else environment_python(records, packages)
    if python is None:
        python = fetch_bootstrap_python(
            str(bootstrap_python) if bootstrap_python is not None else DEFAULT_BOOTSTRAP_SPEC,
            platform,
            channels or record_channels(records),
            fetcher,
        )
    wheel = (
        check_wheel(Path(zstandard_wheel), python, machine)
        if zstandard_wheel is not None
        else find_zstandard_wheel(python.abi, machine, fetcher, wheel_index, python.dist)
    )
    return build_bootstrap(python, wheel, with_wheels=with_wheels)


def bootstrap_path(
    path: str,
    version: tuple[int, int],
    package_paths: frozenset[str],
    keep_dirs: frozenset[str] = frozenset(),
) -> str | None:
    """Where a path of the python package goes in the bootstrap (None: left out).

    Kept: ``bin/python*``, the shared libraries directly in ``lib/`` (``libpython``, and
    any other the package ships for its interpreter) and ``lib/pythonX.Y`` without the parts
    the unpacker never imports. A module whose byte code the package ships
    (``__pycache__/M.cpython-XY.pyc``, as conda-forge's python does) goes in as a
    sourceless ``M.pyc`` instead of ``M.py``: nothing is compiled at run time, and the
    byte code is used whatever the files' mtimes.  ``keep_dirs`` names parts of
    ``STDLIB_SKIP_DIRS`` to keep after all.
    """
    parts = PurePosixPath(path).parts
    if not parts:
        return None
    if parts[0] == "bin":
        keep = len(parts) == 2 and parts[1].startswith("python") and "-config" not in parts[1]
        return path if keep else None
    if parts[0] != "lib" or len(parts) < 2:
        return None
    if len(parts) == 2:
        return path if _SHARED_LIBRARY.match(parts[1]) else None
    if not re.fullmatch(rf"python{version[0]}\.{version[1]}t?", parts[1]):
        return None
    rest = parts[2:]
    tag = f"cpython-{version[0]}{version[1]}.pyc"
    target = path
    if "__pycache__" in rest:
        module, _, suffix = rest[-1].partition(".")
        if rest[-2:-1] != ("__pycache__",) or suffix != tag:
            return None
        rest = (*rest[:-2], f"{module}.py")
        if "/".join(parts[:2] + rest) not in package_paths:
            return None
        target = "/".join((*parts[:2], *rest[:-1], f"{module}.pyc"))
    elif rest[-1].endswith((".pyc", ".a", ".o")):
        return None
    elif rest[-1].endswith(".py"):
        cached = (*parts[:2], *rest[:-1], "__pycache__", f"{rest[-1][:-3]}.{tag}")
        if "/".join(cached) in package_paths:
            return None  # its byte code goes in instead
    top = rest[0]
    if (top in STDLIB_SKIP_DIRS and top not in keep_dirs) or top.startswith("config-"):
        return None
    if len(rest) == 1:
        return None if top in STDLIB_SKIP_FILES else target
    if top == "lib-dynload" and DYNLOAD_SKIP.match(rest[-1].split(".", 1)[0]):
        return None
    return target


def _python_members(
    python: PythonSource, keep: frozenset[str] = frozenset()
) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """The bootstrap's members from the python package's payload, renamed, as a stream."""
    package = python.package
    package_paths = frozenset(p.path for p in package.info.paths)
    with open(package.path, "rb") as fh:
        fh.seek(package.payload_range.offset)
        source = Limited(fh, package.payload_range.length)
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast("IO[bytes]", source), read_size=_CHUNK, read_across_frames=True
        )
        included: set[str] = set()
        try:
            with tarfile.open(fileobj=cast("IO[bytes]", reader), mode="r|") as tar:
                for member in tar:
                    name = bootstrap_path(
                        member.name.removeprefix("./"), python.version, package_paths, keep
                    )
                    if name is None:
                        continue
                    member.name = name
                    if member.isreg():
                        included.add(name)
                        yield member, tar.extractfile(member)
                    elif member.issym() or member.isdir():
                        yield member, None
                    elif member.islnk() and member.linkname.removeprefix("./") in included:
                        member.linkname = member.linkname.removeprefix("./")
                        yield member, None
        except (tarfile.TarError, zstandard.ZstdError) as exc:
            raise PackageError(f"package {python.dist}: cannot read its payload: {exc}") from exc


def _portpack_members() -> Iterator[tuple[str, bytes, int]]:
    """portpack's own modules (``site/portpack/**/*.py``)."""
    root = Path(__file__).resolve().parent.parent
    for path in sorted(root.rglob("*.py")):
        yield f"site/portpack/{path.relative_to(root).as_posix()}", path.read_bytes(), 0o644


def _installer_members() -> Iterator[tuple[str, bytes, int]]:
    """pypa's ``installer`` (pure Python) as the packer has it, without Windows launchers."""
    import installer

    root = Path(installer.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        yield f"site/installer/{rel}", path.read_bytes(), 0o644


def _wheel_members(wheel: Path) -> Iterator[tuple[str, bytes, int]]:
    """zstandard's ``__init__.py`` and C backend from ``wheel``."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            backend = [n for n in names if re.fullmatch(r"zstandard/backend_c\..*\.so", n)]
            if "zstandard/__init__.py" not in names or len(backend) != 1:
                raise UsageError(f"{wheel} lacks zstandard/__init__.py or its C backend")
            for name in ("zstandard/__init__.py", backend[0]):
                yield f"site/{name}", zf.read(name), 0o755 if name.endswith(".so") else 0o644
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(f"{wheel} is not a readable wheel: {exc}") from exc


def _tarinfo(
    name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE, mtime: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.type = kind
    info.mtime = mtime
    info.uname = info.gname = ""
    return info


def build_bootstrap(python: PythonSource, wheel: Path, *, with_wheels: bool = False) -> Bootstrap:
    """Write the bootstrap tar.gz into a temporary file.

    ``with_wheels``: the archive has PyPI wheels, so the bootstrap also carries
    ``installer`` and the standard library parts it needs.
    """
    out = tempfile.TemporaryFile(prefix="portpack-bootstrap-")  # noqa: SIM115 (returned)
    interpreters: list[str] = []
    major, minor = python.version
    try:
        with (
            gzip.GzipFile(fileobj=out, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as tar,
        ):
            keep = WHEEL_STDLIB_DIRS if with_wheels else frozenset()
            for member, data in _python_members(python, keep):
                name = member.name.removeprefix("./")
                if name.startswith("bin/"):
                    interpreters.append(name)
                size = member.size if data else 0
                info = _tarinfo(name, size, member.mode, member.type, int(member.mtime))
                info.linkname = member.linkname
                tar.addfile(info, data)
            interpreter = next(
                (
                    f"bin/{exe}"
                    for exe in (f"python{major}.{minor}", f"python{major}.{minor}t", "python3")
                    if f"bin/{exe}" in interpreters
                ),
                None,
            )
            if interpreter is None:
                raise PackageError(f"package {python.dist} has no bin/python{major}.{minor}")
            extra = list(_installer_members()) if with_wheels else []
            for name, content, mode in [*_portpack_members(), *_wheel_members(wheel), *extra]:
                tar.addfile(_tarinfo(name, len(content), mode), io.BytesIO(content))
            about = {"portpack": __version__, "python": python.dist, "zstandard": wheel.name}
            if with_wheels:
                about["installer"] = importlib_metadata.version("installer")
            marker = json.dumps(about, sort_keys=True).encode()
            tar.addfile(_tarinfo(BOOTSTRAP_MARKER, len(marker), 0o644), io.BytesIO(marker))
        size = out.tell()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return Bootstrap(out, size, interpreter, python.dist, python.from_environment, wheel.name)
