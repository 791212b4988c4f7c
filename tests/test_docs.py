"""The documentation site builds with warnings as errors, and its CLI reference is current.

The reference page (docs/cli.md, written by dev/mkdocs_cli.py) is checked in the
built HTML, as a reader sees it: every option and example of every command, and no
internal value (click's ``Sentinel.UNSET``) in place of a default.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from portpack.cli.commands import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def page_text(site: Path, page: str) -> str:
    """The text of a built page without tags, entities decoded."""
    markup = (site / page / "index.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def click_commands() -> list[tuple[str, click.Command]]:
    """The click commands (unpack parses its own arguments: see its test below)."""
    return [(n, c) for n, c in cli.commands.items() if c.add_help_option]


def test_reference_shows_no_internal_values(site: Path) -> None:
    text = page_text(site, "cli")
    for leak in ("Sentinel", "UNSET", "<function", "object at 0x"):
        assert leak not in text, f"{leak!r} on the command reference page"


def test_reference_lists_every_option_with_its_default(site: Path) -> None:
    text = page_text(site, "cli")
    assert click_commands(), "no click commands found"
    for name, command in click_commands():
        assert f"portpack {name}" in text
        ctx = click.Context(command, info_name=name, **command.context_settings)
        for param in command.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or not isinstance(param, click.Option):
                continue
            for option in (*param.opts, *param.secondary_opts):
                assert option in text, f"portpack {name} {option}"
            # The help and the default as --help prints them, words unchanged.
            assert " ".join(record[1].split()) in " ".join(text.split()), record


def test_reference_shows_every_example(site: Path) -> None:
    text = " ".join(page_text(site, "cli").split())
    examples = 0
    for name, command in click_commands():
        lines = (command.epilog or "").splitlines()
        for line in lines[lines.index("Examples:") + 1 :] if "Examples:" in lines else []:
            assert " ".join(line.split()) in text, f"portpack {name} example: {line}"
            examples += 1
    assert examples >= len(click_commands())


def test_reference_has_unpack_help_as_it_prints(site: Path) -> None:
    text = " ".join(page_text(site, "cli").split())
    out = subprocess.run(
        [sys.executable, "-m", "portpack", "unpack", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, COLUMNS="100"),
    ).stdout
    options = set(re.findall(r"(?<![\w-])--[a-z][\w-]+", out))
    assert "--output-directory" in options
    for option in options:
        assert option in text, f"portpack unpack {option}"


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run ends with exactly the test command of README.md's Tests section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Tests", 1)[1].split("\n## ", 1)[0]
    (command,) = re.findall(r"```(?:bash|sh)\n(.+?)\n```", section, re.DOTALL)
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip()]
    assert shlex.split(lines[-1]) == shlex.split(command)
