"""pixi-pack archives built the way pixi-pack documents and writes them, independently of
portpack's writer (``portpack/archive/pixipack_write.py``), for tests that read them.

pixi-pack copies the package files into ``channel/<subdir>/``, writes a
``repodata.json`` per subdir listing every package file under ``packages.conda``,
``environment.yml`` and ``pixi-pack.json``, then tars the directory with tar-rs in
deterministic mode: entries sorted by file name, depth first, mtime 1153704088.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: tar-rs's deterministic mtime, which pixi-pack's archives carry.
PIXI_MTIME = 1153704088


def pixi_pack_tree(
    root: Path,
    packages: list[tuple[dict[str, Any], Path]],
    *,
    platform: str = "linux-64",
    metadata: dict[str, Any] | None = None,
    with_repodata: bool = True,
    wheels: dict[str, bytes] | None = None,
) -> Path:
    """Lay out pixi-pack's output directory: channel/<subdir>/..., environment.yml,
    pixi-pack.json, pypi/.  Like pixi-pack, repodata.json lists every package file
    under ``packages.conda`` with its locked record."""
    per_subdir: dict[str, dict[str, Any]] = {}
    for record, path in packages:
        target = root / "channel" / record["subdir"] / record["fn"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        entry = {k: v for k, v in record.items() if k not in ("fn", "url", "channel")}
        per_subdir.setdefault(record["subdir"], {})[record["fn"]] = entry
    if with_repodata:
        for subdir, records in per_subdir.items():
            doc = {
                "info": {"subdir": subdir},
                "packages": {},
                "packages.conda": records,
                "removed": [],
                "repodata_version": 2,
            }
            (root / "channel" / subdir / "repodata.json").write_text(json.dumps(doc, indent=2))
    deps = "".join(f"  - {r['name']}={r['version']}={r['build']}\n" for r, _ in packages)
    env = f"channels:\n  - ./channel\n  - nodefaults\ndependencies:\n{deps}"
    if wheels:
        env += "  - pip:\n    - --no-index\n    - --find-links ./pypi\n"
        (root / "pypi").mkdir()
        for name, data in wheels.items():
            (root / "pypi" / name).write_bytes(data)
    (root / "environment.yml").write_text(env)
    meta = metadata or {"version": "1", "pixi-pack-version": "0.7.2", "platform": platform}
    (root / "pixi-pack.json").write_text(json.dumps(meta, indent=2))
    return root


def walk_sorted(root: Path) -> Iterator[Path]:
    """Depth first, entries sorted by file name: the order of pixi-pack's tar."""
    for path in sorted(root.iterdir(), key=lambda p: p.name.encode()):
        yield path
        if path.is_dir():
            yield from walk_sorted(path)


def tar_like_pixi_pack(
    root: Path, out: Path, order: Callable[[list[Path]], list[Path]] | None = None
) -> Path:
    """A plain GNU tar of ``root`` with deterministic headers, as pixi-pack writes it."""
    paths = list(walk_sorted(root))
    if order is not None:
        paths = order(paths)
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in paths:
            info = tar.gettarinfo(path, path.relative_to(root).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = PIXI_MTIME, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_dir():
                tar.addfile(info)
            else:
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    return out


def build_pixi_pack(
    work: Path, name: str, packages: list[tuple[dict[str, Any], Path]], **kw: Any
) -> Path:
    root = pixi_pack_tree(work / f"{name}.d", packages, **kw)
    return tar_like_pixi_pack(root, work / f"{name}.tar")
