"""Fetch under chaos: every wait is bounded and every failure gives its connection back.

A loopback server fails requests (500, 429 with ``Retry-After``, bodies cut short or
reset, silence before the body or before anything, redirects with endless bodies);
``portpack pack --concurrency 3`` must finish with every package verified, or give up
in bounded time naming the package and the URL and leaving nothing behind.  "Bounded"
is shown by each test finishing under its timeout marker and by the number of
requests the server saw, never by measuring time.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import portpack
from faultserver import (
    CondaToken,
    Drop,
    FaultServer,
    Redirect,
    Short,
    Stall,
    Status,
    Trickle,
)
from fetchsupport import (
    LockTemplate,
    assert_cache_sound,
    build_big_channel,
    cache_entries,
    chaos,
    finish,
    part_files,
    payload,
    policy_config,
    run_pack,
    sha256,
    typed,
)
from portpack.install.verify import verify
from portpack.net.config import FetchPolicy, NetworkConfig, load_network_config
from portpack.net.fetch import Fetcher
from portpack.net.transport import Transport
from portpack.progress import Reporter

COUNT = 50
SIZE = 2000
NAME = "chaos"
TOKEN = "tk-chaos-5ecret"
#: Short waits for the tests: a stall of STALL seconds is ended by the read timeout.
FAST = {
    "retries": 8,
    "retry_backoff": 0.05,
    "retry_max_wait": 1.0,
    "connect_timeout": 5.0,
    "read_timeout": 0.5,
}
STALL = 3.0
#: The chaos: what a failing request gets (each about as often).
MAKERS = [
    lambda rng: Status(500),
    lambda rng: Status(429, retry_after="1"),
    lambda rng: Short(after=rng.randrange(1, SIZE)),
    lambda rng: Drop(after=rng.randrange(1, SIZE)),
    lambda rng: Stall(STALL),
    lambda rng: Stall(STALL, before_headers=True),
]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("RATTLER_AUTH_FILE", raising=False)


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LockTemplate]:
    root = build_big_channel(tmp_path_factory.mktemp("chaos"), COUNT, SIZE, name=NAME)
    specs = [f"{NAME}-{i}" for i in range(COUNT)]
    return root, LockTemplate.make(root, specs, tmp_path_factory.mktemp("chaoslock"))


def _files(records: list[dict[str, Any]]) -> list[str]:
    return sorted(str(r["fn"]) for r in records)


def _assert_archive_verifies(archive: Path, tmp: Path) -> None:
    """Unpack ``archive``: every package is there, ``verify`` passes, every file holds
    exactly the bytes the channel was built with."""
    result = portpack.unpack(archive, tmp / "out", "env")
    prefix = Path(result.prefix)
    report = verify(prefix)
    assert report.missing == [] and report.modified == [] and report.extra == []
    assert report.checked == COUNT
    for index in range(COUNT):
        data = (prefix / "share" / NAME / f"{index}.bin").read_bytes()
        assert data == payload(index, SIZE), f"{NAME}-{index} is corrupt"


class Retries(Reporter):
    """Keeps the reasons of the retries the fetcher reports."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def on_download_retry(self, name: str, reason: str, delay: float) -> None:
        self.reasons.append(reason)


# -- the reproduction of issue 11 -------------------------------------------------------


