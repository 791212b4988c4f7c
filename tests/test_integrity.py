"""Corrupt inputs, unmet preconditions, interrupted unpacks: clear errors, nothing half-made."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import portpack
from hostile import Member, RawPackage, make_archive, replace_metadata
from portpack.archive import format as fmt
from portpack.errors import ArchiveError, InstallError, PreconditionError, UsageError

PORTPACK = [sys.executable, "-m", "portpack"]


def big_package(name: str, files: int, size: int) -> RawPackage:
    """A package of incompressible files (so the archive is large enough to interrupt)."""
    return RawPackage(
        name, [Member(f"share/{name}/{i}.bin", os.urandom(size)) for i in range(files)]
    )


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_archive(
        tmp_path_factory.mktemp("integrity"),
        [big_package("alpha", 40, 50_000), big_package("beta", 40, 50_000)],
    )


def segment_offsets(archive: Path) -> list[tuple[str, int, int]]:
    """(package, start, end) byte ranges of the verbatim payload segments."""
    data = archive.read_bytes()
    meta = fmt.Metadata.from_json(_metadata_bytes(archive))
    out = []
    for entry in meta.packages:
        # The verbatim payload bytes are unique; find them by searching the package file.
        start = data.find(_payload_bytes(archive.parent / f"{entry.stem}.conda"))
        out.append((entry.name, start, start + entry.payload.zst_size))
    return out


def _metadata_bytes(archive: Path) -> bytes:
    out = subprocess.run(
        ["tar", "--zstd", "-xOf", archive, fmt.METADATA_NAME], capture_output=True, check=True
    )
    return out.stdout


def _payload_bytes(conda: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(conda) as zf:
        name = next(n for n in zf.namelist() if n.startswith("pkg-"))
        return zf.read(name)


def assert_nothing_left(out: Path) -> None:
    assert not (out / "env").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".env")] if out.exists() else True


def test_flipped_bit_in_a_package_is_caught(archive: Path, tmp_path: Path) -> None:
    _, start, end = segment_offsets(archive)[1]
    data = bytearray(archive.read_bytes())
    data[(start + end) // 2] ^= 0x10
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"beta-1\.0-0") as info:
        portpack.unpack(bad, tmp_path / "out")
    assert "corrupt" in str(info.value)
    assert_nothing_left(tmp_path / "out")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_archive(archive: Path, tmp_path: Path, keep: float) -> None:
    data = archive.read_bytes()
    bad = tmp_path / "cut.tar"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ArchiveError, match="truncated"):
        portpack.unpack(bad, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_corrupt_small_frame(archive: Path, tmp_path: Path) -> None:
    data = bytearray(archive.read_bytes())
    _, start, _ = segment_offsets(archive)[0]
    data[start - 20] ^= 0xFF  # inside the frame holding the payload's tar header
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArchiveError):
        portpack.unpack(bad, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_trailing_garbage(archive: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(archive.read_bytes() + b"garbage")
    with pytest.raises(ArchiveError, match="after the end of the archive"):
        portpack.unpack(bad, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_newer_format_version_is_refused(archive: Path, tmp_path: Path) -> None:
    def newer(doc: dict[str, Any]) -> None:
        doc["format_version"] = fmt.FORMAT_VERSION + 1

    bad = replace_metadata(archive, newer, tmp_path / "new.tar")
    with pytest.raises(ArchiveError, match="format version 3, newer than") as info:
        portpack.unpack(bad, tmp_path / "out")
    assert str(bad) in info.value.message and "versions 1 and 2" in info.value.message
    assert info.value.hint and "Upgrade portpack" in info.value.hint
    assert not (tmp_path / "out").exists()


def test_glibc_requirement_names_package_and_versions(tmp_path: Path) -> None:
    pkg = RawPackage("needs-new-glibc", [Member("share/x", b"x")], depends=["__glibc >=99.1"])
    archive = make_archive(tmp_path / "b", [pkg])
    with pytest.raises(PreconditionError, match=r"needs-new-glibc-1.0-0 needs glibc >=99\.1"):
        portpack.unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_enough_disk_space_is_refused_up_front(archive: Path, tmp_path: Path) -> None:
    def huge(doc: dict[str, Any]) -> None:
        doc["installed_size"] = 1 << 60

    bad = replace_metadata(archive, huge, tmp_path / "huge.tar")
    # human units, the exact size in bytes too
    needs = r"free but the environment needs 1024\.0 PiB \(1152921504606846976 bytes\)"
    with pytest.raises(PreconditionError, match=needs):
        portpack.unpack(bad, tmp_path / "out")


def test_existing_directory_that_is_no_environment_is_not_replaced(
    archive: Path, tmp_path: Path
) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a conda environment"):
        portpack.unpack(archive, tmp_path, force=True)
    assert (tmp_path / "env" / "precious.txt").read_text() == "keep me"


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount], check=True)
    yield mount
    subprocess.run(["umount", mount], check=True)


def test_disk_full_during_unpack(archive: Path, small_tmpfs: Path, tmp_path: Path) -> None:
    def lie(doc: dict[str, Any]) -> None:  # claim a tiny size so the precondition passes
        doc["installed_size"] = 1000

    liar = replace_metadata(archive, lie, tmp_path / "liar.tar")
    with pytest.raises(InstallError, match="no space left on the device"):
        portpack.unpack(liar, small_tmpfs)
    assert list(small_tmpfs.iterdir()) == []


def start_unpack_from_pipe(archive: Path, out: Path, fraction: float) -> subprocess.Popen[bytes]:
    """Start the CLI reading from a pipe fed with only part of the archive."""
    proc = subprocess.Popen(
        [*PORTPACK, "unpack", "-", "-o", str(out), "-q"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A test run started in the background (`cmd &` without job control) inherits
        # an ignored SIGINT, which Python then keeps ignoring: restore the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    data = archive.read_bytes()
    assert proc.stdin is not None
    proc.stdin.write(data[: int(len(data) * fraction)])
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not any(
        p.name.startswith(".env") and any(p.rglob("*.bin"))
        for p in (out.iterdir() if out.exists() else [])
    ):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, "unpack did not start writing"
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_nothing(archive: Path, tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "out"
    proc = start_unpack_from_pipe(archive, out, 0.7)
    proc.send_signal(sig)
    # stdin stays open until the process is gone: closing it first would race the
    # signal with "truncated" (end of input), a different, also clean, failure.
    proc.wait(timeout=60)
    assert proc.stderr is not None and proc.stdin is not None
    err = proc.stderr.read()
    proc.stdin.close()
    assert proc.returncode == 130, err  # not an abort at exit (see unpacking._open_raw)
    assert b"interrupted" in err and b"Traceback" not in err and b"Fatal" not in err
    assert not out.exists()  # the run created it: it removed it again


def test_sigkill_then_rerun_cleans_up_and_succeeds(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_unpack_from_pipe(archive, out, 0.7)
    proc.kill()
    proc.communicate(timeout=60)
    leftovers = [p.name for p in out.iterdir()]
    assert leftovers and all(name.startswith(".env.portpack-") for name in leftovers)
    assert not (out / "env").exists()
    result = portpack.unpack(archive, out)
    assert sorted(p.name for p in out.iterdir()) == ["activate.sh", "env"]
    assert len(list((result.prefix / "share").rglob("*.bin"))) == 80
    records = sorted((result.prefix / "conda-meta").glob("*.json"))
    assert [json.loads(r.read_text())["name"] for r in records] == ["alpha", "beta"]
