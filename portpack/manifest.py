"""Reading what to lock from pixi.toml, pyproject.toml ([tool.pixi]) or environment.yml."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ManifestError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST_NAMES = ("pixi.toml", "pyproject.toml", "environment.yml", "environment.yaml")


@dataclass
class Manifest:
    """The specs, channels and platforms a manifest asks for."""

    path: Path
    specs: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    target_specs: dict[str, list[str]] = field(default_factory=dict)
    """Extra specs per platform (pixi's ``[target.<platform>.dependencies]``)."""

    def specs_for(self, platform: str) -> list[str]:
        """The specs to solve for ``platform``."""
        return self.specs + self.target_specs.get(platform, [])


def find_manifest(directory: Path) -> Path | None:
    """The first manifest in ``directory`` (pyproject.toml only with a [tool.pixi] table)."""
    for name in MANIFEST_NAMES:
        path = directory / name
        if not path.is_file():
            continue
        if name == "pyproject.toml" and "pixi" not in _toml(path).get("tool", {}):
            continue
        return path
    return None


def read_manifest(path: Path) -> Manifest:
    """Parse a manifest; raise :class:`ManifestError` naming the file on any problem."""
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    if path.suffix in (".yml", ".yaml"):
        return _environment_yml(path)
    doc = _toml(path)
    if path.name == "pyproject.toml":
        doc = doc.get("tool", {}).get("pixi")
        if not isinstance(doc, dict):
            raise ManifestError(f"{path} has no [tool.pixi] table")
    return _pixi(path, doc)


def _toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc


def _pixi(path: Path, doc: dict[str, Any]) -> Manifest:
    workspace = doc.get("workspace") or doc.get("project") or {}
    if doc.get("pypi-dependencies"):
        raise ManifestError(
            f"{path}: [pypi-dependencies] are not supported yet",
            hint="Lock the environment with pixi and pack its pixi.lock, or drop the PyPI deps.",
        )
    if "default" in (doc.get("environments") or {}):
        raise ManifestError(f"{path}: a redefined default environment is not supported")
    manifest = Manifest(
        path=path,
        specs=_pixi_specs(path, doc.get("dependencies") or {}),
        channels=[_channel_name(path, c) for c in workspace.get("channels", [])],
        platforms=list(workspace.get("platforms", [])),
    )
    for platform, table in (doc.get("target") or {}).items():
        if table.get("pypi-dependencies"):
            raise ManifestError(f"{path}: [target.{platform}.pypi-dependencies] not supported")
        manifest.target_specs[platform] = _pixi_specs(path, table.get("dependencies") or {})
    return manifest


def _channel_name(path: Path, channel: Any) -> str:
    if isinstance(channel, dict) and "channel" in channel:
        return str(channel["channel"])
    if isinstance(channel, str):
        return channel
    raise ManifestError(f"{path}: cannot understand channel {channel!r}")


def _pixi_specs(path: Path, deps: dict[str, Any]) -> list[str]:
    specs = []
    for name, value in deps.items():
        if isinstance(value, str):
            specs.append(name if value.strip() in ("", "*") else f"{name} {value.strip()}")
        elif isinstance(value, dict):
            if "path" in value or "git" in value or "url" in value:
                raise ManifestError(f"{path}: source dependency {name!r} is not supported")
            spec = name
            if value.get("channel"):
                spec = f"{value['channel']}::{spec}"
            version = str(value.get("version", "*")).strip()
            build = value.get("build")
            if version != "*" or build:
                spec += f" {version}"
            if build:
                spec += f" {build}"
            specs.append(spec)
        else:
            raise ManifestError(f"{path}: cannot understand dependency {name} = {value!r}")
    return specs


def _environment_yml(path: Path) -> Manifest:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{path} is not a conda environment file")
    specs = []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict) and "pip" in dep:
            raise ManifestError(
                f"{path}: pip dependencies are not supported yet "
                f"({', '.join(str(p) for p in dep['pip'] or [])})",
                hint="Remove the pip: section, or lock with pixi and pack the pixi.lock.",
            )
        if not isinstance(dep, str):
            raise ManifestError(f"{path}: cannot understand dependency {dep!r}")
        specs.append(dep)
    channels = [str(c) for c in doc.get("channels") or [] if c != "nodefaults"]
    return Manifest(path=path, specs=specs, channels=channels, platforms=[])
