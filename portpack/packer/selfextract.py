"""Self-extracting archives, the pack side: ``portpack pack --create-executable``.

The file is three parts (see ``docs/self-extracting.md``):

1. a POSIX sh header (``sfx_header.sh`` with the offsets filled in, padded to 4 KiB);
2. a gzip'd tar, the *bootstrap*: a CPython runtime taken from a conda ``python``
   package (the environment's own, or one solved for unpacking only), portpack's
   pure-Python modules and zstandard's C backend for that Python, from its wheel;
3. the portpack archive, unchanged (``docs/archive-format.md``).

On the target the header extracts the bootstrap with ``tail | head | gzip | tar`` into
a temporary directory and runs :func:`portpack.cli.unpack.self_extracting_main` with
it, which reads part 3 of the same file in place.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import tarfile
import tempfile
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, cast

import zstandard
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from portpack._version import __version__
from portpack.archive import format as fmt
from portpack.archive.segments import AnalyzedPackage, analyze
from portpack.archive.sfx import MAGIC, SHEBANG
from portpack.errors import FetchError, PackageError, UsageError
from portpack.progress import Reporter

#: Where zstandard wheels come from (a PEP 691 JSON "simple" index).
DEFAULT_WHEEL_INDEX = "https://pypi.org/simple"
#: The python solved for an environment without one (portpack needs 3.10 or newer).
DEFAULT_BOOTSTRAP_SPEC = "python >=3.10"
MIN_PYTHON = (3, 10)
#: ``uname -m`` of each platform a self-extracting archive can target.
MACHINES = {"linux-64": "x86_64", "linux-aarch64": "aarch64", "linux-ppc64le": "ppc64le"}
HEADER_ALIGN = 4096
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
_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class PythonSource:
    """The conda ``python`` package the bootstrap's interpreter comes from."""

    record: dict[str, Any]
    package: AnalyzedPackage
    from_environment: bool

    @property
    def dist(self) -> str:
        r = self.record
        return f"{r['name']}-{r['version']}-{r['build']}"

    @property
    def version(self) -> tuple[int, int]:
        return python_version(self.record)

    @property
    def abi(self) -> str:
        """The CPython ABI tag, ``cp311`` (``cp313t`` for a free-threading build)."""
        for dep in self.record.get("depends", []):
            match = re.match(r"^python_abi\s.*_(cp\d+t?)\s*$", str(dep))
            if match:
                return match.group(1)
        major, minor = self.version
        return f"cp{major}{minor}"


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


def python_version(record: dict[str, Any]) -> tuple[int, int]:
    """``(3, 11)`` for a python record of version ``3.11.7``."""
    match = re.match(r"^(\d+)\.(\d+)", str(record.get("version", "")))
    if not match:
        raise PackageError(f"package python-{record.get('version')}: cannot read its version")
    return int(match.group(1)), int(match.group(2))


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
    records: Sequence[dict[str, Any]],
    packages: Sequence[AnalyzedPackage],
    *,
    cache_dir: Path,
    channels: Sequence[str] = (),
    bootstrap_python: str | os.PathLike[str] | None = None,
    zstandard_wheel: str | os.PathLike[str] | None = None,
    wheel_index: str = DEFAULT_WHEEL_INDEX,
    reporter: Reporter | None = None,
    with_wheels: bool = False,
) -> Bootstrap:
    """Choose the bootstrap python, find the matching zstandard wheel, build the bootstrap.

    The environment's own ``python`` is used when it is 3.10 or newer and
    ``bootstrap_python`` is not given; otherwise ``bootstrap_python`` (a ``.conda`` /
    ``.tar.bz2`` file, or a match spec solved from ``channels`` or the lock's channels,
    default ``python >=3.10``) provides one that is used for unpacking only.
    """
    reporter = reporter or Reporter()
    machine = check_platform(platform)
    python = None if bootstrap_python is not None else environment_python(records, packages)
    if python is None:
        python = fetch_bootstrap_python(
            str(bootstrap_python) if bootstrap_python is not None else DEFAULT_BOOTSTRAP_SPEC,
            platform,
            channels or _record_channels(records),
            cache_dir,
            reporter,
        )
    wheel = (
        check_wheel(Path(zstandard_wheel), python, machine)
        if zstandard_wheel is not None
        else find_zstandard_wheel(python.abi, machine, cache_dir, wheel_index, python.dist)
    )
    return build_bootstrap(python, wheel, with_wheels=with_wheels)


def environment_python(
    records: Sequence[dict[str, Any]], packages: Sequence[AnalyzedPackage]
) -> PythonSource | None:
    """The environment's ``python`` package, if it has one recent enough to run portpack."""
    for record, package in zip(records, packages, strict=True):
        if record.get("name") == "python" and python_version(record) >= MIN_PYTHON:
            return PythonSource(record, package, from_environment=True)
    return None


