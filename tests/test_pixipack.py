"""pixi-pack archives both ways.

In: ``portpack unpack`` takes an archive in pixi-pack's layout (built here from
pixi-pack's documented format, independently of portpack's writer) and makes the same
prefix as from portpack's own archive.  Out: ``portpack pack --format pixi-pack``
writes that layout; py-rattler loads its repodata.json and solves from it offline,
rattler's installer (pixi-unpack's engine) installs what it solved, and portpack
unpacks it into the same prefix as its own format.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rattler
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from pixipack_archive import (
    PIXI_MTIME,
    build_pixi_pack,
    pixi_pack_tree,
    tar_like_pixi_pack,
)

import portpack
from portpack.conda.order import install_order
from portpack.conda.record import PackageRecord
from portpack.errors import ArchiveError, PackageError, PreconditionError
from portpack.install.verify import verify
from portpack.packer import inject
from portpack.progress import RecordingReporter
from portpack.resolve.locking import locked_records
from support.channel import ENV_SPECS, RATTLER_COMPATIBLE, index_channel
from support.extract import extract_all
from support.pkgwriter import PackageSpec, info_entries, write_conda
from support.rattler_install import install_with_rattler, solve
from treesnap import diff, snapshot

PORTPACK = [sys.executable, "-m", "portpack"]


# -- fixtures ------------------------------------------------------------------------


def channel_file(channel: Path, record: dict[str, Any]) -> Path:
    return channel / record["subdir"] / record["fn"]


@pytest.fixture(scope="module")
def env(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The full fixture environment: its lock, records, files and portpack archive."""
    work = tmp_path_factory.mktemp("pixipack")
    lock = portpack.lock(
        ENV_SPECS, channels=[str(fixture_channel)], platforms=["linux-64"], output=work / "l.lock"
    )
    _, locked = locked_records((), lockfile=lock, platform="linux-64")
    records = [r.to_json() for r in locked]
    packages = [(r, channel_file(fixture_channel, r)) for r in records]
    portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=work / "cache")
    return {"work": work, "lock": lock, "records": records, "packages": packages}


@pytest.fixture(scope="module")
def pixi_archive(env: dict[str, Any]) -> Path:
    return build_pixi_pack(env["work"], "pixi", env["packages"])


@pytest.fixture(scope="module")
def portpack_tree(env: dict[str, Any]) -> dict[str, Any]:
    """The prefix portpack's own archive makes at a fixed path (then removed)."""
    return unpack_snapshot(env["work"] / "env.tar", env["work"] / "same")


def unpack_snapshot(archive: Path, out: Path, **kw: Any) -> dict[str, Any]:
    """Unpack into ``out/env``, snapshot files and conda-meta, remove the environment."""
    reporter = RecordingReporter()
    result = portpack.unpack(archive, out, reporter=reporter, **kw)
    assert verify(result.prefix).ok
    clobbers = [w for w in reporter.warnings if "share/clobber.txt" in w]
    assert len(clobbers) == 1 and "clobber-a" in clobbers[0] and "clobber-b" in clobbers[0]
    tree = snapshot(result.prefix, skip=("conda-meta",))
    meta = {}
    for path in (result.prefix / "conda-meta").glob("*.json"):
        doc = json.loads(path.read_text())
        meta[path.name] = {"files": doc["files"], "paths": doc["paths_data"]}
    shutil.rmtree(out)
    return {"tree": tree, "meta": meta, "packages": sorted(result.packages)}


