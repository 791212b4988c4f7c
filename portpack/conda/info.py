"""What a package's ``info/`` says about installing it (standard library only).

Reads ``paths.json`` (or the legacy ``files`` / ``has_prefix`` / ``no_link``),
``index.json`` and ``link.json`` from a decoded ``info/`` tar.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from portpack.conda.record import check_package_fields
from portpack.conda.tarstream import ChunkReader, iter_members
from portpack.errors import PackageError
from portpack.paths import RelPath, safe_relpath

LEGACY_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
_WANTED = {
    "info/paths.json",
    "info/index.json",
    "info/link.json",
    "info/files",
    "info/has_prefix",
    "info/no_link",
    "info/no_softlink",
}


@dataclass(slots=True)
class PathEntry:
    """One entry of ``paths.json``; once installed, its conda-meta ``paths_data`` entry.

    The linker turns each entry into its record in place (``path`` becomes where it
    was installed): one small object per path, not two, for packages with a million
    of them (benchmarks/paths_rss.py).
    """

    path: RelPath
    """``_path``, through the path check; once installed, the path in the prefix."""
    path_type: str = "hardlink"
    """``hardlink`` (a regular file), ``softlink`` or ``directory``."""
    sha256: str | None = None
    size: int | None = None
    placeholder: str | None = None
    file_mode: str | None = None
    """``text`` or ``binary`` when ``placeholder`` is set."""
    no_link: bool = False
    sha256_in_prefix: str | None = None
    """Set when installed: the digest of what the prefix holds, where it differs."""
    original_path: RelPath | None = None
    """Set when another package's file took ``path`` (this one is in __clobbers__)."""
    owner: tuple[str, str] | None = None
    """Set when installed: ``(package name, dist)``, shared by the package's files."""
    installed: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``paths_data`` entry of an installed path."""
        out: dict[str, Any] = {"_path": self.path, "path_type": self.path_type}
        if self.original_path:
            out["original_path"] = self.original_path
        for key, value in (
            ("sha256", self.sha256),
            ("sha256_in_prefix", self.sha256_in_prefix),
            ("size_in_bytes", self.size),
            ("file_mode", self.file_mode),
            ("prefix_placeholder", self.placeholder),
        ):
            if value is not None:
                out[key] = value
        if self.no_link:
            out["no_link"] = True
        return out


@dataclass
class PackageInfo:
    """The installation-relevant contents of a package's ``info/``."""

    index: dict[str, Any]
    paths: list[PathEntry]
    entry_points: list[str] = field(default_factory=list)
    """``cmd = module:func`` strings from ``link.json`` (noarch python)."""
    legacy: bool = False
    """True when built from ``info/files`` (path types come from the payload tar)."""

    @property
    def noarch(self) -> str | None:
        value = self.index.get("noarch")
        return str(value) if value else None

    @property
    def installed_size(self) -> int:
        return sum(p.size or 0 for p in self.paths)


def read_info(info_tar: bytes, what: str) -> PackageInfo:
    """Parse the ``info/`` tar of the package named ``what``."""
    files, paths_json = _extract(info_tar, what)
    if "info/index.json" not in files:
        raise PackageError(f"package {what} has no info/index.json")
    index = _json(files["info/index.json"], what, "info/index.json")
    # name, version and build become file names (conda-meta, __clobbers__/<name>/).
    check_package_fields(index, f"package {what}, info/index.json")
    entry_points: list[str] = []
    if "info/link.json" in files:
        link = _json(files["info/link.json"], what, "info/link.json")
        noarch = link.get("noarch") or {}
        listed = noarch.get("entry_points") or [] if isinstance(noarch, dict) else []
        if not isinstance(listed, list) or not all(isinstance(e, str) for e in listed):
            raise PackageError(
                f"package {what}: info/link.json is malformed (noarch.entry_points must be "
                "a list of strings)"
            )
        entry_points = listed
    if paths_json is not None:
        paths = _paths_json(paths_json, what)
        return PackageInfo(index=index, paths=paths, entry_points=entry_points)
    return PackageInfo(
        index=index, paths=_legacy_paths(files, what), entry_points=entry_points, legacy=True
    )


