"""Progress while ``pack`` writes the archive and while ``unpack`` installs it: packages
and bytes done of the total, rate and time left on a terminal; nothing on a pipe or
with ``-q``."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import portpack
from portpack.archive.reader import open_metadata
from portpack.cli import terminal as progress_term
from portpack.cli.terminal import TerminalReporter, format_eta
from portpack.units import human_bytes
from support.terminal import on_terminal as run_on_terminal

PORTPACK = [sys.executable, "-m", "portpack"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_terminal(argv: list[str | Path], cwd: Path) -> tuple[int, str]:
    """Run portpack with ``argv``, standard error on a pseudo-terminal."""
    return run_on_terminal([*PORTPACK, *argv], cwd)


@pytest.fixture(scope="module")
def lock(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("progress")
    return portpack.lock(
        ["hello-c", "python"],
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=work / "pixi.lock",
    )


@pytest.fixture(scope="module")
def archive(lock: Path) -> Path:
    out = lock.parent / "env.tar"
    portpack.pack(lockfile=lock, output=out, cache_dir=lock.parent / "cache")
    return out


def test_the_line_shows_packages_bytes_rate_and_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(progress_term.time, "monotonic", lambda: clock[0])
    screen = Terminal()
    reporter = TerminalReporter(stream=screen, interval=0.0)
    reporter.on_transfer_start("Writing", 4, 4 << 20)
    clock[0] += 2.0
    reporter.on_transfer_progress(1 << 20, 1)
    reporter.warning("something to know")  # printed above the line, which is redrawn
    reporter.on_transfer_complete()
    shown = screen.getvalue()
    assert "Writing [0/4] 0 B / 4.0 MiB" in shown
    # 1 MiB in 2 s: 512 KiB/s, 3 MiB left: 6 s.
    assert "Writing [1/4] 1.0 MiB / 4.0 MiB  512.0 KiB/s  ETA 0:06" in shown
    assert "portpack: warning: something to know\n" in shown
    assert shown.endswith("\r\x1b[2K")  # the line is gone when the stage is over


def test_position_is_polled_and_clamped_to_the_total(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(progress_term.time, "monotonic", lambda: clock[0])
    screen = Terminal()
    done = [0]
    reporter = TerminalReporter(stream=screen, interval=3600)  # the ticker stays asleep
    reporter.on_transfer_start("Unpacking", 2, 1000, position=lambda: done[0])
    clock[0] = 5.0
    done[0] = 1200  # a reader reads ahead of what it installed: never more than 100 %
    reporter.on_package_complete("a")
    reporter._draw(force=True)
    reporter.on_transfer_complete()
    shown = screen.getvalue()
    assert "Unpacking [0/2] 0 B / 1000 B" in shown
    assert "Unpacking [1/2] 1000 B / 1000 B" in shown and "ETA 0:00" in shown


def test_format_eta() -> None:
    assert [format_eta(s) for s in (0, 59.6, 75, 3725)] == ["0:00", "1:00", "1:15", "1:02:05"]


def test_unpack_shows_progress_on_a_terminal_only(archive: Path, tmp_path: Path) -> None:
    status, shown = on_terminal(["unpack", archive, "-o", tmp_path / "a"], tmp_path)
    assert status == 0, shown
    # The total comes from the archive's metadata (its packages' stored bytes).
    with open(archive, "rb") as fh:
        meta = open_metadata(fh, str(archive))
    total = human_bytes(sum(p.info.zst_size + p.payload.zst_size for p in meta.packages))
    assert re.search(rf"Unpacking \[[0-2]/2\] [0-9.]+ (B|KiB|MiB) / {total}  ", shown), shown
    status, shown = on_terminal(["unpack", archive, "-o", tmp_path / "b", "-q"], tmp_path)
    assert (status, shown) == (0, "")
    piped = subprocess.run(
        [*PORTPACK, "unpack", archive, "-o", tmp_path / "c"], capture_output=True, text=True
    )
    assert piped.returncode == 0 and piped.stderr == ""


def test_unpack_of_a_pixi_pack_archive_shows_progress(lock: Path, tmp_path: Path) -> None:
    tar = tmp_path / "pp.tar"
    portpack.pack(
        lockfile=lock, output=tar, cache_dir=lock.parent / "cache", archive_format="pixi-pack"
    )
    status, shown = on_terminal(["unpack", tar, "-o", tmp_path / "a"], tmp_path)
    assert status == 0, shown
    total = human_bytes(tar.stat().st_size)
    assert re.search(rf"Unpacking [0-9.]+ (B|KiB|MiB) / {total}  ", shown), shown


def test_pack_shows_progress_while_it_writes(lock: Path, tmp_path: Path) -> None:
    cache = lock.parent / "cache"
    status, shown = on_terminal(
        ["pack", "-l", lock, "-o", tmp_path / "e.tar", "--cache-dir", cache], tmp_path
    )
    assert status == 0, shown
    assert "Writing [0/2] 0 B / " in shown, shown
    status, shown = on_terminal(
        ["pack", "-l", lock, "-o", tmp_path / "f.tar", "--cache-dir", cache, "-q"], tmp_path
    )
    assert (status, shown) == (0, "")
