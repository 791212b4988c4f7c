"""pytest-benchmark benchmarks of the unpacker's hot pieces, on real corpus data.

    python -m pytest benchmarks/bench_hot.py                   # all groups
    python -m pytest benchmarks/bench_hot.py -k extract        # one group

Groups (compare within a group):

``placeholders``
    text replacement in python's ``_sysconfigdata`` module, binary (C-string)
    replacement in ``libzstd.so`` and its static archive, as the linker does them.
``tar-parse``
    walking the member headers of the python package's payload tar (in memory, data
    skipped): ``portpack.conda.tarstream`` against ``tarfile``'s streaming mode, and ``tar
    -t`` on the same tar on disk (a process, page cache warm).
``tar-extract``
    extracting the full standard library payload (~7.7k files, the large corpus's
    python) from its ``.tar.zst`` into a fresh directory: ``portpack.conda.tarstream`` with
    a decompression thread, ``tarfile`` ``r|`` over ``zstandard``, ``tar --zstd -xf``.
    No relocation and no checks in any of them: this isolates tar parsing + writing.
``unpack``
    the whole ``portpack.unpack`` of the default corpus (page cache warm; see
    compare.py for cold runs against the peers, on disk).

Trees are written to a tmpfs (``/dev/shm``, or ``$PORTPACK_BENCH_SCRATCH``): these
benchmarks measure CPU, not the disk.

The corpus is built on first use (see corpus.py); that can take minutes.
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import subprocess
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import corpus as corpus_mod
import pytest
import zstandard

import portpack
from portpack.conda.tarstream import DIRECTORY, SYMLINK, ChunkReader, iter_members
from portpack.install.placeholders import replace_binary, replace_text

pytestmark = pytest.mark.timeout(3600)  # the first run builds the corpus
PREFIX = b"/opt/portpack-bench/env"
#: Trees are written here: a tmpfs by default, so that the file system's write-back
#: (and, on VMs, the cost of faulting in reclaimed memory) stays out of CPU-bound
#: micro-benchmarks. compare.py measures real disks with a cold page cache.
SCRATCH_ENV = "PORTPACK_BENCH_SCRATCH"


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """An empty directory on ``$PORTPACK_BENCH_SCRATCH``, /dev/shm or else tmp_path."""
    base = os.environ.get(SCRATCH_ENV) or ("/dev/shm" if os.path.isdir("/dev/shm") else "")
    if not base:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="portpack-bench-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def default_corpus() -> corpus_mod.Corpus:
    return corpus_mod.load("default", log=print)


def _package(corpus: corpus_mod.Corpus, name: str) -> Path:
    return next(p for p in corpus.packages if p.name.startswith(f"{name}-"))


def _payload_zst(package: Path) -> bytes:
    """The compressed payload tar (``pkg-*.tar.zst``) of a ``.conda``."""
    with zipfile.ZipFile(package) as archive:
        (name,) = (n for n in archive.namelist() if n.startswith("pkg-"))
        return archive.read(name)


# -- placeholders ---------------------------------------------------------------------


@pytest.mark.benchmark(group="placeholders")
def test_replace_text_sysconfigdata(benchmark: Any, default_corpus: corpus_mod.Corpus) -> None:
    python = _package(default_corpus, "python")
    (member,) = (p for p in _paths(python) if "/_sysconfigdata_" in p and p.endswith(".py"))
    data, entry = corpus_mod.payload_member(python, member)
    placeholder = str(entry["prefix_placeholder"]).encode()
    result = benchmark(replace_text, data, placeholder, PREFIX)
    assert placeholder not in result and PREFIX in result


@pytest.mark.benchmark(group="placeholders")
@pytest.mark.parametrize("member", ["lib/libzstd.so.1.5.7", "lib/libzstd.a"])
def test_replace_binary_libzstd(
    benchmark: Any, default_corpus: corpus_mod.Corpus, member: str
) -> None:
    data, entry = corpus_mod.payload_member(_package(default_corpus, "libzstd"), member)
    placeholder = str(entry["prefix_placeholder"]).encode()
    result = benchmark(replace_binary, data, placeholder, PREFIX)
    assert len(result) == len(data) and placeholder not in result and PREFIX in result


def _paths(package: Path) -> list[str]:
    doc = json.loads(corpus_mod.info_member(package, "info/paths.json"))
    return [p["_path"] for p in doc["paths"]]


# -- tar member parsing ---------------------------------------------------------------


@pytest.fixture(scope="session")
def python_tar(default_corpus: corpus_mod.Corpus, tmp_path_factory: Any) -> tuple[bytes, Path]:
    """The python package's decoded payload tar, in memory and on disk."""
    data = (
        zstandard.ZstdDecompressor()
        .stream_reader(
            io.BytesIO(_payload_zst(_package(default_corpus, "python"))), read_across_frames=True
        )
        .read()
    )
    path = tmp_path_factory.mktemp("tar") / "python.tar"
    path.write_bytes(data)
    return data, path


