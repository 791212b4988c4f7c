"""Archives streamed from http(s) URLs (portpack.remote.http) into ``portpack.unpack``.

Every server is a :class:`faultserver.FaultServer` on 127.0.0.1 started by the test;
faults (cut connections, wrong lengths, no range support) are queued per request.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import ssl
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import portpack
from faultserver import (
    Basic,
    Drop,
    FaultServer,
    Length,
    Redirect,
    Short,
    Stall,
    Status,
    closed_port_url,
)
from portpack.errors import FetchError, PortpackError, UsageError
from portpack.progress import Reporter
from portpack.remote.http import HttpStream, open_url
from portpack.remote.options import SourceOptions
from treesnap import diff, snapshot

HISTORY = ("conda-meta/history",)  # names the archive it came from: a path or a URL
FAST = SourceOptions(backoff=0.0, timeout=10.0)
Snapshot = dict[str, tuple[str, int, str]]


class Recorder(Reporter):
    def __init__(self) -> None:
        self.retries: list[tuple[str, str, float]] = []
        self.bytes = 0

    def on_download_retry(self, name: str, reason: str, delay: float) -> None:
        self.retries.append((name, reason, delay))

    def on_transfer_progress(self, nbytes: int, packages: int = 0) -> None:
        self.bytes += nbytes


@pytest.fixture(scope="module")
def served(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``env.tar``, a portpack archive of hello-c and python."""
    work = tmp_path_factory.mktemp("http-source")
    lock = portpack.lock(
        ["hello-c", "python"],
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=work / "pixi.lock",
    )
    root = work / "www"
    root.mkdir()
    portpack.pack(lockfile=lock, output=root / "env.tar", cache_dir=work / "cache")
    return root


