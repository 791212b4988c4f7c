"""Where an unpack builds the environment: a hidden staging directory beside the prefix.

The environment is written into ``.<env>.portpack-<pid>-...`` with the final prefix
already in every placeholder, then moved into place, replacing only what
:func:`check_target` saw there (nothing, an empty directory, or with ``--force`` a
conda environment). Whatever fails or is interrupted, before or after the move,
puts back what was there and removes the staging directory; a killed run's
leftovers are removed by the next run (:func:`remove_stale_staging`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from portpack import outside
from portpack.errors import UsageError
from portpack.install.activation import SHELLS, script_name
from portpack.install.destination import Destination
from portpack.unpacker import preconditions

STAGING_MARK = outside.MARK

Filled = TypeVar("Filled")
Placed = TypeVar("Placed")


@dataclass
class Target:
    """What was at the prefix when the unpack checked it: the final move replaces only that."""

    path: Path
    kind: str
    """``"absent"``, ``"empty"`` (an empty directory) or ``"environment"`` (with --force)."""
    stat: os.stat_result | None = None


def check_target(prefix: Path, force: bool) -> Target:
    """What is at ``prefix``; refuse what an unpack must not replace."""
    try:
        st = os.lstat(prefix)
    except FileNotFoundError:
        return Target(prefix, "absent")
    except OSError as exc:
        raise outside.output_error(exc, prefix, "cannot look at") from None
    if stat.S_ISDIR(st.st_mode) and not _has_entries(prefix):
        return Target(prefix, "empty", st)  # replaced when the environment is complete
    if not force:
        raise UsageError(
            f"{prefix} already exists and is not empty",
            hint="Use --force to replace it, or choose another --output-directory/--env-name.",
        )
    if not preconditions.prefix_is_environment(str(prefix)):
        raise UsageError(f"refusing to replace {prefix}: it is not a conda environment")
    return Target(prefix, "environment", st)


def update_target(prefix: Path) -> Target:
    """The environment ``unpack --update`` replaces (read and checked by the caller)."""
    try:
        return Target(prefix, "environment", os.lstat(prefix))
    except OSError as exc:
        raise outside.output_error(exc, prefix, "cannot look at") from None


def _has_entries(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except OSError as exc:
        raise outside.output_error(exc, path, "cannot read the directory") from None


def build(
    target: Target,
    threads: int,
    fill: Callable[[Destination], Filled],
    placed: Callable[[Filled], Placed],
) -> tuple[Filled, Placed]:
    """Fill a staging directory beside ``target`` (``fill``), move it into place, then
    finish there (``placed``: link scripts, activation script); any failure puts back
    what was there. Afterwards the replaced environment (--force) is removed.
    """
    out, env_name = target.path.parent, target.path.name
    remove_stale_staging(out, env_name)
    staging: Path | None = None
    dest: Destination | None = None
    moved: os.stat_result | None = None
    try:  # from the moment the staging directory exists: an interrupt must remove it
        staging = outside.make_private_dir(out, env_name)
        staging.chmod(0o777 & ~_umask())
        dest = Destination(str(staging), threads=threads)
        filled = fill(dest)
        dest.close()
        staged = os.lstat(staging)
        _move_into_place(staging, target)
        moved = staged
        done = placed(filled)
    except BaseException:
        if dest is not None:
            dest.abort()
        if staging is None:  # interrupted between its mkdir and the assignment
            outside.remove_own_private_dirs(out, env_name)
        else:
            if moved is not None:
                _move_back(staging, target, moved)
            outside.remove_tree(staging)
        raise
    outside.remove_tree(staging)  # the replaced environment (--force), if any
    return filled, done


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_staging(out: Path, env_name: str) -> None:
    """Remove staging directories left by killed runs (their process is gone)."""
    for stem in (env_name, *(script_name(shell) for shell in SHELLS)):
        for path in out.glob(f".{stem}{STAGING_MARK}*"):
            pid = path.name[len(stem) + 1 + len(STAGING_MARK) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                if path.is_dir() and not path.is_symlink():
                    outside.remove_tree(path)
                else:
                    path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _move_into_place(staging: Path, target: Target) -> None:
    """Move the complete environment to the prefix, replacing only what was checked.

    Afterwards ``staging`` holds the replaced environment (--force), or nothing.
    """
    prefix = target.path
    try:
        if target.kind == "environment":
            assert target.stat is not None
            outside.exchange(staging, prefix)
            if not outside.same_file(staging, target.stat):
                outside.exchange(staging, prefix)  # put back what we did not check
                raise _changed(prefix, "was replaced by something else")
            return
        if target.kind == "empty":
            assert target.stat is not None
            if not outside.same_file(prefix, target.stat):
                raise _changed(prefix, "was replaced by something else")
            try:
                os.rmdir(prefix)
            except OSError:
                raise _changed(prefix, "is no longer empty") from None
        outside.rename_noreplace(staging, prefix)
    except FileExistsError:
        raise _changed(prefix, "appeared") from None
    except OSError as exc:
        raise outside.output_error(exc, prefix, "cannot move the environment to") from None


def _changed(prefix: Path, what: str) -> UsageError:
    return UsageError(
        f"{prefix} {what} while the environment was being unpacked; it was left as it is",
        hint="Nothing was replaced. Run again (with --force to replace an environment).",
    )


def _move_back(staging: Path, target: Target, placed: os.stat_result) -> None:
    """Undo :func:`_move_into_place` (a link script or the activation script failed)."""
    prefix = target.path
    if not outside.same_file(prefix, placed):
        return  # not ours any more: leave it
    try:
        if target.kind == "environment":
            outside.exchange(prefix, staging)  # the old environment back; ours to remove
            return
        outside.rename_noreplace(prefix, staging)
        if target.kind == "empty":
            os.mkdir(prefix)
    except OSError:
        pass  # the error being raised says what failed; this is best effort
