"""The model of a manifest: features, environments, platforms, and what one
environment asks the solver for on one platform (pixi's composition rules).

pixi's rules: an environment is its features in order, then the default feature unless
``no-default-feature``; channels are ordered by priority; platforms are intersected;
``[target.<selector>]`` tables apply by selector (``unix``, ``linux``, ``osx``, ``win``,
a subdir, a platform name or a glob), later ones replacing a package's spec.  The readers
(:mod:`portpack.resolve.pixi_manifest`, :mod:`portpack.resolve.environment_yml`) build it.
"""

from __future__ import annotations

import datetime
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from portpack.errors import ManifestError

DEFAULT_FEATURE = "default"
DEFAULT_ENVIRONMENT = "default"

#: conda's ``defaults`` channels (conda's DEFAULT_CHANNELS_UNIX / _WIN) and the
#: ``pkgs/*`` names conda maps onto repo.anaconda.com (DEFAULT_CUSTOM_CHANNELS).
ANACONDA_REPO = "https://repo.anaconda.com/pkgs"
DEFAULTS_UNIX = (f"{ANACONDA_REPO}/main", f"{ANACONDA_REPO}/r")
DEFAULTS_WIN = (*DEFAULTS_UNIX, f"{ANACONDA_REPO}/msys2")

#: Conda subdirs (rattler's ``Platform``), for target selectors and platform tables.
SUBDIRS = frozenset(
    (
        "linux-32",
        "linux-64",
        "linux-aarch64",
        "linux-armv6l",
        "linux-armv7l",
        "linux-loongarch64",
        "linux-ppc64le",
        "linux-ppc64",
        "linux-ppc",
        "linux-s390x",
        "linux-riscv32",
        "linux-riscv64",
        "freebsd-32",
        "freebsd-64",
        "freebsd-arm64",
        "freebsd-ppc64le",
        "freebsd-ppc64",
        "osx-64",
        "osx-arm64",
        "ios-arm64",
        "iossimulator-arm64",
        "iossimulator-64",
        "android-aarch64",
        "android-armv7a",
        "android-64",
        "android-32",
        "win-32",
        "win-64",
        "win-arm64",
        "emscripten-wasm32",
        "emscripten-wasm64",
        "wasi-wasm32",
        "zos-z",
    )
)


@dataclass(frozen=True)
class Platform:
    """A platform of a manifest: a name (a subdir, or pixi's named platform) and its
    subdir, with the virtual packages it declares (``__name -> (version, build)``)."""

    name: str
    subdir: str
    virtual: tuple[tuple[str, tuple[str, str]], ...] = ()


@dataclass
class Target:
    """A ``[target.<selector>]`` table (``selector`` None: the feature's own tables)."""

    selector: str | None
    dependencies: dict[str, list[str]] = field(default_factory=dict)
    constraints: dict[str, list[str]] = field(default_factory=dict)
    pypi: list[str] = field(default_factory=list)


@dataclass
class Feature:
    """A pixi feature (the default feature holds the manifest's root tables)."""

    name: str
    channels: list[tuple[str, int]] | None = None
    platforms: list[str] | None = None
    channel_priority: str | None = None
    solve_strategy: str | None = None
    system_requirements: dict[str, tuple[str, str]] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    pypi: list[str] = field(default_factory=list)
    """Keys naming PyPI dependencies of this feature (refused when it is solved)."""


@dataclass
class EnvironmentDef:
    """An entry of ``[environments]``."""

    name: str
    features: list[str]
    no_default_feature: bool = False
    solve_group: str | None = None


@dataclass
class Solvable:
    """What one environment of a manifest asks the solver for on one platform."""

    environment: str
    platform: str
    """The conda subdir solved for."""
    specs: list[str]
    constraints: list[str]
    channels: list[str]
    virtual: dict[str, tuple[str, str]]
    """Virtual packages the manifest declares (they replace detected or default ones)."""
    channel_priority: str = "strict"
    strategy: str = "highest"
    exclude_newer: datetime.datetime | None = None


