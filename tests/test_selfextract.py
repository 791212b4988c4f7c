"""Self-extracting archives (``pack --create-executable``), run in a bare Debian 13 chroot.

The rootfs is ``debootstrap --variant=minbase trixie`` (tests/support/debian.py),
built once per machine; it has neither python3 nor zstd. chroot and mount need root,
as CI runs.  The zstandard wheel for the
fixture python (the running CPython, tests/support/pythonpkg.py) comes from PyPI once
(``pip download``) and is then cached with the other fixtures, and is always passed
to ``pack`` explicitly, so the tests run offline after the first session.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import trustme
import update_support
import zstandard

import portpack
from faultserver import Bearer, FaultServer, closed_port_url
from httpserver import serve_directory
from portpack.archive import sfx
from portpack.archive.reader import open_metadata
from portpack.errors import ArchiveError, FetchError, UsageError
from portpack.net.config import load_network_config
from portpack.net.fetch import Fetcher
from portpack.packer import bootstrap, bootstrap_python, bootstrap_wheel, selfextract
from support.cache import cached_build
from support.debian import cached_rootfs, chroot_run, copy_rootfs
from support.extract import extract_all
from support.pythonpkg import cached_python_package
from treesnap import diff, snapshot

PORTPACK = [sys.executable, "-m", "portpack"]
PY_ENV = ["python", "hello-c", "greet", "pyscript", "actpkg"]
ABI = f"cp{sys.version_info.major}{sys.version_info.minor}"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
#: conda-meta/history holds the time and the command: it differs on purpose.
HISTORY = ("conda-meta/history",)


def download_zstandard_wheel(dest: Path) -> Path:
    """``pip download`` the zstandard wheel matching this interpreter (cached builder)."""
    version = metadata.version("zstandard")
    dest.mkdir(parents=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", f"zstandard=={version}",
            "--only-binary", ":all:", "--no-deps", "--python-version",
            f"{sys.version_info.major}.{sys.version_info.minor}",
            "--platform", "manylinux2014_x86_64", "-d", str(dest), "-q",
        ],
        check=True,
    )  # fmt: skip
    (wheel,) = dest.glob("zstandard-*.whl")
    return wheel


@pytest.fixture(scope="session")
def zstandard_wheel() -> Path:
    return cached_build("zstandard-wheel", download_zstandard_wheel, [])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sfx")


@pytest.fixture(scope="module")
def py_lock(fixture_channel: Path, work: Path) -> Path:
    return portpack.lock(
        PY_ENV, channels=[str(fixture_channel)], platforms=["linux-64"], output=work / "py.lock"
    )


@pytest.fixture(scope="module")
def env_sh(py_lock: Path, work: Path, zstandard_wheel: Path) -> Path:
    """The python environment as a self-extracting archive (through the library)."""
    result = portpack.pack(
        lockfile=py_lock,
        output=work / "env.sh",
        cache_dir=work / "cache",
        create_executable=True,
        zstandard_wheel=zstandard_wheel,
    )
    assert result.output == str(work / "env.sh")
    return work / "env.sh"


@pytest.fixture(scope="module")
def env_tar(py_lock: Path, work: Path) -> Path:
    portpack.pack(lockfile=py_lock, output=work / "env.tar", cache_dir=work / "cache")
    return work / "env.tar"


@pytest.fixture(scope="module")
def nopy_sh(fixture_channel: Path, work: Path, zstandard_wheel: Path) -> Path:
    """An environment without python (hello-c only), packed through the CLI.

    Its bootstrap python is solved from the lock's channel (the fixture channel).
    """
    lock = portpack.lock(
        ["hello-c"], channels=[str(fixture_channel)], platforms=["linux-64"],
        output=work / "nopy.lock",
    )  # fmt: skip
    out = subprocess.run(
        [
            *PORTPACK, "pack", "-l", str(lock), "--create-executable", "-o", "nopy.sh",
            "--cache-dir", str(work / "cache"), "--zstandard-wheel", str(zstandard_wheel),
        ],
        capture_output=True, text=True, cwd=work, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Packed 1 package for linux-64 into nopy.sh" in out.stdout
    return work / "nopy.sh"


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the bare Debian 13 rootfs."""
    root = copy_rootfs(cached_rootfs("trixie"), tmp_path_factory.mktemp("debian") / "root")
    found = chroot_run(root, ["/bin/sh", "-c", "command -v python3 || command -v zstd"])
    assert found.returncode != 0 and not found.stdout, f"not bare: {found.stdout}"
    assert not list((root / "usr/bin").glob("python*"))
    assert not (root / "usr/bin/zstd").exists()
    return root


