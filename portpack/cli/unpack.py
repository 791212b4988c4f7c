"""``portpack unpack``: the command line of the unpacker, on the standard library only.

It is also what a self-extracting archive runs on a target without portpack
(:func:`self_extracting_main`), and the only place ``-`` means standard input.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

from portpack._version import __version__
from portpack.cli.common import plural, run_reporting_errors
from portpack.install.activation import DEFAULT_SHELL, SHELLS, source_command

if TYPE_CHECKING:
    from portpack.unpacker.streaming import UnpackResult

#: The name messages give standard input (``-``).
STDIN_NAME = "<stdin>"

EPILOG = """\
Examples:
  portpack unpack env.tar -o /app          # creates /app/env and /app/activate.sh
  cat env.tar | portpack unpack - -o /app  # from a pipe
  portpack unpack environment/ -o /app     # a folder written by pack --directory-only
  portpack unpack https://host/envs/app-1.4.tar -o /app   # streamed, not saved
  portpack unpack oci://host/envs/app:1.4 -o /app         # or @sha256:<digest>
  portpack unpack app-1.5.tar -o /app --update  # keep unchanged packages' files
  . /app/activate.sh                       # then use the environment"""
SFX_EPILOG = """\
Examples:
  sh {prog} -o /app          # creates /app/env and /app/activate.sh
  sh {prog} -o /srv -e web   # creates /srv/web and /srv/activate.sh
  sh {prog} -o /app --update # keep unchanged packages' files
  . /app/activate.sh         # then use the environment"""
DESCRIPTION = (
    "Unpack ARCHIVE into a new conda environment OUTPUT_DIRECTORY/ENV_NAME and write "
    "OUTPUT_DIRECTORY/activate.sh. ARCHIVE is a portpack or pixi-pack archive, a "
    "self-extracting archive, a folder written by 'pack --directory-only', an "
    "http:// or https:// URL or an oci://HOST/REPOSITORY[:TAG|@DIGEST] reference "
    "(both streamed, never written to disk); '-' reads standard input "
    "[default: environment.tar]."
)
SFX_DESCRIPTION = (
    "Unpack this archive into a new conda environment OUTPUT_DIRECTORY/ENV_NAME and "
    "write OUTPUT_DIRECTORY/activate.sh."
)


class ClickStyleParser(argparse.ArgumentParser):
    """An argument parser whose help looks like the help of portpack's click commands
    (``Usage:``, the description, ``Options:`` as a two-column list, the examples),
    so that ``portpack unpack`` needs neither click nor its import time."""

    def __init__(self, *args: Any, usage_args: str = "[OPTIONS]", **kwargs: Any) -> None:
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self.usage_args = usage_args
        self.add_argument("-h", "--help", action="help", help="Show this message and exit.")

    def format_usage(self) -> str:
        return f"Usage: {self.prog} {self.usage_args}\n"

    def format_help(self) -> str:
        width = max(min(_columns(), 100) - 2, 50)
        out = [self.format_usage()]
        if self.description:
            out += ["\n", _wrap(self.description, width, "  ", "  "), "\n"]
        out += ["\nOptions:\n", _options(self._option_rows(), width)]
        if self.epilog:
            out += ["\n", "".join(f"  {line}\n" for line in self.epilog.splitlines())]
        return "".join(out)

    def _option_rows(self) -> list[tuple[str, str]]:
        rows = []
        # -h/--help comes last, as in click's help.
        for action in [*self._actions[1:], self._actions[0]]:
            if not action.option_strings:
                continue  # positional arguments are described in the description
            first = ", ".join(action.option_strings)
            if action.nargs != 0:
                if action.metavar is not None:
                    first += f" {action.metavar}"
                elif action.choices is not None:
                    first += " [" + "|".join(map(str, action.choices)) + "]"
                else:
                    first += f" {action.dest.upper()}"
            rows.append((first, action.help or ""))
        return rows


def _columns() -> int:
    import shutil  # argparse's own help formatter imports it as well

    return shutil.get_terminal_size().columns


def _wrap(text: str, width: int, first: str, rest: str) -> str:
    import textwrap

    return textwrap.fill(text, width, initial_indent=first, subsequent_indent=rest)


