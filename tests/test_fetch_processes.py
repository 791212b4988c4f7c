"""Several ``portpack pack`` processes and one cache: killed runs and concurrent runs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from faultserver import FaultServer
from fetchsupport import (
    LockTemplate,
    assert_cache_sound,
    build_big_channel,
    cache_entries,
    part_files,
    run_pack,
)
from portpack.net.fetch import Fetcher

COUNT = 8
SIZE = 600_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LockTemplate]:
    channel = build_big_channel(tmp_path_factory.mktemp("big"), COUNT, SIZE)
    specs = [f"big-{i}" for i in range(COUNT)]
    return channel, LockTemplate.make(channel, specs, tmp_path_factory.mktemp("biglock"))


def _wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_killed_pack_then_a_second_pack_reuses_what_was_complete(
    big: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    channel, template = big
    cache = tmp_path / "cache"
    # 2 connections at 1 MB/s: a package takes ~0.6 s, the whole set ~2.4 s.
    with FaultServer(channel, bandwidth=1_000_000) as server:
        lock = template.write(tmp_path / "env.lock", server.url)
        records = template.records(lock)
        first = run_pack(lock, tmp_path / "one.tar", cache, "--concurrency", "2")
        _wait_for(lambda: len(cache_entries(cache)) >= 2 and part_files(cache))
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        complete = {p.name for p in cache_entries(cache)}
        assert 2 <= len(complete) < COUNT
        assert part_files(cache)  # the downloads it was in the middle of
        assert_cache_sound(cache, records)

        asked_before = len(server.requests)
        server.bandwidth = None
        second = run_pack(lock, tmp_path / "two.tar", cache)
        assert second.wait() == 0, second.stderr.read() if second.stderr else ""
        fetched_again = {r.name for r in server.requests[asked_before:]}
    assert (tmp_path / "two.tar").is_file()
    reused = {r["fn"] for r in records if any(c.startswith(r["fn"][:-6]) for c in complete)}
    assert len(reused) == len(complete)
    assert not fetched_again & reused  # complete downloads were not fetched again
    assert len(fetched_again) == COUNT - len(complete)
    assert len(cache_entries(cache)) == COUNT
    assert_cache_sound(cache, records)

    # The killed run's partial files hold no lock: once old, the next run removes them.
    old = time.time() - 3600
    for part in part_files(cache):
        os.utime(part, (old, old))
    Fetcher(cache)
    assert part_files(cache) == []


def test_two_packs_at_once_on_one_cache_both_succeed(
    big: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    channel, template = big
    cache = tmp_path / "cache"
    # 1.5 s before each response: both runs find the cache empty and download the same
    # packages at the same time.
    with FaultServer(channel, latency=1.5) as server:
        lock = template.write(tmp_path / "env.lock", server.url)
        runs = [run_pack(lock, tmp_path / f"{n}.tar", cache) for n in ("a", "b")]
        results = [(run.wait(), run.stderr.read() if run.stderr else "") for run in runs]
        records = template.records(lock)
        asked = [r.name for r in server.requests]
    assert results == [(0, ""), (0, "")]
    assert len(asked) > COUNT  # they did overlap
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert len(cache_entries(cache)) == COUNT
    assert part_files(cache) == []
    assert_cache_sound(cache, records)
