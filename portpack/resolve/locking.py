"""``lock``: solve specs (from the command line or a manifest) into a pixi-format lockfile."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portpack import outside
from portpack._platform import current_platform
from portpack.conda.record import PackageRecord
from portpack.errors import SolveError, UsageError
from portpack.net.auth import strip_credentials
from portpack.resolve.lockfile import LockedEnvironment, package_records, read_lock, write_lock
from portpack.resolve.manifest import DEFAULT_ENVIRONMENT, Solvable, find_manifest, read_manifest

if TYPE_CHECKING:
    import rattler

    from portpack.net.config import NetworkConfig

DEFAULT_CHANNELS = ("conda-forge",)
LOCK_NAME = "pixi.lock"


def solvables(
    specs: Sequence[str] = (),
    channels: Sequence[str] = (),
    platforms: Sequence[str] = (),
    manifest: str | os.PathLike[str] | None = None,
    environment: str = DEFAULT_ENVIRONMENT,
) -> list[Solvable]:
    """What to solve per platform: a manifest's environment, plus arguments.

    Arguments add specs and replace channels and platforms; without any, the
    manifest's platforms (else this machine's) and channels (else conda-forge) are used.
    """
    parsed = read_manifest(Path(manifest)) if manifest is not None else None
    if parsed is None:
        if environment != DEFAULT_ENVIRONMENT:
            raise UsageError(f"environment {environment!r} needs a manifest or a lockfile")
        return [
            Solvable(environment, p, list(specs), [], list(channels) or list(DEFAULT_CHANNELS), {})
            for p in list(platforms) or [current_platform()]
        ]
    chosen = list(platforms) or [p.name for p in parsed.platforms_for(environment)]
    result = []
    for platform in chosen or [current_platform()]:
        solvable = parsed.solvable(environment, platform)
        solvable.specs += [s for s in specs if s not in solvable.specs]
        solvable.channels = list(channels) or solvable.channels or list(DEFAULT_CHANNELS)
        result.append(solvable)
    return result


def _solve(
    solvable: Solvable, virtual_packages: Sequence[str], network: NetworkConfig | None
) -> list[rattler.RepoDataRecord]:
    from portpack.resolve.solve import solve

    return solve(
        solvable.specs,
        solvable.channels,
        solvable.platform,
        virtual_packages,
        network,
        declared_virtual=solvable.virtual,
        constraints=solvable.constraints,
        channel_priority=solvable.channel_priority,
        strategy=solvable.strategy,
        exclude_newer=solvable.exclude_newer,
    )


def lock(
    specs: Sequence[str] = (),
    *,
    channels: Sequence[str] = (),
    platforms: Sequence[str] = (),
    manifest: str | os.PathLike[str] | None = None,
    output: str | Path = "portpack.lock",
    virtual_packages: Sequence[str] = (),
    auth_file: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    insecure_hosts: Sequence[str] = (),
    environment: str = DEFAULT_ENVIRONMENT,
) -> Path:
    """Solve and write a lockfile in pixi's format; return its path.

    ``environment`` names the manifest's environment to lock (its features composed
    as pixi composes them); it is written under that name.

    The network options are :func:`portpack.pack`'s.  Credentials (conda tokens,
    passwords in URLs) are stripped from every URL the lockfile records.
    """
    from portpack.net.config import load_network_config
    from portpack.resolve.solve import resolve_channel

    outside.check_file(output)  # before the solve: a bad -o is known at once
    network = load_network_config(
        config, auth_file=auth_file, ca_bundle=ca_bundle, insecure_hosts=insecure_hosts
    )
    wanted = solvables(specs, channels, platforms, manifest, environment)
    if not any(s.specs for s in wanted):
        raise UsageError("nothing to lock: give package specs or a manifest with dependencies")
    subdirs = [s.platform for s in wanted]
    for subdir in subdirs:
        if subdirs.count(subdir) > 1:
            raise UsageError(
                f"several platforms of the manifest are for {subdir}; a lockfile written by "
                "portpack holds one entry per subdir: choose one with --platform"
            )
    solved = {s.platform: _clean_records(_solve(s, virtual_packages, network)) for s in wanted}
    path = Path(output)
    channels_used = list(dict.fromkeys(c for s in wanted for c in s.channels))
    channels_clean = [_clean_channel(resolve_channel(c)) for c in channels_used]
    write_lock(path, channels_clean, solved, environment)  # creates missing parents, as pack
    return path


def _clean_channel(channel: rattler.Channel) -> rattler.Channel:
    """``channel`` without credentials (nothing secret is written to a lockfile)."""
    import rattler

    url = str(channel.base_url)
    clean = strip_credentials(url)
    return channel if clean == url else rattler.Channel(clean)


def _clean_records(records: list[rattler.RepoDataRecord]) -> list[rattler.RepoDataRecord]:
    """``records`` with their URLs and channels stripped of credentials."""
    for record in records:
        record.url = strip_credentials(str(record.url))
        if record.channel:
            record.channel = strip_credentials(str(record.channel))
    return records


def locked_records(
    specs: Sequence[str] = (),
    **options: Any,
) -> tuple[str, list[PackageRecord]]:
    """The platform and conda records of :func:`locked_environment` (its PyPI entries aside)."""
    locked = locked_environment(specs, **options)
    return locked.platform, locked.records


def locked_environment(
    specs: Sequence[str] = (),
    *,
    channels: Sequence[str] = (),
    manifest: str | os.PathLike[str] | None = None,
    lockfile: str | os.PathLike[str] | None = None,
    environment: str = "default",
    platform: str | None = None,
    relock: bool = False,
    virtual_packages: Sequence[str] = (),
    network: NetworkConfig | None = None,
) -> LockedEnvironment:
    """What to pack, from a lockfile, a manifest or specs (pixi-pack's rules).

    A manifest next to a ``pixi.lock`` uses that lock unless ``relock``; specs or a
    manifest without a lock are solved.  With nothing given, the current directory's
    manifest is used.
    """
    platform = platform or current_platform()
    if lockfile is not None:
        if specs or manifest is not None:
            raise UsageError("give either --lockfile or specs/--manifest, not both")
        return read_lock(Path(lockfile), environment, platform)
    if manifest is None and not specs:
        found = find_manifest(Path.cwd())
        if found is None:
            raise UsageError(
                "nothing to pack: give package specs, --manifest or --lockfile "
                "(no pixi.toml, pyproject.toml or environment.yml in the current directory)"
            )
        manifest = found
    if manifest is not None and not specs and not relock:
        lock_path = Path(manifest).parent / LOCK_NAME
        if lock_path.is_file():
            return read_lock(lock_path, environment, platform)
    (solvable,) = solvables(specs, channels, [platform], manifest, environment)
    if not solvable.specs:
        raise UsageError(
            f"nothing to pack: environment {environment!r} has no dependencies for "
            f"{solvable.platform}"
        )
    solved = _solve(solvable, virtual_packages, network)
    where = f"the solution for {solvable.platform}"
    return LockedEnvironment(solvable.platform, package_records(solved, where, SolveError))
