"""The documentation site builds with warnings as errors, and its CLI reference is current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path: Path) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    reference = (tmp_path / "cli" / "index.html").read_text()
    for command in (
        "portpack lock",
        "portpack pack",
        "portpack verify",
        "--lockfile",
        "--virtual-package",
    ):
        assert command in reference, command


def test_unpack_options_are_documented() -> None:
    """docs/cli.md describes portpack unpack by hand: every option must be there."""
    from portpack.unpack_cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text()
    for action in build_parser()._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert f"`{option}`" in text, option
