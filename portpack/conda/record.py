"""A conda package's record and the fields that name its files.

:func:`check_package_fields` is the one check of the ``name``, ``version`` and
``build`` a record or ``index.json`` gives a package: they become file names
(``conda-meta/<name>-<version>-<build>.json``, ``__clobbers__/<name>/``).
:func:`dist` is the one place ``name-version-build`` is made.

:class:`PackageRecord` is the one typed record carried from the lockfile through
the fetcher and the archive to the unpacker: the fields portpack reads, typed and
checked once, with the whole JSON object kept for what it writes (conda-meta,
``portpack.json``, pixi-pack's ``repodata.json``) so no field is lost on the way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portpack.errors import ArchiveError, PortpackError, UnsafeArchiveError

#: What conda allows in the fields that name a package's files (CEP 26, with the
#: length of a name relaxed to 128 and either case accepted, as conda and rattler
#: read them): a name of letters, digits, ``_``, ``.``, ``-``; a version of letters,
#: digits, ``_``, ``.``, ``+``, ``!``; a build of letters, digits, ``_``, ``.``, ``+``.
#: None may start with ``.`` or ``-`` or hold ``..`` (so none is ``.``/``..``, and none
#: holds ``/``, ``\``, NUL, whitespace or a look-alike of them).
_FIELD_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "name": (
        re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"),
        128,
        "ASCII letters, digits, '_', '.' and '-', not starting with '.' or '-'",
    ),
    "version": (
        re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!]*"),
        64,
        "ASCII letters, digits, '_', '.', '+' and '!', not starting with '.'",
    ),
    "build": (
        re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+]*"),
        64,
        "ASCII letters, digits, '_', '.' and '+', not starting with '.'",
    ),
}


def check_package_fields(record: Mapping[str, Any], where: str) -> str:
    """Check a record's ``name``, ``version`` and ``build``; return ``name-version-build``.

    Raises :class:`UnsafeArchiveError` naming ``where``, the package and the field.
    """
    name = record.get("name")
    label = name if isinstance(name, str) and _valid("name", name) else None
    for field, (_, limit, rule) in _FIELD_RULES.items():
        value = record.get(field)
        if isinstance(value, str) and _valid(field, value):
            continue
        package = f"package {label}" if label else "a package"
        if not isinstance(value, str):
            problem = "is missing" if value is None else f"is not a string ({value!r})"
        else:
            problem = f"is {value[:80]!r}{'...' if len(value) > 80 else ''}"
            rule = f"conda allows only {rule}, at most {limit} characters, no '..'"
        if not isinstance(value, str):
            rule = "it names the package's files"
        raise UnsafeArchiveError(f"{where}: {package}: its {field!r} {problem}; {rule}")
    return dist(record)


def _valid(field: str, value: str) -> bool:
    pattern, limit, _ = _FIELD_RULES[field]
    return len(value) <= limit and ".." not in value and pattern.fullmatch(value) is not None


def dist(record: Mapping[str, Any]) -> str:
    """``name-version-build``: the stem of a package's conda-meta record."""
    return _dist(record["name"], record["version"], record["build"])


def _dist(name: str, version: str, build: str) -> str:
    return f"{name}-{version}-{build}"


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """One conda package's repodata record (``index.json`` plus ``fn``, ``url``, hashes).

    Make one with :meth:`from_json`; :meth:`to_json` gives back every field of the
    object it was made from, :meth:`replace` a copy with some fields changed.
    """

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    fn: str
    url: str | None
    channel: str | None
    sha256: str | None
    md5: str | None
    size: int | None
    depends: tuple[str, ...]
    constrains: tuple[str, ...]
    noarch: str | None
    """``"python"``, ``"generic"`` or None (the legacy ``noarch: true`` is ``"generic"``)."""
    python_site_packages_path: str | None
    raw: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)
    """The JSON object as read (and as written back by :meth:`to_json`)."""

    @property
    def dist(self) -> str:
        """``name-version-build``: the stem of the package's conda-meta record."""
        return _dist(self.name, self.version, self.build)

    @classmethod
    def from_json(
        cls, raw: Mapping[str, Any], where: str, error: type[PortpackError] = ArchiveError
    ) -> PackageRecord:
        """Check ``raw`` (a repodata record as JSON) and type it.

        ``name``, ``version`` and ``build`` go through :func:`check_package_fields`
        (:class:`UnsafeArchiveError`); any other field of the wrong type raises
        ``error`` naming ``where``, the package and the field.
        """
        if not isinstance(raw, Mapping):
            raise error(f"{where}: a package record is not an object: {raw!r:.80}")
        check_package_fields(raw, where)
        what = f"{where}: package {raw['name']}"
        return cls(
            name=raw["name"],
            version=raw["version"],
            build=raw["build"],
            build_number=_typed(raw, "build_number", int, what, error, 0),
            subdir=_typed(raw, "subdir", str, what, error, ""),
            fn=_typed(raw, "fn", str, what, error, ""),
            url=_typed(raw, "url", str, what, error),
            channel=_typed(raw, "channel", str, what, error),
            sha256=_typed(raw, "sha256", str, what, error),
            md5=_typed(raw, "md5", str, what, error),
            size=_typed(raw, "size", int, what, error),
            depends=_strings(raw, "depends", what, error),
            constrains=_strings(raw, "constrains", what, error),
            noarch=_noarch(raw.get("noarch"), what, error),
            python_site_packages_path=_typed(raw, "python_site_packages_path", str, what, error),
            raw=dict(raw),
        )

    def to_json(self) -> dict[str, Any]:
        """The record as JSON: every field it was made from."""
        return dict(self.raw)

    def replace(self, where: str, **changes: Any) -> PackageRecord:
        """A copy with ``changes`` applied to the JSON (``None`` removes a field)."""
        raw = {**self.raw, **changes}
        return PackageRecord.from_json(
            {k: v for k, v in raw.items() if v is not None}, where, UnsafeArchiveError
        )


def _typed(
    raw: Mapping[str, Any],
    key: str,
    kind: type[Any],
    what: str,
    error: type[PortpackError],
    default: Any = None,
) -> Any:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        wanted = "an integer" if kind is int else "a string"
        raise error(f"{what}: its {key!r} should be {wanted}, not {value!r:.80}")
    return value


def _strings(
    raw: Mapping[str, Any], key: str, what: str, error: type[PortpackError]
) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise error(f"{what}: its {key!r} is not a list of strings ({value!r:.80})")
    return tuple(value)


def _noarch(value: Any, what: str, error: type[PortpackError]) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "generic"
    if value in ("python", "generic"):
        return str(value)
    raise error(f"{what}: its 'noarch' is {value!r:.80}, not 'python' or 'generic'")
