"""A channel of small packages in two versions, archives of chosen sets of them, and the
comparison of an updated environment with a fresh unpack (tests/test_update.py,
tests/test_diff.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import portpack
from support.channel import index_channel
from support.pkgwriter import DEFAULT_PLACEHOLDER, Entry, PackageSpec, write_conda
from treesnap import STAT_INDEX, stat_index_paths

HISTORY = "env/conda-meta/history"


def _python(version: str) -> PackageSpec:
    short = ".".join(version.split(".")[:2])
    return PackageSpec(
        "python",
        version,
        subdir="linux-64",
        files={
            f"bin/python{short}": Entry.executable("#!/bin/sh\necho fake python\n"),
            "bin/python": Entry.symlink(f"python{short}"),
            f"lib/python{short}/os.py": "# a stand-in for the standard library\n",
        },
    )


def specs() -> list[PackageSpec]:
    """Every package of the update channel."""
    prefixed = f"prefix={DEFAULT_PLACEHOLDER}\n"
    binary = b"\x7fELF" + DEFAULT_PLACEHOLDER.encode() + b"\0" * 8 + b"tail"
    out = [_python("3.12.1"), _python("3.13.0")]
    out.append(
        PackageSpec(
            "base",
            "1.0",
            subdir="linux-64",
            files={
                "share/base/data.txt": Entry.prefixed(prefixed),
                "lib/libbase.so": Entry.prefixed(binary, file_mode="binary", mode=0o755),
                "bin/base-tool": Entry.executable("#!/bin/sh\necho base\n"),
                "share/base/plain.txt": "plain, no prefix\n",
                "share/base/link": Entry.symlink("plain.txt"),
                "share/base/empty": Entry.directory(),
            },
        )
    )
    for version in ("1.0", "1.1"):
        files = {"share/small/version.txt": f"small {version}\n", "bin/small": "#!/bin/sh\n"}
        out.append(PackageSpec("small", version, files=files))
    out.append(PackageSpec("extra", "1.0", files={"share/extra/readme.txt": "extra\n"}))
    out.append(PackageSpec("gone", "1.0", files={"share/gone/readme.txt": "gone\n"}))
    # clobbering: cl-b 2.0 brings share/shared.txt, which cl-a has in both versions
    out.append(PackageSpec("cl-a", "1.0", files={"share/shared.txt": "from cl-a\n"}))
    out.append(PackageSpec("cl-b", "1.0", files={"share/cl-b.txt": "cl-b 1.0\n"}))
    out.append(PackageSpec("cl-b", "2.0", files={"share/shared.txt": "from cl-b\n"}))
    for version, command in (("1.0", "npy"), ("2.0", "npy2")):
        out.append(
            PackageSpec(
                "npy",
                version,
                noarch="python",
                depends=["python"],
                files={"site-packages/npy/__init__.py": f"VERSION = {version!r}\n"},
                entry_points=[f"{command} = npy:main"],
            )
        )
    out.append(
        PackageSpec(
            "keepnoarch",
            "1.0",
            noarch="python",
            depends=["python"],
            files={"site-packages/keepnoarch.py": "KEPT = True\n"},
            entry_points=["keepit = keepnoarch:main"],
        )
    )
    return out


def build_channel(root: Path, only: tuple[str, ...] = ()) -> Path:
    """The update channel in ``root``; with ``only``, just the packages of those names
    (to put beside another channel's python: tests/test_selfextract.py)."""
    for subdir in ("linux-64", "noarch"):
        (root / subdir).mkdir(parents=True)
    for spec in specs():
        if not only or spec.name in only:
            write_conda(root / spec.subdir, spec)
    index_channel(root)
    return root


def archive(channel: Path, packages: list[str], work: Path, name: str) -> Path:
    """Lock ``packages`` (match specs) from ``channel`` and pack them: the archive."""
    where = work / name
    where.mkdir(parents=True, exist_ok=True)
    lock = portpack.lock(
        packages, channels=[str(channel)], platforms=["linux-64"], output=where / "pixi.lock"
    )
    out = where / "env.tar"
    portpack.pack(lockfile=lock, output=out, cache_dir=work / "cache")
    return out


def snapshot(out: Path) -> dict[str, tuple[str, int, str]]:
    """Every path below ``out``: kind, permission bits, sha256 or link target (the
    history, whose first line is a time stamp, without that line)."""
    tree: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(out):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            rel = path.relative_to(out).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                tree[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
            elif rel.endswith(STAT_INDEX):
                tree[rel] = ("file", stat.S_IMODE(st.st_mode), stat_index_paths(path))
            else:
                data = path.read_bytes()
                if rel == HISTORY:
                    data = data.split(b"\n", 1)[1]
                tree[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(data).hexdigest())
    return tree


def fresh(archive_path: Path, out: Path) -> dict[str, tuple[str, int, str]]:
    """The snapshot of a fresh unpack of ``archive_path`` at ``out``; what ``out`` held
    is moved aside meanwhile and put back."""
    aside = out.with_name(out.name + ".aside")
    os.rename(out, aside)
    try:
        portpack.unpack(archive_path, out)
        return snapshot(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        os.rename(aside, out)


def inodes(prefix: Path) -> dict[str, int]:
    """Inode of every regular file below ``prefix``."""
    out = {}
    for dirpath, _, filenames in os.walk(prefix):
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                out[path.relative_to(prefix).as_posix()] = path.stat().st_ino
    return out


def exact(out: Path) -> dict[str, tuple[object, ...]]:
    """:func:`snapshot` with every file's mtime and inode: what "intact" means (staging
    directories left by a killed run are left out)."""
    tree: dict[str, tuple[object, ...]] = {}
    for rel, value in snapshot(out).items():
        if rel.startswith(".env.portpack-"):
            continue
        st = (out / rel).lstat()
        tree[rel] = (*value, st.st_mtime_ns, st.st_ino if value[0] == "file" else 0)
    return tree


def wheel(path: Path, project: str, version: str, files: dict[str, bytes]) -> Path:
    """A pure-python wheel of ``project`` holding ``files``, with a correct RECORD."""
    import base64
    import zipfile

    info = f"{project.replace('-', '_')}-{version}.dist-info"
    files = {
        **files,
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n",
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode()
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    path = path / f"{project.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def archive_with_wheel(channel: Path, packages: list[str], whl: Path, work: Path) -> Path:
    """As :func:`archive`, with the PyPI wheel ``whl`` added to the lock as pixi does."""
    import yaml

    where = work / whl.stem
    where.mkdir(parents=True)
    lock = portpack.lock(
        packages, channels=[str(channel)], platforms=["linux-64"], output=where / "pixi.lock"
    )
    doc = yaml.safe_load(lock.read_text())
    name, version = whl.name.split("-")[:2]
    digest = hashlib.sha256(whl.read_bytes()).hexdigest()
    entry = {"pypi": str(whl), "name": name.replace("_", "-"), "version": version, "sha256": digest}
    doc["environments"]["default"]["packages"]["linux-64"].append({"pypi": entry["pypi"]})
    doc["packages"].append(entry)
    lock.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = where / "env.tar"
    portpack.pack(lockfile=lock, output=out, cache_dir=work / "cache")
    return out
