"""pixi's platforms and virtual packages: the ``platforms`` array (subdirs, or tables
naming a platform with its virtual packages) and ``[system-requirements]``."""

from __future__ import annotations

from typing import Any

from portpack.resolve import manifest_values as mv
from portpack.resolve.manifest_model import SUBDIRS, Platform
from portpack.resolve.manifest_values import TableReader

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


class PlatformReader(TableReader):
    """Reads platform tables and system requirements into virtual packages."""

    def platforms(self, value: Any, key: str) -> list[Platform]:
        """The workspace's ``platforms``: subdirs or platform tables, each named once."""
        if not isinstance(value, list):
            raise self.fail(f"{self.key(key)} must be an array, not {mv.kind(value)}")
        platforms: list[Platform] = []
        for i, item in enumerate(value):
            where = f"{self.key(key)}[{i}]"
            if isinstance(item, str):
                if item not in SUBDIRS:
                    raise self.fail(f"{where}: unknown platform {item!r}")
                platforms.append(Platform(item, item))
                continue
            platforms.append(self.platform_table(mv.table(self.path, item, where), where))
        names = [p.name for p in platforms]
        for name in names:
            if names.count(name) > 1:
                raise self.fail(f"{self.key(key)}: platform {name!r} is listed twice")
        return platforms

    def platform_table(self, table: dict[str, Any], where: str) -> Platform:
        """``{ platform = SUBDIR, name = ..., glibc = "2.17", __NAME = ... }``."""
        subdir = table.get("platform", table.get("name"))
        if subdir is None:
            raise self.fail(f"{where}: a platform table needs a platform key (its subdir)")
        subdir = mv.string(self.path, subdir, f"{where}.platform")
        if subdir not in SUBDIRS:
            raise self.fail(f"{where}: unknown platform {subdir!r}")
        virtual: dict[str, tuple[str, str]] = {}
        for key, value in table.items():
            if key in ("platform", "name"):
                continue
            text = mv.string(self.path, value, f"{where}.{key}")
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
            virtual[name] = ("1", text) if archspec else (self.checked_version(text, where), "0")
        name = mv.string(self.path, table.get("name", subdir), f"{where}.name")
        return Platform(name, subdir, tuple(sorted(virtual.items())))

    def checked_version(self, text: str, where: str) -> str:
        """``text``, if rattler reads it as a version."""
        import rattler

        try:
            rattler.Version(text)
        except Exception as exc:  # py-rattler's parse error types
            raise self.fail(f"{where}: {text!r} is not a version: {exc}") from exc
        return text

    def system_requirements(self, value: Any, key: str) -> dict[str, tuple[str, str]]:
        """``[system-requirements]`` as virtual packages (``__name -> (version, build)``)."""
        table = mv.table(self.path, value, self.key(key))
        virtual: dict[str, tuple[str, str]] = {}
        for name, item in table.items():
            where = f"{self.key(key)} {name}"
            if name == "libc":
                if isinstance(item, dict):
                    unknown = set(item) - {"family", "version"}
                    if unknown or "version" not in item:
                        raise self.fail(f"{where}: libc takes family and version")
                    family = mv.string(self.path, item.get("family", "glibc"), f"{where}.family")
                    version = self.checked_version(
                        mv.stringify(self.path, item["version"], f"{where}.version"), where
                    )
                else:
                    family = "glibc"
                    version = self.checked_version(mv.stringify(self.path, item, where), where)
                virtual[f"__{family.lower()}"] = (version, "0")
            elif name in ("linux", "cuda", "macos"):
                version = self.checked_version(mv.stringify(self.path, item, where), where)
                virtual[_VIRTUAL_KEYS[name]] = (version, "0")
            elif name == "archspec":
                virtual["__archspec"] = ("1", mv.string(self.path, item, where))
            else:
                raise self.fail(
                    f"{where}: unknown system requirement (pixi knows linux, libc, cuda, "
                    "macos, archspec)"
                )
        return virtual
