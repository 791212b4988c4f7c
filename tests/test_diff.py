"""``portpack diff``: two archives or an environment and an archive; from an environment
to an archive it says exactly what ``unpack --update`` then does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from update_support import archive, build_channel

import portpack
from httpserver import serve_directory
from portpack.errors import UsageError
from portpack.unpacker.update_plan import MODIFIED

PORTPACK = [sys.executable, "-m", "portpack"]
COMMON = ["python==3.12.1", "base", "cl-a", "keepnoarch"]
V1 = [*COMMON, "small==1.0", "gone", "cl-b==1.0", "npy==1.0"]
V2 = [*COMMON, "small==1.1", "extra", "cl-b==2.0", "npy==2.0"]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("diff")
    channel = build_channel(work / "channel")
    return {"v1": archive(channel, V1, work, "v1"), "v2": archive(channel, V2, work, "v2")}


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PORTPACK, "diff", *map(str, args)], capture_output=True, text=True, check=False
    )


def names(items: list[dict[str, str]]) -> list[str]:
    return [item["name"] for item in items]


def test_two_archives(archives: dict[str, Path]) -> None:
    run = cli(archives["v1"], archives["v2"], "--json")
    assert run.returncode == 1, run.stderr  # they differ
    doc = json.loads(run.stdout)
    assert names(doc["added"]) == ["extra"]
    assert names(doc["removed"]) == ["gone"]
    assert [(c["name"], c["old"]["version"], c["new"]["version"]) for c in doc["changed"]] == [
        ("cl-b", "1.0", "2.0"),
        ("npy", "1.0", "2.0"),
        ("small", "1.0", "1.1"),
    ]
    assert sorted(d.split("-")[0] for d in doc["unchanged"]) == sorted(
        ["base", "cl", "keepnoarch", "python"]
    )
    assert doc["identical"] is False and "update" not in doc
    text = cli(archives["v1"], archives["v2"]).stdout
    assert "+ extra 1.0 0\n" in text and "- gone 1.0 0\n" in text
    assert "~ small 1.0 0 -> 1.1 0\n" in text and "4 unchanged\n" in text
    same = cli(archives["v2"], archives["v2"])
    assert same.returncode == 0 and "identical" in same.stdout


def test_an_environment_and_an_archive_shows_what_update_does(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "app"
    portpack.unpack(archives["v1"], out)
    (out / "env/etc").mkdir()
    (out / "env/etc/local.conf").write_text("mine\n")
    (out / "env/share/base/plain.txt").write_text("edited\n")
    run = cli(out / "env", archives["v2"], "--json")
    assert run.returncode == 1, run.stderr
    update = json.loads(run.stdout)["update"]
    assert {key: value for key, value in update.items() if key != "reuse"} == {
        "install": ["base", "cl-b", "extra", "npy", "small"],
        "reinstall": {"base": MODIFIED},
        "remove": ["gone-1.0-0"],
        "modified": ["share/base/plain.txt: size 7, recorded 17"],
        "unowned": ["etc/local.conf"],
    }
    assert sorted(d.split("-")[0] for d in update["reuse"]) == ["cl", "keepnoarch", "python"]
    text = cli(out / "env", archives["v2"]).stdout
    assert "unpack --update would install 5 packages, reuse 3 and remove 1\n" in text
    assert "changed locally (refused without --force): share/base/plain.txt" in text
    assert "no package owns (kept): etc/local.conf" in text
    # and the update does just that
    result = portpack.unpack(archives["v2"], out, update=True, force=True)
    assert sorted(result.reused) == update["reuse"]
    assert sorted(n.rsplit("-", 2)[0] for n in result.installed) == update["install"]
    assert result.removed == update["remove"]
    assert result.replaced == update["modified"]
    assert result.unowned_kept == update["unowned"]


def test_over_http_and_between_environments(archives: dict[str, Path], tmp_path: Path) -> None:
    with serve_directory(archives["v2"].parent) as url:
        report = portpack.diff(archives["v1"], url + "env.tar")
    assert [r.name for r in report.changes.added] == ["extra"]
    portpack.unpack(archives["v1"], tmp_path / "one")
    portpack.unpack(archives["v2"], tmp_path / "two")
    between = portpack.diff(tmp_path / "one/env", tmp_path / "two/env")
    assert [r.name for r in between.changes.removed] == ["gone"]
    assert between.update is None  # only from an environment to an archive


def test_what_is_neither_is_a_clear_error(archives: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder/file.txt").write_text("x\n")
    with pytest.raises(UsageError, match="not a conda environment"):
        portpack.diff(tmp_path / "folder", archives["v2"])
    run = cli(tmp_path / "missing.tar", archives["v2"])
    assert run.returncode == 2
    assert "missing.tar" in run.stderr and "Traceback" not in run.stderr
