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
``registry``
    ``portpack.unpack("oci://127.0.0.1:PORT/bench/env:1")`` from Debian's
    ``docker-registry`` (the CNCF distribution registry, started here the way
    ``tests/support/ociregistry.py`` starts it for the tests): the artifact was pushed
    once before the runs; its layers stream into the prefix, never touching the disk.
``pixi-unpack engine, downloaded``
    what pixi-unpack does with a pixi-pack archive, with rattler's Rust installer:
    the plain tar of ``.conda`` files (as ``benchmarks/compare.py`` makes it) is
    downloaded by the same client and fsynced, untarred to a folder, and
    ``rattler.install`` extracts every package into its cache and links the prefix.
    Its extra disk is the download + the untarred folder + rattler's cache, measured
    at its peak (all three exist together at the end). Python start-up and ``import
    rattler`` are inside its time (the binary does not pay them: about 0.3 s here).
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
import tarfile
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))  # for corpus.py
sys.path.insert(0, str(ROOT / "tests"))  # for support/ociregistry.py

from compare import ext4_image  # noqa: E402

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
elif mode == "registry":
    portpack.unpack(source, out, "env")
else:
    portpack.unpack(source, out, "env")
print(json.dumps({"extra_disk": extra}))
"""

# argv = [url of the pixi-pack tar, lockfile, output dir, scratch dir]: pixi-unpack's way.
_PIXI_CHILD = r"""
import asyncio, json, os, subprocess, sys
import rattler
from portpack.remote.http import open_url

url, lockfile, out, scratch = sys.argv[1:]
path = os.path.join(scratch, "pixi-pack.tar")
with open_url(url) as stream, open(path, "wb") as fh:
    while chunk := stream.read(1 << 20):
        fh.write(chunk)
    fh.flush()
    os.fsync(fh.fileno())
unpacked = os.path.join(scratch, "unpacked")
os.mkdir(unpacked)
subprocess.run(["tar", "-xf", path, "-C", unpacked], check=True)
env = rattler.LockFile.from_path(lockfile).environment("default")
platform = next(p for p in env.platforms() if p.name == "linux-64")
records = env.conda_repodata_records_for_platform(platform)
channel = os.path.join(unpacked, "channel")
for record in records:
    record.url = "file://" + os.path.join(channel, record.subdir, record.file_name)
cache = os.path.join(scratch, "cache")
asyncio.run(rattler.install(
    records, os.path.join(out, "env"), cache_dir=cache, show_progress=False
))
def size(top):
    total = os.path.getsize(top) if os.path.isfile(top) else 0
    for root, dirs, files in os.walk(top):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total
print(json.dumps({"extra_disk": size(path) + size(unpacked) + size(cache)}), flush=True)
os._exit(0)  # py-rattler 0.28 may crash at interpreter exit
"""

MODES = {
    "streamed": "HTTP, streamed",
    "download": "HTTP, download, then unpack",
    "registry": "registry (oci://), streamed",
    "pixi": "pixi-unpack engine, downloaded",
    "local": "local file",
}


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


@dataclass
class Inputs:
    archive: Path
    lockfile: Path | None
    """The corpus's lockfile (None with ``--archive``: no pixi-unpack variant then)."""
    channel: Path | None


def find_inputs(args: argparse.Namespace, work: Path) -> Inputs:
    """``--archive``, or a pack of the default corpus's lockfile (kept in ``work``)."""
    if args.archive is not None:
        return Inputs(Path(args.archive), None, None)
    corpus_dir = args.corpus_dir or os.environ.get("PORTPACK_BENCH_CORPUS")
    if corpus_dir:
        lockfile = Path(corpus_dir) / "default" / "portpack.lock"
        if not lockfile.is_file():
            sys.exit(f"no default corpus in {corpus_dir} (run benchmarks/corpus.py default)")
        channel = lockfile.parent / "channel"
    else:
        import corpus as corpus_mod

        built = corpus_mod.load("default", log=print)
        lockfile, channel = built.lockfile, built.channel
    archive = work / "www" / "env.tar"
    if not archive.is_file():
        import portpack

        archive.parent.mkdir(parents=True, exist_ok=True)
        print(f"packing {lockfile} into {archive}", flush=True)
        portpack.pack(lockfile=lockfile, output=archive, cache_dir=work / "pack-cache")
    pixi_tar = work / "www" / "pixi-pack.tar"
    if not pixi_tar.is_file():
        with tarfile.open(pixi_tar, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(channel, arcname="channel")
    return Inputs(archive, lockfile, channel)


def start_registry(work: Path, archive: Path) -> tuple[object, str]:
    """A ``docker-registry`` on loopback holding the archive as ``bench/env:1``."""
    import portpack
    from support.ociregistry import Registry

    registry = Registry(work / "registry")
    ref = registry.ref("bench/env:1")
    portpack.push(archive, ref)
    return registry, ref


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


def run_once(mode: str, args: list[str], work: Path) -> Sample:
    out = Path(tempfile.mkdtemp(dir=work, prefix=f"{mode}-"))
    scratch = out / "scratch"
    scratch.mkdir()
    child = _PIXI_CHILD if mode == "pixi" else _CHILD
    head = [] if mode == "pixi" else [mode]
    try:
        sample, stdout = measure(
            [sys.executable, "-c", child, *head, *args, str(out), str(scratch)]
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
    parser.add_argument(
        "--out-dir",
        type=Path,
        help="where the environments go (default: a fresh journaled ext4 image, as "
        "compare.py makes it, else the working directory)",
    )
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="portpack-http-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        out_dir = args.out_dir or stack.enter_context(ext4_image(print)) or work
        print(f"environments in {out_dir}")
        return _measure(args, work, out_dir)


def _measure(args: argparse.Namespace, work: Path, out_dir: Path) -> int:
    inputs = find_inputs(args, work)
    archive = inputs.archive
    server = Server(archive.parent)
    registry, ref = start_registry(work, archive)
    sources = {
        "streamed": [server.url + archive.name],
        "download": [server.url + archive.name],
        "registry": [ref],
        "local": [str(archive)],
    }
    if inputs.lockfile is not None:
        sources["pixi"] = [server.url + "pixi-pack.tar", str(inputs.lockfile)]
    modes = [mode for mode in MODES if mode in sources]
    results: dict[str, list[Sample]] = {mode: [] for mode in modes}
    try:
        for run in range(args.runs):
            for mode in modes if run % 2 == 0 else list(reversed(modes)):
                results[mode].append(run_once(mode, sources[mode], out_dir))
                last = results[mode][-1]
                print(f"run {run + 1} {mode}: {last.wall:.2f} s, CPU {last.cpu:.2f} s", flush=True)
    finally:
        server.close()
        registry.stop()  # type: ignore[attr-defined]
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print()
    print(table(results, archive.stat().st_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