@pytest.mark.timeout(120)
def test_500_to_the_first_request_of_every_package_at_concurrency_3(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    """Each 500 used to keep its pooled connection: after three, every download waited
    forever for a connection."""
    root, template = channel
    cache = tmp_path / "cache"
    config = policy_config(tmp_path / "net.toml", retries=2, retry_backoff=0.01)
    with FaultServer(root) as server:
        lock = template.write(tmp_path / "env.lock", server.url)
        records = template.records(lock)
        for name in _files(records):
            server.fail(name, Status(500))
        proc = run_pack(
            lock, tmp_path / "env.tar", cache, "--concurrency", "3", "--config", str(config)
        )
        status, _, err = finish(proc)
        seen = {name: [r.status for r in server.requests_for(name)] for name in _files(records)}
    assert status == 0, err
    assert seen == {name: [500, 200] for name in _files(records)}
    assert len(cache_entries(cache)) == COUNT and part_files(cache) == []
    assert_cache_sound(cache, records)
    _assert_archive_verifies(tmp_path / "env.tar", tmp_path)


@pytest.mark.timeout(120)
def test_every_kind_of_failure_gives_the_only_connection_back(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    """With one connection, a single failure that kept it would stop everything."""
    root, template = channel
    faults = [
        Status(500),
        Status(429, retry_after="0"),
        Short(after=100),
        Drop(after=100),
        Stall(STALL),
        Stall(STALL, before_headers=True),
        Redirect("", endless=True),  # to the same file, see below
        Status(503),
    ]
    policy = FetchPolicy(retries=2, backoff=0.01, read_timeout=0.5, connect_timeout=5.0)
    with FaultServer(root) as server:
        lock = template.write(tmp_path / "env.lock", server.url)
        records = template.records(lock)
        for name, fault in zip(_files(records), faults, strict=False):
            if isinstance(fault, Redirect):
                fault = Redirect(f"noarch/{name}", endless=True)
            server.fail(name, fault)
        fetcher = Fetcher(tmp_path / "cache", 1, network=NetworkConfig(policy=policy))
        paths = fetcher.fetch_all(typed(records))
        failed = [r for r in server.requests if r.fault is not None]
    assert [sha256(p) for p in paths] == [r["sha256"] for r in records]
    assert len(failed) == len(faults)


def test_a_response_gives_its_connection_back_on_every_path(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    """The mechanism: read to the end, abandoned half-read, an error status, a
    redirect with a body that never ends; the pool has all its slots afterwards."""
    root, template = channel
    policy = FetchPolicy(read_timeout=2.0, connect_timeout=2.0)
    with FaultServer(root) as server:
        lock = template.write(tmp_path / "env.lock", server.url)
        url = str(template.records(lock)[0]["url"])
        name = url.rsplit("/", 1)[1]
        client = Transport(NetworkConfig(), 1, policy)
        try:
            whole = client.get(url, {})
            assert whole.status == 200 and len(whole.read()) > 0
            client.release(whole, reuse=True)
            half = client.get(url, {})
            half.read(10)
            client.release(half, reuse=False)
            server.fail(name, Status(500), Redirect(f"noarch/{name}", endless=True))
            error = client.get(url, {})
            assert error.status == 500
            client.release(error, reuse=False)
            followed = client.get(url, {})  # the redirect's body is never read
            assert followed.status == 200
            client.release(followed, reuse=False)
            assert client.in_use() == 0
            again = client.get(url, {})  # the one slot still works
            assert again.status == 200
            client.release(again, reuse=False)
        finally:
            client.close()
    assert [r.status for r in server.requests_for(name)] == [200, 200, 500, 302, 200, 200]


# -- chaos --------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_pack_under_chaos_completes_and_every_package_verifies(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    root, template = channel
    cache = tmp_path / "cache"
    config = policy_config(tmp_path / "net.toml", **FAST)
    with FaultServer(root) as server:
        server.chooser = chaos(seed=11, rate=1 / 3, makers=MAKERS)
        lock = template.write(tmp_path / "env.lock", server.url)
        records = template.records(lock)
        proc = run_pack(
            lock, tmp_path / "env.tar", cache, "--concurrency", "3", "--config", str(config)
        )
        status, _, err = finish(proc)
        requests = list(server.requests)
    assert status == 0, err
    faults = [r.fault for r in requests if r.fault is not None]
    kinds = {
        type(f).__name__ + ("-silent" if getattr(f, "before_headers", False) else "")
        for f in faults
    }
    assert kinds == {"Status", "Short", "Drop", "Stall", "Stall-silent"}
    assert {f.code for f in faults if isinstance(f, Status)} == {500, 429}
    assert len(faults) >= COUNT // 4  # about a third of the requests failed
    for name in _files(records):  # each package ended with a request that did not fail
        mine = [r for r in requests if r.name == name]
        assert mine[-1].fault is None and mine[-1].status in (200, 206)
    assert len(cache_entries(cache)) == COUNT and part_files(cache) == []
    assert_cache_sound(cache, records)
    _assert_archive_verifies(tmp_path / "env.tar", tmp_path)


@pytest.mark.timeout(120)
def test_server_that_always_fails_gives_up_naming_the_package_and_url(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    root, template = channel
    cache = tmp_path / "cache"
    retries = 3
    # A Retry-After of an hour: honoured only up to retry-max-wait.
    makers = [*MAKERS[:1], lambda rng: Status(429, retry_after="3600"), *MAKERS[2:]]
    config = policy_config(
        tmp_path / "net.toml", **{**FAST, "retries": retries, "retry_max_wait": 0.2}
    )
    with FaultServer(root, auth=CondaToken(TOKEN)) as server:
        server.chooser = chaos(seed=3, rate=1.0, makers=makers)
        lock = template.write(tmp_path / "env.lock", f"{server.url}t/{TOKEN}/")
        out = tmp_path / "env.tar"
        status, _, err = finish(
            run_pack(lock, out, cache, "--concurrency", "3", "--config", str(config))
        )
        counts = {n: len(server.requests_for(n)) for n in _files(template.records(lock))}
    assert status == 1
    assert TOKEN not in err and "Traceback" not in err
    assert err.startswith("portpack: error: cannot download package chaos-")
    named = err.split("cannot download package ", 1)[1].split(" ", 1)[0]
    file = f"{named}.conda"
    assert f"{server.url}noarch/{file}" in err  # the URL, without the token
    assert f"(gave up after {retries + 1} attempts)" in err
    assert counts[file] == retries + 1
    assert max(counts.values()) <= retries + 1
    assert not out.exists()
    assert cache_entries(cache) == [] and part_files(cache) == []


# -- stalls and slow bodies ---------------------------------------------------------------


def _fetch_one(
    server: FaultServer, template: LockTemplate, tmp: Path, policy: FetchPolicy
) -> tuple[Path, dict[str, Any], Retries]:
    lock = template.write(tmp / "env.lock", server.url)
    record = template.records(lock)[0]
    reporter = Retries()
    fetcher = Fetcher(tmp / "cache", 1, reporter, network=NetworkConfig(policy=policy))
    (path,) = fetcher.fetch_all(typed([record]))
    return path, record, reporter


@pytest.mark.timeout(60)
@pytest.mark.parametrize("before_headers", [True, False], ids=["silent", "after-headers"])
def test_a_stall_is_ended_by_the_read_timeout_and_retried(
    channel: tuple[Path, LockTemplate], tmp_path: Path, before_headers: bool
) -> None:
    root, template = channel
    policy = FetchPolicy(read_timeout=0.5, backoff=0.01)
    with FaultServer(root) as server:
        name = str(template.records(template.write(tmp_path / "l", server.url))[0]["fn"])
        server.fail(name, Stall(60.0, before_headers=before_headers))
        path, record, reporter = _fetch_one(server, template, tmp_path, policy)
        assert [r.fault is None for r in server.requests_for(name)] == [False, True]
    assert sha256(path) == record["sha256"]
    (reason,) = reporter.reasons
    assert "timed out" in reason


@pytest.mark.timeout(60)
def test_a_slow_body_that_keeps_coming_is_not_cut(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    root, template = channel
    # 30 pieces 0.1 s apart: the body takes three read timeouts, no gap a tenth of one.
    timeout, pieces, interval = 1.0, 30, 0.1
    with FaultServer(root) as server:
        record = template.records(template.write(tmp_path / "l", server.url))[0]
        server.fail(str(record["fn"]), Trickle(record["size"] // pieces + 1, interval))
        path, record, reporter = _fetch_one(
            server, template, tmp_path, FetchPolicy(read_timeout=timeout)
        )
        assert len(server.requests) == 1
    assert sha256(path) == record["sha256"]
    assert reporter.reasons == []


# -- redirects --------------------------------------------------------------------------


def test_redirects_are_followed_without_reading_bodies_and_loops_end(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    root, template = channel
    with FaultServer(root) as server:
        records = template.records(template.write(tmp_path / "l", server.url))
        first, second = (str(r["fn"]) for r in records[:2])
        server.fail(first, Redirect(f"noarch/{first}", endless=True))
        server.fail(second, *[Redirect(f"noarch/{second}", status=307)] * 30)
        fetcher = Fetcher(tmp_path / "cache", 2, retries=0)
        (path,) = fetcher.fetch_all(typed(records[:1]))
        assert sha256(path) == records[0]["sha256"]
        with pytest.raises(portpack.FetchError) as info:
            fetcher.fetch_all(typed(records[1:2]))
        assert len(server.requests_for(second)) == 11  # the first and ten redirects
    message = str(info.value)
    assert f"package {second[: -len('.conda')]}" in message and "more than 10 redirects" in message
    assert info.value.url == f"{server.url}noarch/{second}"


def test_a_redirect_to_another_origin_does_not_carry_the_credentials(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    import json

    from faultserver import Bearer

    root, template = channel
    auth = tmp_path / "auth.json"
    with FaultServer(root, auth=Bearer(TOKEN)) as origin, FaultServer(root) as other:
        auth.write_text(json.dumps({f"127.0.0.1:{origin.port}": {"BearerToken": TOKEN}}))
        record = template.records(template.write(tmp_path / "l", origin.url))[0]
        name = str(record["fn"])
        origin.fail(name, Redirect(f"{other.url}noarch/{name}"))
        network = load_network_config(auth_file=auth)
        (path,) = Fetcher(tmp_path / "cache", 1, network=network).fetch_all(typed([record]))
        assert origin.requests_for(name)[0].headers["Authorization"] == f"Bearer {TOKEN}"
        assert "Authorization" not in other.requests_for(name)[0].headers
    assert sha256(path) == record["sha256"]


# -- interrupted and bounded ---------------------------------------------------------------


@pytest.mark.timeout(120)
def test_interrupted_pack_ends_its_stalled_downloads_and_leaves_nothing(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    """Reads that would wait for minutes are ended at once by the interrupt."""
    root, template = channel
    cache = tmp_path / "cache"
    config = policy_config(tmp_path / "net.toml", read_timeout=600.0)
    with FaultServer(root) as server:
        server.chooser = lambda name, attempt: Stall(600.0, before_headers=attempt > 0)
        lock = template.write(tmp_path / "env.lock", server.url)
        proc = run_pack(
            lock, tmp_path / "env.tar", cache, "--concurrency", "3", "--config", str(config)
        )
        try:
            while len(server.requests) < 3 or len(part_files(cache)) < 3:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGINT)
        finally:
            status, _, err = finish(proc)
    assert status == 130, err
    assert "Traceback" not in err
    assert part_files(cache) == [] and cache_entries(cache) == []
    assert not (tmp_path / "env.tar").exists()


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("retries", "-1", "retries must be a whole number from 0 up to 100 (got -1)"),
        ("retries", "2.5", "retries must be a whole number"),
        ("read-timeout", "0", "read-timeout must be a number of seconds above 0"),
        ("connect-timeout", "inf", "connect-timeout must be a number of seconds above 0"),
        ("retry-deadline", "1e9", "up to 86400 (got 1000000000.0)"),
        ("retry-backoff", '"fast"', "retry-backoff must be a number of seconds from 0"),
    ],
)
def test_policy_values_are_checked(tmp_path: Path, key: str, value: str, error: str) -> None:
    config = tmp_path / "net.toml"
    config.write_text(f"[portpack]\n{key} = {value}\n")
    with pytest.raises(portpack.UsageError) as info:
        load_network_config(config)
    assert str(config) in str(info.value) and error in str(info.value)


def test_policy_from_the_config_file(tmp_path: Path) -> None:
    config = policy_config(
        tmp_path / "net.toml",
        retries=0,
        retry_backoff=0.5,
        retry_max_wait=2,
        retry_deadline=30,
        connect_timeout=3,
        read_timeout=4.5,
    )
    assert load_network_config(config).policy == FetchPolicy(
        retries=0, backoff=0.5, max_wait=2.0, deadline=30.0, connect_timeout=3.0, read_timeout=4.5
    )
    assert load_network_config().policy == FetchPolicy()


def test_retry_deadline_ends_the_retries_before_the_count_does(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    root, template = channel
    policy = FetchPolicy(retries=50, backoff=0.2, max_wait=0.2, deadline=0.5)
    with FaultServer(root) as server:
        server.chooser = lambda name, attempt: Status(503)
        record = template.records(template.write(tmp_path / "l", server.url))[0]
        fetcher = Fetcher(tmp_path / "cache", 1, network=NetworkConfig(policy=policy))
        with pytest.raises(portpack.FetchError) as info:
            fetcher.fetch_all(typed([record]))
        attempts = len(server.requests)
    # Waits of 0.1-0.2 s: at most six attempts fit before the 0.5 s deadline.
    assert 2 <= attempts <= 6
    assert f"gave up after {attempts} attempts: the next would start after the 0.5 s" in str(
        info.value
    )


@pytest.mark.timeout(60)
def test_local_files_that_would_block_are_refused_at_once(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    """Opening a FIFO waits for a writer that may never come: neither a package path in
    the lock nor a leftover in the cache may be one."""
    _, template = channel
    cache = tmp_path / "cache"
    stale = cache / "pkgs" / "noarch" / ".x.conda.part-fifo"
    stale.parent.mkdir(parents=True)
    os.mkfifo(stale)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fifo = tmp_path / "pkg.conda"
    os.mkfifo(fifo)
    record = template.records(template.write(tmp_path / "l", "http://unused.invalid/"))[0]
    record["url"] = fifo.as_uri()
    with pytest.raises(portpack.FetchError) as info:
        Fetcher(cache, 1).fetch_all(typed([record]))
    assert f"cannot read package {record['name']}-1.0-0 from {fifo}: not a regular file" in str(
        info.value
    )
    assert stale.exists()  # not ours to judge: left alone, and not waited on


@pytest.mark.timeout(60)
def test_a_tls_handshake_that_never_comes_is_ended_by_the_connect_timeout(
    channel: tuple[Path, LockTemplate], tmp_path: Path
) -> None:
    """A listener that accepts connections and never answers the TLS hello."""
    import socket
    import threading

    _, template = channel
    accepted: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.2)
        done = threading.Event()

        def accept() -> None:
            while not done.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
        record = template.records(template.write(tmp_path / "l", url))[0]
        policy = FetchPolicy(retries=1, backoff=0.01, connect_timeout=0.5, read_timeout=600.0)
        try:
            with pytest.raises(portpack.FetchError) as info:
                Fetcher(tmp_path / "cache", 1, network=NetworkConfig(policy=policy)).fetch_all(
                    typed([record])
                )
        finally:
            done.set()
            thread.join(5)
            for conn in accepted:
                conn.close()
    message = str(info.value)
    assert f"{url}noarch/{record['fn']}" in message and "timed out" in message
    assert "(gave up after 2 attempts)" in message
    assert len(accepted) == 2


def test_a_policy_made_in_code_is_checked_too() -> None:
    with pytest.raises(
        portpack.UsageError, match=r"read_timeout must be a number of seconds above"
    ):
        FetchPolicy(read_timeout=float("inf"))
    with pytest.raises(portpack.UsageError, match=r"retries must be a whole number from 0"):
        FetchPolicy(retries=-1)
