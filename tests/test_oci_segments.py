"""Only the changed packages' layers of a portpack artifact in an OCI registry.

Against a real registry (Debian's ``docker-registry``) started by the test on
127.0.0.1, behind tests/support/ociregistry.py's logging proxy, which shows every blob
the client asks for.  The archives (tests/support/segments.py) are two versions that
differ in packages beta and delta.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from portpack.remote._http import BlobIntegrityError, RegistryAuthError
from portpack.remote.oci import RegistryClient
from portpack.remote.oci_archive import push_archive
from portpack.remote.oci_ref import parse_oci_ref
from portpack.unpacker.sources import SourceOptions, open_segment_source
from support import segments
from support.ociregistry import FaultProxy, Registry, require_registry
from support.segments import Versions, changed_refs, expected_bytes

USER, PASSWORD = "alice", "s3cret-Pa55word"


def rattler_auth_file(path: Path, netloc: str) -> Path:
    path.write_text(json.dumps({netloc: {"BasicHTTP": {"username": USER, "password": PASSWORD}}}))
    return path


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    return segments.build(tmp_path_factory.mktemp("oci-segments"))


@pytest.fixture(scope="module")
def proxy(registry: Registry, versions: Versions) -> Iterator[FaultProxy]:
    push_archive(versions.old, registry.ref("envs/app:1.4"))
    push_archive(versions.new, registry.ref("envs/app:1.5"))
    front = FaultProxy(registry)
    yield front
    front.stop()


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No auth file of the user's is read."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)


def manifest(ref: str) -> tuple[bytes, dict[str, object]]:
    client = RegistryClient(parse_oci_ref(ref))
    try:
        found = client.get_manifest()
        return found.data, found.doc
    finally:
        client.close()


def test_only_the_changed_layers_are_fetched(
    proxy: FaultProxy, versions: Versions, no_credentials: None
) -> None:
    refs = changed_refs(versions.old, versions.new)
    proxy.log.clear()
    with ExitStack() as stack:
        meta, source = open_segment_source(proxy.ref("envs/app:1.5"), stack)
        assert meta == segments.metadata_of(versions.new)
        data = [stream.read() for _, stream in source.segments(refs)]
        read = source.bytes_read
    assert data == expected_bytes(versions.new2, changed_refs(versions.old2, versions.new2))
    raw, doc = manifest(proxy.ref("envs/app:1.5"))
    config = doc["config"]
    assert isinstance(config, dict)
    blobs = [path.rsplit("/", 1)[1] for method, path, _ in proxy.log if "/blobs/" in path]
    assert blobs == [config["digest"], *("sha256:" + r.segment.zst_sha256 for r in refs)]
    assert read == len(raw) + config["size"] + sum(r.segment.zst_size for r in refs)


def test_a_corrupt_changed_layer_is_refused_naming_the_package(
    tmp_path: Path, versions: Versions, no_credentials: None
) -> None:
    require_registry()
    reg = Registry(tmp_path / "registry")  # its own storage: the blob is damaged for good
    try:
        push_archive(versions.new, reg.ref("envs/broken:1.5"))
        refs = changed_refs(versions.old, versions.new)
        digest = "sha256:" + refs[1].segment.zst_sha256  # beta's payload
        path = reg.blobs()[digest]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
        with ExitStack() as stack:
            _, source = open_segment_source(reg.ref("envs/broken:1.5"), stack)
            streams = source.segments(refs)
            next(streams)[1].read()
            with pytest.raises(BlobIntegrityError) as caught:
                next(streams)[1].read()
        message = str(caught.value)
        assert message.startswith("package beta-1.0-0, pkgs/beta-1.0-0/pkg.tar: ")
        assert f"blob {digest} of repository envs/broken does not match its digest" in message
    finally:
        reg.stop()


def test_registry_basic_auth_is_honoured(
    tmp_path: Path, versions: Versions, no_credentials: None
) -> None:
    require_registry()
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        pytest.fail("htpasswd is not installed (Debian package apache2-utils)", pytrace=False)
    root = tmp_path / "registry"
    root.mkdir()
    made = subprocess.run(
        [htpasswd, "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    )
    (root / "htpasswd").write_text(made.stdout)
    reg = Registry(root, {"htpasswd": {"realm": "portpack-test", "path": str(root / "htpasswd")}})
    try:
        auth = rattler_auth_file(tmp_path / "credentials.json", reg.netloc)
        ref = reg.ref("envs/private:1.5")
        push_archive(versions.new, ref, SourceOptions(auth_file=auth))
        refs = changed_refs(versions.old, versions.new)
        with ExitStack() as stack, pytest.raises(RegistryAuthError):
            open_segment_source(ref, stack)
        with ExitStack() as stack:
            _, source = open_segment_source(ref, stack, SourceOptions(auth_file=auth))
            data = [stream.read() for _, stream in source.segments(refs)]
        assert data == expected_bytes(versions.new2, changed_refs(versions.old2, versions.new2))
    finally:
        reg.stop()
