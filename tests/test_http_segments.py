"""Only the changed packages' bytes of an archive at an http(s) URL (``unpack --update``).

Every server is a :class:`faultserver.FaultServer` on 127.0.0.1 started by the test,
which counts the body bytes it sends.  The archives (tests/support/segments.py) are
two versions that differ in packages beta and delta; ``new2`` carries v2 offsets.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from faultserver import Basic, Drop, FaultServer, Request
from portpack.archive.segment_source import SegmentRef
from portpack.errors import ArchiveError, FetchError
from portpack.remote.http_segments import (
    HEAD_SIZE,
    HttpSegmentSource,
    frame_need,
    open_http_segments,
)
from portpack.unpacker.sources import SourceOptions, open_segment_source
from support import segments
from support.segments import Versions, changed_refs, expected_bytes, metadata_end

FAST = SourceOptions(backoff=0.0, timeout=10.0)
USER, PASSWORD = "ann", "range-Secret-42"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    return segments.build(tmp_path_factory.mktemp("http-segments"))


@pytest.fixture
def www(tmp_path: Path, versions: Versions) -> Path:
    """A folder served by the test's server: ``env.tar`` is the new v2 archive."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(versions.new2, root / "env.tar")
    shutil.copy(versions.new, root / "env-v1.tar")
    return root


@pytest.fixture
def server(www: Path) -> Iterator[FaultServer]:
    with FaultServer(www) as fs:
        yield fs


def wanted(versions: Versions) -> list[SegmentRef]:
    return changed_refs(versions.old2, versions.new2)


def read_all(source: HttpSegmentSource, refs: list[SegmentRef]) -> list[bytes]:
    out = []
    for ref, stream in source.segments(refs):
        assert ref == refs[len(out)]
        out.append(stream.read())
    return out


def served(server: FaultServer, name: str = "env.tar") -> list[Request]:
    return server.requests_for(name)


def budget(versions: Versions, refs: list[SegmentRef]) -> int:
    """What an update must download at least: the metadata and the wanted segments."""
    return metadata_end(versions.new2) + sum(r.segment.zst_size for r in refs)


# -- only what is wanted --------------------------------------------------------------


def test_only_the_wanted_ranges_are_fetched_in_one_multipart_request(
    server: FaultServer, versions: Versions
) -> None:
    refs = wanted(versions)
    with open_http_segments(server.url + "env.tar", FAST) as source:
        assert source.metadata == segments.metadata_of(versions.new2)
        assert source.name == server.url + "env.tar"
        assert read_all(source, refs) == expected_bytes(versions.new2, refs)
        received = source.bytes_read
    requests = served(server)
    sent = sum(r.sent for r in requests)
    assert 0 <= sent - received <= 64  # the multipart answer's closing delimiter is not read
    assert sent <= 1.1 * budget(versions, refs)
    assert sent < versions.new2.stat().st_size / 2
    # The head, then beta and delta (each one coalesced range) in one request.
    assert len(requests) == 2
    assert requests[1].headers["Range"].count(",") == 1
    assert requests[1].status == 206
    assert requests[1].headers["If-Range"].startswith('"')  # the ETag of the first answer


def test_a_server_refusing_multiple_ranges_gets_one_request_per_range(
    www: Path, versions: Versions
) -> None:
    refs = wanted(versions)
    with FaultServer(www, multipart=False) as fs:
        with open_http_segments(fs.url + "env.tar", FAST) as source:
            assert read_all(source, refs) == expected_bytes(versions.new2, refs)
        requests = served(fs)
    # The first multi-range request was answered with the whole file (as nginx with
    # max_ranges 1 does) and cut off at once; then each range was asked for alone.
    refused = [r for r in requests if r.status == 200]
    assert len(refused) == 1 and "," in refused[0].headers["Range"]
    after = requests[requests.index(refused[0]) + 1 :]
    assert len(after) == 2
    assert all("," not in r.headers["Range"] and r.status == 206 for r in after)
    # How much of the refused answer the server got out before the client hung up
    # depends on socket buffers; every other byte sent was wanted.
    assert sum(r.sent for r in requests if r is not refused[0]) <= 1.1 * budget(versions, refs)


def test_a_server_without_range_support_is_read_forward_whole(
    www: Path, versions: Versions
) -> None:
    refs = wanted(versions)
    with FaultServer(www, ranges=False) as fs:
        with open_http_segments(fs.url + "env.tar", FAST) as source:
            assert read_all(source, refs) == expected_bytes(versions.new2, refs)
            received = source.bytes_read
        requests = served(fs)
    assert [r.status for r in requests] == [200]  # one answer, read forward
    last = refs[-1]
    assert last.segment.offset is not None
    assert received >= metadata_end(versions.new2) + last.segment.offset + last.segment.zst_size


