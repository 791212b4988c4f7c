"""Tests of portpack.conda.tarstream against the standard library's tarfile.

Every archive is built in memory with ``tarfile`` and fed to the reader as an
iterator of chunks (nothing can seek), cut at many different boundaries.
"""

from __future__ import annotations

import functools
import io
import random
import tarfile
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portpack.conda.tarstream import (
    BLOCK,
    DIRECTORY,
    ChunkReader,
    Member,
    iter_members,
    parse_header,
    parse_pax,
)
from portpack.errors import ArchiveError

FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
CHUNK_SIZES = [1, 7, 511, 512, 513, 4096, 64 * 1024, 1 << 30]

#: (name, type, mode, size, mtime, linkname, data) -- what a consumer of a tar stream sees.
Seen = tuple[str, bytes, int, int, int, str, bytes]
#: A member to write: its header and its data (None for links and directories).
Entry = tuple[tarfile.TarInfo, bytes | None]


# --- helpers ---------------------------------------------------------------------------------


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _file(name: str, data: bytes, mode: int = 0o644, mtime: int = 1_700_000_000) -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, mtime
    return info, data


def _link(name: str, kind: bytes, target: str, mtime: int = 1_600_000_000) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, target, 0o777, mtime
    return info, None


def _dir(name: str, mode: int = 0o755) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 1_500_000_000
    return info, None


def _build(entries: Sequence[Entry], fmt: int, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kwargs) as tf:  # type: ignore[call-overload]
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _rich_entries(fmt: int) -> list[Entry]:
    """Directories, files of awkward sizes, links, long names (as long as ``fmt`` allows)."""
    entries = [
        _dir("pkg/"),
        _dir("pkg/bin", mode=0o700),
        _file("pkg/empty", b""),
        _file("pkg/one", b"1"),
        _file("pkg/block", _payload(512, 1)),
        _file("pkg/block+1", _payload(513, 2), mode=0o755),
        _file("pkg/bin/tool", _payload(5000, 3), mode=0o4755, mtime=0),
        _file("pkg/large", _payload(70_001, 4), mtime=2_000_000_000),
        _file("pkg/ünïcode-€.txt", "ünïcode".encode()),
        _link("pkg/hard", tarfile.LNKTYPE, "pkg/one"),
        _link("pkg/soft", tarfile.SYMTYPE, "one"),
        _link("pkg/abs", tarfile.SYMTYPE, "/etc/hosts"),
        # 150 characters with a '/' where ustar can split it into prefix + name.
        _file("pkg/" + "p" * 80 + "/" + "n" * 65, b"split name"),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        entries += [
            _file("pkg/" + "l" * 120, b"long name, no slash"),
            _file("pkg/" + "/".join(["segment" * 4] * 10) + "/file.txt", b"over 255"),
            _link("pkg/longlink", tarfile.SYMTYPE, "../" * 40 + "t" * 30),
            _link("pkg/" + "h" * 130, tarfile.LNKTYPE, "pkg/" + "l" * 120),
            _file("pkg/after-long", b"names must not leak into the next member"),
        ]
    return entries


@functools.cache
def _rich_archive(fmt: int) -> tuple[bytes, list[Seen]]:
    """The archive of :func:`_rich_entries` and what tarfile reads from it (built once)."""
    data = _build(_rich_entries(fmt), fmt)
    return data, _expected(data)


def _chunks(data: bytes, sizes: Sequence[int], empty_between: bool = False) -> Iterator[bytes]:
    """Cut ``data`` into chunks of ``sizes`` (cycled); a generator, so nothing can seek."""
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        yield data[pos : pos + size]
        if empty_between:
            yield b""
        pos += size
        i += 1


def _expected(data: bytes) -> list[Seen]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for info in tf:
            fh = tf.extractfile(info) if info.isreg() else None
            content = fh.read() if fh else b""
            out.append(
                (
                    info.name,
                    info.type,
                    info.mode,
                    info.size,
                    int(info.mtime),
                    info.linkname,
                    content,
                )
            )
    return out


def _normal_name(member: Member) -> str:
    # tarfile drops the trailing slash of directory names; the stream reader keeps it.
    return member.name.rstrip("/") if member.type == DIRECTORY else member.name


def _read_stream(chunks: Iterator[bytes], use_pieces: bool = False) -> list[Seen]:
    reader = ChunkReader(chunks, "test stream")
    out = []
    for m in iter_members(reader):
        if not m.is_file:
            content = b""
        elif use_pieces:
            content = b"".join(bytes(p) for p in reader.pieces(m.size))
        else:
            content = bytes(reader.read(m.size))
        out.append((_normal_name(m), m.type, m.mode, m.size, m.mtime, m.linkname, content))
    return out


def _end_offset(data: bytes) -> int:
    """Offset just past the end-of-archive block, as the reader sees it."""
    reader = ChunkReader(iter([data]), "probe")
    for _ in iter_members(reader):
        pass
    return reader.consumed


# --- agreement with tarfile -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_members_match_tarfile(fmt: int, size: int) -> None:
    data, expected = _rich_archive(fmt)
    assert len(expected) == len(_rich_entries(fmt))
    assert _read_stream(_chunks(data, [size])) == expected
    assert _read_stream(_chunks(data, [size]), use_pieces=True) == expected


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 70_000), min_size=1, max_size=12),
    empty_between=st.booleans(),
    use_pieces=st.booleans(),
)
def test_members_match_tarfile_for_any_chunking(
    fmt: int, sizes: list[int], empty_between: bool, use_pieces: bool
) -> None:
    data, expected = _rich_archive(fmt)
    assert _read_stream(_chunks(data, sizes, empty_between), use_pieces) == expected


