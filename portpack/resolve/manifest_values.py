"""Typed values of a manifest file: every wrong type raises :class:`ManifestError`
naming the file and the key.  Shared by the pixi and environment.yml readers."""

from __future__ import annotations

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


class TableReader:
    """Reads the tables of one file (``prefix`` is ``tool.pixi.`` in pyproject.toml)."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = path
        self.prefix = prefix

    def key(self, key: str) -> str:
        """``[prefix.key]``, as messages name a key."""
        return f"[{self.prefix}{key}]"

    def fail(self, message: str, hint: str | None = None) -> ManifestError:
        """A :class:`ManifestError` naming the file."""
        return ManifestError(f"{self.path}: {message}", hint=hint)


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document of ``path`` (TOML 1.1, as pixi reads it)."""
    try:
        with open(path, "rb") as fh:
            return tomli.load(fh)
    except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc


def table(path: Path, value: Any, key: str) -> dict[str, Any]:
    """``value`` as a table (None: an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{path}: {key} must be a table, not {kind(value)}")
    return value


def kind(value: Any) -> str:
    """What ``value`` is, for messages: ``an integer (3)``."""
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), f"a {type(value).__name__}") + f" ({value!r:.60})"


def string(path: Path, value: Any, key: str) -> str:
    """``value`` as a string."""
    if not isinstance(value, str):
        raise ManifestError(f"{path}: {key} must be a string, not {kind(value)}")
    return value


def strings(path: Path, value: Any, key: str) -> list[str]:
    """``value`` as an array of strings."""
    if not isinstance(value, list):
        raise ManifestError(f"{path}: {key} must be an array of strings, not {kind(value)}")
    return [string(path, item, f"{key}[{i}]") for i, item in enumerate(value)]


def stringify(path: Path, value: Any, key: str) -> str:
    """A string or a number (TOML ``version = 3``) as a string."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ManifestError(f"{path}: {key} must be a string, not {kind(value)}")
    return str(value)


def plain(path: Path, text: str, key: str) -> str:
    """``text``, refused if it would break out of a MatchSpec bracket value."""
    if any(c in text for c in "\"'[]\n\r"):
        raise ManifestError(f"{path}: {key}: {text!r} contains a quote, bracket or line break")
    return text


def array(path: Path, value: Any, key: str) -> list[Any]:
    """``value`` as a list (None: an empty one)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{path}: {key} must be a list, not {kind(value)}")
    return value
