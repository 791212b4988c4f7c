"""portpack unpack against its peers, measured side by side in one run on the same corpus.

    python benchmarks/compare.py                          # default + large, 5 runs each
    python benchmarks/compare.py --sizes default --runs 7

Peers (every one extracts the environment of the same lockfile):

``portpack``
    ``portpack unpack env.tar`` (the CLI: interpreter start-up included, integrity
    checks on).
``pixi-unpack engine``
    what pixi-unpack does, with rattler's Rust installer: untar a plain tar of the
    ``.conda`` files (pixi-pack's archive), then ``rattler.install`` from that local
    channel into a fresh prefix with a cold package cache. Timed inside its child
    process from the untar to the end of the install, so Python's start-up and
    ``import rattler`` (which the pixi-unpack binary does not pay) are left out.
``tar --zstd -xf``
    the limit: a tar of the finished prefix (zstd level 3), no relocation at all, C.
``conda-pack``
    ``conda-pack --format tar.zst`` of the same finished prefix; timed: untar +
    ``conda-unpack`` (run with the environment's python).
``tarfile (naive)``
    a pure-Python streaming extractor (``tarfile`` ``r|`` + ``zstandard``) of the
    prefix tar: no relocation, no checks.

Where the environments go: by default a fresh, journaled ext4 file system made for
this run (an image file under ``benchmarks/.corpus/run``, loop-mounted; needs root,
``mkfs.ext4`` and a loop device, else the disk is used and the report says so).
The machines here have a root file system without a journal, and ext4 without a
journal skips inodes deleted in the last minute when it allocates new ones,
scanning past them (``recently_deleted()`` in the kernel's ialloc.c): since every
run deletes the previous run's prefix, ``perf`` showed tar spending a third of its
time in that scan, 1.3-1.9 s for what takes 0.63 s on a journaled ext4. ``--out-dir``
picks another place (a tmpfs such as ``/dev/shm/pp`` takes the disk out).

Every run starts from a cold page cache (``sync; echo 3 > /proc/sys/vm/drop_caches``,
when permitted: the output says so) in a fresh process; peak RSS comes from
``os.wait4`` (the process and the children it waited for). Peers run interleaved,
in a rotating order, and the table shows medians with the min-max spread.

The pack side is measured too (warm page cache, warm package cache): ``portpack
pack`` against ``zstd -dc`` of every package payload and a plain tar of the
``.conda`` files (what pixi-pack writes).

Results are also saved as JSON in ``benchmarks/.corpus/results/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import corpus as corpus_mod

VENV_BIN = Path(sys.executable).parent
PORTPACK = str(VENV_BIN / "portpack")
CONDA_PACK = str(VENV_BIN / "conda-pack")
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None
TARGETS = {
    "pixi": {"default": 0.7, "large": 1.0},
    "tar": {"default": 1.3, "large": 1.3},
    "rss_mb": 150.0,
    "size": 1.0,
    "pack": 1.5,
}

# Runs in a child: argv = [params.json]. Prints {"seconds": ...} for untar + install.
_RATTLER_CHILD = r"""
import asyncio, json, os, subprocess, sys, time
import rattler

params = json.load(open(sys.argv[1]))
env = rattler.LockFile.from_path(params["lockfile"]).environment("default")
platform = next(p for p in env.platforms() if p.name == params["platform"])
records = env.conda_repodata_records_for_platform(platform)
start = time.perf_counter()
subprocess.run(["tar", "-xf", params["archive"], "-C", params["unpack_dir"]], check=True)
channel = os.path.join(params["unpack_dir"], "channel")
for record in records:
    record.url = "file://" + os.path.join(channel, record.subdir, record.file_name)
