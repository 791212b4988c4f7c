"""The ``portpack`` command line (click): it only translates options into library calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ._cli_common import plural, run_reporting_errors
from ._version import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_F = TypeVar("_F", bound=Callable[..., Any])


def _network_options(func: _F) -> _F:
    """Options shared by lock and pack: credentials, config file (mirrors), proxies, TLS."""
    options = [
        click.option(
            "--auth-file",
            type=click.Path(dir_okay=False),
            help="Credentials in rattler's JSON format, keyed by host (default: "
            "$RATTLER_AUTH_FILE, else ~/.rattler/credentials.json).",
        ),
        click.option(
            "--config",
            type=click.Path(dir_okay=False),
            help="Config file in pixi/rattler TOML: [mirrors], [proxy-config], "
            "[concurrency] downloads, [portpack] insecure-hosts and ca-bundle.",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(dir_okay=False),
            help="PEM file of CA certificates to trust (default: $SSL_CERT_FILE, else certifi's).",
        ),
        click.option(
            "--insecure-host",
            "insecure_hosts",
            multiple=True,
            metavar="HOST",
            help="Do not verify the TLS certificate of HOST (repeatable).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


_INPUT_NAMES = {
    "manifest": "manifest",
    "lockfile": "lockfile",
    "auth_file": "credentials file (--auth-file)",
    "config": "config file (--config)",
    "ca_bundle": "CA bundle (--ca-bundle)",
}


def _inputs_checked(func: _F, **paths: Any) -> _F:
    """Check that the files named on the command line exist; return ``func`` to call.

    A missing file is a usage error (exit 2), as a missing archive is for unpack.
    """
    from .errors import UsageError

    for key, what in _INPUT_NAMES.items():
        path = paths.get(key)
        if path is not None and not isinstance(path, (tuple, list)):
            import os

            if not os.path.exists(path):
                raise UsageError(f"{what} {path} does not exist")
            if os.path.isdir(path):
                raise UsageError(f"{what} {path} is a directory, not a file")
    return func


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
@_network_options
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
    from .locking import lock as do_lock

    path = run_reporting_errors(
        lambda: _inputs_checked(do_lock, manifest=manifest, **network)(
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


@cli.command(
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
    help="Archive to write; '-' writes to standard output "
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
@_network_options
@click.option(
    "--virtual-package",
    "virtual",
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
    specs: Sequence[str],
    channels: Sequence[str],
    manifest: str | None,
    lockfile: str | None,
    environment: str,
    platform: str | None,
    output: str | None,
    cache_dir: str | None,
    create_executable: bool,
    bootstrap_python: str | None,
    zstandard_wheel: str | None,
    wheel_index: str | None,
    relock: bool,
    concurrency: int | None,
    inject: Sequence[str],
    ignore_pypi_non_wheel: bool,
    no_cache: bool,
    prefix: str | None,
    unowned: str | None,
    virtual: Sequence[str],
    archive_format: str,
    directory_only: bool,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    verbose: int,
    debug: bool,
    **network: Any,
) -> None:
    """Fetch the locked packages and write one zstd-compressed archive.

    SPECS are match specs to solve, or (pixi-pack style) one manifest file or
    project directory whose pixi.lock is packed.
    """
    from .packing import pack as do_pack
    from .progress_term import TerminalReporter

    debug = debug or verbose > 1
    specs, manifest, lockfile = run_reporting_errors(
        lambda: _positional_project(specs, manifest, lockfile), debug
    )
    if as_json and not dry_run:
        raise click.UsageError("--json needs --dry-run")
    if dry_run:
        _dry_run(
            as_json,
            debug,
            specs,
            channels=channels,
            manifest=manifest,
            lockfile=lockfile,
            environment=environment,
            platform=platform,
            relock=relock,
            virtual_packages=virtual,
            archive_format=archive_format,
            reporter=TerminalReporter(quiet),
            inject=inject,
            ignore_pypi_non_wheel=ignore_pypi_non_wheel,
            prefix=prefix,
            unowned=unowned,
            create_executable=create_executable,
            bootstrap_python=bootstrap_python,
            zstandard_wheel=zstandard_wheel,
            wheel_index=wheel_index,
            **network,
        )
        return
    if output is None:
        output = (
            "environment"
            if directory_only
            else "environment.sh"
            if create_executable
            else "environment.tar"
        )

    result = run_reporting_errors(
        lambda: _inputs_checked(do_pack, manifest=manifest, lockfile=lockfile, **network)(
            specs,
            channels=channels,
            manifest=manifest,
            lockfile=lockfile,
            environment=environment,
            platform=platform,
            output=output,
            cache_dir=cache_dir,
            relock=relock,
            concurrency=concurrency,
            virtual_packages=virtual,
            archive_format=archive_format,
            reporter=TerminalReporter(quiet),
            inject=inject,
            ignore_pypi_non_wheel=ignore_pypi_non_wheel,
            no_cache=no_cache,
            prefix=prefix,
            unowned=unowned,
            create_executable=create_executable,
            bootstrap_python=bootstrap_python,
            zstandard_wheel=zstandard_wheel,
            wheel_index=wheel_index,
            directory_only=directory_only,
            **network,
        ),
        debug,
    )
    if verbose and not quiet:
        for dist in [*result.packages, *result.wheels]:
            click.echo(f"  {dist}", err=output == "-")
    if not quiet:
        wheels = f" and {plural(len(result.wheels), 'PyPI wheel')}" if result.wheels else ""
        where = "standard output" if output == "-" else result.output
        click.echo(
            f"Packed {plural(len(result.packages), 'package')}{wheels} for {result.platform} "
            f"into {where}",
            err=output == "-",
        )


def _positional_project(
    specs: Sequence[str], manifest: str | None, lockfile: str | None
) -> tuple[Sequence[str], str | None, str | None]:
    """pixi-pack's ``pixi-pack [MANIFEST_PATH]``: one positional argument that is a
    manifest file or a project directory names what to pack instead of a spec."""
    from pathlib import Path

    from .errors import UsageError

    if len(specs) != 1 or manifest is not None or lockfile is not None:
        return specs, manifest, lockfile
    arg = specs[0]
    path = Path(arg)
    looks_like_path = "/" in arg and "::" not in arg
    if path.is_dir():
        from .manifest import find_manifest

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


def _dry_run(as_json: bool, debug: bool, specs: Sequence[str], **options: Any) -> None:
    """``pack --dry-run``: print the plan (a table, or JSON); exit 1 if pack would refuse."""
    import json

    from .packing import plan

    result = run_reporting_errors(lambda: plan(specs, **options), debug)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_plan(result))
    if not result.ok:
        raise SystemExit(1)


def render_plan(plan: Any) -> str:
    """The human table of a :class:`~portpack.packing.PackPlan`."""
    from .progress_term import human_bytes

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


@cli.command(
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

    from .verify import verify as do_verify

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


@cli.command(
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack inspect env.tar
  portpack inspect environment.tar --json | jq '.packages[].name'""",
)
@click.argument("archive", default="environment.tar")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def inspect(archive: str, as_json: bool, debug: bool) -> None:
    """Show what ARCHIVE (portpack or pixi-pack) holds, without unpacking it.

    Platform, the version that packed it, every package with its size, the download
    and installed sizes, the python version and the oldest glibc it runs on.
    """
    import json

    from .inspect import inspect as do_inspect

    summary = run_reporting_errors(lambda: do_inspect(archive), debug)
    click.echo(json.dumps(summary.to_json(), indent=2) if as_json else summary.to_text())


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
    """Unpack a portpack or pixi-pack archive (a file, '-' or a --directory-only folder)
    into a new environment OUTPUT_DIRECTORY/ENV_NAME (see 'portpack unpack --help')."""
    from .unpack_cli import main

    raise SystemExit(main(list(args)))
