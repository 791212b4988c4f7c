"""Peak memory, time and sizes of a self-extracting archive against ``portpack unpack``.

    python benchmarks/selfextract_rss.py                      # the largest corpus built
    python benchmarks/selfextract_rss.py -l some.lock --wheel zstandard-...whl
    python benchmarks/selfextract_rss.py --synthetic-gb 2    # python + 2 GB of packages

Packs the lock twice (plain archive and ``--create-executable``), then runs
``sh env.sh -o DIR`` and ``portpack unpack env.tar -o DIR`` each in a fresh child
process and reports wall time and peak RSS: the largest resident set of any process
of the run (sh, tail, head, gzip, tar, the bootstrap python), from ``getrusage``.
The corpora come from ``benchmarks/corpus.py``; the zstandard wheel defaults to the
one the tests cached (``.cache/test-fixtures/zstandard-wheel-*``). ``--synthetic-gb``
packs the tests' fixture python and hello-c with packages of incompressible files
(64 MB each) plus many small ones, to show that memory does not grow with size.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "benchmarks" / ".corpus"

_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - start
if proc.returncode:
    sys.exit(proc.stderr.decode())
print(json.dumps({"wall": wall, "rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def measure(argv: list[str]) -> dict[str, float]:
    """Wall time (s) and peak RSS (KiB) of ``argv`` and its descendants."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def default_lock() -> Path:
    for size in ("large", "default"):
        lock = CORPUS / size / "portpack.lock"
        if lock.is_file():
            return lock
    sys.exit("no corpus built: run python benchmarks/corpus.py first, or give --lockfile")


def default_wheel() -> Path:
    found = sorted((ROOT / ".cache" / "test-fixtures").glob("zstandard-wheel-*/out/*.whl"))
    if not found:
        sys.exit("no cached zstandard wheel: run the tests once, or give --wheel")
    return found[-1]


def synthetic_lock(work: Path, gigabytes: float) -> Path:
    """A channel and lock: fixture python + hello-c + ``blob-N`` packages of ~1 GB each."""
    sys.path.insert(0, str(ROOT / "tests"))
    import portpack
    from support.channel import cached_fixture_channel, find_package, index_channel
    from support.pkgwriter import Entry, PackageSpec, write_conda

    channel = work / "channel"
    (channel / "noarch").mkdir(parents=True)
    fixture = cached_fixture_channel()
    for name in ("python", "hello-c"):
        source = find_package(fixture, name)
        (channel / source.parent.name).mkdir(exist_ok=True)
        shutil.copy2(source, channel / source.parent.name / source.name)
    chunk = 64 << 20
    blobs = work / "blobs"
    blobs.mkdir()
    left, index = int(gigabytes * (1 << 30)), 0
    names = []
    while left > 0:
        files: dict[str, Entry | str] = {}
        for n in range(min(16, -(-left // chunk))):
            path = blobs / f"{index}-{n}.bin"
            with open(path, "wb") as fh:
                fh.write(os.urandom(min(chunk, left)))
            left -= min(chunk, left)
            files[f"share/blob{index}/big-{n}.bin"] = Entry.file(path)
        for n in range(2000):
            files[f"share/blob{index}/small/{n // 100}/{n}.txt"] = f"small file {n}\n" * 20
        write_conda(
            channel / "noarch", PackageSpec(f"blob-{index}", "1.0", files=files), zstd_level=1
        )
        names.append(f"blob-{index}")
        index += 1
    shutil.rmtree(blobs)
    index_channel(channel)
    return Path(
        portpack.lock(
            ["python", "hello-c", *names], channels=[str(channel)], output=work / "synthetic.lock"
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-l", "--lockfile", type=Path, default=None)
    parser.add_argument("--synthetic-gb", type=float, default=None)
    parser.add_argument("--wheel", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    wheel = args.wheel or default_wheel()
    import portpack

    with tempfile.TemporaryDirectory(prefix="portpack-sfx-bench-") as tmp:
        work = Path(tmp)
        if args.synthetic_gb:
            lock = synthetic_lock(work, args.synthetic_gb)
        else:
            lock = args.lockfile or default_lock()
        cache = args.cache_dir or (
            work / "pack-cache" if args.synthetic_gb else lock.parent / "pack-cache"
        )
        start = time.perf_counter()
        result = portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=cache)
        pack_tar = time.perf_counter() - start
        start = time.perf_counter()
        portpack.pack(
            lockfile=lock,
            output=work / "env.sh",
            cache_dir=cache,
            create_executable=True,
            zstandard_wheel=wheel,
        )
        pack_sh = time.perf_counter() - start
        from portpack.archive.sfx import MAX_HEADER, archive_offset

        with open(work / "env.sh", "rb") as fh:
            offset = archive_offset(fh.read(MAX_HEADER), "env.sh")
        header = int(
            next(
                line.split("=")[1]
                for line in (work / "env.sh")
                .read_bytes()[:MAX_HEADER]
                .decode("latin-1")
                .splitlines()
                if line.startswith("boot_start=")
            )
        )
        boot = work / "boot"
        boot.mkdir()
        with open(work / "env.sh", "rb") as fh:
            fh.seek(header - 1)
            data = fh.read(offset - header + 1)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(boot, filter="tar")
        boot_bytes = sum(p.lstat().st_size for p in boot.rglob("*") if not p.is_symlink())
        shutil.rmtree(boot)

        sh = measure(["sh", str(work / "env.sh"), "-q", "-o", str(work / "a")])
        plain = measure(
            [sys.executable, "-m", "portpack", "unpack", str(work / "env.tar"), "-q",
             "-o", str(work / "b")]
        )  # fmt: skip
        installed = sum(
            p.lstat().st_size for p in (work / "a" / "env").rglob("*") if not p.is_symlink()
        )
        size = (work / "env.sh").stat().st_size
        rows = [
            ("lockfile", str(lock)),
            ("packages", str(len(result.packages))),
            ("installed environment", f"{installed / 1e6:.1f} MB"),
            ("env.tar (plain archive)", f"{(work / 'env.tar').stat().st_size / 1e6:.1f} MB"),
            ("env.sh", f"{size / 1e6:.1f} MB"),
            ("  header", f"{header - 1} B"),
            ("  bootstrap (tar.gz)", f"{(offset - header + 1) / 1e6:.1f} MB"),
            ("  bootstrap extracted", f"{boot_bytes / 1e6:.1f} MB"),
            ("pack env.tar / env.sh", f"{pack_tar:.1f} s / {pack_sh:.1f} s"),
            ("sh env.sh: wall, peak RSS", f"{sh['wall']:.2f} s, {sh['rss'] / 1024:.0f} MB"),
            (
                "portpack unpack env.tar: wall, peak RSS",
                f"{plain['wall']:.2f} s, {plain['rss'] / 1024:.0f} MB",
            ),
        ]
        for label, value in rows:
            print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()
