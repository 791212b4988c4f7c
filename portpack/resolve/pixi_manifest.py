"""pixi manifests: ``pixi.toml`` and the ``[tool.pixi]`` table of ``pyproject.toml``.

Read as pixi reads them: the workspace (or project) table, features and
``[environments]``, ``[target.<selector>]`` tables, channel priorities, solve
strategies and ``exclude-newer``.  Whatever portpack cannot honour when it would change
the environment (PyPI dependencies, source dependencies, solve groups, per-package
cut-offs, ``if(...)`` selectors) is refused by name, never dropped: PyPI dependencies
and solve groups when the environment is solved (:meth:`Manifest.solvable`), the rest
here.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

from portpack.errors import ManifestError
from portpack.resolve import manifest_values as mv
from portpack.resolve.manifest_model import (
    DEFAULT_FEATURE,
    EnvironmentDef,
    Feature,
    Manifest,
    Target,
)
from portpack.resolve.pixi_platforms import PlatformReader
from portpack.resolve.specs import SpecReader

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


def read_pixi_toml(path: Path, doc: dict[str, Any]) -> Manifest:
    """The manifest of a ``pixi.toml`` document."""
    return PixiReader(path, "").manifest(doc)


def read_pyproject(path: Path, doc: dict[str, Any]) -> Manifest:
    """The manifest of a ``pyproject.toml`` document's ``[tool.pixi]`` table.

    ``[project]`` adds to it as pixi reads it: ``requires-python`` is a conda python
    dependency, and its PyPI dependencies and groups are recorded to be refused.
    """
    tool = mv.table(path, doc.get("tool"), "[tool]")
    pixi = tool.get("pixi")
    if not isinstance(pixi, dict):
        raise ManifestError(f"{path} has no [tool.pixi] table")
    reader = PixiReader(path, "tool.pixi.")
    manifest = reader.manifest(pixi)
    project = mv.table(path, doc.get("project"), "[project]")
    default = manifest.features[DEFAULT_FEATURE]
    conda_names = {_norm(n) for t in default.targets for n in t.dependencies}
    requires = project.get("requires-python")
    if requires is not None and "python" not in conda_names:
        spec = reader.spec("python", mv.string(path, requires, "[project].requires-python"), "")
        default.targets[0].dependencies["python"] = [spec]
    pypi_names = [
        _requirement_name(path, r, "[project].dependencies")
        for r in mv.strings(path, project.get("dependencies", []), "[project].dependencies")
    ]
    unmet = [n for n in pypi_names if _norm(n) not in conda_names]
    if unmet:
        default.pypi.append(f"[project].dependencies: {', '.join(unmet)}")
    groups = {
        "[project.optional-dependencies]": project.get("optional-dependencies"),
        "[dependency-groups]": doc.get("dependency-groups"),
    }
    for table, value in groups.items():
        for name, reqs in mv.table(path, value, table).items():
            feature = manifest.features.setdefault(name, Feature(name, targets=[Target(None)]))
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


class PixiReader(SpecReader, PlatformReader):
    """Reads the pixi tables of one file (``prefix`` is ``tool.pixi.`` in pyproject.toml)."""

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
        workspace = mv.table(path, doc.get(table), self.key(table))
        self.pool = mv.table(path, workspace.get("dependencies"), self.key(f"{table}.dependencies"))
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
        for name, value in mv.table(path, doc.get("feature"), self.key("feature")).items():
            if name == DEFAULT_FEATURE:
                raise self.fail(f"{self.key('feature.default')}: 'default' is reserved")
            table_value = mv.table(path, value, self.key(f"feature.{name}"))
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
        text = mv.string(self.path, value, self.key(key))
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
            raise self.fail(f"{self.key(key)} must be a date or timestamp, not {mv.kind(value)}")
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.timezone.utc)

    def channels(self, value: Any, key: str) -> list[tuple[str, int]]:
        if not isinstance(value, list):
            raise self.fail(f"{self.key(key)} must be an array, not {mv.kind(value)}")
        channels = []
        for i, item in enumerate(value):
            where = f"{self.key(key)}[{i}]"
            if isinstance(item, str):
                channels.append((item, 0))
                continue
            table = mv.table(self.path, item, where)
            extra = set(table) - {"channel", "priority"}
            if extra or "channel" not in table:
                raise self.fail(
                    f"{where}: a channel table has the keys channel and priority "
                    f"(got {', '.join(sorted(table)) or 'none'})"
                )
            priority = table.get("priority", 0)
            if not isinstance(priority, int) or isinstance(priority, bool):
                raise self.fail(f"{where}: priority must be an integer, not {mv.kind(priority)}")
            channels.append((mv.string(self.path, table["channel"], f"{where}.channel"), priority))
        return channels

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
                feature.platforms = mv.strings(
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
        targets = mv.table(self.path, table.get("target"), self.key(f"{where}target"))
        for selector, value in targets.items():
            if "(" in selector:
                raise self.fail(
                    f"{self.key(f'{where}target.{selector}')}: if(...) selectors are only "
                    "valid in [package] tables"
                )
            target_table = mv.table(self.path, value, self.key(f"{where}target.{selector}"))
            unknown = [k for k in target_table if k not in _TARGET_KEYS]
            if unknown:
                raise self.fail(
                    f"unknown key {self.key(f'{where}target.{selector}.{unknown[0]}')}; "
                    "portpack does not know how it changes the environment"
                )
            prefix = f"{where}target.{selector}."
            feature.targets.append(self.target(selector, target_table, prefix))
        return feature

    def target(self, selector: str | None, table: dict[str, Any], where: str) -> Target:
        target = Target(selector)
        # pixi's combined dependencies: build overwrites host overwrites run.
        for kind in ("dependencies", "host-dependencies", "build-dependencies"):
            key = f"{where}{kind}"
            for name, value in mv.table(self.path, table.get(kind), self.key(key)).items():
                target.dependencies[name] = [self.spec(name, value, key)]
        key = f"{where}constraints"
        for name, value in mv.table(self.path, table.get("constraints"), self.key(key)).items():
            target.constraints[name] = [self.spec(name, value, key)]
        if mv.table(
            self.path, table.get("pypi-dependencies"), self.key(f"{where}pypi-dependencies")
        ):
            target.pypi.append(self.key(f"{where}pypi-dependencies"))
        return target

    def environments(self, value: Any) -> dict[str, EnvironmentDef]:
        result: dict[str, EnvironmentDef] = {}
        for name, item in mv.table(self.path, value, self.key("environments")).items():
            where = self.key(f"environments.{name}")
            if isinstance(item, list):
                result[name] = EnvironmentDef(name, mv.strings(self.path, item, where))
                continue
            table = mv.table(self.path, item, where)
            unknown = set(table) - {"features", "solve-group", "no-default-feature"}
            if unknown:
                raise self.fail(f"{where}: unknown key {sorted(unknown)[0]!r}")
            flag = table.get("no-default-feature", False)
            if not isinstance(flag, bool):
                raise self.fail(
                    f"{where}.no-default-feature must be a boolean, not {mv.kind(flag)}"
                )
            group = table.get("solve-group")
            result[name] = EnvironmentDef(
                name,
                mv.strings(self.path, table.get("features", []), f"{where}.features"),
                no_default_feature=flag,
                solve_group=None
                if group is None
                else mv.string(self.path, group, f"{where}.solve-group"),
            )
        return result
