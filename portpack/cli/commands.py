"""The ``portpack`` command line (click): it only translates options into library calls."""

from __future__ import annotations

from collections.abc import Sequence

import click

from portpack._version import __version__
from portpack.cli.diff_command import diff
from portpack.cli.lock_command import lock
from portpack.cli.options import CONTEXT
from portpack.cli.pack_command import pack
from portpack.cli.push_command import push
from portpack.cli.report_commands import inspect, verify


class _Group(click.Group):
    """A group whose command list shows each command's whole first paragraph."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            text = command.short_help or (command.help or "").split("\n\n")[0]
            rows.append((name, " ".join(text.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=_Group,
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack lock python=3.12 numpy -o portpack.lock     # solve into a lockfile
  portpack pack -l portpack.lock -o env.tar            # fetch and pack it
  portpack pack . --dry-run                            # what a pixi project would pack
  portpack unpack env.tar -o /app && . /app/activate.sh
  portpack COMMAND --help                              # every option of a command""",
)
@click.version_option(__version__, prog_name="portpack")
def cli() -> None:
    """Portable conda environments: lock, pack into one archive, unpack anywhere."""


@cli.command(
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack completion --shell bash > ~/.local/share/bash-completion/completions/portpack
  portpack completion --shell zsh > ~/.zfunc/_portpack     # with fpath+=~/.zfunc
  portpack completion --shell fish > ~/.config/fish/completions/portpack.fish""",
)
@click.option(
    "-s",
    "--shell",
    type=click.Choice(["bash", "zsh", "fish"]),
    required=True,
    help="Shell to complete in.",
)
def completion(shell: str) -> None:
    """Print the shell completion script for portpack."""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # every choice is one of click's shells
    click.echo(completer(cli, {}, "portpack", "_PORTPACK_COMPLETE").source())


@cli.command(
    context_settings={**CONTEXT, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def unpack(args: Sequence[str]) -> None:
    """Unpack a portpack or pixi-pack archive (a file, '-', a --directory-only folder,
    an http(s):// URL or an oci:// reference)
    into a new environment OUTPUT_DIRECTORY/ENV_NAME (see 'portpack unpack --help')."""
    from portpack.cli.unpack import main

    raise SystemExit(main(list(args)))


for _command in (lock, pack, push, verify, inspect, diff):
    cli.add_command(_command)
