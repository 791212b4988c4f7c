"""PyPI packages in lockfiles: wheels packed with the conda packages, installed on unpack.

The wheels are real ones built offline from tiny projects (tests/support/wheels.py):
``pp-hello`` (a console script and a data file) depends on ``pp-greetlib``.  The
lockfiles are pixi.lock files written by py-rattler for the fixture channel's
``python`` and ``greet``, with ``pypi:`` entries added as pixi writes them (by local
path and by URL from a loopback HTTP server, with and without sha256).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard

import portpack
from httpserver import serve_directory
from portpack.archive import format as fmt
from portpack.errors import ArchiveError, FetchError, PortpackError, UsageError
from portpack.install.verify import verify
from portpack.packer.pypi import COMPRESSION_LEVEL
from portpack.progress import RecordingReporter
from portpack.resolve.lockfile import read_lock
from support.cache import cached_build
from support.wheels import GREETING, GREETLIB, HELLO, cached_wheels

PORTPACK = [sys.executable, "-m", "portpack"]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
SITE = f"lib/python{PY}/site-packages"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PORTPACK, *args], capture_output=True, text=True, cwd=cwd, check=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Holds ``dist/`` (the wheels) and the lockfiles, which name ``../dist/*.whl``."""
    root = tmp_path_factory.mktemp("pypi")
    shutil.copytree(cached_wheels(), root / "dist")
    return root


@pytest.fixture(scope="module")
def base_lock(fixture_channel: Path, work: Path) -> dict[str, Any]:
    """python + greet from the fixture channel, as a pixi.lock document."""
    lock = portpack.lock(
        ["python", "greet"],
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=work / "base.lock",
    )
    doc: dict[str, Any] = yaml.safe_load(lock.read_text())
    return doc


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[str]:
    """``dist/`` over HTTP on 127.0.0.1."""
    with serve_directory(work / "dist") as url:
        yield url


def write_lock(base: dict[str, Any], dest: Path, entries: list[dict[str, Any]]) -> Path:
    """``base`` with ``pypi:`` entries added for linux-64, in pixi's format."""
    doc = copy.deepcopy(base)
    doc["environments"]["default"]["packages"]["linux-64"] += [{"pypi": e["pypi"]} for e in entries]
    doc["packages"] += entries
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "pixi.lock"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def greetlib_entry(location: str, digest: str | None) -> dict[str, Any]:
    entry = {"pypi": location, "name": "pp-greetlib", "version": "1.0"}
    return entry | ({"sha256": digest} if digest else {})


def hello_entry(location: str, digest: str | None) -> dict[str, Any]:
    entry = {"pypi": location, "name": "pp-hello", "version": "2.0"}
    entry |= {"requires_dist": ["pp-greetlib"]}
    return entry | ({"sha256": digest} if digest else {})


@pytest.fixture(scope="module")
def main_lock(base_lock: dict[str, Any], work: Path, server: str) -> Path:
    """pp-greetlib by relative path with its sha256, pp-hello by URL without one."""
    dist = work / "dist"
    return write_lock(
        base_lock,
        work / "main",
        [
            greetlib_entry(f"../dist/{GREETLIB}", sha256(dist / GREETLIB)),
            hello_entry(f"{server}{HELLO}", None),
        ],
    )


@pytest.fixture(scope="module")
def env_tar(main_lock: Path) -> Path:
    out = cli(
        "pack", "-l", "pixi.lock", "-o", "env.tar", "--cache-dir", "cache", cwd=main_lock.parent
    )
    assert out.returncode == 0, out.stderr
    assert "Packed 3 packages and 2 PyPI wheels for linux-64 into env.tar" in out.stdout
    return main_lock.parent / "env.tar"


def run(*argv: str | Path) -> str:
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


# -- reading the lock ---------------------------------------------------------------------


