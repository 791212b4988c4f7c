"""``unpack --update`` against a full unpack and against rsync, one small package changed.

    python benchmarks/update.py                  # default corpus, 3 runs each
    python benchmarks/update.py --runs 5 --package idna

The old environment is the default corpus (benchmarks/corpus.py) packed as ``v1.tar``.
The new one is the same lock with one small package rebuilt (``--package``, idna by
default: build number + 1 and one more file, so its package file, both its segments
and its record change), locked again against a copy of the channel and packed as
``v2.tar``. Each run is a fresh child process; the environment it works on is made
beforehand and not timed:

``update, file``
    ``portpack.unpack("v2.tar", out, update=True)`` over ``v1`` unpacked at ``out/env``.
``update, HTTP``
    the same from ``http://127.0.0.1/v2.tar`` (``tests/faultserver.py`` in this process,
    which counts the bytes it sends).
``full unpack``
    ``portpack.unpack("v2.tar", out)`` into an empty ``out``: what updating costs today.
``floor: cp -al + rm -rf``
    what any update that builds the new environment beside the old one and removes
    the old one after the swap cannot do without: one hard link per file, then the
    old tree removed (no Python, no archive, no conda-meta).
``rsync -a --delete``
    what pixi-pack's users do (pixi-pack #245): a build tree updated to v2, rsynced over
    a deployed copy of v1 that was itself rsynced from it (so unchanged files share their
    modification times and rsync's quick check skips them). Bytes are rsync's "total
    transferred file size".

The environments go to a fresh journaled ext4 image, as in compare.py (``--out-dir``
picks another place): the root file system here has no journal, and ext4 without
one makes every file created soon after many were deleted cost a scan, which made
the full unpack 5-7 times slower than on a normal disk and its ratio meaningless.

Wall and CPU time (medians), and the bytes each read: ``rchar`` of ``/proc/self/io``
around the call (every byte read by system calls: archive, old files hashed for the
local-change check, sockets); for HTTP also the bytes the server sent. The goal of
issue 15 is printed beside: update <= 0.2x the full unpack's time, and bytes
downloaded <= 1.1x the changed package's segments plus the metadata frame.
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
import zipfile
from contextlib import ExitStack
from pathlib import Path

import zstandard

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT / "tests"))

import corpus as corpus_mod  # noqa: E402
from compare import ext4_image  # noqa: E402
from http_unpack import Sample, measure  # noqa: E402

# argv = [source, output dir, mode]; prints {"rchar": bytes read during the call}.
_CHILD = r"""
import json, sys
import portpack

def rchar():
    with open("/proc/self/io") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("rchar"))