def in_chroot(root: Path, *argv: str) -> str:
    out = chroot_run(root, list(argv))
    assert out.returncode == 0, f"{argv}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


# -- on a bare Debian system ----------------------------------------------------------------


def test_environment_with_python_unpacks_on_bare_debian(debian: Path, env_sh: Path) -> None:
    shutil.copy2(env_sh, debian / "env.sh")
    out = in_chroot(debian, "/bin/sh", "/env.sh", "-o", "/app")
    assert "Unpacked 6 packages into /app/env" in out
    assert sorted(os.listdir(debian / "app")) == ["activate.sh", "env"]
    assert leftovers(debian / "tmp") == []  # the bootstrap is gone
    py = "import json, sqlite3, sys; print(sys.prefix, sqlite3.sqlite_version)"
    assert in_chroot(debian, "/app/env/bin/python", "-c", py).startswith("/app/env ")
    assert in_chroot(debian, "/app/env/bin/hello").strip() == "prefix=/app/env"
    assert "hello from greetlib" in in_chroot(debian, "/app/env/bin/greet")
    script = ". /app/activate.sh && command -v python && command -v hello && pyscript"
    activated = in_chroot(debian, "/bin/sh", "-c", script)
    assert activated.split() == ["/app/env/bin/python", "/app/env/bin/hello", "/app/env"]


