"""``portpack pack``: fetch the locked packages and write one archive (or show the plan)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from portpack.cli.common import plural, run_reporting_errors
from portpack.cli.options import CONTEXT, inputs_checked, network_options

if TYPE_CHECKING:
    from portpack.packer.options import PackOptions
    from portpack.progress import Reporter


@click.command(
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack pack --lockfile portpack.lock -o env.tar
  portpack pack -m pixi.toml -e default -p linux-aarch64 -o env-arm.tar
  portpack pack python=3.12 requests -o - | ssh host portpack unpack - -o /app
  portpack pack --prefix ~/miniforge3/envs/analysis -o analysis.tar
  portpack pack -l portpack.lock --create-executable -o env.sh   # then: sh env.sh -o /app
  portpack pack path/to/project --dry-run   # pixi-pack style: the project's pixi.lock
  portpack pack -l pixi.lock --format pixi-pack --directory-only -o env-dir""",
)
@click.argument("specs", nargs=-1)
@click.option(
    "-c",
    "--channel",
    "channels",
    multiple=True,
    help="Channel to solve SPECS from (repeatable; default conda-forge).",
)
@click.option(
    "-m",
    "--manifest",
    type=click.Path(dir_okay=False),
    help="Manifest to pack (uses the pixi.lock beside it unless --relock).",
)
@click.option(
    "-l",
    "--lockfile",
    type=click.Path(dir_okay=False),
    help="Lockfile to pack (portpack's own or a pixi.lock).",
)
@click.option(
    "-e",
    "--environment",
    default="default",
    show_default=True,
    help="Environment of the lockfile to pack.",
)
@click.option("-p", "--platform", default=None, help="Platform to pack (default: this machine's).")
@click.option(
    "-o",
    "--output",
    "--output-file",
    "output",
    default=None,
    help="Archive to write; '-' writes to standard output, oci://HOST/REPO:TAG "
    "pushes it to an OCI registry "
    "[default: environment.tar, environment.sh with --create-executable, environment "
    "with --directory-only].",
)
@click.option(
    "--cache-dir",
    "--use-cache",
    "cache_dir",
    type=click.Path(file_okay=False),
    help="Package cache (default: the user cache directory).",
)
@click.option(
    "--directory-only",
    is_flag=True,
    help="Write the archive's content into the folder OUTPUT instead of one file "
    "(as pixi-pack's --directory-only); 'portpack unpack FOLDER' installs from it.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would be packed (packages, wheels, sizes from the lock, what is "
    "refused) and stop: nothing is downloaded or written.",
)
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option(
    "--create-executable",
    is_flag=True,
    help="Write a self-extracting archive: 'sh FILE -o DIR' unpacks it on a machine "
    "without Python or portpack.",
)
@click.option(
    "--bootstrap-python",
    metavar="SPEC|FILE",
    help="With --create-executable: the python that unpacks (a match spec solved from the "
    "channels, or a python .conda file) instead of the environment's own [default for "
    "environments without python >=3.10: 'python >=3.10'].",
)
@click.option(
    "--zstandard-wheel",
    type=click.Path(dir_okay=False, exists=True),
    help="With --create-executable: the zstandard wheel for the bootstrap python "
    "(offline packing) instead of one from the wheel index.",
)
@click.option(
    "--wheel-index",
    metavar="URL",
    help="With --create-executable: PEP 691 index to fetch the zstandard wheel from "
    "[default: https://pypi.org/simple].",
)
@click.option("--relock", is_flag=True, help="Solve the manifest again instead of using its lock.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel downloads [default: the config file's, else 50].",
)
@click.option(
    "-i",
    "--inject",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    metavar="FILE",
    help="Add a local .conda/.tar.bz2 package or .whl wheel (repeatable); the result must "
    "be complete.",
)
@click.option(
    "--ignore-pypi-non-wheel",
    is_flag=True,
    help="Skip the lock's PyPI packages that are not wheels (source distributions, "
    "directories, VCS URLs) with a warning, instead of refusing to pack.",
)
@click.option("--no-cache", is_flag=True, help="Download to a temporary directory, not the cache.")
@click.option(
    "--prefix",
    type=click.Path(file_okay=False),
    help="Pack this installed conda environment (its conda-meta records; each package from "
    "the conda/pixi package caches or its URL) instead of a lock.",
)
@click.option(
    "--unowned",
    type=click.Choice(["refuse", "ignore"]),
    default=None,
    help="With --prefix: refuse [default] files the records do not describe (no package "
    "owns them, or they were modified or removed), or ignore them and pack the packages as "
    "published.",
)
@network_options
@click.option(
    "--virtual-package",
    "virtual_packages",
    multiple=True,
    metavar="__NAME=VER[=BUILD]",
    help="Assume this virtual package while solving.",
)
@click.option(
    "--format",
    "archive_format",
    type=click.Choice(["portpack", "pixi-pack"]),
    default="portpack",
    show_default=True,
    help="portpack's zstd archive, or pixi-pack's plain tar (for pixi-unpack, "
    "'micromamba create -f environment.yml' or conda).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success, and no progress.")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="List the packages packed (-vv: also show tracebacks of errors).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def pack(
    dry_run: bool, as_json: bool, quiet: bool, verbose: int, debug: bool, **given: Any
) -> None:
    """Fetch the locked packages and write one zstd-compressed archive.

    SPECS are match specs to solve, or (pixi-pack style) one manifest file or
    project directory whose pixi.lock is packed.
    """
    from portpack.cli.terminal import TerminalReporter
    from portpack.packer.packing import pack_with

    debug = debug or verbose > 1
    if as_json and not dry_run:
        raise click.UsageError("--json needs --dry-run")
    options = run_reporting_errors(lambda: _options(given, dry_run), debug)
    reporter = TerminalReporter(quiet)
    if dry_run:
        _dry_run(options, reporter, as_json, debug)
        return
    result = run_reporting_errors(lambda: pack_with(options, reporter), debug)
    to_stdout = options.output.stream is not None  # messages go to stderr then
    if verbose and not quiet:
        for dist in [*result.packages, *result.wheels]:
            click.echo(f"  {dist}", err=to_stdout)
    if not quiet:
        wheels = f" and {plural(len(result.wheels), 'PyPI wheel')}" if result.wheels else ""
        where = "standard output" if to_stdout else result.output
        click.echo(
            f"Packed {plural(len(result.packages), 'package')}{wheels} for {result.platform} "
            f"into {where}",
            err=to_stdout,
        )
    if result.push is not None and not quiet:
        from portpack.cli.push_command import push_summary

        click.echo(push_summary(result.push))