def _options(rows: list[tuple[str, str]], width: int) -> str:
    """A two-column list laid out as click's ``HelpFormatter.write_dl`` does it."""
    import textwrap  # only for --help

    first_col = min(max(len(first) for first, _ in rows), 30) + 2
    text_width = max(width - first_col - 2, 10)
    out = []
    for first, text in rows:
        line = f"  {first}"
        if len(first) <= first_col - 2:
            line += " " * (first_col - len(first))
        else:
            line += "\n" + " " * (first_col + 2)
        wrapped = textwrap.wrap(text, text_width) or [""]
        out.append(line + wrapped[0] + "\n")
        out += [" " * (first_col + 2) + more + "\n" for more in wrapped[1:]]
    return "".join(out)


def build_parser(
    prog: str = "portpack unpack", *, self_extracting: bool = False
) -> argparse.ArgumentParser:
    """The unpack options, shared with the self-extracting archive (which has no
    ``archive`` argument: it unpacks itself)."""
    parser = ClickStyleParser(
        prog=prog,
        usage_args="[OPTIONS]" if self_extracting else "[OPTIONS] [ARCHIVE]",
        description=SFX_DESCRIPTION if self_extracting else DESCRIPTION,
        epilog=SFX_EPILOG.format(prog=prog) if self_extracting else EPILOG,
    )
    if not self_extracting:
        parser.add_argument("archive", nargs="?", default="environment.tar")
    parser.add_argument(
        "-o",
        "--output-directory",
        default=".",
        metavar="DIRECTORY",
        help="Where to create the environment.  [default: .]",
    )
    parser.add_argument(
        "-e",
        "--env-name",
        default="env",
        metavar="TEXT",
        help="Name of the environment directory.  [default: env]",
    )
    _add_install_options(parser, self_extracting)
    if not self_extracting:
        _add_source_options(parser)
    _add_report_options(parser)
    return parser


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    """How to reach an http(s):// or oci:// archive."""
    parser.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="PEM CA bundle to trust instead of the system store ($SSL_CERT_FILE).",
    )
    parser.add_argument(
        "--auth-file",
        metavar="FILE",
        help="Credentials: rattler's JSON keyed by host, or a docker/containers auth.json.",
    )
    parser.add_argument(
        "--netrc", metavar="FILE", help="A .netrc for http(s) URLs [default: $NETRC, ~/.netrc]."
    )
    parser.add_argument(
        "--insecure-host",
        dest="insecure_hosts",
        action="append",
        default=[],
        metavar="HOST",
        help=(
            "Do not verify the TLS certificate of HOST[:PORT]; a registry there may also "
            "use plain HTTP, as with docker's insecure registries (repeatable)."
        ),
    )


def _add_install_options(parser: argparse.ArgumentParser, self_extracting: bool) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="Replace an existing environment once the new one is complete (with --update: "
        "replace files changed in it).",
    )
    what = "this archive" if self_extracting else "ARCHIVE"
    parser.add_argument(
        "--update",
        action="store_true",
        help=f"Bring the environment at OUTPUT_DIRECTORY/ENV_NAME to {what}, taking the "
        "files of unchanged packages from it; with --force, files changed in it are "
        "replaced (they are refused otherwise). Without an environment, a plain unpack.",
    )
    parser.add_argument(
        "--drop-unowned",
        action="store_true",
        help="With --update: leave out files no package owns (kept by default).",
    )
    parser.add_argument(
        "--run-link-scripts",
        action="store_true",
        help="Run the packages' post-link scripts (off by default).",
    )
    parser.add_argument(
        "--strict", action="store_true", help="Refuse symlinks that point outside the environment."
    )
    parser.add_argument(
        "-s",
        "--shell",
        default=DEFAULT_SHELL,
        choices=[*SHELLS, "nushell"],
        help="Shell of the activation script: activate.sh (bash, zsh), activate.fish, "
        "activate.xsh (xonsh) or activate.nu.  [default: bash]",
    )


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="Print nothing on success, and no progress."
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="List the packages installed (-vv: also show tracebacks of errors).",
    )
    parser.add_argument("--debug", action="store_true", help="Show tracebacks of errors.")
    parser.add_argument(
        "--version",
        action="version",
        version=f"portpack {__version__}",
        help="Show the version and exit.",
    )


def _interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM: stop the unpack; a second signal must not cut its clean-up short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is _interrupted:
            signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _handle_signals() -> dict[int, Any]:
    """Install :func:`_interrupted`; the handlers it replaced, to put back."""
    previous: dict[int, Any] = {signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupted)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if ignored
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupted)
    return previous


