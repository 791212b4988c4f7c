"""``portpack diff``: what changes from one environment or archive to another."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from portpack.cli.common import plural, run_reporting_errors
from portpack.cli.options import CONTEXT, source_options

if TYPE_CHECKING:
    from portpack.remote.options import SourceOptions


@click.command(
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack diff /app/env app-1.5.tar          # what 'unpack --update' would do
  portpack diff app-1.4.tar app-1.5.tar       # between two archives
  portpack diff https://host/app-1.4.tar oci://host/envs/app:1.5 --json""",
)
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@source_options
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def diff(
    old: str,
    new: str,
    as_json: bool,
    source: SourceOptions,
    debug: bool,
) -> None:
    """Compare the packages of OLD and NEW: each an environment directory or an archive
    (a file, a --directory-only folder, an http(s):// URL or an oci:// reference; only
    the archive's metadata is read). From an environment to an archive it shows what
    'portpack unpack ARCHIVE --update' would do. Exit status 0 when they hold the same
    packages, 1 when they differ."""
    from portpack.unpacker.diffing import diff_with

    report = run_reporting_errors(lambda: diff_with(old, new, source), debug)
    doc = report.to_json()
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        _print(doc)
    raise SystemExit(0 if report.changes.identical else 1)


def _print(doc: dict[str, object]) -> None:
    for item in doc["added"]:  # type: ignore[attr-defined]
        click.echo(f"+ {item['name']} {item['version']} {item['build']}")
    for item in doc["removed"]:  # type: ignore[attr-defined]
        click.echo(f"- {item['name']} {item['version']} {item['build']}")
    for item in doc["changed"]:  # type: ignore[attr-defined]
        was, now = item["old"], item["new"]
        click.echo(
            f"~ {item['name']} {was['version']} {was['build']} -> {now['version']} {now['build']}"
        )
    update = doc.get("update")
    if isinstance(update, dict):
        click.echo(
            f"unpack --update would install {plural(len(update['install']), 'package')}, "
            f"reuse {len(update['reuse'])} and remove {len(update['remove'])}"
        )
        for name, why in update["reinstall"].items():
            click.echo(f"  reinstall {name}: {why}")
        for item in update["modified"]:
            click.echo(f"  changed locally (refused without --force): {item}")
        for item in update["unowned"]:
            click.echo(f"  no package owns (kept): {item}")
    unchanged = len(doc["unchanged"])  # type: ignore[arg-type]
    click.echo(f"{unchanged} unchanged" + ("; identical" if doc["identical"] else ""))
