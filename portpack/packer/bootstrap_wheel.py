"""The zstandard wheel whose C backend a self-extracting archive's bootstrap carries.

It comes from ``--zstandard-wheel FILE``, from the cache (``<cache>/wheels/``), or
from a PEP 691 JSON simple index (``--wheel-index``, default PyPI).  The index page
and the wheel are downloaded by the package fetcher (:class:`portpack.net.fetch.Fetcher`),
so they honour every network setting a package download does: the config file's
mirrors and proxies, ``--ca-bundle``, ``--insecure-host``, ``--auth-file`` credentials,
and the timeouts and retries of the fetch policy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from portpack import outside
from portpack.errors import FetchError, UsageError
from portpack.net.request import FileRequest

if TYPE_CHECKING:
    from portpack.net.fetch import Fetcher
    from portpack.packer.bootstrap_python import PythonSource

#: Where zstandard wheels come from (a PEP 691 JSON "simple" index).
DEFAULT_WHEEL_INDEX = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
#: The largest index page read (PyPI's zstandard page is well under 1 MiB).
MAX_INDEX_PAGE = 64 << 20
#: What a wheel file name from an index may be: it becomes a file name in the cache.
_WHEEL_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+!-]*\.whl")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HTTP = ("http", "https")
_INDEX_HINT = (
    "Check --wheel-index (a PEP 691 JSON simple index; the config file's mirrors, proxies "
    "and credentials apply to it), or give the wheel with --zstandard-wheel FILE."
)


def _wheel_glibc(platform_tag: str, machine: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag needs, or None if it is not manylinux/``machine``."""
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    base, _, arch = platform_tag.partition(f"_{machine}")
    if arch or not platform_tag.endswith(f"_{machine}"):
        return None
    if base in legacy:
        return legacy[base]
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)", base)
    return (int(match.group(1)), int(match.group(2))) if match else None


def wheel_fits(filename: str, abi: str, machine: str) -> tuple[int, int] | None:
    """The glibc ``filename`` needs if it is a zstandard wheel for ``abi`` and ``machine``."""
    if not _WHEEL_FILENAME.fullmatch(filename):
        return None
    try:
        name, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    if name != "zstandard":
        return None
    needs = [
        glibc
        for tag in tags
        if tag.interpreter == abi.rstrip("t") and tag.abi == abi
        for glibc in [_wheel_glibc(tag.platform, machine)]
        if glibc is not None
    ]
    return min(needs) if needs else None


def check_wheel(path: Path, python: PythonSource, machine: str) -> Path:
    """Accept an explicit wheel only if it matches the bootstrap python and platform."""
    if not path.is_file():
        raise UsageError(f"zstandard wheel {path} does not exist")
    if wheel_fits(path.name, python.abi, machine) is None:
        raise UsageError(
            f"{path.name} is not a zstandard wheel for {python.abi} on manylinux {machine}, "
            f"which the bootstrap python ({python.dist}) needs"
        )
    return path


def find_zstandard_wheel(
    abi: str,
    machine: str,
    fetcher: Fetcher,
    index: str = DEFAULT_WHEEL_INDEX,
    what: str = "the bootstrap python",
) -> Path:
    """The manylinux zstandard wheel for CPython ``abi`` (``cp311``) on ``machine``.

    The version is the one portpack runs with.  Wheels are kept in
    ``<cache>/wheels`` and, when not there, looked up in ``index`` (a PEP 691 JSON
    simple index) and downloaded with ``fetcher``; of several, the one needing the
    oldest glibc wins.
    """
    version = importlib_metadata.version("zstandard")
    wheels = fetcher.cache_dir / "wheels"
    cached = sorted(
        (glibc, p)
        for p in wheels.glob(f"zstandard-{version}-*.whl")
        if (glibc := wheel_fits(p.name, abi, machine)) is not None
    )
    if cached:
        return cached[0][1]
    if _scheme(index) not in _HTTP:
        raise UsageError(f"--wheel-index must be an http:// or https:// URL, not {index!r}")
    url = index.rstrip("/") + "/zstandard/"
    candidates = sorted(
        (glibc, f)
        for f in _index_files(fetcher, url)
        if f["filename"].startswith(f"zstandard-{version}-")
        if (glibc := wheel_fits(f["filename"], abi, machine)) is not None
    )
    if not candidates:
        raise FetchError(
            f"{url} has no zstandard {version} wheel for {abi} on manylinux {machine} "
            f"(needed by {what})",
            url=url,
            hint="Give one with --zstandard-wheel FILE, or a bootstrap python it has wheels for.",
        )
    chosen = candidates[0][1]
    return _download_wheel(fetcher, url, chosen, wheels)


def _index_files(fetcher: Fetcher, url: str) -> list[dict[str, str]]:
    """The ``files`` of the index page at ``url``: each with a file name and a URL."""
    request = FileRequest(
        name="zstandard (wheel index)",
        what="page of zstandard",
        url=url,
        filename="zstandard.json",
        kind="wheel-index",
        noun="the wheel index",
        accept=SIMPLE_JSON,
    )
    try:
        (page,) = fetcher.fetch_files([request])
    except FetchError as exc:
        hint = f"{exc.hint}\n{_INDEX_HINT}" if exc.hint else _INDEX_HINT
        raise FetchError(exc.message, url=exc.url or url, hint=hint) from exc
    try:
        if page.stat().st_size > MAX_INDEX_PAGE:
            raise ValueError(f"the page is larger than {MAX_INDEX_PAGE >> 20} MiB")
        files = json.loads(page.read_bytes())["files"]
        if not isinstance(files, list):
            raise TypeError("files is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FetchError(
            f"the wheel index {url} did not answer in the JSON simple API (PEP 691): {exc}",
            url=url,
            hint=_INDEX_HINT,
        ) from None
    return [
        f
        for f in files
        if isinstance(f, dict)
        and isinstance(f.get("filename"), str)
        and isinstance(f.get("url"), str)
    ]


def _download_wheel(fetcher: Fetcher, index_url: str, chosen: dict[str, Any], wheels: Path) -> Path:
    """Fetch the chosen wheel (verified by the index's sha256) into ``wheels``."""
    filename = str(chosen["filename"])
    url = urllib.parse.urljoin(index_url, str(chosen["url"]))
    if _scheme(url) not in _HTTP:  # an index on the network never reads a local file
        raise FetchError(
            f"the wheel index {index_url} gives {url!r} for {filename}, not an HTTP(S) URL; "
            "refusing it",
            url=index_url,
        )
    hashes = chosen.get("hashes")
    sha256 = str(hashes.get("sha256") or "") if isinstance(hashes, dict) else ""
    if not _SHA256.fullmatch(sha256):
        raise FetchError(
            f"the wheel index gives no sha256 for {filename} ({url}); refusing it", url=url
        )
    request = FileRequest(
        name=filename,
        what=filename,
        url=url,
        filename=filename,
        sha256=sha256,
        kind="bootstrap-wheels",
        noun="the zstandard wheel",
        checksum_from="the wheel index",
    )
    (fetched,) = fetcher.fetch_files([request])
    return _publish(fetched, wheels / filename)


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def _publish(entry: Path, target: Path) -> Path:
    """Give the verified cache entry its wheel name in ``wheels/`` (atomically)."""
    with outside.atomic_path(target) as tmp:
        try:
            os.link(entry, tmp)  # the same bytes under a second name: no copy
        except OSError:
            shutil.copyfile(entry, tmp)
    return target
