"""Peak memory of ``portpack unpack`` for one package with very many paths.

    python benchmarks/paths_rss.py                   # 1,000,000 paths
    python benchmarks/paths_rss.py -n 200000 --dir /dev/shm
    python benchmarks/paths_rss.py --portpack /work/main   # another checkout's code

Builds (once, cached under ``--dir``) a ``.conda`` whose ``paths.json`` lists ``-n``
one-byte files in directories of 1,000, with the tests' package writer
(``tests/support/pkgwriter.py``, streaming the payload tar), packs it into a portpack
archive, then runs ``python -m portpack unpack`` in a fresh child process and
reports its wall time and peak RSS (``getrusage`` of the children).  The entries
carry ``_path`` and ``size_in_bytes`` only: with a sha256 each, a million entries
would exceed the 64 MB that portpack allows an ``info/`` tar, and the point here
is the unpacker's cost per path, not per byte.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                      env={**__import__("os").environ, "PYTHONPATH": sys.argv[1]}, cwd="/")
wall = time.perf_counter() - start
if proc.returncode:
    sys.exit(proc.stderr.decode())
print(json.dumps({"wall": wall, "rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _path(i: int) -> str:
    return f"d{i // 1000:04d}/f{i:07d}"


def build_package(out: Path, count: int) -> Path:
    """``many-1.0-0.conda`` with ``count`` paths (streamed, never all in memory)."""
    from support.pkgwriter import Entry, _write_zst_member, _zip_info

    conda = out / "many-1.0-0.conda"
    if conda.exists():
        return conda
    index = {
        "name": "many",
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "depends": [],
        "subdir": "noarch",
        "noarch": "generic",
    }
    paths = [{"_path": _path(i), "size_in_bytes": 1} for i in range(count)]
    paths_json = json.dumps({"paths": paths, "paths_version": 1}, separators=(",", ":"))
    del paths
    info = [
        ("info/index.json", Entry.file(json.dumps(index).encode())),
        ("info/paths.json", Entry.file(paths_json.encode())),
    ]

    def payload() -> Iterator[tuple[str, Entry]]:
        one = Entry.file(b"x")
        for i in range(count):
            yield _path(i), one

    tmp = conda.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        with zf.open(_zip_info("metadata.json"), "w") as member:
            member.write(b'{"conda_pkg_format_version": 2}')
        _write_zst_member(zf, "pkg-many-1.0-0.tar.zst", payload(), 3)
        _write_zst_member(zf, "info-many-1.0-0.tar.zst", info, 3)
    tmp.rename(conda)
    return conda


def build_archive(out: Path, count: int) -> Path:
    from hostile import RawPackage
    from hostile import record as hostile_record
    from portpack.archive import segments as condapkg
    from portpack.archive import writer as archive_writer
    from portpack.packer import packing

    archive = out / "many.tar"
    if archive.exists():
        return archive
    conda = build_package(out, count)

    rec = hostile_record(RawPackage("many", []), conda)
    analyzed = condapkg.analyze(conda, "many")
    meta = packing.build_metadata("linux-64", [rec], [analyzed])
    with open(archive.with_suffix(".tmp"), "wb") as fh:
        archive_writer.write_archive(fh, meta, [analyzed])
    archive.with_suffix(".tmp").rename(archive)
    return archive


def measure(archive: Path, target: Path, code: Path) -> dict[str, float]:
    shutil.rmtree(target, ignore_errors=True)
    argv = [sys.executable, "-m", "portpack", "unpack", str(archive), "-o", str(target), "-q"]
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(code), *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(target, ignore_errors=True)
    if out.returncode:
        sys.exit(f"unpack failed: {out.stderr.strip()}")
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--paths", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/dev/shm/portpack-paths-rss"))
    parser.add_argument("--portpack", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    work = args.dir / str(args.paths)
    work.mkdir(parents=True, exist_ok=True)
    archive = build_archive(work, args.paths)
    for _ in range(args.runs):
        result = measure(archive, work / "target", args.portpack.resolve())
        print(
            f"{args.paths} paths, {args.portpack}: peak RSS {result['rss'] / 1024:.0f} MB, "
            f"{result['wall']:.1f} s"
        )
    os.sync()


if __name__ == "__main__":
    main()
