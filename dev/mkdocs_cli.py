"""mkdocs hook: the command reference (docs/cli.md) written from the commands themselves.

``<!-- portpack-cli-reference -->`` in a page becomes one section per ``portpack``
command: its description, usage, a table of its options with the help and default
exactly as ``--help`` prints them (click's own help records, so an unset default is
never shown as a sentinel), and its examples. A command that parses its own
arguments (``portpack unpack``, which runs without click) gets its ``--help`` output
as it is. Configured in mkdocs.yml (``hooks:``).
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import click

MARKER = "<!-- portpack-cli-reference -->"
PROG = "portpack"
WIDTH = 100
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, "\n".join(reference()))


def reference() -> Iterator[str]:
    """The Markdown of every command of ``portpack``."""
    from portpack.cli.commands import cli

    root = _context(cli, PROG, None)
    yield from _description(cli.help or "")
    yield from _text_block(cli.get_usage(root))
    yield "| command | what it does |"
    yield "|---|---|"
    for name, command in cli.commands.items():
        summary = _escape(command.get_short_help_str(WIDTH))
        yield f"| [`{PROG} {name}`](#{PROG}-{name}) | {summary} |"
    yield ""
    for name, command in cli.commands.items():
        yield f"## `{PROG} {name}`"
        yield ""
        if command.get_help_option(_context(command, name, root)) is None:
            yield from _external_help(name)
        else:
            yield from _command(name, command, root)


def _command(name: str, command: click.Command, root: click.Context) -> Iterator[str]:
    ctx = _context(command, name, root)
    yield from _description(command.help or "")
    yield from _text_block(command.get_usage(ctx))
    rows = [p.get_help_record(ctx) for p in command.get_params(ctx)]
    options = [row for row in rows if row is not None and row[0].startswith("-")]
    if options:
        yield "| option | meaning |"
        yield "|---|---|"
        for names, help_text in options:
            yield f"| `{names}` | {_escape(help_text)} |"
        yield ""
    if command.epilog:
        yield from _description(command.epilog)


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """The context ``--help`` runs in (the command's own settings: ``-h``, widths)."""
    settings = {**command.context_settings, "max_content_width": WIDTH, "terminal_width": WIDTH}
    return click.Context(command, info_name=name, parent=parent, **settings)


def _external_help(name: str) -> Iterator[str]:
    """The ``--help`` output of a command that parses its own arguments."""
    env = dict(os.environ, COLUMNS=str(WIDTH), NO_COLOR="1", TERM="dumb")
    proc = subprocess.run(
        [sys.executable, "-m", PROG, name, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    yield from _text_block(proc.stdout)


def _description(text: str) -> Iterator[str]:
    """Help text as Markdown: click's ``\\b`` paragraphs stay preformatted."""
    for paragraph in re.split(r"\n\s*\n", inspect.cleandoc(text)):
        if paragraph.startswith("\b"):
            yield from _text_block(paragraph[1:])
        elif paragraph.strip():
            yield _escape(" ".join(paragraph.split()))
            yield ""


def _text_block(text: str) -> Iterator[str]:
    yield "```text"
    yield from textwrap.dedent(text.strip("\n")).rstrip().splitlines()
    yield "```"
    yield ""


def _escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
