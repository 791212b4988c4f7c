"""A bare Debian system in a directory, for running self-extracting archives in a chroot.

``cached_rootfs("trixie")`` builds ``debootstrap --variant=minbase trixie`` (Debian
13) once per machine under the test cache (:mod:`.cache`) and returns it; treat it
as read-only and :func:`copy_rootfs` it for a test. :func:`chroot_run` runs a
command inside a copy with ``/proc`` mounted, as a container runtime would (the
dynamic loader needs it to expand ``$ORIGIN``), and unmounts it afterwards even on
failure.

Needs root, ``debootstrap`` (``.ci/run`` installs it) and the Debian mirror that
apt uses (from ``/etc/apt/sources.list*``; ``$PORTPACK_DEBIAN_MIRROR`` overrides it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from .cache import cached_build

DEFAULT_SUITE = "trixie"  # Debian 13
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "PORTPACK_DEBIAN_MIRROR"
_SOURCES = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (not the security archive)."""
    configured = os.environ.get(MIRROR_ENV)
    if configured:
        return configured
    for source in _SOURCES:
        if not source.is_file() or not source.name.endswith((".list", ".sources")):
            continue
        text = source.read_text(errors="replace")
        urls = re.findall(r"^\s*URIs:\s*(\S+)", text, re.MULTILINE)
        urls += re.findall(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE)
        for url in urls:
            if "security" not in url and url.rstrip("/").endswith("/debian"):
                return url
    return DEFAULT_MIRROR


def build_rootfs(dest: Path, suite: str = DEFAULT_SUITE) -> Path:
    """Run ``debootstrap --variant=minbase SUITE DEST MIRROR`` (a few minutes at most)."""
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise RuntimeError("debootstrap is not installed: apt-get install debootstrap")
    proc = subprocess.run(
        [debootstrap, "--variant=minbase", suite, str(dest), apt_mirror()],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        log = dest / "debootstrap" / "debootstrap.log"
        detail = log.read_text(errors="replace")[-3000:] if log.is_file() else proc.stderr
        raise RuntimeError(f"debootstrap {suite} failed ({proc.returncode}):\n{detail}")
    # apt's package lists are not needed to run anything; keep the cache small.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (dest / leftover).glob("*.deb"):
            path.unlink()
    return dest


def _build_trixie(dest: Path) -> Path:
    return build_rootfs(dest, "trixie")


def cached_rootfs(suite: str = DEFAULT_SUITE) -> Path:
    """The minbase rootfs of ``suite``, built once per machine (read-only: copy it)."""
    if suite != "trixie":
        raise ValueError(f"no cached builder for suite {suite!r}")
    return cached_build(f"debian-{suite}-minbase", _build_trixie, [Path(__file__)])


def copy_rootfs(rootfs: Path, dest: Path) -> Path:
    """A private copy of ``rootfs`` at ``dest`` (``cp -a``: owners, modes, devices)."""
    subprocess.run(["cp", "-a", f"{rootfs}/.", str(dest)], check=True)
    return dest


@contextlib.contextmanager
def proc_mounted(root: Path) -> Iterator[None]:
    """Mount ``/proc`` inside ``root`` for the duration; unmount even on failure."""
    target = root / "proc"
    target.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def chroot_run(
    root: Path, argv: Sequence[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``root`` with ``/proc`` mounted and a clean environment."""
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/root"}
    clean.update(env or {})
    with proc_mounted(root):
        return subprocess.run(
            ["chroot", str(root), *argv],
            capture_output=True,
            text=True,
            env=clean,
            check=False,
        )
