"""The one reader of rattler's auth file, as channels, archive URLs and registries see it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portpack.errors import UsageError
from portpack.net.auth import Credentials
from portpack.remote.auth_file import read_auth_file
from portpack.remote.netrc_auth import Credentials as UrlCredentials
from portpack.remote.registry_auth import CredentialSource

ENTRIES = {
    "Repo.Example.org:8443": {"BearerToken": "tok-port"},
    "repo.example.org": {"BasicHTTP": {"username": "u", "password": "pw-host"}},
    "*.example.org": {"CondaToken": "tok-conda"},
    "*.oauth.test": {"OAuth": {"access_token": "tok-oauth", "refresh_token": "r"}},
    "s3://bucket": {"S3Credentials": {"access_key_id": "AK", "secret_access_key": "sk"}},
}


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(doc))
    return path


def test_every_reader_takes_the_kinds_it_can_send(tmp_path: Path) -> None:
    path = _write(tmp_path, ENTRIES)
    auth = read_auth_file(path)
    assert auth.lookup("repo.example.org", 8443) == (
        "repo.example.org:8443",
        auth.entries["repo.example.org:8443"],
    )
    assert auth.lookup("REPO.example.org")[1].kind == "basic"  # type: ignore[index]
    assert auth.lookup("a.b.example.org")[0] == "*.example.org"  # type: ignore[index]
    assert auth.lookup("x.oauth.test")[1].header() == "Bearer tok-oauth"  # type: ignore[index]
    assert set(auth.secrets()) >= {"tok-port", "pw-host", "tok-conda", "tok-oauth", "sk"}

    channels = Credentials.from_file(path)  # channels also send conda tokens
    assert channels.lookup("https://a.example.org/c")[1].kind == "conda-token"  # type: ignore[index]
    assert channels.entries["s3://bucket"].username == "AK"

    urls = UrlCredentials(auth_file=path, netrc_file=_netrc(tmp_path))
    found = urls.for_url("https://repo.example.org:8443/env.tar")
    assert found is not None and found.header == "Bearer tok-port"
    # A conda token is not sent with an archive download: netrc's entry is used instead.
    found = urls.for_url("https://a.example.org/env.tar")
    assert found is not None and found.source.startswith("netrc file")

    registry = CredentialSource(path, environ={}, home=tmp_path)
    credential = registry.lookup("repo.example.org:8443")
    assert credential is not None and credential.token == "tok-port"
    with pytest.raises(UsageError, match=r"'\*\.example\.org' is not a BasicHTTP or BearerToken"):
        registry.lookup("a.example.org")


def _netrc(tmp_path: Path) -> Path:
    path = tmp_path / "netrc"
    path.write_text("machine a.example.org login n password pw-netrc\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "entry",
    [
        {"BasicHTTP": {"username": "u"}},
        {"BearerToken": 7},
        {"S3Credentials": {"access_key_id": "AK"}},
        {"Kerberos": "x"},
        {"BearerToken": "a", "BasicHTTP": {}},
        "secret-as-a-string",
    ],
)
def test_a_bad_entry_names_the_file_and_host_never_the_secret(
    tmp_path: Path, entry: object
) -> None:
    path = _write(tmp_path, {"good.example": {"BearerToken": "fine"}, "bad.example": entry})
    for read in (
        lambda: read_auth_file(path),
        lambda: Credentials.from_file(path),
        lambda: UrlCredentials(auth_file=path),
        lambda: CredentialSource(path, environ={}, home=tmp_path).lookup("good.example"),
    ):
        with pytest.raises(UsageError) as caught:
            read()
        message = str(caught.value)
        assert str(path) in message and "'bad.example'" in message
        assert "secret-as-a-string" not in message and "fine" not in message


def test_not_json_or_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"h": {"BearerToken": "s3cret"')
    with pytest.raises(UsageError, match="is not valid JSON") as caught:
        read_auth_file(path)
    assert "s3cret" not in str(caught.value)
    path.write_text("[]")
    with pytest.raises(UsageError, match="must hold a JSON object"):
        read_auth_file(path)
    with pytest.raises(UsageError, match="cannot read auth file"):
        read_auth_file(tmp_path / "missing.json")
