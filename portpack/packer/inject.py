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

from portpack.errors import (
    ArchiveError,
    IncompleteEnvironmentError,
    LockfileError,
    PackageError,
    UsageError,
)
from portpack.progress import Reporter

if TYPE_CHECKING:
    from portpack.resolve.lockfile import SourcePackage

_EXTENSIONS = (".conda", ".tar.bz2")


def _dist(record: dict[str, Any]) -> str:
    return f"{record['name']}-{record['version']}-{record['build']}"


def local_records(paths: Sequence[str | os.PathLike[str]], platform: str) -> list[dict[str, Any]]:
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
        doc.update(_digests(path))
        doc["fn"] = path.name
        doc["url"] = path.as_uri()
        doc["channel"] = None
        subdir = str(doc.get("subdir") or "noarch")
        if subdir not in (platform, "noarch"):
            raise UsageError(
                f"--inject {given}: package {_dist(doc)} is for {subdir}, not {platform}"
            )
        name = str(doc["name"])
        if name in seen:
            raise UsageError(f"--inject {given}: package {name} is injected twice ({seen[name]})")
        seen[name] = path
        records.append(doc)
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
    records: list[dict[str, Any]],
    injected: list[dict[str, Any]],
    reporter: Reporter | None = None,
) -> list[dict[str, Any]]:
    """The locked records with ``injected`` added (replacing same-named ones), validated
    and in install order (dependencies first)."""
    reporter = reporter or Reporter()
    by_name = {str(r["name"]): r for r in injected}
    kept = []
    for record in records:
        replacement = by_name.get(str(record["name"]))
        if replacement is None:
            kept.append(record)
        else:
            reporter.warning(f"injected {_dist(replacement)} replaces the locked {_dist(record)}")
    combined = kept + injected
    check_complete(combined)
    return install_order(combined)


def check_complete(records: list[dict[str, Any]]) -> None:
    """Raise :class:`IncompleteEnvironmentError` listing every unsatisfied dependency."""
    import rattler

    package_records = {str(r["name"]): _package_record(r) for r in records}
    missing: list[tuple[str, str]] = []
    for record in records:
        for dep in record.get("depends", []):
            dep = str(dep)
            if dep.startswith("__"):
                continue  # virtual packages: checked on the target at unpack time
            spec = rattler.MatchSpec(dep)
            name = spec.name.normalized if spec.name is not None else ""
            candidate = package_records.get(name)
            if candidate is None or not spec.matches(candidate):
                missing.append((_dist(record), dep))
    if missing:
        lines = "".join(f"\n  - {dist} needs {dep}" for dist, dep in missing)
        raise IncompleteEnvironmentError(
            f"the environment is incomplete: {len(missing)} dependenc"
            f"{'y is' if len(missing) == 1 else 'ies are'} not satisfied:{lines}",
            missing=missing,
            hint="Inject the missing packages too (--inject FILE), or add them to the lock.",
        )


def install_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` with dependencies before dependents (:mod:`portpack.conda.order`)."""
    from portpack.conda.order import install_order as order
    from portpack.conda.record import PackageRecord

    # The packer's records are JSON here: typed at this boundary.
    typed = [PackageRecord.from_json(r, "the environment", PackageError) for r in records]
    return [record.to_json() for record in order(typed)]


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


def unbuilt_sources(
    sources: Sequence[SourcePackage], injected: Sequence[dict[str, Any]]
) -> list[tuple[SourcePackage, str]]:
    """Source packages of a lock that no injected package provides, with the reason.

    A package injected under the source package's name (and, if the lock gives one,
    its version) stands for the build pixi would make.
    """
    by_name = {str(r["name"]): r for r in injected}
    missing = []
    for source in sources:
        record = by_name.get(source.name)
        if record is None:
            missing.append((source, "not built"))
        elif source.version is not None and str(record["version"]) != source.version:
            missing.append((source, f"--inject gives version {record['version']}"))
    return missing


def check_sources(
    sources: Sequence[SourcePackage], injected: Sequence[dict[str, Any]], where: str
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


def check_noarch_python(records: Sequence[dict[str, Any]]) -> None:
    """Refuse ``noarch: python`` packages in an environment without a ``python`` package:
    they can only be installed into a python's site-packages."""
    if any(str(r.get("name")) == "python" for r in records):
        return
    noarch = [_dist(r) for r in records if r.get("noarch") == "python"]
    if noarch:
        raise IncompleteEnvironmentError(
            f"the environment has noarch python packages but no python package to install "
            f"them into: {', '.join(noarch)}",
            missing=[(dist, "python") for dist in noarch],
            hint="Add python to the environment (or --inject a python package).",
        )
