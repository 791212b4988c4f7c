"""The fixture ``python`` package runs on its own, whatever kind the test interpreter is.

It is built from the running interpreter (tests/support/pythonpkg.py): pyenv's
python links a shared ``libpython``; Debian's ``/usr/bin/python3`` links it
statically but needs ``libexpat`` and ``libz``, and its site module looks in
``dist-packages``. Either way the unpacked interpreter must load only the
environment's libraries (besides glibc's), find ``lib/pythonX.Y/site-packages``
and carry no link out of the package. The suite runs with both kinds
(``PYTHON=/usr/bin/python3 ./dev/test``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import portpack
from support.pythonpkg import GLIBC_LIBRARIES, shared_libraries

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def env(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("pythonpkg")
    lock = portpack.lock(
        ["python"], channels=[str(fixture_channel)], platforms=["linux-64"], output=work / "l"
    )
    portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=work / "cache")
    return portpack.unpack(work / "env.tar", work / "target").prefix


def ldd(binary: Path) -> dict[str, str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    found = {}
    for line in out.stdout.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if arrow:
            found[name] = rest.split(" (")[0].strip()
    return found


def test_interpreter_loads_only_the_environments_libraries(env: Path) -> None:
    exe = env / "bin" / f"python{PY}"
    loaded = ldd(exe)
    ours = {n: p for n, p in loaded.items() if n.split(".so")[0] not in GLIBC_LIBRARIES}
    assert "not found" not in loaded.values(), loaded
    for name, path in ours.items():
        assert Path(path).resolve().is_relative_to(env.resolve()), (name, path)
    # The same libraries the original interpreter loads (libpython when it links it).
    original = Path(sys.base_prefix) / "bin" / f"python{PY}"
    assert sorted(ours) == [name for name, _ in shared_libraries(original)]


def test_interpreter_finds_site_packages_and_its_own_stdlib(env: Path) -> None:
    probe = "import json, os, sys; print(json.dumps([sys.prefix, sys.path, os.__file__]))"
    out = subprocess.run(
        [env / "bin" / "python", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout

    prefix, path, os_file = json.loads(out)
    assert Path(prefix) == env
    assert str(env / "lib" / f"python{PY}" / "site-packages") in path
    assert Path(os_file).is_relative_to(env)


def test_no_link_leaves_the_package(env: Path) -> None:
    record = next((env / "conda-meta").glob("python-*.json"))

    for rel in json.loads(record.read_text())["files"]:
        path = env / rel
        if path.is_symlink():
            target = os.readlink(path)
            assert not os.path.isabs(target), rel
            resolved = (path.parent / target).resolve()
            assert resolved.is_relative_to(env.resolve()) and resolved.exists(), rel
