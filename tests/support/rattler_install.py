"""Solve against a local channel and install with py-rattler, safely.

py-rattler 0.28's ``rattler.install()`` segfaults at interpreter exit in about one run
of ten, so :func:`install_with_rattler` always installs in a child interpreter that
leaves with ``os._exit(0)``. It takes solved records (objects or their JSON dicts) or
a rattler lock file and is meant for differential tests against portpack's installer.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rattler

PLATFORMS = ("linux-64", "noarch")

RecordLike = rattler.RepoDataRecord | Mapping[str, Any]

# Runs in the child: argv = [params.json]. Records are rebuilt from their JSON.
_CHILD = r"""
import asyncio, json, os, sys, tempfile, traceback
import rattler

def load_records(params):
    if params["lock"]:
        env = rattler.LockFile.from_path(params["lock"]).environment(params["environment"])
        platform = next(p for p in env.platforms() if p.name == params["platform"])
        return env.conda_repodata_records_for_platform(platform)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(params["records"]):
            path = os.path.join(tmp, f"{i}.json")
            with open(path, "w") as f:
                json.dump(data, f)
            package = rattler.PackageRecord.from_index_json(
                path, size=data.get("size"), sha256=data.get("sha256"), md5=data.get("md5")
            )
            records.append(
                rattler.RepoDataRecord(package, data["fn"], data["url"], data["channel"])
            )
    return records

try:
    params = json.load(open(sys.argv[1]))
    asyncio.run(rattler.install(
        load_records(params),
        params["prefix"],
        cache_dir=params["cache_dir"],
        execute_link_scripts=params["execute_link_scripts"],
        show_progress=False,
    ))
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


def solve(
    channel: Path | str,
    specs: Sequence[str],
    *,
    platforms: Sequence[str] = PLATFORMS,
) -> list[rattler.RepoDataRecord]:
    """Solve *specs* against one channel (a directory or URL) with the host's virtual
    packages."""
    source = rattler.Channel(str(channel))
    return asyncio.run(
        rattler.solve(
            [source],
            list(specs),
            platforms=[rattler.Subdir(name) for name in platforms],
            virtual_packages=rattler.VirtualPackage.detect(),
        )
    )


def install_with_rattler(
    records: Sequence[RecordLike] | Path,
    prefix: Path,
    *,
    cache_dir: Path | None = None,
    execute_link_scripts: bool = False,
    environment: str = "default",
    platform: str = "linux-64",
    timeout: float = 600,
) -> None:
    """Install into *prefix* with ``rattler.install`` in a child process.

    *records* is a list of ``RepoDataRecord`` (or dicts from ``record.to_json()``) or
    the path of a rattler lock file (its *environment* for *platform*). Packages are
    cached in *cache_dir*, by default a private temporary directory removed afterwards.
    Raises ``RuntimeError`` with the child's output if the install fails.
    """
    with tempfile.TemporaryDirectory(prefix="portpack-rattler-") as tmp:
        params = {
            "lock": str(records) if isinstance(records, Path) else None,
            "records": [] if isinstance(records, Path) else [_as_dict(r) for r in records],
            "environment": environment,
            "platform": platform,
            "prefix": str(prefix),
            "cache_dir": str(cache_dir or Path(tmp, "pkgs")),
            "execute_link_scripts": execute_link_scripts,
        }
        params_path = Path(tmp, "params.json")
        params_path.write_text(json.dumps(params))
        _run_child(params_path, timeout)


def records_to_json(records: Sequence[rattler.RepoDataRecord]) -> list[dict[str, Any]]:
    """JSON-ready dicts of *records* (what :func:`install_with_rattler` accepts too)."""
    return [_as_dict(record) for record in records]


def _as_dict(record: RecordLike) -> dict[str, Any]:
    if isinstance(record, rattler.RepoDataRecord):
        return dict(json.loads(record.to_json()))
    return dict(record)


def _run_child(params_path: Path, timeout: float) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(params_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"rattler.install failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
