"""``unpack --update``: the updated environment equals a fresh unpack of the new archive
at the same path, unchanged packages' files are hard links of the old ones, and the
old environment is intact after any failure (tests/update_support.py builds the
channel and the archives)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard
from update_support import (
    HISTORY,
    archive,
    archive_with_wheel,
    build_channel,
    exact,
    fresh,
    inodes,
    snapshot,
    wheel,
)

import portpack
from httpserver import serve_directory
from portpack.archive import format as fmt
from portpack.archive.reader import open_metadata
from portpack.errors import ArchiveError, LocalChangesError, UnsafeArchiveError, UsageError
from portpack.install.verify import verify
from portpack.remote.http_segments import HEAD_SIZE
from portpack.remote.oci import RegistryClient
from portpack.remote.oci_archive import push_archive
from portpack.remote.oci_ref import parse_oci_ref
from portpack.unpacker.update_plan import CLOBBERS, OTHER_PREFIX, OTHER_PYTHON, UpdatePlan
from support.ociregistry import FaultProxy, running_registry
from treesnap import STAT_INDEX, diff

PORTPACK = [sys.executable, "-m", "portpack"]
COMMON = ["python==3.12.1", "base", "cl-a", "keepnoarch"]
SETS = {
    "v1": [*COMMON, "small==1.0", "gone", "cl-b==1.0", "npy==1.0"],
    "v1-small": [*COMMON, "small==1.1", "gone", "cl-b==1.0", "npy==1.0"],
    "v2": [*COMMON, "small==1.1", "extra", "cl-b==2.0", "npy==2.0"],
    "v1-py313": ["python==3.13.0", *COMMON[1:], "small==1.0", "gone", "cl-b==1.0", "npy==1.0"],
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("update")
    channel = build_channel(work / "channel")
    return {name: archive(channel, specs, work, name) for name, specs in SETS.items()}


def update_and_compare(
    archives: dict[str, Path], old: str, new: str, out: Path
) -> portpack.UnpackResult:
    """Unpack ``old`` at ``out``, update it to ``new``, and check the result against a
    fresh unpack of ``new`` at the same path (paths, bytes, modes, links, conda-meta,
    activation script)."""
    portpack.unpack(archives[old], out)
    result = portpack.unpack(archives[new], out, update=True)
    assert result.updated
    assert diff(snapshot(out), fresh(archives[new], out)) == []
    assert not list(out.glob(".env.portpack-*"))
    return result


def update_plan(env: Path, archive: Path) -> UpdatePlan:
    """What ``unpack --update`` would do to ``env`` (``portpack.diff``'s plan)."""
    plan = portpack.diff(env, archive).update
    assert plan is not None
    return plan


def add_configuration(env: Path) -> None:
    """Files no package owns: ``etc/app.conf`` and a symlink to it."""
    (env / "etc").mkdir()
    (env / "etc/app.conf").write_text("setting = 1\n")
    (env / "etc/app.link").symlink_to("app.conf")


def test_one_changed_package_is_installed_and_the_rest_hard_linked(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    before = inodes(out / "env")
    result = portpack.unpack(archives["v1-small"], out, update=True)
    assert result.installed == ["small-1.1-0"]
    assert sorted(result.reused) == sorted(d for d in result.packages if d != "small-1.1-0")
    assert result.removed == [] and result.copied_files == 0
    after = inodes(out / "env")
    for rel in ("share/base/data.txt", "lib/libbase.so", "bin/keepit", "share/shared.txt"):
        assert after[rel] == before[rel], rel  # the old file itself, not a copy
    assert after["share/small/version.txt"] != before["share/small/version.txt"]
    assert (out / "env/share/small/version.txt").read_text() == "small 1.1\n"
    assert diff(snapshot(out), fresh(archives["v1-small"], out)) == []
    history = (out / "env/conda-meta/history").read_text()
    assert f"# portpack prefix: {out / 'env'}\n" in history


def test_added_removed_clobbering_and_noarch_upgrade(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    result = update_and_compare(archives, "v1", "v2", out)
    env = out / "env"
    assert result.removed == ["gone-1.0-0"]
    assert not (env / "share/gone").exists()
    assert (env / "share/extra/readme.txt").read_text() == "extra\n"
    assert sorted(result.installed) == ["cl-b-2.0-0", "extra-1.0-0", "npy-2.0-0", "small-1.1-0"]
    # the noarch python upgrade: the new entry point, the old one gone
    assert not (env / "bin/npy").exists()
    assert (env / "bin/npy2").read_text().startswith(f"#!{env}/bin/python3.12\n")
    assert (env / "lib/python3.12/site-packages/npy/__init__.py").read_text() == "VERSION = '2.0'\n"
    # cl-b 2.0 now clobbers cl-a's share/shared.txt: resolved over the new set
    records = [json.loads(p.read_text()) for p in (env / "conda-meta").glob("cl-*.json")]
    moved = [p for r in records for p in r["paths_data"]["paths"] if "original_path" in p]
    assert [p["original_path"] for p in moved] == ["share/shared.txt"]
    assert verify(env).ok


def test_clobbering_in_the_old_environment_only(archives: dict[str, Path], tmp_path: Path) -> None:
    """v2 has cl-a and cl-b clobbering each other, v1 does not: both are reinstalled."""
    out = tmp_path / "app"
    portpack.unpack(archives["v2"], out)
    assert update_plan(out / "env", archives["v1"]).reinstall == {"cl-a": CLOBBERS}
    result = portpack.unpack(archives["v1"], out, update=True)
    assert "cl-a-1.0-0" in result.installed
    assert diff(snapshot(out), fresh(archives["v1"], out)) == []


def test_a_new_python_reinstalls_noarch_packages(archives: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "app"
    result = update_and_compare(archives, "v1", "v1-py313", out)
    assert [d for d in result.reused if d.startswith(("keepnoarch", "npy", "python"))] == []
    assert (out / "env/bin/keepit").read_text().startswith(f"#!{out / 'env'}/bin/python3.13\n")
    assert (out / "env/lib/python3.13/site-packages/keepnoarch.py").is_file()
    assert not (out / "env/lib/python3.12").exists()


def test_without_an_environment_update_is_a_plain_unpack(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    result = portpack.unpack(archives["v2"], out, update=True)
    assert not result.updated and result.reused == []
    assert diff(snapshot(out), fresh(archives["v2"], out)) == []


def test_a_directory_that_is_not_an_environment_is_refused(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "app/env").mkdir(parents=True)
    (tmp_path / "app/env/data.txt").write_text("mine\n")
    with pytest.raises(UsageError, match="not a conda environment"):
        portpack.unpack(archives["v2"], tmp_path / "app", update=True)
    assert (tmp_path / "app/env/data.txt").read_text() == "mine\n"


def test_from_a_pipe_and_from_a_file_on_the_command_line(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    with open(archives["v2"], "rb") as stdin:
        run = subprocess.run(
            [*PORTPACK, "unpack", "-", "-o", str(out), "--update"],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    assert f"Updated {out / 'env'}: 4 packages installed, 4 reused, 1 removed" in run.stdout
    # the history names the archive: here <stdin>
    assert "# cmd: portpack unpack <stdin>\n" in (out / HISTORY).read_text()
    updated, expected = snapshot(out), fresh(archives["v2"], out)
    assert updated.pop(HISTORY) != expected.pop(HISTORY)
    assert diff(updated, expected) == []
    shutil.rmtree(out)
    portpack.unpack(archives["v1"], out)
    run = subprocess.run(
        [*PORTPACK, "unpack", str(archives["v1-small"]), "-o", str(out), "--update", "-v"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "  base-1.0-0 (reused)" in run.stdout and "  small-1.1-0\n" in run.stdout


def test_a_locally_changed_file_is_refused_and_force_replaces_it(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    env = out / "env"
    (env / "share/base/plain.txt").write_text("edited by hand\n")
    (env / "share/base/link").unlink()
    (env / "share/base/link").symlink_to("/etc/hostname")
    before = snapshot(out)
    with pytest.raises(LocalChangesError) as caught:
        portpack.unpack(archives["v1-small"], out, update=True)
    assert "share/base/plain.txt" in str(caught.value)
    assert caught.value.modified == [
        "share/base/link: symlink target changed",
        "share/base/plain.txt: size 15, recorded 17",
    ]
    assert snapshot(out) == before
    run = subprocess.run(
        [*PORTPACK, "unpack", str(archives["v1-small"]), "-o", str(out), "--update"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "share/base/plain.txt" in run.stderr and "--force" in run.stderr
    assert "Traceback" not in run.stderr
    result = portpack.unpack(archives["v1-small"], out, update=True, force=True)
    assert "base-1.0-0" in result.installed
    assert result.replaced == caught.value.modified
    assert (env / "share/base/plain.txt").read_text() == "plain, no prefix\n"
    assert diff(snapshot(out), fresh(archives["v1-small"], out)) == []


def test_unowned_files_are_kept_unless_taken_or_dropped(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    env = out / "env"
    add_configuration(env)
    (env / "share/extra").mkdir()
    (env / "share/extra/readme.txt").write_text("someone's note\n")  # extra 1.0 brings one
    (env / "lib/python3.12/site-packages/npy/__pycache__").mkdir()
    (env / "lib/python3.12/site-packages/npy/__pycache__/x.cpython-312.pyc").write_bytes(b"pyc")
    plan = update_plan(env, archives["v2"])
    assert plan.unowned == ["etc/app.conf", "etc/app.link", "share/extra/readme.txt"]
    result = portpack.unpack(archives["v2"], out, update=True)
    assert result.unowned_kept == ["etc/app.conf", "etc/app.link"]
    assert result.unowned_dropped == ["share/extra/readme.txt"]
    expected = fresh(archives["v2"], out)
    shutil.rmtree(out)
    portpack.unpack(archives["v1"], out)
    add_configuration(env)
    portpack.unpack(archives["v2"], out, update=True)
    tree = snapshot(out)
    assert diff(tree, expected) == [
        "only in first: env/etc",
        "only in first: env/etc/app.conf",
        "only in first: env/etc/app.link",
    ]
    assert verify(env).extra == ["etc/app.conf", "etc/app.link"]
    dropped = portpack.unpack(archives["v2"], out, update=True, keep_unowned=False)
    assert dropped.unowned_dropped == ["etc/app.conf", "etc/app.link"]
    assert diff(snapshot(out), expected) == []


def test_an_environment_moved_elsewhere_reinstalls_what_holds_the_prefix(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    portpack.unpack(archives["v1"], tmp_path / "first")
    out = tmp_path / "second"
    out.mkdir()
    os.rename(tmp_path / "first/env", out / "env")
    plan = update_plan(out / "env", archives["v1-small"])
    assert plan.reinstall == {
        "base": OTHER_PREFIX,
        "keepnoarch": OTHER_PREFIX,
        "npy": OTHER_PREFIX,
    }
    assert "cl-a" in plan.reuse and "python" in plan.reuse
    portpack.unpack(archives["v1-small"], out, update=True)
    assert diff(snapshot(out), fresh(archives["v1-small"], out)) == []


def test_an_environment_that_does_not_record_its_prefix(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """As pixi-unpack's or conda's: packages holding the prefix are installed again."""
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    history = out / "env/conda-meta/history"
    history.write_text("// written by another installer\n")
    assert set(update_plan(out / "env", archives["v1"]).reinstall) == {"base", "keepnoarch", "npy"}
    portpack.unpack(archives["v1"], out, update=True)
    assert diff(snapshot(out), fresh(archives["v1"], out)) == []


def test_python_site_packages_change_is_reported(archives: dict[str, Path], tmp_path: Path) -> None:
    portpack.unpack(archives["v1"], tmp_path / "app")
    plan = update_plan(tmp_path / "app/env", archives["v1-py313"])
    assert plan.reinstall == {"keepnoarch": OTHER_PYTHON, "npy": OTHER_PYTHON}
    assert "python" in plan.install


# -- the old environment survives every failure ---------------------------------------------


def test_a_failed_update_leaves_the_old_environment_bit_for_bit(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    before = exact(out)
    data = archives["v2"].read_bytes()
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(ArchiveError, match="truncated"):
        portpack.unpack(truncated, out, update=True)
    assert exact(out) == before
    assert not list(out.glob(".env.portpack-*"))
    assert verify(out / "env").ok


def test_link_scripts_make_reused_files_copies(archives: dict[str, Path], tmp_path: Path) -> None:
    """A post-link script may change any file in place: with --run-link-scripts no
    file of the old environment is linked into the new one."""
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    before = inodes(out / "env")
    result = portpack.unpack(archives["v1-small"], out, update=True, run_link_scripts=True)
    assert result.copied_files > 0
    after = inodes(out / "env")
    # (the stat index is written after the old environment is removed: its inode
    # number may be given out again)
    before.pop(STAT_INDEX)
    assert not set(before.items()) & set(after.items())
    assert diff(snapshot(out), fresh(archives["v1-small"], out)) == []


def test_sigkill_at_several_points_leaves_an_environment_and_a_rerun_completes(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """The update reads the archive from a pipe the test feeds: it is killed while it
    waits for the next bytes, at several offsets, and once with all bytes sent."""
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    before = exact(out)
    data = archives["v2"].read_bytes()
    frame = zstandard.ZstdDecompressor().decompressobj()
    frame.decompress(data)
    start = len(data) - len(frame.unused_data)  # the packages, after the metadata frame
    for cut in (start + 10, (start + len(data)) // 2, len(data) - 600, len(data)):
        proc = subprocess.Popen(
            [*PORTPACK, "unpack", "-", "-o", str(out), "--update"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None
        proc.stdin.write(data[:cut])
        proc.stdin.flush()
        if cut < len(data):
            wait_for(lambda: any(out.glob(".env.portpack-*")), proc)
        else:
            proc.stdin.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if cut < len(data):
            assert exact(out) == before, cut  # the old environment, untouched
        assert verify(out / "env").ok, cut
    result = portpack.unpack(archives["v2"], out, update=True)
    assert result.updated
    assert not list(out.glob(".env.portpack-*"))  # the killed runs' staging: removed
    assert diff(snapshot(out), fresh(archives["v2"], out)) == []


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    """Poll ``condition`` while ``proc`` runs (bounded: a minute)."""
    for _ in range(6000):
        if condition():
            return
        assert proc.poll() is None, "the update ended before it was killed"
        time.sleep(0.01)
    raise AssertionError("the update never started building")


# -- the old environment is hostile input too -------------------------------------------------


def test_a_record_path_leaving_the_environment_is_refused(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    record = out / "env/conda-meta/base-1.0-0.json"
    doc = json.loads(record.read_text())
    doc["paths_data"]["paths"][0]["_path"] = "../../outside.txt"
    record.write_text(json.dumps(doc))
    before = exact(out)
    with pytest.raises(UnsafeArchiveError, match=r"base-1.0-0.*'\.\./\.\./outside\.txt'"):
        portpack.unpack(archives["v1-small"], out, update=True)
    assert exact(out) == before


def test_a_directory_replaced_by_a_symlink_is_not_followed(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """The same files behind a symlinked directory pass the content check; the link
    step opens each directory with O_NOFOLLOW and refuses."""
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(out / "env/share/base", elsewhere, symlinks=True)
    shutil.rmtree(out / "env/share/base")
    (out / "env/share/base").symlink_to(elsewhere)
    before = exact(out)
    with pytest.raises(UsageError, match=r"share/base.*a symlink is on the way"):
        portpack.unpack(archives["v1-small"], out, update=True)
    assert exact(out) == before
    assert not list(out.glob(".env.portpack-*"))


# -- PyPI wheels --------------------------------------------------------------------------------


def test_a_changed_wheel_is_installed_and_the_old_one_leaves_nothing(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    channel = archives["v1"].parent.parent / "channel"
    dist = tmp_path / "dist"
    dist.mkdir()
    old = wheel(dist, "pp-upd", "1.0", {"pp_upd.py": b"V = 1\n", "pp_upd_old.py": b"OLD = 1\n"})
    new = wheel(dist, "pp-upd", "1.1", {"pp_upd.py": b"V = 2\n"})
    packages = ["python==3.12.1", "base"]
    first = archive_with_wheel(channel, packages, old, tmp_path / "w")
    second = archive_with_wheel(channel, packages, new, tmp_path / "w")
    out = tmp_path / "app"
    portpack.unpack(first, out)
    result = portpack.unpack(second, out, update=True)
    assert result.wheels == [new.name] and result.unowned_kept == []
    site = out / "env/lib/python3.12/site-packages"
    assert (site / "pp_upd.py").read_text() == "V = 2\n"
    assert not (site / "pp_upd_old.py").exists()
    assert not (site / "pp_upd-1.0.dist-info").exists()
    assert diff(snapshot(out), fresh(second, out)) == []
    again = portpack.unpack(second, out, update=True)  # the same wheel: installed again
    assert again.wheels == [new.name]
    assert diff(snapshot(out), fresh(second, out)) == []


def test_an_unowned_name_the_path_check_refuses_is_dropped(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    (out / "env/back\\slash.txt").write_text("odd name\n")
    result = portpack.unpack(archives["v1-small"], out, update=True)
    assert result.unowned_dropped == ["back\\slash.txt"]
    assert diff(snapshot(out), fresh(archives["v1-small"], out)) == []


def test_from_http(archives: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    with serve_directory(archives["v2"].parent) as url:
        result = portpack.unpack(url + "env.tar", out, update=True)
    assert result.updated and len(result.reused) == 4
    # By byte ranges: the metadata frame and the changed packages' segments, no more.
    with open(archives["v1"], "rb") as old, open(archives["v2"], "rb") as new:
        before = {e.record.sha256 for e in open_metadata(old, "v1").packages}
        after = open_metadata(new, "v2").packages
    changed = sum(
        e.info.zst_size + e.payload.zst_size for e in after if e.record.sha256 not in before
    )
    data = archives["v2"].read_bytes()
    frame = zstandard.ZstdDecompressor().decompressobj()
    frame.decompress(data)
    needed = changed + len(data) - len(frame.unused_data)
    assert needed <= result.bytes_read <= max(1.1 * needed, needed + HEAD_SIZE)
    assert result.bytes_read < len(data)
    updated, expected = snapshot(out), fresh(archives["v2"], out)
    assert f"portpack unpack {url}env.tar" in (out / HISTORY).read_text()
    updated.pop(HISTORY), expected.pop(HISTORY)
    assert diff(updated, expected) == []


def test_from_a_file_only_the_changed_packages_are_read(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """A seekable file: the metadata and the changed package's segments, nothing else;
    from a pipe everything is read (and the rest skipped)."""
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    data = archives["v1-small"].read_bytes()
    with open(archives["v1-small"], "rb") as fh:
        meta = open_metadata(fh, "v1-small")
    frame = zstandard.ZstdDecompressor().decompressobj()
    frame.decompress(data)
    metadata_bytes = len(data) - len(frame.unused_data)
    (small,) = [e for e in meta.packages if e.name == "small"]
    changed = small.info.zst_size + small.payload.zst_size
    result = portpack.unpack(archives["v1-small"], out, update=True)
    assert result.installed == ["small-1.1-0"]
    # plus the first block sniffed and the changed members' tar headers: under 1 KiB
    assert metadata_bytes + changed <= result.bytes_read <= metadata_bytes + changed + 1024
    assert result.bytes_read < len(data) // 2
    shutil.rmtree(out)
    portpack.unpack(archives["v1"], out)
    with open(archives["v1-small"], "rb") as fh:
        piped = portpack.unpack(io.BufferedReader(NoSeek(fh)), out, update=True)  # type: ignore[arg-type]
    assert piped.installed == ["small-1.1-0"] and piped.bytes_read >= len(data) - 1024


class NoSeek(io.RawIOBase):
    """A file read as a pipe is: forward only."""

    def __init__(self, fh: io.BufferedReader) -> None:
        self._fh = fh
        self.name = "<pipe>"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self._fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def test_a_pixi_pack_archive_cannot_update(archives: dict[str, Path], tmp_path: Path) -> None:
    lock = archives["v1-small"].parent / "pixi.lock"
    pixi = tmp_path / "pixi.tar"
    portpack.pack(
        lockfile=lock, output=pixi, cache_dir=tmp_path / "cache", archive_format="pixi-pack"
    )
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    before = exact(out)
    with pytest.raises(ArchiveError, match="pixi-pack archive"):
        portpack.unpack(pixi, out, update=True)
    assert exact(out) == before


# -- from an OCI registry: only the changed packages' layers --------------------------------


@pytest.fixture(scope="module")
def pushed(
    archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultProxy]:
    """A real registry (tests/support/ociregistry.py) holding envs/app:v1 (archive v1) and
    envs/app:v2 (v1-small: package small changed), behind the proxy that logs requests."""
    with running_registry(tmp_path_factory.mktemp("registry")) as registry:
        push_archive(archives["v1"], registry.ref("envs/app:v1"))
        push_archive(archives["v1-small"], registry.ref("envs/app:v2"))
        front = FaultProxy(registry)
        yield front
        front.stop()


def blob_gets(proxy: FaultProxy) -> list[str]:
    """The digests of the blobs fetched through ``proxy``, in order."""
    return [p.rsplit("/", 1)[1] for m, p, _ in proxy.log if m == "GET" and "/blobs/" in p]


def test_from_an_oci_registry_only_the_changed_layers_are_fetched(
    pushed: FaultProxy, archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no credentials of the user's are read
    for name in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    with open(archives["v1-small"], "rb") as fh:
        meta = open_metadata(fh, "v1-small")
    (small,) = [e for e in meta.packages if e.name == "small"]
    changed = [f"sha256:{seg.zst_sha256}" for seg in (small.info, small.payload)]
    segments = {f"sha256:{seg.zst_sha256}" for _, seg in fmt.archive_segments(meta)}
    client = RegistryClient(parse_oci_ref(pushed.ref("envs/app:v2")))
    try:
        manifest = client.get_manifest()
    finally:
        client.close()
    config = manifest.doc["config"]
    out = tmp_path / "app"
    portpack.unpack(pushed.ref("envs/app:v1"), out)
    pushed.log.clear()
    result = portpack.unpack(pushed.ref("envs/app:v2"), out, update=True)
    assert result.updated and result.installed == ["small-1.1-0"] and len(result.reused) == 7
    # The manifest, the config (the metadata), then small's two layers: no other blob.
    assert blob_gets(pushed) == [config["digest"], *changed]
    assert not set(blob_gets(pushed)) & (segments - set(changed))
    size = len(manifest.data) + config["size"] + small.info.zst_size + small.payload.zst_size
    assert result.bytes_read == size
    updated, expected = snapshot(out), fresh(archives["v1-small"], out)
    assert f"portpack unpack {pushed.ref('envs/app:v2')}" in (out / HISTORY).read_text()
    assert updated.pop(HISTORY) != expected.pop(HISTORY)
    assert diff(updated, expected) == []
    # The command line, from v1 unpacked from the file this time.
    shutil.rmtree(out)
    portpack.unpack(archives["v1"], out)
    pushed.log.clear()
    run = subprocess.run(
        [*PORTPACK, "unpack", pushed.ref("envs/app:v2"), "-o", str(out), "--update"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert f"Updated {out / 'env'}: 1 package installed, 7 reused, 0 removed" in run.stdout
    assert blob_gets(pushed) == [config["digest"], *changed]
    updated, expected = snapshot(out), fresh(archives["v1-small"], out)
    updated.pop(HISTORY), expected.pop(HISTORY)
    assert diff(updated, expected) == []
