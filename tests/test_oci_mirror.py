"""Packages from OCI mirrors in rattler's layout, against a real docker-registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import portpack
from portpack.errors import FetchError, UsageError
from portpack.net.oci_mirror import (
    PACKAGE_V1,
    PACKAGE_V2,
    REPODATA,
    escape_tag,
    mirror_target,
    repository_name,
    unescape_tag,
)
from portpack.remote._http import Body
from portpack.remote.oci import MANIFEST_MEDIA_TYPE, RegistryClient, sha256_digest
from portpack.remote.oci_ref import parse_oci_ref

sys.path.insert(0, str(Path(__file__).parent))
from faultserver import FaultServer
from fetchsupport import SMALL_SPECS, LockTemplate, archive_bytes
from support.ociregistry import Registry

UPSTREAM = "https://conda.example.invalid/fixture/"
MIRROR_PATH = "mirror/fixture"

# -- names and tags (examples from rattler's oci_middleware.rs and its tests) -----------


def test_tag_escapes_are_rattlers() -> None:
    assert escape_tag("0.25.0-h2ffa867_0") == "0.25.0-h2ffa867_0"
    assert escape_tag("1.0+cuda-py_0") == "1.0__p__cuda-py_0"
    assert escape_tag("1!2.0-0") == "1__e__2.0-0"
    assert escape_tag("1.0-build=x") == "1.0-build__eq__x"
    for text in ("1.0+cuda-py_0", "1!2.0-0", "1.0-build=x", "2!1.0+a=b-0"):
        assert unescape_tag(escape_tag(text)) == text


def test_repository_and_media_type_follow_the_file_name() -> None:
    target = mirror_target(
        "oci://ghcr.io/channel-mirrors/conda-forge/osx-arm64/xtensor-0.25.0-h2ffa867_0.conda"
    )
    assert target.repository == "channel-mirrors/conda-forge/osx-arm64/xtensor"
    assert target.tag == "0.25.0-h2ffa867_0"
    assert target.media_type == PACKAGE_V2
    old = mirror_target("oci://ghcr.io/m/cf/linux-64/_openmp_mutex-4.5-2_gnu.tar.bz2")
    assert old.repository == "m/cf/linux-64/zzz_openmp_mutex"
    assert old.media_type == PACKAGE_V1
    assert repository_name("python") == "python"
    repodata = mirror_target("oci://ghcr.io/channel-mirrors/conda-forge/osx-arm64/repodata.json")
    assert repodata.repository == "channel-mirrors/conda-forge/osx-arm64/repodata.json"
    assert (repodata.tag, repodata.media_type) == ("latest", REPODATA)


@pytest.mark.parametrize(
    "url", ["oci://ghcr.io/m/linux-64/notapackage.txt", "oci://ghcr.io/m/linux-64/name-1.conda"]
)
def test_other_files_are_refused_naming_them(url: str) -> None:
    with pytest.raises(UsageError, match=url.rsplit("/", 1)[1]):
        mirror_target(url)


# -- pack from a real registry ------------------------------------------------------------


@pytest.fixture(scope="module")
def template(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> LockTemplate:
    return LockTemplate.make(fixture_channel, SMALL_SPECS, tmp_path_factory.mktemp("lock"))


def push_package(registry: Registry, path: Path, subdir: str, skip: bool = False) -> str:
    """Push a package file as rattler's mirror tooling does: one layer, the file itself."""
    target = mirror_target(f"oci://127.0.0.1:{registry.port}/{MIRROR_PATH}/{subdir}/{path.name}")
    ref = parse_oci_ref(target.reference)
    client = RegistryClient(ref)
    try:
        data = path.read_bytes()
        config = b"{}"
        client.push_blob(sha256_digest(config), Body.of(config))
        client.push_blob(sha256_digest(data), Body.of(data))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": target.media_type, "digest": sha256_digest(data), "size": len(data)}
            ],
        }
        client.put_manifest(target.tag, json.dumps(manifest).encode(), MANIFEST_MEDIA_TYPE)
    finally:
        client.close()
    return target.reference


def _config(tmp: Path, *mirrors: str) -> Path:
    path = tmp.with_suffix(".toml") if tmp.suffix else tmp / "portpack.toml"
    path.write_text(f'[mirrors]\n"{UPSTREAM}" = {json.dumps(list(mirrors))}\n')
    return path


@pytest.fixture(scope="module")
def mirrored(
    registry: Registry, template: LockTemplate, fixture_channel: Path, tmp_path_factory: Any
) -> dict[str, str]:
    """Every package of the lock but ``oldformat`` pushed; name -> its OCI reference."""
    lock = template.write(tmp_path_factory.mktemp("m") / "env.lock", UPSTREAM)
    refs = {}
    for record in template.records(lock):
        if record["name"] == "oldformat":
            continue
        path = fixture_channel / record["subdir"] / record["fn"]
        refs[record["name"]] = push_package(registry, path, record["subdir"])
    return refs


