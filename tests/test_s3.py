"""``s3://`` channels for ``lock`` and ``pack`` (portpack.net.s3).

moto's server mode stands in for S3: it is an S3-compatible HTTP server (the same REST
API, SigV4 signatures and error codes as AWS) that runs on 127.0.0.1 inside the test,
so everything stays offline; AWS's own S3 cannot be reached here.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import portpack
from portpack.errors import FetchError
from treesnap import diff, snapshot

boto3 = pytest.importorskip("boto3")  # part of the test extras: never skipped there
moto_server = pytest.importorskip("moto.server")

KEY_ID, SECRET = "AKIDPORTPACKTEST", "s3cr3t-portpack-value"
HISTORY = ("env/conda-meta/history",)  # names the archive it came from
HELLO = "hello-c-1.0-hb0f4dca_0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "RATTLER_AUTH_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


@pytest.fixture(scope="module")
def bucket(endpoint: str, fixture_channel: Path) -> str:
    """Bucket ``channels`` holding the fixture channel under ``channel/``."""
    client = _client(endpoint)
    client.create_bucket(Bucket="channels")
    for path in sorted(fixture_channel.rglob("*")):
        if path.is_file():
            key = f"channel/{path.relative_to(fixture_channel).as_posix()}"
            client.upload_file(str(path), "channels", key)
    return "channels"


def _config(tmp_path: Path, endpoint: str, name: str = "channels") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[s3-options.{name}]\nendpoint-url = "{endpoint}"\nregion = "us-east-1"\n'
        "force-path-style = true\n"
    )
    return config


def _lock(tmp_path: Path, config: Path, channel: str) -> Path:
    return portpack.lock(
        ["hello-c", "python"],
        channels=[channel],
        platforms=["linux-64"],
        output=tmp_path / "s3.lock",
        config=config,
    )


def test_lock_pack_unpack_from_s3_matches_directory_channel(
    tmp_path: Path, endpoint: str, bucket: str, fixture_channel: Path
) -> None:
    config = _config(tmp_path, endpoint)
    lock = _lock(tmp_path, config, "s3://channels/channel")
    text = lock.read_text()
    assert "s3://channels/channel/linux-64/" in text or "s3://channels/channel/noarch/" in text
    assert "file://" not in text and SECRET not in text and KEY_ID not in text

    portpack.pack(
        lockfile=lock, output=tmp_path / "s3.tar", cache_dir=tmp_path / "cache", config=config
    )
    local_lock = portpack.lock(
        ["hello-c", "python"],
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=tmp_path / "dir.lock",
    )
    portpack.pack(lockfile=local_lock, output=tmp_path / "dir.tar", cache_dir=tmp_path / "cache2")
    place = tmp_path / "env"  # both unpacked at the same path: the prefix is in files
    portpack.unpack(tmp_path / "s3.tar", place)
    records = tuple(f"env/conda-meta/{p.name}" for p in (place / "env/conda-meta").glob("*.json"))
    first = snapshot(place, (*HISTORY, *records))
    meta = json.loads((place / "env" / "conda-meta" / f"{HELLO}.json").read_text())
    assert meta["url"] == f"s3://channels/channel/linux-64/{HELLO}.conda"
    shutil.rmtree(place)
    portpack.unpack(tmp_path / "dir.tar", place)
    # Only the conda-meta records differ: they name where each package came from.
    assert first and diff(first, snapshot(place, (*HISTORY, *records))) == []


def test_missing_credentials_name_the_url(
    tmp_path: Path, endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(FetchError) as info:
        _lock(tmp_path, _config(tmp_path, endpoint), "s3://channels/channel")
    message = str(info.value) + (info.value.hint or "")
    assert "s3://channels/channel" in message and "credentials" in message


def test_wrong_bucket_names_the_url_and_hides_credentials(
    tmp_path: Path, endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The S3Credentials entry of the auth file is used, and never shown.
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps(
            {"s3://nosuch": {"S3Credentials": {"access_key_id": "A", "secret_access_key": SECRET}}}
        )
    )
    config = _config(tmp_path, endpoint, "nosuch")
    with pytest.raises(FetchError) as info:
        portpack.lock(
            ["hello-c"],
            channels=["s3://nosuch/channel"],
            platforms=["linux-64"],
            output=tmp_path / "x.lock",
            config=config,
            auth_file=auth,
        )
    message = str(info.value) + (info.value.hint or "")
    assert "s3://nosuch/channel" in message and "bucket does not exist" in message
    assert SECRET not in message
    assert not (tmp_path / "x.lock").exists()


def test_missing_package_and_bad_bytes(
    tmp_path: Path, endpoint: str, bucket: str, fixture_channel: Path
) -> None:
    config = _config(tmp_path, endpoint)
    lock = _lock(tmp_path, config, "s3://channels/channel")
    text = lock.read_text()
    client = _client(endpoint)
    # A locked package that the bucket no longer has.
    urls = [
        line.split("conda: ", 1)[1].strip() for line in text.splitlines() if "conda: s3://" in line
    ]
    assert urls
    victim = next(u for u in urls if "hello-c" in u)
    key = victim.removeprefix("s3://channels/")
    original = client.get_object(Bucket="channels", Key=key)["Body"].read()
    client.delete_object(Bucket="channels", Key=key)
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as info:
        portpack.pack(lockfile=lock, output=tmp_path / "a.tar", cache_dir=cache, config=config)
    assert victim in str(info.value) and "no such object" in str(info.value)
    assert not (tmp_path / "a.tar").exists()
    # Bytes that differ from the lock's sha256: refused, no cache entry left.
    client.put_object(
        Bucket="channels",
        Key=key,
        Body=original[:100] + bytes([original[100] ^ 1]) + original[101:],
    )
    try:
        with pytest.raises(FetchError) as info:
            portpack.pack(lockfile=lock, output=tmp_path / "b.tar", cache_dir=cache, config=config)
        assert "does not match the checksum" in str(info.value) and victim in str(info.value)
        fn = victim.rsplit("/", 1)[1].removesuffix(".conda").removesuffix(".tar.bz2")
        assert not [p for p in cache.rglob("*") if p.name.startswith(fn)]
        assert not (tmp_path / "b.tar").exists()
    finally:
        client.put_object(Bucket="channels", Key=key, Body=original)


def test_transient_answers_are_retried_and_a_403_is_not(
    tmp_path: Path, endpoint: str, bucket: str
) -> None:
    """Through a front that answers with faults on the way to the S3 stand-in: 503s on
    package downloads are retried with the fetch policy and the pack succeeds; a 403
    names the URL, says access was denied, is not retried, and leaves nothing."""
    from support.ociregistry import FaultProxy

    lock = _lock(tmp_path, _config(tmp_path, endpoint), "s3://channels/channel")
    front = FaultProxy(SimpleNamespace(port=int(endpoint.rsplit(":", 1)[1])))
    try:
        config = _config(tmp_path, f"http://{front.netloc}")
        policy = config.read_text() + "[portpack]\nretry-backoff = 0.01\n"
        config.write_text(policy)
        front.fail[("GET", "linux-64")] = 2
        portpack.pack(
            lockfile=lock, output=tmp_path / "a.tar", cache_dir=tmp_path / "c1", config=config
        )
        gets = [
            path for method, path, _ in front.log if method == "GET" and path.endswith(".conda")
        ]
        assert len(gets) == len(set(gets)) + 2  # two answered 503, asked again
        front.log.clear()
        front.fail_status = 403
        front.fail[("GET", "linux-64")] = 1
        with pytest.raises(FetchError) as info:
            portpack.pack(
                lockfile=lock, output=tmp_path / "b.tar", cache_dir=tmp_path / "c2", config=config
            )
        message = str(info.value)
        assert "access denied" in message and "s3://channels/channel/linux-64/" in message
        assert SECRET not in message + (info.value.hint or "")
        denied = [p for m, p, _ in front.log if m == "GET" and p.endswith(".conda")]
        assert len(denied) == len(set(denied))  # the 403 was not asked again
        assert not (tmp_path / "b.tar").exists()
        assert not [p for p in (tmp_path / "c2").rglob("*") if p.name.endswith(".conda")]
    finally:
        front.stop()


def test_unpack_of_a_presigned_https_url_through_the_http_source(
    tmp_path: Path, endpoint: str, bucket: str, fixture_channel: Path
) -> None:
    """An archive shipped through S3 needs no S3 client to unpack: a presigned URL is a
    plain HTTP(S) URL (the signature is in its query string) for portpack.remote.http."""
    from portpack.remote.http import open_url
    from portpack.remote.options import SourceOptions

    lock = portpack.lock(
        ["hello-c"],
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=tmp_path / "p.lock",
    )
    portpack.pack(lockfile=lock, output=tmp_path / "p.tar", cache_dir=tmp_path / "cache")
    client = _client(endpoint)
    client.upload_file(str(tmp_path / "p.tar"), bucket, "archives/p.tar")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "archives/p.tar"}, ExpiresIn=600
    )
    assert "Signature" in url
    with open_url(url, SourceOptions(timeout=30.0, backoff=0.0)) as stream:
        portpack.unpack(stream, tmp_path / "streamed", "env")
    portpack.unpack(tmp_path / "p.tar", tmp_path / "file", "env")
    skip = ("conda-meta/history",)
    streamed = snapshot(tmp_path / "streamed" / "env", skip)
    assert streamed and streamed.keys() == snapshot(tmp_path / "file" / "env", skip).keys()


def test_without_boto3_the_error_names_the_extra(
    tmp_path: Path, endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from portpack.errors import UsageError

    monkeypatch.setitem(sys.modules, "boto3", None)  # what an install without [s3] sees
    with pytest.raises(UsageError, match=r"pip install 'portpack\[s3\]'"):
        _lock(tmp_path, _config(tmp_path, endpoint), "s3://channels/channel")
