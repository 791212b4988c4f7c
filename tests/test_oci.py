"""OCI registries: push an archive as an artifact, pull it back, unpack it (issue 14).

Against a real registry (Debian's ``docker-registry``, the CNCF distribution registry)
started on 127.0.0.1 (tests/support/ociregistry.py): anonymous (conftest.py), with htpasswd
basic auth, and with ``auth: token`` and a token endpoint in the test.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import portpack
from hostile import Member, RawPackage, make_archive, to_version_1
from portpack.archive import format as fmt
from portpack.errors import ArchiveError, PortpackError, UsageError
from portpack.remote._http import (
    BlobIntegrityError,
    Body,
    NotFoundError,
    RegistryAuthError,
    RegistryError,
)
from portpack.remote.oci import MANIFEST_MEDIA_TYPE, RegistryClient, sha256_digest
from portpack.remote.oci_archive import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    PAYLOAD_MEDIA_TYPE,
    layer_plan,
    open_artifact,
    push_archive,
)
from portpack.remote.oci_ref import parse_oci_ref
from portpack.remote.options import SourceOptions
from portpack.remote.registry_auth import CredentialSource, parse_challenge
from support.ociregistry import (
    FaultProxy,
    Registry,
    TokenServer,
    require_registry,
    running_registry,
)
from treesnap import diff, snapshot

USER, PASSWORD = "alice", "s3cret-Pa55word"


def _packages(beta_seed: bytes) -> list[RawPackage]:
    rng = __import__("random").Random(7)
    big = bytes(rng.getrandbits(8) for _ in range(120_000))
    return [
        RawPackage("alpha", [Member("share/alpha/data.bin", big)]),
        RawPackage(
            "beta",
            [Member("share/beta/data.bin", beta_seed * 4000), Member("bin/beta", b"#!/bin/sh\n")],
        ),
        RawPackage("gamma", [Member(f"share/gamma/{i}.txt", b"g%d" % i * 300) for i in range(20)]),
    ]


@pytest.fixture(scope="session")
def archives(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Version 1.4 and version 1.5 of an environment: only package beta changed."""
    root = tmp_path_factory.mktemp("oci-archives")
    v14 = make_archive(root / "v14", _packages(b"beta version one " * 3))
    v15 = make_archive(root / "v15", _packages(b"beta version two, a bit longer" * 3))
    return v14, v15


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("registry-basic")
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        pytest.fail(
            "htpasswd is not installed (Debian package apache2-utils): run ./dev/test "
            "--prepare or `apt-get install apache2-utils`",
            pytrace=False,
        )
    made = subprocess.run(
        [htpasswd, "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    )
    (root / "htpasswd").write_text(made.stdout)
    auth = {"htpasswd": {"realm": "portpack-test", "path": str(root / "htpasswd")}}
    with running_registry(root, auth) as reg:
        yield reg


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TokenServer]]:
    root = tmp_path_factory.mktemp("registry-token")
    tokens = TokenServer(root, {USER: PASSWORD})
    try:
        with running_registry(root, tokens.auth_config()) as reg:
            yield reg, tokens
    finally:
        tokens.stop()


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No auth file of the user's is read: HOME, DOCKER_CONFIG and friends point into tmp."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    return home


def pull_bytes(ref: str, options: SourceOptions | None = None) -> tuple[fmt.Metadata, bytes]:
    meta, stream = open_artifact(ref, options)
    with stream:
        return meta, stream.read()


def rattler_auth_file(path: Path, netloc: str, password: str = PASSWORD) -> Path:
    entry = {"BasicHTTP": {"username": USER, "password": password}}
    path.write_text(json.dumps({netloc: entry}))
    return path


def manifest_of(registry: Registry, ref: str) -> dict[str, Any]:
    client = RegistryClient(parse_oci_ref(ref))
    try:
        return client.get_manifest().doc
    finally:
        client.close()


# -- push and pull ------------------------------------------------------------------


