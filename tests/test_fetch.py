"""The fetcher against a loopback server with injected faults.

Each fault gets the behaviour a user relies on: transient ones are retried (resuming
where the server allows it) and the pack succeeds; permanent ones fail at once with a
message naming the package and the URL; and the cache never holds a corrupt entry.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import portpack
from faultserver import Drop, FaultServer, Short, Stall, Status, Wrong
from fetchsupport import (
    SMALL_SPECS,
    LockTemplate,
    assert_cache_sound,
    cache_entries,
    part_files,
    sha256,
    typed,
)
from portpack.net.fetch import Fetcher
from portpack.progress import Reporter

HELLO = "hello-c-1.0-hb0f4dca_0.conda"


class Events(Reporter):
    """Records what the fetcher reports (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[Any, ...]] = []

    def _add(self, *event: Any) -> None:
        with self.lock:
            self.events.append(event)

    def on_fetch_start(self, total: int, total_bytes: int | None) -> None:
        self._add("start", total, total_bytes)

    def on_download_complete(self, name: str, cached: bool) -> None:
        self._add("complete", name, cached)

    def on_download_progress(self, name: str, nbytes: int) -> None:
        self._add("progress", name, nbytes)

    def on_download_retry(self, name: str, reason: str, delay: float) -> None:
        self._add("retry", name, reason, delay)

    def warning(self, message: str) -> None:
        self._add("warning", message)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("RATTLER_AUTH_FILE", raising=False)


