"""Shared pytest fixtures, and a clear failure when a program a test runs is missing."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Generator
from pathlib import Path

import pytest

# tests/ is not a package; make ``support`` importable under any --import-mode.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from support import tools  # noqa: E402
from support.channel import cached_fixture_channel  # noqa: E402


@pytest.fixture(scope="session")
def fixture_channel() -> Path:
    """The offline fixture channel (tests/support/channel.py), built once per machine.

    It lives in the shared cache: treat it as read-only.
    """
    return cached_fixture_channel()


def pytest_report_header() -> list[str]:
    """Name the missing programs before the first test runs."""
    absent = tools.missing()
    if not absent:
        return []
    names = ", ".join(absent)
    return [f"MISSING PROGRAMS (tests that run them fail): {names}; ./dev/test installs them"]


def missing_program(exc: BaseException) -> str | None:
    """The program whose absence raised *exc* (subprocess could not start it), or None."""
    if isinstance(exc, tools.MissingTool):
        return exc.name
    if not isinstance(exc, FileNotFoundError) or not isinstance(exc.filename, str):
        return None
    frames = traceback.extract_tb(exc.__traceback__)
    if not any(f.name == "_execute_child" and f.filename.endswith("subprocess.py") for f in frames):
        return None
    name = exc.filename
    if os.sep in name and os.path.exists(name):
        return None  # the program is there; something else is missing
    return os.path.basename(name)


def _fail_on_missing_program() -> Generator[None, object, object]:
    try:
        return (yield)
    except (FileNotFoundError, tools.MissingTool) as exc:
        name = missing_program(exc)
        if name is None:
            raise
        pytest.fail(tools.missing_message(name), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fail_on_missing_program())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fail_on_missing_program())