def _members_tarstream(data: bytes) -> int:
    reader = ChunkReader(iter([data]), "bench")
    return sum(1 for _ in iter_members(reader))


def _members_tarfile(data: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        return sum(1 for _ in tar)


@pytest.mark.benchmark(group="tar-parse")
def test_parse_tarstream(benchmark: Any, python_tar: tuple[bytes, Path]) -> None:
    count = benchmark(_members_tarstream, python_tar[0])
    assert count == _members_tarfile(python_tar[0])


@pytest.mark.benchmark(group="tar-parse")
def test_parse_tarfile_stream(benchmark: Any, python_tar: tuple[bytes, Path]) -> None:
    assert benchmark(_members_tarfile, python_tar[0]) > 3000


@pytest.mark.benchmark(group="tar-parse")
def test_parse_tar_t(benchmark: Any, python_tar: tuple[bytes, Path]) -> None:
    def listing() -> int:
        out = subprocess.run(["tar", "-tf", str(python_tar[1])], capture_output=True, check=True)
        return out.stdout.count(b"\n")

    assert benchmark(listing) > 3000


# -- extracting a 7.7k-file tree ------------------------------------------------------


@pytest.fixture(scope="session")
def stdlib_zst(tmp_path_factory: Any) -> Path:
    """The full standard library payload (python package of the large corpus) on disk."""
    package = corpus_mod.python_package(full_stdlib=True)
    path = tmp_path_factory.mktemp("zst") / "python-full.tar.zst"
    path.write_bytes(_payload_zst(package))
    return path


def extract_tarstream(source: Path, dest: Path) -> int:
    """Extract with portpack.conda.tarstream, decompressing in a second thread."""
    chunks: queue.Queue[bytes | None] = queue.Queue(16)

    def produce() -> None:
        with open(source, "rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(
                raw, read_size=1 << 18, read_across_frames=True
            )
            while chunk := reader.read(1 << 20):
                chunks.put(chunk)
        chunks.put(None)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    reader = ChunkReader(iter(chunks.get, None), "bench")
    made = {""}
    count = 0
    root = str(dest)
    for member in iter_members(reader):
        name = member.name.rstrip("/")
        parent = name.rpartition("/")[0]
        if parent not in made:
            os.makedirs(f"{root}/{parent}", exist_ok=True)
            made.add(parent)
        path = f"{root}/{name}"
        if member.type == DIRECTORY:
            os.makedirs(path, exist_ok=True)
            made.add(name)
        elif member.type == SYMLINK:
            os.symlink(member.linkname, path)
        elif member.is_file:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, member.mode & 0o777)
            try:
                for piece in reader.pieces(member.size):
                    os.write(fd, piece)
            finally:
                os.close(fd)
        count += 1
    thread.join()
    return count


