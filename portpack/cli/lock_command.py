"""``portpack lock``: solve specs or a manifest into a lockfile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from portpack.cli.common import run_reporting_errors
from portpack.cli.options import CONTEXT, inputs_checked, network_options


@click.command(
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack lock python=3.12 requests httpx -o portpack.lock
  portpack lock -m pixi.toml -p linux-64 -p linux-aarch64
  portpack lock -c ./my-channel hello -o hello.lock""",
)
@click.argument("specs", nargs=-1)
@click.option(
    "-c",
    "--channel",
    "channels",
    multiple=True,
    help="Channel name, URL or local directory (repeatable; default conda-forge).",
)
@click.option(
    "-p",
    "--platform",
    "platforms",
    multiple=True,
    help="Platform to lock for (repeatable; default: this machine's).",
)
@click.option(
    "-m",
    "--manifest",
    type=click.Path(dir_okay=False),
    help="pixi.toml, pyproject.toml ([tool.pixi]) or environment.yml to read.",
)
@click.option(
    "-o",
    "--output",
    default="portpack.lock",
    show_default=True,
    help="Lockfile to write (pixi.lock format).",
)
@click.option(
    "--virtual-package",
    "virtual",
    multiple=True,
    metavar="__NAME=VER[=BUILD]",
    help="Assume this virtual package while solving (e.g. __glibc=2.17).",
)
@network_options
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def lock(
    specs: Sequence[str],
    channels: Sequence[str],
    platforms: Sequence[str],
    manifest: str | None,
    output: str,
    virtual: Sequence[str],
    debug: bool,
    **network: Any,
) -> None:
    """Solve SPECS (and/or a manifest) into a lockfile in pixi's format."""
    from portpack.resolve.locking import lock as do_lock

    path = run_reporting_errors(
        lambda: inputs_checked(do_lock, manifest=manifest, **network)(
            specs,
            channels=channels,
            platforms=platforms,
            manifest=manifest,
            output=output,
            virtual_packages=virtual,
            **network,
        ),
        debug,
    )
    click.echo(f"Wrote {path}")