def test_push_then_pull_by_tag_and_by_digest_is_byte_identical(
    registry: Registry, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    v14, _ = archives
    result = push_archive(v14, registry.ref("envs/app:1.4"))
    assert result.digest.startswith("sha256:")
    assert result.uploaded_bytes >= v14.stat().st_size
    meta, data = pull_bytes(registry.ref("envs/app:1.4"))
    assert data == v14.read_bytes()
    assert [p.name for p in meta.packages] == ["alpha", "beta", "gamma"]
    _, by_digest = pull_bytes(registry.ref(f"envs/app@{result.digest}"))
    assert by_digest == v14.read_bytes()
    doc = manifest_of(registry, registry.ref("envs/app:1.4"))
    assert doc["artifactType"] == ARTIFACT_TYPE
    assert doc["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    # One layer per segment and per frame between them; segments are named by the
    # digests the archive's metadata records.
    assert len(doc["layers"]) == len(layer_plan(meta)) == 1 + 4 * 3 + 1
    payloads = [layer for layer in doc["layers"] if layer["mediaType"] == PAYLOAD_MEDIA_TYPE]
    assert [layer["digest"] for layer in payloads] == [
        f"sha256:{p.payload.zst_sha256}" for p in meta.packages
    ]


def assert_pulled_as_from_file(archive: Path, ref: str, out: Path) -> None:
    """Unpacking the artifact at ``ref`` streamed from the registry into ``out`` leaves
    what unpacking the file ``archive`` there leaves."""
    portpack.unpack(archive, out)
    from_file = snapshot(out / "env", skip=("conda-meta/history",))  # holds the time
    shutil.rmtree(out)
    _, stream = open_artifact(ref)
    with stream:
        portpack.unpack(stream, out)  # type: ignore[arg-type]
    assert diff(from_file, snapshot(out / "env", skip=("conda-meta/history",))) == []


def test_a_version_1_archive_is_pushed_and_pulled_unchanged(
    registry: Registry, archives: tuple[Path, Path], tmp_path: Path, no_credentials: Path
) -> None:
    v1 = to_version_1(archives[0], tmp_path / "v1.tar")
    push_archive(v1, registry.ref("envs/old:1.4"))
    meta, data = pull_bytes(registry.ref("envs/old:1.4"))
    assert data == v1.read_bytes()
    assert meta.format_version == 1 and meta.packages[0].info.offset is None
    assert_pulled_as_from_file(v1, registry.ref("envs/old:1.4"), tmp_path / "out")


def test_pulled_stream_unpacks_to_the_same_prefix_as_the_file(
    registry: Registry, archives: tuple[Path, Path], tmp_path: Path, no_credentials: Path
) -> None:
    v14, _ = archives
    push_archive(v14, registry.ref("envs/unpack:1.4"))
    out = tmp_path / "out"
    assert_pulled_as_from_file(v14, registry.ref("envs/unpack:1.4"), out)
    assert (out / "env" / "share" / "alpha" / "data.bin").stat().st_size == 120_000


def test_second_push_uploads_only_the_changed_package(
    registry: Registry, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    v14, v15 = archives
    push_archive(v14, registry.ref("envs/delta:1.4"))
    before = set(registry.blobs())
    second = push_archive(v15, registry.ref("envs/delta:1.5"))
    # The registry keeps manifests as blobs too.
    added = set(registry.blobs()) - before - {second.digest}
    meta14, meta15 = (pull_bytes(registry.ref(f"envs/delta:{v}"))[0] for v in ("1.4", "1.5"))
    changed = [
        (a, b)
        for a, b in zip(meta14.packages, meta15.packages, strict=True)
        # (the same bytes, though later packages' offsets move when beta grows)
        if (a.info.zst_sha256, a.payload.zst_sha256) != (b.info.zst_sha256, b.payload.zst_sha256)
    ]
    assert [b.name for _, b in changed] == ["beta"]
    beta = changed[0][1]
    beta_blobs = {f"sha256:{beta.info.zst_sha256}", f"sha256:{beta.payload.zst_sha256}"}
    # What the push says it uploaded is what the registry's storage gained.
    assert second.uploaded_blobs == len(added)
    assert beta_blobs <= added
    unchanged = {
        f"sha256:{seg.zst_sha256}"
        for p in meta15.packages
        if p.name != "beta"
        for seg in (p.info, p.payload)
    }
    assert not unchanged & added
    # Besides beta's two segments only small frames and the metadata are new.
    beta_bytes = beta.info.zst_size + beta.payload.zst_size
    small = sorted(registry.blobs()[d].stat().st_size for d in added - beta_blobs)
    assert all(size < 4096 for size in small), small
    assert second.uploaded_bytes == beta_bytes + sum(small)
    # Every other blob (alpha's and gamma's segments, unchanged frames) was not sent.
    assert second.skipped_blobs == second.layers + 1 - second.uploaded_blobs
    unchanged_bytes = sum(
        seg.zst_size for p in meta15.packages if p.name != "beta" for seg in (p.info, p.payload)
    )
    assert second.skipped_bytes >= unchanged_bytes
    print(
        f"second push: uploaded {second.uploaded_blobs} blobs / {second.uploaded_bytes} bytes, "
        f"skipped {second.skipped_blobs} / {second.skipped_bytes} bytes; archive "
        f"{v15.stat().st_size} bytes"
    )


def test_push_to_a_new_repository_mounts_the_blobs_of_another(
    registry: Registry, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    v14, _ = archives
    push_archive(v14, registry.ref("envs/source:1.4"))
    mounted = push_archive(v14, registry.ref("team/copy:1.4"), mount_from="envs/source")
    assert mounted.uploaded_blobs == 0
    assert mounted.stats.mounted_blobs == mounted.layers + 1 - mounted.stats.skipped_blobs
    assert pull_bytes(registry.ref("team/copy:1.4"))[1] == v14.read_bytes()


def test_push_from_a_pipe(
    registry: Registry, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    v14, _ = archives
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with open(write_fd, "wb") as out:
            out.write(v14.read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    with open(read_fd, "rb") as pipe:
        result = push_archive(pipe, registry.ref("envs/piped:1.4"))
    writer.join(timeout=30)
    from_file = push_archive(v14, registry.ref("envs/piped:again"))
    assert result.digest == from_file.digest
    assert pull_bytes(registry.ref("envs/piped:1.4"))[1] == v14.read_bytes()


def test_push_and_pull_through_an_http_proxy(
    registry: Registry,
    archives: tuple[Path, Path],
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A registry behind a proxy (HTTP_PROXY, as docker and skopeo read it): every
    request goes through it, and a pull gives back the archive byte for byte."""
    from support.tunnelproxy import TunnelProxy

    v14, _ = archives
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with TunnelProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        push_archive(v14, registry.ref("proxied/app:1.4"))
        _, data = pull_bytes(registry.ref("proxied/app:1.4"))
    assert data == v14.read_bytes()
    targets = [seen.target for seen in proxy.seen]
    assert targets and all(t.startswith(f"http://{registry.netloc}/v2/") for t in targets)
    assert any("/manifests/1.4" in t for t in targets)


def test_insecure_host_means_unverified_tls_then_plain_http(
    archives: tuple[Path, Path], no_credentials: Path, tmp_path: Path
) -> None:
    """``--insecure-host`` has docker's meaning: a registry with a certificate nobody
    trusts is used without verifying it; unlisted, the certificate is refused by name
    (loopback is not a reason to drop TLS), and a CA bundle makes it trusted."""
    import trustme  # a test dependency (pyproject.toml)

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    for pem in cert.cert_chain_pems[1:]:
        with open(tmp_path / "cert.pem", "ab") as fh:
            fh.write(pem.bytes())
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    v14, _ = archives
    registry = Registry(tmp_path / "tls", tls=(tmp_path / "cert.pem", tmp_path / "key.pem"))
    try:
        ref = registry.ref("tls/app:1.4")
        with pytest.raises(RegistryError, match="TLS certificate not trusted") as caught:
            push_archive(v14, ref)
        assert "--insecure-host" in (caught.value.hint or "")
        push_archive(v14, ref, SourceOptions(insecure_hosts=[registry.netloc]))
        assert pull_bytes(ref, SourceOptions(ca_bundle=tmp_path / "ca.pem"))[1] == v14.read_bytes()
        assert pull_bytes(ref, SourceOptions(insecure_hosts=["127.0.0.1"]))[1] == v14.read_bytes()
    finally:
        registry.stop()


def test_a_file_that_is_no_portpack_archive_is_refused_before_anything_is_tagged(
    registry: Registry, tmp_path: Path, no_credentials: Path
) -> None:
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(3000))
    with pytest.raises(ArchiveError, match=r"bogus\.tar"):
        push_archive(bogus, registry.ref("envs/bogus:1"))
    with pytest.raises(NotFoundError, match="does not exist"):
        open_artifact(registry.ref("envs/bogus:1"))


# -- what the registry refuses or lacks ---------------------------------------------


def test_missing_tag_and_unknown_repository_give_clear_messages(
    registry: Registry, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    push_archive(archives[0], registry.ref("envs/known:1.4"))
    with pytest.raises(NotFoundError) as tag:
        open_artifact(registry.ref("envs/known:9.9"))
    assert str(tag.value).startswith(f"oci://{registry.netloc}/envs/known:9.9: the tag 9.9")
    assert "does not exist in envs/known" in str(tag.value)
    assert tag.value.hint == "Its tags: 1.4."
    with pytest.raises(NotFoundError) as repo:
        open_artifact(registry.ref("nobody/here:1.0"))
    assert f"the repository nobody/here does not exist on {registry.netloc}" in str(repo.value)


def test_an_artifact_that_is_not_portpacks_is_refused_naming_its_type(
    registry: Registry, no_credentials: Path
) -> None:
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
    with pytest.raises(UsageError, match="is not a portpack environment") as excinfo:
        open_artifact(registry.ref("images/other:1"))
    assert image_config in str(excinfo.value)


@pytest.fixture(scope="session")
def large_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package larger than the blobs checked whole before use (a streamed check)."""
    rng = __import__("random").Random(11)
    data = bytes(rng.getrandbits(8) for _ in range(1_500_000))
    return make_archive(
        tmp_path_factory.mktemp("oci-large"),
        [RawPackage("large", [Member("share/large/data.bin", data)])],
    )


@pytest.mark.parametrize("which", ["frame", "payload", "large payload", "config"])
def test_a_corrupted_blob_is_refused_and_nothing_is_left(
    tmp_path: Path,
    archives: tuple[Path, Path],
    large_archive: Path,
    which: str,
    no_credentials: Path,
) -> None:
    require_registry()
    reg = Registry(tmp_path / "registry")  # its own storage: the blob is damaged for good
    try:
        archive = large_archive if which == "large payload" else archives[0]
        push_archive(archive, reg.ref("envs/broken:1.4"))
        doc = manifest_of(reg, reg.ref("envs/broken:1.4"))
        if which == "config":
            layer = doc["config"]
        elif which == "frame":
            layer = doc["layers"][1]  # the frame holding the tar header of alpha's info.tar
        else:
            layer = next(x for x in doc["layers"] if x["mediaType"] == PAYLOAD_MEDIA_TYPE)
        path = reg.blobs()[layer["digest"]]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
        out = tmp_path / "out"
        with pytest.raises(PortpackError) as excinfo:
            _, stream = open_artifact(reg.ref("envs/broken:1.4"))
            with stream:
                portpack.unpack(stream, out)  # type: ignore[arg-type]
        error = excinfo.value
        if which == "large payload":
            # Handed on as it streams: the unpacker's own digest check of the segment
            # may see the damage first; either way the package is named.
            assert isinstance(error, BlobIntegrityError | ArchiveError)
            assert layer["digest"] in str(error) or "package large-1.0-0" in str(error)
        else:  # checked whole before the first byte is used
            assert isinstance(error, BlobIntegrityError)
            assert f"blob {layer['digest']} of repository envs/broken" in str(error)
            assert "does not match its digest" in str(error)
        assert not out.exists() or list(out.iterdir()) == []
    finally:
        reg.stop()


def test_a_manifest_whose_layers_disagree_with_the_metadata_is_refused(
    registry: Registry, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    v14, _ = archives
    push_archive(v14, registry.ref("envs/tampered:good"))
    doc = manifest_of(registry, registry.ref("envs/tampered:good"))
    layers = doc["layers"]
    layers[2], layers[4] = layers[4], layers[2]  # alpha's info and payload swapped
    client = RegistryClient(parse_oci_ref(registry.ref("envs/tampered:bad")))
    client.put_manifest("bad", json.dumps(doc).encode(), MANIFEST_MEDIA_TYPE)
    client.close()
    with pytest.raises(ArchiveError, match=r"layer 2 .* does not match the artifact's metadata"):
        open_artifact(registry.ref("envs/tampered:bad"))


# -- authentication -----------------------------------------------------------------


def test_basic_auth_with_htpasswd(
    basic_registry: Registry,
    archives: tuple[Path, Path],
    tmp_path: Path,
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v14, _ = archives
    ref = basic_registry.ref("envs/private:1.4")
    with pytest.raises(RegistryAuthError) as anonymous:
        push_archive(v14, ref)
    assert f"{basic_registry.netloc} requires credentials" in str(anonymous.value)
    # rattler's auth file (--auth-file) for the push ...
    auth = rattler_auth_file(tmp_path / "credentials.json", basic_registry.netloc)
    result = push_archive(v14, ref, SourceOptions(auth_file=auth))
    assert result.uploaded_blobs > 0
    # ... docker's config.json, with a base64 "auth", for the pull.
    docker = tmp_path / "docker"
    docker.mkdir()
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(
        json.dumps({"auths": {f"http://{basic_registry.netloc}": {"auth": encoded}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    assert pull_bytes(ref)[1] == v14.read_bytes()
    wrong = rattler_auth_file(tmp_path / "wrong.json", basic_registry.netloc, "not-it-at-all")
    with pytest.raises(RegistryAuthError) as refused:
        open_artifact(ref, SourceOptions(auth_file=wrong))
    text = str(refused.value)
    assert "refused the credentials for alice" in text and str(wrong) in text
    assert "not-it-at-all" not in text and PASSWORD not in text


def test_bearer_token_flow(
    token_registry: tuple[Registry, TokenServer],
    archives: tuple[Path, Path],
    tmp_path: Path,
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg, tokens = token_registry
    v14, _ = archives
    ref = reg.ref("envs/tokened:1.4")
    # containers' auth.json ($REGISTRY_AUTH_FILE), as `skopeo login` writes it.
    auth_json = tmp_path / "auth.json"
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth_json.write_text(json.dumps({"auths": {reg.netloc: {"auth": encoded}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_json))
    tokens.requests.clear()
    result = push_archive(v14, ref)
    push_requests = list(tokens.requests)
    assert result.uploaded_blobs > 0
    assert push_requests and all(r["user"] == USER for r in push_requests)
    assert all(r["service"] == [TokenServer.SERVICE] for r in push_requests)
    assert any("repository:envs/tokened:pull,push" in r["scopes"] for r in push_requests)
    # Tokens are cached per scope: far fewer token requests than registry requests.
    assert len(push_requests) <= 3 < result.layers
    assert pull_bytes(ref)[1] == v14.read_bytes()
    # Anonymous: the token service hands out a token without access; the registry refuses.
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    with pytest.raises(RegistryAuthError) as anonymous:
        open_artifact(ref)
    assert "requires credentials" in str(anonymous.value)
    wrong = rattler_auth_file(tmp_path / "wrong.json", reg.netloc, "wrong-password-here")
    with pytest.raises(RegistryAuthError) as refused:
        open_artifact(ref, SourceOptions(auth_file=wrong))
    assert "token service" in str(refused.value) and str(wrong) in str(refused.value)
    assert "wrong-password-here" not in str(refused.value)


# -- a standard client reads what we push ------------------------------------------


def test_skopeo_reads_what_we_push(
    registry: Registry, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.fail(
            "skopeo is not installed: run ./dev/test --prepare or `apt-get install skopeo`",
            pytrace=False,
        )
    v14, _ = archives
    result = push_archive(v14, registry.ref("envs/skopeo:1.4"))
    raw = subprocess.run(
        [
            skopeo,
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.netloc}/envs/skopeo:1.4",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert sha256_digest(raw) == result.digest
    doc = json.loads(raw)
    assert doc["artifactType"] == ARTIFACT_TYPE
    assert len(doc["layers"]) == result.layers
    copy = subprocess.run(
        [
            skopeo,
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{registry.netloc}/envs/skopeo:1.4",
            f"docker://{registry.netloc}/envs/skopeo-copy:1.4",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert copy.returncode == 0, copy.stderr
    assert pull_bytes(registry.ref("envs/skopeo-copy:1.4"))[1] == v14.read_bytes()


# -- references and credential files (no registry needed) ---------------------------


@pytest.mark.parametrize(
    ("text", "netloc", "repository", "reference", "plain"),
    [
        ("oci://ghcr.io/org/envs/app:1.4", "ghcr.io", "org/envs/app", "1.4", False),
        ("oci://ghcr.io/org/app", "ghcr.io", "org/app", "latest", False),
        (
            "oci://127.0.0.1:5000/a/b@sha256:" + "a" * 64,
            "127.0.0.1:5000",
            "a/b",
            "sha256:" + "a" * 64,
            True,
        ),
        ("oci://localhost:5000/x:v1", "localhost:5000", "x", "v1", True),
        ("oci://[::1]:5000/x:v1", "[::1]:5000", "x", "v1", True),
        ("oci://reg.corp:8443/x/y:1", "reg.corp:8443", "x/y", "1", True),  # listed insecure
    ],
)
def test_references(text: str, netloc: str, repository: str, reference: str, plain: bool) -> None:
    ref = parse_oci_ref(text, insecure_hosts=["reg.corp:8443"])
    assert (ref.netloc, ref.repository, ref.reference, ref.plain_http) == (
        netloc,
        repository,
        reference,
        plain,
    )


@pytest.mark.parametrize(
    "text",
    [
        "docker://ghcr.io/x:1",
        "oci://ghcr.io",
        "oci://ghcr.io/",
        "oci://ghcr.io/Upper/case:1",
        "oci://ghcr.io/x:bad tag",
        "oci://ghcr.io/x@sha256:abc",
        "oci://user:pw@ghcr.io/x:1",
        "oci://ghcr.io:99999/x:1",
        "oci://ghcr.io/x:1?y=2",
        "oci://ghcr.io/../x:1",
    ],
)
def test_bad_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="is not a valid OCI reference") as excinfo:
        parse_oci_ref(text)
    assert "pw@" not in str(excinfo.value) or "user:pw" in text


def test_credential_files_as_docker_podman_and_rattler_write_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {
                        "auth": base64.b64encode(b"hub:hubpw").decode()
                    },
                    "reg.example.org": {"username": "u", "password": "p"},
                    "helped.example.org": {},
                },
                "credHelpers": {"ecr.example.org": "ecr-login"},
                "credsStore": "desktop",
            }
        )
    )
    source = CredentialSource(environ={}, home=home)
    hub = source.lookup("registry-1.docker.io", "library/x")
    assert hub is not None and (hub.username, hub.password) == ("hub", "hubpw")
    reg = source.lookup("reg.example.org", "a")
    assert reg is not None and reg.username == "u"
    assert source.lookup("other.example.org") is None
    with pytest.raises(UsageError, match="docker-credential-ecr-login"):
        source.lookup("ecr.example.org")
    with pytest.raises(UsageError, match="docker-credential-desktop"):
        source.lookup("helped.example.org")
    # containers' auth.json comes first, and may be scoped to a repository.
    runtime = tmp_path / "run"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(
        json.dumps(
            {
                "auths": {
                    "reg.example.org/team": {"auth": base64.b64encode(b"team:tpw").decode()},
                }
            }
        )
    )
    scoped = CredentialSource(environ={"XDG_RUNTIME_DIR": str(runtime)}, home=home)
    team = scoped.lookup("reg.example.org", "team/app")
    other = scoped.lookup("reg.example.org", "solo/app")
    assert team is not None and team.username == "team"
    assert other is not None and other.username == "u"
    # rattler's auth file, given explicitly, wins over both.
    rattler = tmp_path / "credentials.json"
    rattler.write_text(json.dumps({"*.example.org": {"BearerToken": "tok-123"}}))
    explicit = CredentialSource(rattler, environ={"XDG_RUNTIME_DIR": str(runtime)}, home=home)
    tok = explicit.lookup("reg.example.org", "team/app")
    assert tok is not None and tok.token == "tok-123"
    assert "tok-123" not in repr(tok) and "hubpw" not in repr(hub)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"auths": {"reg.example.org": {"auth": "bm90LWJhc2U2NA==="}}}))
    with pytest.raises(UsageError, match=r"bad\.json") as excinfo:
        CredentialSource(bad, environ={}, home=home).lookup("reg.example.org")
    assert "bm90" not in str(excinfo.value)


def test_challenge_parsing() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example.org/token",service="reg.example.org",'
        'scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example.org/token",
        "service": "reg.example.org",
        "scope": "repository:a/b:pull,push",
    }
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


# -- a registry that fails now and then ---------------------------------------------


@pytest.fixture
def flaky(registry: Registry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(registry)
    yield proxy
    proxy.stop()


def test_5xx_answers_are_retried_and_a_cut_blob_is_resumed_with_range(
    flaky: FaultProxy, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    v14, _ = archives
    flaky.fail = {("POST", "uploads"): 2, ("PUT", "manifests"): 1, ("HEAD", "blobs"): 1}
    result = push_archive(v14, flaky.ref("envs/flaky:1.4"))
    assert result.uploaded_blobs == result.layers + 1
    assert flaky.fail == {("POST", "uploads"): 0, ("PUT", "manifests"): 0, ("HEAD", "blobs"): 0}
    flaky.fail = {("GET", "manifests"): 2}
    flaky.cut_after = 50_000
    _, data = pull_bytes(flaky.ref("envs/flaky:1.4"))
    assert data == v14.read_bytes()
    assert flaky.cut_after is None  # the cut happened ...
    assert any(r == "bytes=50000-" for _, _, r in flaky.log)  # ... and was resumed there


def test_blob_redirects_to_storage_are_followed(
    flaky: FaultProxy, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    v14, _ = archives
    push_archive(v14, flaky.ref("envs/redirected:1.4"))
    flaky.redirect_blobs = True
    assert pull_bytes(flaky.ref("envs/redirected:1.4"))[1] == v14.read_bytes()
    assert any(path.startswith("/storage/v2/") for _, path, _ in flaky.log)


def test_a_registry_that_keeps_failing_gives_a_clear_error(
    flaky: FaultProxy, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    push_archive(archives[0], flaky.ref("envs/down:1.4"))
    flaky.fail = {("GET", "manifests"): 100}
    with pytest.raises(RegistryError) as excinfo:
        open_artifact(flaky.ref("envs/down:1.4"))
    assert str(excinfo.value).startswith(f"oci://{flaky.netloc}/envs/down:1.4")
    assert "HTTP 503" in str(excinfo.value)
    assert flaky.fail[("GET", "manifests")] == 100 - 5  # one try and 4 retries: bounded


def test_opening_an_artifact_reads_only_its_manifest_and_config(
    flaky: FaultProxy, archives: tuple[Path, Path], no_credentials: Path
) -> None:
    v14, _ = archives
    result = push_archive(v14, flaky.ref("envs/inspected:1.4"))
    flaky.log.clear()
    meta, stream = open_artifact(flaky.ref("envs/inspected:1.4"))
    stream.close()
    assert stream.digest == result.digest
    assert [p.name for p in meta.packages] == ["alpha", "beta", "gamma"]
    gets = [path.split("/")[-2] for method, path, _ in flaky.log if method == "GET"]
    assert gets == ["manifests", "blobs"]  # the tag, then the config blob
