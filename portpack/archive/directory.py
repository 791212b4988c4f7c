"""Archives unpacked into a folder (``pack --directory-only``), read back as a stream.

Standard library and zstandard only: this is on the unpack path.

A folder holds the members of an archive as files (see docs/archive-format.md):

* pixi-pack's layout, as pixi-pack 0.7.6+ writes it with ``--directory-only``:
  ``pixi-pack.json``, ``environment.yml``, ``channel/<subdir>/...``, ``pypi/...``.
* portpack's layout: ``portpack.json`` and, per member of the archive, its stored
  (compressed) bytes in ``<member>.zst`` (``pkgs/<stem>/info.tar.zst``, ...).

Unpacking from a folder does not get a path of its own: :func:`open_directory`
turns the folder back into the byte stream of the equivalent archive, which then
goes through the archive readers and all their checks.  The folder is as hostile
as an archive: every name is checked with :func:`portpack.paths.safe_relpath`,
every file is opened relative to the folder without following a symlink, and
only regular files and folders are read (a symlink or special file in a pixi-pack
folder is refused; a portpack folder's files are opened by the names its metadata
gives, and a symlink on the way is refused).
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

from portpack.archive import format as fmt
from portpack.errors import ArchiveError, UnsafeArchiveError
from portpack.paths import safe_relpath

#: The pixi-pack metadata file (as in :mod:`portpack.unpacker.pixipack`, not imported here).
PIXI_PACK_METADATA = "pixi-pack.json"
#: Suffix of the files that hold a member's stored bytes in portpack's folder layout.
STORED_SUFFIX = ".zst"
BLOCK = 512
_CHUNK = 1 << 20
#: Deeper folders than this are refused (pixi-pack's layout is 3 levels deep).
_MAX_DEPTH = 16
_NOFOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = _NOFOLLOW | getattr(os, "O_DIRECTORY", 0)
#: Files are opened non-blocking: a FIFO put in a file's place must not hang the open
#: (it is then refused as no regular file; reads of regular files never block).
_FILE = _NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
#: The modification time written into synthesized tar headers.
_MTIME = 0


def stored_name(member: str) -> str:
    """The file of portpack's folder layout that holds ``member``'s stored bytes."""
    return member + STORED_SUFFIX


# -- tar headers ----------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def tar_header(name: str, size: int, kind: bytes = b"0", mode: int = 0o644) -> bytes:
    """A ustar header for ``name`` (preceded by a pax header when the name is long)."""
    raw = name.encode("utf-8", "surrogateescape")
    out = b""
    if len(raw) > 100 or not raw.isascii():
        record = b" path=" + raw + b"\n"
        length = len(record) + 1
        while len(str(length).encode()) + len(record) != length:
            length += 1
        data = str(length).encode() + record
        out = _block(b"././@PaxHeader", len(data), b"x", 0o644)
        out += data + bytes(-len(data) % BLOCK)
        raw = raw[-100:] if raw.isascii() else b"././@LongName"
    return out + _block(raw, size, kind, mode)


def _block(name: bytes, size: int, kind: bytes, mode: int) -> bytes:
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = _octal(mode, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(size, 12)
    header[136:148] = _octal(_MTIME, 12)
    header[148:156] = b" " * 8
    header[156:157] = kind
    header[257:265] = b"ustar\x0000"
    header[148:156] = f"{sum(header):06o}".encode() + b"\0 "
    return bytes(header)


# -- opening files without following symlinks -----------------------------------------


class Folder:
    """An open folder: files below it are opened by name, never through a symlink."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, _DIRECTORY)
        except OSError as exc:
            raise ArchiveError(f"cannot open the folder {path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def open_file(self, rel: str) -> tuple[int, int]:
        """Open regular file ``rel``; return its descriptor and size."""
        rel = safe_relpath(rel, self.path)
        *parents, leaf = rel.split("/")
        fd = self.fd
        opened: list[int] = []
        try:
            for part in parents:
                fd = self._open(part, _DIRECTORY, fd, rel)
                opened.append(fd)
            fd = self._open(leaf, _FILE, fd, rel)
        finally:
            for d in opened:
                os.close(d)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise UnsafeArchiveError(f"{self.path}: {rel} is not a regular file")
        return fd, info.st_size

    def _open(self, name: str, flags: int, dir_fd: int, rel: str) -> int:
        try:
            return os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            raise ArchiveError(f"{self.path}: {rel} is missing") from None
        except OSError as exc:  # ELOOP / ENOTDIR: a symlink or a file on the way
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeArchiveError(
                    f"{self.path}: refusing to reach {rel} through a symlink or a file"
                ) from None
            raise ArchiveError(f"{self.path}: cannot open {rel}: {exc.strerror or exc}") from exc

    def read_small(self, rel: str, limit: int) -> bytes:
        fd, size = self.open_file(rel)
        with os.fdopen(fd, "rb") as fh:
            if size > limit:
                raise ArchiveError(f"{self.path}: {rel} is larger than allowed")
            return fh.read(size)

    def exists(self, rel: str) -> bool:
        try:
            os.stat(rel, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return False
        return True


def _file_chunks(fd: int, size: int, where: str) -> Iterator[bytes]:
    """Exactly ``size`` bytes of ``fd`` (the size it had when it was opened)."""
    with os.fdopen(fd, "rb", buffering=0) as fh:
        left = size
        while left:
            data = fh.read(min(left, _CHUNK))
            if not data:
                raise ArchiveError(f"{where} shrank while it was being read")
            left -= len(data)
            yield data


# -- pixi-pack's layout: a plain tar of the folder ------------------------------------


def _pixi_pack_tar(folder: Folder) -> Iterator[bytes]:
    """The folder as pixi-pack's tar: every entry, walked sorted by name."""
    for rel, kind in _walk(folder, "", folder.fd, 0):
        if kind == "dir":
            yield tar_header(rel + "/", 0, b"5", 0o755)
        elif kind == "file":
            fd, size = folder.open_file(rel)
            yield tar_header(rel, size)
            yield from _file_chunks(fd, size, f"{folder.path}/{rel}")
            if size % BLOCK:
                yield bytes(-size % BLOCK)
        else:  # never followed: in a folder, a symlink is a mistake or an attack
            raise UnsafeArchiveError(
                f"{folder.path}: refusing {rel}: it is a {kind}, not a regular file or folder"
            )
    yield bytes(2 * BLOCK)


def _walk(folder: Folder, base: str, fd: int, depth: int) -> Iterator[tuple[str, str]]:
    if depth > _MAX_DEPTH:
        raise ArchiveError(f"{folder.path}: {base} is nested too deeply")
    with os.scandir(fd) as entries:
        listed = sorted(entries, key=lambda e: os.fsencode(e.name))
    for entry in listed:
        rel = f"{base}/{entry.name}" if base else entry.name
        safe_relpath(rel, folder.path)
        if entry.is_symlink():
            yield rel, "symlink"
        elif entry.is_dir(follow_symlinks=False):
            yield rel, "dir"
            child = folder._open(entry.name, _DIRECTORY, fd, rel)
            try:
                yield from _walk(folder, rel, child, depth + 1)
            finally:
                os.close(child)
        elif entry.is_file(follow_symlinks=False):
            yield rel, "file"
        else:
            yield rel, "special file"


# -- portpack's layout: the archive's frames, from the metadata -----------------------


def _portpack_stream(folder: Folder) -> Iterator[bytes]:
    """The zstd stream of the portpack archive whose members the folder holds.

    The header frames are compressed here (the zstandard of this machine may make
    other bytes than the packer's), so a version 2 archive's offsets are placed
    again for this stream; everything else in the metadata is as the folder has it.
    """
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=True)
    meta = folder.read_small(fmt.METADATA_NAME, fmt.MAX_METADATA_SIZE)
    metadata = fmt.Metadata.from_json(meta)
    pad = 0
    members: list[tuple[str, fmt.Segment, bytes]] = []
    for member, segment in _members(metadata):
        frame = cctx.compress(bytes(pad) + tar_header(member, segment.size))
        members.append((member, segment, frame))
        pad = -segment.size % BLOCK
    if metadata.format_version >= 2:
        meta = fmt.with_offsets(metadata, [len(frame) for _, _, frame in members]).to_json()
    yield cctx.compress(tar_header(fmt.METADATA_NAME, len(meta)) + meta + _pad(len(meta)))
    for member, segment, frame in members:
        rel = stored_name(member)
        fd, size = folder.open_file(rel)
        if size != segment.zst_size:
            os.close(fd)
            raise ArchiveError(
                f"{folder.path}: {rel} is {size} bytes, {fmt.METADATA_NAME} says "
                f"{segment.zst_size}; the folder is corrupt"
            )
        yield frame
        yield from _file_chunks(fd, size, f"{folder.path}/{rel}")
    yield cctx.compress(bytes(pad) + bytes(2 * BLOCK))


def _members(metadata: fmt.Metadata) -> list[tuple[str, fmt.Segment]]:
    """Each member with a stored file, in archive order."""
    members: list[tuple[str, fmt.Segment]] = []
    for entry in metadata.packages:
        members.append((fmt.member_name(entry.stem, fmt.INFO_MEMBER), entry.info))
        members.append((fmt.member_name(entry.stem, fmt.PAYLOAD_MEMBER), entry.payload))
    members += [(wheel.member, wheel.segment) for wheel in metadata.wheels]
    return members


def _pad(size: int) -> bytes:
    return bytes(-size % BLOCK)


# -- the stream -----------------------------------------------------------------------


class _ChunkStream(io.RawIOBase):
    """A read-only binary stream over an iterator of chunks."""

    def __init__(self, chunks: Iterator[bytes], folder: Folder) -> None:
        self._chunks = chunks
        self._folder = folder
        self._buffer = memoryview(b"")
        self.name = folder.path

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
            self._folder.close()
        super().close()


def is_archive_directory(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder (not a symlink to one) to unpack from."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def open_directory(path: str | os.PathLike[str]) -> BinaryIO:
    """The byte stream of the archive whose members the folder ``path`` holds."""
    folder = Folder(os.fspath(path))
    try:
        if folder.exists(fmt.METADATA_NAME):
            chunks = _portpack_stream(folder)
        elif folder.exists(PIXI_PACK_METADATA):
            chunks = _pixi_pack_tar(folder)
        else:
            raise ArchiveError(
                f"{folder.path} is a folder without {fmt.METADATA_NAME} or "
                f"{PIXI_PACK_METADATA}: not an archive written with --directory-only"
            )
    except BaseException:
        folder.close()
        raise
    return io.BufferedReader(_ChunkStream(chunks, folder), _CHUNK)
