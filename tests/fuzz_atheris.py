"""Coverage-guided fuzzing of ``portpack.unpack`` with atheris (libFuzzer).

Each input is an archive; unpacking it must either succeed or raise a
PortpackError, and must not create anything outside its target directory.
Any other exception is a crash that atheris reports with the input.

    python tests/fuzz_atheris.py CORPUS_DIR -max_total_time=600

``tests/test_fuzz.py::test_atheris_short_run`` runs it briefly on a seed corpus.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import portpack

ROOT = tempfile.mkdtemp(prefix="portpack-atheris-")


def one_input(data: bytes) -> None:
    work = tempfile.mkdtemp(dir=ROOT)
    try:
        archive = os.path.join(work, "a.tar")
        with open(archive, "wb") as fh:
            fh.write(data)
        with contextlib.suppress(portpack.PortpackError):
            portpack.unpack(archive, os.path.join(work, "target"))
        outside = set(os.listdir(work)) - {"a.tar", "target"}
        if outside or set(os.listdir(ROOT)) != {os.path.basename(work)}:
            raise AssertionError(f"unpack wrote outside its target: {outside}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)
