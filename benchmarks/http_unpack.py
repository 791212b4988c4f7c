"""Unpack streamed from HTTP against download-then-unpack, on loopback.

    python benchmarks/http_unpack.py                       # default corpus, 3 runs each
    python benchmarks/http_unpack.py --corpus-dir /work/wt/bench-before/benchmarks/.corpus
    PORTPACK_BENCH_CORPUS=/path/to/.corpus python benchmarks/http_unpack.py --runs 5

The archive is ``portpack pack`` of the default corpus (benchmarks/corpus.py; found in
``--corpus-dir``, ``$PORTPACK_BENCH_CORPUS`` or ``benchmarks/.corpus``, built there if
missing), or ``--archive``.  ``tests/faultserver.py`` serves it from its own process
(so the server does not share the client's GIL).  Each run is a fresh child process,
alternating the order:

``streamed``
    ``portpack.remote.http.open_url(url)`` handed to ``portpack.unpack``: the archive
    never touches the disk.
``download, then unpack``
    the same client writes the archive to a file (fsynced: a download is on disk before
    anything unpacks it), then ``portpack.unpack`` reads the file; the file is removed.
``local file``
    ``portpack.unpack`` of the archive already on disk (no network; the floor).

Wall time is the median over ``--runs``; peak RSS is the child's (GNU time's ``%M``
when installed, else ``os.wait4``); peak extra disk is what the child wrote outside the
prefix (the downloaded file).  The page cache is warm: the archive is read by the
server from memory in every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from compare import run_measured  # noqa: E402  (benchmarks/ is not a package)

# argv = [mode, url or path, output dir, scratch dir]; prints {"extra_disk": bytes}.
_CHILD = r"""
import json, os, sys
import portpack
from portpack.remote.http import open_url

mode, source, out, scratch = sys.argv[1:]
extra = 0
if mode == "streamed":
    with open_url(source) as stream:
        portpack.unpack(stream, out, "env")
elif mode == "download":
    path = os.path.join(scratch, "env.tar")
    with open_url(source) as stream, open(path, "wb") as fh:
        while chunk := stream.read(1 << 20):
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    extra = os.path.getsize(path)
    portpack.unpack(path, out, "env")
    os.remove(path)
else:
    portpack.unpack(source, out, "env")
print(json.dumps({"extra_disk": extra}))
"""

MODES = {"streamed": "streamed", "download": "download, then unpack", "local": "local file"}


class Server:
    """``tests/faultserver.py`` serving ``root`` in a child process."""

    def __init__(self, root: Path) -> None:
        cmd = [sys.executable, str(ROOT / "tests" / "faultserver.py"), str(root)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def find_archive(args: argparse.Namespace, work: Path) -> Path:
    """``--archive``, or a pack of the default corpus's lockfile (kept in ``work``)."""
    if args.archive is not None:
        return Path(args.archive)
    corpus_dir = args.corpus_dir or os.environ.get("PORTPACK_BENCH_CORPUS")
    if corpus_dir:
        lockfile = Path(corpus_dir) / "default" / "portpack.lock"
        if not lockfile.is_file():
            sys.exit(f"no default corpus in {corpus_dir} (run benchmarks/corpus.py default)")
    else:
        import corpus as corpus_mod

        lockfile = corpus_mod.load("default", log=print).lockfile
    archive = work / "www" / "env.tar"
    if not archive.is_file():
        import portpack

        archive.parent.mkdir(parents=True, exist_ok=True)
        print(f"packing {lockfile} into {archive}", flush=True)
        portpack.pack(lockfile=lockfile, output=archive, cache_dir=work / "pack-cache")
    return archive


def run_once(mode: str, source: str, work: Path) -> tuple[float, float, int]:
    out = Path(tempfile.mkdtemp(dir=work, prefix=f"{mode}-"))
    scratch = out / "scratch"
    scratch.mkdir()
    try:
        sample, stdout = run_measured(
            [sys.executable, "-c", _CHILD, mode, source, str(out), str(scratch)]
        )
        extra = int(json.loads(stdout.strip().splitlines()[-1])["extra_disk"])
        if not (out / "env" / "conda-meta").is_dir():
            raise RuntimeError(f"{mode}: no environment was made")
    finally:
        shutil.rmtree(out)
    return sample.wall, sample.rss_mb, extra


def table(results: dict[str, list[tuple[float, float, int]]], size: int) -> str:
    streamed = results["streamed"]
    base_wall = statistics.median(s[0] for s in streamed)
    base_rss = max(s[1] for s in streamed)
    lines = [
        f"archive: {size / 1e6:.1f} MB, {len(streamed)} runs each (median wall, max peak RSS)",
        "",
        "| variant | wall (s) | min-max (s) | peak RSS (MB) | peak extra disk (MB) "
        "| streamed / this (wall) | streamed / this (RSS) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, samples in results.items():
        walls = [s[0] for s in samples]
        wall, rss = statistics.median(walls), max(s[1] for s in samples)
        disk = max(s[2] for s in samples)
        lines.append(
            f"| {MODES[mode]} | {wall:.2f} | {min(walls):.2f}-{max(walls):.2f} | {rss:.0f} "
            f"| {disk / 1e6:.1f} | {base_wall / wall:.2f} | {base_rss / rss:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpus-dir", help="a benchmarks/.corpus holding default/")
    parser.add_argument("--archive", help="an archive to serve instead of the corpus's")
    parser.add_argument("--work", type=Path, help="working directory (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="portpack-http-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    archive = find_archive(args, work)
    server = Server(archive.parent)
    url = server.url + archive.name
    results: dict[str, list[tuple[float, float, int]]] = {mode: [] for mode in MODES}
    try:
        for run in range(args.runs):
            order = list(MODES) if run % 2 == 0 else list(reversed(MODES))
            for mode in order:
                source = str(archive) if mode == "local" else url
                results[mode].append(run_once(mode, source, work))
                print(f"run {run + 1} {mode}: {results[mode][-1][0]:.2f} s", flush=True)
    finally:
        server.close()
    print()
    print(table(results, archive.stat().st_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
