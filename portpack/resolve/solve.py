"""Solving specs into locked records: the only module that calls py-rattler's solver."""

from __future__ import annotations

import asyncio
import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import rattler
import rattler.exceptions

from portpack._platform import current_platform
from portpack.errors import FetchError, SolveError, UsageError
from portpack.net.auth import redact
from portpack.net.config import NetworkConfig, solver_client, solver_environment

#: Virtual packages assumed when solving for another platform than this machine's
#: (pixi's defaults: glibc 2.28 and Linux 4.18 on Linux).
_DEFAULT_LINUX = {"__unix": "0", "__linux": "4.18", "__glibc": "2.28"}
_ARCHSPEC = {
    "linux-64": "x86_64",
    "linux-aarch64": "aarch64",
    "linux-ppc64le": "ppc64le",
    "osx-64": "x86_64",
    "osx-arm64": "arm64",
    "win-64": "x86_64",
}


_PRIORITIES = {
    "strict": rattler.ChannelPriority.Strict,
    "flexible": rattler.ChannelPriority.Flexible,
    "disabled": rattler.ChannelPriority.Disabled,
}


def resolve_channel(channel: str) -> rattler.Channel:
    """A channel from a name (``conda-forge``), a URL or a local directory."""
    if "://" in channel:
        return rattler.Channel(channel)
    path = Path(channel).expanduser()
    if channel.startswith((".", "/", "~")) or path.is_dir():
        if not path.is_dir():
            raise UsageError(f"channel directory {channel} does not exist")
        return rattler.Channel(str(path.resolve()))
    return rattler.Channel(channel)


#: conda's override variables, which win over what a manifest declares (as in pixi).
_OVERRIDES = {
    "__glibc": "CONDA_OVERRIDE_GLIBC",
    "__cuda": "CONDA_OVERRIDE_CUDA",
    "__osx": "CONDA_OVERRIDE_OSX",
    "__linux": "CONDA_OVERRIDE_LINUX",
    "__archspec": "CONDA_OVERRIDE_ARCHSPEC",
}


def virtual_packages(
    platform: str,
    extra: Sequence[str] = (),
    declared: Mapping[str, tuple[str, str]] | None = None,
) -> list[rattler.GenericVirtualPackage]:
    """Virtual packages for ``platform``: detected on this machine, or defaults.

    ``declared`` (a manifest's system requirements, ``__name -> (version, build)``)
    replaces them, except where a ``CONDA_OVERRIDE_*`` variable is set: that overrides
    both, as in conda and pixi.  ``extra`` entries (``NAME=VERSION[=BUILD]``, the
    command line's) add or replace packages last.
    """
    if platform == current_platform():
        overrides = rattler.VirtualPackageOverrides.from_env()
        found = {
            str(g.name.normalized): (str(g.version), str(g.build_string))
            for g in (v.into_generic() for v in rattler.VirtualPackage.detect(overrides))
        }
        source = dict.fromkeys(found, "this machine (or its CONDA_OVERRIDE_* variables)")
    else:
        found = _defaults(platform)
        source = dict.fromkeys(found, f"portpack's defaults for {platform}")
        for var, name in (("CONDA_OVERRIDE_GLIBC", "__glibc"), ("CONDA_OVERRIDE_CUDA", "__cuda")):
            value = os.environ.get(var)
            if value:
                found[name], source[name] = (value, "0"), var
            elif value == "" and name in found:
                del found[name]
    for name, (version, build) in (declared or {}).items():
        if _OVERRIDES.get(name, "") not in os.environ:
            found[name], source[name] = (version, build), "the manifest"
    for item in extra:
        name, _, rest = item.partition("=")
        name = name.lower()  # package names are compared normalized, as rattler does
        version, _, build = rest.partition("=")
        if not name.startswith("__") or not version:
            raise UsageError(f"--virtual-package expects __NAME=VERSION[=BUILD], got {item!r}")
        found[name], source[name] = (version, build or "0"), f"--virtual-package {item}"
    return [
        _generic(name, version, build, source[name])
        for name, (version, build) in sorted(found.items())
    ]


def _generic(name: str, version: str, build: str, source: str) -> rattler.GenericVirtualPackage:
    """One virtual package; a value rattler cannot read is a :class:`UsageError` naming
    where it came from (an option, a variable, the manifest)."""
    try:
        return rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString(build)
        )
    except Exception as exc:  # py-rattler's parse error types (and ValueError)
        raise UsageError(
            f"{source}: virtual package {name} {version} (build {build!r}) is not valid: {exc}"
        ) from None


