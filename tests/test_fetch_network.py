"""Credentials, mirrors, proxies and TLS, against loopback servers.

Secrets must reach the server and nothing else: not the lockfile, not the archive
(metadata or conda-meta records), not an error message.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

import portpack
from faultserver import Basic, Bearer, CondaToken, FaultServer, Status, Wrong, closed_port_url
from fetchsupport import SMALL_SPECS, LockTemplate, archive_bytes, assert_cache_sound, typed
from portpack.net.auth import Credentials, redact, strip_credentials
from portpack.net.config import load_network_config
from portpack.net.fetch import Fetcher
from portpack.progress import RecordingReporter

HELLO = "hello-c-1.0-hb0f4dca_0.conda"
TOKEN = "tk-5ecret-0f-the-channel"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("RATTLER_AUTH_FILE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def template(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> LockTemplate:
    return LockTemplate.make(fixture_channel, SMALL_SPECS, tmp_path_factory.mktemp("lock"))


def _auth_file(tmp: Path, entries: dict[str, Any]) -> Path:
    path = tmp / "credentials.json"
    path.write_text(json.dumps(entries))
    return path


def _pack(template: LockTemplate, url: str, tmp: Path, **kw: Any) -> Any:
    tmp.mkdir(parents=True, exist_ok=True)
    lock = template.write(tmp / "env.lock", url)
    kw.setdefault("cache_dir", tmp / "cache")
    return portpack.pack(lockfile=lock, output=tmp / "env.tar", **kw)


# -- credentials ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "entry"),
    [
        (Bearer(TOKEN), {"BearerToken": TOKEN}),
        (Basic("alice", TOKEN), {"BasicHTTP": {"username": "alice", "password": TOKEN}}),
        (CondaToken(TOKEN), {"CondaToken": TOKEN}),
    ],
    ids=["bearer", "basic", "conda-token"],
)
def test_401_without_credentials_then_success_with_the_auth_file(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path, auth: Any, entry: Any
) -> None:
    with FaultServer(fixture_channel, auth=auth) as server:
        with pytest.raises(portpack.FetchError) as info:
            _pack(template, server.url, tmp_path)
        message = str(info.value)
        assert "HTTP 401" in message and "--auth-file" in message and "127.0.0.1" in message
        names = [r.name for r in server.requests]
        assert len(names) == len(set(names))  # fails fast: no package is asked for twice

        auth_file = _auth_file(tmp_path, {"127.0.0.1": entry})
        _pack(template, server.url, tmp_path, auth_file=auth_file)
        assert (tmp_path / "env.tar").is_file()
        assert TOKEN.encode() not in archive_bytes(tmp_path / "env.tar")


def test_rejected_credentials_say_where_they_came_from_and_never_show_the_secret(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    auth_file = _auth_file(tmp_path, {"*.0.0.1": {"BearerToken": "wrong-" + TOKEN}})
    with FaultServer(fixture_channel, auth=Bearer(TOKEN)) as server:
        lock = template.write(tmp_path / "env.lock", server.url)
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "portpack",
                "pack",
                "-l",
                str(lock),
                "-o",
                "-",
                "--cache-dir",
                str(tmp_path / "c"),
                "--auth-file",
                str(auth_file),
            ],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1", "HOME": str(tmp_path)},
        )
    assert cli.returncode == 1
    assert "HTTP 401" in cli.stderr and "rejected the credentials" in cli.stderr
    assert "'*.0.0.1'" in cli.stderr and str(auth_file) in cli.stderr
    assert TOKEN not in cli.stderr and cli.stdout == ""


def test_rattler_auth_file_variable_is_read(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_file = _auth_file(tmp_path, {"127.0.0.1": {"BearerToken": TOKEN}})
    monkeypatch.setenv("RATTLER_AUTH_FILE", str(auth_file))
    with FaultServer(fixture_channel, auth=Bearer(TOKEN)) as server:
        _pack(template, server.url, tmp_path)
        assert {r.headers.get("Authorization") for r in server.requests} == {f"Bearer {TOKEN}"}


def test_lock_and_pack_from_a_token_channel_url_store_no_token(
    fixture_channel: Path, tmp_path: Path
) -> None:
    with FaultServer(fixture_channel, auth=CondaToken(TOKEN)) as server:
        channel = f"{server.url}t/{TOKEN}/"
        lock = portpack.lock(
            ["hello-c"], channels=[channel], platforms=["linux-64"], output=tmp_path / "l.lock"
        )
        assert TOKEN not in lock.read_text()
        assert f"{server.url}linux-64/{HELLO}" in lock.read_text()
        # Solving and packing in one go fetches with the token, and stores none.
        result = portpack.pack(
            ["hello-c"],
            channels=[channel],
            platform="linux-64",
            output=tmp_path / "env.tar",
            cache_dir=tmp_path / "cache",
        )
    assert result.packages == ["hello-c-1.0-hb0f4dca_0"]
    assert TOKEN.encode() not in archive_bytes(tmp_path / "env.tar")
    record = result.metadata.packages[0].record
    assert record.url == f"{server.url}linux-64/{HELLO}"
    env = portpack.unpack(tmp_path / "env.tar", tmp_path / "out").prefix
    meta = (env / "conda-meta" / "hello-c-1.0-hb0f4dca_0.json").read_text()
    assert TOKEN not in meta and f"{server.url}linux-64/{HELLO}" in meta


def test_lock_reads_the_auth_file_for_the_solver(fixture_channel: Path, tmp_path: Path) -> None:
    with FaultServer(fixture_channel, auth=Bearer(TOKEN)) as server:
        with pytest.raises(portpack.FetchError) as info:
            portpack.lock(["hello-c"], channels=[server.url], output=tmp_path / "a.lock")
        assert TOKEN not in str(info.value)
        auth_file = _auth_file(tmp_path, {"127.0.0.1": {"BearerToken": TOKEN}})
        lock = portpack.lock(
            ["hello-c"],
            channels=[server.url],
            platforms=["linux-64"],
            output=tmp_path / "b.lock",
            auth_file=auth_file,
        )
    assert HELLO in lock.read_text() and TOKEN not in lock.read_text()


def test_cli_lock_with_an_auth_file_and_a_wrong_token_url(
    fixture_channel: Path, tmp_path: Path
) -> None:
    auth_file = _auth_file(tmp_path, {"127.0.0.1": {"CondaToken": TOKEN}})
    env = {"PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1", "HOME": str(tmp_path)}
    with FaultServer(fixture_channel, auth=CondaToken(TOKEN)) as server:
        base = [sys.executable, "-m", "portpack", "lock", "hello-c", "-p", "linux-64"]
        good = subprocess.run(
            [*base, "-c", server.url, "--auth-file", str(auth_file), "-o", str(tmp_path / "a")],
            capture_output=True,
            text=True,
            env=env,
        )
        wrong = "wr0ng-" + TOKEN
        bad = subprocess.run(
            [*base, "-c", f"{server.url}t/{wrong}/", "-o", str(tmp_path / "b")],
            capture_output=True,
            text=True,
            env=env,
        )
    # Exit statuses are not compared: py-rattler 0.28 sometimes crashes while the
    # interpreter shuts down after a solve (SIGSEGV/SIGABRT), with or without portpack.
    assert f"Wrote {tmp_path / 'a'}" in good.stdout, good.stderr
    assert HELLO in (tmp_path / "a").read_text()
    assert TOKEN not in (tmp_path / "a").read_text() + good.stdout + good.stderr
    assert bad.returncode != 0
    assert "cannot fetch the package index of" in bad.stderr
    assert wrong not in bad.stderr + bad.stdout and not (tmp_path / "b").exists()


def test_auth_file_errors_name_the_file_and_host_only(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"h.example": {"BearerToken": "' + TOKEN + '"')
    with pytest.raises(portpack.UsageError, match=r"bad\.json is not valid JSON") as info:
        Credentials.from_file(bad)
    assert TOKEN not in str(info.value)
    bad.write_text(json.dumps({"h.example": {"Token": TOKEN}}))
    with pytest.raises(portpack.UsageError, match=r"entry for 'h\.example' is not a BearerToken"):
        Credentials.from_file(bad)


def test_host_matching_follows_rattler() -> None:
    creds = Credentials(
        {
            "repo.example.com": _bearer("exact"),
            "*.example.com": _bearer("wild"),
            "127.0.0.1:9000": _bearer("port"),
        }
    )

    def token(url: str) -> str | None:
        found = creds.lookup(url)
        return found[1].token if found else None

    assert token("https://repo.example.com/chan/x.conda") == "exact"
    assert token("https://a.b.example.com/chan") == "wild"
    assert token("https://example.com/chan") == "wild"
    assert token("https://example.org/chan") is None
    assert token("http://127.0.0.1:9000/chan") == "port"
    assert token("http://127.0.0.1:9001/chan") is None


def _bearer(token: str) -> Any:
    from portpack.net.auth import Authentication

    return Authentication("bearer", token=token)


def test_credentials_are_stripped_and_redacted() -> None:
    url = f"https://bob:{TOKEN}@conda.example.com/t/{TOKEN}/chan/linux-64/x.conda"
    assert strip_credentials(url) == "https://conda.example.com/chan/linux-64/x.conda"
    text = redact(f"failed: {url} (token {TOKEN})", [TOKEN])
    assert TOKEN not in text
    assert "https://***@conda.example.com/t/***/chan/linux-64/x.conda" in text
    assert strip_credentials("conda-forge") == "conda-forge"


# -- mirrors ----------------------------------------------------------------------------


def test_mirror_that_is_down_is_skipped_for_the_next_one(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    upstream = "https://conda.example.invalid/private/"
    with FaultServer(fixture_channel) as good:
        config = tmp_path / "portpack.toml"
        config.write_text(f'[mirrors]\n"{upstream}" = ["{closed_port_url()}", "{good.url}"]\n')
        reporter = RecordingReporter()
        _pack(template, upstream, tmp_path, config=config, reporter=reporter)
        assert sorted(r.name for r in good.requests) == sorted(
            r["fn"] for r in template.records(tmp_path / "env.lock")
        )
    assert reporter.warnings == []


def test_mirror_serving_a_wrong_file_is_passed_over(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    with FaultServer(fixture_channel) as bad, FaultServer(fixture_channel) as good:
        bad.fail(HELLO, Wrong())
        config = tmp_path / "c.toml"
        config.write_text(f'[mirrors]\n"{bad.url}" = ["{bad.url}", "{good.url}"]\n')
        _pack(template, bad.url, tmp_path, config=config)
        assert [r.name for r in good.requests] == [HELLO]
    assert_cache_sound(tmp_path / "cache", template.records(tmp_path / "env.lock"))


def test_every_mirror_failing_lists_each_failure(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    with FaultServer(fixture_channel) as one, FaultServer(fixture_channel) as two:
        one.fail(HELLO, Status(404))
        two.fail(HELLO, Status(403))
        config = tmp_path / "c.toml"
        config.write_text(f'[mirrors]\n"{one.url}" = ["{one.url}", "{two.url}"]\n')
        with pytest.raises(portpack.FetchError) as info:
            _pack(template, one.url, tmp_path, config=config)
    message = str(info.value)
    assert "from any of its mirrors" in message
    assert f"HTTP 404 Not Found from {one.url}" in message
    assert f"HTTP 403 Forbidden from {two.url}" in message


def test_lock_uses_the_mirrors_too(fixture_channel: Path, tmp_path: Path) -> None:
    upstream = "https://conda.example.invalid/chan/"
    with FaultServer(fixture_channel) as mirror:
        config = tmp_path / "c.toml"
        config.write_text(f'[mirrors]\n"{upstream}" = ["{mirror.url}"]\n')
        lock = portpack.lock(
            ["hello-c"],
            channels=[upstream],
            platforms=["linux-64"],
            output=tmp_path / "m.lock",
            config=config,
        )
    assert f"{upstream}linux-64/{HELLO}" in lock.read_text()


def test_config_file_errors_and_warnings(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[mirrors\n")
    with pytest.raises(portpack.UsageError, match=r"config file .*bad\.toml is invalid"):
        load_network_config(config)
    config.write_text('[portpack]\ninsecure-host = ["x"]\n')
    with pytest.raises(portpack.UsageError, match=r"unknown key\(s\) in \[portpack\]"):
        load_network_config(config)
    config.write_text('default-channels = ["x"]\nbogus = 1\n[concurrency]\ndownloads = 7\n')
    reporter = RecordingReporter()
    net = load_network_config(config, reporter=reporter)
    assert net.concurrency == 7
    assert reporter.warnings == [f"config file {config}: key 'bogus' is not used by portpack"]


# -- proxies ----------------------------------------------------------------------------


def test_http_proxy_from_the_environment_is_used(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = "http://channel.example.invalid/"
    with FaultServer(fixture_channel) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        _pack(template, origin, tmp_path)
        assert len(proxy.requests) == 4 and all(r.proxied for r in proxy.requests)
        monkeypatch.setenv("NO_PROXY", "channel.example.invalid")
        fetcher = Fetcher(tmp_path / "c2", retries=0)
        with pytest.raises(portpack.FetchError, match="cannot connect"):
            fetcher.fetch_all(typed(template.records(tmp_path / "env.lock")))
        assert len(proxy.requests) == 4


def test_proxy_from_the_config_file(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    with FaultServer(fixture_channel) as proxy, FaultServer(fixture_channel) as direct:
        config = tmp_path / "c.toml"
        config.write_text(
            f'[proxy-config]\nhttp = "{proxy.url}"\nnon-proxy-hosts = ["localhost"]\n'
        )
        _pack(template, "http://channel.example.invalid/", tmp_path / "a", config=config)
        assert len(proxy.requests) == 4 and all(r.proxied for r in proxy.requests)
        _pack(template, direct.url.replace("127.0.0.1", "localhost"), tmp_path / "b", config=config)
        assert len(direct.requests) == 4 and len(proxy.requests) == 4


# -- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> tuple[trustme.CA, ssl.SSLContext]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return ca, context


def test_tls_with_a_private_ca(
    fixture_channel: Path,
    template: LockTemplate,
    tmp_path: Path,
    tls: tuple[trustme.CA, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca, context = tls
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with FaultServer(fixture_channel, tls=context) as server:
        assert server.url.startswith("https://")
        with pytest.raises(portpack.FetchError) as info:
            _pack(template, server.url, tmp_path / "a")
        message = str(info.value)
        assert "TLS certificate of 127.0.0.1 cannot be verified" in message
        assert "--ca-bundle" in message and "--insecure-host 127.0.0.1" in message

        _pack(template, server.url, tmp_path / "b", ca_bundle=bundle)
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        _pack(template, server.url, tmp_path / "c")
        monkeypatch.delenv("SSL_CERT_FILE")
        _pack(template, server.url, tmp_path / "d", insecure_hosts=["127.0.0.1"])
        with pytest.raises(portpack.FetchError, match="cannot be verified"):
            _pack(template, server.url, tmp_path / "e", insecure_hosts=["other.example"])
    for done in "bcd":
        assert (tmp_path / done / "env.tar").is_file()


def test_lock_over_tls_with_a_private_ca(
    fixture_channel: Path, tmp_path: Path, tls: tuple[trustme.CA, ssl.SSLContext]
) -> None:
    ca, context = tls
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    def lock(name: str, **kw: Any) -> Path:
        # A new server (port) each time: nothing comes from py-rattler's repodata cache.
        with FaultServer(fixture_channel, tls=context) as server:
            out = tmp_path / name
            return portpack.lock(
                ["hello-c"], channels=[server.url], platforms=["linux-64"], output=out, **kw
            )

    with pytest.raises(portpack.FetchError, match=r"UnknownIssuer|certificate"):
        lock("a.lock")
    assert HELLO in lock("b.lock", ca_bundle=bundle).read_text()
    assert HELLO in lock("c.lock", insecure_hosts=["127.0.0.1"]).read_text()


def test_missing_ca_bundle_is_a_usage_error(template: LockTemplate, tmp_path: Path) -> None:
    with pytest.raises(portpack.UsageError, match=r"CA bundle .*nope\.pem does not exist"):
        _pack(template, "https://127.0.0.1:1/", tmp_path, ca_bundle=tmp_path / "nope.pem")


def test_config_file_in_toml_11_as_pixi_writes_it(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    """A proxy table spread over lines with a trailing comma (TOML 1.1) is read."""
    with FaultServer(fixture_channel) as proxy:
        config = tmp_path / "c.toml"
        config.write_text(f'proxy-config = {{\n    http = "{proxy.url}",\n}}\n')
        _pack(template, "http://channel.example.invalid/", tmp_path / "a", config=config)
        assert len(proxy.requests) == 4 and all(r.proxied for r in proxy.requests)
