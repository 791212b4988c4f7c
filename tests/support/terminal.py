"""Run a command with standard error on a pseudo-terminal (for progress-line tests)."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def on_terminal(
    argv: Sequence[str | Path], cwd: Path, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """Run ``argv`` with standard error on a pseudo-terminal; return status and screen."""
    leader, follower = pty.openpty()
    with open(leader, "rb", buffering=0) as terminal:
        run = subprocess.Popen(
            [*map(str, argv)], stdout=subprocess.DEVNULL, stderr=follower, cwd=cwd, env=env
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = terminal.read(4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    return run.wait(), shown.decode()
