"""pixi's dependency values (``name = "version"`` or a spec table) as rattler MatchSpecs.

A spec table takes pixi's documented conda fields (``version``, ``build``,
``build-number``, ``channel``, ...); source dependencies (``path``, ``git``, ``url``)
are refused by name, and ``{ workspace = true }`` inherits the workspace's
``[dependencies]`` entry.  Versions follow pixi's rule: strict, with a bare version
meaning ``==`` (as pixi warns).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from portpack.resolve import manifest_values as mv
from portpack.resolve.manifest_values import TableReader

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
#: Keys whose value portpack writes as a list (``extras=[a, b]``).
_LIST_KEYS = ("extras", "flags")


class SpecReader(TableReader):
    """Turns the dependency values of one file into MatchSpec strings."""

    def __init__(self, path: Path, prefix: str) -> None:
        super().__init__(path, prefix)
        self.pool: dict[str, Any] = {}
        """The workspace's ``[dependencies]``, for ``{ workspace = true }``."""

    def spec(self, name: str, value: Any, key: str) -> str:
        """A rattler MatchSpec for ``name = value`` of a dependency table."""
        import rattler

        where = f"{self.key(key)} {name}" if key else name
        if not _PACKAGE_NAME.fullmatch(name):
            raise self.fail(f"{where}: {name!r} is not a conda package name")
        if isinstance(value, dict) and set(value) == {"workspace"} and value["workspace"] is True:
            if name not in self.pool:
                raise self.fail(
                    f"{where} inherits from the workspace's dependencies, which do not list it"
                )
            return self.spec(name, self.pool[name], "")
        fields = self._fields(name, value, where)
        parts = []
        for key_name in _SPEC_KEYS:  # in this order, whatever the table's
            if key_name not in fields:
                continue
            part = self._bracket(key_name, fields[key_name], f"{where}.{key_name}")
            if part is not None:
                parts.append(part)
        spec = f"{name}[{', '.join(parts)}]" if parts else name
        try:
            return str(rattler.MatchSpec(spec, strict=False))
        except Exception as exc:  # py-rattler's parse error types
            raise self.fail(f"{where}: invalid package spec: {exc}") from exc

    def _fields(self, name: str, value: Any, where: str) -> dict[str, Any]:
        """The spec table of ``value`` (a version string is ``{version = ...}``), checked."""
        if isinstance(value, str):
            return {"version": value}
        if not isinstance(value, dict):
            raise self.fail(
                f"{where}: cannot understand dependency {name} = {value!r} "
                "(expected a version string or a table)"
            )
        source = [k for k in _SOURCE_KEYS if k in value]
        if source:
            raise self.fail(
                f"{where}: source dependency {name!r} ({source[0]} = "
                f"{value[source[0]]!r}) is not supported",
                hint="Build the package (pixi build, rattler-build) and add the .conda with "
                "--inject FILE, or depend on a channel's build of it.",
            )
        unknown = [k for k in value if k not in _SPEC_KEYS]
        if unknown:
            raise self.fail(
                f"{where}: unsupported key {unknown[0]!r} (portpack knows {', '.join(_SPEC_KEYS)})"
            )
        if not value:
            raise self.fail(f"{where}: an empty table asks for nothing; give at least a version")
        return dict(value)

    def _bracket(self, key_name: str, item: Any, where: str) -> str | None:
        """``key="value"`` of a MatchSpec bracket for one field (None: no constraint)."""
        bracket = _SPEC_KEYS[key_name]
        if key_name in _LIST_KEYS:
            values = mv.strings(self.path, item, where)
            listed = ", ".join(mv.plain(self.path, v, where) for v in values)
            return f"{bracket}=[{listed}]"
        if key_name == "track-features" and isinstance(item, list):
            item = " ".join(mv.strings(self.path, item, where))
        if key_name != "build-number":  # pixi takes strings only, save build numbers
            mv.string(self.path, item, where)
        text = mv.stringify(self.path, item, where).strip()
        if key_name == "version":
            if text in ("", "*"):
                return None
            text = self.version_spec(text, where)
        return f'{bracket}="{mv.plain(self.path, text, where)}"'

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
