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
"""

from __future__ import annotations

import datetime
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# tomli, not the standard library's tomllib: pixi reads TOML 1.1 (its toml_edit and
# toml-span parsers accept inline tables spread over several lines, with a trailing
# comma, as pixi's own examples and `pixi add` write them) and tomllib reads TOML 1.0
# only.  tomli >= 2.4 reads TOML 1.1 with tomllib's API and errors; tomlkit, rtoml and
# toml-rs read the same files but are a style-preserving editor or compiled bindings
# where a pure-Python parser is enough (see pyproject.toml).
import tomli

from portpack.errors import ManifestError

MANIFEST_NAMES = ("pixi.toml", "pyproject.toml", "environment.yml", "environment.yaml")
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

#: Spec-table keys (pixi's documented conda dependency fields) -> MatchSpec bracket keys.
_SPEC_KEYS = {
    "version": "version",
    "build": "build",
    "build-number": "build_number",
    "channel": "channel",
    "subdir": "subdir",
    "md5": "md5",
    "sha256": "sha256",
    "license": "license",
    "file-name": "fn",
    "track-features": "track_features",
    "extras": "extras",
    "flags": "flags",
}
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_SOURCE_KEYS = ("path", "git", "url", "branch", "rev", "tag", "lfs", "subdirectory")
#: Table keys of a pixi manifest (or feature) that do not change which packages are
#: solved: metadata, tasks, activation, PyPI options (PyPI dependencies are refused).
_IGNORED_KEYS = frozenset(
    {"tasks", "activation", "pypi-options", "dev", "package", "pypi-exclude-newer"}
)
_ROOT_KEYS = frozenset(
    {
        "workspace",
        "project",
        "dependencies",
        "host-dependencies",
        "build-dependencies",
        "constraints",
        "pypi-dependencies",
        "system-requirements",
        "target",
        "feature",
        "environments",
        "exclude-newer",
        *_IGNORED_KEYS,
    }
)
_FEATURE_KEYS = frozenset(
    {
        "channels",
        "platforms",
        "channel-priority",
        "solve-strategy",
        "dependencies",
        "host-dependencies",
        "build-dependencies",
        "constraints",
        "pypi-dependencies",
        "system-requirements",
        "target",
        *_IGNORED_KEYS,
    }
)
_TARGET_KEYS = frozenset(
    {
        "dependencies",
        "host-dependencies",
        "build-dependencies",
        "constraints",
        "pypi-dependencies",
        "tasks",
        "activation",
        "dev",
        "build-variants",
    }
)
_CHANNEL_PRIORITIES = ("strict", "flexible", "disabled")
_SOLVE_STRATEGIES = ("highest", "lowest", "lowest-direct")
#: Friendly virtual-package keys of pixi's platform tables and [system-requirements].
_VIRTUAL_KEYS = {
    "cuda": "__cuda",
    "glibc": "__glibc",
    "linux": "__linux",
    "macos": "__osx",
    "osx": "__osx",
    "windows": "__win",
    "archspec": "__archspec",
}


@dataclass(frozen=True)
class Platform:
    """A platform of a manifest: a name (a subdir, or pixi's named platform) and its
    subdir, with the virtual packages it declares (``__name -> (version, build)``)."""

    name: str
    subdir: str
    virtual: tuple[tuple[str, tuple[str, str]], ...] = ()


@dataclass
class _Target:
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
    targets: list[_Target] = field(default_factory=list)
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


# --- reading ---------------------------------------------------------------------------------


def find_manifest(directory: Path) -> Path | None:
    """The first manifest in ``directory`` (pyproject.toml only with a [tool.pixi] table)."""
    for name in MANIFEST_NAMES:
        path = directory / name
        if not path.is_file():
            continue
        if name == "pyproject.toml":
            tool = _toml(path).get("tool")
            if not isinstance(tool, dict) or "pixi" not in tool:
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
    if path.name == "pyproject.toml" or ("tool" in doc and "pixi" in _dict(path, doc, "tool")):
        return _pyproject(path, doc)
    return _Reader(path, "").manifest(doc)


def _toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomli.load(fh)
    except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc


def _dict(path: Path, value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{path}: {key} must be a table, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), f"a {type(value).__name__}") + f" ({value!r:.60})"


def _string(path: Path, value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{path}: {key} must be a string, not {_kind(value)}")
    return value


def _strings(path: Path, value: Any, key: str) -> list[str]:
    if not isinstance(value, list):
        raise ManifestError(f"{path}: {key} must be an array of strings, not {_kind(value)}")
    return [_string(path, item, f"{key}[{i}]") for i, item in enumerate(value)]


def _pyproject(path: Path, doc: dict[str, Any]) -> Manifest:
    tool = _dict(path, doc.get("tool"), "[tool]")
    pixi = tool.get("pixi")
    if not isinstance(pixi, dict):
        raise ManifestError(f"{path} has no [tool.pixi] table")
    reader = _Reader(path, "tool.pixi.")
    manifest = reader.manifest(pixi)
    project = _dict(path, doc.get("project"), "[project]")
    default = manifest.features[DEFAULT_FEATURE]
    conda_names = {_norm(n) for t in default.targets for n in t.dependencies}
    requires = project.get("requires-python")
    if requires is not None and "python" not in conda_names:
        spec = reader.spec("python", _string(path, requires, "[project].requires-python"), "")
        default.targets[0].dependencies["python"] = [spec]
    pypi_names = [
        _requirement_name(path, r, "[project].dependencies")
        for r in _strings(path, project.get("dependencies", []), "[project].dependencies")
    ]
    unmet = [n for n in pypi_names if _norm(n) not in conda_names]
    if unmet:
        default.pypi.append(f"[project].dependencies: {', '.join(unmet)}")
    groups = {
        "[project.optional-dependencies]": project.get("optional-dependencies"),
        "[dependency-groups]": doc.get("dependency-groups"),
    }
    for table, value in groups.items():
        for name, reqs in _dict(path, value, table).items():
            feature = manifest.features.setdefault(name, Feature(name, targets=[_Target(None)]))
            if reqs:
                feature.pypi.append(f"{table} {name}")
    reader.check_environments(manifest)
    return manifest


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(path: Path, requirement: str, key: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ManifestError(f"{path}: {key}: cannot read requirement {requirement!r}")
    return match.group(1)


class _Reader:
    """Reads the pixi tables of one file (``prefix`` is ``tool.pixi.`` in pyproject.toml)."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        self.pool: dict[str, Any] = {}

    def key(self, key: str) -> str:
        return f"[{self.prefix}{key}]"

    def fail(self, message: str, hint: str | None = None) -> ManifestError:
        return ManifestError(f"{self.path}: {message}", hint=hint)

    def manifest(self, doc: dict[str, Any]) -> Manifest:
        path = self.path
        unknown = [k for k in doc if k not in _ROOT_KEYS]
        if unknown:
            raise self.fail(
                f"unknown table {self.key(unknown[0])}; portpack does not know how it "
                "changes the environment"
            )
        if "workspace" in doc and "project" in doc:
            raise self.fail(f"give either {self.key('workspace')} or {self.key('project')}")
        table = "workspace" if "workspace" in doc else "project"
        workspace = _dict(path, doc.get(table), self.key(table))
        self.pool = _dict(path, workspace.get("dependencies"), self.key(f"{table}.dependencies"))
        manifest = Manifest(path=path)
        manifest.channels = self.channels(workspace.get("channels", []), f"{table}.channels")
        manifest.platforms = self.platforms(workspace.get("platforms", []), f"{table}.platforms")
        root_priority = workspace.get("channel-priority")
        root_strategy = workspace.get("solve-strategy")
        exclude = workspace.get("exclude-newer")
        if exclude is not None:
            manifest.exclude_newer = self.exclude_newer(exclude, f"{table}.exclude-newer")
        if doc.get("exclude-newer"):
            raise self.fail(
                f"{self.key('exclude-newer')} (per-package cut-offs) is not supported",
                hint="Lock with pixi and pack the pixi.lock.",
            )
        default = self.feature(DEFAULT_FEATURE, doc, root=True)
        default.channel_priority = self.choice(
            root_priority, f"{table}.channel-priority", _CHANNEL_PRIORITIES
        )
        default.solve_strategy = self.choice(
            root_strategy, f"{table}.solve-strategy", _SOLVE_STRATEGIES
        )
        manifest.features[DEFAULT_FEATURE] = default
        for name, value in _dict(path, doc.get("feature"), self.key("feature")).items():
            if name == DEFAULT_FEATURE:
                raise self.fail(f"{self.key('feature.default')}: 'default' is reserved")
            table_value = _dict(path, value, self.key(f"feature.{name}"))
            manifest.features[name] = self.feature(name, table_value, root=False)
        manifest.environments = self.environments(doc.get("environments"))
        if self.prefix == "":
            self.check_environments(manifest)
        return manifest

    def check_environments(self, manifest: Manifest) -> None:
        names = {p.name for p in manifest.platforms} | {p.subdir for p in manifest.platforms}
        for env in manifest.environments.values():
            for used in env.features:
                if used not in manifest.features:
                    raise self.fail(
                        f"environment {env.name!r} uses feature {used!r}, which "
                        f"{self.key('feature')} does not define"
                    )
        for feature in manifest.features.values():
            for platform in feature.platforms or []:
                if platform not in names:
                    raise self.fail(
                        f"{self.key(f'feature.{feature.name}.platforms')}: {platform!r} is "
                        "not among the workspace's platforms"
                    )

    def choice(self, value: Any, key: str, allowed: tuple[str, ...]) -> str | None:
        if value is None:
            return None
        text = _string(self.path, value, self.key(key))
        if text not in allowed:
            raise self.fail(f"{self.key(key)}: {text!r} is not one of {', '.join(allowed)}")
        return text

    def exclude_newer(self, value: Any, key: str) -> datetime.datetime:
        if isinstance(value, datetime.datetime):
            stamp = value
        elif isinstance(value, datetime.date):
            stamp = datetime.datetime.combine(value + datetime.timedelta(days=1), datetime.time())
        elif isinstance(value, str):
            try:
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                    day = datetime.date.fromisoformat(value) + datetime.timedelta(days=1)
                    stamp = datetime.datetime.combine(day, datetime.time())
                else:
                    stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise self.fail(
                    f"{self.key(key)}: {value!r} is not a date or RFC 3339 timestamp "
                    "(relative durations are not supported)"
                ) from None
        else:
            raise self.fail(f"{self.key(key)} must be a date or timestamp, not {_kind(value)}")
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.timezone.utc)

    def channels(self, value: Any, key: str) -> list[tuple[str, int]]:
        if not isinstance(value, list):
            raise self.fail(f"{self.key(key)} must be an array, not {_kind(value)}")
        channels = []
        for i, item in enumerate(value):
            where = f"{self.key(key)}[{i}]"
            if isinstance(item, str):
                channels.append((item, 0))
                continue
            table = _dict(self.path, item, where)
            extra = set(table) - {"channel", "priority"}
            if extra or "channel" not in table:
                raise self.fail(
                    f"{where}: a channel table has the keys channel and priority "
                    f"(got {', '.join(sorted(table)) or 'none'})"
                )
            priority = table.get("priority", 0)
            if not isinstance(priority, int) or isinstance(priority, bool):
                raise self.fail(f"{where}: priority must be an integer, not {_kind(priority)}")
            channels.append((_string(self.path, table["channel"], f"{where}.channel"), priority))
        return channels

    def platforms(self, value: Any, key: str) -> list[Platform]:
        if not isinstance(value, list):
            raise self.fail(f"{self.key(key)} must be an array, not {_kind(value)}")
        platforms: list[Platform] = []
        for i, item in enumerate(value):
            where = f"{self.key(key)}[{i}]"
            if isinstance(item, str):
                if item not in SUBDIRS:
                    raise self.fail(f"{where}: unknown platform {item!r}")
                platforms.append(Platform(item, item))
                continue
            platforms.append(self.platform_table(_dict(self.path, item, where), where))
        names = [p.name for p in platforms]
        for name in names:
            if names.count(name) > 1:
                raise self.fail(f"{self.key(key)}: platform {name!r} is listed twice")
        return platforms

    def platform_table(self, table: dict[str, Any], where: str) -> Platform:
        subdir = table.get("platform", table.get("name"))
        if subdir is None:
            raise self.fail(f"{where}: a platform table needs a platform key (its subdir)")
        subdir = _string(self.path, subdir, f"{where}.platform")
        if subdir not in SUBDIRS:
            raise self.fail(f"{where}: unknown platform {subdir!r}")
        virtual: dict[str, tuple[str, str]] = {}
        for key, value in table.items():
            if key in ("platform", "name"):
                continue
            text = _string(self.path, value, f"{where}.{key}")
            if key in _VIRTUAL_KEYS:
                name = _VIRTUAL_KEYS[key]
            elif key.startswith("__"):
                name = key
            else:
                raise self.fail(
                    f"{where}: unknown key {key!r} (platform tables take platform, name, "
                    f"{', '.join(_VIRTUAL_KEYS)} or __NAME)"
                )
            archspec = name == "__archspec"
            virtual[name] = ("1", text) if archspec else (self._version(text, where), "0")
        name = _string(self.path, table.get("name", subdir), f"{where}.name")
        return Platform(name, subdir, tuple(sorted(virtual.items())))

    def _version(self, text: str, where: str) -> str:
        import rattler

        try:
            rattler.Version(text)
        except Exception as exc:  # py-rattler's parse error types
            raise self.fail(f"{where}: {text!r} is not a version: {exc}") from exc
        return text

    def system_requirements(self, value: Any, key: str) -> dict[str, tuple[str, str]]:
        table = _dict(self.path, value, self.key(key))
        virtual: dict[str, tuple[str, str]] = {}
        for name, item in table.items():
            where = f"{self.key(key)} {name}"
            if name == "libc":
                if isinstance(item, dict):
                    unknown = set(item) - {"family", "version"}
                    if unknown or "version" not in item:
                        raise self.fail(f"{where}: libc takes family and version")
                    family = _string(self.path, item.get("family", "glibc"), f"{where}.family")
                    version = self._version(
                        _stringify(self.path, item["version"], f"{where}.version"), where
                    )
                else:
                    family = "glibc"
                    version = self._version(_stringify(self.path, item, where), where)
                virtual[f"__{family.lower()}"] = (version, "0")
            elif name in ("linux", "cuda", "macos"):
                version = self._version(_stringify(self.path, item, where), where)
                virtual[_VIRTUAL_KEYS[name]] = (version, "0")
            elif name == "archspec":
                virtual["__archspec"] = ("1", _string(self.path, item, where))
            else:
                raise self.fail(
                    f"{where}: unknown system requirement (pixi knows linux, libc, cuda, "
                    "macos, archspec)"
                )
        return virtual

    def feature(self, name: str, table: dict[str, Any], *, root: bool) -> Feature:
        where = "" if root else f"feature.{name}."
        if not root:
            unknown = [k for k in table if k not in _FEATURE_KEYS]
            if unknown:
                raise self.fail(
                    f"unknown key {self.key(where + unknown[0])}; portpack does not know how "
                    "it changes the environment"
                )
        feature = Feature(name)
        if not root:
            if "channels" in table:
                feature.channels = self.channels(table["channels"], f"{where}channels")
            if "platforms" in table:
                feature.platforms = _strings(
                    self.path, table["platforms"], self.key(f"{where}platforms")
                )
            feature.channel_priority = self.choice(
                table.get("channel-priority"), f"{where}channel-priority", _CHANNEL_PRIORITIES
            )
            feature.solve_strategy = self.choice(
                table.get("solve-strategy"), f"{where}solve-strategy", _SOLVE_STRATEGIES
            )
        if "system-requirements" in table:
            feature.system_requirements = self.system_requirements(
                table["system-requirements"], f"{where}system-requirements"
            )
        feature.targets.append(self.target(None, table, where))
        targets = _dict(self.path, table.get("target"), self.key(f"{where}target"))
        for selector, value in targets.items():
            if "(" in selector:
                raise self.fail(
                    f"{self.key(f'{where}target.{selector}')}: if(...) selectors are only "
                    "valid in [package] tables"
                )
            target_table = _dict(self.path, value, self.key(f"{where}target.{selector}"))
            unknown = [k for k in target_table if k not in _TARGET_KEYS]
            if unknown:
                raise self.fail(
                    f"unknown key {self.key(f'{where}target.{selector}.{unknown[0]}')}; "
                    "portpack does not know how it changes the environment"
                )
            prefix = f"{where}target.{selector}."
            feature.targets.append(self.target(selector, target_table, prefix))
        return feature

    def target(self, selector: str | None, table: dict[str, Any], where: str) -> _Target:
        target = _Target(selector)
        # pixi's combined dependencies: build overwrites host overwrites run.
        for kind in ("dependencies", "host-dependencies", "build-dependencies"):
            key = f"{where}{kind}"
            for name, value in _dict(self.path, table.get(kind), self.key(key)).items():
                target.dependencies[name] = [self.spec(name, value, key)]
        key = f"{where}constraints"
        for name, value in _dict(self.path, table.get("constraints"), self.key(key)).items():
            target.constraints[name] = [self.spec(name, value, key)]
        if _dict(self.path, table.get("pypi-dependencies"), self.key(f"{where}pypi-dependencies")):
            target.pypi.append(self.key(f"{where}pypi-dependencies"))
        return target

    def spec(self, name: str, value: Any, key: str) -> str:
        """A rattler MatchSpec for ``name = value`` of a dependency table."""
        import rattler

        where = f"{self.key(key)} {name}" if key else name
        if not _PACKAGE_NAME.fullmatch(name):
            raise self.fail(f"{where}: {name!r} is not a conda package name")
        if isinstance(value, str):
            fields: dict[str, Any] = {"version": value}
        elif isinstance(value, dict):
            fields = dict(value)
            if fields.get("workspace") is True and set(fields) == {"workspace"}:
                if name not in self.pool:
                    raise self.fail(
                        f"{where} inherits from the workspace's dependencies, which do not list it"
                    )
                return self.spec(name, self.pool[name], "")
        else:
            raise self.fail(
                f"{where}: cannot understand dependency {name} = {value!r} "
                "(expected a version string or a table)"
            )
        source = [k for k in _SOURCE_KEYS if k in fields]
        if source:
            raise self.fail(
                f"{where}: source dependency {name!r} ({source[0]} = "
                f"{fields[source[0]]!r}) is not supported",
                hint="Build the package (pixi build, rattler-build) and add the .conda with "
                "--inject FILE, or depend on a channel's build of it.",
            )
        unknown = [k for k in fields if k not in _SPEC_KEYS]
        if unknown:
            raise self.fail(
                f"{where}: unsupported key {unknown[0]!r} (portpack knows {', '.join(_SPEC_KEYS)})"
            )
        if not fields:
            raise self.fail(f"{where}: an empty table asks for nothing; give at least a version")
        parts = []
        for key_name, bracket in _SPEC_KEYS.items():
            if key_name not in fields:
                continue
            item = fields[key_name]
            item_where = f"{where}.{key_name}"
            if key_name in ("extras", "flags"):
                values = _strings(self.path, item, item_where)
                listed = ", ".join(_plain(self.path, v, item_where) for v in values)
                parts.append(f"{bracket}=[{listed}]")
                continue
            if key_name == "track-features" and isinstance(item, list):
                item = " ".join(_strings(self.path, item, item_where))
            if key_name != "build-number":  # pixi takes strings only, save build numbers
                _string(self.path, item, item_where)
            text = _stringify(self.path, item, item_where).strip()
            if key_name == "version":
                if text in ("", "*"):
                    continue
                text = self.version_spec(text, item_where)
            parts.append(f'{bracket}="{_plain(self.path, text, item_where)}"')
        spec = f"{name}[{', '.join(parts)}]" if parts else name
        try:
            return str(rattler.MatchSpec(spec, strict=False))
        except Exception as exc:  # py-rattler's parse error types
            raise self.fail(f"{where}: invalid package spec: {exc}") from exc

    def version_spec(self, text: str, where: str) -> str:
        """pixi's version rule: strict, with a bare version meaning ``==`` as pixi warns."""
        import rattler

        try:
            return str(rattler.VersionSpec(text, strict=True))
        except Exception as strict_error:  # py-rattler's parse error types
            if "missing range specifier" in str(strict_error):
                try:
                    return str(rattler.VersionSpec(text, strict=False))
                except Exception:  # pragma: no cover - lenient accepts what strict hinted
                    pass
            raise self.fail(f"{where}: invalid version {text!r}: {strict_error}") from None

    def environments(self, value: Any) -> dict[str, EnvironmentDef]:
        result: dict[str, EnvironmentDef] = {}
        for name, item in _dict(self.path, value, self.key("environments")).items():
            where = self.key(f"environments.{name}")
            if isinstance(item, list):
                result[name] = EnvironmentDef(name, _strings(self.path, item, where))
                continue
            table = _dict(self.path, item, where)
            unknown = set(table) - {"features", "solve-group", "no-default-feature"}
            if unknown:
                raise self.fail(f"{where}: unknown key {sorted(unknown)[0]!r}")
            flag = table.get("no-default-feature", False)
            if not isinstance(flag, bool):
                raise self.fail(f"{where}.no-default-feature must be a boolean, not {_kind(flag)}")
            group = table.get("solve-group")
            result[name] = EnvironmentDef(
                name,
                _strings(self.path, table.get("features", []), f"{where}.features"),
                no_default_feature=flag,
                solve_group=None
                if group is None
                else _string(self.path, group, f"{where}.solve-group"),
            )
        return result


