"""Write real conda packages (``.conda`` and ``.tar.bz2``) for edge-case tests.

Only the standard library and :mod:`zstandard` are used. The metadata follows what
conda-build and rattler-build write:

* ``info/index.json``: the package record (name, version, build, depends, subdir, ...).
* ``info/paths.json``: ``paths_version`` 1 with one entry per path: ``_path``,
  ``path_type`` (``hardlink`` | ``softlink`` | ``directory``), ``sha256``,
  ``size_in_bytes`` and, for relocatable files, ``prefix_placeholder`` + ``file_mode``.
* ``info/files`` + ``info/has_prefix`` instead of ``paths.json`` for legacy packages.
* ``info/link.json`` for ``noarch: python`` packages (entry points).
* ``info/about.json``.

Archives are deterministic: sorted members, fixed mtimes, uid/gid 0 and no user names.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import posixpath
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

import zstandard

PathKind = Literal["file", "symlink", "directory"]
FileMode = Literal["text", "binary"]
NoArch = Literal["python", "generic"]
Subdir = Literal["noarch", "linux-64"]

#: Placeholder of pre-paths.json conda-build (the default of ``info/has_prefix``).
LEGACY_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
#: mtime of every archive member (2023-11-14), and the index.json timestamp in ms.
ARCHIVE_MTIME = 1_700_000_000
DEFAULT_TIMESTAMP_MS = ARCHIVE_MTIME * 1000
#: ZIP entry date of ``.conda`` members (the earliest a ZIP can hold).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_CONDA_FORMAT_VERSION = 2
_CHUNK = 1 << 20


def long_placeholder(
    stem: str = "/home/conda/feedstock_root/build_artifacts/python_1700000000000/_h_env",
    length: int = 255,
) -> str:
    """Return a conda-forge-like build prefix: *stem* padded with ``_placehold``."""
    padded = stem
    while len(padded) < length:
        padded += "_placehold"
    return padded[:length]


#: conda-forge-like 255 character build prefix used as the default placeholder.
DEFAULT_PLACEHOLDER = long_placeholder()


@dataclass(frozen=True)
class Entry:
    """One path of a package: a regular file, a symlink or an empty directory.

    ``data`` is the content of a file, either in memory or as a path on disk (read
    lazily, so big packages need not fit in memory). A file with ``placeholder`` is
    relocated at install time: installers replace the placeholder with the prefix.
    """

    kind: PathKind = "file"
    data: bytes | Path = b""
    mode: int = 0o644
    target: str = ""
    placeholder: str | None = None
    file_mode: FileMode = "text"

    @classmethod
    def file(cls, data: bytes | str | Path, mode: int = 0o644) -> Entry:
        """A regular file."""
        return cls("file", _as_data(data), mode)

    @classmethod
    def executable(cls, data: bytes | str | Path) -> Entry:
        """A regular file with mode 0755."""
        return cls.file(data, 0o755)

    @classmethod
    def symlink(cls, target: str) -> Entry:
        """A symbolic link to *target* (relative to the link's directory, or absolute)."""
        return cls("symlink", target=target, mode=0o777)

    @classmethod
    def directory(cls) -> Entry:
        """An empty directory (``path_type: directory`` in paths.json)."""
        return cls("directory", mode=0o755)

    @classmethod
    def prefixed(
        cls,
        data: bytes | str | Path,
        placeholder: str = DEFAULT_PLACEHOLDER,
        file_mode: FileMode = "text",
        mode: int = 0o644,
    ) -> Entry:
        """A file containing *placeholder*, which installers replace with the prefix."""
        entry = cls("file", _as_data(data), mode, placeholder=placeholder, file_mode=file_mode)
        if isinstance(entry.data, bytes) and placeholder.encode() not in entry.data:
            raise ValueError(f"placeholder {placeholder[:40]!r}... is not in the data")
        return entry

    def read(self) -> bytes:
        """Return the whole content of a file entry."""
        return self.data.read_bytes() if isinstance(self.data, Path) else self.data

    def open(self) -> IO[bytes]:
        """Open the content of a file entry for streaming."""
        if isinstance(self.data, Path):
            return self.data.open("rb")
        return io.BytesIO(self.data)

    def size(self) -> int:
        """Return the size of a file entry's content."""
        return self.data.stat().st_size if isinstance(self.data, Path) else len(self.data)

    def digest(self) -> tuple[str, int]:
        """Return ``(sha256 hex, size)`` of a file entry's content."""
        hasher, size = hashlib.sha256(), 0
        with self.open() as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
        return hasher.hexdigest(), size


FileValue = bytes | str | Entry


@dataclass
class PackageSpec:
    """What to put in a conda package.

    ``files`` maps paths relative to the prefix (``bin/x``; for ``noarch: python``
    packages ``site-packages/...`` and ``python-scripts/...``) to bytes, str (UTF-8)
    or an :class:`Entry`. ``build`` defaults to the build number (``"0"``). A package
    in the ``noarch`` subdir without ``noarch`` becomes ``noarch: generic``.
    ``extra_index`` is merged into index.json (e.g. ``python_site_packages_path``).
    ``legacy`` writes ``info/files`` + ``info/has_prefix`` instead of paths.json.
    """

    name: str
    version: str
    build: str | None = None
    build_number: int = 0
    subdir: Subdir = "noarch"
    noarch: NoArch | None = None
    depends: list[str] = field(default_factory=list)
    files: Mapping[str, FileValue] = field(default_factory=dict)
    entry_points: list[str] = field(default_factory=list)
    legacy: bool = False
    extra_index: dict[str, Any] = field(default_factory=dict)
    license: str = "MIT"
    summary: str = ""
    timestamp: int = DEFAULT_TIMESTAMP_MS

    def __post_init__(self) -> None:
        if self.subdir == "noarch" and self.noarch is None:
            self.noarch = "generic"
        if self.noarch is not None and self.subdir != "noarch":
            raise ValueError(f"{self.name}: noarch packages belong in the noarch subdir")
        if self.entry_points and self.noarch != "python":
            raise ValueError(f"{self.name}: entry points need noarch: python")
        for path, value in self.files.items():
            _check_path(path)
            if self.legacy and isinstance(value, Entry) and value.kind == "directory":
                raise ValueError(f"{self.name}: legacy packages cannot hold directories")

    @property
    def build_string(self) -> str:
        """The build string (``build`` or the build number)."""
        return self.build if self.build is not None else str(self.build_number)

    @property
    def stem(self) -> str:
        """``name-version-build``: the file name without extension."""
        return f"{self.name}-{self.version}-{self.build_string}"

    def entries(self) -> list[tuple[str, Entry]]:
        """The payload as sorted ``(path, Entry)`` pairs."""
        return sorted((path, _as_entry(value)) for path, value in self.files.items())


def write_conda(dest_dir: Path, spec: PackageSpec, *, zstd_level: int = 3) -> Path:
    """Write ``<dest_dir>/<stem>.conda`` (format v2) and return its path.

    The ZIP holds, stored uncompressed: ``metadata.json``, ``pkg-<stem>.tar.zst`` and
    ``info-<stem>.tar.zst`` (the order conda-package-handling and rattler-build use).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{spec.stem}.conda"
    metadata = json.dumps({"conda_pkg_format_version": _CONDA_FORMAT_VERSION}).encode()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        with archive.open(_zip_info("metadata.json"), "w") as member:
            member.write(metadata)
        _write_zst_member(archive, f"pkg-{spec.stem}.tar.zst", spec.entries(), zstd_level)
        _write_zst_member(archive, f"info-{spec.stem}.tar.zst", info_entries(spec), zstd_level)
    return out


def write_tar_bz2(dest_dir: Path, spec: PackageSpec, *, level: int = 9) -> Path:
    """Write ``<dest_dir>/<stem>.tar.bz2`` (``info/`` first, then the payload)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{spec.stem}.tar.bz2"
    with bz2.open(out, "wb", compresslevel=level) as stream:
        _write_tar(stream, [*info_entries(spec), *spec.entries()])
    return out


def info_entries(spec: PackageSpec) -> list[tuple[str, Entry]]:
    """The ``info/`` files of *spec* as sorted ``(path, Entry)`` pairs."""
    files: dict[str, bytes] = {
        "info/index.json": _json_bytes(index_json(spec)),
        "info/about.json": _json_bytes(about_json(spec)),
    }
    if spec.legacy:
        files["info/files"] = legacy_files(spec).encode()
        files["info/has_prefix"] = legacy_has_prefix(spec).encode()
    else:
        files["info/paths.json"] = _json_bytes(paths_json(spec))
    link = link_json(spec)
    if link is not None:
        files["info/link.json"] = _json_bytes(link)
    return sorted((path, Entry.file(data)) for path, data in files.items())


def index_json(spec: PackageSpec) -> dict[str, Any]:
    """The content of ``info/index.json``."""
    index: dict[str, Any] = {
        "name": spec.name,
        "version": spec.version,
        "build": spec.build_string,
        "build_number": spec.build_number,
        "depends": list(spec.depends),
        "license": spec.license,
        "subdir": spec.subdir,
        "timestamp": spec.timestamp,
    }
    if spec.noarch is not None:
        index["noarch"] = spec.noarch
    else:
        index["arch"], index["platform"] = _arch_platform(spec.subdir)
    index.update(spec.extra_index)
    return index


def paths_json(spec: PackageSpec) -> dict[str, Any]:
    """The content of ``info/paths.json`` (``paths_version`` 1)."""
    entries = spec.entries()
    by_path = dict(entries)
    return {
        "paths": [_paths_entry(path, entry, by_path) for path, entry in entries],
        "paths_version": 1,
    }


def link_json(spec: PackageSpec) -> dict[str, Any] | None:
    """The content of ``info/link.json`` for ``noarch: python``, else None."""
    if spec.noarch != "python":
        return None
    noarch = {"entry_points": list(spec.entry_points), "type": "python"}
    return {"noarch": noarch, "package_metadata_version": 1}


def about_json(spec: PackageSpec) -> dict[str, Any]:
    """The content of ``info/about.json``."""
    return {"license": spec.license, "summary": spec.summary or f"portpack fixture {spec.name}"}


def legacy_files(spec: PackageSpec) -> str:
    """``info/files``: one payload path a line."""
    return "".join(f"{path}\n" for path, _ in spec.entries())


def legacy_has_prefix(spec: PackageSpec) -> str:
    """``info/has_prefix``: ``placeholder mode path`` lines.

    A text file using :data:`LEGACY_PLACEHOLDER` gets the short one-field form (just
    the path), which conda reads as that placeholder in text mode.
    """
    lines = []
    for path, entry in spec.entries():
        if entry.placeholder is None:
            continue
        if entry.placeholder == LEGACY_PLACEHOLDER and entry.file_mode == "text":
            lines.append(f"{path}\n")
        else:
            lines.append(f"{entry.placeholder} {entry.file_mode} {path}\n")
    return "".join(lines)


def _paths_entry(path: str, entry: Entry, by_path: Mapping[str, Entry]) -> dict[str, Any]:
    """One paths.json entry, keyed like conda-build (sorted keys)."""
    if entry.kind == "directory":
        return {"_path": path, "path_type": "directory"}
    if entry.kind == "symlink":
        # Like rattler-build: hash of the file the link resolves to (of the target text
        # if it dangles or leaves the package), size of the link itself.
        resolved = _resolve_link(path, by_path)
        target = entry.target.encode()
        sha = resolved.digest()[0] if resolved else hashlib.sha256(target).hexdigest()
        return {
            "_path": path,
            "path_type": "softlink",
            "sha256": sha,
            "size_in_bytes": len(target),
        }
    sha, size = entry.digest()
    record: dict[str, Any] = {
        "_path": path,
        "path_type": "hardlink",
        "sha256": sha,
        "size_in_bytes": size,
    }
    if entry.placeholder is not None:
        record["prefix_placeholder"] = entry.placeholder
        record["file_mode"] = entry.file_mode
    return record


def _resolve_link(path: str, by_path: Mapping[str, Entry], depth: int = 0) -> Entry | None:
    """Follow the symlink at *path* inside the package to a file entry, if any."""
    entry = by_path.get(path)
    if entry is None or depth > 16:
        return None
    if entry.kind == "file":
        return entry
    if entry.kind != "symlink" or entry.target.startswith("/"):
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry.target))
    return _resolve_link(target, by_path, depth + 1)


