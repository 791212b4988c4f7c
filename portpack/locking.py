"""``lock``: solve specs (from the command line or a manifest) into a pixi-format lockfile."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import outside
from ._platform import current_platform
from .auth import strip_credentials
from .errors import UsageError
from .lockfile import LockedEnvironment, read_lock, records_to_json, write_lock
from .manifest import Manifest, find_manifest, read_manifest

if TYPE_CHECKING:
    import rattler

    from .netconfig import NetworkConfig

DEFAULT_CHANNELS = ("conda-forge",)
LOCK_NAME = "pixi.lock"


@dataclass
class Request:
    """What to solve: specs, channels and platforms, from arguments and/or a manifest."""

    specs: list[str]
    channels: list[str]
    platforms: list[str]
    manifest: Manifest | None = None

    def specs_for(self, platform: str) -> list[str]:
        extra = self.manifest.target_specs.get(platform, []) if self.manifest else []
        return self.specs + extra


def make_request(
    specs: Sequence[str] = (),
    channels: Sequence[str] = (),
    platforms: Sequence[str] = (),
    manifest: str | os.PathLike[str] | None = None,
) -> Request:
    """Combine arguments with a manifest: arguments add specs and replace channels/platforms."""
    parsed = read_manifest(Path(manifest)) if manifest is not None else None
    all_specs = (parsed.specs if parsed else []) + list(specs)
    chosen_channels = (
        list(channels) or (parsed.channels if parsed else []) or list(DEFAULT_CHANNELS)
    )
    chosen_platforms = (
        list(platforms) or (parsed.platforms if parsed else []) or [current_platform()]
    )
    return Request(all_specs, chosen_channels, chosen_platforms, parsed)


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
) -> Path:
    """Solve and write a lockfile in pixi's format; return its path.

    The network options are :func:`portpack.pack`'s.  Credentials (conda tokens,
    passwords in URLs) are stripped from every URL the lockfile records.
    """
    from .netconfig import load_network_config
    from .solve import resolve_channel, solve

    outside.check_file(output)  # before the solve: a bad -o is known at once
    network = load_network_config(
        config, auth_file=auth_file, ca_bundle=ca_bundle, insecure_hosts=insecure_hosts
    )
    request = make_request(specs, channels, platforms, manifest)
    if not request.specs_for(request.platforms[0]):
        raise UsageError("nothing to lock: give package specs or a manifest with dependencies")
    solved = {
        platform: _clean_records(
            solve(
                request.specs_for(platform), request.channels, platform, virtual_packages, network
            )
        )
        for platform in request.platforms
    }
    path = Path(output)
    with outside.atomic_path(path) as tmp:  # missing parents are created, as pack does
        write_lock(tmp, [_clean_channel(resolve_channel(c)) for c in request.channels], solved)
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
) -> tuple[str, list[dict[str, Any]]]:
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
    if environment != "default":
        raise UsageError(f"environment {environment!r} can only be packed from a lockfile")
    from .solve import solve

    request = make_request(specs, channels, [platform], manifest)
    return LockedEnvironment(
        platform,
        records_to_json(
            solve(
                request.specs_for(platform), request.channels, platform, virtual_packages, network
            )
        ),
    )