def test_a_v1_archive_is_read_forward_after_its_head(
    server: FaultServer, versions: Versions
) -> None:
    refs = changed_refs(versions.old, versions.new)  # no offsets: format v1
    assert all(r.segment.offset is None for r in refs)
    with open_http_segments(server.url + "env-v1.tar", FAST) as source:
        data = read_all(source, refs)
    v2 = changed_refs(versions.old2, versions.new2)
    assert data == expected_bytes(versions.new2, v2)  # the same segments, v1 or v2
    requests = served(server, "env-v1.tar")
    assert [r.status for r in requests] == [206, 206]
    head = requests[0].headers["Range"]
    assert requests[1].headers["Range"] == f"bytes={int(head.split('-')[1]) + 1}-"


# -- a source that misbehaves ---------------------------------------------------------


def test_a_file_replaced_on_the_server_after_the_metadata_is_refused(
    server: FaultServer, www: Path, versions: Versions
) -> None:
    refs = wanted(versions)
    with open_http_segments(server.url + "env.tar", FAST) as source:
        replacement = www / "replacement.tar"
        shutil.copy(versions.old2, replacement)
        os.replace(replacement, www / "env.tar")
        with pytest.raises(FetchError) as caught:
            read_all(source, refs)
    message = str(caught.value)
    assert f"{server.url}env.tar changed on the server while it was being read" in message
    assert "its ETag was" in message
    assert "nothing more is read from it" in message
    assert served(server)[-1].headers["If-Range"]


def test_a_connection_cut_inside_a_range_is_resumed(
    server: FaultServer, versions: Versions
) -> None:
    refs = wanted(versions)
    server.chooser = lambda name, attempt: Drop(40_000) if attempt == 1 else None
    with open_http_segments(server.url + "env.tar", FAST) as source:
        assert read_all(source, refs) == expected_bytes(versions.new2, refs)
    requests = served(server)
    assert isinstance(requests[1].fault, Drop)
    # The third request goes on from where the cut one stopped.
    asked = requests[1].headers["Range"].removeprefix("bytes=").split(",")[0]
    resumed = requests[2].headers["Range"].removeprefix("bytes=").split(",")[0]
    assert int(resumed.split("-")[0]) > int(asked.split("-")[0])
    assert sum(r.sent for r in requests) <= 1.15 * budget(versions, refs)


def test_a_corrupt_wanted_segment_is_refused_naming_the_package(
    server: FaultServer, www: Path, versions: Versions
) -> None:
    refs = wanted(versions)
    payload = refs[1]  # beta's payload
    assert payload.segment.offset is not None
    data = bytearray((www / "env.tar").read_bytes())
    data[metadata_end(versions.new2) + payload.segment.offset + 5000] ^= 0x10
    (www / "bad.tar").write_bytes(bytes(data))
    with open_http_segments(server.url + "bad.tar", FAST) as source:
        streams = source.segments(refs)
        _, info = next(streams)
        info.read()
        _, pkg = next(streams)
        with pytest.raises(ArchiveError) as caught:
            pkg.read()
    assert str(caught.value).startswith(f"{server.url}bad.tar: package beta-1.0-0: ")
    assert "pkgs/beta-1.0-0/pkg.tar does not match the digest" in str(caught.value)


