"""Helpers of the fetcher tests: locks pointing at a loopback server, channels of
generated packages, seeded chaos, and looking into the package cache."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import portpack
from faultserver import Fault, FaultServer
from portpack.conda.record import PackageRecord
from portpack.resolve.lockfile import read_lock
from support.channel import index_channel
from support.pkgwriter import PackageSpec, write_conda

#: Fixture-channel packages without python: a C library, an activation package, an
#: empty-directory package and a .tar.bz2 one.
SMALL_SPECS = ["hello-c", "actpkg", "emptydir", "oldformat"]
REPO_ROOT = Path(__file__).resolve().parents[1]


class LockTemplate:
    """A lockfile made against one server URL, re-targeted at other servers."""

    def __init__(self, text: str, url: str) -> None:
        self.text = text
        self.url = url

    @classmethod
    def make(cls, channel: Path, specs: list[str], work: Path) -> LockTemplate:
        with FaultServer(channel) as server:
            path = portpack.lock(
                specs, channels=[server.url], platforms=["linux-64"], output=work / "t.lock"
            )
            return cls(path.read_text(), server.url)

    def write(self, path: Path, url: str) -> Path:
        """The lock with every package URL under ``url`` instead."""
        path.write_text(self.text.replace(self.url, url))
        return path

    def records(self, path: Path) -> list[dict[str, Any]]:
        return [r.to_json() for r in read_lock(path, "default", "linux-64").records]


def typed(records: Sequence[dict[str, Any]]) -> list[PackageRecord]:
    """Lock records (dicts, which tests edit) as the fetcher takes them."""
    return [PackageRecord.from_json(r, "the test's lock") for r in records]


def cache_entries(cache: Path) -> list[Path]:
    """Complete entries of a package cache (no temporary files)."""
    pkgs = cache / "pkgs"
    return sorted(p for p in pkgs.rglob("*") if p.is_file() and not p.name.startswith("."))


def part_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "pkgs").rglob(".*") if p.is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_cache_sound(cache: Path, records: list[dict[str, Any]]) -> None:
    """Every complete entry's content is the locked file its name claims to be."""
    by_digest = {str(r["sha256"])[:16]: r for r in records}
    for entry in cache_entries(cache):
        stem = entry.name.removesuffix(".conda").removesuffix(".tar.bz2")
        record = by_digest[stem.rsplit(".", 1)[1]]
        assert sha256(entry) == record["sha256"], f"{entry} is corrupt"


def build_big_channel(dest: Path, count: int, size: int, seed: int = 1, name: str = "big") -> Path:
    """A channel of ``count`` noarch packages ``<name>-N`` of ``size`` random bytes each
    (the file ``share/<name>/N.bin``, see :func:`payload`)."""
    for index in range(count):
        spec = PackageSpec(
            name=f"{name}-{index}",
            version="1.0",
            files={f"share/{name}/{index}.bin": payload(index, size, seed)},
        )
        write_conda(dest / "noarch", spec, zstd_level=1)
    (dest / "linux-64").mkdir(parents=True, exist_ok=True)
    index_channel(dest)
    return dest


def payload(index: int, size: int, seed: int = 1) -> bytes:
    """The content of package ``index`` of :func:`build_big_channel`."""
    return random.Random(f"{seed}/{index}").randbytes(size)


#: Makes a fault from a seeded random generator (e.g. a cut at a random byte).
FaultMaker = Callable[[random.Random], Fault]


def chaos(seed: int, rate: float, makers: Sequence[FaultMaker]) -> Callable[[str, int], Any]:
    """A :attr:`FaultServer.chooser` failing about ``rate`` of the requests at random.

    The choice depends on the seed, the file name and the attempt only: the same
    requests fail in every run, whatever order the threads send them in.
    """

    def choose(name: str, attempt: int) -> Fault | None:
        rng = random.Random(f"{seed}/{name}/{attempt}")
        if rng.random() >= rate:
            return None
        return rng.choice(makers)(rng)

    return choose


def policy_config(path: Path, **keys: float) -> Path:
    """A ``--config`` file whose ``[portpack]`` table sets these fetch policy keys
    (``retry_backoff=0.05`` is written ``retry-backoff = 0.05``)."""
    lines = ["[portpack]", *(f"{k.replace('_', '-')} = {v!r}" for k, v in keys.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


#: How long :func:`finish` waits for a child (under the tests' timeout markers).
FINISH_TIMEOUT = 60.0


def finish(proc: subprocess.Popen[str], timeout: float = FINISH_TIMEOUT) -> tuple[int, str, str]:
    """Wait for a child started by :func:`run_pack`: ``(status, stdout, stderr)``.

    A child still running after ``timeout`` seconds is a failure that shows where
    each of its threads was: it is sent SIGABRT, on which its faulthandler
    (``PYTHONFAULTHANDLER``, set by :func:`run_pack`) prints every thread's stack.
    The child is killed on the way out whatever happened.
    """
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"the child did not end within {timeout} s:\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def run_pack(lock: Path, out: Path, cache: Path, *extra: str) -> subprocess.Popen[str]:
    """``portpack pack`` in a child process (no proxy, quiet)."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONFAULTHANDLER": "1"}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portpack",
            "pack",
            "-l",
            str(lock),
            "-o",
            str(out),
            "--cache-dir",
            str(cache),
            "-q",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )


def archive_bytes(archive: Path) -> bytes:
    """The whole decompressed archive (metadata, conda-meta records and packages)."""
    import zstandard

    with open(archive, "rb") as fh:
        reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
        return reader.read()