def assert_same_environment(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert diff(a["tree"], b["tree"]) == []
    assert a["meta"] == b["meta"]
    assert a["packages"] == b["packages"]


def member_names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def rewrite_member(archive: Path, out: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    """A copy of a tar with one member's content changed (same order and headers)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if info.name == member and data is not None:
                data = change(data)
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


# -- pixi-pack archives in -----------------------------------------------------------


def test_pixi_pack_archive_makes_the_same_prefix_as_portpacks(
    pixi_archive: Path, portpack_tree: dict[str, Any], env: dict[str, Any]
) -> None:
    names = member_names(pixi_archive)
    assert names.index("channel/noarch/greet-1.0-0.conda") < names.index("pixi-pack.json")
    assert_same_environment(portpack_tree, unpack_snapshot(pixi_archive, env["work"] / "same"))


def test_pixi_pack_archive_from_a_pipe_runs(pixi_archive: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*PORTPACK, "unpack", "-", "-o", tmp_path, "--shell", "fish"],
        input=pixi_archive.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    prefix = tmp_path / "env"
    out = subprocess.run([prefix / "bin" / "greet"], capture_output=True, text=True, check=True)
    assert f"prefix={prefix}" in out.stdout
    assert (tmp_path / "activate.fish").is_file()
    assert leftovers(tmp_path) == ["activate.fish", "env"]
    history = (prefix / "conda-meta" / "history").read_text()
    assert "+local::greet-1.0-0" in history
    record = json.loads(next((prefix / "conda-meta").glob("greet-1.0-0.json")).read_text())
    assert record["url"] == "file:///dev/stdin#channel/noarch/greet-1.0-0.conda"


def test_other_platform_in_pixi_pack_json_is_refused_and_nothing_is_left(
    env: dict[str, Any], tmp_path: Path
) -> None:
    meta = {"version": "1", "pixi-pack-version": "0.7.2", "platform": "linux-aarch64"}
    archive = build_pixi_pack(tmp_path, "arm", env["packages"][:3], metadata=meta)
    with pytest.raises(PreconditionError, match="for linux-aarch64 but this machine is linux-64"):
        portpack.unpack(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_packages_for_another_platform_are_refused_before_any_is_installed(
    env: dict[str, Any], tmp_path: Path
) -> None:
    record = dict(env["records"][0], subdir="osx-arm64")
    archive = build_pixi_pack(tmp_path, "mac", [(record, env["packages"][0][1])])
    reporter = RecordingReporter()
    started: list[str] = []
    reporter.on_package_start = lambda name, index, total: started.append(name)  # type: ignore[method-assign]
    with pytest.raises(PreconditionError, match="osx-arm64"):
        portpack.unpack(archive, tmp_path / "out", reporter=reporter)
    assert started == []
    assert leftovers(tmp_path / "out") == []


def test_unknown_pixi_pack_format_version_is_refused(env: dict[str, Any], tmp_path: Path) -> None:
    meta = {"version": "2", "platform": "linux-64"}
    archive = build_pixi_pack(tmp_path, "v2", env["packages"][:1], metadata=meta)
    with pytest.raises(ArchiveError, match="format version '2' is not supported"):
        portpack.unpack(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_sha256_is_checked_against_repodata(
    env: dict[str, Any], pixi_archive: Path, tmp_path: Path
) -> None:
    def wrong_sha(data: bytes) -> bytes:
        doc = json.loads(data)
        doc["packages.conda"]["hello-c-1.0-hb0f4dca_0.conda"]["sha256"] = "0" * 64
        return json.dumps(doc).encode()

    archive = rewrite_member(
        pixi_archive, tmp_path / "bad.tar", "channel/linux-64/repodata.json", wrong_sha
    )
    with pytest.raises(
        ArchiveError, match=r"linux-64/hello-c-1\.0-hb0f4dca_0\.conda does not match the sha256"
    ):
        portpack.unpack(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_corrupt_package_is_an_error_naming_it(pixi_archive: Path, tmp_path: Path) -> None:
    def flip(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]

    member = "channel/noarch/greetlib-1.0-0.conda"
    archive = rewrite_member(pixi_archive, tmp_path / "bad.tar", member, flip)
    with pytest.raises((ArchiveError, PackageError), match=r"greetlib-1\.0-0"):
        portpack.unpack(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_truncated_archive_is_an_error(pixi_archive: Path, tmp_path: Path) -> None:
    data = pixi_archive.read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match=r"cut\.tar is truncated"):
        portpack.unpack(tmp_path / "cut.tar", tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_tar_without_pixi_pack_json_is_refused(env: dict[str, Any], tmp_path: Path) -> None:
    root = pixi_pack_tree(tmp_path / "d", env["packages"][:1])
    (root / "pixi-pack.json").unlink()
    archive = tar_like_pixi_pack(root, tmp_path / "nometa.tar")
    with pytest.raises(ArchiveError, match="neither a portpack nor a pixi-pack archive"):
        portpack.unpack(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_a_broken_wheel_is_refused_naming_it(env: dict[str, Any], tmp_path: Path) -> None:
    """Wheels are installed (tests/test_pypi.py); one that is no wheel is an error."""
    wheels = {"requests-2.32.3-py3-none-any.whl": b"PK", "idna-3.10-py3-none-any.whl": b"PK"}
    archive = build_pixi_pack(tmp_path, "whl", env["packages"][:2], wheels=wheels)
    with pytest.raises(PackageError, match=r"wheel idna-3\.10-py3-none-any\.whl cannot be"):
        portpack.unpack(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_without_repodata_records_come_from_the_packages(
    env: dict[str, Any], tmp_path: Path
) -> None:
    packages = [(r, p) for r, p in env["packages"] if r["name"] in ("hello-c", "legacy")]
    archive = build_pixi_pack(tmp_path, "norepo", packages, with_repodata=False)
    result = portpack.unpack(archive, tmp_path / "out")
    assert verify(result.prefix).ok
    for record, path in packages:
        doc = json.loads(
            (
                result.prefix / "conda-meta" / f"{record['name']}-1.0-{record['build']}.json"
            ).read_text()
        )
        assert doc["fn"] == record["fn"]
        assert doc["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert doc["depends"] == record["depends"]


def test_package_listed_in_repodata_but_missing_is_an_error(
    pixi_archive: Path, tmp_path: Path
) -> None:
    with (
        tarfile.open(pixi_archive) as src,
        tarfile.open(tmp_path / "m.tar", "w", format=tarfile.GNU_FORMAT) as dst,
    ):
        for info in src:
            if info.name != "channel/linux-64/pyscript-1.0-0.conda":
                dst.addfile(info, src.extractfile(info) if info.isfile() else None)
    with pytest.raises(ArchiveError, match=r"does not hold: pyscript-1\.0-0\.conda"):
        portpack.unpack(tmp_path / "m.tar", tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_decompressed_portpack_archive_gets_a_clear_message(
    env: dict[str, Any], tmp_path: Path
) -> None:
    plain = tmp_path / "plain.tar"
    with open(env["work"] / "env.tar", "rb") as src, open(plain, "wb") as dst:
        zstandard.ZstdDecompressor().copy_stream(src, dst)
    with pytest.raises(ArchiveError, match="decompressed portpack archive"):
        portpack.unpack(plain, tmp_path / "out")


@pytest.fixture(scope="module")
def odd_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Packages that exercise orders pixi-pack archives can have: a name sorting after
    repodata.json, and a .tar.bz2 whose info/ sits between payload files."""
    channel = tmp_path_factory.mktemp("odd")
    write_conda(channel / "noarch", PackageSpec("ztool", "1.0", files={"share/ztool.txt": "z\n"}))
    spec = PackageSpec("mixed", "1.0", files={"bin/aaa": "a\n", "share/zzz": "z\n"})
    (channel / "noarch").mkdir(exist_ok=True)
    with tarfile.open(channel / "noarch" / "mixed-1.0-0.tar.bz2", "w:bz2") as tar:
        items = sorted([*spec.entries(), *info_entries(spec)])  # old conda-build: sorted
        for path, entry in items:
            data = entry.read()
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), entry.mode
            tar.addfile(info, io.BytesIO(data))
    index_channel(channel)
    return channel


def odd_records(channel: Path) -> list[tuple[dict[str, Any], Path]]:
    repodata = json.loads((channel / "noarch" / "repodata.json").read_text())
    out = []
    for key in ("packages", "packages.conda"):
        for fn, record in repodata[key].items():
            out.append((dict(record, fn=fn), channel / "noarch" / fn))
    return out


def test_package_after_repodata_is_verified_before_it_is_installed(
    odd_channel: Path, tmp_path: Path
) -> None:
    packages = odd_records(odd_channel)
    root = pixi_pack_tree(tmp_path / "d", packages)
    repodata = root / "channel" / "noarch" / "repodata.json"
    doc = json.loads(repodata.read_text())
    doc["packages.conda"]["ztool-1.0-0.conda"]["sha256"] = "f" * 64
    repodata.write_text(json.dumps(doc))
    archive = tar_like_pixi_pack(root, tmp_path / "z.tar")
    names = member_names(archive)
    assert names.index("channel/noarch/repodata.json") < names.index(
        "channel/noarch/ztool-1.0-0.conda"
    )
    reporter = RecordingReporter()
    started: list[str] = []
    reporter.on_package_start = lambda name, index, total: started.append(name)  # type: ignore[method-assign]
    with pytest.raises(ArchiveError, match=r"ztool-1\.0-0\.conda does not match the sha256"):
        portpack.unpack(archive, tmp_path / "out", reporter=reporter)
    assert "ztool" not in started


def test_tar_bz2_with_info_between_payload_files(odd_channel: Path, tmp_path: Path) -> None:
    archive = build_pixi_pack(tmp_path, "mixed", odd_records(odd_channel))
    result = portpack.unpack(archive, tmp_path / "out")
    assert (result.prefix / "bin" / "aaa").read_text() == "a\n"
    assert (result.prefix / "share" / "zzz").read_text() == "z\n"
    assert not (result.prefix / "info").exists()
    assert verify(result.prefix).ok


# -- pixi-pack archives out ----------------------------------------------------------


@pytest.fixture(scope="module")
def written(env: dict[str, Any]) -> Path:
    out = env["work"] / "written-pixi.tar"
    proc = subprocess.run(
        [
            *PORTPACK,
            "pack",
            "-l",
            env["lock"],
            "--format",
            "pixi-pack",
            "-o",
            out,
            "--cache-dir",
            env["work"] / "cache",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_written_archive_has_pixi_packs_layout(written: Path, pixi_archive: Path) -> None:
    with open(written, "rb") as fh:
        assert fh.read(4) != b"\x28\xb5\x2f\xfd"  # a plain tar, not zstd
    with tarfile.open(written) as ours, tarfile.open(pixi_archive) as theirs:
        assert ours.getnames() == theirs.getnames()
        for info in ours:
            assert (info.mtime, info.uid, info.gid, info.uname) == (PIXI_MTIME, 0, 0, "")
        ours_env = ours.extractfile("environment.yml").read().decode()  # type: ignore[union-attr]
        assert ours_env == theirs.extractfile("environment.yml").read().decode()  # type: ignore[union-attr]
        meta = json.loads(ours.extractfile("pixi-pack.json").read())  # type: ignore[union-attr]
        assert meta["version"] == "1" and meta["platform"] == "linux-64"
        assert meta["portpack-version"] == portpack.__version__
        for subdir in ("linux-64", "noarch"):
            name = f"channel/{subdir}/repodata.json"
            mine = json.loads(ours.extractfile(name).read())  # type: ignore[union-attr]
            theirs_doc = json.loads(theirs.extractfile(name).read())  # type: ignore[union-attr]
            assert mine["info"] == {"subdir": subdir}
            assert {**mine["packages"], **mine["packages.conda"]} == theirs_doc["packages.conda"]
            assert all(fn.endswith(".tar.bz2") for fn in mine["packages"])
            assert all(fn.endswith(".conda") for fn in mine["packages.conda"])
    assert "  - python=" in ours_env and ours_env.startswith(
        "channels:\n  - ./channel\n  - nodefaults\n"
    )


@pytest.fixture(scope="module")
def extracted(written: Path, env: dict[str, Any]) -> Path:
    target = env["work"] / "extracted"
    with tarfile.open(written) as tar:
        extract_all(tar, target, "data")
    return target


def test_written_repodata_loads_in_py_rattler_and_solves_offline(
    extracted: Path, env: dict[str, Any]
) -> None:
    specs = [
        line.removeprefix("  - ")
        for line in (extracted / "environment.yml").read_text().splitlines()
        if line.startswith("  - ") and "=" in line
    ]
    # conda's name=version=build form, parsed as conda and micromamba parse it.
    solved = solve(extracted / "channel", [str(rattler.MatchSpec(s, strict=False)) for s in specs])
    got = sorted(f"{r.name.normalized}-{r.version}-{r.build}" for r in solved)
    want = sorted(f"{r['name']}-{r['version']}-{r['build']}" for r in env["records"])
    assert got == want
    by_fn = {r.file_name: r for r in solved}
    for record in env["records"]:
        assert by_fn[record["fn"]].sha256.hex() == record["sha256"]


def test_pixi_unpack_engine_installs_the_written_archive_like_portpack(
    fixture_channel: Path, tmp_path: Path
) -> None:
    # pixi-unpack = rattler's installer fed from the archive's channel/ directory.
    lock = portpack.lock(
        RATTLER_COMPATIBLE,
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=tmp_path / "l.lock",
    )
    archive = tmp_path / "pp.tar"
    portpack.pack(
        lockfile=lock, output=archive, cache_dir=tmp_path / "cache", archive_format="pixi-pack"
    )
    with tarfile.open(archive) as tar:
        extract_all(tar, tmp_path / "x", "data")
    solved = solve(tmp_path / "x" / "channel", RATTLER_COMPATIBLE)
    target = tmp_path / "same" / "env"
    install_with_rattler(solved, target)
    skip = ("CACHEDIR.TAG", "conda-meta", "__clobbers__")
    theirs = snapshot(target, skip=skip)
    shutil.rmtree(target)
    ours = snapshot(portpack.unpack(archive, tmp_path / "same").prefix, skip=skip)
    assert diff(theirs, ours) == []


def test_portpack_unpacks_its_pixi_pack_output_like_its_own_format(
    written: Path, portpack_tree: dict[str, Any], env: dict[str, Any]
) -> None:
    assert_same_environment(portpack_tree, unpack_snapshot(written, env["work"] / "same"))


def test_pack_to_stdout_in_pixi_pack_format(env: dict[str, Any], tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *PORTPACK,
            "pack",
            "-l",
            env["lock"],
            "--format",
            "pixi-pack",
            "-o",
            "-",
            "--cache-dir",
            env["work"] / "cache",
        ],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        names = tar.getnames()
    assert names[0] == "channel" and names[-1] == "pixi-pack.json"
    assert b"Packed " in proc.stderr


def test_unknown_format_is_a_usage_error(env: dict[str, Any], tmp_path: Path) -> None:
    proc = subprocess.run(
        [*PORTPACK, "pack", "-l", env["lock"], "--format", "zip", "-o", tmp_path / "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "zip" in proc.stderr
    assert not (tmp_path / "x").exists()
    with pytest.raises(portpack.UsageError, match="unknown archive format 'zip'"):
        portpack.pack(lockfile=env["lock"], output=tmp_path / "x", archive_format="zip")


def test_written_wheels_hook_lists_pip_section(tmp_path: Path) -> None:
    from portpack.archive.pixipack_write import environment_yml

    record = PackageRecord.from_json({"name": "pip", "version": "24.0", "build": "pyh_0"}, "test")
    text = environment_yml([record], ["requests-2.32.3-py3-none-any.whl"])
    assert text.endswith(
        "  - pip=24.0=pyh_0\n  - pip:\n    - --no-index\n    - --find-links ./pypi\n"
        "    - requests==2.32.3\n"
    )


def typed(records: list[dict[str, Any]]) -> list[PackageRecord]:
    return [PackageRecord.from_json({"version": "1", "build": "0", **r}, "test") for r in records]


def order(records: list[dict[str, Any]]) -> list[str]:
    return [r.name for r in install_order(typed(records))]


def rattler_order(records: list[dict[str, Any]]) -> list[str]:
    packages = [
        rattler.PackageRecord(
            r["name"],
            "1",
            rattler.BuildString("0"),
            0,
            "noarch" if r.get("noarch") else "linux-64",
            noarch=r.get("noarch"),
            depends=r["depends"],
        )
        for r in records
    ]
    return [p.name.normalized for p in rattler.PackageRecord.sort_topologically(packages)]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sets(st.integers(0, 11), max_size=4), st.booleans()), min_size=1, max_size=12
    ),
    st.sampled_from(["p{} >=1", "p{}", "p{}=1", "p{} 1 0", "p{} >=1,<2"]),
)
def test_install_order_is_rattlers_topological_sort(
    graph: list[tuple[set[int], bool]], spec: str
) -> None:
    # Package i depends on later packages and maybe itself (rattler's choice of edge in
    # longer cycles depends on its hash map's order), as specs of several forms.
    records = [
        {
            "name": f"p{i}",
            "noarch": "python" if noarch else None,
            "depends": [spec.format(d) for d in sorted(deps) if i <= d < len(graph)],
        }
        for i, (deps, noarch) in enumerate(graph)
    ]
    assert order(records) == rattler_order(records)
    assert order(records[::-1]) == order(records)
    # pack --inject and packing a prefix order their records the same way.
    assert [r.name for r in inject.ordered(typed(records))] == order(records)


def test_install_order_breaks_a_python_pip_cycle_like_rattler() -> None:
    records = [
        {"name": "python", "depends": ["pip", "libzlib >=1.2"]},
        {"name": "pip", "noarch": "python", "depends": ["python >=3.8"]},
        {"name": "libzlib", "depends": ["__glibc >=2.17"]},
        {"name": "app", "noarch": "python", "depends": ["python"]},
    ]
    assert order(records) == rattler_order(records) == ["libzlib", "python", "pip", "app"]


def installable(names: list[str], records: list[dict[str, Any]], allowed: int) -> bool:
    """Every dependency installed before its dependent, but for ``allowed`` edges."""
    position = {name: i for i, name in enumerate(names)}
    late = [
        (r["name"], d) for r in records for d in r["depends"] if position[d] > position[r["name"]]
    ]
    return sorted(names) == sorted(r["name"] for r in records) and len(late) <= allowed


def test_install_order_of_a_cycle_without_roots_breaks_one_edge() -> None:
    # a -> b -> c -> a, nothing else: no package is a root until the cycle is broken
    # (rattler drops an edge this cycle does not have here, and its result varies).
    records = [
        {"name": "a", "depends": ["b"]},
        {"name": "b", "depends": ["c"]},
        {"name": "c", "depends": ["a"]},
    ]
    assert order(records) == ["a", "c", "b"]
    assert installable(order(records), records, allowed=1)
    assert order(records[::-1]) == order(records)
    # With a noarch member, the edge into it is dropped: it comes last.
    records[2]["noarch"] = "python"
    assert order(records) == ["b", "a", "c"]
    assert installable(order(records), records, allowed=1)


def test_install_order_ignores_missing_and_virtual_dependencies() -> None:
    records = [
        {"name": "app", "depends": ["missing-lib >=1", "__glibc >=2.17", "lib"]},
        {"name": "lib", "depends": ["also-missing"]},
    ]
    assert order(records) == rattler_order(records) == ["lib", "app"]
    # The records themselves come back, all fields kept.
    ordered = install_order(typed(records))
    assert [r.to_json()["depends"] for r in ordered] == [["also-missing"], records[0]["depends"]]


# -- the package reader ----------------------------------------------------------------


def _rezip(
    conda: Path, out: Path, change: Callable[[zipfile.ZipInfo, bytes], bytes | None]
) -> Path:
    """A copy of a .conda with each member passed through ``change`` (None drops it)."""
    with zipfile.ZipFile(conda) as src, zipfile.ZipFile(out, "w") as dst:
        for zinfo in src.infolist():
            data = change(zinfo, src.read(zinfo))
            if data is not None:
                dst.writestr(zinfo, data)
    return out


def _unsupported_method(path: Path) -> Path:
    """Mark every member as compressed with a method zipfile does not know (99)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
            start = at + 4
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "breakage",
    ["not-a-zip", "no-info", "no-payload", "bad-zstd", "unsupported-method", "bad-bz2"],
)
def test_broken_package_files_are_one_error_naming_the_package(
    tmp_path: Path, breakage: str
) -> None:
    from portpack.conda.package_file import PackageFile

    spec = PackageSpec("brokenpkg", "1.0", files={"share/x.txt": "x\n"})
    good = write_conda(tmp_path / "good", spec)
    bad = tmp_path / (good.name if breakage != "bad-bz2" else "brokenpkg-1.0-0.tar.bz2")
    if breakage == "not-a-zip":
        bad.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    elif breakage in ("no-info", "no-payload"):
        gone = "info-" if breakage == "no-info" else "pkg-"
        _rezip(good, bad, lambda z, d: None if z.filename.startswith(gone) else d)
    elif breakage == "bad-zstd":
        _rezip(good, bad, lambda z, d: d[:8] + b"\xff" * 64 if z.filename.endswith(".zst") else d)
    elif breakage == "unsupported-method":
        _unsupported_method(_rezip(good, bad, lambda z, d: d))
    else:
        bad.write_bytes(b"BZh91AY&SY" + b"\x00" * 100)
    with (
        pytest.raises(PackageError, match=r"^package brokenpkg-1\.0[: ]") as caught,
        open(bad, "rb") as fh,
        PackageFile(fh, bad.name, "brokenpkg-1.0") as package,
    ):
        package.info()
        b"".join(package.payload())
    assert "\n" not in str(caught.value)
