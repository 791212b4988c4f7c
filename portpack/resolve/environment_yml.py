"""conda's ``environment.yml``: ``name``, ``channels``, ``dependencies`` (match specs, read
leniently as conda reads them), ``prefix`` and ``platforms``.

``variables:`` and ``pip:`` sections are refused by name (portpack cannot set conda's
environment variables nor solve PyPI requirements); a spec's ``channel::`` is searched
too, as conda searches it, except conda's ``defaults``, which a spec cannot name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portpack.errors import ManifestError
from portpack.resolve import manifest_values as mv
from portpack.resolve.manifest_model import (
    DEFAULT_FEATURE,
    SUBDIRS,
    Feature,
    Manifest,
    Platform,
    Target,
)

_YML_KEYS = frozenset({"name", "channels", "dependencies", "prefix", "platforms"})


def read_environment_yml(path: Path) -> Manifest:
    """The manifest of a conda environment file (its one environment, ``default``)."""
    doc = _document(path)
    channels = [
        (mv.string(path, c, f"channels[{i}]"), 0)
        for i, c in enumerate(mv.array(path, doc.get("channels"), "channels"))
    ]
    channels = [c for c in channels if c[0] != "nodefaults"]
    specs = []
    for i, dep in enumerate(mv.array(path, doc.get("dependencies"), "dependencies")):
        spec, channel = _dependency(path, i, dep)
        if channel is not None and all(channel != c[0] for c in channels):
            channels.append((channel, 0))  # conda searches a spec's channel too
        specs.append(spec)
    platforms = [Platform(p, p) for p in mv.strings(path, doc.get("platforms", []), "platforms")]
    for platform in platforms:
        if platform.subdir not in SUBDIRS:
            raise ManifestError(f"{path}: platforms: unknown platform {platform.subdir!r}")
    default = Feature(DEFAULT_FEATURE, targets=[Target(None, {s: [s] for s in specs})])
    return Manifest(
        path=path,
        features={DEFAULT_FEATURE: default},
        channels=channels,
        platforms=platforms,
        conda_defaults=any(c[0] == "defaults" or c[0].startswith("pkgs/") for c in channels),
    )


def _document(path: Path) -> dict[Any, Any]:
    """The YAML document, refused when it holds what portpack cannot honour."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{path} is not a conda environment file")
    if doc.get("variables"):
        raise ManifestError(
            f"{path}: variables: (environment variables set by conda) are not supported",
            hint="Set them in an activation script of a package, or remove the section.",
        )
    unknown = [str(k) for k in doc if k not in _YML_KEYS and k != "variables"]
    if unknown:
        raise ManifestError(f"{path}: unknown key {unknown[0]!r} in a conda environment file")
    return doc


def _dependency(path: Path, i: int, dep: Any) -> tuple[str, str | None]:
    """One entry of ``dependencies``: its MatchSpec and the channel it names, if any."""
    import rattler

    if isinstance(dep, dict) and "pip" in dep:
        pip = dep["pip"] if isinstance(dep["pip"], list) else []
        raise ManifestError(
            f"{path}: pip dependencies are not supported yet "
            f"({', '.join(str(p) for p in pip) or 'an empty pip: section'})",
            hint="Remove the pip: section, or lock with pixi and pack the pixi.lock.",
        )
    if not isinstance(dep, str):
        raise ManifestError(f"{path}: dependencies[{i}]: cannot understand dependency {dep!r}")
    try:
        spec = rattler.MatchSpec(dep, strict=False)  # conda reads specs leniently
    except Exception as exc:  # py-rattler's parse error types
        raise ManifestError(f"{path}: dependencies[{i}]: invalid spec {dep!r}: {exc}") from exc
    channel = dep.split("::", 1)[0] if "::" in dep else None
    if channel is not None:
        base = channel.split("/")[0] if "://" not in channel else channel
        if base == "defaults" or channel.startswith("pkgs/"):
            raise ManifestError(
                f"{path}: dependencies[{i}]: {dep!r} names conda's defaults channels, "
                "which a spec cannot name one by one",
                hint="Write the package without its channel and list defaults in channels.",
            )
    return str(spec), channel