source, out, mode = sys.argv[1:]
before = rchar()
portpack.unpack(source, out, "env", update=(mode == "update"))
print(json.dumps({"rchar": rchar() - before}))
"""

MODES = {
    "update-file": "update, file",
    "update-http": "update, HTTP",
    "full": "full unpack",
    "rsync": "rsync -a --delete",
    "floor": "floor: cp -al + rm -rf",
}


def rebuild(package: Path, dest_dir: Path) -> Path:
    """``package`` with build number + 1 and one file more: a new package file."""
    with zipfile.ZipFile(package) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    stem = package.name.removesuffix(".conda")
    info_name, pkg_name = f"info-{stem}.tar.zst", f"pkg-{stem}.tar.zst"
    info = _tar_members(members[info_name])
    index = json.loads(info["info/index.json"][1])
    index["build_number"] += 1
    index["build"] = f"{index['build'].rsplit('_', 1)[0]}_{index['build_number']}"
    extra = f"share/portpack-bench/{index['name']}-rebuilt.txt"
    content = f"rebuilt {index['name']} {index['build']}\n".encode()
    paths = json.loads(info["info/paths.json"][1])
    import hashlib

    paths["paths"].append(
        {
            "_path": extra,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(content).hexdigest(),
            "size_in_bytes": len(content),
        }
    )
    info["info/index.json"] = (info["info/index.json"][0], json.dumps(index).encode())
    info["info/paths.json"] = (info["info/paths.json"][0], json.dumps(paths).encode())
    payload = _tar_members(members[pkg_name])
    payload[extra] = (None, content)
    new_stem = f"{index['name']}-{index['version']}-{index['build']}"
    out = dest_dir / f"{new_stem}.conda"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", members["metadata.json"])
        zf.writestr(f"info-{new_stem}.tar.zst", _tar_zst(info))
        zf.writestr(f"pkg-{new_stem}.tar.zst", _tar_zst(payload))
    return out


def _tar_members(data: bytes) -> dict[str, tuple[object, bytes]]:
    import io
    import tarfile

    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    out: dict[str, tuple[object, bytes]] = {}
    with tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            fh = tar.extractfile(member) if member.isfile() else None
            out[member.name] = (member, fh.read() if fh else b"")
    return out


def _tar_zst(members: dict[str, tuple[object, bytes]]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (member, data) in members.items():
            if member is None:
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
            else:
                assert isinstance(member, tarfile.TarInfo)
                info = member
                info.size = len(data) if member.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return zstandard.ZstdCompressor(level=19).compress(buf.getvalue())


def make_archives(work: Path, package: str) -> tuple[Path, Path, int]:
    """``v1.tar``, ``v2.tar`` (in ``work/www``) and the bytes an update needs at least."""
    import portpack
    from portpack.archive.reader import open_metadata

    corpus = corpus_mod.load("default", log=print)
    www = work / "www"
    www.mkdir(parents=True, exist_ok=True)
    v1, v2 = www / "v1.tar", www / "v2.tar"
    if not v2.is_file():
        channel = work / "channel2"
        shutil.rmtree(channel, ignore_errors=True)
        shutil.copytree(corpus.channel, channel, copy_function=os.link)
        old = next(channel.glob(f"*/{package}-*.conda"))
        rebuild(old, old.parent)
        old.unlink()
        for stale in channel.glob("*/repodata*"):
            stale.unlink()
        corpus_mod._index(channel)
        names = sorted({p.name.rsplit("-", 2)[0] for p in corpus.packages})
        lock2 = portpack.lock(
            names, channels=[str(channel)], platforms=["linux-64"], output=work / "v2.lock"
        )
        portpack.pack(lockfile=corpus.lockfile, output=v1, cache_dir=work / "cache")
        portpack.pack(lockfile=lock2, output=v2, cache_dir=work / "cache")
    with open(v1, "rb") as a, open(v2, "rb") as b:
        old_meta, new_meta = open_metadata(a, str(v1)), open_metadata(b, str(v2))
    before = {e.record.sha256 for e in old_meta.packages}
    changed = [e for e in new_meta.packages if e.record.sha256 not in before]
    if [e.name for e in changed] != [package]:
        sys.exit(f"expected only {package} to change, got {[e.name for e in changed]}")
    needed = sum(e.info.zst_size + e.payload.zst_size for e in changed) + _first_frame(v2)
    return v1, v2, needed


def _first_frame(path: Path) -> int:
    """Bytes of the archive's first zstd frame (the metadata)."""
    dobj = zstandard.ZstdDecompressor().decompressobj()
    with open(path, "rb") as fh:
        data = fh.read(1 << 24)
    dobj.decompress(data)
    return len(data) - len(dobj.unused_data)


