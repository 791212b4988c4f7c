"""Fuzzing the unpacker: any mutation of a valid archive either unpacks to a verified
environment or fails with a PortpackError, never writes outside the target, never hangs.

The default run is short (about a minute in all). For a longer run:

    PORTPACK_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portpack
from hostile import Member, RawPackage, make_archive, replace_metadata
from portpack.install.verify import verify

EXAMPLES = int(os.environ.get("PORTPACK_FUZZ_EXAMPLES", "150"))
#: The default (CI) run is reproducible; longer runs explore new inputs each time.
FIXED = "PORTPACK_FUZZ_EXAMPLES" not in os.environ
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=FIXED,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PACKAGES = [
    RawPackage(
        "alpha",
        [
            Member("share/alpha/a.txt", b"alpha\n" * 50),
            Member("share/alpha/link", type=tarfile.SYMTYPE, linkname="a.txt"),
            Member("bin/alpha", b"#!/bin/sh\necho alpha\n", mode=0o755),
        ],
    ),
    RawPackage(
        "beta",
        [Member("share/beta/b.txt", bytes(range(256)) * 8), Member("share/beta/sub/c.txt", b"c")],
        depends=["alpha"],
    ),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_archive(tmp_path_factory.mktemp("fuzzbase"), PACKAGES)


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def check_outcome(archive: Path, work: Path) -> None:
    """Unpack into work/target: success must verify; failure must be clean and contained."""
    target = work / "target"
    before = listing(work)
    try:
        result = portpack.unpack(archive, target)
    except portpack.PortpackError:
        assert not (target / "env").exists()
        assert not target.exists() or list(target.iterdir()) == []
    else:
        assert verify(result.prefix).ok
    after = listing(work)
    assert {p for p in after - before if not p.startswith("target")} == set()


def fresh(tmp_path: Path) -> Path:
    work = tmp_path / os.urandom(6).hex()
    work.mkdir()
    return work


@FUZZ
@given(data=st.data())
def test_raw_byte_mutations(base: Path, tmp_path: Path, data: st.DataObject) -> None:
    raw = bytearray(base.read_bytes())
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice", "insert"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "splice":
        a, b = sorted(data.draw(st.lists(st.integers(0, len(raw)), min_size=2, max_size=2)))
        c = data.draw(st.integers(0, len(raw)))
        raw = raw[:c] + raw[a:b] + raw[c:]
    else:
        at = data.draw(st.integers(0, len(raw)))
        raw[at:at] = data.draw(st.binary(min_size=1, max_size=64))
    work = fresh(tmp_path)
    (work / "a.tar").write_bytes(bytes(raw))
    check_outcome(work / "a.tar", work)


def rebuild_with_payload(base: Path, work: Path, mutate: Any) -> Path:
    """Re-pack ``base``'s packages with their payload tars mutated (digests stay consistent)."""
    for pkg in PACKAGES:
        conda = base.parent / f"{pkg.stem}.conda"
        with zipfile.ZipFile(conda) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        name = next(n for n in members if n.startswith("pkg-"))
        tar = zstandard.ZstdDecompressor().decompressobj().decompress(members[name])
        members[name] = zstandard.ZstdCompressor(level=1).compress(mutate(bytearray(tar)))
        with zipfile.ZipFile(work / conda.name, "w", zipfile.ZIP_STORED) as zf:
            for n, payload in members.items():
                zf.writestr(n, payload)
    from hostile import record
    from portpack.archive import segments as condapkg
    from portpack.archive import writer as archive_writer
    from portpack.packer import packing

    files = [work / f"{p.stem}.conda" for p in PACKAGES]
    records = [record(p, f) for p, f in zip(PACKAGES, files, strict=True)]
    analyzed = [condapkg.analyze(f, p.name) for f, p in zip(files, PACKAGES, strict=True)]
    meta = packing.build_metadata("linux-64", records, analyzed)
    out = work / "env.tar"
    with open(out, "wb") as fh:
        archive_writer.write_archive(fh, meta, analyzed)
    return out


@FUZZ
@given(data=st.data())
def test_payload_tar_mutations(base: Path, tmp_path: Path, data: st.DataObject) -> None:
    """Corrupt the inner tars themselves (headers, names, sizes), with valid digests."""
    edits = data.draw(
        st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=12)
    )
    cut = data.draw(st.none() | st.integers(0, 4096))

    def mutate(tar: bytearray) -> bytes:
        for offset, value in edits:
            if offset < len(tar):
                tar[offset] = value
        return bytes(tar[:cut] if cut is not None else tar)

    work = fresh(tmp_path)
    try:
        archive = rebuild_with_payload(base, work, mutate)
    except portpack.PortpackError:
        # Packing checks every file against paths.json: a contradicting package is
        # refused there, and no archive is written.
        assert not (work / "env.tar").exists()
        return
    check_outcome(archive, work)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@FUZZ
@given(data=st.data())
def test_metadata_mutations(base: Path, tmp_path: Path, data: st.DataObject) -> None:
    """Valid JSON with altered, missing or mistyped fields."""

    def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix]
        if isinstance(doc, dict):
            for k, v in doc.items():
                out += paths(v, (*prefix, k))
        elif isinstance(doc, list):
            for i, v in enumerate(doc):
                out += paths(v, (*prefix, i))
        return out

    def edit(doc: dict[str, Any]) -> None:
        for _ in range(data.draw(st.integers(1, 3))):
            where = data.draw(st.sampled_from(paths(doc)[1:]))
            parent = doc
            for key in where[:-1]:
                parent = parent[key]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                del parent[where[-1]]
            else:
                parent[where[-1]] = data.draw(JSON_VALUES)

    work = fresh(tmp_path)
    try:
        mutated = replace_metadata(base, edit, work / "m.tar")
    except (KeyError, IndexError, TypeError):
        return  # the edit removed what a later edit addressed
    check_outcome(mutated, work)


def test_metadata_roundtrip_is_unchanged(base: Path, tmp_path: Path) -> None:
    """The mutation helper itself preserves a valid archive when nothing is edited."""
    same = replace_metadata(base, lambda doc: None, tmp_path / "same.tar")
    check_outcome(same, tmp_path)
    assert verify(tmp_path / "target" / "env").ok
    doc = json.loads(io.BytesIO(b"{}").read())
    assert doc == {}


def test_atheris_short_run(base: Path, tmp_path: Path) -> None:
    """A short coverage-guided run (atheris/libFuzzer) seeded with a valid archive."""
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed.tar").write_bytes(base.read_bytes())
    harness = Path(__file__).with_name("fuzz_atheris.py")
    runs = os.environ.get("PORTPACK_ATHERIS_RUNS", "10000")
    seed = ["-seed=1"] if "PORTPACK_ATHERIS_RUNS" not in os.environ else []
    out = subprocess.run(
        [
            sys.executable,
            str(harness),
            str(corpus),
            f"-runs={runs}",
            "-max_total_time=60",
            "-rss_limit_mb=1024",
            f"-artifact_prefix={tmp_path}/",
            *seed,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done" in out.stderr
