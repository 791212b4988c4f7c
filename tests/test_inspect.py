"""``portpack inspect``: what an archive holds, for people and (``--json``) for machines."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zstandard
from pixipack_archive import build_pixi_pack

import portpack
from portpack.archive.sfx import MAGIC, SHEBANG
from portpack.archive.summary import min_glibc
from portpack.cli.render import summary_text
from portpack.errors import ArchiveError
from portpack.resolve.locking import locked_records
from support.channel import index_channel
from support.pkgwriter import PackageSpec, write_conda

PORTPACK = [sys.executable, "-m", "portpack"]


def cli(*args: str | Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PORTPACK, *map(str, args)], capture_output=True, text=True, check=False, **kw
    )


@pytest.fixture(scope="module")
def glibc_channel(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture channel's python plus two packages that need glibc 2.17 and 2.28."""
    channel = tmp_path_factory.mktemp("glibc-channel")
    for subdir in ("linux-64", "noarch"):
        (channel / subdir).mkdir()
    python = next((fixture_channel / "linux-64").glob("python-*.conda"))
    shutil.copyfile(python, channel / "linux-64" / python.name)
    write_conda(
        channel / "linux-64",
        PackageSpec(
            "oldlib",
            "1.0",
            subdir="linux-64",
            depends=["__glibc >=2.17,<3.0.a0"],
            files={"lib/oldlib.txt": "old\n"},
        ),
    )
    write_conda(
        channel / "linux-64",
        PackageSpec(
            "newlib",
            "2.1",
            subdir="linux-64",
            depends=["__glibc >=2.28", "oldlib"],
            files={"lib/newlib.txt": "new\n"},
        ),
    )
    index_channel(channel)
    return channel


