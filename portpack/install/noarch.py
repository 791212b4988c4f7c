"""noarch: python support: path remapping and entry-point scripts (rattler's layout)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portpack.conda.record import PackageRecord
from portpack.errors import PackageError
from portpack.install.placeholders import fix_shebang
from portpack.paths import RelPath, join, safe_relpath

_ENTRY_POINT = re.compile(
    r"^\s*(?P<cmd>[^\s=]+)\s*=\s*(?P<module>[\w.]+)\s*:\s*(?P<func>[\w.]+)\s*$"
)
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_BIN = safe_relpath("bin", "noarch python")


@dataclass(frozen=True)
class PythonInfo:
    """Where noarch python packages go in an environment with this python."""

    version: str
    """``major.minor``, e.g. ``3.12``."""
    site_packages: RelPath
    """Relative path of site-packages, e.g. ``lib/python3.12/site-packages``."""

    @classmethod
    def from_record(cls, record: PackageRecord | Mapping[str, Any]) -> PythonInfo:
        """Build from the ``python`` package's record (or its ``index.json``, as JSON).

        ``python_site_packages_path`` becomes the directory of every noarch python
        file: it goes through the path check, naming the package and the field.
        """
        if isinstance(record, PackageRecord):
            record = record.raw  # its fields were typed; the checks below read the JSON
        package = f"package {record.get('name', 'python')}-{record.get('version')}"
        parts = str(record["version"]).split(".")
        if len(parts) < 2:
            raise PackageError(f"cannot read the python version from {record['version']!r}")
        version = f"{parts[0]}.{parts[1]}"
        site = record.get("python_site_packages_path") or f"lib/python{version}/site-packages"
        if not isinstance(site, str):
            raise PackageError(f"{package}: python_site_packages_path is not a string: {site!r}")
        what = f"{package}, field python_site_packages_path"
        return cls(version=version, site_packages=safe_relpath(site, what))

    @property
    def interpreter(self) -> str:
        """The interpreter's path relative to the prefix."""
        return f"bin/python{self.version}"

    def map_path(self, path: RelPath, what: str = "noarch python package") -> RelPath:
        """Remap a noarch python package path to its place in the prefix (checked again)."""
        if path.startswith("site-packages/"):
            return join(self.site_packages, path[len("site-packages/") :], what)
        if path.startswith("python-scripts/"):
            return join(_BIN, path[len("python-scripts/") :], what)
        return path


@dataclass(frozen=True)
class EntryPoint:
    """A ``cmd = module:func`` console script."""

    command: str
    module: str
    function: str

    @classmethod
    def parse(cls, spec: str, package: str) -> EntryPoint:
        """Parse and validate; names with ``/``, ``\\``, NUL or a leading dot are refused."""
        match = _ENTRY_POINT.match(spec)
        bad = PackageError(f"package {package}: invalid entry point {spec!r}")
        if not match:
            raise bad
        cmd, module, func = match["cmd"], match["module"], match["func"]
        if any(c in cmd for c in "/\\\0") or cmd.startswith(".") or cmd in ("", "."):
            raise bad
        if not (_IDENTIFIER_PATH.match(module) and _IDENTIFIER_PATH.match(func)):
            raise bad
        return cls(cmd, module, func)

    def target(self, package: str) -> RelPath:
        """``bin/<command>``, through the path check."""
        return join(_BIN, self.command, f"package {package}, entry point {self.command!r}")

    def script(self, prefix: str, python: PythonInfo) -> bytes:
        """The launcher script, byte-identical to rattler's."""
        head = self.function.split(".", 1)[0]
        body = (
            f"#!{prefix}/{python.interpreter}\n"
            "# -*- coding: utf-8 -*-\n"
            "import re\n"
            "import sys\n\n"
            f"from {self.module} import {head}\n\n"
            "if __name__ == '__main__':\n"
            "\tsys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n"
            f"\tsys.exit({self.function}())\n"
        )
        return fix_shebang(body.encode(), prefix.encode())