def _extract(info_tar: bytes, what: str) -> tuple[dict[str, bytes], bytes | memoryview | None]:
    """The wanted ``info/`` files, and ``paths.json`` apart: a view of ``info_tar``
    where possible, not a copy (it may be tens of MB)."""
    reader = ChunkReader(iter([info_tar]), f"info of package {what}")
    out: dict[str, bytes] = {}
    paths: bytes | memoryview | None = None
    for member in iter_members(reader):
        name = member.name.removeprefix("./")
        if name == "info/paths.json" and member.is_file:
            paths = reader.read(member.size)
        elif name in _WANTED and member.is_file:
            out[name] = bytes(reader.read(member.size))
    return out, paths


def _json(data: bytes, what: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise PackageError(f"package {what}: {name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise PackageError(f"package {what}: {name} is not a JSON object")
    return value


def _paths_json(data: bytes | memoryview, what: str) -> list[PathEntry]:
    """The entries of ``info/paths.json``.

    Each entry becomes a :class:`PathEntry` as soon as the parser has read it (an
    ``object_hook``), so a package with a million paths is never held as a million
    dicts too (they cost more than the entries: benchmarks/paths_rss.py).
    """
    where = f"package {what}, info/paths.json"

    def entry(p: dict[str, Any]) -> Any:
        if "_path" not in p:
            return p
        placeholder = p.get("prefix_placeholder")
        return PathEntry(
            path=safe_relpath(p["_path"], where),
            path_type=p.get("path_type", "hardlink"),
            sha256=p.get("sha256"),
            size=p.get("size_in_bytes"),
            # An empty placeholder is no placeholder, as conda reads it: replacing ""
            # would put the prefix between every two bytes of the file.
            placeholder=placeholder or None,
            file_mode=p.get("file_mode") or ("text" if placeholder else None),
            no_link=bool(p.get("no_link", False)),
        )

    try:
        # Decoded straight from the view of the info tar: one copy (the text), not two.
        text = str(data, json.detect_encoding(bytes(data[:4])), "surrogatepass")
        doc = json.loads(text, object_hook=entry)
    except ValueError as exc:
        raise PackageError(f"package {what}: info/paths.json is not valid JSON: {exc}") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise PackageError(f"package {what}: info/paths.json is malformed ({exc!r})") from exc
    if not isinstance(doc, dict):
        raise PackageError(f"package {what}: info/paths.json is not a JSON object")
    paths = doc.get("paths")
    if not isinstance(paths, list) or not all(type(p) is PathEntry for p in paths):
        raise PackageError(
            f"package {what}: info/paths.json is malformed (it needs a list of paths, "
            "each with a _path)"
        )
    return paths


def _legacy_paths(files: dict[str, bytes], what: str) -> list[PathEntry]:
    """Build path entries from ``info/files`` + ``info/has_prefix`` (old packages)."""
    if "info/files" not in files:
        raise PackageError(f"package {what} has neither info/paths.json nor info/files")
    prefixes = _has_prefix(files.get("info/has_prefix", b""), what)
    no_link = set(_lines(files.get("info/no_link", b""))) | set(
        _lines(files.get("info/no_softlink", b""))
    )
    entries = []
    where = f"package {what}, info/files"
    for line in _lines(files["info/files"]):
        placeholder, mode = prefixes.get(line, (None, None))
        path = safe_relpath(line, where)
        entries.append(
            PathEntry(path=path, placeholder=placeholder, file_mode=mode, no_link=line in no_link)
        )
    return entries


def _lines(data: bytes) -> list[str]:
    return [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]


def _has_prefix(data: bytes, what: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in _lines(data):
        try:
            parts = shlex.split(line)
        except ValueError:
            raise PackageError(
                f"package {what}: cannot parse info/has_prefix line {line!r}"
            ) from None
        if len(parts) == 1:
            out[parts[0]] = (LEGACY_PLACEHOLDER, "text")
        elif len(parts) == 3 and parts[1] in ("text", "binary"):
            if parts[0]:  # an empty placeholder is no placeholder (see _paths_json)
                out[parts[2]] = (parts[0], parts[1])
        else:
            raise PackageError(f"package {what}: cannot parse info/has_prefix line {line!r}")
    return out