def _record_channels(records: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        channel = str(record.get("channel") or "")
        if channel:
            seen.setdefault(channel, None)
    return list(seen)


def fetch_bootstrap_python(
    spec_or_file: str, platform: str, channels: Sequence[str], cache_dir: Path, reporter: Reporter
) -> PythonSource:
    """A python package for unpacking only: a local package file, or solved and fetched."""
    path = Path(spec_or_file)
    if spec_or_file.endswith((".conda", ".tar.bz2")):
        if not path.is_file():
            raise UsageError(f"bootstrap python package {path} does not exist")
        return _python_from_file(path, cache_dir)
    if not channels:
        raise UsageError(
            "the environment has no python; give --bootstrap-python FILE (a python .conda) "
            "or channels to solve one from"
        )
    from portpack.net.fetch import Fetcher
    from portpack.resolve.lockfile import records_to_json
    from portpack.resolve.solve import solve

    solved = records_to_json(solve([spec_or_file], channels, platform))
    found = [r for r in solved if r.get("name") == "python"]
    if not found:
        raise UsageError(f"solving {spec_or_file!r} gave no python package")
    record = found[0]
    if python_version(record) < MIN_PYTHON:
        raise UsageError(
            f"the bootstrap python must be 3.10 or newer; {spec_or_file!r} gave {record['version']}"
        )
    (file,) = Fetcher(cache_dir, 1, reporter).fetch_all([record])
    return _analyzed_python(record, file, cache_dir)


def _python_from_file(path: Path, cache_dir: Path) -> PythonSource:
    package = analyze(_as_conda(path, cache_dir), path.name)
    index = _index_json(package, path)
    if index.get("name") != "python":
        raise UsageError(f"{path} is package {index.get('name')!r}, not python")
    if python_version(index) < MIN_PYTHON:
        raise UsageError(
            f"the bootstrap python must be 3.10 or newer; {path} is {index['version']}"
        )
    return PythonSource(index, package, from_environment=False)


def _analyzed_python(record: dict[str, Any], file: Path, cache_dir: Path) -> PythonSource:
    what = f"{record['name']}-{record['version']}-{record['build']}"
    return PythonSource(record, analyze(_as_conda(file, cache_dir), what), from_environment=False)


def _as_conda(path: Path, cache_dir: Path) -> Path:
    from portpack.net.fetch import as_conda

    return as_conda(path, cache_dir, path.name)


def _index_json(package: AnalyzedPackage, path: Path) -> dict[str, Any]:
    """``info/index.json`` of an analyzed package."""
    with open(package.path, "rb") as fh:
        fh.seek(package.info_range.offset)
        data = zstandard.ZstdDecompressor().stream_reader(
            cast("IO[bytes]", _Limited(fh, package.info_range.length))
        )
        with tarfile.open(fileobj=cast("IO[bytes]", data), mode="r|") as tar:
            for member in tar:
                if member.name.removeprefix("./") == "info/index.json":
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        doc = json.loads(extracted.read())
                        if isinstance(doc, dict):
                            return doc
    raise PackageError(f"{path} has no info/index.json")


# -- the zstandard wheel --------------------------------------------------------------------


def _wheel_glibc(platform_tag: str, machine: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag needs, or None if it is not manylinux/``machine``."""
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    base, _, arch = platform_tag.partition(f"_{machine}")
    if arch or not platform_tag.endswith(f"_{machine}"):
        return None
    if base in legacy:
        return legacy[base]
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)", base)
    return (int(match.group(1)), int(match.group(2))) if match else None


def wheel_fits(filename: str, abi: str, machine: str) -> tuple[int, int] | None:
    """The glibc ``filename`` needs if it is a zstandard wheel for ``abi`` and ``machine``."""
    try:
        name, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    if name != "zstandard":
        return None
    needs = [
        glibc
        for tag in tags
        if tag.interpreter == abi.rstrip("t") and tag.abi == abi
        for glibc in [_wheel_glibc(tag.platform, machine)]
        if glibc is not None
    ]
    return min(needs) if needs else None


def check_wheel(path: Path, python: PythonSource, machine: str) -> Path:
    """Accept an explicit wheel only if it matches the bootstrap python and platform."""
    if not path.is_file():
        raise UsageError(f"zstandard wheel {path} does not exist")
    if wheel_fits(path.name, python.abi, machine) is None:
        raise UsageError(
            f"{path.name} is not a zstandard wheel for {python.abi} on manylinux {machine}, "
            f"which the bootstrap python ({python.dist}) needs"
        )
    return path


def find_zstandard_wheel(
    abi: str,
    machine: str,
    cache_dir: Path,
    index: str = DEFAULT_WHEEL_INDEX,
    what: str = "the bootstrap python",
) -> Path:
    """The manylinux zstandard wheel for CPython ``abi`` (``cp311``) on ``machine``.

    The version is the one portpack runs with. Wheels are cached in
    ``cache_dir/wheels`` and downloaded from ``index`` (a PEP 691 JSON simple index)
    when not cached; of several, the one needing the oldest glibc wins.
    """
    version = importlib_metadata.version("zstandard")
    wheels = cache_dir / "wheels"
    cached = sorted(
        (glibc, p)
        for p in wheels.glob(f"zstandard-{version}-*.whl")
        if (glibc := wheel_fits(p.name, abi, machine)) is not None
    )
    if cached:
        return cached[0][1]
    url = index.rstrip("/") + "/zstandard/"
    files = _index_files(url)
    candidates = sorted(
        (glibc, f)
        for f in files
        if str(f.get("filename", "")).startswith(f"zstandard-{version}-")
        if (glibc := wheel_fits(str(f["filename"]), abi, machine)) is not None
    )
    if not candidates:
        raise FetchError(
            f"{url} has no zstandard {version} wheel for {abi} on manylinux {machine} "
            f"(needed by {what})",
            url=url,
            hint="Give one with --zstandard-wheel FILE, or a bootstrap python it has wheels for.",
        )
    chosen = candidates[0][1]
    return _download_wheel(
        urllib.parse.urljoin(url, str(chosen["url"])),
        wheels / str(chosen["filename"]),
        str(dict(chosen.get("hashes") or {}).get("sha256") or ""),
    )


def _index_files(url: str) -> list[dict[str, Any]]:
    import httpx

    try:
        response = httpx.get(
            url, headers={"Accept": _SIMPLE_JSON}, follow_redirects=True, timeout=60.0
        )
    except httpx.HTTPError as exc:
        raise FetchError(f"cannot reach the wheel index {url}: {exc}", url=url) from exc
    if response.status_code != 200:
        raise FetchError(f"the wheel index {url} answered HTTP {response.status_code}", url=url)
    try:
        doc = response.json()
        files = doc["files"]
        if not isinstance(files, list):
            raise TypeError("files is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise FetchError(
            f"the wheel index {url} did not answer in the JSON simple API (PEP 691): {exc}",
            url=url,
        ) from exc
    return [f for f in files if isinstance(f, dict) and "filename" in f and "url" in f]


def _download_wheel(url: str, target: Path, sha256: str) -> Path:
    import httpx

    if not sha256:
        raise FetchError(f"the wheel index gives no sha256 for {url}; refusing it", url=url)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.part-")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
                    if response.status_code != 200:
                        raise FetchError(
                            f"cannot download {target.name}: HTTP {response.status_code}", url=url
                        )
                    for chunk in response.iter_bytes(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except httpx.HTTPError as exc:
                raise FetchError(f"cannot download {target.name}: {exc}", url=url) from exc
        if digest.hexdigest() != sha256.lower():
            raise FetchError(
                f"{target.name} does not match the sha256 the index gives "
                f"({digest.hexdigest()}, expected {sha256})",
                url=url,
            )
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


# -- building the bootstrap -------------------------------------------------------------------


class _Limited:
    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 or n > self.left else n
        data = self._fh.read(n)
        self.left -= len(data)
        return data


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
        source = _Limited(fh, package.payload_range.length)
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


# -- writing the file -------------------------------------------------------------------------


def _template() -> str:
    return resources.files("portpack").joinpath("sfx_header.sh").read_text(encoding="utf-8")


def _safe_comment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 ._,+=:/()-]", "_", text)


def render_header(bootstrap: Bootstrap, metadata: fmt.Metadata, name: str) -> bytes:
    """The sh header, padded to a multiple of 4 KiB, with every offset filled in."""
    python_note = (
        f"{bootstrap.python_dist}, the environment's own python"
        if bootstrap.python_from_environment
        else f"{bootstrap.python_dist} for unpacking only"
    )
    values = {
        "NAME": _safe_comment(name),
        "BOOTSTRAP": _safe_comment(f"{python_note}, portpack {__version__}, {bootstrap.wheel}"),
        "BOOT_SIZE": str(bootstrap.size),
        "SUMMARY": _safe_comment(f"{len(metadata.packages)} packages"),
        "PLATFORM": metadata.platform,
        "VERSION": _safe_comment(__version__),
        "PYTHON": shlex.quote(bootstrap.python),
        "MACHINE": check_platform(metadata.platform),
    }
    template = _template()
    size = HEADER_ALIGN
    while True:
        values.update(
            HEADER_SIZE=str(size),
            BOOT_START=str(size + 1),
            ARCHIVE_OFFSET=str(size + bootstrap.size),
        )
        text = re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], template).encode()
        if len(text) + 2 <= size:
            break
        size += HEADER_ALIGN
    pad = size - len(text)
    header = text + b"".join(b"#" * (min(80, pad - i) - 1) + b"\n" for i in range(0, pad, 80))
    if not header.startswith(SHEBANG + MAGIC):
        raise AssertionError("sfx_header.sh must start with the shebang and magic line")
    return header


def write_self_extracting(
    out: BinaryIO,
    bootstrap: Bootstrap,
    metadata: fmt.Metadata,
    name: str,
    write_archive: Callable[[BinaryIO], None],
) -> None:
    """Write header, bootstrap, then the archive (``write_archive(out)``) to ``out``."""
    out.write(render_header(bootstrap, metadata, name))
    bootstrap.file.seek(0)
    shutil.copyfileobj(bootstrap.file, out, _CHUNK)
    write_archive(out)
