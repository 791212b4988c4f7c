"""``portpack unpack``: the command line of the unpacker, on the standard library only.

It is also what a self-extracting archive runs on a target without portpack.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from ._cli_common import StderrReporter, plural, run_reporting_errors
from ._version import __version__
from .activation import DEFAULT_SHELL, SHELLS, source_command

EPILOG = """examples:
  portpack unpack env.tar -o /app          # creates /app/env and /app/activate.sh
  cat env.tar | portpack unpack - -o /app  # from a pipe
  . /app/activate.sh                       # then use the environment
"""
SFX_EPILOG = """examples:
  sh {prog} -o /app          # creates /app/env and /app/activate.sh
  sh {prog} -o /srv -e web   # creates /srv/web and /srv/activate.sh
  . /app/activate.sh         # then use the environment
"""


def build_parser(
    prog: str = "portpack unpack", *, self_extracting: bool = False
) -> argparse.ArgumentParser:
    """The unpack options, shared with the self-extracting archive (which has no
    ``archive`` argument: it unpacks itself)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Unpack a portpack archive into a new conda environment "
        "(OUTPUT_DIRECTORY/ENV_NAME) and write OUTPUT_DIRECTORY/activate.sh.",
        epilog=SFX_EPILOG.format(prog=prog) if self_extracting else EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if not self_extracting:
        parser.add_argument(
            "archive",
            nargs="?",
            default="environment.tar",
            help="the archive; '-' reads standard input (default: environment.tar)",
        )
    parser.add_argument(
        "-o", "--output-directory", default=".", help="where to create the environment (default: .)"
    )
    parser.add_argument(
        "-e", "--env-name", default="env", help="name of the environment directory (default: env)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing environment once the new one is complete",
    )
    parser.add_argument(
        "--run-link-scripts",
        action="store_true",
        help="run the packages' post-link scripts (off by default)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse symlinks that point outside the environment"
    )
    parser.add_argument(
        "-s",
        "--shell",
        default=DEFAULT_SHELL,
        choices=[*SHELLS, "nushell"],
        help="shell of the activation script: activate.sh (bash, zsh), activate.fish, "
        "activate.xsh (xonsh) or activate.nu (default: bash)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"portpack {__version__}")
    return parser


def _interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM: stop the unpack; a second signal must not cut its clean-up short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is _interrupted:
            signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _handle_signals() -> None:
    signal.signal(signal.SIGTERM, _interrupted)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if ignored
        signal.signal(signal.SIGINT, _interrupted)


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
        args.archive = archive
    _handle_signals()
    from .unpacking import unpack

    try:
        result = run_reporting_errors(
            lambda: unpack(
                args.archive,
                args.output_directory,
                args.env_name,
                force=args.force,
                run_link_scripts=args.run_link_scripts,
                strict=args.strict,
                shell=args.shell,
                reporter=StderrReporter(args.quiet),
            ),
            args.debug,
        )
    except SystemExit as exc:
        _leave(exc)
    if not args.quiet:
        wheels = f" and {plural(len(result.wheels), 'PyPI wheel')}" if result.wheels else ""
        print(f"Unpacked {plural(len(result.packages), 'package')}{wheels} into {result.prefix}")
        print(f"Activate it with: {source_command(args.shell)} {result.activation_script}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
