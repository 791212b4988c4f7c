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

Wall and CPU (user + system) time are medians over ``--runs`` (on a shared machine CPU
time is the steadier of the two); peak RSS is the child's (GNU time's ``%M`` when
installed, else ``os.wait4``); peak extra disk is what the child wrote outside the
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
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))  # for corpus.py

GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None

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


@dataclass
class Sample:
    wall: float
    cpu: float
    """User + system seconds of the child (steadier than wall time on a busy machine)."""
    rss_mb: float
    extra_disk: int


def measure(command: list[str]) -> tuple[Sample, str]:
    """Run ``command``; its wall and CPU time, peak RSS and standard output.

    Peak RSS and CPU time come from GNU time when installed (a child forked from this
    process would inherit its RSS as a floor), else from ``os.wait4``.
    """
    with tempfile.NamedTemporaryFile("r") as stats, tempfile.TemporaryFile() as out:
        wrapped = [GNU_TIME, "-f", "%M %U %S", "-o", stats.name, *command] if GNU_TIME else command
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            raise RuntimeError(f"{command[:3]} failed (exit {os.waitstatus_to_exitcode(status)})")
        rss_kb, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        if GNU_TIME:
            fields = stats.read().split()[-3:]
            rss_kb, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
        out.seek(0)
        return Sample(wall, cpu, rss_kb / 1024, 0), out.read().decode()


def run_once(mode: str, source: str, work: Path) -> Sample:
    out = Path(tempfile.mkdtemp(dir=work, prefix=f"{mode}-"))
    scratch = out / "scratch"
    scratch.mkdir()
    try:
        sample, stdout = measure(
            [sys.executable, "-c", _CHILD, mode, source, str(out), str(scratch)]
        )
        sample.extra_disk = int(json.loads(stdout.strip().splitlines()[-1])["extra_disk"])
        if not (out / "env" / "conda-meta").is_dir():
            raise RuntimeError(f"{mode}: no environment was made")
    finally:
        shutil.rmtree(out)
    return sample


def table(results: dict[str, list[Sample]], size: int) -> str:
    streamed = results["streamed"]
    base_wall = statistics.median(s.wall for s in streamed)
    base_cpu = statistics.median(s.cpu for s in streamed)
    base_rss = max(s.rss_mb for s in streamed)
    lines = [
        f"archive: {size / 1e6:.1f} MB, {len(streamed)} runs each (medians; max peak RSS)",
        "",
        "| variant | wall (s) | min-max (s) | CPU (s) | peak RSS (MB) | peak extra disk (MB) "
        "| streamed / this: wall | CPU | RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, samples in results.items():
        walls = [s.wall for s in samples]
        wall, cpu = statistics.median(walls), statistics.median(s.cpu for s in samples)
        rss, disk = max(s.rss_mb for s in samples), max(s.extra_disk for s in samples)
        lines.append(
            f"| {MODES[mode]} | {wall:.2f} | {min(walls):.2f}-{max(walls):.2f} | {cpu:.2f} "
            f"| {rss:.0f} | {disk / 1e6:.1f} | {base_wall / wall:.2f} | {base_cpu / cpu:.2f} "
            f"| {base_rss / rss:.2f} |"
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
    results: dict[str, list[Sample]] = {mode: [] for mode in MODES}
    try:
        for run in range(args.runs):
            order = list(MODES) if run % 2 == 0 else list(reversed(MODES))
            for mode in order:
                source = str(archive) if mode == "local" else url
                results[mode].append(run_once(mode, source, work))
                last = results[mode][-1]
                print(f"run {run + 1} {mode}: {last.wall:.2f} s, CPU {last.cpu:.2f} s", flush=True)
    finally:
        server.close()
    print()
    print(table(results, archive.stat().st_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