def _leave(exc: SystemExit) -> NoReturn:
    """Exit with ``exc``'s status, at once if a thread still waits on the input.

    After an error or an interrupt the archive reader may be blocked reading a pipe
    whose writer is still alive: the clean-up is done and reported, so the process
    ends here and no interpreter shutdown waits behind that read.
    """
    import threading

    code = exc.code if isinstance(exc.code, int) else 1
    if threading.active_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise exc


def main(
    argv: Sequence[str] | None = None, prog: str = "portpack unpack", archive: str | None = None
) -> int:
    """Run the unpacker; return the exit status.

    ``archive`` given: unpack that file and take no archive argument (a
    self-extracting archive runs this with its own path).
    """
    args = build_parser(prog, self_extracting=archive is not None).parse_args(argv)
    if archive is not None:
        # A path object, never a URL: the self-extractor's bootstrap has no http or ssl.
        args.archive = Path(archive)
    previous = _handle_signals()
    try:  # a caller in the same process gets its own handlers back
        try:
            result = run_reporting_errors(lambda: _unpack(args), args.debug or args.verbose > 1)
        except SystemExit as exc:
            _leave(exc)
        _print_result(args, result)
        return 0
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def _print_result(args: argparse.Namespace, result: UnpackResult) -> None:
    if args.verbose and not args.quiet:
        for dist in [*result.packages, *result.wheels]:
            print(f"  {dist}{' (reused)' if dist in result.reused else ''}")
    if not args.quiet:
        wheels = f" and {plural(len(result.wheels), 'PyPI wheel')}" if result.wheels else ""
        if result.updated:
            _print_update(result, wheels)
        else:
            print(
                f"Unpacked {plural(len(result.packages), 'package')}{wheels} into {result.prefix}"
            )
        print(f"Activate it with: {source_command(args.shell)} {result.activation_script}")


def _print_update(result: UnpackResult, wheels: str) -> None:
    """What ``--update`` did: reused, installed, removed; files kept, dropped, replaced."""
    print(
        f"Updated {result.prefix}: {plural(len(result.installed), 'package')}{wheels} "
        f"installed, {len(result.reused)} reused, {len(result.removed)} removed"
    )
    if result.copied_files:
        print(f"  {plural(result.copied_files, 'file')} of reused packages copied, not linked")
    for label, items in (
        ("replaced (changed locally)", result.replaced),
        ("kept (no package owns it)", result.unowned_kept),
        ("dropped (no package owns it)", result.unowned_dropped),
    ):
        for item in items:
            print(f"  {label}: {item}")


def _unpack(args: argparse.Namespace) -> UnpackResult:
    """Call the library's unpack; ``-`` is standard input, read here."""
    from portpack.cli.terminal import TerminalReporter
    from portpack.unpacker.streaming import unpack

    def run(archive: str | Path | BinaryIO) -> UnpackResult:
        return unpack(
            archive,
            args.output_directory,
            args.env_name,
            force=args.force,
            run_link_scripts=args.run_link_scripts,
            strict=args.strict,
            shell=args.shell,
            reporter=TerminalReporter(args.quiet),
            ca_bundle=getattr(args, "ca_bundle", None),
            auth_file=getattr(args, "auth_file", None),
            netrc_file=getattr(args, "netrc", None),
            insecure_hosts=getattr(args, "insecure_hosts", ()),
            update=getattr(args, "update", False),
            keep_unowned=not getattr(args, "drop_unowned", False),
        )

    if args.archive != "-":
        return run(args.archive)
    # Unbuffered, not sys.stdin.buffer: an interrupted unpack may exit while the
    # reader thread still waits in read(), and a BufferedReader's lock held by that
    # thread makes the interpreter abort at exit ("could not acquire lock for
    # <stdin> at interpreter shutdown").
    with open(sys.stdin.fileno(), "rb", buffering=0, closefd=False) as stdin:
        stdin.name = STDIN_NAME  # what messages call it (pixi-pack: file:///dev/stdin)
        return run(stdin)


def self_extracting_main(argv: Sequence[str] | None = None) -> int:
    """Run inside a self-extracting archive: ``argv`` is the file's path, then its options.

    The archive's sh header (``portpack/sfx_header.sh``) calls this with the bootstrap
    Python after extracting it.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("portpack: error: the self-extracting archive's path is missing", file=sys.stderr)
        return 2
    path = args[0]
    return main(args[1:], prog=os.path.basename(path) or path, archive=path)


if __name__ == "__main__":
    sys.exit(main())
