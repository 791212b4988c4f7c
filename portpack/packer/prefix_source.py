"""``pack --prefix``: an installed conda environment as the records to pack.

The environment's ``conda-meta/*.json`` records become the lock-equivalent record list
that :func:`portpack.pack` packs exactly as it packs a lock.  Each package is taken, as
its original ``.conda`` / ``.tar.bz2`` file, from the first place holding a copy whose
sha256 (md5 when the record has none) matches the record: portpack's own cache, the
file the record names (conda's ``package_tarball_full_path``), conda's package caches
(``$CONDA_PKGS_DIRS``, condarc's ``pkgs_dirs``, ``<root>/pkgs``, ``~/.conda/pkgs``) and
pixi's and rattler's (``$PIXI_CACHE_DIR``, ``$RATTLER_CACHE_DIR``,
``~/.cache/rattler/cache``, each with ``pkgs/``).  A copy that does not match is
skipped with a warning; without a good copy the package is downloaded by the record's
URL through the fetcher (its cache, mirrors and credentials).

Before anything is fetched the prefix is compared with its records.  Files that no
record owns (pip installs, edits, the files of records of channel ``pypi``, which
conda writes for PyPI packages), files a record owns whose type or content changed,
and files a record owns that are missing are refused
(:class:`~portpack.errors.PrefixContentError`, which lists them) unless
``unowned="ignore"``: then the packages are packed as published, so unowned files are
left out and modified or missing files come back as their package has them.

The steps have a module each: :mod:`.prefix_meta` reads the records,
:mod:`.prefix_scan` compares the prefix with them, :mod:`.package_caches` lists the
package caches; this module puts them together and fetches.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portpack.conda.record import PackageRecord
from portpack.errors import FetchError, PrefixContentError, UsageError
from portpack.net.config import NetworkConfig
from portpack.net.fetch import Download, Fetcher
from portpack.net.transport import Transport
from portpack.packer.local_files import digest
from portpack.packer.package_caches import package_dirs
from portpack.packer.prefix_meta import META_DIR, platform_of, read_records
from portpack.packer.prefix_scan import PrefixContents, scan
from portpack.progress import Reporter

__all__ = ["UNOWNED_POLICIES", "PrefixContents", "PrefixSource", "package_dirs", "read_prefix"]

#: What ``unowned`` may be: refuse to pack, or pack the packages as published.
UNOWNED_POLICIES = ("refuse", "ignore")
_ABSENT = "absent"

_Key = tuple[str, str]


def _key(record: Mapping[str, Any]) -> _Key:
    """A package file's identity: its file name and checksum (sha256, else md5)."""
    return str(record.get("fn")), str(record.get("sha256") or record.get("md5") or "").lower()


@dataclass
class PrefixSource:
    """An environment read for packing: its records, contents and package caches."""

    prefix: Path
    platform: str
    records: list[PackageRecord]
    """The conda packages, dependencies first."""
    contents: PrefixContents
    package_dirs: list[Path]
    """Package caches searched (existing directories only), in order."""
    _files: dict[_Key, tuple[PackageRecord, list[Path]]] = field(default_factory=dict)
    """Each package file's record and the directories that record names for it."""

    def fetcher(
        self,
        cache_dir: Path,
        concurrency: int,
        reporter: Reporter | None = None,
        *,
        network: NetworkConfig | None = None,
    ) -> Fetcher:
        """A :class:`~portpack.net.fetch.Fetcher` that looks in the package caches first."""
        return _PrefixFetcher(self, cache_dir, concurrency, reporter, network=network)

    def candidates(self, record: PackageRecord) -> list[Path]:
        """Where the package file of ``record`` may be, most specific first."""
        seen: dict[Path, None] = {}
        named = self._files.get(_key(record.raw), (record, []))[1]
        for directory in [*named, *self.package_dirs]:
            seen.setdefault(directory / record.fn)
        return list(seen)

    def record_for(self, raw: Mapping[str, Any]) -> PackageRecord | None:
        """The environment's record of the package file ``raw`` (JSON) names, if any."""
        found = self._files.get(_key(raw))
        return found[0] if found is not None else None