def _stringify(path: Path, value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ManifestError(f"{path}: {key} must be a string, not {_kind(value)}")
    return str(value)


def _plain(path: Path, text: str, key: str) -> str:
    if any(c in text for c in "\"'[]\n\r"):
        raise ManifestError(f"{path}: {key}: {text!r} contains a quote, bracket or line break")
    return text


# --- environment.yml -------------------------------------------------------------------------

_YML_KEYS = frozenset({"name", "channels", "dependencies", "prefix", "platforms"})


def _environment_yml(path: Path) -> Manifest:
    import rattler
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
    channels = [
        (_string(path, c, f"channels[{i}]"), 0)
        for i, c in enumerate(_list(path, doc.get("channels"), "channels"))
    ]
    channels = [c for c in channels if c[0] != "nodefaults"]
    specs = []
    for i, dep in enumerate(_list(path, doc.get("dependencies"), "dependencies")):
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
            if all(channel != c[0] for c in channels):
                channels.append((channel, 0))  # conda searches a spec's channel too
        specs.append(str(spec))
    platforms = [Platform(p, p) for p in _strings(path, doc.get("platforms", []), "platforms")]
    for platform in platforms:
        if platform.subdir not in SUBDIRS:
            raise ManifestError(f"{path}: platforms: unknown platform {platform.subdir!r}")
    default = Feature(DEFAULT_FEATURE, targets=[_Target(None, {s: [s] for s in specs})])
    return Manifest(
        path=path,
        features={DEFAULT_FEATURE: default},
        channels=channels,
        platforms=platforms,
        conda_defaults=any(c[0] == "defaults" or c[0].startswith("pkgs/") for c in channels),
    )


def _list(path: Path, value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{path}: {key} must be a list, not {_kind(value)}")
    return value
