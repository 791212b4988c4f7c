"""Tiny real wheels for the PyPI tests, built offline with ``pip wheel`` and flit_core.

``pp-greetlib`` is a library; ``pp-hello`` depends on it, has a console script
(``pp-hello``) and a data file (``share/pp-hello/notes.txt``, in the wheel's
``.data/data``).  Built once per machine (:func:`support.cache.cached_build`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.cache import cached_build

GREETLIB = "pp_greetlib-1.0-py3-none-any.whl"
HELLO = "pp_hello-2.0-py3-none-any.whl"
GREETING = "hello from a wheel"

_BUILD_SYSTEM = """\
[build-system]
requires = ["flit_core>=3.9"]
build-backend = "flit_core.buildapi"
"""

PROJECTS: dict[str, dict[str, str]] = {
    "pp-greetlib": {
        "pyproject.toml": _BUILD_SYSTEM
        + """
[project]
name = "pp-greetlib"
version = "1.0"
description = "A library the pp-hello wheel depends on."
requires-python = ">=3.8"

[tool.flit.module]
name = "pp_greetlib"
""",
        "pp_greetlib/__init__.py": f'''"""Greetings."""


def greeting() -> str:
    return "{GREETING}"
''',
    },
    "pp-hello": {
        "pyproject.toml": _BUILD_SYSTEM
        + """
[project]
name = "pp-hello"
version = "2.0"
description = "A console script from a wheel."
requires-python = ">=3.8"
dependencies = ["pp-greetlib"]

[project.scripts]
pp-hello = "pp_hello:main"

[tool.flit.module]
name = "pp_hello"

[tool.flit.external-data]
directory = "data"
""",
        "pp_hello/__init__.py": '''"""Says hello, and where it runs."""

import sys

from pp_greetlib import greeting


def main() -> None:
    print(greeting(), sys.prefix)
''',
        "data/share/pp-hello/notes.txt": "installed from the wheel's data scheme\n",
    },
}


def build_wheels(dest: Path) -> Path:
    """Write the projects' sources and ``pip wheel`` each (no network, no isolation)."""
    out = dest / "wheels"
    for name, files in PROJECTS.items():
        root = dest / "src" / name
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        subprocess.run(
            [
                sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "--no-index", "-q", "-w", str(out), str(root),
            ],
            check=True,
        )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [GREETLIB, HELLO]
    return out


def cached_wheels() -> Path:
    """The directory holding :data:`GREETLIB` and :data:`HELLO`."""
    return cached_build("pypi-wheels", build_wheels, [Path(__file__)])
