"""Shared pytest fixtures, and a clear failure when a program a test runs is missing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
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
from support.ociregistry import Registry, running_registry  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Let pytest's clean-up of old temporary directories get through deep trees.

    Before 3.12, ``shutil.rmtree`` recurses once per directory level (Debian 12's
    python3 is 3.11.2); the tests of deep paths leave trees deeper than the default
    recursion limit, and removing them at the end of a later session raised
    ``RecursionError`` after every test had passed.
    """
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))


@pytest.fixture(scope="session")
def fixture_channel() -> Path:
    """The offline fixture channel (tests/support/channel.py), built once per machine.

    It lives in the shared cache: treat it as read-only.
    """
    return cached_fixture_channel()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real OCI registry on 127.0.0.1 (tests/support/ociregistry.py), one per module."""
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg
