"""``unpack --update`` with one small package changed, against a full unpack and rsync.

    python benchmarks/bench_update.py                 # default corpus, 3 runs each
    python benchmarks/bench_update.py --runs 5 --work /tmp/bench-update

Two archives of the default corpus (benchmarks/corpus.py) differ in one small
package (``mdurl``: its file is rewritten with a zip comment, so its digest changes
and the update installs it from the archive). Timed, in this process, best of
``--runs`` (wall time; the page cache is warm):

``full unpack``
    ``portpack.unpack`` of the new archive into a fresh directory.
``--update``
    the environment of the old archive brought to the new one (a fresh copy of it,
    made by unpacking the old archive, for each run).
``rsync -a --delete``
    what users do today: the installed tree of the new archive synchronized onto the
    old one (an rsync of local trees: its reading of both trees is what is timed).

The bytes read are the archive's: the update reads it front to back today (from a
seekable file or HTTP it will read only the changed segments, issue 15).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import corpus

import portpack

CHANGED = "mdurl"


def changed_lock(lockfile: Path, work: Path) -> Path:
    """``lockfile`` with package ``CHANGED`` replaced by a copy whose digest differs."""
    text = lockfile.read_text()
    line = next(ln for ln in text.splitlines() if f"/{CHANGED}-" in ln and "conda:" in ln)
    original = Path(line.split("conda:", 1)[1].strip())
    copy = work / "changed" / original.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(original, copy)
    with zipfile.ZipFile(copy, "a") as zf:
        zf.comment = b"portpack bench_update: changed"
    old, new = original.read_bytes(), copy.read_bytes()
    for algorithm in ("sha256", "md5"):
        text = text.replace(
            hashlib.new(algorithm, old).hexdigest(), hashlib.new(algorithm, new).hexdigest()
        )
    text = text.replace(f"size: {len(old)}\n", f"size: {len(new)}\n", 1)
    text = text.replace(str(original), str(copy))
    out = work / "changed.lock"
    out.write_text(text)
    return out


def best(runs: int, prepare: Callable[[], None], action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        prepare()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    data = corpus.load("default", log=print)
    work = args.work or Path(tempfile.mkdtemp(prefix="portpack-bench-update-"))
    work.mkdir(parents=True, exist_ok=True)
    old_tar, new_tar = work / "old.tar", work / "new.tar"
    portpack.pack(lockfile=data.lockfile, output=old_tar, cache_dir=work / "cache")
    lock = changed_lock(data.lockfile, work)
    portpack.pack(lockfile=lock, output=new_tar, cache_dir=work / "cache")
    fresh, target = work / "fresh", work / "target"

    def clean(*paths: Path) -> Callable[[], None]:
        return lambda: [shutil.rmtree(p, ignore_errors=True) for p in paths] and None

    def old_env() -> None:
        clean(target)()
        portpack.unpack(old_tar, target)

    full = best(args.runs, clean(fresh), lambda: portpack.unpack(new_tar, fresh))
    result: list[portpack.UnpackResult] = []
    update = best(
        args.runs, old_env, lambda: result.append(portpack.unpack(new_tar, target, update=True))
    )
    # the last full unpack stays: the source tree rsync copies from
    rsync = best(
        args.runs,
        old_env,
        lambda: subprocess.run(
            ["rsync", "-a", "--delete", f"{fresh}/env/", f"{target}/env/"], check=True
        ),
    )
    last = result[-1]
    print(f"corpus: {data.files} files, {len(last.packages)} packages; changed: {CHANGED}")
    print(f"installed {last.installed}, reused {len(last.reused)}, copied {last.copied_files}")
    print(f"archive: {new_tar.stat().st_size} bytes (read whole by every variant)")
    print(f"| variant | wall (best of {args.runs}) | vs full unpack |")
    print("|---|---|---|")
    variants = (("full unpack", full), ("--update", update), ("rsync -a --delete", rsync))
    for name, seconds in variants:
        print(f"| {name} | {seconds:.3f} s | {seconds / full:.2f}x |")


if __name__ == "__main__":
    main()