def test_lock_entries_are_read_with_paths_resolved_and_hashes(main_lock: Path, work: Path) -> None:
    locked = read_lock(main_lock, "default", "linux-64")
    greetlib, hello = locked.pypi
    assert (greetlib.name, greetlib.version) == ("pp-greetlib", "1.0")
    assert greetlib.location == str(work / "dist" / GREETLIB)  # relative to the lock
    assert greetlib.sha256 == sha256(work / "dist" / GREETLIB)
    assert hello.location.startswith("http://127.0.0.1:") and hello.sha256 is None


# -- pack and unpack ----------------------------------------------------------------------


def test_wheels_are_installed_with_scripts_record_and_installer(
    env_tar: Path, tmp_path: Path
) -> None:
    out = cli("unpack", str(env_tar), "-o", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    prefix = tmp_path / "env"
    assert f"Unpacked 3 packages and 2 PyPI wheels into {prefix}" in out.stdout
    # The console script runs with the environment's python, importing both wheels.
    assert run(prefix / "bin/pp-hello") == f"{GREETING} {prefix}\n"
    assert (prefix / "bin/pp-hello").read_text().startswith(f"#!{prefix}/bin/python{PY}\n")
    module = run(prefix / "bin/python", "-c", "import pp_greetlib; print(pp_greetlib.__file__)")
    assert module.strip() == str(prefix / SITE / "pp_greetlib/__init__.py")
    assert "hello from greetlib" in run(prefix / "bin/greet")  # the conda packages too
    # The wheel's data scheme goes to the prefix.
    assert (prefix / "share/pp-hello/notes.txt").read_text().startswith("installed from")
    for dist_info in ("pp_greetlib-1.0.dist-info", "pp_hello-2.0.dist-info"):
        assert (prefix / SITE / dist_info / "INSTALLER").read_text() == "portpack\n"
    record = (prefix / SITE / "pp_hello-2.0.dist-info/RECORD").read_text().splitlines()
    paths = {line.split(",")[0] for line in record}
    assert {"../../../bin/pp-hello", "../../../share/pp-hello/notes.txt"} <= paths
    assert "pp_hello-2.0.dist-info/INSTALLER" in paths
    assert not list(prefix.glob(".portpack-wheels-*"))  # the spooled wheels are gone
    assert not (prefix / "conda-meta" / "pp-hello-2.0.json").exists()  # not conda packages

    verified = cli("verify", str(prefix), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout
    with open(prefix / SITE / "pp_hello/__init__.py", "a") as fh:
        fh.write("# edited\n")
    (prefix / "bin/pp-hello").unlink()
    verified = cli("verify", str(prefix), cwd=tmp_path)
    assert verified.returncode == 1
    assert f"modified: {SITE}/pp_hello/__init__.py: size" in verified.stdout
    assert "missing: bin/pp-hello" in verified.stdout


def test_long_prefix_with_a_space_gets_a_working_script(env_tar: Path, tmp_path: Path) -> None:
    """A shebang longer than the kernel allows, or with a space, is a /bin/sh trampoline."""
    out_dir = tmp_path / "with space" / ("deep" * 30)
    result = portpack.unpack(env_tar, out_dir)
    script = result.prefix / "bin/pp-hello"
    assert script.read_text().startswith("#!/bin/sh\n")
    assert run(script) == f"{GREETING} {result.prefix}\n"
    assert result.wheels == [GREETLIB, HELLO]


def test_archive_lists_wheels_after_packages(env_tar: Path, work: Path) -> None:
    with zstandard.open(env_tar, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        names = [m.name for m in tar]
    assert names[-2:] == [f"wheels/{GREETLIB}", f"wheels/{HELLO}"]
    assert names[-3].startswith("pkgs/") and names[-3].endswith("/pkg.tar")
    summary = json.loads(cli("inspect", str(env_tar), "--json", cwd=work).stdout)
    assert summary["wheels"] == [GREETLIB, HELLO]
    meta = portpack.inspect(env_tar)
    assert meta.wheels == [GREETLIB, HELLO]


def test_unpacking_imports_installer_only_for_archives_with_wheels(
    env_tar: Path, base_lock: dict[str, Any], work: Path, tmp_path: Path
) -> None:
    conda_only = write_lock(base_lock, work / "conda-only", [])
    portpack.pack(lockfile=conda_only, output=tmp_path / "c.tar", cache_dir=work / "cache")
    code = (
        "import sys\nfrom portpack.unpacker.streaming import unpack\n"
        "unpack(sys.argv[1], sys.argv[2])\nprint('installer' in sys.modules)\n"
    )
    for archive, expected in ((tmp_path / "c.tar", "False"), (env_tar, "True")):
        out_dir = tmp_path / archive.stem
        assert run(sys.executable, "-c", code, archive, out_dir).strip() == expected


def test_corrupt_wheel_leaves_nothing_behind(env_tar: Path, work: Path, tmp_path: Path) -> None:
    data = bytearray(env_tar.read_bytes())
    wheel = (work / "dist" / HELLO).read_bytes()
    compressed = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, write_checksum=True)
    segment = compressed.compress(wheel)  # the packer's bytes for it, verbatim
    at = data.find(segment)
    assert at > 0
    data[at + len(segment) // 2] ^= 0xFF
    (tmp_path / "bad.tar").write_bytes(data)
    with pytest.raises(ArchiveError, match=f"wheel {HELLO}"):
        portpack.unpack(tmp_path / "bad.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # the run created it, and removed it again


def handmade_wheel(path: Path, files: dict[str, bytes]) -> Path:
    """A wheel of project ``pp-evil`` 1.0 holding ``files``, with a correct RECORD."""
    import base64
    import zipfile

    info = "pp_evil-1.0.dist-info"
    files = {
        **files,
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n",
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: pp-evil\nVersion: 1.0\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


@pytest.mark.parametrize(
    ("member", "error"),
    [
        ("../../../../escaped.txt", "refusing unsafe path '../../../../escaped.txt'"),
        ("greetlib/__init__.py", f"{SITE}/greetlib/__init__.py is already in the environment"),
    ],
)
def test_wheel_may_not_escape_or_overwrite(
    member: str, error: str, base_lock: dict[str, Any], work: Path, tmp_path: Path
) -> None:
    wheel = handmade_wheel(tmp_path / "pp_evil-1.0-py3-none-any.whl", {member: b"evil\n"})
    lock = write_lock(base_lock, tmp_path / "lock", [])
    portpack.pack(
        lockfile=lock, output=tmp_path / "env.tar", cache_dir=work / "cache", inject=[wheel]
    )
    with pytest.raises(PortpackError) as info:
        portpack.unpack(tmp_path / "env.tar", tmp_path / "out")
    assert f"wheel pp_evil-1.0-py3-none-any.whl: {error}" in str(info.value)
    assert not (tmp_path / "out").exists()  # the run created it, and removed it again
    assert not list(tmp_path.rglob("escaped.txt"))


# -- what the lock may not hold -----------------------------------------------------------


@pytest.mark.parametrize("where", ["url", "path"])
def test_hash_mismatch_is_a_fetch_error_naming_the_wheel(
    where: str, base_lock: dict[str, Any], work: Path, server: str, tmp_path: Path
) -> None:
    location = f"{server}{HELLO}" if where == "url" else f"../dist/{HELLO}"
    lock = write_lock(
        base_lock,
        work / tmp_path.name,
        [
            greetlib_entry(f"../dist/{GREETLIB}", None),
            hello_entry(location, "0" * 64),
        ],
    )
    with pytest.raises(FetchError, match=f"pp-hello-2.0 \\({HELLO}\\).*does not match"):
        portpack.pack(lockfile=lock, output=tmp_path / "env.tar", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "env.tar").exists()


def test_source_distributions_and_directories_are_refused_or_skipped(
    base_lock: dict[str, Any], work: Path, tmp_path: Path
) -> None:
    entries = [
        greetlib_entry(f"../dist/{GREETLIB}", None),
        {
            "pypi": "https://example.invalid/pp_sdist-1.0.tar.gz",
            "name": "pp-sdist",
            "version": "1.0",
        },
        {"pypi": "./src/pp-local", "name": "pp-local", "version": "0.1"},
    ]
    lock = write_lock(base_lock, work / tmp_path.name, entries)
    with pytest.raises(UsageError) as info:
        portpack.pack(lockfile=lock, output=tmp_path / "env.tar", cache_dir=work / "cache")
    message = str(info.value)
    assert "not wheels" in message and "--ignore-pypi-non-wheel" in message
    assert "pp-sdist (https://example.invalid/pp_sdist-1.0.tar.gz)" in message
    assert f"pp-local ({work / tmp_path.name / 'src' / 'pp-local'})" in message
    assert not (tmp_path / "env.tar").exists()

    reporter = RecordingReporter()
    result = portpack.pack(
        lockfile=lock,
        output=tmp_path / "env.tar",
        cache_dir=work / "cache",
        ignore_pypi_non_wheel=True,
        reporter=reporter,
    )
    assert result.wheels == [GREETLIB]
    skipped = [w for w in reporter.warnings if w.startswith("skipping PyPI package")]
    assert len(skipped) == 2 and "pp-sdist" in skipped[1] and "pp-local" in skipped[0]

    out = cli(
        "pack", "-l", str(lock), "-o", "cli.tar", "--cache-dir", str(work / "cache"),
        "--ignore-pypi-non-wheel", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "portpack: warning: skipping PyPI package pp-sdist" in out.stderr


def test_wheels_need_python_in_the_environment(
    fixture_channel: Path, work: Path, tmp_path: Path
) -> None:
    lock = portpack.lock(
        ["actpkg"], channels=[str(fixture_channel)], platforms=["linux-64"], output=tmp_path / "l"
    )
    doc = yaml.safe_load(lock.read_text())
    lock = write_lock(doc, tmp_path / "lock", [greetlib_entry(str(work / "dist" / GREETLIB), None)])
    with pytest.raises(UsageError, match=f"PyPI wheels \\({GREETLIB}\\) but no python"):
        portpack.pack(lockfile=lock, output=tmp_path / "env.tar", cache_dir=work / "cache")


# -- --inject, pixi-pack archives, self-extracting archives -------------------------------


def test_injected_wheels_are_installed(
    base_lock: dict[str, Any], work: Path, tmp_path: Path
) -> None:
    lock = write_lock(base_lock, tmp_path / "lock", [])
    dist = work / "dist"
    out = cli(
        "pack", "-l", str(lock), "-o", "env.tar", "--cache-dir", str(work / "cache"),
        "--inject", str(dist / GREETLIB), "--inject", str(dist / HELLO), cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Packed 3 packages and 2 PyPI wheels" in out.stdout
    assert "not checked against the environment's python" in out.stderr
    result = portpack.unpack(tmp_path / "env.tar", tmp_path / "out")
    assert run(result.prefix / "bin/pp-hello") == f"{GREETING} {result.prefix}\n"
    bad = cli("pack", "-l", str(lock), "--inject", str(lock), cwd=tmp_path)
    assert bad.returncode != 0 and "not a conda package" in bad.stderr
    (tmp_path / "pp_bogus-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    bad = cli(
        "pack", "-l", str(lock), "-o", "bad.tar", "--cache-dir", str(work / "cache"),
        "--inject", "pp_bogus-1.0-py3-none-any.whl", cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "wheel pp-bogus-1.0 (pp_bogus-1.0-py3-none-any.whl) is not a valid wheel" in bad.stderr
    assert not (tmp_path / "bad.tar").exists()
    assert not list((work / "cache").glob(".pack-*"))  # compressed wheels are removed


def test_pixi_pack_archives_carry_and_install_wheels(
    base_lock: dict[str, Any], work: Path, server: str, tmp_path: Path
) -> None:
    """``--format pixi-pack`` puts the wheels in pypi/ (pixi-pack's layout, with the pip
    section of environment.yml); portpack unpacks them through the same installer."""
    lock = write_lock(
        base_lock,
        tmp_path / "lock",
        [
            greetlib_entry(f"{server}{GREETLIB}", sha256(work / "dist" / GREETLIB)),
            hello_entry(str(work / "dist" / HELLO), None),
        ],
    )
    portpack.pack(
        lockfile=lock,
        output=tmp_path / "pp.tar",
        cache_dir=work / "cache",
        archive_format="pixi-pack",
    )
    with tarfile.open(tmp_path / "pp.tar") as tar:
        names = tar.getnames()
        env_yml = tar.extractfile("environment.yml").read().decode()  # type: ignore[union-attr]
        packed = tar.extractfile(f"pypi/{HELLO}").read()  # type: ignore[union-attr]
    assert names[-3:] == ["pypi", f"pypi/{GREETLIB}", f"pypi/{HELLO}"]
    assert packed == (work / "dist" / HELLO).read_bytes()
    assert "  - pip:\n    - --no-index\n    - --find-links ./pypi\n" in env_yml
    result = portpack.unpack(tmp_path / "pp.tar", tmp_path / "out")
    assert result.wheels == [GREETLIB, HELLO]
    assert run(result.prefix / "bin/pp-hello") == f"{GREETING} {result.prefix}\n"
    installer = result.prefix / SITE / "pp_hello-2.0.dist-info/INSTALLER"
    assert installer.read_text() == "portpack\n"
    assert verify(result.prefix).ok


def test_self_extracting_archive_installs_wheels(
    main_lock: Path, work: Path, tmp_path: Path
) -> None:
    """The bootstrap carries pypa's installer and the standard library it needs."""
    from test_selfextract import download_zstandard_wheel

    zstandard_wheel = cached_build("zstandard-wheel", download_zstandard_wheel, [])
    portpack.pack(
        lockfile=main_lock,
        output=tmp_path / "env.sh",
        cache_dir=work / "cache",
        create_executable=True,
        zstandard_wheel=zstandard_wheel,
    )
    (tmp_path / "tmp").mkdir()
    out = subprocess.run(
        ["sh", str(tmp_path / "env.sh"), "-o", str(tmp_path / "app")],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Unpacked 3 packages and 2 PyPI wheels" in out.stdout
    prefix = tmp_path / "app" / "env"
    assert run(prefix / "bin/pp-hello") == f"{GREETING} {prefix}\n"
    assert os.listdir(tmp_path / "tmp") == []


# -- the format ---------------------------------------------------------------------------


def test_metadata_without_wheels_is_unchanged_and_bad_entries_are_refused() -> None:
    meta = fmt.Metadata(platform="linux-64", portpack_version="0", packages=[], installed_size=0)
    assert b"wheels" not in meta.to_json()  # archives without wheels stay as they were
    wheel = fmt.WheelEntry(GREETLIB, "pp-greetlib", "1.0", 1, "a" * 64, 2, "b" * 64, 3, offset=0)
    doc = json.loads(fmt.Metadata(**{**meta.__dict__, "wheels": [wheel]}).to_json())
    assert fmt.Metadata.from_json(json.dumps(doc).encode()).wheels == [wheel]
    for bad in ({"filename": "../x-1-py3-none-any.whl"}, {"sha256": "nope"}, {"size": -1}):
        broken = copy.deepcopy(doc)
        broken["wheels"][0].update(bad)
        with pytest.raises(ArchiveError, match="malformed"):
            fmt.Metadata.from_json(json.dumps(broken).encode())
