"""Local packages added to a locked environment (``pack --inject FILE``).

Each ``.conda`` / ``.tar.bz2`` file becomes a repodata record: its ``info/index.json``
with the file's sha256, md5 and size.  An injected package
replaces a locked package of the same name, or provides a source package of the lock
(pixi-build's ``conda: .``, which portpack cannot build).  The resulting set must be complete:
every dependency of every package satisfied by another one (virtual packages aside),
else :class:`~portpack.errors.IncompleteEnvironmentError` lists everything missing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portpack.conda.record import PackageRecord
from portpack.errors import (
    ArchiveError,
    IncompleteEnvironmentError,
    LockfileError,
    PackageError,
    UnsafeArchiveError,
    UsageError,
)
from portpack.progress import Reporter

if TYPE_CHECKING:
    from portpack.resolve.lockfile import SourcePackage

_EXTENSIONS = (".conda", ".tar.bz2")


def local_records(paths: Sequence[str | os.PathLike[str]], platform: str) -> list[PackageRecord]:
    """Records for local package files, checked to be for ``platform`` or ``noarch``."""
    records = []
    seen: dict[str, Path] = {}
    for given in paths:
        path = Path(given).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"--inject {given}: no such file")
        if not path.name.endswith(_EXTENSIONS):
            raise UsageError(f"--inject {given}: not a conda package (.conda or .tar.bz2)")
        doc = _index_json(path, str(given))
        doc.update(_digests(path), fn=path.name, url=path.as_uri(), channel=None)
        record = PackageRecord.from_json(doc, f"--inject {given}", PackageError)
        subdir = record.subdir or "noarch"
        if subdir not in (platform, "noarch"):
            raise UsageError(
                f"--inject {given}: package {record.dist} is for {subdir}, not {platform}"
            )
        if record.name in seen:
            raise UsageError(
                f"--inject {given}: package {record.name} is injected twice ({seen[record.name]})"
            )
        seen[record.name] = path
        records.append(record)
    return records


def _index_json(path: Path, given: str) -> dict[str, Any]:
    """The package's ``info/index.json``, read by the one package reader (its name,
    version and build checked as at unpack time)."""
    # Not py-rattler's RepoDataRecord.from_package_archive: its async runtime makes
    # the interpreter crash at exit now and then (py-rattler 0.28).
    from portpack.conda.package_file import PackageFile

    try:
        with open(path, "rb") as fh, PackageFile(fh, path.name, given) as package:
            return package.info().index
    except UnsafeArchiveError as exc:  # a field that would name a path: keep its type
        raise UnsafeArchiveError(f"--inject {given}: {exc}") from exc
    except (PackageError, ArchiveError, OSError) as exc:
        raise PackageError(f"--inject {given}: cannot read the package: {exc}") from exc


def _digests(path: Path) -> dict[str, Any]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest(), "size": path.stat().st_size}


def inject(
    records: list[PackageRecord],
    injected: list[PackageRecord],
    reporter: Reporter | None = None,
) -> list[PackageRecord]:
    """The locked records with ``injected`` added (replacing same-named ones), validated
    and in install order (dependencies first)."""
    reporter = reporter or Reporter()
    by_name = {r.name: r for r in injected}
    kept = []
    for record in records:
        replacement = by_name.get(record.name)
        if replacement is None:
            kept.append(record)
        else:
            reporter.warning(f"injected {replacement.dist} replaces the locked {record.dist}")
    combined = kept + injected
    check_complete(combined)
    return ordered(combined)


def ordered(records: list[PackageRecord]) -> list[PackageRecord]:
    """``records`` in install order (dependencies first): :mod:`portpack.conda.order`."""
    from portpack.conda.order import install_order

    return install_order(records)


def check_complete(records: list[PackageRecord]) -> None:
    """Raise :class:`IncompleteEnvironmentError` listing every unsatisfied dependency."""
    import rattler

    package_records = {r.name: _rattler_record(r) for r in records}
    missing: list[tuple[str, str]] = []
    for record in records:
        for dep in record.depends:
            if dep.startswith("__"):
                continue  # virtual packages: checked on the target at unpack time
            spec = rattler.MatchSpec(dep)
            name = spec.name.normalized if spec.name is not None else ""
            candidate = package_records.get(name)
            if candidate is None or not spec.matches(candidate):
                missing.append((record.dist, dep))
    if missing:
        lines = "".join(f"\n  - {dist} needs {dep}" for dist, dep in missing)
        raise IncompleteEnvironmentError(
            f"the environment is incomplete: {len(missing)} dependenc"
            f"{'y is' if len(missing) == 1 else 'ies are'} not satisfied:{lines}",
            missing=missing,
            hint="Inject the missing packages too (--inject FILE), or add them to the lock.",
        )


def _package_record(record: dict[str, Any]) -> Any:
    import rattler

    return rattler.PackageRecord(
        name=str(record["name"]),
        version=str(record["version"]),
        build=rattler.BuildString(str(record["build"])),
        build_number=int(record.get("build_number", 0)),
        subdir=str(record.get("subdir") or "noarch"),
        depends=[str(d) for d in record.get("depends", [])],
        constrains=[str(c) for c in record.get("constrains", [])],
    )


def _rattler_record(record: PackageRecord) -> Any:
    """The fields of ``record`` a match spec is matched against, as rattler's record."""
    import rattler

    return rattler.PackageRecord(
        name=record.name,
        version=record.version,
        build=rattler.BuildString(record.build),
        build_number=record.build_number,
        subdir=record.subdir or "noarch",
        depends=list(record.depends),
        constrains=list(record.constrains),
    )


def unbuilt_sources(
    sources: Sequence[SourcePackage], injected: Sequence[PackageRecord]
) -> list[tuple[SourcePackage, str]]:
    """Source packages of a lock that no injected package provides, with the reason.

    A package injected under the source package's name (and, if the lock gives one,
    its version) stands for the build pixi would make.
    """
    by_name = {r.name: r for r in injected}
    missing = []
    for source in sources:
        record = by_name.get(source.name)
        if record is None:
            missing.append((source, "not built"))
        elif source.version is not None and record.version != source.version:
            missing.append((source, f"--inject gives version {record.version}"))
    return missing


def check_sources(
    sources: Sequence[SourcePackage], injected: Sequence[PackageRecord], where: str
) -> None:
    """Raise :class:`LockfileError` naming each source package no injected file provides."""
    missing = unbuilt_sources(sources, injected)
    if not missing:
        return
    lines = "".join(f"\n  - {s.describe()}: {why}" for s, why in missing)
    raise LockfileError(
        f"{where} has {len(missing)} source package{'s' if len(missing) != 1 else ''} "
        f"(built by pixi-build), which portpack cannot build:{lines}",
        hint="Build each one (pixi build, or rattler-build) and pass the .conda file with "
        "--inject FILE; it takes the source package's place.",
    )


def check_noarch_python(records: Sequence[PackageRecord]) -> None:
    """Refuse ``noarch: python`` packages in an environment without a ``python`` package:
    they can only be installed into a python's site-packages."""
    if any(r.name == "python" for r in records):
        return
    noarch = [r.dist for r in records if r.noarch == "python"]
    if noarch:
        raise IncompleteEnvironmentError(
            f"the environment has noarch python packages but no python package to install "
            f"them into: {', '.join(noarch)}",
            missing=[(dist, "python") for dist in noarch],
            hint="Add python to the environment (or --inject a python package).",
        )
