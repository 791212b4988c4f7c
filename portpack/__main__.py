"""Entry point of the ``portpack`` command.

``portpack unpack`` is dispatched before click is imported, so the unpacker
starts fast and needs only the standard library and zstandard.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``portpack`` command line."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "unpack":
        from .unpack_cli import main as unpack_main

        return unpack_main(args[1:])
    from .cli import cli

    return int(cli.main(args=args, prog_name="portpack", standalone_mode=True) or 0)


if __name__ == "__main__":
    sys.exit(main())