def test_pack_from_an_oci_mirror_equals_pack_from_the_channel(
    registry: Registry,
    template: LockTemplate,
    fixture_channel: Path,
    mirrored: dict[str, str],
    tmp_path: Path,
) -> None:
    with FaultServer(fixture_channel) as server:
        direct = portpack.pack(  # the same lock, every file from the channel's server
            lockfile=template.write(tmp_path / "direct.lock", UPSTREAM),
            output=tmp_path / "direct.tar",
            cache_dir=tmp_path / "cache-direct",
            config=_config(tmp_path / "direct.lock", server.url),
        )
        server.requests.clear()
        fallback = server.url  # oldformat is not in the registry: the channel serves it
        config = _config(tmp_path, f"oci://127.0.0.1:{registry.port}/{MIRROR_PATH}", fallback)
        mirror = portpack.pack(
            lockfile=template.write(tmp_path / "env.lock", UPSTREAM),
            output=tmp_path / "mirror.tar",
            cache_dir=tmp_path / "cache-mirror",
            config=config,
        )
        served = {r.name for r in server.requests}
    assert archive_bytes(Path(mirror.output)) == archive_bytes(Path(direct.output))
    fns = {r["fn"] for r in template.records(tmp_path / "env.lock")}
    assert served & fns == {f for f in fns if f.startswith("oldformat")}


def test_the_config_files_proxy_carries_the_mirrors_requests(
    registry: Registry,
    template: LockTemplate,
    fixture_channel: Path,
    mirrored: dict[str, str],
    tmp_path: Path,
) -> None:
    """``[proxy-config]`` applies to OCI mirrors as to channels: every registry request
    of the pack goes through the proxy (here the only way the packages are fetched)."""
    from support.tunnelproxy import TunnelProxy

    with FaultServer(fixture_channel) as server, TunnelProxy() as proxy:
        config = _config(tmp_path, f"oci://127.0.0.1:{registry.port}/{MIRROR_PATH}", server.url)
        config.write_text(config.read_text() + f'[proxy-config]\nhttp = "{proxy.url}"\n')
        portpack.pack(
            lockfile=template.write(tmp_path / "env.lock", UPSTREAM),
            output=tmp_path / "mirror.tar",
            cache_dir=tmp_path / "cache",
            config=config,
        )
    blobs = [s.target for s in proxy.seen if "/blobs/" in s.target]
    assert len(blobs) >= len(mirrored)
    assert all(t.startswith(f"http://127.0.0.1:{registry.port}/v2/") for t in blobs)


def test_package_missing_from_the_only_mirror_names_it_and_the_reference(
    registry: Registry, template: LockTemplate, mirrored: dict[str, str], tmp_path: Path
) -> None:
    config = _config(tmp_path, f"oci://127.0.0.1:{registry.port}/{MIRROR_PATH}")
    with pytest.raises(FetchError) as caught:
        portpack.pack(
            lockfile=template.write(tmp_path / "env.lock", UPSTREAM),
            output=tmp_path / "env.tar",
            cache_dir=tmp_path / "cache",
            config=config,
        )
    message = caught.value.message
    assert "package oldformat-" in message
    assert f"oci://127.0.0.1:{registry.port}/{MIRROR_PATH}/" in message
    assert "/oldformat:" in message
    assert not (tmp_path / "env.tar").exists()


def test_a_mirror_blob_that_differs_from_the_lock_is_refused(
    registry: Registry,
    template: LockTemplate,
    fixture_channel: Path,
    mirrored: dict[str, str],
    tmp_path: Path,
) -> None:
    lock = template.write(tmp_path / "env.lock", UPSTREAM)
    hello = next(r for r in template.records(lock) if r["name"] == "hello-c")
    wrong = "0" * 64
    lock.write_text(lock.read_text().replace(hello["sha256"], wrong))
    with FaultServer(fixture_channel) as server:
        config = _config(tmp_path, f"oci://127.0.0.1:{registry.port}/{MIRROR_PATH}", server.url)
        with pytest.raises(FetchError) as caught:
            portpack.pack(
                lockfile=lock,
                output=tmp_path / "env.tar",
                cache_dir=tmp_path / "cache",
                config=config,
            )
    message = caught.value.message
    assert "package hello-c-" in message
    assert f"expected {wrong}" in message
    assert f"oci://127.0.0.1:{registry.port}/{MIRROR_PATH}/" in message
    assert not (tmp_path / "env.tar").exists()


def test_lock_refuses_an_oci_mirror_the_solver_would_ask_on_another_port(
    registry: Registry, tmp_path: Path
) -> None:
    mirror = f"oci://127.0.0.1:{registry.port}/{MIRROR_PATH}"
    with pytest.raises(UsageError) as caught:
        portpack.lock(
            ["hello-c"],
            channels=[UPSTREAM],
            platforms=["linux-64"],
            output=tmp_path / "m.lock",
            config=_config(tmp_path, mirror),
        )
    assert f"{mirror}/" in caught.value.message
    assert "https:// mirror" in caught.value.message
    assert not (tmp_path / "m.lock").exists()
