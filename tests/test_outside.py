"""What portpack creates outside an environment: only what it means to, never through a
planted symlink, never replacing what it did not check, and nothing left after a failure.

Each test runs the command a user would, and checks the exit status, a one-paragraph
message naming the path, and a snapshot of everything around the output (treesnap).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

import portpack
from hostile import Member, RawPackage, make_archive
from treesnap import diff, snapshot

PORTPACK = [sys.executable, "-m", "portpack"]
#: Runs a command as root without the capabilities that bypass file permissions, so
#: "permission denied" can be shown when the tests run as root (as in CI).
UNPRIVILEGED = (
    [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search,-fowner",
        "--inh-caps=-dac_override,-dac_read_search,-fowner",
    ]
    if os.geteuid() == 0
    else []
)


def run(
    *args: str | Path, prefix: list[str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), *PORTPACK, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def assert_one_paragraph(out: subprocess.CompletedProcess[str], *names: str | Path) -> None:
    """A clear error: non-zero exit, one paragraph, no traceback, naming each of ``names``."""
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    start = out.stderr.find("portpack: error: ")  # after any warnings
    assert start >= 0, out.stderr
    err = out.stderr[start:]
    assert "\n\n" not in err.strip(), err
    assert len(err.strip().splitlines()) <= 2, err  # the message and an optional hint
    for name in names:
        assert str(name) in err, (name, err)


Snapshot = dict[str, tuple[str, int, str]]


def snap(root: Path, skip: tuple[str, ...] = ()) -> Snapshot:
    return snapshot(root, skip)


def assert_unchanged(root: Path, before: Snapshot, skip: tuple[str, ...] = ()) -> None:
    assert diff(before, snapshot(root, skip)) == []


def no_staging(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if ".portpack-" in p.name] if out.exists() else []


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("outside")
    good = make_archive(base / "good", [RawPackage("alpha", [Member("share/alpha/a", b"a" * 99)])])
    newer = make_archive(base / "newer", [RawPackage("alpha", [Member("share/alpha/b", b"b")])])
    failing = make_archive(
        base / "failing",
        [
            RawPackage(
                "broken",
                [
                    Member("share/broken/x", b"x"),
                    Member("bin/.broken-post-link.sh", b"echo it broke >&2\nexit 3\n", mode=0o755),
                ],
            )
        ],
    )
    passing = make_archive(
        base / "passing",
        [
            RawPackage(
                "fine",
                [
                    Member("share/fine/x", b"x"),
                    Member("bin/.fine-post-link.sh", b"touch $PREFIX/linked\n", mode=0o755),
                ],
            )
        ],
    )
    return {"good": good, "newer": newer, "failing": failing, "passing": passing}


@pytest.fixture(scope="module")
def lockfile(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lock") / "hello.lock"
    out = run("lock", "-c", fixture_channel, "hello-c", "-o", path)
    assert out.returncode == 0, out.stderr
    return path


def verified(prefix: Path) -> bool:
    return run("verify", prefix).returncode == 0


# -- class 4: writes in the output directory do not follow planted symlinks ------------


def test_activation_script_is_not_written_through_a_planted_symlink(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """The output directory may be shared (-o /tmp/x): a symlink planted at any name
    portpack used to write through (the old temporary name, the script itself) points
    at a file elsewhere, which must stay as it is."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "victim").write_text("precious")
    out = tmp_path / "shared"
    out.mkdir()
    pid = os.getpid()  # the library runs in this process: the old name was predictable
    for name in (f".activate.sh.portpack-{pid}", "activate.sh", f".env.portpack-{pid}-old"):
        (out / name).symlink_to(canary / "victim")
    before = snap(canary)
    result = portpack.unpack(archives["good"], out)
    assert_unchanged(canary, before)
    script = out / "activate.sh"
    assert not script.is_symlink() and str(result.prefix) in script.read_text()
    assert verified(result.prefix)


def test_lockfile_is_not_written_through_a_planted_symlink(
    fixture_channel: Path, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "victim").write_text("precious")
    out = tmp_path / "shared"
    out.mkdir()
    (out / ".x.lock.tmp").symlink_to(canary / "victim")  # the old temporary name
    before = snap(canary)
    result = run("lock", "-c", fixture_channel, "hello-c", "-o", out / "x.lock")
    assert result.returncode == 0, result.stderr
    assert_unchanged(canary, before)
    assert "hello-c" in (out / "x.lock").read_text()
    assert sorted(p.name for p in out.iterdir()) == [".x.lock.tmp", "x.lock"]


# -- class 6: --force --run-link-scripts keeps the old environment on any failure -------