@pytest.fixture(scope="module")
def template(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> LockTemplate:
    return LockTemplate.make(fixture_channel, SMALL_SPECS, tmp_path_factory.mktemp("lock"))


@pytest.fixture
def server(fixture_channel: Path) -> Any:
    with FaultServer(fixture_channel) as fs:
        yield fs


def _pack(template: LockTemplate, server: FaultServer, tmp: Path, **kw: Any) -> Any:
    lock = template.write(tmp / "env.lock", server.url)
    kw.setdefault("cache_dir", tmp / "cache")
    return portpack.pack(lockfile=lock, output=tmp / "env.tar", **kw)


def _records(template: LockTemplate, server: FaultServer, tmp: Path) -> list[dict[str, Any]]:
    return template.records(template.write(tmp / "env.lock", server.url))


def test_pack_over_http_fills_a_tagged_cache_reused_next_time(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    events = Events()
    result = _pack(template, server, tmp_path, reporter=events)
    assert sorted(p.split("-1.0")[0] for p in result.packages) == sorted(SMALL_SPECS)
    cache = tmp_path / "cache"
    assert (
        (cache / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )
    records = _records(template, server, tmp_path)
    assert len(cache_entries(cache)) == len(SMALL_SPECS)
    assert_cache_sound(cache, records)
    assert part_files(cache) == []
    assert events.of("start") == [("start", 4, sum(r["size"] for r in records))]
    assert {(e[1], e[2]) for e in events.of("complete")} == {(n, False) for n in SMALL_SPECS}
    assert sum(e[2] for e in events.of("progress")) == sum(r["size"] for r in records)

    before = len(server.requests)
    again = Events()
    _pack(template, server, tmp_path, reporter=again)
    assert len(server.requests) == before  # every package reused after its checksum matched
    assert {(e[1], e[2]) for e in again.of("complete")} == {(n, True) for n in SMALL_SPECS}


def test_connection_dropped_mid_body_is_resumed_with_a_range_request(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    server.fail(HELLO, Drop(after=3000))
    events = Events()
    _pack(template, server, tmp_path, reporter=events)
    first, second = server.requests_for(HELLO)
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=3000-"
    assert second.status == 206
    assert [e[1] for e in events.of("retry")] == ["hello-c"]
    assert_cache_sound(tmp_path / "cache", _records(template, server, tmp_path))


def test_body_shorter_than_content_length_is_fetched_again_from_the_start(
    template: LockTemplate, fixture_channel: Path, tmp_path: Path
) -> None:
    with FaultServer(fixture_channel, ranges=False) as server:  # cannot resume
        server.fail(HELLO, Short(after=1000))
        _pack(template, server, tmp_path)
        assert [r.status for r in server.requests_for(HELLO)] == [200, 200]
        records = _records(template, server, tmp_path)
    assert_cache_sound(tmp_path / "cache", records)
    assert len(cache_entries(tmp_path / "cache")) == 4


def test_http_500_then_success(template: LockTemplate, server: FaultServer, tmp_path: Path) -> None:
    server.fail(HELLO, Status(500), Status(503))
    events = Events()
    _pack(template, server, tmp_path, reporter=events)
    assert [r.status for r in server.requests_for(HELLO)] == [500, 503, 200]
    reasons = [e[2] for e in events.of("retry")]
    assert "HTTP 500" in reasons[0] and server.url + "linux-64/" + HELLO in reasons[0]
    delays = [e[3] for e in events.of("retry")]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0  # exponential, with jitter


def test_429_waits_as_long_as_retry_after_says(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    server.fail(HELLO, Status(429, retry_after="2"))
    events = Events()
    _pack(template, server, tmp_path, reporter=events)
    first, second = server.requests_for(HELLO)
    assert first.status == 429 and second.status == 200
    assert events.of("retry")[0][3] == 2.0
    assert second.started - first.started >= 1.9


def test_stalled_response_times_out_and_is_retried(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    server.fail(HELLO, Stall(3.0))
    records = _records(template, server, tmp_path)
    fetcher = Fetcher(tmp_path / "cache", 4, timeout=0.5, backoff=0.01)
    paths = fetcher.fetch_all(typed(records))
    assert [sha256(p) for p in paths] == [r["sha256"] for r in records]
    assert len(server.requests_for(HELLO)) == 2


def test_wrong_body_is_a_checksum_error_and_leaves_nothing_behind(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    server.fail(HELLO, Wrong())
    with pytest.raises(portpack.FetchError) as info:
        _pack(template, server, tmp_path)
    url = f"{server.url}linux-64/{HELLO}"
    message = str(info.value)
    assert "hello-c-1.0-hb0f4dca_0" in message and url in message
    assert "does not match the checksum in the lock" in message
    assert info.value.url == url
    assert len(server.requests_for(HELLO)) == 1  # the same server would send the same bytes
    cache = tmp_path / "cache"
    assert not [p for p in cache.rglob("*") if "hello-c" in p.name]
    assert part_files(cache) == []
    assert not (tmp_path / "env.tar").exists()
    assert_cache_sound(cache, _records(template, server, tmp_path))


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (404, "no longer serves this file"),
        (401, "needs credentials: give an auth file (--auth-file or $RATTLER_AUTH_FILE)"),
        (403, "refuses access without credentials"),
    ],
)
def test_client_errors_fail_fast_saying_what_to_do(
    template: LockTemplate, server: FaultServer, tmp_path: Path, status: int, hint: str
) -> None:
    server.fail(HELLO, Status(status))
    start = time.monotonic()
    with pytest.raises(portpack.FetchError) as info:
        _pack(template, server, tmp_path)
    assert time.monotonic() - start < 5  # no backoff
    message = str(info.value)
    assert f"hello-c-1.0-hb0f4dca_0: HTTP {status}" in message
    assert f"{server.url}linux-64/{HELLO}" in message
    assert hint in message
    assert len(server.requests_for(HELLO)) == 1


def test_gives_up_after_the_retries_naming_package_url_and_reason(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    server.fail(HELLO, *[Status(502)] * 10)
    records = _records(template, server, tmp_path)
    fetcher = Fetcher(tmp_path / "cache", 4, retries=2, backoff=0.01)
    with pytest.raises(portpack.FetchError) as info:
        fetcher.fetch_all(typed(records))
    message = str(info.value)
    assert "hello-c-1.0-hb0f4dca_0" in message and f"{server.url}linux-64/{HELLO}" in message
    assert "HTTP 502" in message and "gave up after 3 attempts" in message
    assert len(server.requests_for(HELLO)) == 3
    assert part_files(tmp_path / "cache") == []


def test_corrupt_cache_entry_is_downloaded_again(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    _pack(template, server, tmp_path)
    cache = tmp_path / "cache"
    entry = next(p for p in cache_entries(cache) if p.name.startswith("hello-c"))
    entry.write_bytes(b"bit rot")
    events = Events()
    _pack(template, server, tmp_path, reporter=events)
    assert len(server.requests_for(HELLO)) == 2
    assert any("hello-c" in e[1] and "does not match" in e[1] for e in events.of("warning"))
    assert_cache_sound(cache, _records(template, server, tmp_path))


def test_leftovers_of_dead_runs_are_removed_and_live_downloads_kept(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    import fcntl

    cache = tmp_path / "cache"
    subdir = cache / "pkgs" / "linux-64"
    subdir.mkdir(parents=True)
    dead = subdir / ".hello-c-1.0-hb0f4dca_0.0123456789abcdef.conda.part-dead"
    live = subdir / ".hello-c-1.0-hb0f4dca_0.0123456789abcdef.conda.part-live"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    old = time.time() - 3600
    for path in (dead, live):
        os.utime(path, (old, old))
    with open(live, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)  # as a running pack holds its download
        _pack(template, server, tmp_path)
        assert not dead.exists()
        assert live.exists()


def test_no_cache_downloads_into_a_temporary_directory_removed_afterwards(
    template: LockTemplate, server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    lock = template.write(tmp_path / "env.lock", server.url)
    portpack.pack(lockfile=lock, output=tmp_path / "env.tar", no_cache=True)
    assert len(server.requests) == 4
    assert list(scratch.iterdir()) == []
    assert (tmp_path / "env.tar").is_file()
    with pytest.raises(portpack.UsageError, match="either --cache-dir or --no-cache"):
        portpack.pack(
            lockfile=lock, output=tmp_path / "x.tar", no_cache=True, cache_dir=tmp_path / "c"
        )


def test_lock_with_unsafe_file_name_is_refused(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    records = _records(template, server, tmp_path)
    records[0]["fn"] = "../../escape.conda"
    with pytest.raises(portpack.PackageError, match=r"invalid file name '\.\./\.\./escape"):
        Fetcher(tmp_path / "cache").fetch_all(typed(records))
    assert server.requests == []


def test_md5_is_checked_when_the_lock_has_no_sha256(
    template: LockTemplate, server: FaultServer, tmp_path: Path
) -> None:
    records = _records(template, server, tmp_path)
    for record in records:
        del record["sha256"]
    paths = Fetcher(tmp_path / "cache", 4).fetch_all(typed(records))
    assert len(paths) == 4
    records[0]["md5"] = "0" * 32
    with pytest.raises(portpack.FetchError, match=r"md5 [0-9a-f]{32}, expected 0{32}"):
        Fetcher(tmp_path / "other", 4).fetch_all(typed(records[:1]))


def test_default_cache_follows_xdg_cache_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from portpack.net.fetch import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "portpack"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "portpack"
