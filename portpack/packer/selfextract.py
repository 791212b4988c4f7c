"""Self-extracting archives, the pack side: ``portpack pack --create-executable``.

The file is three parts (see ``docs/self-extracting.md``):

1. a POSIX sh header (``sfx_header.sh`` with the offsets filled in, padded to 4 KiB);
2. a gzip'd tar, the *bootstrap* (:mod:`portpack.packer.bootstrap`): a CPython runtime
   taken from a conda ``python`` package (the environment's own, or one solved for
   unpacking only), portpack's pure-Python modules and zstandard's C backend for that
   Python, from its wheel;
3. the portpack archive, unchanged (``docs/archive-format.md``).

On the target the header extracts the bootstrap with ``tail | head | gzip | tar`` into
a temporary directory and runs :func:`portpack.cli.unpack.self_extracting_main` with
it, which reads part 3 of the same file in place.  This module renders the header and
writes the three parts.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from importlib import resources
from typing import BinaryIO

from portpack._version import __version__
from portpack.archive import format as fmt
from portpack.archive.sfx import MAGIC, SHEBANG
from portpack.packer.bootstrap import Bootstrap, check_platform

HEADER_ALIGN = 4096
_CHUNK = 1 << 20


def _template() -> str:
    return resources.files("portpack").joinpath("sfx_header.sh").read_text(encoding="utf-8")


def _safe_comment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 ._,+=:/()-]", "_", text)


def render_header(bootstrap: Bootstrap, metadata: fmt.Metadata, name: str) -> bytes:
    """The sh header, padded to a multiple of 4 KiB, with every offset filled in."""
    python_note = (
        f"{bootstrap.python_dist}, the environment's own python"
        if bootstrap.python_from_environment
        else f"{bootstrap.python_dist} for unpacking only"
    )
    values = {
        "NAME": _safe_comment(name),
        "BOOTSTRAP": _safe_comment(f"{python_note}, portpack {__version__}, {bootstrap.wheel}"),
        "BOOT_SIZE": str(bootstrap.size),
        "SUMMARY": _safe_comment(f"{len(metadata.packages)} packages"),
        "PLATFORM": metadata.platform,
        "VERSION": _safe_comment(__version__),
        "PYTHON": shlex.quote(bootstrap.python),
        "MACHINE": check_platform(metadata.platform),
    }
    template = _template()
    size = HEADER_ALIGN
    while True:
        values.update(
            HEADER_SIZE=str(size),
            BOOT_START=str(size + 1),
            ARCHIVE_OFFSET=str(size + bootstrap.size),
        )
        text = re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], template).encode()
        if len(text) + 2 <= size:
            break
        size += HEADER_ALIGN
    pad = size - len(text)
    header = text + b"".join(b"#" * (min(80, pad - i) - 1) + b"\n" for i in range(0, pad, 80))
    if not header.startswith(SHEBANG + MAGIC):
        raise AssertionError("sfx_header.sh must start with the shebang and magic line")
    return header


def write_self_extracting(
    out: BinaryIO,
    bootstrap: Bootstrap,
    metadata: fmt.Metadata,
    name: str,
    write_archive: Callable[[BinaryIO], None],
) -> None:
    """Write header, bootstrap, then the archive (``write_archive(out)``) to ``out``."""
    out.write(render_header(bootstrap, metadata, name))
    bootstrap.file.seek(0)
    shutil.copyfileobj(bootstrap.file, out, _CHUNK)
    write_archive(out)
