"""What ``portpack pack`` shows while fetching: a progress line on a terminal, nothing
elsewhere or with ``-q``, and never a secret."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faultserver import CondaToken, FaultServer, Status
from fetchsupport import REPO_ROOT, SMALL_SPECS, LockTemplate, typed
from portpack.cli.terminal import TerminalReporter
from portpack.net.fetch import Fetcher
from portpack.units import human_bytes
from support.terminal import on_terminal

HELLO = "hello-c-1.0-hb0f4dca_0.conda"
TOKEN = "tk-progress-5ecret"


@pytest.fixture(scope="module")
def template(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> LockTemplate:
    return LockTemplate.make(fixture_channel, SMALL_SPECS, tmp_path_factory.mktemp("lock"))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = "127.0.0.1"
    return env


def test_terminal_shows_counts_bytes_rate_and_masked_retries(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    with FaultServer(fixture_channel, auth=CondaToken(TOKEN)) as server:
        # A lock whose URLs carry the token, as a hand-written one might.
        lock = template.write(tmp_path / "env.lock", f"{server.url}t/{TOKEN}/")
        records = template.records(lock)
        server.fail(HELLO, Status(503))
        screen = Terminal()
        Fetcher(tmp_path / "cache", 4, TerminalReporter(stream=screen), backoff=0.01).fetch_all(
            typed(records)
        )
    shown = screen.getvalue()
    assert "Fetching [0/4]" in shown
    assert f"portpack: hello-c: HTTP 503 Service Unavailable ({server.url}linux-64/{HELLO})" in (
        shown
    )
    total = sum(r["size"] for r in records)
    assert f"Fetched 4 packages (0 from the cache, 4 downloaded: {human_bytes(total)} in" in shown
    assert TOKEN not in shown


def test_not_a_terminal_or_quiet_shows_nothing_but_warnings(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    with FaultServer(fixture_channel) as server:
        records = template.records(template.write(tmp_path / "env.lock", server.url))
        for stream, quiet in ((io.StringIO(), False), (Terminal(), True)):
            reporter = TerminalReporter(quiet, stream=stream)
            Fetcher(tmp_path / "cache", reporter=reporter).fetch_all(typed(records))
            reporter.warning("something to know")
            assert stream.getvalue() == "portpack: warning: something to know\n"


def test_cli_draws_progress_on_a_terminal_only(
    fixture_channel: Path, template: LockTemplate, tmp_path: Path
) -> None:
    with FaultServer(fixture_channel) as server:
        lock = template.write(tmp_path / "env.lock", server.url)
        base = [sys.executable, "-m", "portpack", "pack", "-l", str(lock)]
        piped = subprocess.run(
            [*base, "-o", str(tmp_path / "a.tar"), "--cache-dir", str(tmp_path / "c1")],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=REPO_ROOT,
        )
        assert piped.returncode == 0 and piped.stderr == ""
        assert piped.stdout.startswith("Packed 4 packages for linux-64")

        quiet = subprocess.run(
            [*base, "-o", str(tmp_path / "b.tar"), "--cache-dir", str(tmp_path / "c2"), "-q"],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=REPO_ROOT,
        )
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")

        status, text = on_terminal(
            [*base, "-o", str(tmp_path / "c.tar"), "--cache-dir", str(tmp_path / "c3")],
            REPO_ROOT,
            _env(),
        )
        assert status == 0
    assert "Fetching [" in text and "/4]" in text
    assert "Fetched 4 packages (0 from the cache, 4 downloaded" in text
