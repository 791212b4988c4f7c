"""Where conda, mamba, pixi and rattler keep package files (``pack --prefix``).

:func:`package_dirs` lists the package caches that exist, in the order
``pack --prefix`` searches them for an environment's package files:
``$CONDA_PKGS_DIRS``, the ``pkgs_dirs`` of every condarc conda reads, ``<root>/pkgs``,
``~/.conda/pkgs``, then pixi's and rattler's (``$PIXI_CACHE_DIR``,
``$RATTLER_CACHE_DIR``, ``~/.cache/rattler/cache``, each with ``pkgs/``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from portpack.packer.local_files import read_small

#: Largest condarc read.
_MAX_CONDARC = 1 << 20
#: Where conda reads condarc files (conda's own search path, POSIX).
_CONDARC_PATHS = (
    "/etc/conda/.condarc",
    "/etc/conda/condarc",
    "/etc/conda/condarc.d/",
    "/var/lib/conda/.condarc",
    "/var/lib/conda/condarc",
    "/var/lib/conda/condarc.d/",
    "$CONDA_ROOT/.condarc",
    "$CONDA_ROOT/condarc",
    "$CONDA_ROOT/condarc.d/",
    "$XDG_CONFIG_HOME/conda/.condarc",
    "$XDG_CONFIG_HOME/conda/condarc",
    "$XDG_CONFIG_HOME/conda/condarc.d/",
    "~/.config/conda/.condarc",
    "~/.config/conda/condarc",
    "~/.config/conda/condarc.d/",
    "~/.conda/.condarc",
    "~/.conda/condarc",
    "~/.conda/condarc.d/",
    "~/.condarc",
    "$CONDA_PREFIX/.condarc",
    "$CONDA_PREFIX/condarc",
    "$CONDA_PREFIX/condarc.d/",
    "$CONDARC",
)


def package_dirs(prefix: Path, environ: Mapping[str, str] | None = None) -> list[Path]:
    """The package caches of conda, mamba, pixi and rattler that exist, in search order."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    roots = _conda_roots(prefix, env)
    dirs: list[str | Path] = [d for d in env.get("CONDA_PKGS_DIRS", "").split(",") if d.strip()]
    dirs += _condarc_pkgs_dirs(roots, prefix, env, home)
    dirs += [root / "pkgs" for root in roots]
    dirs.append(home / ".conda" / "pkgs")
    for var in ("PIXI_CACHE_DIR", "RATTLER_CACHE_DIR"):
        if env.get(var):
            dirs.append(Path(env[var]) / "pkgs")
    xdg = env.get("XDG_CACHE_HOME")
    if xdg:
        dirs.append(Path(xdg) / "pixi" / "pkgs")
    base = home / "Library" / "Caches" if sys.platform == "darwin" else Path(xdg or home / ".cache")
    dirs.append(base / "rattler" / "cache" / "pkgs")
    out: dict[Path, None] = {}
    for entry in dirs:
        path = Path(os.path.expandvars(os.path.expanduser(str(entry).strip())))
        if path.is_absolute() and path.is_dir():
            out.setdefault(path)
    return list(out)


def _conda_roots(prefix: Path, env: Mapping[str, str]) -> list[Path]:
    """Installations the prefix may belong to: ``<root>/envs/<name>``, itself, the env's."""
    roots = [prefix]
    if prefix.parent.name == "envs":
        roots.insert(0, prefix.parent.parent)
    for var in ("CONDA_ROOT", "MAMBA_ROOT_PREFIX"):
        if env.get(var):
            roots.append(Path(env[var]))
    if env.get("CONDA_EXE"):
        roots.append(Path(env["CONDA_EXE"]).parent.parent)
    return list(dict.fromkeys(roots))


def _condarc_pkgs_dirs(
    roots: list[Path], prefix: Path, env: Mapping[str, str], home: Path
) -> list[str]:
    """``pkgs_dirs`` of every condarc conda would read (unreadable ones are skipped)."""
    values = {
        "CONDA_ROOT": [str(r) for r in roots],
        "CONDA_PREFIX": list(dict.fromkeys([str(prefix), env.get("CONDA_PREFIX", "")])),
        "XDG_CONFIG_HOME": [env.get("XDG_CONFIG_HOME", "")],
        "CONDARC": [env.get("CONDARC", "")],
    }
    files: list[Path] = []
    for template in _CONDARC_PATHS:
        variable = template[1:].split("/", 1)[0] if template.startswith("$") else None
        for value in values.get(variable, [""]) if variable else [""]:
            if variable and not value:
                continue
            text = template.replace(f"${variable}", value) if variable else template
            if text.startswith("~"):
                text = str(home) + text[1:]
            path = Path(text)
            if template.endswith("condarc.d/"):
                files += sorted(p for p in path.glob("*.y*ml") if p.suffix in (".yml", ".yaml"))
            else:
                files.append(path)
    dirs: list[str] = []
    for path in dict.fromkeys(files):
        dirs += _pkgs_dirs_of(path)
    return dirs


def _pkgs_dirs_of(path: Path) -> list[str]:
    try:
        if not path.is_file():
            return []
        text = read_small(path, _MAX_CONDARC, follow=True)
        import yaml

        doc = yaml.safe_load(text)
    except Exception:  # a broken condarc: conda would complain, we just look elsewhere
        return []
    entries = doc.get("pkgs_dirs") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries[:100] if isinstance(e, str)]