@dataclass
class Manifest:
    """A parsed manifest: its features, environments, channels and platforms."""

    path: Path
    features: dict[str, Feature] = field(default_factory=dict)
    environments: dict[str, EnvironmentDef] = field(default_factory=dict)
    channels: list[tuple[str, int]] = field(default_factory=list)
    platforms: list[Platform] = field(default_factory=list)
    exclude_newer: datetime.datetime | None = None
    conda_defaults: bool = False
    """environment.yml: ``defaults`` (conda's default channels) is among the channels."""

    def environment_names(self) -> list[str]:
        """The environments, ``default`` first."""
        return [DEFAULT_ENVIRONMENT, *(n for n in self.environments if n != DEFAULT_ENVIRONMENT)]

    def _definition(self, environment: str) -> EnvironmentDef:
        if environment in self.environments:
            return self.environments[environment]
        if environment == DEFAULT_ENVIRONMENT:
            return EnvironmentDef(DEFAULT_ENVIRONMENT, [])
        names = ", ".join(self.environment_names())
        raise ManifestError(f"{self.path} has no environment {environment!r} (it has: {names})")

    def _features(self, environment: str) -> list[Feature]:
        env = self._definition(environment)
        chosen = [self.features[name] for name in env.features]
        if not env.no_default_feature:
            chosen.append(self.features[DEFAULT_FEATURE])
        return chosen

    def platforms_for(self, environment: str = DEFAULT_ENVIRONMENT) -> list[Platform]:
        """The environment's platforms: the workspace's, narrowed by every feature's."""
        platforms = list(self.platforms)
        for feature in self._features(environment):
            if feature.platforms is not None:
                allowed = set(feature.platforms)
                platforms = [p for p in platforms if p.name in allowed or p.subdir in allowed]
        return platforms

    def channels_for(self, environment: str = DEFAULT_ENVIRONMENT, subdir: str = "") -> list[str]:
        """Channels in pixi's order: per feature (or the workspace's), by priority, unique."""
        listed: list[tuple[str, int]] = []
        for feature in self._features(environment):
            listed += feature.channels if feature.channels is not None else self.channels
        ordered = sorted(listed, key=lambda c: -c[1])  # stable: manifest order within a priority
        names: list[str] = []
        for name, _ in ordered:
            for channel in _expand_defaults(name, subdir) if self.conda_defaults else [name]:
                if channel not in names:
                    names.append(channel)
        return names

    def platform(self, requested: str, environment: str = DEFAULT_ENVIRONMENT) -> Platform:
        """The platform ``requested`` (a platform name or a subdir) of ``environment``.

        A subdir the manifest does not list is solved with no declared virtual packages.
        """
        platforms = self.platforms_for(environment)
        for platform in platforms:
            if platform.name == requested:
                return platform
        same_subdir = [p for p in platforms if p.subdir == requested]
        if len(same_subdir) > 1:
            names = ", ".join(p.name for p in same_subdir)
            raise ManifestError(
                f"{self.path}: several platforms of environment {environment!r} are for "
                f"{requested} ({names})",
                hint="Choose one by its name with --platform.",
            )
        if same_subdir:
            return same_subdir[0]
        if any(requested in (p.name, p.subdir) for p in self.platforms):
            have = ", ".join(p.name for p in platforms) or "none"
            raise ManifestError(
                f"{self.path}: environment {environment!r} is not for {requested}: its "
                f"features narrow it to {have}"
            )
        if requested not in SUBDIRS:
            raise ManifestError(f"{self.path}: unknown platform {requested!r}")
        return Platform(requested, requested)

    def solvable(
        self, environment: str = DEFAULT_ENVIRONMENT, platform: str | None = None
    ) -> Solvable:
        """Specs, channels and virtual packages of ``environment`` for ``platform``.

        Raises :class:`ManifestError` for what the environment needs but portpack cannot
        solve (PyPI dependencies, solve groups).
        """
        env = self._definition(environment)
        features = self._features(environment)
        chosen = self.platform(platform or self._first_platform(environment), environment)
        pypi = [key for f in features for key in f.pypi]
        pypi += [
            t_key
            for f in features
            for t in f.targets
            if _selects(t.selector, chosen)
            for t_key in t.pypi
        ]
        if pypi:
            raise ManifestError(
                f"{self.path}: environment {environment!r} has PyPI dependencies, which "
                f"portpack cannot solve ({', '.join(dict.fromkeys(pypi))})",
                hint="Lock the environment with pixi and pack its pixi.lock (portpack packs "
                "the PyPI wheels of a lock), or move these dependencies to conda.",
            )
        if env.solve_group is not None:
            raise ManifestError(
                f"{self.path}: environment {environment!r} is in solve-group "
                f"{env.solve_group!r}; portpack does not solve environments together",
                hint="Lock with pixi and pack the pixi.lock, or drop the solve-group.",
            )
        specs: list[str] = []
        constraints: list[str] = []
        virtual: dict[str, tuple[str, str]] = {}
        for feature in features:
            specs += _flatten(_overlay(feature, chosen, "dependencies"))
            constraints += _flatten(_overlay(feature, chosen, "constraints"))
            _union_virtual(self.path, virtual, feature.system_requirements)
        virtual = _applicable(virtual, chosen.subdir)
        virtual.update(dict(chosen.virtual))
        return Solvable(
            environment=environment,
            platform=chosen.subdir,
            specs=list(dict.fromkeys(specs)),
            constraints=list(dict.fromkeys(constraints)),
            channels=self.channels_for(environment, chosen.subdir),
            virtual=virtual,
            channel_priority=_first(self.path, [f.channel_priority for f in features], "strict"),
            strategy=next((f.solve_strategy for f in features if f.solve_strategy), "highest"),
            exclude_newer=self.exclude_newer,
        )

    def _first_platform(self, environment: str) -> str:
        platforms = self.platforms_for(environment)
        if not platforms:
            from portpack._platform import current_platform

            return current_platform()
        return platforms[0].name

    # --- the default environment, for callers that only need that ---------------------

    @property
    def specs(self) -> list[str]:
        """The default feature's dependencies for no particular platform."""
        return _flatten(_overlay(self.features[DEFAULT_FEATURE], None, "dependencies"))

    def specs_for(self, platform: str, environment: str = DEFAULT_ENVIRONMENT) -> list[str]:
        """The specs of ``environment`` to solve for ``platform``."""
        return self.solvable(environment, platform).specs