def test_netrc_credentials_are_sent_with_every_range(
    www: Path, versions: Versions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc of the user's
    monkeypatch.delenv("NETRC", raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\n  login {USER}\n  password {PASSWORD}\n")
    netrc.chmod(0o600)
    refs = wanted(versions)
    with FaultServer(www, auth=Basic(USER, PASSWORD)) as fs:
        url = fs.url + "env.tar"
        with pytest.raises(FetchError, match="HTTP 401, authentication required"):
            open_http_segments(url, FAST)
        with open_http_segments(url, replace(FAST, netrc_file=netrc)) as source:
            assert read_all(source, refs) == expected_bytes(versions.new2, refs)
        requests = served(fs)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert [r.headers.get("Authorization") for r in requests[1:]] == [f"Basic {token}"] * 2


# -- the dispatcher and the head ------------------------------------------------------


def test_open_segment_source_takes_urls_paths_and_streams(
    server: FaultServer, versions: Versions
) -> None:
    refs = wanted(versions)
    expected = expected_bytes(versions.new2, refs)
    with open(versions.new2, "rb") as fh:
        for archive in (server.url + "env.tar", versions.new2, str(versions.new2), fh):
            with ExitStack() as stack:
                meta, source = open_segment_source(archive, stack, SourceOptions())
                assert meta == segments.metadata_of(versions.new2)
                assert [s.read() for _, s in source.segments(refs)] == expected
                assert source.bytes_read > 0


def test_the_metadata_frame_end_is_found_from_its_block_headers() -> None:
    import zstandard

    for size in (0, 100, 200_000, 1_500_000):
        data = bytes(random_text(size))
        for checksum in (False, True):
            frame = zstandard.ZstdCompressor(level=19, write_checksum=checksum).compress(data)
            head = b""
            while (need := frame_need(head)) > len(head):
                head = frame[:need]
            assert head == frame
            assert frame_need(frame + b"more") == len(frame)


def test_metadata_larger_than_the_first_request_is_read_to_its_end_exactly(
    tmp_path: Path,
) -> None:
    # Many packages with incompressible digests: a metadata frame several times the
    # first request. What the head costs is the frame itself, no byte past it.
    from hostile import Member, RawPackage, make_archive

    many = [
        RawPackage(f"pkg{i:03d}", [Member(f"share/p{i}.txt", os.urandom(64))]) for i in range(90)
    ]
    archive = segments.with_offsets(make_archive(tmp_path / "big", many), tmp_path / "big.tar")
    end = metadata_end(archive)
    assert end > 2 * HEAD_SIZE
    with FaultServer(archive.parent) as fs:
        with open_http_segments(fs.url + archive.name, FAST) as source:
            assert source.metadata == segments.metadata_of(archive)
            assert source.bytes_read == end
        requests = served(fs, archive.name)
    assert requests[0].headers["Range"] == f"bytes=0-{HEAD_SIZE - 1}"
    assert sum(r.sent for r in requests) == end


def random_text(size: int) -> bytes:
    import random

    rng = random.Random(size)
    words = [b"conda", b"package", b"sha256", b"depends", b"1.2.3", b"linux-64"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


# -- servers that answer ranges their own way -----------------------------------------


class Crafted:
    """A server on 127.0.0.1 serving ``data``: single ranges as asked, multi-range
    requests as ``mode`` says (``coalesce``: one range from the first byte asked to
    the last; ``outside``: a multipart whose second part was not asked for;
    ``length``: parts that give the file another length)."""

    def __init__(self, data: bytes, mode: str) -> None:
        import http.server
        import threading

        self.data, self.mode = data, mode
        crafted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                crafted.answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/env.tar"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, h: Any) -> None:
        size = len(self.data)
        spans = [
            tuple(int(x) for x in part.split("-"))
            for part in h.headers["Range"].removeprefix("bytes=").split(",")
        ]
        headers = {"ETag": '"crafted"'}
        if len(spans) == 1 or self.mode == "coalesce":
            first, last = spans[0][0], spans[-1][1]
            body = self.data[first : last + 1]
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        else:
            total = size + 1 if self.mode == "length" else size
            if self.mode == "outside":
                spans[1] = (spans[1][0] + 10, spans[1][1] + 10)
            body = b""
            for first, last in spans:
                body += (
                    f"\r\n--XX\r\nContent-Range: bytes {first}-{last}/{total}\r\n\r\n".encode()
                    + self.data[first : last + 1]
                )
            body += b"\r\n--XX--\r\n"
            headers["Content-Type"] = "multipart/byteranges; boundary=XX"
        h.send_response(206)
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def test_ranges_the_server_coalesces_into_one_are_accepted(versions: Versions) -> None:
    refs = wanted(versions)
    server = Crafted(versions.new2.read_bytes(), "coalesce")
    try:
        with open_http_segments(server.url, FAST) as source:
            assert read_all(source, refs) == expected_bytes(versions.new2, refs)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("outside", r"sent bytes \d+-\d+, which were not asked for"),
        ("length", "changed on the server while it was being read \\(its length was"),
    ],
)
def test_multipart_parts_that_do_not_match_what_was_asked_are_refused(
    versions: Versions, mode: str, message: str
) -> None:
    refs = wanted(versions)
    server = Crafted(versions.new2.read_bytes(), mode)
    try:
        with open_http_segments(server.url, FAST) as source, pytest.raises(FetchError) as caught:
            read_all(source, refs)
        assert caught.value.message.startswith(server.url)
        assert caught.match(message)
    finally:
        server.stop()


def test_segments_beyond_the_end_of_the_file_are_refused_naming_the_package(
    server: FaultServer, www: Path, versions: Versions
) -> None:
    from hostile import replace_metadata
    from portpack.archive.segment_source import package_refs

    def edit(doc: dict[str, Any]) -> None:  # valid metadata, but longer than the file
        doc["packages"][-1]["payload"]["zst_size"] += 10**6

    replace_metadata(versions.new2, edit, www / "hostile.tar")
    refs = list(package_refs(segments.metadata_of(www / "hostile.tar").packages[-1]))
    url = server.url + "hostile.tar"
    with open_http_segments(url, FAST) as source, pytest.raises(ArchiveError) as caught:
        read_all(source, refs)
    assert f"{url}: the metadata gives package epsilon-1.0-0 an impossible offset" in str(
        caught.value
    )
    assert len(served(server, "hostile.tar")) == 1  # refused before any range was asked for
