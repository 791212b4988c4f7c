"""pytest hooks: a test whose program is not installed fails with a clear message.

``subprocess`` raises ``FileNotFoundError`` when the program it should start is not
on PATH; builders raise :class:`.tools.MissingTool`. Either becomes a test failure
(never a skip) whose one paragraph names the program and how to get it
(:func:`.tools.missing_message`). ``tests/conftest.py`` imports these hooks.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Generator

import pytest

from . import tools


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


def pytest_report_header() -> list[str]:
    """Name the missing programs before the first test runs."""
    absent = tools.missing()
    if not absent:
        return []
    names = ", ".join(absent)
    return [f"MISSING PROGRAMS (tests that run them fail): {names}; ./dev/test installs them"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fail_on_missing_program())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _fail_on_missing_program())
