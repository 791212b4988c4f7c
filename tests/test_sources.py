"""Archives from where fleets fetch them (issue 14), through the CLI and the library:
``unpack``/``inspect`` of ``http(s)://`` URLs and ``oci://`` references, ``push``
(from a file and from standard input) and ``pack -o oci://``.

Every server runs on 127.0.0.1 and is started by the test: :class:`faultserver.FaultServer`
for HTTP, Debian's ``docker-registry`` (tests/support/ociregistry.py) for OCI.  Each
unpack is compared with unpacking the file (tests/treesnap.py).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import portpack
from faultserver import Basic, FaultServer
from hostile import Member, RawPackage, make_archive
from portpack.remote._http import Body
from portpack.remote.oci import MANIFEST_MEDIA_TYPE, RegistryClient, sha256_digest
from portpack.remote.oci_ref import parse_oci_ref
from support.ociregistry import FaultProxy, Registry
from treesnap import diff, snapshot

PORTPACK = [sys.executable, "-m", "portpack"]
HISTORY = ("conda-meta/history",)  # holds the time and the archive's name


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HOME for every run: no credential file of the user's is read."""
    return tmp_path_factory.mktemp("home")


def cli(
    home: Path, *args: str | Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE")}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(home))
    done = subprocess.run(
        [*PORTPACK, *map(str, args)], input=stdin, capture_output=True, env=env, check=False
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    return make_archive(
        root / "www",
        [
            RawPackage("alpha", [Member("share/alpha/data.bin", os.urandom(80_000))]),
            RawPackage("beta", [Member("bin/beta", b"#!/bin/sh\necho beta\n", mode=0o755)]),
        ],
    )


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every unpack goes (placeholders hold the prefix: trees compare only at one path)."""
    return tmp_path_factory.mktemp("place")


@pytest.fixture(scope="module")
def reference(archive: Path, place: Path) -> dict[str, tuple[str, int, str]]:
    prefix = portpack.unpack(archive, place).prefix
    tree = snapshot(prefix, skip=HISTORY)
    shutil.rmtree(prefix)
    return tree


def same_as_file(place: Path, reference: dict[str, tuple[str, int, str]]) -> bool:
    try:
        return diff(reference, snapshot(place / "env", skip=HISTORY)) == []
    finally:
        shutil.rmtree(place / "env", ignore_errors=True)
        for script in place.glob("activate*"):
            script.unlink()


@pytest.fixture
def server(archive: Path) -> Iterator[FaultServer]:
    with FaultServer(archive.parent) as fs:
        yield fs


# -- HTTP(S) ---------------------------------------------------------------------------


def test_cli_unpack_of_a_url_makes_the_same_prefix_as_the_file(
    server: FaultServer, home: Path, place: Path, reference: dict[str, tuple[str, int, str]]
) -> None:
    done = cli(home, "unpack", server.url + "env.tar", "-o", place)
    assert done.returncode == 0, done.stderr
    assert f"Unpacked 2 packages into {place / 'env'}" in done.stdout
    history = (place / "env" / "conda-meta" / "history").read_text()
    assert server.url + "env.tar" in history
    assert same_as_file(place, reference)


def test_library_unpack_and_inspect_take_a_url(
    server: FaultServer, archive: Path, place: Path, reference: dict[str, tuple[str, int, str]]
) -> None:
    portpack.unpack(server.url + "env.tar", place)
    assert same_as_file(place, reference)
    summary = portpack.inspect(server.url + "env.tar")
    assert summary.archive == server.url + "env.tar"
    assert [p.name for p in summary.packages] == ["alpha", "beta"]
    assert summary.packages == portpack.inspect(archive).packages


def test_cli_inspect_of_a_url(server: FaultServer, home: Path, archive: Path) -> None:
    done = cli(home, "inspect", server.url + "env.tar", "--json")
    assert done.returncode == 0, done.stderr
    names = [p["name"] for p in json.loads(done.stdout)["packages"]]
    assert names == ["alpha", "beta"]


def test_cli_inspect_and_diff_hand_every_source_option_to_the_url_client(
    archive: Path, home: Path, tmp_path: Path
) -> None:
    """``--ca-bundle``, ``--netrc``, ``--auth-file`` and ``--insecure-host`` of inspect
    and diff reach the client: a TLS server with a private CA that wants credentials
    is refused without each option and read with it."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    user, password = "fleet", "opt-Secret-7"
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {user} password {password}\n")
    netrc.chmod(0o600)
    with FaultServer(archive.parent, tls=context, auth=Basic(user, password)) as server:
        url = server.url + "env.tar"
        netloc = f"127.0.0.1:{server.port}"
        auth = tmp_path / "auth.json"
        auth.write_text(
            json.dumps({netloc: {"BasicHTTP": {"username": user, "password": password}}})
        )
        untrusted = cli(home, "inspect", url, "--netrc", netrc)
        assert untrusted.returncode == 1 and "TLS certificate is not trusted" in untrusted.stderr
        anonymous = cli(home, "inspect", url, "--ca-bundle", bundle)
        assert anonymous.returncode == 1 and "HTTP 401" in anonymous.stderr
        for how in (
            ["--ca-bundle", bundle, "--netrc", netrc],
            ["--ca-bundle", bundle, "--auth-file", auth],
            ["--insecure-host", netloc, "--netrc", netrc],
        ):
            done = cli(home, "inspect", url, "--json", *how)
            assert done.returncode == 0, (how, done.stderr)
            assert [p["name"] for p in json.loads(done.stdout)["packages"]] == ["alpha", "beta"]
            same = cli(home, "diff", url, archive, *how)
            assert same.returncode == 0, (how, same.stderr)
        assert password not in untrusted.stderr + anonymous.stderr


def test_a_missing_url_is_one_clear_paragraph_and_leaves_nothing(
    server: FaultServer, home: Path, tmp_path: Path
) -> None:
    done = cli(home, "unpack", server.url + "nothing.tar", "-o", tmp_path / "out")
    assert done.returncode != 0
    assert "nothing.tar" in done.stderr and "404" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


# -- OCI ---------------------------------------------------------------------------------


def test_cli_push_then_unpack_by_tag_and_digest_and_inspect(
    registry: Registry,
    archive: Path,
    home: Path,
    place: Path,
    reference: dict[str, tuple[str, int, str]],
) -> None:
    ref = registry.ref("envs/cli:1.4")
    pushed = cli(home, "push", archive, ref)
    assert pushed.returncode == 0, pushed.stderr
    first, counts = pushed.stdout.splitlines()
    assert first.startswith(f"Pushed {ref}@sha256:")
    digest = first.rsplit("@", 1)[1]
    assert counts.startswith("  uploaded ") and "skipped 0 blobs" in counts
    again = cli(home, "push", archive, ref)
    assert again.stdout.splitlines()[0] == first  # same manifest
    assert "uploaded 0 blobs (0 bytes)" in again.stdout  # the registry has every blob

    for source in (ref, registry.ref(f"envs/cli@{digest}")):
        done = cli(home, "unpack", source, "-o", place)
        assert done.returncode == 0, done.stderr
        assert same_as_file(place, reference)

    shown = cli(home, "inspect", ref, "--json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["archive"] == ref
    assert [p["name"] for p in summary["packages"]] == ["alpha", "beta"]


def test_cli_push_from_standard_input(
    registry: Registry,
    archive: Path,
    home: Path,
    place: Path,
    reference: dict[str, tuple[str, int, str]],
) -> None:
    ref = registry.ref("envs/piped:1.0")
    pushed = cli(home, "push", "-", ref, stdin=archive.read_bytes())
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith(f"Pushed {ref}@sha256:")
    portpack.unpack(ref, place)
    assert same_as_file(place, reference)


def test_library_push_unpack_and_inspect(
    registry: Registry,
    archive: Path,
    home: Path,
    place: Path,
    reference: dict[str, tuple[str, int, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(home))
    ref = registry.ref("envs/lib:2")
    result = portpack.push(archive, ref)
    assert isinstance(result, portpack.PushResult)
    assert result.digest.startswith("sha256:") and result.uploaded_blobs == result.layers + 1
    assert portpack.inspect(ref).packages == portpack.inspect(archive).packages
    portpack.unpack(ref, place)
    assert same_as_file(place, reference)


def test_a_missing_tag_is_clear_and_leaves_nothing(
    registry: Registry, archive: Path, home: Path, tmp_path: Path
) -> None:
    portpack.push(archive, registry.ref("envs/tags:1.4"))
    done = cli(home, "unpack", registry.ref("envs/tags:9.9"), "-o", tmp_path / "out")
    assert done.returncode != 0
    assert f"oci://{registry.netloc}/envs/tags:9.9: the tag 9.9" in done.stderr
    assert "1.4" in done.stderr  # the tags it has
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_artifact_that_is_not_portpacks_is_refused_naming_its_media_type(
    registry: Registry, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(home))
    client = RegistryClient(parse_oci_ref(registry.ref("images/other:1")))
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    client.push_blob(sha256_digest(config), Body.of(config))
    image_config = "application/vnd.oci.image.config.v1+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": image_config, "digest": sha256_digest(config), "size": len(config)},
        "layers": [],
    }
    client.put_manifest("1", json.dumps(manifest).encode(), MANIFEST_MEDIA_TYPE)
    client.close()
    for command in (["unpack", "-o", tmp_path / "out"], ["inspect"]):
        done = cli(home, command[0], registry.ref("images/other:1"), *command[1:])
        assert done.returncode != 0
        assert "is not a portpack environment" in done.stderr
        assert image_config in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_inspect_of_a_reference_fetches_no_layer(
    registry: Registry, archive: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(home))
    proxy = FaultProxy(registry)
    try:
        ref = proxy.ref("envs/inspected:1")
        portpack.push(archive, ref)
        proxy.log.clear()
        summary = portpack.inspect(ref)
        assert [p.name for p in summary.packages] == ["alpha", "beta"]
        gets = [path.split("/")[-2] for method, path, _ in proxy.log if method == "GET"]
        assert gets == ["manifests", "blobs"]  # the manifest, then the config: no layer
    finally:
        proxy.stop()


def test_pack_to_a_reference_then_unpack_it_gives_the_packed_tree(
    registry: Registry, fixture_channel: Path, home: Path, tmp_path: Path
) -> None:
    lock = tmp_path / "pixi.lock"
    cache = tmp_path / "cache"
    done = cli(home, "lock", "-c", fixture_channel, "hello-c", "-o", lock)
    assert done.returncode == 0, done.stderr
    ref = registry.ref("envs/packed:1")
    packed = cli(home, "pack", "-l", lock, "-o", ref, "--cache-dir", cache)
    assert packed.returncode == 0, packed.stderr
    assert f"into {ref}" in packed.stdout
    assert f"Pushed {ref}@sha256:" in packed.stdout
    assert not list(cache.glob(".push-*"))  # the temporary archive is gone
    assert (
        cli(home, "pack", "-l", lock, "-o", tmp_path / "env.tar", "--cache-dir", cache).returncode
        == 0
    )
    out = tmp_path / "out"
    expected = snapshot(portpack.unpack(tmp_path / "env.tar", out).prefix, skip=HISTORY)
    shutil.rmtree(out)
    done = cli(home, "unpack", ref, "-o", out)
    assert done.returncode == 0, done.stderr
    assert diff(expected, snapshot(out / "env", skip=HISTORY)) == []
    assert (out / "env" / "bin" / "hello").is_file()


def test_pack_to_a_bad_reference_names_it_before_fetching(home: Path, tmp_path: Path) -> None:
    lock = tmp_path / "pixi.lock"
    lock.write_text("version: 6\nenvironments: {}\npackages: []\n")
    done = cli(home, "pack", "-l", lock, "-o", "oci://Bad_Host/UPPER:tag")
    assert done.returncode != 0
    assert "oci://Bad_Host/UPPER:tag" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_presigned_url_streams_and_its_signature_is_kept_out_of_the_prefix(
    fixture_channel: Path, home: Path, tmp_path: Path
) -> None:
    """A presigned object-storage URL is an ordinary HTTP(S) URL; its signature must
    not end up in conda-meta (pixi-pack records name the archive's URL) or history."""
    www = tmp_path / "www"
    www.mkdir()
    lock = portpack.lock(
        ["hello-c"], channels=[str(fixture_channel)], platforms=["linux-64"], output=tmp_path / "l"
    )
    for fmt in ("portpack", "pixi-pack"):
        portpack.pack(
            lockfile=lock, output=www / f"{fmt}.tar", cache_dir=tmp_path / "c", archive_format=fmt
        )
    secret = "c2VjcmV0LXNpZ25hdHVyZQ"
    with FaultServer(www) as server:
        for fmt in ("portpack", "pixi-pack"):
            url = f"{server.url}{fmt}.tar?X-Amz-Expires=600&X-Amz-Signature={secret}"
            out = tmp_path / fmt
            done = cli(home, "unpack", url, "-o", out)
            assert done.returncode == 0, done.stderr
            assert secret not in done.stdout + done.stderr
            meta = out / "env" / "conda-meta"
            texts = [p.read_text() for p in meta.iterdir() if p.is_file()]
            assert texts and not [t for t in texts if secret in t]
            assert any(f"{server.url}{fmt}.tar" in t for t in texts)
            if fmt == "pixi-pack":
                record = json.loads(next(meta.glob("hello-c-*.json")).read_text())
                assert record["url"].startswith(f"{server.url}pixi-pack.tar?X-Amz-Expires=600&")
                assert record["url"].endswith("#channel/linux-64/" + record["fn"])