def _options(given: dict[str, Any], dry_run: bool) -> PackOptions:
    """The command line's options, checked, with its two conventions resolved: a
    positional project (see :func:`_positional_project`) and ``-o -`` (standard output)."""
    from portpack.packer.options import PackOptions

    given = dict(given)
    given["specs"], given["manifest"], given["lockfile"] = _positional_project(
        given["specs"], given["manifest"], given["lockfile"]
    )
    given["output"] = None if dry_run else _target(given)
    return inputs_checked(PackOptions.from_keywords, **given)(given)


def _target(given: dict[str, Any]) -> str | BinaryIO:
    """Where ``-o`` says to write: a path (the default depends on the kind of output),
    or standard output for ``-``."""
    output = given["output"]
    if output == "-":
        return sys.stdout.buffer
    if output is not None:
        return str(output)
    if given["directory_only"]:
        return "environment"
    return "environment.sh" if given["create_executable"] else "environment.tar"


def _positional_project(
    specs: Sequence[str], manifest: str | None, lockfile: str | None
) -> tuple[Sequence[str], str | None, str | None]:
    """pixi-pack's ``pixi-pack [MANIFEST_PATH]``: one positional argument that is a
    manifest file or a project directory names what to pack instead of a spec."""
    from pathlib import Path

    from portpack.errors import UsageError

    if len(specs) != 1 or manifest is not None or lockfile is not None:
        return specs, manifest, lockfile
    arg = specs[0]
    path = Path(arg)
    looks_like_path = "/" in arg and "::" not in arg
    if path.is_dir():
        from portpack.resolve.manifest import find_manifest

        found = find_manifest(path)
        if found is not None:
            return (), str(found), None
        if (path / "pixi.lock").is_file():
            return (), None, str(path / "pixi.lock")
        raise UsageError(
            f"{arg} is a folder without pixi.toml, pyproject.toml, environment.yml or pixi.lock"
        )
    if path.name.endswith((".toml", ".yml", ".yaml")) and (path.is_file() or looks_like_path):
        return (), arg, None
    if path.name.endswith(".lock") and (path.is_file() or looks_like_path):
        return (), None, arg
    if looks_like_path and not path.exists():
        raise UsageError(f"{arg}: no such manifest or project folder")
    return specs, manifest, lockfile


def _dry_run(options: PackOptions, reporter: Reporter, as_json: bool, debug: bool) -> None:
    """``pack --dry-run``: print the plan (a table, or JSON); exit 1 if pack would refuse."""
    import json

    from portpack.packer.plan import plan_with

    result = run_reporting_errors(lambda: plan_with(options, reporter), debug)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_plan(result))
    if not result.ok:
        raise SystemExit(1)


def render_plan(plan: Any) -> str:
    """The human table of a :class:`~portpack.packer.packing.PackPlan`."""
    from portpack.units import human_bytes

    def size(value: int | None) -> str:
        return "?" if value is None else human_bytes(value)

    rows = [("NAME", "VERSION", "BUILD", "SIZE")]
    rows += [(p.name, p.version, p.build or "", size(p.size)) for p in plan.packages]
    rows += [(w.name, w.version, "(PyPI wheel)", size(w.size)) for w in plan.wheels]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{plan_head(plan)}:", ""]
    for name, version, build, shown in rows:
        left = f"{name:<{widths[0]}}  {version:<{widths[1]}}  {build:<{widths[2]}}"
        lines.append(f"  {left}  {shown:>{widths[3]}}")
    lines.append("")
    unknown = f" ({plural(plan.unknown_sizes, 'size')} unknown)" if plan.unknown_sizes else ""
    lines.append(f"Total: {human_bytes(plan.total_size)}{unknown}")
    for item in plan.skipped:
        lines.append(f"Skipped: {item.name} ({item.location}): {item.reason}")
    for item in plan.refused:
        lines.append(f"Refused: {item.name} ({item.location}): {item.reason}")
    if plan.refused:
        lines.append("pack would refuse this environment (see --ignore-pypi-non-wheel, --inject).")
    else:
        lines.append("Nothing was downloaded or written (--dry-run).")
    return "\n".join(lines)


def plan_head(plan: Any) -> str:
    """``Would pack 3 packages and 1 PyPI wheel for linux-64 (portpack format)``."""
    count = len(plan.packages)
    head = f"Would pack {count} package{'' if count == 1 else 's'}"
    if plan.wheels:
        head += f" and {len(plan.wheels)} PyPI wheel{'' if len(plan.wheels) == 1 else 's'}"
    return f"{head} for {plan.platform} ({plan.archive_format} format)"
