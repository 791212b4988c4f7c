"""Reading what to lock from pixi.toml, pyproject.toml ([tool.pixi]) or environment.yml.

pixi's manifest is read as pixi reads it: features composed into environments (the
environment's features in order, then the default feature unless
``no-default-feature``), channels ordered by priority, platforms intersected,
``[target.<selector>]`` tables applied by selector (``unix``, ``linux``, ``osx``,
``win``, a subdir, a platform name or a glob), ``[system-requirements]`` and platform
tables turned into virtual packages, spec tables turned into rattler MatchSpecs.
Whatever portpack cannot honour (PyPI dependencies, source dependencies, solve groups,
conditional dependencies) is refused by name when it would change the environment,
never dropped.  Every unexpected value raises :class:`ManifestError` naming the file
and the key.

This module finds a manifest and reads it with the reader for its kind:
:mod:`~portpack.resolve.pixi_manifest` (pixi.toml, pyproject.toml; its spec tables in
:mod:`~portpack.resolve.specs`, its platforms and system requirements in
:mod:`~portpack.resolve.pixi_platforms`) or :mod:`~portpack.resolve.environment_yml`.
Both build the model of :mod:`~portpack.resolve.manifest_model`, re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from portpack.errors import ManifestError
from portpack.resolve import manifest_values as mv
from portpack.resolve.manifest_model import (
    ANACONDA_REPO,
    DEFAULT_ENVIRONMENT,
    DEFAULT_FEATURE,
    DEFAULTS_UNIX,
    DEFAULTS_WIN,
    SUBDIRS,
    EnvironmentDef,
    Feature,
    Manifest,
    Platform,
    Solvable,
    Target,
)

MANIFEST_NAMES = ("pixi.toml", "pyproject.toml", "environment.yml", "environment.yaml")


def find_manifest(directory: Path) -> Path | None:
    """The first manifest in ``directory`` (pyproject.toml only with a [tool.pixi] table)."""
    for name in MANIFEST_NAMES:
        path = directory / name
        if not path.is_file():
            continue
        if name == "pyproject.toml":
            tool = mv.read_toml(path).get("tool")
            if not isinstance(tool, dict) or "pixi" not in tool:
                continue
        return path
    return None


def read_manifest(path: Path) -> Manifest:
    """Parse a manifest; raise :class:`ManifestError` naming the file on any problem."""
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    if path.suffix in (".yml", ".yaml"):
        from portpack.resolve.environment_yml import read_environment_yml

        return read_environment_yml(path)
    from portpack.resolve.pixi_manifest import read_pixi_toml, read_pyproject

    doc = mv.read_toml(path)
    if path.name == "pyproject.toml":
        return read_pyproject(path, doc)
    return read_pixi_toml(path, doc)


__all__ = [
    "ANACONDA_REPO",
    "DEFAULTS_UNIX",
    "DEFAULTS_WIN",
    "DEFAULT_ENVIRONMENT",
    "DEFAULT_FEATURE",
    "MANIFEST_NAMES",
    "SUBDIRS",
    "EnvironmentDef",
    "Feature",
    "Manifest",
    "Platform",
    "Solvable",
    "Target",
    "find_manifest",
    "read_manifest",
]