def _expand_defaults(channel: str, subdir: str) -> list[str]:
    if channel == "defaults":
        return list(DEFAULTS_WIN if subdir.startswith("win-") else DEFAULTS_UNIX)
    if channel.startswith("pkgs/"):
        return [f"{ANACONDA_REPO}/{channel[len('pkgs/') :]}"]
    return [channel]


def _selects(selector: str | None, platform: Platform | None) -> bool:
    """Whether a ``[target.<selector>]`` table applies to ``platform`` (pixi's rules)."""
    if selector is None:
        return True
    if platform is None:
        return False
    subdir = platform.subdir
    family = subdir.split("-", 1)[0]
    if selector == "unix":
        return family in ("linux", "osx", "freebsd", "ios", "android", "emscripten", "wasi")
    if selector == "linux":
        return family == "linux"
    if selector in ("osx", "macos"):
        return family == "osx"
    if selector == "win":
        return family == "win"
    if selector in SUBDIRS:
        return selector == subdir
    if any(c in selector for c in "*?["):
        return fnmatch.fnmatchcase(platform.name, selector)
    return selector == platform.name


def _overlay(feature: Feature, platform: Platform | None, kind: str) -> dict[str, list[str]]:
    """A feature's dependencies for ``platform``: later matching targets replace a
    package's spec (pixi's overwrite, in manifest order after the default target)."""
    result: dict[str, list[str]] = {}
    for target in feature.targets:
        if _selects(target.selector, platform):
            result.update(getattr(target, kind))
    return result


def _flatten(deps: Mapping[str, list[str]]) -> list[str]:
    return [spec for specs in deps.values() for spec in specs]


def _first(path: Path, values: list[str | None], default: str) -> str:
    chosen = {v for v in values if v is not None}
    if len(chosen) > 1:
        raise ManifestError(
            f"{path}: the features of one environment set different channel-priority "
            f"values ({', '.join(sorted(chosen))})"
        )
    return chosen.pop() if chosen else default


def _union_virtual(
    path: Path, into: dict[str, tuple[str, str]], more: Mapping[str, tuple[str, str]]
) -> None:
    """Combine system requirements of several features: the highest version wins."""
    import rattler

    libcs = {n for n in [*into, *more] if n not in _NOT_LIBC}
    if len(libcs) > 1:
        raise ManifestError(
            f"{path}: the features of one environment require different libc families "
            f"({', '.join(sorted(libcs))})"
        )
    for name, value in more.items():
        have = into.get(name)
        if have is None or (
            name != "__archspec" and rattler.Version(value[0]) > rattler.Version(have[0])
        ):
            into[name] = value


_NOT_LIBC = frozenset({"__cuda", "__archspec", "__linux", "__osx", "__win", "__unix"})


def _applicable(virtual: Mapping[str, tuple[str, str]], subdir: str) -> dict[str, tuple[str, str]]:
    """[system-requirements] apply as pixi applies them: linux and libc on Linux, macos
    on macOS, cuda and archspec everywhere."""
    family = subdir.split("-", 1)[0]
    only = {"__linux": "linux", "__osx": "osx", "__win": "win"}
    return {
        name: value
        for name, value in virtual.items()
        if only.get(name, family if name in _NOT_LIBC else "linux") == family
    }
