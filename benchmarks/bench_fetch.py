"""portpack's fetcher against a sequential download and against the ideal, on loopback.

    python benchmarks/bench_fetch.py                    # 300 packages, 5 runs
    python benchmarks/bench_fetch.py --runs 3 --json results.json

Setup: ``--count`` files of 50 KB to 2 MB (log-uniform, as conda package sizes are
spread: many small, a few large; fixed seed) served by ``tests/faultserver.py`` in
its own process, with ``--latency`` seconds before every response and a bandwidth cap
of ``--bandwidth`` bytes/s per connection.

Measured (median of ``--runs``, each into an empty cache):

``portpack``
    ``portpack.net.fetch.Fetcher.fetch_all`` with ``--concurrency`` connections: streamed to
    disk, sha256 checked, renamed into the cache.
``sequential``
    one keep-alive connection, one file after the other, streamed to disk with the
    same sha256 check (the standard library's ``http.client``).  Run once: it is slow and
    steady.
``ideal``
    ``total bytes / min(loopback bandwidth, concurrency x cap)`` plus one round of
    latency per request each connection makes (``ceil(count / concurrency)`` rounds):
    what a client that costs nothing would need.  The loopback bandwidth is measured
    on the same server, without latency or cap, reading one large file on one
    connection and discarding it (best of 5).  ``ideal (1 round)`` charges the latency once only.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from portpack.conda.record import PackageRecord  # noqa: E402
from portpack.net.fetch import Fetcher  # noqa: E402

MB = 1 << 20


def make_files(root: Path, count: int, low: int, high: int, seed: int) -> list[dict[str, Any]]:
    """``count`` files of random bytes under ``root/noarch`` and their records."""
    rng = random.Random(seed)
    (root / "noarch").mkdir(parents=True)
    records = []
    for index in range(count):
        size = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        data = rng.randbytes(size)
        fn = f"pkg{index:03d}-1.0-0.conda"
        (root / "noarch" / fn).write_bytes(data)
        records.append(
            {
                "name": f"pkg{index:03d}",
                "version": "1.0",
                "build": "0",
                "fn": fn,
                "subdir": "noarch",
                "size": size,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return records


class Server:
    """``tests/faultserver.py`` in a child process."""

    def __init__(self, root: Path, latency: float, bandwidth: float | None) -> None:
        cmd = [sys.executable, str(ROOT / "tests" / "faultserver.py"), str(root)]
        cmd += ["--latency", str(latency)]
        if bandwidth:
            cmd += ["--bandwidth", str(bandwidth)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def with_urls(records: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
    return [{**r, "url": f"{url}noarch/{r['fn']}"} for r in records]


def run_portpack(records: list[dict[str, Any]], concurrency: int, work: Path) -> float:
    cache = Path(tempfile.mkdtemp(dir=work, prefix="cache-"))
    start = time.perf_counter()
    typed = [PackageRecord.from_json(r, "the benchmark") for r in records]
    Fetcher(cache, concurrency).fetch_all(typed)
    elapsed = time.perf_counter() - start
    shutil.rmtree(cache)
    return elapsed


def run_sequential(records: list[dict[str, Any]], work: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=work, prefix="seq-"))
    start = time.perf_counter()
    conn = _connection(records[0]["url"])
    try:
        for record in records:
            digest = hashlib.sha256()
            with open(out / record["fn"], "wb") as fh:
                for chunk in _get(conn, record["url"]):
                    digest.update(chunk)
                    fh.write(chunk)
            assert digest.hexdigest() == record["sha256"]
    finally:
        conn.close()
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return elapsed


def _connection(url: str) -> http.client.HTTPConnection:
    """One keep-alive connection to the server of ``url``."""
    parsed = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)


def _get(conn: http.client.HTTPConnection, url: str) -> Iterator[bytes]:
    """The body of ``url`` on ``conn``, as it arrives."""
    conn.request("GET", urllib.parse.urlsplit(url).path)
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{url}: HTTP {response.status}")
    while chunk := response.read(256 << 10):  # closes the response at its end
        yield chunk


def loopback_bandwidth(work: Path, size: int) -> float:
    """Bytes/s of one connection reading one large file from an uncapped server."""
    big = work / "bw"
    (big / "noarch").mkdir(parents=True)
    (big / "noarch" / "big.bin").write_bytes(os.urandom(size))
    server = Server(big, 0.0, None)
    try:
        best = 0.0
        url = f"{server.url}noarch/big.bin"
        conn = _connection(url)
        try:
            for _ in range(5):
                start = time.perf_counter()
                got = sum(len(chunk) for chunk in _get(conn, url))
                best = max(best, got / (time.perf_counter() - start))
        finally:
            conn.close()
        return best
    finally:
        server.close()
        shutil.rmtree(big)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--min-size", type=int, default=50 * 1024)
    parser.add_argument("--max-size", type=int, default=2 * MB)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--bandwidth", type=float, default=10 * MB, help="bytes/s per connection")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    os.environ["NO_PROXY"] = "127.0.0.1"

    with tempfile.TemporaryDirectory(prefix="portpack-bench-fetch-") as tmp:
        work = Path(tmp)
        records = make_files(work / "channel", args.count, args.min_size, args.max_size, args.seed)
        total = sum(r["size"] for r in records)
        bandwidth = loopback_bandwidth(work, 128 * MB)
        server = Server(work / "channel", args.latency, args.bandwidth)
        try:
            records = with_urls(records, server.url)
            portpack_runs = [
                run_portpack(records, args.concurrency, work) for _ in range(args.runs)
            ]
            sequential = run_sequential(records, work)
        finally:
            server.close()

    effective = min(bandwidth, args.concurrency * args.bandwidth)
    rounds = math.ceil(args.count / args.concurrency)
    ideal = total / effective + rounds * args.latency
    ideal_one = total / effective + args.latency
    fetch = statistics.median(portpack_runs)
    figures = {
        "packages": args.count,
        "total_bytes": total,
        "latency_s": args.latency,
        "cap_bytes_per_s_per_connection": args.bandwidth,
        "concurrency": args.concurrency,
        "loopback_bytes_per_s": bandwidth,
        "portpack_s": fetch,
        "portpack_runs_s": portpack_runs,
        "sequential_s": sequential,
        "ideal_s": ideal,
        "ideal_one_round_s": ideal_one,
        "speedup_vs_sequential": sequential / fetch,
        "ratio_to_ideal": fetch / ideal,
    }
    print(
        f"{args.count} packages, {total / MB:.1f} MB, {args.latency * 1000:.0f} ms latency, "
        f"{args.bandwidth / MB:.1f} MB/s per connection, loopback {bandwidth / MB:.0f} MB/s, "
        f"{args.concurrency} connections"
    )
    print(f"{'':<22}{'seconds':>10}")
    print(
        f"{'portpack':<22}{fetch:>10.2f}   (runs: {', '.join(f'{t:.2f}' for t in portpack_runs)})"
    )
    print(f"{'sequential':<22}{sequential:>10.2f}")
    print(f"{'ideal':<22}{ideal:>10.2f}   ({rounds} rounds of latency)")
    print(f"{'ideal (1 round)':<22}{ideal_one:>10.2f}")
    print(
        f"portpack is {sequential / fetch:.1f}x faster than sequential and "
        f"{fetch / ideal:.2f}x the ideal ({fetch / ideal_one:.2f}x the 1-round ideal)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
