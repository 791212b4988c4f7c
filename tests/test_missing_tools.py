"""Without a program the tests run (zsh, gcc, debootstrap...), a test fails, naming it.

A plain ``pytest`` on a machine that lacks one must neither crash with a raw
``FileNotFoundError`` nor skip: the failure says which program and how to get it
(``./dev/test`` installs them). Checked by running pytest on small tests with PATH
emptied, through the hooks ``tests/conftest.py`` uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import tools

TESTS_DIR = Path(__file__).resolve().parent

CONFTEST = f"""\
import sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from support.missing_plugin import (
    pytest_report_header, pytest_runtest_call, pytest_runtest_setup,
)
"""
TESTS = """\
import subprocess
import pytest
from support import tools


def test_runs_zsh():
    subprocess.run(["zsh", "-c", "true"], check=True)


@pytest.fixture
def compiler():
    return tools.require("gcc")


def test_needs_gcc(compiler):
    pass


def test_missing_file_is_not_a_program(tmp_path):
    (tmp_path / "absent.txt").read_text()
"""


def run_inner(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_inner.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, PATH=str(tmp_path / "empty-bin"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )


def test_missing_program_fails_with_its_name_and_the_fix(tmp_path: Path) -> None:
    proc = run_inner(tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out
    # A test fails; a fixture that needs the program is a setup error. Never a skip.
    assert "2 failed, 1 error in" in out and "skipped" not in out, out
    assert "MISSING PROGRAMS" in out and "zsh" in out  # named before the first test
    for name in ("zsh", "gcc"):
        assert tools.missing_message(name) in " ".join(out.split()), out
    # The program case carries no traceback; a missing data file stays a real error.
    assert "_execute_child" not in out
    assert "FileNotFoundError" in out and "absent.txt" in out


def test_missing_message_names_the_package() -> None:
    message = tools.missing_message("debootstrap")
    assert "debootstrap is not installed" in message
    assert "apt-get install debootstrap" in message and "./dev/test" in message
