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
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

import pytest

import portpack
from httpserver import serve_directory
from portpack.archive import sfx
from portpack.errors import ArchiveError, FetchError, UsageError
from portpack.packer import selfextract
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
    with serve_directory(index) as url:
        got = selfextract.find_zstandard_wheel(ABI, "x86_64", cache, url)
        assert got == cache / "wheels" / zstandard_wheel.name
        assert got.read_bytes() == zstandard_wheel.read_bytes()
        with pytest.raises(FetchError, match=r"no zstandard \S+ wheel for cp39 on manylinux"):
            selfextract.find_zstandard_wheel("cp39", "aarch64", cache, url)
    # offline now: the cached wheel is used without asking the index
    assert selfextract.find_zstandard_wheel(ABI, "x86_64", cache, "http://127.0.0.1:9/") == got
    files[0]["hashes"] = {"sha256": "0" * 64}
    page.write_text(json.dumps({"files": files}))
    with serve_directory(index) as url, pytest.raises(FetchError, match="does not match the sha"):
        selfextract.find_zstandard_wheel(ABI, "x86_64", tmp_path / "cache2", url)
    assert leftovers(tmp_path / "cache2" / "wheels") == []


def test_bootstrap_uses_the_python_packages_byte_code(
    zstandard_wheel: Path, tmp_path: Path
) -> None:
    """A python package with __pycache__ (as conda-forge's) is not recompiled at every run."""
    package = cached_python_package(with_pycache=True)
    python = selfextract.fetch_bootstrap_python(
        str(package), "linux-64", [], tmp_path / "cache", portpack.Reporter()
    )
    assert not python.from_environment
    with (
        selfextract.build_bootstrap(python, zstandard_wheel) as bootstrap,
        tarfile.open(fileobj=bootstrap.file, mode="r:gz") as tar,
    ):
        names = set(tar.getnames())
        extract_all(tar, tmp_path / "boot", "tar")
    stdlib = f"lib/python{PY}"
    assert {f"{stdlib}/tempfile.pyc", f"{stdlib}/json/decoder.pyc"} <= names
    assert f"{stdlib}/tempfile.py" not in names  # the byte code replaces it
    assert not [n for n in names if "__pycache__" in n or "/test/" in n or n.endswith(".a")]
    code = "import sys; sys.path.insert(0, sys.argv[1]); import portpack.unpacker.streaming"
    out = subprocess.run(
        [tmp_path / "boot" / bootstrap.python, "-I", "-S", "-B", "-v", "-c", code,
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
    todo, seen, stdlib = ["portpack.cli.unpack", "portpack.unpacker.streaming"], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = root / name.replace(".", "/")
        tree = ast.parse(
            (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
        )
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
                if node.module.split(".")[0] != "portpack":
                    stdlib.add(node.module.split(".")[0])
                    continue
                todo.append(node.module)
                for alias in node.names:  # ``from portpack.archive import format``
                    if (root / node.module.replace(".", "/") / f"{alias.name}.py").is_file():
                        todo.append(f"{node.module}.{alias.name}")
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
        assert selfextract.bootstrap_path(path, (3, 11), frozenset()) == path
    for path in drop:
        assert selfextract.bootstrap_path(path, (3, 11), frozenset()) is None


def test_bootstrap_keeps_every_module_the_unpacker_imports() -> None:
    """The bootstrap leaves parts of the standard library out; none the unpacker needs."""
    modules, stdlib = _unpack_path_imports()
    assert {
        "portpack.unpacker.streaming",
        "portpack.archive.reader",
        "portpack.install.linker",
        "portpack.archive.sfx",
    } <= modules
    pack_side = {
        "portpack.cli.commands",
        "portpack.packer.packing",
        "portpack.packer.selfextract",
        "portpack.resolve.solve",
    }
    assert not pack_side & modules  # pack side stays out
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
        if selfextract.bootstrap_path(path, version, frozenset()) is None:
            dropped.append(name)
    # ctypes (for renameat2) is used only where it imports; portpack.outside falls
    # back to mkdir-then-rename without it, as in the bootstrap (no libffi there).
    assert dropped == ["ctypes"]