_NAME = st.text(alphabet="abcdefgh-_.é/", min_size=1, max_size=300).filter(
    lambda n: not n.startswith("/") and "//" not in n and not n.endswith("/")
)


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    files=st.lists(
        st.tuples(_NAME, st.integers(0, 3000), st.integers(0, 0o7777), st.integers(0, 2**33 - 1)),
        max_size=8,
    ),
    sizes=st.lists(st.integers(1, 2000), min_size=1, max_size=8),
)
def test_generated_archives_match_tarfile(
    fmt: int, files: list[tuple[str, int, int, int]], sizes: list[int]
) -> None:
    entries = [
        _file(name, _payload(size, i), mode=mode, mtime=mtime)
        for i, (name, size, mode, mtime) in enumerate(files)
    ]
    data = _build(entries, fmt)
    assert _read_stream(_chunks(data, sizes)) == _expected(data)


def test_pax_global_header_and_float_mtime() -> None:
    info, payload = _file("pkg/f", b"data")
    info.mtime = 1_700_000_000.75  # tarfile stores a float mtime in a pax record
    data = _build([(info, payload)], tarfile.PAX_FORMAT, pax_headers={"comment": "global"})
    members = _read_stream(_chunks(data, [100]))
    assert members == _expected(data)
    assert members[0][0] == "pkg/f"
    assert members[0][4] == 1_700_000_000


def test_pax_mtime_beyond_the_octal_field() -> None:
    far_future = 8**11 + 12345  # does not fit 11 octal digits
    data = _build([_file("f", b"x", mtime=far_future)], tarfile.PAX_FORMAT)
    assert _read_stream(iter([data]))[0][4] == far_future


def test_gnu_base256_numbers() -> None:
    far_future = 8**11 + 12345
    data = _build([_file("f", b"x", mtime=far_future)], tarfile.GNU_FORMAT)
    assert _read_stream(iter([data]))[0][4] == far_future
    info = tarfile.TarInfo("huge")
    info.size = 1 << 34  # 16 GiB: too big for 11 octal digits
    member = parse_header(info.tobuf(tarfile.GNU_FORMAT)[:BLOCK], "test")
    assert member.size == 1 << 34


def test_pax_size_record_overrides_header() -> None:
    info = tarfile.TarInfo("huge")
    info.size = 1 << 34
    headers = info.tobuf(tarfile.PAX_FORMAT)
    member = next(iter_members(ChunkReader(iter([headers]), "test")))
    assert (member.name, member.size) == ("huge", 1 << 34)


def test_gnu_negative_mtime() -> None:
    # GNU tar stores times before 1970 in base-256 two's complement.
    data = _build([_file("old", b"x", mtime=-86400)], tarfile.GNU_FORMAT)
    assert _expected(data)[0][4] == -86400
    assert _read_stream(iter([data]))[0][4] == -86400


@pytest.mark.parametrize("type_", [b"0", b"\0", b"7"])
def test_regular_file_aliases(type_: bytes) -> None:
    info, payload = _file("f", b"abc")
    info.type = type_
    members = list(_read_stream(iter([_build([(info, payload)], tarfile.GNU_FORMAT)])))
    assert members[0][1] == type_
    assert members[0][6] == b"abc"