class _PrefixFetcher(Fetcher):
    """Takes each package of the environment from a package cache, else downloads it."""

    def __init__(
        self,
        source: PrefixSource,
        cache_dir: Path,
        concurrency: int,
        reporter: Reporter | None,
        *,
        network: NetworkConfig | None,
    ) -> None:
        super().__init__(cache_dir, concurrency, reporter, network=network)
        self._source = source

    def fetch(self, client: Transport | None, download: Download) -> Path:
        package = None if download.record is None else self._source.record_for(download.record.raw)
        if package is None:  # an injected wheel or package
            return super().fetch(client, download)
        rejected = []
        own = self.cache_path(download)
        for candidate in [own, *self._source.candidates(package)]:
            problem = _verify(candidate, package)
            if problem is None:
                self.reporter.on_download_complete(package.name, cached=True)
                return candidate
            if problem == _ABSENT:
                continue
            rejected.append(f"{candidate} ({problem})")
            if candidate != own:  # the fetcher warns about its own entry itself
                self.reporter.warning(
                    f"{candidate} is not the package {package.dist} of the environment "
                    f"({problem}); not using it"
                )
        if not package.url:
            raise FetchError(
                f"package {package.dist} is in none of the package caches and its record "
                "has no URL to download it from",
                hint=self._looked(package, rejected),
            )
        try:
            return super().fetch(client, download)
        except FetchError as exc:
            raise FetchError(
                f"package {package.dist} is in none of the package caches, and {exc.message}",
                url=exc.url,
                hint=self._looked(package, rejected) + (f"\n{exc.hint}" if exc.hint else ""),
            ) from exc

    def _looked(self, record: PackageRecord, rejected: list[str]) -> str:
        places = [
            str(self.cache_dir / "pkgs"),
            *(str(p.parent) for p in self._source.candidates(record)),
        ]
        text = f"Looked for {record.fn} in: {', '.join(places)}."
        if rejected:
            text += f" Not matching the record: {'; '.join(rejected)}."
        return text + " Put the file in one of them or name its directory in $CONDA_PKGS_DIRS."


def _verify(path: Path, record: PackageRecord) -> str | None:
    """``None`` if ``path`` is the record's package file, ``_ABSENT``, or what is wrong."""
    try:
        st = path.stat()
    except OSError:
        return _ABSENT
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if record.size is not None and st.st_size != record.size:
        return f"{st.st_size} bytes, the record says {record.size}"
    algorithm = "sha256" if record.sha256 else "md5"
    expected = str(record.sha256 or record.md5).lower()
    try:
        actual = digest(path, algorithm, follow=True)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return None if actual == expected else f"{algorithm} {actual}, the record says {expected}"


def read_prefix(
    prefix: str | os.PathLike[str],
    *,
    platform: str | None = None,
    unowned: str | None = None,
    reporter: Reporter | None = None,
) -> PrefixSource:
    """Read the environment at ``prefix`` for packing (see the module docstring).

    ``unowned`` is ``"refuse"`` (the default) or ``"ignore"``.  Raises
    :class:`UsageError` for a directory that is not an environment,
    :class:`~portpack.errors.PackageError` for a malformed or unsafe record and
    :class:`PrefixContentError` for what the records do not describe.
    """
    policy = unowned or "refuse"
    if policy not in UNOWNED_POLICIES:
        raise UsageError(f"unknown --unowned {policy!r}; choose {' or '.join(UNOWNED_POLICIES)}")
    root = Path(prefix).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"--prefix {prefix}: no such directory")
    if not (root / META_DIR).is_dir():
        raise UsageError(f"{root} is not a conda environment (it has no {META_DIR} directory)")
    installed, pypi = read_records(root / META_DIR)
    if not installed:
        what = f" (only PyPI records: {', '.join(p.label for p in pypi)})" if pypi else ""
        raise UsageError(f"the environment {root} has no conda packages to pack{what}")
    platform = platform_of(installed, platform, root)
    contents = scan(root, installed, pypi)
    _check_contents(root, contents, policy, reporter or Reporter())
    from portpack.packer.inject import ordered

    return PrefixSource(
        prefix=root,
        platform=platform,
        records=ordered(sorted((i.record for i in installed), key=lambda r: r.name)),
        contents=contents,
        package_dirs=package_dirs(root),
        _files={_key(i.record.raw): (i.record, i.tarball_dirs) for i in installed},
    )


def _check_contents(root: Path, contents: PrefixContents, policy: str, reporter: Reporter) -> None:
    """Refuse (or, with ``policy`` ``"ignore"``, warn about) what the records do not describe."""
    if contents.clean:
        return
    summary = contents.describe()
    if policy == "refuse":
        raise PrefixContentError(
            f"the environment {root} holds what its conda records do not describe:\n{summary}",
            unowned=contents.unowned,
            modified=contents.modified,
            missing=contents.missing,
            hint="portpack packs the environment's conda packages as published. To pack "
            "anyway, pass --unowned=ignore: files no package owns are left out, and "
            "modified or missing files come back as their package has them. Add PyPI "
            "packages as wheels with --inject FILE.whl.",
        )
    reporter.warning(f"packing the conda packages of {root} as published:\n{summary}")