def test_failing_link_script_with_force_keeps_the_old_environment(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    assert run("unpack", archives["good"], "-o", out).returncode == 0
    before = snap(tmp_path)
    result = run("unpack", archives["failing"], "-o", out, "--force", "--run-link-scripts")
    assert_one_paragraph(result, "broken-1.0-0", "it broke")
    assert result.returncode == 1
    assert_unchanged(tmp_path, before)  # old environment, its activation script, no staging
    assert verified(out / "env")


def test_failing_link_script_without_force_leaves_nothing(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "new" / "app"
    before = snap(tmp_path)
    result = run("unpack", archives["failing"], "-o", out, "--run-link-scripts")
    assert_one_paragraph(result, "broken-1.0-0")
    assert_unchanged(tmp_path, before)  # not even the directories it created


def test_link_scripts_run_in_the_final_prefix(archives: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "app"
    assert run("unpack", archives["good"], "-o", out).returncode == 0
    result = run("unpack", archives["passing"], "-o", out, "--force", "--run-link-scripts")
    assert result.returncode == 0, result.stderr
    assert (out / "env" / "linked").is_file()
    assert not (out / "env" / "share" / "alpha").exists()
    assert no_staging(out) == []


# -- class 7: the final move replaces only what was checked ----------------------------


def start_from_pipe(archive: Path, out: Path, *extra: str) -> tuple[subprocess.Popen[bytes], bytes]:
    """Start ``unpack -`` fed with the archive but its last 4 KiB; wait until it stages."""
    proc = subprocess.Popen(
        [*PORTPACK, "unpack", "-", "-o", str(out), "-q", *extra],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    data = archive.read_bytes()
    assert proc.stdin is not None
    proc.stdin.write(data[:-4096])
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".env.portpack-") for p in out.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return proc, data[-4096:]


STAGING = ("app/.env.portpack-",)  # the running unpack's own staging directory


def finish(proc: subprocess.Popen[bytes], rest: bytes) -> str:
    _, err = proc.communicate(rest, timeout=120)
    return err.decode()


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large enough that the last 4 KiB hold no file of the package."""
    files = [Member(f"share/big/{i}", os.urandom(20_000)) for i in range(20)]
    return make_archive(tmp_path_factory.mktemp("big"), [RawPackage("big", files)])


def test_environment_appearing_during_the_run_is_not_replaced(
    big_archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "app"
    out.mkdir()
    proc, rest = start_from_pipe(big_archive, out)
    (out / "env").mkdir()  # someone else's environment, made after the check
    (out / "env" / "theirs").write_text("keep")
    before = snap(tmp_path, STAGING)
    err = finish(proc, rest)
    assert proc.returncode == 2, err
    assert f"{out / 'env'} appeared while the environment was being unpacked" in err
    assert "Traceback" not in err
    assert_unchanged(tmp_path, before)
    assert no_staging(out) == []


def test_force_replaces_only_the_environment_it_checked(
    archives: dict[str, Path], big_archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "app"
    assert run("unpack", archives["good"], "-o", out).returncode == 0
    proc, rest = start_from_pipe(big_archive, out, "--force")
    (out / "env").rename(tmp_path / "checked-env")  # swapped for another one mid-run
    assert run("unpack", archives["newer"], "-o", out).returncode == 0
    before = snap(tmp_path, STAGING)
    err = finish(proc, rest)
    assert proc.returncode == 2, err
    assert f"{out / 'env'} was replaced by something else while" in err
    assert_unchanged(tmp_path, before)
    assert no_staging(out) == []
    assert verified(out / "env") and verified(tmp_path / "checked-env")


def test_force_replaces_the_checked_environment(archives: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "app"
    assert run("unpack", archives["good"], "-o", out).returncode == 0
    result = run("unpack", archives["newer"], "-o", out, "--force")
    assert result.returncode == 0, result.stderr
    assert (out / "env" / "share" / "alpha" / "b").is_file()
    assert not (out / "env" / "share" / "alpha" / "a").exists()
    assert sorted(p.name for p in out.iterdir()) == ["activate.sh", "env"]
    assert verified(out / "env")


# -- class 8: an output directory that cannot be written --------------------------------


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (the tests run as root, as in CI: mounting needs it)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount], check=True)
    (mount / "existing").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
    yield mount
    subprocess.run(["umount", mount], check=True)


@pytest.mark.parametrize("where", ["ro", "ro/existing", "ro/missing/deeper"])
def test_unpack_to_a_read_only_directory(
    archives: dict[str, Path], readonly_dir: Path, where: str
) -> None:
    out = readonly_dir.parent / where
    before = snap(readonly_dir.parent)
    result = run("unpack", archives["good"], "-o", out)
    assert_one_paragraph(result, "read-only file system")
    assert result.returncode == 2
    assert str(out if out.exists() else out.parent.parent) in result.stderr
    assert_unchanged(readonly_dir.parent, before)


def test_pack_and_lock_to_a_read_only_directory(
    lockfile: Path, fixture_channel: Path, readonly_dir: Path, tmp_path: Path
) -> None:
    before = snap(readonly_dir)
    for args in (
        ("pack", "-l", lockfile, "-o", readonly_dir / "env.tar", "--cache-dir", tmp_path / "c"),
        ("lock", "-c", fixture_channel, "hello-c", "-o", readonly_dir / "sub" / "x.lock"),
    ):
        result = run(*args)
        assert_one_paragraph(result, readonly_dir, "read-only file system")
        assert result.returncode == 2
    assert_unchanged(readonly_dir, before)


def test_pack_to_a_full_file_system(lockfile: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", full], check=True)
    try:
        result = run("pack", "-l", lockfile, "-o", full / "env.tar", "--cache-dir", tmp_path / "c")
        assert_one_paragraph(result, full / "env.tar", "no space left on the device")
        assert list(full.iterdir()) == []
    finally:
        subprocess.run(["umount", full], check=True)


@pytest.mark.parametrize("where", ["locked", "locked/missing"])
def test_unpack_to_a_directory_the_user_may_not_write(
    archives: dict[str, Path], tmp_path: Path, where: str
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # without CAP_DAC_OVERRIDE even root may not write here
    before = snap(tmp_path)
    result = run("unpack", archives["good"], "-o", tmp_path / where, prefix=UNPRIVILEGED)
    assert_one_paragraph(result, locked, "permission denied")
    assert result.returncode == 2
    assert_unchanged(tmp_path, before)


# -- class 10 and the first thing a wrong file shows -----------------------------------


def _zstd_tar(first_member: str, size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(first_member)
        data = os.urandom(size)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(buf.getvalue())


@pytest.mark.parametrize(
    ("content", "says"),
    [
        # the first member is not the metadata: its frame ends early, or only at the end
        (_zstd_tar("info-x.tar", 300_000)[:150_000], "its first member is 'info-x.tar', not"),
        (_zstd_tar("pkg-x.tar", 1000), "its first member is 'pkg-x.tar', not portpack.json"),
        (b"junk" + os.urandom(3000), "is not a portpack or pixi-pack archive"),
        (b"", "is empty"),
    ],
    ids=["first-member-cut", "first-member-whole", "random-bytes", "empty"],
)
def test_a_file_that_is_no_archive_says_what_it_is(
    tmp_path: Path, content: bytes, says: str
) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    out = tmp_path / "new" / "o"
    before = snap(tmp_path)
    for command in (("unpack", bad, "-o", out), ("inspect", bad)):
        result = run(*command)
        assert_one_paragraph(result, bad, says)
        assert result.returncode == 1
        assert "truncated" not in result.stderr and "corrupt zstd frame" not in result.stderr
    assert_unchanged(tmp_path, before)


# -- class 12: output-path mistakes ---------------------------------------------------


def test_unpack_output_path_mistakes(archives: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "FILE").write_text("a file")
    before = snap(tmp_path)
    for output, named in (
        ("FILE", "FILE exists and is not a directory"),
        ("FILE/sub", "FILE is not a directory"),
        ("FILE/sub/deeper", "FILE is not a directory"),
    ):
        result = run("unpack", archives["good"], "-o", tmp_path / output)
        assert_one_paragraph(result, tmp_path / named)
        assert result.returncode == 2
    result = run("unpack", archives["good"], "-o", tmp_path, "-e", "FILE")
    assert_one_paragraph(result, tmp_path / "FILE", "--force")
    assert_unchanged(tmp_path, before)


@pytest.mark.parametrize(
    "extra",
    [(), ("--create-executable",), ("--format", "pixi-pack")],
    ids=["portpack", "self-extracting", "pixi-pack"],
)
def test_pack_output_path_mistakes(lockfile: Path, tmp_path: Path, extra: tuple[str, ...]) -> None:
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_text("a file")
    before = snap(tmp_path)
    cache = ("--cache-dir", str(tmp_path / "DIR"))  # exists: nothing new appears in it
    for output, named in (
        ("DIR", "DIR is a directory"),
        ("FILE/x.tar", "FILE is not a directory"),
        ("FILE/sub/x.tar", "FILE is not a directory"),
    ):
        result = run("pack", "-l", lockfile, "-o", tmp_path / output, *cache, *extra)
        assert_one_paragraph(result, tmp_path / named)
        assert result.returncode == 2
    assert_unchanged(tmp_path, before)


def test_directory_only_output_path_mistakes(
    lockfile: Path, readonly_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "FILE").write_text("a file")
    (tmp_path / "c").mkdir()
    before = snap(tmp_path)
    for output, named in (
        (tmp_path / "FILE", f"{tmp_path / 'FILE'} exists and is not a directory"),
        (tmp_path / "FILE" / "sub", f"{tmp_path / 'FILE'} is not a directory"),
        (readonly_dir / "new" / "folder", f"{readonly_dir}: it is on a read-only file system"),
    ):
        result = run("pack", "-l", lockfile, "--directory-only", "-o", output)
        assert_one_paragraph(result, named)
        assert result.returncode == 2
    assert_unchanged(tmp_path, before)


def test_lock_output_path_mistakes(fixture_channel: Path, tmp_path: Path) -> None:
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_text("a file")
    before = snap(tmp_path)
    for output, named in (("DIR", "DIR is a directory"), ("FILE/x.lock", "FILE is not a")):
        result = run("lock", "-c", fixture_channel, "hello-c", "-o", tmp_path / output)
        assert_one_paragraph(result, tmp_path / named)
        assert result.returncode == 2
    assert_unchanged(tmp_path, before)  # no stray .DIR.tmp


def test_lock_and_pack_both_create_missing_parents(
    fixture_channel: Path, lockfile: Path, tmp_path: Path
) -> None:
    lock = tmp_path / "missing" / "sub" / "x.lock"
    assert run("lock", "-c", fixture_channel, "hello-c", "-o", lock).returncode == 0
    assert "hello-c" in lock.read_text()
    archive = tmp_path / "other" / "sub" / "env.tar"
    result = run("pack", "-l", lock, "-o", archive, "--cache-dir", tmp_path / "c")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in archive.parent.iterdir()) == ["env.tar"]
    assert sorted(p.name for p in lock.parent.iterdir()) == ["x.lock"]


# -- class 13: a failed or interrupted unpack removes what it created, and only that -----


def test_failed_unpack_removes_the_directories_it_created(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:  # a plain tar that is no pixi-pack archive
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    (tmp_path / "existing").mkdir()
    before = snap(tmp_path)
    result = run("unpack", plain, "-o", tmp_path / "existing" / "new" / "deeper")
    assert_one_paragraph(result, plain)
    assert_unchanged(tmp_path, before)  # existing/ stays, new/ and new/deeper are gone


def test_interrupted_unpack_removes_the_directories_it_created(
    big_archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new" / "app"
    proc = subprocess.Popen(
        [*PORTPACK, "unpack", "-", "-o", str(out), "-q"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(big_archive.read_bytes()[:-4096])
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not (out.exists() and any(p.name.startswith(".env.portpack-") for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    (tmp_path / "new" / "someone-elses").write_text("keep")  # new/ is no longer only ours
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    proc.stdin.close()
    assert proc.returncode == 130, err
    assert "interrupted; nothing was left behind" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["someone-elses"]


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "fallback"])
def test_moves_never_replace_what_is_there(
    tmp_path: Path, renameat2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of the final move: ``renameat2`` where the kernel has it, and the
    fallback for kernels, file systems or Pythons without it (forced here: this
    machine has renameat2)."""
    from portpack import outside

    if not renameat2:
        monkeypatch.setattr(outside, "_renameat2", None)
    else:
        assert outside._libc_renameat2() is not None
    src = tmp_path / "src"
    src.mkdir()
    (src / "new").write_text("new")
    for kind in ("dir", "empty-dir", "file", "symlink"):
        dst = tmp_path / kind
        if kind == "dir":
            dst.mkdir()
            (dst / "old").write_text("old")
        elif kind == "empty-dir":
            dst.mkdir()
        elif kind == "file":
            dst.write_text("old")
        else:
            dst.symlink_to(tmp_path / "nowhere")
        before = snap(tmp_path)
        with pytest.raises(FileExistsError):
            outside.rename_noreplace(src, dst)
        assert_unchanged(tmp_path, before)
    target = tmp_path / "free"
    outside.rename_noreplace(src, target)
    assert (target / "new").read_text() == "new" and not src.exists()
    outside.exchange(target, tmp_path / "dir")
    assert (tmp_path / "dir" / "new").is_file() and (target / "old").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dir",
        "empty-dir",
        "file",
        "free",
        "symlink",
    ]
