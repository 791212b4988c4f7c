"""``portpack verify`` and ``portpack inspect``: reports on an environment or an archive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from portpack.cli.common import run_reporting_errors
from portpack.cli.options import CONTEXT, source_options

if TYPE_CHECKING:
    from portpack.remote.options import SourceOptions


@click.command(
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack verify /app/env
  portpack verify /app/env --json | jq .modified""",
)
@click.argument("prefix", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def verify(prefix: str, as_json: bool, debug: bool) -> None:
    """Check every file of an unpacked environment against its conda-meta records.

    Exit status 0 when nothing is missing, modified or extra, 1 otherwise.
    """
    import dataclasses
    import json

    from portpack.install.verify import verify as do_verify

    report = run_reporting_errors(lambda: do_verify(prefix), debug)
    if as_json:
        doc = dataclasses.asdict(report) | {"prefix": str(report.prefix), "ok": report.ok}
        click.echo(json.dumps(doc, indent=2))
    else:
        for label, items in (
            ("missing", report.missing),
            ("modified", report.modified),
            ("extra", report.extra),
        ):
            for item in items:
                click.echo(f"{label}: {item}")
        status = "OK" if report.ok else "FAILED"
        click.echo(f"{status}: checked {report.checked} paths in {report.prefix}")
    raise SystemExit(0 if report.ok else 1)


@click.command(
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack inspect env.tar
  portpack inspect environment.tar --json | jq '.packages[].name'
  portpack inspect https://files.example.org/envs/app-1.4.tar
  portpack inspect oci://registry.example.org/envs/app:1.4   # manifest + config only""",
)
@click.argument("archive", default="environment.tar")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@source_options
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def inspect(
    archive: str,
    as_json: bool,
    source: SourceOptions,
    debug: bool,
) -> None:
    """Show what ARCHIVE (portpack or pixi-pack; a file, '-', an http(s):// URL or an
    oci:// reference) holds, without unpacking it.

    Platform, the version that packed it, every package with its size, the download
    and installed sizes, the python version and the oldest glibc it runs on.
    """
    import json
    import sys

    from portpack.cli.render import summary_text
    from portpack.unpacker.sources import inspect_with

    # "-": standard input (named "<stdin>" in the summary and in errors).
    given = sys.stdin.buffer if archive == "-" else archive
    summary = run_reporting_errors(lambda: inspect_with(given, source), debug)
    click.echo(json.dumps(summary.to_json(), indent=2) if as_json else summary_text(summary))
