"""The offline fixture channel: every package the tests install, built locally.

``build_fixture_channel(dest)`` writes ``dest/linux-64`` and ``dest/noarch`` and
indexes them with ``rattler.index.index_fs``. ``cached_fixture_channel()`` builds it
once per machine (see :mod:`.cache`).

Packages (all version 1.0 except python):

* ``hello-c`` (linux-64, py-rattler-build, ``recipes/hello-c``): ``lib/libhello.so``
  with a binary placeholder, ``lib/libhello.so.1`` symlink, ``bin/hello`` printing
  ``prefix=<prefix>``, ``bin/hello-script``, ``share/hello/config.txt`` (text
  placeholder) and ``share/hello/shebang.sh`` (``#!<prefix>/bin/hello``). No depends.
* ``python`` (linux-64): the running interpreter, see :mod:`.pythonpkg`.
* ``greetlib`` / ``greet`` (noarch: python): a library and an app with the entry point
  ``greet = greet.cli:main`` and ``python-scripts/greet-tool``.
* ``pyscript`` (linux-64): ``bin/pyscript`` with a placeholder python shebang.
* ``emptydir`` (noarch): a file plus an empty ``directory`` entry.
* ``oldformat`` (``.tar.bz2`` with paths.json) and ``legacy`` (``.tar.bz2`` with only
  ``info/files`` + ``info/has_prefix``).
* ``clobber-a`` / ``clobber-b``: both ship ``share/clobber.txt``.
* ``actpkg``: activate.d / deactivate.d scripts and env_vars.d JSON.
* ``linkpkg``: a ``bin/.linkpkg-post-link.sh`` script.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from rattler.index import index_fs

from .cache import cached_build
from .pkgwriter import (
    DEFAULT_PLACEHOLDER,
    LEGACY_PLACEHOLDER,
    Entry,
    PackageSpec,
    write_conda,
    write_tar_bz2,
)
from .pythonpkg import build_python_package
from .tools import require

SUPPORT_DIR = Path(__file__).resolve().parent
RECIPES_DIR = SUPPORT_DIR / "recipes"
SUBDIRS = ("linux-64", "noarch")
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

ALL_PACKAGES = [
    "hello-c",
    "python",
    "greetlib",
    "greet",
    "pyscript",
    "emptydir",
    "oldformat",
    "legacy",
    "clobber-a",
    "clobber-b",
    "actpkg",
    "linkpkg",
]
#: Installed together by ``rattler.install`` (py-rattler 0.28) in tests/test_support.py;
#: a reference for differential tests. Every other package is left out on purpose:
#: ``emptydir``: rattler refuses ``path_type: directory`` entries (see RATTLER_REJECTS);
#: ``legacy`` and ``linkpkg``: see RATTLER_ALSO_INSTALLS.
RATTLER_COMPATIBLE = [
    "hello-c",
    "python",
    "greetlib",
    "greet",
    "pyscript",
    "oldformat",
    "actpkg",
    "clobber-a",
    "clobber-b",
]
#: Also install with rattler but stay out of the reference set: ``legacy`` (rattler reads
#: info/files + info/has_prefix and replaces both placeholder forms, but its conda-meta
#: entries have no sha256 and the size after replacement) and ``linkpkg`` (the result
#: depends on ``execute_link_scripts``: its post-link script runs only when True).
RATTLER_ALSO_INSTALLS = ["legacy", "linkpkg"]
#: ``rattler.install`` fails on these: "the source path is neither a regular file nor a
#: symlink to a regular file" for the empty directory entry of ``emptydir``.
RATTLER_REJECTS = ["emptydir"]
#: Specs that pull in every package of the channel (greetlib comes with greet).
ENV_SPECS = [name for name in ALL_PACKAGES if name != "greetlib"]
#: An environment without python.
NO_PYTHON = ["hello-c"]
#: Packages in the old ``.tar.bz2`` format.
TAR_BZ2_PACKAGES = ["oldformat", "legacy"]


def build_fixture_channel(dest: Path) -> Path:
    """Build the whole fixture channel in *dest* (created) and return *dest*."""
    for subdir in SUBDIRS:
        (dest / subdir).mkdir(parents=True, exist_ok=True)
    build_hello_c(dest / "linux-64")
    build_python_package(dest / "linux-64")
    for spec in conda_specs():
        write_conda(dest / spec.subdir, spec)
    for spec in tar_bz2_specs():
        write_tar_bz2(dest / spec.subdir, spec)
    index_channel(dest)
    return dest


def cached_fixture_channel() -> Path:
    """The fixture channel, built once per machine and source version."""
    return cached_build("channel", build_fixture_channel, [SUPPORT_DIR])


def index_channel(channel: Path) -> None:
    """Write repodata.json for every subdir of *channel* with py-rattler."""
    asyncio.run(index_fs(channel))
    scratch = channel / ".tmp"  # left behind by index_fs
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()


def find_package(channel: Path, name: str) -> Path:
    """The archive of package *name* in *channel* (by its repodata.json)."""
    for subdir in SUBDIRS:
        repodata = json.loads((channel / subdir / "repodata.json").read_text())
        for key in ("packages.conda", "packages"):
            for filename, record in repodata.get(key, {}).items():
                if record["name"] == name:
                    return channel / subdir / str(filename)
    raise KeyError(f"{name} is not in {channel}")


def build_hello_c(dest_dir: Path) -> Path:
    """Build ``recipes/hello-c`` with py-rattler-build; move the .conda into *dest_dir*."""
    import rattler_build

    require("gcc")  # the recipe compiles with the system gcc
    with tempfile.TemporaryDirectory(prefix="portpack-rattler-build-") as tmp:
        out = Path(tmp, "out")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            rattler_build.build_recipes(
                [RECIPES_DIR / "hello-c" / "recipe.yaml"],
                output_dir=out,
                channel=[str(out)],
                test="skip",
                no_include_recipe=True,
            )
        (built,) = (out / "linux-64").glob("hello-c-*.conda")
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / built.name
        shutil.move(built, target)
        return target


def conda_specs() -> list[PackageSpec]:
    """The ``.conda`` packages written by :mod:`.pkgwriter`."""
    return [
        greetlib_spec(),
        greet_spec(),
        pyscript_spec(),
        emptydir_spec(),
        clobber_spec("clobber-a"),
        clobber_spec("clobber-b"),
        actpkg_spec(),
        linkpkg_spec(),
    ]


def tar_bz2_specs() -> list[PackageSpec]:
    """The ``.tar.bz2`` packages written by :mod:`.pkgwriter`."""
    return [oldformat_spec(), legacy_spec()]


def greetlib_spec() -> PackageSpec:
    init = 'def greeting():\n    return "hello from greetlib"\n'
    return PackageSpec(
        "greetlib",
        "1.0",
        noarch="python",
        depends=["python"],
        files={"site-packages/greetlib/__init__.py": init},
    )


def greet_spec() -> PackageSpec:
    cli = (
        "def main():\n"
        "    import sys\n\n"
        "    import greetlib\n\n"
        "    print(greetlib.greeting())\n"
        '    print("prefix=" + sys.prefix)\n'
    )
    tool = (
        f"#!{DEFAULT_PLACEHOLDER}/bin/python\n"
        "import sys\n\n"
        "from greet.cli import main\n\n"
        "sys.exit(main())\n"
    )
    return PackageSpec(
        "greet",
        "1.0",
        noarch="python",
        depends=["python", "greetlib"],
        files={
            "site-packages/greet/__init__.py": '"""greet: portpack test app."""\n',
            "site-packages/greet/cli.py": cli,
            "python-scripts/greet-tool": Entry.prefixed(tool, mode=0o755),
        },
        entry_points=["greet = greet.cli:main"],
    )


def pyscript_spec() -> PackageSpec:
    script = f"#!{DEFAULT_PLACEHOLDER}/bin/python{PY_VERSION}\nimport sys\n\nprint(sys.prefix)\n"
    return PackageSpec(
        "pyscript",
        "1.0",
        subdir="linux-64",
        depends=["python"],
        files={"bin/pyscript": Entry.prefixed(script, mode=0o755)},
    )


def emptydir_spec() -> PackageSpec:
    return PackageSpec(
        "emptydir",
        "1.0",
        files={
            "share/emptydir/file.txt": "a regular file next to an empty directory\n",
            "share/emptydir/empty": Entry.directory(),
        },
    )


def clobber_spec(name: str) -> PackageSpec:
    return PackageSpec(name, "1.0", files={"share/clobber.txt": f"from {name}\n"})


def actpkg_spec() -> PackageSpec:
    return PackageSpec(
        "actpkg",
        "1.0",
        files={
            "etc/conda/activate.d/actpkg.sh": "export ACTPKG_ACTIVE=1\n",
            "etc/conda/deactivate.d/actpkg.sh": "unset ACTPKG_ACTIVE\n",
            "etc/conda/env_vars.d/actpkg.json": json.dumps({"ACTPKG_VAR": "yes"}) + "\n",
        },
    )


def linkpkg_spec() -> PackageSpec:
    script = (
        "#!/bin/sh\n"
        'mkdir -p "$PREFIX/share/linkpkg"\n'
        'echo "$PKG_NAME" > "$PREFIX/share/linkpkg/ran"\n'
    )
    return PackageSpec(
        "linkpkg",
        "1.0",
        files={
            "bin/.linkpkg-post-link.sh": Entry.executable(script),
            "share/linkpkg/README": "share/linkpkg/ran appears once the post-link ran\n",
        },
    )


def oldformat_spec() -> PackageSpec:
    data = f"oldformat prefix={DEFAULT_PLACEHOLDER}\n"
    return PackageSpec("oldformat", "1.0", files={"share/oldformat/data.txt": Entry.prefixed(data)})


def legacy_spec() -> PackageSpec:
    short = f"legacy prefix={LEGACY_PLACEHOLDER}\n"
    long = f"legacy long prefix={DEFAULT_PLACEHOLDER}\n"
    return PackageSpec(
        "legacy",
        "1.0",
        legacy=True,
        files={
            # has_prefix line "share/legacy/data.txt" (implied placeholder, text)
            "share/legacy/data.txt": Entry.prefixed(short, LEGACY_PLACEHOLDER),
            # has_prefix line "<placeholder> text share/legacy/long.txt"
            "share/legacy/long.txt": Entry.prefixed(long),
        },
    )