@pytest.fixture(scope="module")
def archives(glibc_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One lock packed as portpack, as pixi-pack by portpack, and as pixi-pack writes it."""
    work = tmp_path_factory.mktemp("inspect")
    lock = portpack.lock(
        ["python", "newlib"],
        channels=[str(glibc_channel)],
        platforms=["linux-64"],
        output=work / "l.lock",
    )
    _, locked = locked_records((), lockfile=lock, platform="linux-64")
    records = [r.to_json() for r in locked]
    cache = work / "cache"
    portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=cache)
    portpack.pack(
        lockfile=lock, output=work / "pp.tar", cache_dir=cache, archive_format="pixi-pack"
    )
    files = [(r, glibc_channel / r["subdir"] / r["fn"]) for r in records]
    theirs = build_pixi_pack(
        work, "theirs", files, wheels={"six-1.16.0-py2.py3-none-any.whl": b"PK"}
    )
    return {
        "work": work,
        "records": records,
        "portpack": work / "env.tar",
        "ours": work / "pp.tar",
        "theirs": theirs,
    }


def test_portpack_archive_summary(archives: dict[str, Any]) -> None:
    out = cli("inspect", archives["portpack"], "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["format"] == "portpack" and doc["format_version"] == "2"
    assert doc["platform"] == "linux-64"
    assert doc["portpack_version"] == portpack.__version__
    records = {r["name"]: r for r in archives["records"]}
    assert doc["python_version"] == records["python"]["version"]
    assert doc["glibc"] == "2.28"
    by_name = {p["name"]: p for p in doc["packages"]}
    assert sorted(by_name) == sorted(records) == ["newlib", "oldlib", "python"]
    for name, record in records.items():
        got = by_name[name]
        assert (got["version"], got["build"], got["size"]) == (
            record["version"],
            record["build"],
            record["size"],
        )
    assert doc["download_size"] == sum(r["size"] for r in records.values())
    assert doc["installed_size"] == sum(p["installed_size"] for p in doc["packages"])
    assert by_name["newlib"]["installed_size"] == len("new\n")
    assert doc["archive_size"] == archives["portpack"].stat().st_size


def test_text_report_names_what_matters(archives: dict[str, Any]) -> None:
    out = cli("inspect", archives["portpack"])
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"Packed by:    portpack {portpack.__version__}" in text
    assert "Platform:     linux-64" in text
    assert "Needs glibc:  >=2.28" in text
    assert "Packages:     3, " in text and " to download, " in text and " installed" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("  ")]
    assert rows[0] == ["NAME", "VERSION", "BUILD", "SIZE"]
    assert any(r[:3] == ["newlib", "2.1", "0"] for r in rows)


def test_only_the_metadata_frame_is_read(archives: dict[str, Any], tmp_path: Path) -> None:
    data = archives["portpack"].read_bytes()
    dobj = zstandard.ZstdDecompressor().decompressobj()
    dobj.decompress(data)
    first_frame = data[: len(data) - len(dobj.unused_data)]
    assert len(first_frame) < len(data) // 10
    cut = tmp_path / "head.tar"
    cut.write_bytes(first_frame)  # the rest of the archive is gone
    full = portpack.inspect(archives["portpack"])
    assert portpack.inspect(cut).packages == full.packages
    with open(archives["portpack"], "rb") as fh:
        proc = subprocess.run(
            [*PORTPACK, "inspect", "-", "--json"],
            stdin=fh,
            capture_output=True,
            text=True,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["packages"] == full.to_json()["packages"]


def test_self_extracting_archive_is_inspected_past_its_header(
    archives: dict[str, Any], tmp_path: Path
) -> None:
    # The sh header names the offset of the portpack archive inside the file.
    offset = 4096
    header = SHEBANG + MAGIC + f"# archive offset: {offset}\n".encode()
    sfx = tmp_path / "env.sh"
    sfx.write_bytes(header.ljust(offset, b"#") + archives["portpack"].read_bytes())
    summary = portpack.inspect(sfx)
    assert summary.format == "portpack"
    assert summary.packages == portpack.inspect(archives["portpack"]).packages


def test_pixi_pack_archive_summary_matches_portpacks(archives: dict[str, Any]) -> None:
    ours = portpack.inspect(archives["portpack"])
    theirs = portpack.inspect(archives["theirs"])
    assert theirs.format == "pixi-pack" and theirs.format_version == "1"
    assert theirs.pixi_pack_version == "0.7.2" and theirs.portpack_version is None
    assert theirs.platform == "linux-64"
    assert theirs.packages == ours.packages
    assert (theirs.download_size, theirs.installed_size) == (
        ours.download_size,
        ours.installed_size,
    )
    assert (theirs.python_version, theirs.glibc) == (ours.python_version, "2.28")
    assert theirs.wheels == ["six-1.16.0-py2.py3-none-any.whl"]
    text = summary_text(theirs)
    assert "pixi-pack 0.7.2" in text and "PyPI wheels:  six-1.16.0-py2.py3-none-any.whl" in text


def test_portpack_written_pixi_pack_archive_says_so(archives: dict[str, Any]) -> None:
    summary = portpack.inspect(archives["ours"])
    assert summary.format == "pixi-pack"
    assert summary.portpack_version == portpack.__version__
    assert summary.packages == portpack.inspect(archives["portpack"]).packages


def test_pixi_pack_archive_from_a_pipe_is_a_clear_error(archives: dict[str, Any]) -> None:
    proc = subprocess.run(
        [*PORTPACK, "inspect", "-"],
        input=archives["theirs"].read_bytes(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 2
    assert b"pixi-pack archive: inspect needs it as a file" in proc.stderr


def test_the_library_reads_a_stream_and_takes_dash_for_a_file_name(
    archives: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``"-"`` means standard input only to the command line: the library never reads it."""

    class NoStdin:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the library used sys.stdin.{name}")

    monkeypatch.setattr(sys, "stdin", NoStdin())
    for kind in ("portpack", "theirs"):
        data = archives[kind].read_bytes()
        expected = portpack.inspect(archives[kind])
        from_stream = portpack.inspect(io.BytesIO(data))
        assert from_stream.packages == expected.packages and from_stream.archive == "<stream>"
        (tmp_path / "-").write_bytes(data)
        monkeypatch.chdir(tmp_path)
        from_dash = portpack.inspect("-")
        assert from_dash.packages == expected.packages and from_dash.archive == "-"
        assert from_dash.archive_size == len(data)


def test_bad_input_is_one_paragraph_naming_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not an archive at all " * 50)
    out = cli("inspect", garbage)
    assert out.returncode == 1 and "garbage.tar" in out.stderr
    assert out.stderr.startswith("portpack: error: ") and "Traceback" not in out.stderr
    out = cli("inspect", tmp_path / "missing.tar")
    assert out.returncode == 2 and "cannot open archive" in out.stderr


@pytest.mark.parametrize(
    ("depends", "expected"),
    [
        (["__glibc >=2.17,<3.0.a0"], "2.17"),
        (["__glibc >=2.17", "__glibc >=2.28,<3", "python >=3.12"], "2.28"),
        (["__glibc 2.17.*"], "2.17"),
        (["__glibc >2.12|>=2.5"], "2.5"),
        (["__glibc <3"], None),
        (["__cuda >=12", "python"], None),
        (["__glibc>=2.17", "__glibc >=2.9"], "2.17"),  # conda's order: 2.9 < 2.17
        (["__glibc >=2.17,<3.0.a0 0"], "2.17"),  # a build string after the version
        (["__glibc (>=2.28|>=2.17),<3"], "2.17"),
        (["__glibc >=2.17|<2"], None),
        (["__glibc", "__glibc *"], None),
        (["foo[version='>=1']", "__glibc >=2.12"], "2.12"),  # others are not read
    ],
)
def test_min_glibc(depends: list[str], expected: str | None) -> None:
    assert min_glibc(depends) == expected


@pytest.mark.parametrize("dep", ["__glibc >=2.17,,", "__glibc 1.*.3", "__glibc[version='>=2']"])
def test_min_glibc_refuses_what_it_cannot_read(dep: str) -> None:
    with pytest.raises(ArchiveError) as info:
        min_glibc(["python", dep], "env.tar")
    assert str(info.value).startswith("env.tar: ")
    assert "\n" not in str(info.value)
