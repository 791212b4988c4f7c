"""Entry point of the ``portpack`` command.

``portpack unpack`` is dispatched before click is imported, so the unpacker
starts fast and needs only the standard library and zstandard.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``portpack`` command line; return its exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "unpack":
        from portpack.cli.unpack import main as unpack_main

        return unpack_main(args[1:])
    from portpack.cli.commands import cli

    try:
        cli.main(args=args, prog_name="portpack", standalone_mode=True)
    except SystemExit as exc:
        return _status(exc.code)
    return 0


def _status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def entry() -> None:
    """The console script: run :func:`main`, then leave without interpreter teardown.

    py-rattler 0.28 crashes now and then while the interpreter shuts down after
    its async calls (SIGSEGV/SIGABRT in about one run in five; reproduced with a
    bare ``asyncio.run(rattler.solve(...))``). After lock or pack, the work is
    done and flushed, so the process ends with ``os._exit`` and keeps the exit
    status it earned.
    """
    status = main()
    if "rattler" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