def extract_tarfile(source: Path, dest: Path) -> int:
    with open(source, "rb") as raw:
        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            count = 0
            for member in tar:
                tar.extract(member, dest, filter="fully_trusted")
                count += 1
            return count


def extract_tar(source: Path, dest: Path) -> int:
    subprocess.run(["tar", "--zstd", "-xf", str(source), "-C", str(dest)], check=True)
    return sum(len(files) + len(dirs) for _, dirs, files in os.walk(dest))


def _extract_rounds(
    benchmark: Any, extract: Callable[[Path, Path], int], source: Path, base: Path
) -> int:
    counter = iter(range(1_000_000))
    dests: list[Path] = []

    def setup() -> tuple[tuple[Path, Path], dict[str, Any]]:
        for old in dests:
            shutil.rmtree(old, ignore_errors=True)
        dest = base / f"out-{next(counter)}"
        dest.mkdir()
        dests.append(dest)
        return (source, dest), {}

    count: int = benchmark.pedantic(extract, setup=setup, rounds=5, iterations=1)
    files = sum(len(f) for _, _, f in os.walk(dests[-1]))
    for old in dests:
        shutil.rmtree(old, ignore_errors=True)
    assert files > 7000
    return count


@pytest.mark.benchmark(group="tar-extract")
def test_extract_tarstream_thread(benchmark: Any, stdlib_zst: Path, scratch: Path) -> None:
    _extract_rounds(benchmark, extract_tarstream, stdlib_zst, scratch)


@pytest.mark.benchmark(group="tar-extract")
def test_extract_tarfile_stream(benchmark: Any, stdlib_zst: Path, scratch: Path) -> None:
    _extract_rounds(benchmark, extract_tarfile, stdlib_zst, scratch)


@pytest.mark.benchmark(group="tar-extract")
def test_extract_tar_zstd(benchmark: Any, stdlib_zst: Path, scratch: Path) -> None:
    _extract_rounds(benchmark, extract_tar, stdlib_zst, scratch)


# -- the whole unpack -----------------------------------------------------------------


@pytest.fixture(scope="session")
def default_archive(default_corpus: corpus_mod.Corpus, tmp_path_factory: Any) -> Path:
    work = tmp_path_factory.mktemp("archive")
    archive = work / "env.tar"
    portpack.pack(lockfile=default_corpus.lockfile, output=archive, cache_dir=work / "cache")
    return archive


def _unpack_rounds(
    benchmark: Any, archive: Path, base: Path, unpack: Callable[..., Any] = portpack.unpack
) -> None:
    counter = iter(range(1_000_000))
    outs: list[Path] = []

    def setup() -> tuple[tuple[Path, Path], dict[str, Any]]:
        for old in outs:
            shutil.rmtree(old, ignore_errors=True)
        out = base / f"unpack-{next(counter)}"
        outs.append(out)
        return (archive, out), {}

    result = benchmark.pedantic(unpack, setup=setup, rounds=5, iterations=1)
    assert (result.prefix / "bin" / "python").exists()
    for old in outs:
        shutil.rmtree(old, ignore_errors=True)


@pytest.mark.benchmark(group="unpack")
def test_unpack_default_corpus(benchmark: Any, default_archive: Path, scratch: Path) -> None:
    _unpack_rounds(benchmark, default_archive, scratch)


class _Screen(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.benchmark(group="unpack")
def test_unpack_default_corpus_with_progress(
    benchmark: Any, default_archive: Path, scratch: Path
) -> None:
    """The same with the terminal's progress line drawn (into memory), every 0.1 s."""
    from portpack.cli.terminal import TerminalReporter

    def unpack(archive: Path, out: Path) -> portpack.UnpackResult:
        return portpack.unpack(archive, out, reporter=TerminalReporter(stream=_Screen()))

    _unpack_rounds(benchmark, default_archive, scratch, unpack)