asyncio.run(rattler.install(
    records, params["prefix"], cache_dir=params["cache_dir"], show_progress=False
))
print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
os._exit(0)  # py-rattler 0.28 may crash at interpreter exit
"""

# argv = [archive.tar.zst, output dir]: tarfile's streaming mode, no checks at all.
_NAIVE_CHILD = r"""
import sys, tarfile, zstandard
with open(sys.argv[1], "rb") as raw:
    stream = zstandard.ZstdDecompressor().stream_reader(raw, read_size=1 << 20)
    with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20) as tar:
        tar.extractall(sys.argv[2], filter="fully_trusted")
"""

# argv = [lockfile, output, cache dir]: pack() timed after the imports.
_PACK_CHILD = r"""
import json, sys, time
import portpack
from portpack.packer import packing

start = time.perf_counter()
portpack.pack(lockfile=sys.argv[1], output=sys.argv[2], cache_dir=sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
"""


@dataclass
class Sample:
    """One run of one peer."""

    wall: float
    """Seconds from spawning the process to reaping it."""
    rss_mb: float
    """Peak RSS of the process and the children it waited for."""
    seconds: float
    """The time the table uses: ``wall``, or what the child measured itself."""


@dataclass
class Peer:
    """A way to put the environment on disk."""

    name: str
    archive: Path
    command: Callable[[Path], list[str]]
    """The command extracting into a fresh output directory."""
    prefix: str
    """The environment's path relative to the output directory."""
    internal_time: bool = False
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    entries: int = 0
    """Files, links and directories of the environment it made (checked once)."""

    def median(self, attr: str = "seconds") -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    def spread(self) -> tuple[float, float]:
        values = [s.seconds for s in self.samples]
        return min(values), max(values)


# -- measuring ----------------------------------------------------------------------


def can_drop_caches() -> str | None:
    """None when the page cache can be dropped, else why not."""
    try:
        os.sync()
        DROP_CACHES.write_text("3\n")
    except OSError as exc:
        return f"cannot drop the page cache ({exc.strerror or exc}): runs are warm"
    return None


def drop_caches() -> None:
    os.sync()
    DROP_CACHES.write_text("3\n")


def run_measured(command: Sequence[str], *, cwd: Path | None = None) -> tuple[Sample, str]:
    """Run *command*; return its wall time, peak RSS and standard output.

    Peak RSS comes from GNU time when installed: a child forked from this (large)
    process would inherit its RSS as a floor. Otherwise from ``os.wait4``.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss_file,
    ):
        wrapped = list(command)
        if GNU_TIME:
            wrapped = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *wrapped]
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        rss_kb = usage.ru_maxrss
        if GNU_TIME and not proc.returncode:
            rss_kb = int(rss_file.read().split()[-1])
    if proc.returncode:
        raise RuntimeError(
            f"{' '.join(command)} failed (exit {proc.returncode}):\n{stdout[-2000:]}\n"
            f"{stderr[-4000:]}"
        )
    return Sample(wall=wall, rss_mb=rss_kb / 1024, seconds=wall), stdout


IMAGE_SIZE = 8 << 30


@contextmanager
def ext4_image(log: Callable[[str], None]) -> Iterator[Path | None]:
    """Mount a fresh journaled ext4 image for the outputs; None (and why) if impossible."""
    run_dir = corpus_mod.CORPUS_DIR / "run"
    image, mount = run_dir / "ext4.img", run_dir / "mnt"
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        log("not root or no mkfs.ext4: environments are written to the disk")
        yield None
        return
    subprocess.run(["umount", str(mount)], capture_output=True, check=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    mount.mkdir(exist_ok=True)
    image.unlink(missing_ok=True)
    with open(image, "wb") as fh:
        fh.truncate(IMAGE_SIZE)
    # No lazy initialisation: a background thread would zero inode tables mid-run.
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    mounted = made.returncode == 0 and (
        subprocess.run(
            ["mount", "-o", "loop", str(image), str(mount)], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not mounted:
        log("cannot make and mount an ext4 image (no loop device?): using the disk")
        image.unlink(missing_ok=True)
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, check=False)
        image.unlink(missing_ok=True)


def _internal_seconds(out: str) -> float:
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def _rmtree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


# -- preparing the archives -----------------------------------------------------------


@dataclass
class Prepared:
    work: Path
    env_tar: Path
    pixi_tar: Path
    prefix_tar: Path
    conda_pack: Path | None
    conda_pack_error: str | None
    pack: dict[str, float]


def prepare(
    corpus: corpus_mod.Corpus, work: Path, runs: int, log: Callable[[str], None]
) -> Prepared:
    """Pack with portpack (timed), and make every peer's archive.

    The peers' archives depend only on portpack's archive (packing is deterministic),
    so they are kept in ``<corpus>/peers-<digest of env.tar>/`` for the next run.
    """
    _rmtree(work)
    work.mkdir(parents=True)
    pack = measure_pack(corpus, work, runs, log)
    env_tar = work / "env.tar"
    digest = hashlib.sha256()
    with open(env_tar, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    peers_dir = corpus.root / f"peers-{digest.hexdigest()[:16]}"
    if not (peers_dir / "done").is_file():
        log("making the peers' archives")
        for old in corpus.root.glob("peers-*"):
            _rmtree(old)
        _make_peer_archives(corpus, env_tar, peers_dir)
    error = peers_dir / "conda-pack.error"
    cp_out = peers_dir / "conda-pack.tar.zst"
    return Prepared(
        work,
        env_tar,
        peers_dir / "pixi-pack.tar",
        peers_dir / "prefix.tar.zst",
        None if error.is_file() else cp_out,
        error.read_text() if error.is_file() else None,
        pack,
    )


def _make_peer_archives(corpus: corpus_mod.Corpus, env_tar: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    with tarfile.open(dest / "pixi-pack.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(corpus.channel, arcname="channel")
    ref = dest / "reference"
    subprocess.run([PORTPACK, "unpack", str(env_tar), "-o", str(ref), "-q"], check=True)
    prefix_tar = dest / "prefix.tar.zst"
    subprocess.run(["tar", "--zstd", "-cf", str(prefix_tar), "-C", str(ref), "env"], check=True)
    cp_out = dest / "conda-pack.tar.zst"
    result = subprocess.run(
        [CONDA_PACK, "-p", str(ref / "env"), "-o", str(cp_out), "--format", "tar.zst", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        message = (result.stderr or result.stdout).strip()[-500:]
        (dest / "conda-pack.error").write_text(f"conda-pack failed: {message}")
    _rmtree(ref)
    (dest / "done").write_text("")


def measure_pack(
    corpus: corpus_mod.Corpus, work: Path, runs: int, log: Callable[[str], None]
) -> dict[str, float]:
    """Pack time (warm caches) against decoding every payload once and a plain tar."""
    cache = corpus.root / "pack-cache"
    env_tar = work / "env.tar"
    pack_cmd = [PORTPACK, "pack", "-l", str(corpus.lockfile), "-o", str(env_tar)]
    pack_cmd += ["--cache-dir", str(cache)]
    log("portpack pack (warm-up: fills the package cache)")
    subprocess.run(pack_cmd, check=True, capture_output=True)
    payloads = work / "payloads"
    payloads.mkdir()
    for package in corpus.packages:
        for member, offset, length in corpus_mod.payload_ranges(package):
            if member.startswith("pkg-"):
                with open(package, "rb") as src, open(payloads / member, "wb") as dst:
                    src.seek(offset)
                    dst.write(src.read(length))
    zstd_cmd = ["sh", "-c", f"zstd -dcq {payloads}/*.tar.zst > /dev/null"]
    tar_cmd = ["sh", "-c", f"tar -cf - -C {corpus.channel} . | cat > /dev/null"]
    lib_cmd = [sys.executable, "-c", _PACK_CHILD, str(corpus.lockfile), str(env_tar), str(cache)]
    cli, lib, fresh, zstd, plain = [], [], [], [], []
    log(f"pack side: {runs} runs each (warm page cache)")
    for _ in range(runs):
        # Each pack writes a new file: renaming over an old one makes ext4 flush the data.
        env_tar.unlink()
        cli.append(run_measured(pack_cmd)[0].wall)
        env_tar.unlink()
        lib.append(_internal_seconds(run_measured(lib_cmd)[1]))
        shutil.rmtree(cache / "analysis", ignore_errors=True)
        env_tar.unlink()
        fresh.append(run_measured(pack_cmd)[0].wall)  # refills the analysis cache
        zstd.append(run_measured(zstd_cmd)[0].wall)
        plain.append(run_measured(tar_cmd)[0].wall)
    shutil.rmtree(payloads)
    return {
        "portpack_pack_cli": statistics.median(cli),
        "portpack_pack_library": statistics.median(lib),
        "portpack_pack_cli_analysis_cold": statistics.median(fresh),
        "zstd_dc_payloads": statistics.median(zstd),
        "plain_tar_of_conda_files": statistics.median(plain),
        "pack_runs_min": min(cli),
        "pack_runs_max": max(cli),
    }


def peers(prepared: Prepared, corpus: corpus_mod.Corpus) -> list[Peer]:
    work = prepared.work
    params = work / "rattler-params.json"

    def rattler_cmd(out: Path) -> list[str]:
        (out / "unpacked").mkdir(parents=True)
        params.write_text(
            json.dumps(
                {
                    "lockfile": str(corpus.lockfile),
                    "platform": "linux-64",
                    "archive": str(prepared.pixi_tar),
                    "unpack_dir": str(out / "unpacked"),
                    "cache_dir": str(out / "cache"),
                    "prefix": str(out / "env"),
                }
            )
        )
        return [sys.executable, "-c", _RATTLER_CHILD, str(params)]

    def tar_cmd(out: Path) -> list[str]:
        out.mkdir(parents=True)
        return ["tar", "--zstd", "-xf", str(prepared.prefix_tar), "-C", str(out)]

    def naive_cmd(out: Path) -> list[str]:
        return [sys.executable, "-c", _NAIVE_CHILD, str(prepared.prefix_tar), str(out)]

    def conda_pack_cmd(out: Path) -> list[str]:
        env = out / "env"
        script = (
            f'mkdir -p "{env}" && tar --zstd -xf "{prepared.conda_pack}" -C "{env}" '
            f'&& "{env}/bin/python" "{env}/bin/conda-unpack"'
        )
        return ["sh", "-c", script]

    result = [
        Peer(
            "portpack",
            prepared.env_tar,
            lambda out: [PORTPACK, "unpack", str(prepared.env_tar), "-o", str(out), "-q"],
            "env",
        ),
        Peer("pixi-unpack engine", prepared.pixi_tar, rattler_cmd, "env", internal_time=True),
        Peer("tar --zstd -xf", prepared.prefix_tar, tar_cmd, "env"),
        Peer("conda-pack", prepared.conda_pack or Path("-"), conda_pack_cmd, "env"),
        Peer("tarfile (naive)", prepared.prefix_tar, naive_cmd, "env"),
    ]
    if prepared.conda_pack is None:
        result[3].error = prepared.conda_pack_error
    return result


# -- running --------------------------------------------------------------------------


def smoke_test(peer: Peer, out: Path) -> None:
    """Check once (untimed) that the peer makes a working environment."""
    run_measured(peer.command(out))
    prefix = out / peer.prefix
    subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import requests, httpx, numpy, json"],
        check=True,
        capture_output=True,
    )
    peer.entries = sum(len(dirs) + len(files) for _, dirs, files in os.walk(prefix))


def run_size(
    size: str, runs: int, cold: bool, log: Callable[[str], None], out_dir: Path | None = None
) -> tuple[corpus_mod.Corpus, Prepared, list[Peer]]:
    corpus = corpus_mod.load(size, log=log)
    log(corpus.describe())
    work = corpus_mod.CORPUS_DIR / "run" / size
    prepared = prepare(corpus, work, runs, log)
    all_peers = peers(prepared, corpus)
    out = (out_dir / size) if out_dir else work / "out"
    for peer in all_peers:
        if peer.error:
            continue
        try:
            smoke_test(peer, out)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            peer.error = f"failed: {str(exc)[:300]}"
        _rmtree(out)
    active = [p for p in all_peers if not p.error]
    for run in range(runs):
        log(f"{size}: run {run + 1}/{runs}")
        for offset in range(len(active)):
            peer = active[(run + offset) % len(active)]  # a rotating order
            if peer.error:
                continue
            _rmtree(out)
            command = peer.command(out)
            if cold:
                drop_caches()
            try:
                sample, stdout = run_measured(command)
            except RuntimeError as exc:
                peer.error = f"failed in run {run + 1}: {str(exc)[:300]}"
                continue
            if peer.internal_time:
                sample.seconds = _internal_seconds(stdout)
            peer.samples.append(sample)
    _rmtree(out)
    return corpus, prepared, all_peers


# -- reporting ------------------------------------------------------------------------


def table(corpus: corpus_mod.Corpus, all_peers: list[Peer]) -> str:
    mine = all_peers[0]
    lines = [
        f"### {corpus.describe()}",
        "",
        "| peer | time (s), median | min-max | peak RSS (MB) | archive (MB) "
        "| portpack/peer time | portpack/peer RSS | portpack/peer size | entries made |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for peer in all_peers:
        if peer.error or not peer.samples:
            lines.append(f"| {peer.name} | {peer.error} ||||||||")
            continue
        low, high = peer.spread()
        size = peer.archive.stat().st_size / 1e6
        mine_size = mine.archive.stat().st_size / 1e6
        ratios = "| - | - | - "
        if mine.samples:
            ratios = (
                f"| {mine.median() / peer.median():.2f} "
                f"| {mine.median('rss_mb') / peer.median('rss_mb'):.2f} | {mine_size / size:.2f} "
            )
        lines.append(
            f"| {peer.name} | {peer.median():.2f} | {low:.2f}-{high:.2f} "
            f"| {peer.median('rss_mb'):.0f} | {size:.1f} {ratios}| {peer.entries} |"
        )
    rattler = next(p for p in all_peers if p.name == "pixi-unpack engine")
    if rattler.samples:
        lines.append("")
        lines.append(
            f"pixi-unpack engine: time measured inside its process; its whole process took "
            f"{rattler.median('wall'):.2f} s (with Python start-up and `import rattler`)."
        )
    return "\n".join(lines)


def targets(size: str, corpus: corpus_mod.Corpus, prepared: Prepared, all_peers: list[Peer]) -> str:
    by_name = {p.name: p for p in all_peers}
    mine = by_name["portpack"]
    rows = []

    def check(label: str, value: float, limit: float, digits: int = 3) -> None:
        verdict = "met" if value <= limit else "NOT met"
        rows.append(f"| {label} | {value:#.{digits}g} | <= {limit} | {verdict} |")

    if mine.samples:
        for key, peer_name in (("pixi", "pixi-unpack engine"), ("tar", "tar --zstd -xf")):
            peer = by_name[peer_name]
            if peer.samples:
                ratio = mine.median() / peer.median()
                check(f"unpack / {peer_name} time", ratio, TARGETS[key][size], digits=4)
        check("peak RSS of unpack (MB)", mine.median("rss_mb"), TARGETS["rss_mb"])
    check(
        "archive / sum of .conda files",
        prepared.env_tar.stat().st_size / corpus.package_bytes,
        TARGETS["size"],
        digits=5,
    )
    pack = prepared.pack
    check(
        "pack (CLI) / zstd -dc of payloads",
        pack["portpack_pack_cli"] / pack["zstd_dc_payloads"],
        TARGETS["pack"],
    )
    check(
        "pack (library call) / zstd -dc of payloads",
        pack["portpack_pack_library"] / pack["zstd_dc_payloads"],
        TARGETS["pack"],
    )
    header = ["| target | measured | limit | |", "|---|---:|---:|---|"]
    pack_line = (
        f"Pack (warm caches, medians): portpack pack CLI {pack['portpack_pack_cli']:.2f} s "
        f"(min-max {pack['pack_runs_min']:.2f}-{pack['pack_runs_max']:.2f}), library call "
        f"{pack['portpack_pack_library']:.2f} s, CLI without the analysis cache (payloads "
        f"decoded and every file checked against paths.json) "
        f"{pack['portpack_pack_cli_analysis_cold']:.2f} s; zstd -dc of every payload "
        f"{pack['zstd_dc_payloads']:.2f} s; plain tar of the .conda files "
        f"{pack['plain_tar_of_conda_files']:.2f} s."
    )
    return "\n".join([*header, *rows, "", pack_line])


def scaling(results: dict[str, tuple[corpus_mod.Corpus, Prepared, list[Peer]]]) -> str:
    if not {"default", "large"} <= set(results):
        return ""
    small, big = results["default"], results["large"]
    files = big[0].files / small[0].files
    size = big[0].installed_bytes / small[0].installed_bytes
    lines = [
        f"Scaling large/default: {files:.1f}x the files, {size:.1f}x the installed bytes.",
        "",
        "| peer | time large/default |",
        "|---|---:|",
    ]
    for a, b in zip(small[2], big[2], strict=True):
        if a.samples and b.samples:
            lines.append(f"| {a.name} | {b.median() / a.median():.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", nargs="+", default=["default", "large"], choices=list(corpus_mod.SIZES)
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per peer (default 5)")
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache")
    parser.add_argument(
        "--out-dir",
        type=Path,
        help="where the environments are written (default: a fresh ext4 image, else "
        "benchmarks/.corpus/run/SIZE/out); a tmpfs such as /dev/shm/pp takes the disk out",
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    why_warm = "--warm given" if args.warm else can_drop_caches()
    cold = why_warm is None
    load_before = os.getloadavg()
    results = {}
    with ExitStack() as stack:
        out_dir, where = args.out_dir, str(args.out_dir)
        if out_dir is None:
            out_dir = stack.enter_context(ext4_image(log))
            where = (
                "a fresh journaled ext4 image (loop-mounted)"
                if out_dir
                else "benchmarks/.corpus/run (the disk)"
            )
        for size in args.sizes:
            results[size] = run_size(size, args.runs, cold, log, out_dir)
    load_after = os.getloadavg()
    cache_note = (
        "cold page cache (dropped before every run)" if cold else f"WARM page cache: {why_warm}"
    )
    rss_note = "GNU time %M" if GNU_TIME else "os.wait4 (floor: this script's own RSS)"
    report = [
        "## portpack unpack vs peers",
        "",
        f"{args.runs} runs per peer, {cache_note}; {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; peak RSS from {rss_note}; "
        f"environments written to {where}.",
        "",
    ]
    for size, (corpus, prepared, all_peers) in results.items():
        report += [table(corpus, all_peers), "", targets(size, corpus, prepared, all_peers), ""]
    report.append(scaling(results))
    text = "\n".join(report)
    print(text)
    saved = corpus_mod.CORPUS_DIR / "results"
    saved.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (saved / f"compare-{stamp}.md").write_text(text + "\n")
    raw = {
        size: {
            "corpus": {
                k: str(v) if isinstance(v, Path) else v
                for k, v in asdict(c).items()
                if k != "packages"
            },
            "pack": p.pack,
            "peers": {peer.name: [asdict(s) for s in peer.samples] for peer in ps},
        }
        for size, (c, p, ps) in results.items()
    }
    (saved / f"compare-{stamp}.json").write_text(json.dumps(raw, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