def test_unread_data_is_skipped() -> None:
    first, last = _payload(3000, 1), _payload(10, 2)
    data = _build([_file("a", first), _file("b", b"second"), _file("c", last)], tarfile.GNU_FORMAT)
    reader = ChunkReader(_chunks(data, [333]), "test")
    names = []
    for member in iter_members(reader):
        names.append(member.name)
        if member.name == "a":
            assert bytes(reader.read(100)) == first[:100]  # leave the rest unread
        elif member.name == "c":
            assert bytes(reader.read(member.size)) == last
        # "b" is not read at all
    assert names == ["a", "b", "c"]


def test_stops_at_end_of_archive_marker() -> None:
    data = _build([_file("a", b"x")], tarfile.USTAR_FORMAT)
    end = _end_offset(data)
    assert end == 3 * BLOCK  # header, data block, first zero block
    # Whatever follows the marker is not read as members.
    tail = data[:end] + b"garbage" * 100
    assert [m[0] for m in _read_stream(iter([tail]))] == ["a"]


def test_empty_archive() -> None:
    assert _read_stream(iter([_build([], tarfile.PAX_FORMAT)])) == []


# --- errors ----------------------------------------------------------------------------------


def _consume(chunks: Iterator[bytes]) -> None:
    _read_stream(chunks, use_pieces=True)


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_every_truncation_raises_archive_error(fmt: int) -> None:
    entries = [
        _dir("d/"),
        _file("d/f", _payload(700, 1)),
        _link("d/l", tarfile.SYMTYPE, "f"),
        _file("d/" + "x" * 90 + "/" + "y" * 40, b"z"),
    ]
    data = _build(entries, fmt)
    end = _end_offset(data)
    for cut in range(end):
        with pytest.raises(ArchiveError, match="truncated"):
            _consume(_chunks(data[:cut], [97]))
    _consume(_chunks(data[:end], [97]))  # complete up to the marker: fine


@settings(max_examples=80, deadline=None)
@given(cut_fraction=st.floats(0, 1, exclude_max=True), size=st.integers(1, 2000))
def test_truncated_long_name_archive_raises(cut_fraction: float, size: int) -> None:
    data = _rich_archive(tarfile.GNU_FORMAT)[0]
    cut = int(_end_offset(data) * cut_fraction)
    with pytest.raises(ArchiveError):
        _consume(_chunks(data[:cut], [size]))


def test_bad_magic_raises_archive_error_with_offset() -> None:
    data = bytearray(_build([_file("a", b"x"), _file("b", b"y")], tarfile.USTAR_FORMAT))
    data[1024 + 257 : 1024 + 262] = b"nope!"  # second header
    reader = ChunkReader(iter([bytes(data)]), "archive.tar")
    members = iter_members(reader)
    assert next(members).name == "a"
    with pytest.raises(ArchiveError, match=r"archive\.tar at byte 1024.*bad magic"):
        next(members)


def test_random_block_is_not_a_header() -> None:
    with pytest.raises(ArchiveError, match="bad magic"):
        _consume(iter([_payload(BLOCK, 9) + bytes(1024)]))


@pytest.mark.parametrize(("start", "end"), [(100, 108), (124, 136), (136, 148)])
def test_garbage_number_field_raises_archive_error(start: int, end: int) -> None:
    data = bytearray(_build([_file("a", b"x")], tarfile.USTAR_FORMAT))
    data[start:end] = b"zz9\x01zz\0\0"[: end - start].ljust(end - start, b"z")
    with pytest.raises(ArchiveError, match="corrupt tar header"):
        _consume(iter([bytes(data)]))


def test_oversized_extended_header_is_refused_before_reading() -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 2 << 20
    header = info.tobuf(tarfile.USTAR_FORMAT)
    with pytest.raises(ArchiveError, match="too large"):
        _consume(iter([header]))  # no data follows: refused on size, not on truncation


def test_corrupt_pax_value_raises_archive_error() -> None:
    info, payload = _file("f", b"x")
    info.pax_headers = {"size": "not-a-number"}
    data = _build([(info, payload)], tarfile.PAX_FORMAT)
    with pytest.raises(ArchiveError, match="corrupt pax header value"):
        _consume(iter([data]))


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    digits = 1  # the length counts its own digits
    while len(str(len(body) + digits)) != digits:
        digits += 1
    return str(len(body) + digits).encode() + body