def _write_zst_member(
    archive: zipfile.ZipFile, name: str, entries: Iterable[tuple[str, Entry]], level: int
) -> None:
    """Stream a zstd-compressed tar of *entries* into the ZIP member *name*."""
    compressor = zstandard.ZstdCompressor(level=level, threads=-1)
    with (
        archive.open(_zip_info(name), "w", force_zip64=True) as member,
        compressor.stream_writer(member, closefd=False) as zst,
    ):
        _write_tar(zst, entries)


def _write_tar(stream: IO[bytes], entries: Iterable[tuple[str, Entry]]) -> None:
    """Write an uncompressed tar of *entries* to *stream* with deterministic headers."""
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, entry in entries:
            info = _tar_info(path, entry)
            if entry.kind != "file":
                tar.addfile(info)
                continue
            with entry.open() as content:
                tar.addfile(info, content)


def _tar_info(path: str, entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mtime, info.mode = ARCHIVE_MTIME, entry.mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
    elif entry.kind == "directory":
        info.type = tarfile.DIRTYPE
    else:
        info.size = entry.size()
    return info


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _arch_platform(subdir: str) -> tuple[str, str]:
    platform, _, bits = subdir.partition("-")
    return {"64": "x86_64", "aarch64": "aarch64", "32": "x86"}.get(bits, bits), platform


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _as_data(data: bytes | str | Path) -> bytes | Path:
    return data.encode() if isinstance(data, str) else data


def _as_entry(value: FileValue) -> Entry:
    return value if isinstance(value, Entry) else Entry.file(value)


def _check_path(path: str) -> None:
    pure = PurePosixPath(path)
    bad = (
        not path
        or pure.is_absolute()
        or ".." in pure.parts
        or str(pure) != path
        or pure.parts[0] == "info"
    )
    if bad:
        raise ValueError(f"invalid package path {path!r}")