def test_run_as_executable_with_options(debian: Path, env_sh: Path) -> None:
    shutil.copy2(env_sh, debian / "env.sh")
    out = chroot_run(debian, ["/env.sh", "-o", "/srv", "-e", "web", "-q"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
    assert in_chroot(debian, "/srv/web/bin/hello").strip() == "prefix=/srv/web"
    assert leftovers(debian / "tmp") == []


def test_environment_without_python_unpacks_on_bare_debian(debian: Path, nopy_sh: Path) -> None:
    header = nopy_sh.read_bytes()[: selfextract.HEADER_ALIGN].decode()
    assert "for unpacking only" in header
    shutil.copy2(nopy_sh, debian / "nopy.sh")
    out = in_chroot(debian, "/bin/sh", "/nopy.sh", "-o", "/opt/c")
    assert "Unpacked 1 package into /opt/c/env" in out
    assert in_chroot(debian, "/opt/c/env/bin/hello").strip() == "prefix=/opt/c/env"
    prefix = debian / "opt/c/env"
    assert not list(prefix.glob("bin/python*")) and not list(prefix.glob("lib/python*"))
    assert sorted(p.name for p in (prefix / "conda-meta").iterdir()) == [
        ".portpack-stat",  # the stat index, for a later --update
        "hello-c-1.0-hb0f4dca_0.json",
        "history",
    ]
    assert leftovers(debian / "tmp") == []


# -- the same result as portpack unpack ---------------------------------------------------------


def test_same_prefix_as_portpack_unpack(env_sh: Path, env_tar: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    portpack.unpack(env_tar, target)
    expected = snapshot(target / "env", skip=HISTORY)
    runs = {
        "sh env.sh": ["sh", str(env_sh), "-o", str(target)],
        "portpack unpack env.sh": [*PORTPACK, "unpack", str(env_sh), "-o", str(target)],
        "portpack unpack - < env.sh": [*PORTPACK, "unpack", "-", "-o", str(target)],
        "cat env.sh | portpack unpack -": ["sh", "-c", f'cat "$1" | {" ".join(PORTPACK)} '
                                           f'unpack - -o "$2"', "sh", str(env_sh), str(target)],
    }  # fmt: skip
    for label, argv in runs.items():
        shutil.rmtree(target)
        stdin = env_sh.open("rb") if "<" in label else None
        try:
            out = subprocess.run(argv, capture_output=True, text=True, stdin=stdin, check=False)
        finally:
            if stdin:
                stdin.close()
        assert out.returncode == 0, f"{label}: {out.stderr}"
        assert diff(expected, snapshot(target / "env", skip=HISTORY)) == [], label
        assert sorted(os.listdir(target)) == ["activate.sh", "env"], label


def test_archive_part_is_the_plain_archive(env_sh: Path, env_tar: Path) -> None:
    data = env_sh.read_bytes()
    offset = sfx.archive_offset(data[: sfx.MAX_HEADER], "env.sh")
    assert data[offset:] == env_tar.read_bytes()
    assert os.access(env_sh, os.X_OK)


# -- the command line and its errors ----------------------------------------------------------


def run_sh(path: Path, *args: str, tmpdir: Path) -> subprocess.CompletedProcess[str]:
    tmpdir.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run(
        ["sh", str(path), *args], capture_output=True, text=True, env=env, check=False
    )


def test_help_and_bad_options(env_sh: Path, tmp_path: Path) -> None:
    out = run_sh(env_sh, "--help", tmpdir=tmp_path / "t")
    assert out.returncode == 0, out.stderr
    for text in (
        "Usage: env.sh [OPTIONS]\n",
        "  -o, --output-directory DIRECTORY",
        "  -e, --env-name TEXT",
        "sh env.sh -o /app",
    ):
        assert text in out.stdout
    assert "archive" not in out.stdout.split("\n\n")[0]  # usage: it unpacks itself
    out = run_sh(env_sh, "-o", str(tmp_path / "o"), "stray", tmpdir=tmp_path / "t")
    assert out.returncode == 2
    assert "unrecognized arguments: stray" in out.stderr
    assert leftovers(tmp_path / "t") == [] and not (tmp_path / "o").exists()


def test_truncated_file_fails_cleanly(env_sh: Path, tmp_path: Path) -> None:
    data = env_sh.read_bytes()
    offset = sfx.archive_offset(data[: sfx.MAX_HEADER], "env.sh")
    cases = {
        "archive": (data[: len(data) - 100_000], "truncated"),
        "bootstrap": (data[: offset - 1_000_000], "cannot extract the bootstrap"),
    }
    for label, (content, message) in cases.items():
        bad = tmp_path / f"bad-{label}.sh"
        bad.write_bytes(content)
        out = run_sh(bad, "-o", str(tmp_path / label), tmpdir=tmp_path / "t")
        assert out.returncode != 0, label
        assert message in out.stderr and bad.name in out.stderr, out.stderr
        assert leftovers(tmp_path / "t") == [], label
        assert leftovers(tmp_path / label) == [], label


def test_interrupt_removes_bootstrap_and_environment(env_sh: Path, tmp_path: Path) -> None:
    tmpdir, out_dir = tmp_path / "t", tmp_path / "o"
    tmpdir.mkdir()
    proc = subprocess.Popen(
        ["sh", str(env_sh), "-o", str(out_dir)],
        env={**os.environ, "TMPDIR": str(tmpdir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(out_dir.glob(".env.portpack-*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the unpacker never started"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "interrupted" in stderr
    assert leftovers(tmpdir) == [] and leftovers(out_dir) == []


# -- updating a deployed environment in place -----------------------------------------------


@pytest.fixture(scope="module")
def update_sh(fixture_channel: Path, work: Path, zstandard_wheel: Path) -> dict[str, Path]:
    """The python environment plus package small, 1.0 in v1 and 1.1 in v2, as
    self-extracting archives: they differ in that one package."""
    channel = update_support.build_channel(work / "small-channel", only=("small",))
    made = {}
    for name, small in (("v1", "small==1.0"), ("v2", "small==1.1")):
        lock = portpack.lock(
            [*PY_ENV, small], channels=[str(fixture_channel), str(channel)],
            platforms=["linux-64"], output=work / f"app-{name}.lock",
        )  # fmt: skip
        made[name] = work / f"app-{name}.sh"
        portpack.pack(
            lockfile=lock, output=made[name], cache_dir=work / "cache",
            create_executable=True, zstandard_wheel=zstandard_wheel,
        )  # fmt: skip
    return made


def test_update_in_place_reuses_the_unchanged_packages_files(
    update_sh: dict[str, Path], tmp_path: Path
) -> None:
    """``sh app-v2.sh -o OUT --update`` over ``sh app-v1.sh -o OUT``: the environment a
    fresh unpack of v2 leaves, and every file of the six packages both versions share
    is the old file itself (its inode), not a copy."""
    out, tmpdir = tmp_path / "app", tmp_path / "t"
    first = run_sh(update_sh["v1"], "-o", str(out), "-q", tmpdir=tmpdir)
    assert first.returncode == 0, first.stderr
    before = update_support.inodes(out / "env")
    run = run_sh(update_sh["v2"], "-o", str(out), "--update", "-v", tmpdir=tmpdir)
    assert run.returncode == 0, run.stderr
    assert f"Updated {out / 'env'}: 1 package installed, 6 reused, 0 removed" in run.stdout
    assert "  small-1.1-0\n" in run.stdout and "  hello-c-1.0-hb0f4dca_0 (reused)" in run.stdout
    assert leftovers(tmpdir) == [] and sorted(os.listdir(out)) == ["activate.sh", "env"]
    after = update_support.inodes(out / "env")
    assert diff(update_support.snapshot(out), update_support.fresh(update_sh["v2"], out)) == []
    # (conda-meta is written anew, as by a fresh unpack)
    new = sorted(r for r in after if after[r] != before.get(r) and not r.startswith("conda-meta/"))
    assert new == ["bin/small", "share/small/version.txt"]
    assert len(after) > 100 and "conda-meta/small-1.0-0.json" not in after


def test_update_refuses_a_locally_changed_file_unless_forced(
    update_sh: dict[str, Path], tmp_path: Path
) -> None:
    """A file of an unchanged package edited in place: the update names it, exits 2 and
    leaves the environment as it was; ``--force`` replaces it (and ``--drop-unowned``
    leaves out a file no package owns)."""
    out, tmpdir = tmp_path / "app", tmp_path / "t"
    portpack.unpack(update_sh["v1"], out)
    env = out / "env"
    (env / "etc/conda/activate.d/actpkg.sh").write_text("export ACTPKG_ACTIVE=edited\n")
    (env / "etc/local.conf").write_text("mine\n")
    before = update_support.exact(out)
    run = run_sh(update_sh["v2"], "-o", str(out), "--update", tmpdir=tmpdir)
    assert run.returncode == 2, run.stderr
    assert "etc/conda/activate.d/actpkg.sh" in run.stderr and "--force" in run.stderr
    assert "Traceback" not in run.stderr
    assert update_support.exact(out) == before and leftovers(tmpdir) == []
    run = run_sh(
        update_sh["v2"], "-o", str(out), "--update", "--force", "--drop-unowned", tmpdir=tmpdir
    )
    assert run.returncode == 0, run.stderr
    assert "  replaced (changed locally): etc/conda/activate.d/actpkg.sh: " in run.stdout
    assert "  dropped (no package owns it): etc/local.conf\n" in run.stdout
    assert (env / "etc/conda/activate.d/actpkg.sh").read_text() == "export ACTPKG_ACTIVE=1\n"
    assert diff(update_support.snapshot(out), update_support.fresh(update_sh["v2"], out)) == []


def test_update_seeks_past_the_unchanged_packages_of_a_self_extracting_file(
    update_sh: dict[str, Path], tmp_path: Path
) -> None:
    """The unpacker the header runs opens the file by its path, as here: it reads the
    header, the metadata and the changed package's segments; the rest (the python
    package and the others) is skipped by seeking, never read or decoded."""
    out = tmp_path / "app"
    portpack.unpack(update_sh["v1"], out)
    result = portpack.unpack(update_sh["v2"], out, update=True)
    assert result.installed == ["small-1.1-0"]
    data = update_sh["v2"].read_bytes()
    part = data[sfx.archive_offset(data[: sfx.MAX_HEADER], "v2") :]
    meta = open_metadata(io.BytesIO(part), "v2")
    (small,) = [e for e in meta.packages if e.name == "small"]
    frame = zstandard.ZstdDecompressor().decompressobj()
    frame.decompress(part)
    needed = len(part) - len(frame.unused_data) + small.info.zst_size + small.payload.zst_size
    # plus the header sniffed for its offset, the archive's first block and the changed
    # members' tar headers
    assert needed <= result.bytes_read <= needed + sfx.MAX_HEADER + 2048
    assert result.bytes_read < len(part) // 20


def test_script_that_is_not_self_extracting(tmp_path: Path) -> None:
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    with pytest.raises(ArchiveError, match=r"x\.sh is a script, not a portpack archive"):
        portpack.unpack(script, tmp_path / "o")
    newer = sfx.SHEBANG + b"# portpack self-extracting archive, format 2\n# archive offset: 9\n"
    with pytest.raises(ArchiveError, match="format 2; this portpack reads format 1"):
        sfx.archive_offset(newer, "new.sh")
    assert not (tmp_path / "o" / "env").exists()


def test_wheel_for_another_python_is_refused(py_lock: Path, work: Path, tmp_path: Path) -> None:
    other = tmp_path / "zstandard-0.25.0-cp39-cp39-manylinux2014_x86_64.whl"
    other.write_bytes(b"not used")
    with pytest.raises(UsageError, match=rf"{other.name} is not a zstandard wheel for {ABI}"):
        portpack.pack(
            lockfile=py_lock,
            output=tmp_path / "env.sh",
            cache_dir=work / "cache",
            create_executable=True,
            zstandard_wheel=other,
        )
    assert leftovers(tmp_path) == [other.name]


def test_options_need_create_executable(py_lock: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="need --create-executable"):
        portpack.pack(lockfile=py_lock, output=tmp_path / "x", bootstrap_python="python")


def test_wheel_from_index_then_from_cache(
    zstandard_wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    index = tmp_path / "index"
    (index / "zstandard").mkdir(parents=True)
    shutil.copy2(zstandard_wheel, index / "zstandard" / zstandard_wheel.name)
    sha = hashlib.sha256(zstandard_wheel.read_bytes()).hexdigest()
    files = [
        {"filename": zstandard_wheel.name, "url": zstandard_wheel.name, "hashes": {"sha256": sha}},
        {"filename": "zstandard-0.1.tar.gz", "url": "x", "hashes": {}},
    ]
    page = index / "zstandard" / "index.html"  # what a static server returns for /zstandard/
    page.write_text(json.dumps({"meta": {"api-version": "1.1"}, "files": files}))
    cache = tmp_path / "cache"
    find = bootstrap_wheel.find_zstandard_wheel
    with serve_directory(index) as url:
        got = find(ABI, "x86_64", Fetcher(cache), url)
        assert got == cache / "wheels" / zstandard_wheel.name
        assert got.read_bytes() == zstandard_wheel.read_bytes()
        with pytest.raises(FetchError, match=r"no zstandard \S+ wheel for cp39 on manylinux"):
            find("cp39", "aarch64", Fetcher(cache), url)
    # offline now: the cached wheel is used without asking the index
    assert find(ABI, "x86_64", Fetcher(cache), "http://127.0.0.1:9/") == got
    files[0]["hashes"] = {"sha256": "0" * 64}
    page.write_text(json.dumps({"files": files}))
    with (
        serve_directory(index) as url,
        pytest.raises(FetchError, match="does not match the checksum in the wheel index"),
    ):
        find(ABI, "x86_64", Fetcher(tmp_path / "cache2"), url)
    assert leftovers(tmp_path / "cache2" / "wheels") == []
    assert leftovers(tmp_path / "cache2" / "pkgs" / "bootstrap-wheels") == []


@pytest.mark.parametrize(
    ("listed", "error"),
    [
        ("file:///etc/hostname", "not an HTTP(S) URL; refusing it"),
        ("/etc/hostname", "HTTP 404"),  # a path on the index's server, not a local one
    ],
)
def test_wheel_index_cannot_point_at_local_files(
    zstandard_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    listed: str,
    error: str,
) -> None:
    """A hostile index naming a local file (with its right sha256) gets nothing read."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    local = Path("/etc/hostname")
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    page = tmp_path / "index" / "zstandard"
    page.mkdir(parents=True)
    files = [{"filename": zstandard_wheel.name, "url": listed, "hashes": {"sha256": sha}}]
    (page / "index.html").write_text(json.dumps({"files": files}))
    cache = tmp_path / "cache"
    with serve_directory(tmp_path / "index") as url, pytest.raises(FetchError) as info:
        bootstrap_wheel.find_zstandard_wheel(ABI, "x86_64", Fetcher(cache), url)
    assert error in info.value.message
    assert leftovers(cache / "wheels") == leftovers(cache / "pkgs" / "bootstrap-wheels") == []
    with pytest.raises(UsageError, match="--wheel-index must be an http"):
        bootstrap_wheel.find_zstandard_wheel(ABI, "x86_64", Fetcher(cache), str(tmp_path))


# -- the wheel index through the network settings of every download ----------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("RATTLER_AUTH_FILE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)


def wheel_index(root: Path, wheel: Path) -> Path:
    """A static PEP 691 index in ``root``: ``simple/zstandard/`` lists ``wheel``."""
    page = root / "simple" / "zstandard"
    page.mkdir(parents=True)
    shutil.copy2(wheel, page / wheel.name)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    files = [{"filename": wheel.name, "url": wheel.name, "hashes": {"sha256": sha}}]
    (page / "index.html").write_text(json.dumps({"meta": {"api-version": "1.1"}, "files": files}))
    return root


def test_wheel_index_through_the_proxy_of_the_config_file(
    py_lock: Path, zstandard_wheel: Path, debian: Path, tmp_path: Path, no_proxy_env: None
) -> None:
    """``pack --create-executable --config`` sends the index and wheel requests through
    the ``[proxy-config]`` proxy, and the archive unpacks on a bare system."""
    index = wheel_index(tmp_path / "index", zstandard_wheel)
    with FaultServer(index) as proxy:
        config = tmp_path / "net.toml"
        config.write_text(f'[proxy-config]\nhttp = "{proxy.url}"\n')
        out = subprocess.run(
            [
                *PORTPACK, "pack", "-l", str(py_lock), "--create-executable", "-o", "env.sh",
                "--cache-dir", str(tmp_path / "cache"), "--config", str(config),
                "--wheel-index", "http://pypi.example.invalid/simple",
            ],
            capture_output=True, text=True, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        seen = [(r.path, r.proxied, r.status) for r in proxy.requests]
    assert seen == [
        ("/simple/zstandard/", True, 200),
        (f"/simple/zstandard/{zstandard_wheel.name}", True, 200),
    ]
    assert proxy.requests[0].headers["Accept"] == bootstrap_wheel.SIMPLE_JSON
    assert (tmp_path / "cache" / "wheels" / zstandard_wheel.name).is_file()
    shutil.copy2(tmp_path / "env.sh", debian / "proxied.sh")
    assert "Unpacked 6 packages into /proxied/env" in in_chroot(
        debian, "/bin/sh", "/proxied.sh", "-o", "/proxied"
    )
    assert in_chroot(debian, "/proxied/env/bin/hello").strip() == "prefix=/proxied/env"


def test_https_wheel_index_with_a_private_ca(
    py_lock: Path, zstandard_wheel: Path, tmp_path: Path, no_proxy_env: None
) -> None:
    """An https index signed by a private CA: refused with what to do, then accepted
    with ``ca_bundle`` (``--ca-bundle``), and the archive unpacks; or with
    ``--insecure-host`` for that host."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    index = wheel_index(tmp_path / "index", zstandard_wheel)
    options: dict[str, Any] = {
        "lockfile": py_lock, "cache_dir": tmp_path / "cache", "create_executable": True
    }  # fmt: skip
    with FaultServer(index, tls=context) as server:
        url = server.url + "simple"
        with pytest.raises(
            FetchError, match=r"TLS certificate of 127\.0\.0\.1 cannot be verified"
        ) as info:
            portpack.pack(output=tmp_path / "bad.sh", wheel_index=url, **options)
        assert info.value.url == f"{url}/zstandard/"
        assert "--ca-bundle" in (info.value.hint or "")
        assert not (tmp_path / "bad.sh").exists()
        portpack.pack(output=tmp_path / "env.sh", wheel_index=url, ca_bundle=bundle, **options)
        got = [r.name for r in server.requests if r.status == 200]
        # --insecure-host for this host only: no verification, no CA needed
        insecure = load_network_config(insecure_hosts=[f"127.0.0.1:{server.port}"])
        wheel = bootstrap_wheel.find_zstandard_wheel(
            ABI, "x86_64", Fetcher(tmp_path / "c3", network=insecure), url
        )
        assert wheel.read_bytes() == zstandard_wheel.read_bytes()
    assert got == ["", zstandard_wheel.name]  # the index page, then the wheel
    out = run_sh(tmp_path / "env.sh", "-o", str(tmp_path / "o"), "-q", tmpdir=tmp_path / "t")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "env" / "conda-meta" / "history").is_file()


def test_unreachable_wheel_index_is_named(
    py_lock: Path, tmp_path: Path, no_proxy_env: None
) -> None:
    """The error names the index URL, no traceback, nothing written; ``retries = 0``
    of the config file is honoured (one attempt)."""
    url = closed_port_url() + "simple"
    config = tmp_path / "net.toml"
    config.write_text("[portpack]\nretries = 0\n")
    out = subprocess.run(
        [
            *PORTPACK, "pack", "-l", str(py_lock), "--create-executable", "-o", "env.sh",
            "--cache-dir", str(tmp_path / "cache"), "--config", str(config),
            "--wheel-index", url,
        ],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "cannot download the wheel index page of zstandard" in out.stderr
    assert f"{url}/zstandard/" in out.stderr and "cannot connect" in out.stderr
    assert "gave up after 1 attempts" in out.stderr and "--zstandard-wheel" in out.stderr
    assert "Traceback" not in out.stderr
    assert leftovers(tmp_path) == ["cache", "net.toml"]
    assert leftovers(tmp_path / "cache" / "pkgs" / "wheel-index") == []


def test_wheel_index_mirror_and_credentials(
    zstandard_wheel: Path, tmp_path: Path, no_proxy_env: None
) -> None:
    """The config file's ``[mirrors]`` and the auth file apply to the index and wheel."""
    token = "tk-0f-the-index"
    index = wheel_index(tmp_path / "index", zstandard_wheel)
    official = "https://pypi.example.invalid/simple"
    with FaultServer(index, auth=Bearer(token)) as server:
        config = tmp_path / "net.toml"
        config.write_text(f'[mirrors]\n"{official}" = ["{server.url}simple"]\n')
        with pytest.raises(FetchError, match="HTTP 401") as info:
            bootstrap_wheel.find_zstandard_wheel(
                ABI, "x86_64", Fetcher(tmp_path / "c1", network=load_network_config(config)),
                official,
            )  # fmt: skip
        assert "--auth-file" in (info.value.hint or "")
        auth = tmp_path / "auth.json"
        auth.write_text(json.dumps({"127.0.0.1": {"BearerToken": token}}))
        network = load_network_config(config, auth_file=auth)
        got = bootstrap_wheel.find_zstandard_wheel(
            ABI, "x86_64", Fetcher(tmp_path / "c2", network=network), official
        )
        sent = [r.headers.get("Authorization") for r in server.requests[1:]]
    assert got.read_bytes() == zstandard_wheel.read_bytes()
    assert sent == [f"Bearer {token}"] * 2
    assert token not in str(info.value)


def test_bootstrap_uses_the_python_packages_byte_code(
    zstandard_wheel: Path, tmp_path: Path
) -> None:
    """A python package with __pycache__ (as conda-forge's) is not recompiled at every run."""
    package = cached_python_package(with_pycache=True)
    python = bootstrap_python.fetch_bootstrap_python(
        str(package), "linux-64", [], Fetcher(tmp_path / "cache")
    )
    assert not python.from_environment
    with (
        bootstrap.build_bootstrap(python, zstandard_wheel) as boot,
        tarfile.open(fileobj=boot.file, mode="r:gz") as tar,
    ):
        names = set(tar.getnames())
        extract_all(tar, tmp_path / "boot", "tar")
    stdlib = f"lib/python{PY}"
    assert {f"{stdlib}/tempfile.pyc", f"{stdlib}/json/decoder.pyc"} <= names
    assert f"{stdlib}/tempfile.py" not in names  # the byte code replaces it
    assert not [n for n in names if "__pycache__" in n or "/test/" in n or n.endswith(".a")]
    code = "import sys; sys.path.insert(0, sys.argv[1]); import portpack.unpacker.streaming"
    out = subprocess.run(
        [tmp_path / "boot" / boot.python, "-I", "-S", "-B", "-v", "-c", code,
         tmp_path / "boot" / "site"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    compiled = [
        line
        for line in out.stderr.splitlines()
        if line.startswith("# code object from") and line.endswith(".py")
    ]
    assert compiled  # portpack's own modules, from source
    assert not [line for line in compiled if f"/boot/{stdlib}/" in line]


def test_noexec_temporary_directory_is_explained(env_sh: Path, tmp_path: Path) -> None:
    noexec = tmp_path / "noexec"
    noexec.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec", "tmpfs", str(noexec)], check=True)
    try:
        out = run_sh(env_sh, "-o", str(tmp_path / "o"), tmpdir=noexec)
        assert out.returncode == 1
        assert "the bundled Python cannot run here" in out.stderr
        assert f"If {noexec} is mounted noexec, set TMPDIR" in out.stderr
        assert leftovers(noexec) == [] and not (tmp_path / "o").exists()
    finally:
        subprocess.run(["umount", str(noexec)], check=False)
    out = run_sh(env_sh, "-q", "-o", str(tmp_path / "o"), tmpdir=tmp_path / "t")
    assert out.returncode == 0, out.stderr  # with TMPDIR elsewhere it works


def _unpack_path_imports() -> tuple[set[str], set[str]]:
    """Modules of portpack reachable from the self-extractor's entry (the sh header runs
    ``portpack.cli.unpack.self_extracting_main``), and the top-level standard library
    modules they import (at any depth, outside TYPE_CHECKING)."""
    import ast

    root = Path(portpack.__file__).parent.parent
    # (portpack/__init__.py imports the unpack side at the top, the pack side lazily)
    todo = ["portpack.archive.sfx", "portpack.cli.unpack", "portpack.unpacker.streaming"]
    seen: set[str] = set()
    stdlib: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = root / (name.replace(".", "/") + ".py")
        if not path.is_file():
            path = root / name.replace(".", "/") / "__init__.py"
        tree = ast.parse(path.read_text())
        skip = {
            id(node)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for node in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "portpack" or node.module.startswith("portpack."):
                    for alias in node.names:
                        sub = f"{node.module}.{alias.name}"
                        as_module = root / (sub.replace(".", "/") + ".py")
                        todo.append(sub if as_module.is_file() else node.module)
                else:
                    stdlib.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "portpack":
                        todo.append(alias.name)
                    else:
                        stdlib.add(alias.name.split(".")[0])
    return seen, stdlib & set(sys.stdlib_module_names)


def test_bootstrap_keeps_the_python_packages_own_libraries() -> None:
    """The libraries the package ships in lib/ for its interpreter (libexpat of a python
    built like Debian's) go in: the interpreter would not start on a bare system."""
    keep = ("lib/libpython3.11.so.1.0", "lib/libpython3.so", "lib/libexpat.so.1", "lib/libz.so")
    drop = ("lib/libpython3.11.a", "lib/pkgconfig/python3.pc", "lib/libfoo.so.txt")
    for path in keep:
        assert bootstrap.bootstrap_path(path, (3, 11), frozenset()) == path
    for path in drop:
        assert bootstrap.bootstrap_path(path, (3, 11), frozenset()) is None


def test_bootstrap_keeps_every_module_the_unpacker_imports() -> None:
    """The bootstrap leaves parts of the standard library out; none the unpacker needs."""
    modules, stdlib = _unpack_path_imports()
    assert {
        "portpack.unpacker.streaming",
        "portpack.archive.reader",
        "portpack.install.linker",
        "portpack.archive.sfx",
    } <= modules
    pack_side = ("portpack.cli.commands", "portpack.packer", "portpack.net", "portpack.resolve")
    assert not [m for m in modules if m.startswith(pack_side)]  # pack side stays out
    version = (sys.version_info.major, sys.version_info.minor)
    base = Path(sys.base_prefix) / "lib" / f"python{PY}"
    dropped = []
    for name in sorted(stdlib - set(sys.builtin_module_names)):
        if (base / name).is_dir():
            path = f"lib/python{PY}/{name}/__init__.py"
        elif (base / f"{name}.py").is_file():
            path = f"lib/python{PY}/{name}.py"
        else:
            (ext,) = (base / "lib-dynload").glob(f"{name}.*.so")
            path = f"lib/python{PY}/lib-dynload/{ext.name}"
        if bootstrap.bootstrap_path(path, version, frozenset()) is None:
            dropped.append(name)
    # ctypes (for renameat2) is used only where it imports; portpack.outside falls
    # back to mkdir-then-rename without it, as in the bootstrap (no libffi there).
    # email and http (http.client; email parses Retry-After dates) are imported only by
    # portpack.remote, which portpack.unpacker.sources loads for an http(s):// or oci://
    # archive; a self-extracting archive unpacks its own file, passed as a path object
    # (cli.unpack.main), so it never gets there.
    assert dropped == ["ctypes", "email", "http"]