def one_run(mode: str, v1: Path, v2: Path, url: str, work: Path) -> tuple[Sample, int]:
    import portpack

    out = Path(tempfile.mkdtemp(dir=work, prefix=f"{mode}-"))
    try:
        if mode == "rsync":
            return _rsync_run(v1, v2, out)
        if mode == "floor":
            portpack.unpack(v1, out, "env")
            command = ["sh", "-c", 'cp -al "$1/env" "$1/new" && rm -rf "$1/env"', "sh", str(out)]
            return measure(command)[0], 0
        if mode != "full":
            portpack.unpack(v1, out, "env")
        source = url if mode == "update-http" else str(v2)
        kind = "full" if mode == "full" else "update"
        sample, stdout = measure([sys.executable, "-c", _CHILD, source, str(out), kind])
        return sample, int(json.loads(stdout.strip().splitlines()[-1])["rchar"])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _rsync_run(v1: Path, v2: Path, out: Path) -> tuple[Sample, int]:
    import portpack

    build, deployed = out / "build", out / "deployed"
    portpack.unpack(v1, build, "env")
    deployed.mkdir(parents=True)  # rsync creates the last directory only
    subprocess.run(["rsync", "-a", f"{build}/env/", f"{deployed}/env/"], check=True)
    portpack.unpack(v2, build, "env", update=True)  # the build tree moves to v2
    command = ["rsync", "-a", "--delete", "--stats", f"{build}/env/", f"{deployed}/env/"]
    sample, stdout = measure(command)
    line = next(x for x in stdout.splitlines() if x.startswith("Total transferred file size"))
    return sample, int(line.split(":")[1].split()[0].replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--package", default="idna", help="the package that changes")
    parser.add_argument("--work", type=Path, help="working directory (default: a temp dir)")
    parser.add_argument(
        "--out-dir",
        type=Path,
        help="where the environments go (default: a fresh journaled ext4 image, as "
        "compare.py makes it, else the working directory)",
    )
    args = parser.parse_args(argv)
    if shutil.which("rsync") is None:
        sys.exit("rsync is not installed (apt-get install rsync)")
    work = args.work or Path(tempfile.mkdtemp(prefix="portpack-update-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    v1, v2, needed = make_archives(work, args.package)
    with ExitStack() as stack:
        out_dir = args.out_dir or stack.enter_context(ext4_image(print)) or work
        print(f"environments in {out_dir}")
        return _measure(args.runs, v1, v2, needed, out_dir)


def _measure(runs: int, v1: Path, v2: Path, needed: int, out_dir: Path) -> int:
    from faultserver import FaultServer

    results: dict[str, list[tuple[Sample, int]]] = {mode: [] for mode in MODES}
    served: list[int] = []
    with FaultServer(v2.parent) as server:
        for run in range(runs):
            for mode in MODES if run % 2 == 0 else list(reversed(MODES)):
                server.requests.clear()
                results[mode].append(one_run(mode, v1, v2, server.url + v2.name, out_dir))
                if mode == "update-http":
                    served.append(sum(r.sent for r in server.requests_for(v2.name)))
                sample = results[mode][-1][0]
                print(f"run {run + 1} {mode}: {sample.wall:.2f} s", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}\n")
    print(table(results, served, needed, v2.stat().st_size))
    return 0


def table(
    results: dict[str, list[tuple[Sample, int]]], served: list[int], needed: int, size: int
) -> str:
    full = statistics.median(s.wall for s, _ in results["full"])
    lines = [
        f"v2.tar: {size / 1e6:.1f} MB; the changed package's segments + metadata: "
        f"{needed / 1e3:.1f} kB",
        "",
        "| variant | wall (s) | CPU (s) | peak RSS (MB) | bytes read (MB) | wall / full unpack |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, samples in results.items():
        wall = statistics.median(s.wall for s, _ in samples)
        cpu = statistics.median(s.cpu for s, _ in samples)
        rss = max(s.rss_mb for s, _ in samples)
        read = statistics.median(n for _, n in samples)
        lines.append(
            f"| {MODES[mode]} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {read / 1e6:.2f} "
            f"| {wall / full:.2f} |"
        )
    if served:
        sent = statistics.median(served)
        lines += [
            "",
            f"update from HTTP: the server sent {sent / 1e3:.1f} kB = {sent / needed:.2f}x "
            f"the changed package's segments + metadata (goal <= 1.1x)",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
