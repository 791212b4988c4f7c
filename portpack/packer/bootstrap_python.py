"""The python a self-extracting archive's bootstrap runs: the environment's, or one for
unpacking only (a local package file, or solved and fetched with the pack's settings)."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import zstandard

from portpack.archive.segments import AnalyzedPackage, analyze
from portpack.conda.record import PackageRecord
from portpack.errors import PackageError, PortpackError, SolveError, UsageError
from portpack.packer.convert import as_conda

if TYPE_CHECKING:
    from portpack.net.fetch import Fetcher

#: The python solved for an environment without one (portpack needs 3.10 or newer).
DEFAULT_BOOTSTRAP_SPEC = "python >=3.10"
MIN_PYTHON = (3, 10)


@dataclass(frozen=True)
class PythonSource:
    """The conda ``python`` package the bootstrap's interpreter comes from."""

    record: PackageRecord
    package: AnalyzedPackage
    from_environment: bool

    @property
    def dist(self) -> str:
        return self.record.dist

    @property
    def version(self) -> tuple[int, int]:
        return python_version(self.record)

    @property
    def abi(self) -> str:
        """The CPython ABI tag, ``cp311`` (``cp313t`` for a free-threading build)."""
        for dep in self.record.depends:
            match = re.match(r"^python_abi\s.*_(cp\d+t?)\s*$", dep)
            if match:
                return match.group(1)
        major, minor = self.version
        return f"cp{major}{minor}"


def python_version(record: PackageRecord) -> tuple[int, int]:
    """``(3, 11)`` for a python record of version ``3.11.7``."""
    match = re.match(r"^(\d+)\.(\d+)", record.version)
    if not match:
        raise PackageError(f"package {record.dist}: cannot read its python version")
    return int(match.group(1)), int(match.group(2))


def environment_python(
    records: Sequence[PackageRecord], packages: Sequence[AnalyzedPackage]
) -> PythonSource | None:
    """The environment's ``python`` package, if it has one recent enough to run portpack."""
    for record, package in zip(records, packages, strict=True):
        if record.name == "python" and python_version(record) >= MIN_PYTHON:
            return PythonSource(record, package, from_environment=True)
    return None


def record_channels(records: Sequence[PackageRecord]) -> list[str]:
    """The channels of ``records``, in order of first use."""
    return list(dict.fromkeys(r.channel for r in records if r.channel))


def fetch_bootstrap_python(
    spec_or_file: str, platform: str, channels: Sequence[str], fetcher: Fetcher
) -> PythonSource:
    """A python package for unpacking only: a local package file, or solved and fetched.

    The solve and the download use ``fetcher``'s network settings (mirrors, proxies,
    TLS, credentials, retries).
    """
    path = Path(spec_or_file)
    if spec_or_file.endswith((".conda", ".tar.bz2")):
        if not path.is_file():
            raise UsageError(f"bootstrap python package {path} does not exist")
        return _python_from_file(path, fetcher.cache_dir)
    if not channels:
        raise UsageError(
            "the environment has no python; give --bootstrap-python FILE (a python .conda) "
            "or channels to solve one from"
        )
    from portpack.resolve.lockfile import package_records
    from portpack.resolve.solve import solve

    solution = solve([spec_or_file], channels, platform, network=fetcher.network)
    where = f"the bootstrap python {spec_or_file!r}"
    found = [r for r in package_records(solution, where, SolveError) if r.name == "python"]
    if not found:
        raise UsageError(f"solving {spec_or_file!r} gave no python package")
    record = found[0]
    if python_version(record) < MIN_PYTHON:
        raise UsageError(
            f"the bootstrap python must be 3.10 or newer; {spec_or_file!r} gave {record.version}"
        )
    (file,) = fetcher.fetch_all([record])
    package = analyze(as_conda(file, fetcher.cache_dir, record.dist), record.dist)
    return PythonSource(record, package, from_environment=False)


def _python_from_file(path: Path, cache_dir: Path) -> PythonSource:
    package = analyze(as_conda(path, cache_dir, path.name), path.name)
    try:
        record = PackageRecord.from_json(_index_json(package, path), str(path), UsageError)
    except PortpackError as exc:
        raise UsageError(f"{path} is not a usable python package: {exc}") from None
    if record.name != "python":
        raise UsageError(f"{path} is package {record.name!r}, not python")
    if python_version(record) < MIN_PYTHON:
        raise UsageError(f"the bootstrap python must be 3.10 or newer; {path} is {record.version}")
    return PythonSource(record, package, from_environment=False)


class Limited:
    """Reads at most ``size`` bytes of ``fh`` (one member of a ``.conda``)."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 or n > self.left else n
        data = self._fh.read(n)
        self.left -= len(data)
        return data


def _index_json(package: AnalyzedPackage, path: Path) -> dict[str, Any]:
    """``info/index.json`` of an analyzed package."""
    with open(package.path, "rb") as fh:
        fh.seek(package.info_range.offset)
        data = zstandard.ZstdDecompressor().stream_reader(
            cast("IO[bytes]", Limited(fh, package.info_range.length))
        )
        with tarfile.open(fileobj=cast("IO[bytes]", data), mode="r|") as tar:
            for member in tar:
                if member.name.removeprefix("./") == "info/index.json":
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        doc = json.loads(extracted.read())
                        if isinstance(doc, dict):
                            return doc
    raise PackageError(f"{path} has no info/index.json")