def test_parse_pax_records() -> None:
    records = _pax_record("path", "abc") + _pax_record("linkpath", "x=y z\nw")
    assert records.startswith(b"12 path=abc\n")
    assert parse_pax(records, "t") == {"path": "abc", "linkpath": "x=y z\nw"}
    assert parse_pax(b"", "t") == {}


@pytest.mark.parametrize(
    "records",
    [b"abc path=x\n", b"99 path=x\n", b"0 path=x\n", b"11 pathxxx\n", b"nospace"],
)
def test_parse_pax_rejects_corrupt_records(records: bytes) -> None:
    with pytest.raises(ArchiveError, match="corrupt pax header"):
        parse_pax(records, "t")


# --- ChunkReader -----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=10),
    reads=st.lists(st.tuples(st.sampled_from(["read", "pieces", "skip"]), st.integers(0, 80))),
)
def test_chunk_reader_is_a_faithful_byte_stream(
    sizes: list[int], reads: list[tuple[str, int]]
) -> None:
    data = _payload(1000, 5)
    reader = ChunkReader(_chunks(data, sizes, empty_between=True), "t")
    pos = 0
    for op, n in reads:
        if pos + n > len(data):
            break
        if op == "read":
            assert bytes(reader.read(n)) == data[pos : pos + n]
        elif op == "pieces":
            pieces = [bytes(p) for p in reader.pieces(n)]
            assert all(pieces)
            assert b"".join(pieces) == data[pos : pos + n]
        else:
            reader.skip(n)
        pos += n
        assert reader.consumed == pos
    assert bytes(reader.read(len(data) - pos)) == data[pos:]
    assert reader.at_eof()


def test_pieces_yields_exactly_n_bytes() -> None:
    reader = ChunkReader(_chunks(bytes(range(100)), [7]), "t")
    pieces = [bytes(p) for p in reader.pieces(30)]
    assert b"".join(pieces) == bytes(range(30))
    assert [len(p) for p in pieces] == [7, 7, 7, 7, 2]  # slices of the input chunks
    assert bytes(reader.read(5)) == bytes(range(30, 35))
    assert list(reader.pieces(0)) == []


def test_skip_across_chunks() -> None:
    reader = ChunkReader(_chunks(bytes(range(100)), [3]), "t")
    reader.read(1)
    reader.skip(50)
    assert reader.consumed == 51
    assert bytes(reader.read(4)) == bytes(range(51, 55))
    reader.skip(45)
    assert reader.at_eof()


def test_read_past_end_raises_with_offset() -> None:
    reader = ChunkReader(_chunks(b"abcdefghij", [4]), "my stream")
    assert bytes(reader.read(6)) == b"abcdef"
    with pytest.raises(ArchiveError, match="my stream is truncated at byte 10"):
        reader.read(10)


def test_pieces_past_end_raises() -> None:
    reader = ChunkReader(iter([b"abc", b"de"]), "s")
    got = bytearray()
    with pytest.raises(ArchiveError, match="s is truncated at byte 5"):
        for piece in reader.pieces(6):
            got += piece
    assert bytes(got) == b"abcde"


def test_skip_past_end_raises() -> None:
    reader = ChunkReader(iter([b"abc"]), "s")
    with pytest.raises(ArchiveError, match="truncated"):
        reader.skip(4)


def test_at_eof() -> None:
    assert ChunkReader(iter([]), "s").at_eof()
    assert ChunkReader(iter([b"", b""]), "s").at_eof()
    reader = ChunkReader(iter([b"", b"a", b""]), "s")
    assert not reader.at_eof()
    reader.read(1)
    assert reader.at_eof()


def test_negative_size_is_refused() -> None:
    """Regression (found by atheris): a GNU base-256 negative size must not be obeyed."""
    import tarfile as _tarfile

    info = _tarfile.TarInfo("evil")
    info.size = 1
    header = bytearray(info.tobuf(format=_tarfile.GNU_FORMAT))
    header[124:136] = b"\xff" * 12  # base-256, two's complement: -1
    reader = ChunkReader(iter([bytes(header) + bytes(2048)]), "evil.tar")
    with pytest.raises(ArchiveError, match="negative size"):
        list(iter_members(reader))
