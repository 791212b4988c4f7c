"""Pushing an environment to a registry twice, the second time with one package added.

    python benchmarks/bench_oci_push.py           # needs docker-registry (./dev/test --prepare)

Setup: the offline fixture channel of the tests (tests/support/channel.py); version
1.4 is the full fixture environment without ``hello-c``, version 1.5 the full one.
Both are packed, then pushed to a ``docker-registry`` on 127.0.0.1 (filesystem storage
in a temporary folder) with :func:`portpack.remote.oci_archive.push_archive`, and 1.5
is pulled back and compared with the file.

Measured: blobs and bytes uploaded and skipped by each push (from the push result),
wall time of each push and of the pull (loopback: these show overhead, not network).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import portpack  # noqa: E402
from portpack.remote.oci_archive import open_artifact, push_archive  # noqa: E402
from support.channel import ENV_SPECS, cached_fixture_channel  # noqa: E402
from support.ociregistry import Registry  # noqa: E402


def main() -> None:
    channel = cached_fixture_channel()
    work = Path(tempfile.mkdtemp(prefix="portpack-bench-oci-"))

    def pack(specs: list[str], name: str) -> Path:
        lock = portpack.lock(
            specs, channels=[str(channel)], platforms=["linux-64"], output=work / f"{name}.lock"
        )
        portpack.pack(lockfile=lock, output=work / f"{name}.tar", cache_dir=work / "cache")
        return work / f"{name}.tar"

    v14 = pack([s for s in ENV_SPECS if s != "hello-c"], "v14")
    v15 = pack(list(ENV_SPECS), "v15")
    registry = Registry(work / "registry")
    try:
        rows = []
        for archive, tag in ((v14, "1.4"), (v15, "1.5")):
            start = time.monotonic()
            result = push_archive(archive, registry.ref(f"envs/app:{tag}"))
            rows.append((tag, archive.stat().st_size, result, time.monotonic() - start))
        start = time.monotonic()
        _, stream = open_artifact(registry.ref("envs/app:1.5"))
        with stream:
            same = stream.read() == v15.read_bytes()
        pull = time.monotonic() - start
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("| push | archive bytes | layers | uploaded blobs / bytes | skipped blobs / bytes | s |")
    print("|---|---|---|---|---|---|")
    for tag, size, r, seconds in rows:
        print(
            f"| {tag} | {size} | {r.layers} | {r.uploaded_blobs} / {r.uploaded_bytes} | "
            f"{r.skipped_blobs} / {r.skipped_bytes} | {seconds:.2f} |"
        )
    print(f"pull of 1.5: {pull:.2f} s, byte-identical: {same}")


if __name__ == "__main__":
    main()
