"""What both command-line front ends share: error reporting (standard library only)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from portpack.errors import PortpackError, UsageError
from portpack.progress import Reporter

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def plural(count: int, noun: str) -> str:
    """``"1 package"``, ``"2 packages"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class StderrReporter(Reporter):
    """Prints warnings to stderr (progress display arrives with the fetcher work)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def warning(self, message: str) -> None:
        print(f"portpack: warning: {message}", file=sys.stderr)


def run_reporting_errors(func: Callable[[], T], debug: bool) -> T:
    """Run ``func``; turn portpack errors into a message and an exit status."""
    try:
        return func()
    except PortpackError as exc:
        if debug:
            import traceback  # only with --debug

            traceback.print_exc()
        print(f"portpack: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(exc.hint, file=sys.stderr)
        raise SystemExit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR) from None
    except KeyboardInterrupt:
        print("portpack: interrupted; nothing was left behind", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