def _defaults(platform: str) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    if platform.startswith("linux-"):
        found = {k: (v, "0") for k, v in _DEFAULT_LINUX.items()}
    elif platform.startswith("osx-"):
        found = {"__unix": ("0", "0"), "__osx": ("11.0" if "arm" in platform else "10.13", "0")}
    elif platform.startswith("win-"):
        found = {"__win": ("0", "0")}
    if platform in _ARCHSPEC:
        found["__archspec"] = ("1", _ARCHSPEC[platform])
    return found


def solve(
    specs: Sequence[str],
    channels: Sequence[str],
    platform: str,
    extra_virtual: Sequence[str] = (),
    network: NetworkConfig | None = None,
    *,
    declared_virtual: Mapping[str, tuple[str, str]] | None = None,
    constraints: Sequence[str] = (),
    channel_priority: str = "strict",
    strategy: str = "highest",
    exclude_newer: datetime.datetime | None = None,
) -> list[rattler.RepoDataRecord]:
    """Solve ``specs`` against ``channels`` for ``platform`` (plus ``noarch``).

    ``network`` (credentials file, mirrors, proxies, TLS) shapes py-rattler's client.
    ``declared_virtual`` are a manifest's virtual packages (see :func:`virtual_packages`);
    ``constraints``, ``channel_priority`` (strict, flexible, disabled), ``strategy``
    (highest, lowest, lowest-direct) and ``exclude_newer`` are pixi's settings of the
    same names.
    """
    if not specs:
        raise UsageError("nothing to lock: give package specs or a manifest with dependencies")
    network = network or NetworkConfig()
    mirrors = _s3_mirrors(channels, platform, network)
    resolved = [resolve_channel(str(mirrors.get(c, c))) for c in channels]
    client = solver_client(network)
    gateway = rattler.Gateway(client=client) if client is not None else None
    channels = [redact(c) for c in channels]  # for messages: never show a token
    try:
        with solver_environment(network):
            solved = asyncio.run(
                rattler.solve(
                    resolved,
                    list(specs),
                    gateway=gateway,
                    platforms=[platform, "noarch"],  # type: ignore[list-item]
                    virtual_packages=virtual_packages(platform, extra_virtual, declared_virtual),
                    constraints=list(constraints) or None,
                    channel_priority=_PRIORITIES[channel_priority],
                    strategy=strategy,  # type: ignore[arg-type]
                    exclude_newer=exclude_newer,
                )
            )
        return _restore_s3(solved, mirrors)
    except UsageError:
        raise
    except (rattler.exceptions.GatewayError, rattler.exceptions.FetchRepoDataError) as exc:
        raise FetchError(
            f"cannot fetch the package index of {', '.join(channels)} for {platform}:\n"
            f"{redact(str(exc))}",
            hint="Check the channel URL and the network (proxy, credentials with --auth-file).",
        ) from exc
    except rattler.exceptions.InvalidMatchSpecError as exc:
        raise UsageError(f"invalid package spec in {' '.join(specs)}: {exc}") from exc
    except Exception as exc:  # the solver's own error types vary across py-rattler releases
        raise SolveError(
            f"cannot solve {' '.join(specs)} for {platform} from {', '.join(channels)}:\n"
            f"{redact(str(exc))}"
        ) from exc


def _s3_mirrors(channels: Sequence[str], platform: str, network: NetworkConfig) -> dict[str, Path]:
    """Local copies of the repodata of the ``s3://`` channels (py-rattler 0.28 cannot
    read them), in the cache: channel URL -> directory channel."""
    found = [c for c in channels if c.lower().startswith("s3://")]
    if not found:
        return {}
    from portpack.net.cache import default_cache_dir
    from portpack.net.s3 import mirror_channel

    root = default_cache_dir() / "s3-repodata"
    return {c: mirror_channel(c, [platform, "noarch"], network, root) for c in found}


def _restore_s3(
    records: list[rattler.RepoDataRecord], mirrors: Mapping[str, Path]
) -> list[rattler.RepoDataRecord]:
    """Records solved from an S3 mirror with their ``s3://`` URL and channel (as pixi
    writes them: ``s3://bucket/path/<subdir>/<fn>``)."""
    if not mirrors:
        return records
    from portpack.net.s3 import restore_url

    for record in records:
        for channel, local in mirrors.items():
            url = restore_url(str(record.url), local, channel)
            if url != str(record.url):
                record.url = url
                record.channel = channel.rstrip("/")
                break
    return records
