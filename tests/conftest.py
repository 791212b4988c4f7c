"""Shared pytest fixtures, and a clear failure when a program a test runs is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/ is not a package; make ``support`` importable under any --import-mode.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from support.channel import cached_fixture_channel  # noqa: E402
from support.missing_plugin import (  # noqa: E402, F401  (hooks, found by name)
    pytest_report_header,
    pytest_runtest_call,
    pytest_runtest_setup,
)


@pytest.fixture(scope="session")
def fixture_channel() -> Path:
    """The offline fixture channel (tests/support/channel.py), built once per machine.

    It lives in the shared cache: treat it as read-only.
    """
    return cached_fixture_channel()
