"""``portpack verify``: an unpacked environment checked against its conda-meta records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import portpack
from portpack.install.verify import verify

PORTPACK = [sys.executable, "-m", "portpack"]


@pytest.fixture(scope="module")
def archive(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("verify")
    lock = portpack.lock(
        ["hello-c", "greet"],
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=work / "l.lock",
    )
    portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=work / "cache")
    return work / "env.tar"


@pytest.fixture
def env(archive: Path, tmp_path: Path) -> Path:
    return portpack.unpack(archive, tmp_path).prefix


def test_fresh_environment_verifies(env: Path) -> None:
    report = verify(env)
    assert report.ok, report
    assert report.checked > 100


def test_running_python_leaves_no_false_extras(env: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([env / "bin" / "greet"], check=True, capture_output=True, env=clean)
    assert any(env.rglob("__pycache__/*.pyc"))
    assert verify(env).ok


def test_modified_missing_and_extra_files_are_reported(env: Path) -> None:
    (env / "share/hello/config.txt").write_text("prefix is somewhere else\n")
    os.chmod(env / "bin" / "hello", 0o755)
    with open(env / "bin" / "hello", "r+b") as fh:  # same size, one flipped byte
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))
    (env / "lib/libhello.so.1").unlink()
    (env / "bin" / "intruder").write_text("#!/bin/sh\n")
    report = verify(env)
    assert report.missing == ["lib/libhello.so.1"]
    assert sorted(m.split(":")[0] for m in report.modified) == [
        "bin/hello",
        "share/hello/config.txt",
    ]
    assert report.extra == ["bin/intruder"]
    assert not report.ok


def test_cli_exit_status_and_json(env: Path) -> None:
    ok = subprocess.run([*PORTPACK, "verify", env], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: checked")
    (env / "bin" / "hello").unlink()
    bad = subprocess.run(
        [*PORTPACK, "verify", env, "--json"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["missing"] == ["bin/hello"]


def test_not_an_environment(tmp_path: Path) -> None:
    out = subprocess.run(
        [*PORTPACK, "verify", tmp_path], capture_output=True, text=True, check=False
    )
    assert out.returncode == 2
    assert "is not a conda environment" in out.stderr
