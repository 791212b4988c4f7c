"""Locking and packing from a channel served over HTTP on 127.0.0.1."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import portpack
from httpserver import serve_directory


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_lock_and_pack_from_http_channel(fixture_channel: Path, tmp_path: Path) -> None:
    with serve_directory(fixture_channel) as url:
        lock = portpack.lock(
            ["hello-c", "greet"],
            channels=[url],
            platforms=["linux-64"],
            output=tmp_path / "http.lock",
        )
        assert url in lock.read_text()
        result = portpack.pack(
            lockfile=lock, output=tmp_path / "env.tar", cache_dir=tmp_path / "cache", concurrency=4
        )
    assert {p.split("-1.0")[0] for p in result.packages} >= {"hello-c", "greet", "greetlib"}
    cached = sorted(p.name for p in (tmp_path / "cache" / "pkgs").rglob("*.conda"))
    assert "hello-c-1.0-hb0f4dca_0.conda" in cached or any("hello-c" in c for c in cached)
    env = portpack.unpack(tmp_path / "env.tar", tmp_path / "out").prefix
    out = subprocess.run([env / "bin" / "greet"], capture_output=True, text=True, check=True)
    assert "hello from greetlib" in out.stdout


def test_missing_package_on_server_names_package_and_url(
    fixture_channel: Path, tmp_path: Path
) -> None:
    with serve_directory(fixture_channel) as url:
        lock = portpack.lock(
            ["actpkg"], channels=[url], platforms=["linux-64"], output=tmp_path / "l.lock"
        )
    with serve_directory(tmp_path) as other:  # same lock, server without the package
        lock.write_text(lock.read_text().replace(url, other))
        with pytest.raises(portpack.FetchError, match=r"actpkg-1\.0-0.*HTTP 404") as info:
            portpack.pack(lockfile=lock, output=tmp_path / "x.tar", cache_dir=tmp_path / "c")
    assert info.value.url and info.value.url.startswith(other)
    assert not (tmp_path / "x.tar").exists()
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and "actpkg" in p.name]