@pytest.fixture(scope="module")
def archive(served: Path) -> Path:
    return served / "env.tar"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every streamed unpack that should succeed goes: placeholders hold the
    prefix, so trees compare only when they were unpacked to the same path."""
    return tmp_path_factory.mktemp("place")


@pytest.fixture(scope="module")
def reference(archive: Path, place: Path) -> Snapshot:
    """The prefix unpacking the file makes (removed again: streamed unpacks go there)."""
    prefix = portpack.unpack(archive, place, "env").prefix
    tree = snapshot(prefix, skip=HISTORY)
    shutil.rmtree(prefix)
    return tree


@pytest.fixture
def server(served: Path) -> Iterator[FaultServer]:
    with FaultServer(served) as fs:
        yield fs


@pytest.fixture
def check(place: Path, reference: Snapshot) -> Callable[..., str]:
    """``check(url, reporter=None, **options)``: stream ``url`` (``FAST`` with the
    :class:`SourceOptions` given) into ``place``, compare the tree against unpacking
    the file, and return the history the prefix recorded."""

    def run(url: str, reporter: Reporter | None = None, **options: Any) -> str:
        prefix = place / "env"
        try:
            with open_url(url, replace(FAST, **options), reporter=reporter) as stream:
                portpack.unpack(stream, place, "env")
            assert diff(reference, snapshot(prefix, skip=HISTORY)) == []
            return (prefix / "conda-meta" / "history").read_text()
        finally:
            shutil.rmtree(prefix, ignore_errors=True)

    return run


def unpack_url(url: str, out: Path) -> Path:
    with open_url(url, FAST) as stream:
        return portpack.unpack(stream, out, "env").prefix


def sent(server: FaultServer) -> int:
    return sum(r.sent for r in server.requests_for("env.tar"))


# -- streaming ------------------------------------------------------------------------


def test_streamed_unpack_makes_the_same_prefix_as_the_file(
    server: FaultServer, archive: Path, check: Callable[..., str]
) -> None:
    size = archive.stat().st_size
    recorder = Recorder()
    with open_url(server.url + "env.tar") as stream:
        assert isinstance(stream, HttpStream)
        assert stream.size == size
        assert stream.name == server.url + "env.tar"
        assert stream.read(100) == archive.read_bytes()[:100]
        assert stream.position() == 100
    history = check(server.url + "env.tar", reporter=recorder)
    assert f"portpack unpack {server.url}env.tar" in history
    assert recorder.bytes == size
    assert recorder.retries == []
    assert [r.status for r in server.requests_for("env.tar")] == [200, 200]


@pytest.mark.parametrize("cut", [Drop, Short], ids=["reset", "closed"])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_a_cut_connection_is_resumed_by_range(
    server: FaultServer,
    archive: Path,
    check: Callable[..., str],
    tmp_path: Path,
    cut: type[Drop] | type[Short],
    fraction: float,
) -> None:
    size = archive.stat().st_size
    server.fail("env.tar", cut(int(size * fraction)))
    recorder = Recorder()
    check(server.url + "env.tar", reporter=recorder)
    first, *resumed = server.requests_for("env.tar")
    assert "Range" not in first.headers
    assert resumed, "the cut was not resumed"
    etag = resumed[0].headers.get("If-Range")
    assert etag and etag.startswith('"')
    for request in resumed:
        assert request.status == 206
        assert request.headers["Range"].startswith("bytes=")
        assert int(request.headers["Range"][6:-1]) > 0
    assert sent(server) <= 1.2 * size, (sent(server), size)
    assert len(recorder.retries) == len(resumed)
    assert all(name == server.url + "env.tar" for name, _, _ in recorder.retries)


def test_several_cuts_in_one_transfer_are_all_resumed(
    server: FaultServer, archive: Path, check: Callable[..., str], tmp_path: Path
) -> None:
    size = archive.stat().st_size
    server.fail("env.tar", Drop(size // 4), Short(size // 4), Drop(size // 4))
    check(server.url + "env.tar", retries=1)
    assert len(server.requests_for("env.tar")) == 4
    assert sent(server) <= 1.2 * size


def test_a_silent_server_times_out_and_is_asked_again(
    server: FaultServer, check: Callable[..., str], tmp_path: Path
) -> None:
    server.fail("env.tar", Stall(30), Stall(30, before_headers=True))
    check(server.url + "env.tar", timeout=0.5)
    assert len(server.requests_for("env.tar")) == 3


def test_errors_worth_retrying_are_retried_a_bounded_number_of_times(
    server: FaultServer, check: Callable[..., str], tmp_path: Path
) -> None:
    server.fail("env.tar", Status(503, retry_after="0"), Status(429))
    recorder = Recorder()
    check(server.url + "env.tar", reporter=recorder)
    assert [reason for _, reason, _ in recorder.retries] == [
        f"{server.url}env.tar answered HTTP 503",
        f"{server.url}env.tar answered HTTP 429",
    ]
    server.fail("env.tar", *[Status(500)] * 3)
    with pytest.raises(FetchError, match=r"HTTP 500 \(gave up after 3 attempts in a row\)"):
        open_url(server.url + "env.tar", SourceOptions(retries=2, backoff=0.0))


def test_a_refused_connection_gives_up_after_the_retries(tmp_path: Path) -> None:
    url = closed_port_url() + "env.tar"
    recorder = Recorder()
    with pytest.raises(FetchError) as caught:
        open_url(url, SourceOptions(retries=2, backoff=0.0), reporter=recorder)
    assert f"cannot download {url}: cannot connect to {url}" in str(caught.value)
    assert caught.value.url == url
    assert len(recorder.retries) == 2


def test_a_pixi_pack_archive_streams_and_resumes_too(
    served: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lock = next(served.parent.glob("pixi.lock"))
    www = tmp_path_factory.mktemp("pixi-www")
    archive = www / "env.tar"
    portpack.pack(
        lockfile=lock,
        output=archive,
        cache_dir=served.parent / "cache",
        archive_format="pixi-pack",
    )
    out = tmp_path / "out"
    expected = snapshot(portpack.unpack(archive, out, "env").prefix, skip=(*HISTORY, "conda-meta/"))
    expected_records = {
        r["fn"]: r
        for r in (json.loads(p.read_text()) for p in (out / "env" / "conda-meta").glob("*.json"))
    }
    shutil.rmtree(out / "env")
    with FaultServer(www) as server:
        server.fail("env.tar", Drop(archive.stat().st_size // 2))
        url = server.url + "env.tar"
        prefix = unpack_url(url, out)
        assert [r.status for r in server.requests_for("env.tar")] == [200, 206]
    # conda-meta records carry the archive's URL as it was given (``<url>#channel/...``,
    # not a file:// URL made of it), the one thing that differs; the rest of each
    # record must be the same.
    assert diff(expected, snapshot(prefix, skip=(*HISTORY, "conda-meta/"))) == []
    for record in (out / "env" / "conda-meta").glob("*.json"):
        ours = json.loads(record.read_text())
        assert ours.pop("url") == f"{url}#channel/{ours['subdir']}/{ours['fn']}"
        assert ours["fn"] in expected_records
        theirs = dict(expected_records[ours["fn"]])
        theirs.pop("url")
        assert ours == theirs


# -- servers without range support, wrong lengths -------------------------------------


def test_without_range_support_a_restart_before_any_byte_was_read_works(
    served: Path, check: Callable[..., str], tmp_path: Path
) -> None:
    with FaultServer(served, ranges=False) as server:
        server.fail("env.tar", Short(0), Drop(0))
        check(server.url + "env.tar")
        requests = server.requests_for("env.tar")
    assert len(requests) == 3
    assert all("Range" not in r.headers for r in requests)


def test_without_range_support_a_cut_after_bytes_were_read_fails_and_leaves_nothing(
    served: Path, archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with FaultServer(served, ranges=False) as server:
        server.fail("env.tar", Drop(archive.stat().st_size // 2))
        url = server.url + "env.tar"
        with pytest.raises(FetchError) as caught:
            unpack_url(url, out)
    message = str(caught.value)
    assert message.startswith(f"cannot resume {url} after ")
    assert "the server sent the whole file again" in message
    assert "range support" in message  # the hint
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (1000, "the server has no bytes from"),
        (-1000, "the server sent more bytes than the Content-Length it declared"),
    ],
    ids=["body-shorter", "body-longer"],
)
def test_a_wrong_content_length_is_an_error_and_leaves_nothing(
    server: FaultServer, archive: Path, tmp_path: Path, delta: int, expected: str
) -> None:
    url = server.url + "env.tar"
    server.fail("env.tar", Length(delta))
    with pytest.raises(FetchError, match=expected) as caught, open_url(url, FAST) as stream:
        stream.read()
    assert url in str(caught.value)
    server.fail("env.tar", Length(delta))
    out = tmp_path / "out"
    with pytest.raises(PortpackError):
        unpack_url(url, out)
    assert not out.exists() or list(out.iterdir()) == []


def test_a_missing_file_names_the_url(server: FaultServer) -> None:
    with pytest.raises(FetchError, match=r"cannot download .*/nothing\.tar: HTTP 404"):
        open_url(server.url + "nothing.tar")


@pytest.mark.parametrize(
    "url", ["ftp://example.org/env.tar", "http:///env.tar", "http://example.org:99999/env.tar"]
)
def test_only_http_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(UsageError, match=f"not an http:// or https:// URL: {re.escape(url)}"):
        open_url(url)


# -- TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return context, bundle


def test_tls_with_a_private_ca_given_as_ca_bundle(
    served: Path,
    private_ca: tuple[ssl.SSLContext, Path],
    check: Callable[..., str],
    tmp_path: Path,
) -> None:
    context, bundle = private_ca
    with FaultServer(served, tls=context) as server:
        assert server.url.startswith("https://")
        check(server.url + "env.tar", ca_bundle=bundle)


def test_tls_with_a_private_ca_given_by_ssl_cert_file(
    served: Path,
    private_ca: tuple[ssl.SSLContext, Path],
    check: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context, bundle = private_ca
    with FaultServer(served, tls=context) as server:
        url = server.url + "env.tar"
        with pytest.raises(FetchError, match="TLS certificate is not trusted") as caught:
            open_url(url, FAST)
        assert "--ca-bundle or SSL_CERT_FILE" in str(caught.value)
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        check(url)


def test_an_insecure_host_is_read_without_verifying_its_certificate(
    served: Path, private_ca: tuple[ssl.SSLContext, Path], check: Callable[..., str]
) -> None:
    context, _ = private_ca
    with FaultServer(served, tls=context) as server:
        netloc = server.url.split("//")[1].rstrip("/")
        check(server.url + "env.tar", insecure_hosts=[netloc])
        check(server.url + "env.tar", insecure_hosts=netloc)  # one host, not its letters
        with pytest.raises(FetchError, match="TLS certificate is not trusted"):
            open_url(server.url + "env.tar", replace(FAST, insecure_hosts=["other.example"]))


def test_an_unreadable_ca_bundle_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot use CA bundle .*missing\.pem"):
        open_url("https://127.0.0.1:1/env.tar", SourceOptions(ca_bundle=tmp_path / "missing.pem"))


@pytest.mark.parametrize(
    ("knobs", "named"),
    [
        ({"timeout": 0.0}, "timeout=0.0"),
        ({"timeout": -1.0}, "timeout=-1.0"),
        ({"timeout": float("inf")}, "timeout=inf"),
        ({"timeout": float("nan")}, "timeout=nan"),
        ({"backoff": -0.5}, "backoff=-0.5"),
        ({"backoff": float("inf")}, "backoff=inf"),
        ({"retries": -1}, "got -1"),
    ],
)
def test_options_that_would_leave_a_wait_unbounded_are_refused(
    knobs: dict[str, Any], named: str
) -> None:
    """Every wait is bounded: a timeout or backoff that is not a finite number of
    seconds, or negative retries, is a usage error naming the value, before any
    connection."""
    with pytest.raises(UsageError) as caught:
        SourceOptions(**knobs)
    assert named in str(caught.value)


# -- credentials ----------------------------------------------------------------------

USER, PASSWORD = "fleet", "s3cret-pass-word"


@pytest.fixture
def private_server(served: Path) -> Iterator[FaultServer]:
    with FaultServer(served, auth=Basic(USER, PASSWORD)) as fs:
        yield fs


def netrc_for(tmp_path: Path, host: str, password: str = PASSWORD) -> Path:
    path = tmp_path / "netrc"
    path.write_text(f"machine {host}\n  login {USER}\n  password {password}\n")
    path.chmod(0o600)
    return path


def secrets_in(text: str) -> list[str]:
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return [s for s in (PASSWORD, encoded) if s in text]


def test_netrc_credentials_are_sent(
    private_server: FaultServer,
    check: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    netrc = netrc_for(tmp_path, "127.0.0.1")
    url = private_server.url + "env.tar"
    check(url, netrc_file=netrc)
    monkeypatch.setenv("NETRC", str(netrc))  # curl's and pip's variable
    check(url)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.netrc, the default
    monkeypatch.delenv("NETRC")
    (tmp_path / "home").mkdir()
    netrc.rename(tmp_path / "home" / ".netrc")
    check(url)


def test_without_credentials_a_401_says_what_to_do(
    private_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)
    url = private_server.url + "env.tar"
    with pytest.raises(FetchError) as caught:
        open_url(url, FAST)
    assert str(caught.value) == (
        f"cannot download {url}: HTTP 401, authentication required\n"
        "No credentials were found for this host: add it to ~/.netrc (or the file $NETRC "
        "names), or give an --auth-file."
    )


def test_auth_file_credentials_are_sent(
    private_server: FaultServer, check: Callable[..., str], tmp_path: Path
) -> None:
    auth = tmp_path / "credentials.json"
    entry = {"BasicHTTP": {"username": USER, "password": PASSWORD}}
    auth.write_text(json.dumps({f"127.0.0.1:{private_server.port}": entry}))
    url = private_server.url + "env.tar"
    check(url, auth_file=auth)


def test_credentials_never_appear_in_errors_or_retry_reasons(
    private_server: FaultServer, tmp_path: Path
) -> None:
    wrong = netrc_for(tmp_path, "127.0.0.1", password="not-" + PASSWORD)
    url = private_server.url + "env.tar"
    with pytest.raises(FetchError) as caught:
        open_url(url, replace(FAST, netrc_file=wrong))
    assert "HTTP 401" in str(caught.value)
    assert f"The credentials from the netrc file {wrong} were refused." in str(caught.value)
    assert "not-" + PASSWORD not in str(caught.value)
    # Credentials in the URL: masked in every message, and in the stream's name.
    in_url = url.replace("http://", f"http://{USER}:{PASSWORD}@")
    private_server.fail("env.tar", Status(503))
    recorder = Recorder()
    with open_url(in_url, FAST, reporter=recorder) as stream:
        assert secrets_in(stream.name) == []
        assert stream.name == url.replace("http://", "http://***@")
    assert recorder.retries and all(secrets_in(repr(r)) == [] for r in recorder.retries)
    with pytest.raises(FetchError) as caught:
        open_url(in_url.replace("env.tar", "missing.tar"), FAST)
    assert "HTTP 404" in str(caught.value)
    assert secrets_in(str(caught.value)) == [] and secrets_in(str(caught.value.url)) == []
    # A netrc file that cannot be parsed is named, its content is not quoted.
    broken = tmp_path / "broken"
    broken.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD} {PASSWORD}x\n")
    with pytest.raises(UsageError) as caught_usage:
        open_url(url, SourceOptions(netrc_file=broken))
    assert str(broken) in str(caught_usage.value)
    assert PASSWORD not in str(caught_usage.value)


def test_a_redirect_to_another_host_drops_the_credentials(
    served: Path, check: Callable[..., str], tmp_path: Path
) -> None:
    netrc = netrc_for(tmp_path, "127.0.0.1")
    with (
        FaultServer(served, auth=Basic(USER, PASSWORD)) as origin,
        FaultServer(served) as mirror,
    ):
        other_host = f"http://localhost:{mirror.port}/env.tar"
        origin.fail("env.tar", Redirect("/moved/env.tar"))  # same host: credentials kept
        origin.fail("env.tar", Redirect(other_host))
        check(origin.url + "env.tar", netrc_file=netrc)
        assert [r.path for r in origin.requests] == ["/env.tar", "/moved/env.tar"]
        assert all("Authorization" in r.headers for r in origin.requests)
        (followed,) = mirror.requests
        assert followed.status == 200
        assert "Authorization" not in followed.headers


def test_redirects_are_bounded(server: FaultServer) -> None:
    server.fail("env.tar", *[Redirect("/env.tar")] * 11)
    with pytest.raises(FetchError, match="redirected more than 10 times"):
        open_url(server.url + "env.tar")


@pytest.mark.parametrize("location", ["file:///etc/passwd", "http://127.0.0.1:http/env.tar"])
def test_a_redirect_to_anything_but_an_http_url_is_refused(
    server: FaultServer, location: str
) -> None:
    server.fail("env.tar", Redirect(location))
    with pytest.raises(FetchError, match=f"redirected to {re.escape(location)}, which is not"):
        open_url(server.url + "env.tar")


def test_an_auth_file_entry_of_an_unknown_kind_is_named(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"files.example.org": {"Magic": PASSWORD}}))
    with pytest.raises(UsageError, match=r"'files\.example\.org' is not a BearerToken") as caught:
        open_url("https://files.example.org/env.tar", SourceOptions(auth_file=auth))
    assert PASSWORD not in str(caught.value)


# -- proxies ----------------------------------------------------------------------------


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``set(url)``: route every URL through the proxy ``url``, as HTTPS_PROXY does."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)

    def use(url: str) -> None:
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("HTTPS_PROXY", url)

    return use


def test_https_through_a_proxy_is_tunnelled_and_still_verified(
    served: Path,
    private_ca: tuple[ssl.SSLContext, Path],
    check: Callable[..., str],
    proxy_env: Callable[[str], None],
) -> None:
    from support.tunnelproxy import TunnelProxy

    context, bundle = private_ca
    with FaultServer(served, tls=context) as server, TunnelProxy(("corp", PASSWORD)) as proxy:
        netloc = server.url.split("//")[1].rstrip("/")
        proxy_env(proxy.url.replace("//", f"//corp:{PASSWORD}@"))
        check(server.url + "env.tar", ca_bundle=bundle)
        assert proxy.seen and all(s.method == "CONNECT" and s.authorized for s in proxy.seen)
        assert {s.target for s in proxy.seen} == {netloc}
        # TLS is to the server, not the proxy: without the CA the tunnel is refused.
        with pytest.raises(FetchError, match="TLS certificate is not trusted") as caught:
            open_url(server.url + "env.tar", FAST)
        assert PASSWORD not in str(caught.value)


def test_plain_http_goes_to_the_proxy_in_absolute_form_and_no_proxy_is_honoured(
    server: FaultServer,
    check: Callable[..., str],
    proxy_env: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.tunnelproxy import TunnelProxy

    with TunnelProxy() as proxy:
        proxy_env(proxy.url)
        check(server.url + "env.tar")
        assert [s.method for s in proxy.seen] == ["GET"]
        assert proxy.seen[0].target == server.url + "env.tar"
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        check(server.url + "env.tar")
        assert len(proxy.seen) == 1  # reached directly


def test_a_proxy_that_wants_credentials_is_named_without_them(
    served: Path,
    private_ca: tuple[ssl.SSLContext, Path],
    proxy_env: Callable[[str], None],
) -> None:
    from support.tunnelproxy import TunnelProxy

    context, bundle = private_ca
    with FaultServer(served, tls=context) as server, TunnelProxy(("corp", PASSWORD)) as proxy:
        proxy_env(proxy.url.replace("//", "//corp:wrong-one@"))
        with pytest.raises(FetchError, match="407") as caught:
            open_url(server.url + "env.tar", replace(FAST, ca_bundle=bundle))
        assert "wrong-one" not in str(caught.value)
        proxy_env("https://proxy.example:3128")
        with pytest.raises(UsageError, match="only http:// proxies"):
            open_url(server.url + "env.tar", replace(FAST, ca_bundle=bundle))
