"""Reading a conda package file, ``.conda`` or ``.tar.bz2`` (standard library and zstandard).

:class:`PackageFile` is the one reader of a package file on the standard-library side:
its ``info/`` (as a tar, or parsed into :class:`~portpack.conda.info.PackageInfo`) and
its payload (as a tar stream in chunks, ``info/`` left out).  A ``.conda`` is a ZIP of
two stored zstd tars, ``info-*.tar.zst`` and ``pkg-*.tar.zst``; a ``.tar.bz2`` one
bzip2 tar holding both.  Every problem of the file becomes a :class:`PackageError`
naming the package.

Other readers of a ``.conda``, each for a reason (one comment at each says which):
``archive/segments.py`` locates the stored zstd members' byte ranges (to copy them
into an archive undecoded), the packer converts ``.tar.bz2`` with
conda-package-handling (``packer/convert.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import IO, TYPE_CHECKING

import zstandard

from portpack.conda.info import PackageInfo, read_info
from portpack.conda.tarstream import BLOCK, ChunkReader, Member, iter_members
from portpack.errors import PackageError

if TYPE_CHECKING:
    import zipfile

#: The file names of conda packages.
PACKAGE_EXTENSIONS = (".conda", ".tar.bz2")
#: An ``info/`` larger than this is refused: it is held in memory.
MAX_INFO_SIZE = 64 << 20
_CHUNK = 1 << 20


def _zip_errors() -> tuple[type[Exception], ...]:
    """What :mod:`zipfile` raises on a broken or hostile ZIP (not only ``BadZipFile``)."""
    import zipfile

    return (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError)


class PackageFile:
    """One package file, open for reading its ``info/`` and its payload.

    ``fileobj`` must be seekable (a ``.tar.bz2`` is read once for each part); ``fn``
    (the file name) says which format it is, ``what`` names the package in errors.
    """

    def __init__(self, fileobj: IO[bytes], fn: str, what: str) -> None:
        if not fn.endswith(PACKAGE_EXTENSIONS):
            raise PackageError(f"package {what}: {fn} is neither a .conda nor a .tar.bz2")
        self.what = what
        self._raw = fileobj
        self._zip: zipfile.ZipFile | None = None
        if fn.endswith(".conda"):
            import zipfile  # lazily: only pixi-pack archives and inspect read package files

            try:
                self._zip = zipfile.ZipFile(fileobj)
            except _zip_errors() as exc:
                raise PackageError(f"package {what} is not a valid .conda file: {exc}") from exc

    def __enter__(self) -> PackageFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the ZIP of a ``.conda`` (``fileobj`` stays the caller's)."""
        if self._zip is not None:
            self._zip.close()

    def info(self) -> PackageInfo:
        """The package's ``info/``, parsed."""
        return read_info(self.info_tar(), self.what)

    def info_tar(self) -> bytes:
        """The package's ``info/`` files as a tar of their own."""
        if self._zip is None:
            return self._tar_bz2_info()
        out = bytearray()
        for chunk in self._conda_member("info"):
            out += chunk
            if len(out) > MAX_INFO_SIZE:
                raise PackageError(f"package {self.what}: info/ is larger than allowed")
        return bytes(out)

    def payload(self) -> Iterator[bytes]:
        """The package's files outside ``info/`` as a tar stream, in chunks."""
        if self._zip is None:
            return self._tar_bz2_payload()
        return self._conda_member("pkg")

    # -- .conda ---------------------------------------------------------------------

    def _conda_member(self, kind: str) -> Iterator[bytes]:
        """The decoded ``<kind>-*.tar.zst`` of the ``.conda``, in chunks."""
        assert self._zip is not None
        errors: tuple[type[Exception], ...] = (zstandard.ZstdError, *_zip_errors())
        try:
            names = self._zip.namelist()
            wanted = [n for n in names if n.startswith(f"{kind}-") and n.endswith(".tar.zst")]
            name = wanted[0] if wanted else None
            if name is None:
                raise PackageError(f"package {self.what} has no {kind}-*.tar.zst")
            with self._zip.open(name) as raw:
                reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
                while chunk := reader.read(_CHUNK):
                    yield chunk
        except errors as exc:
            raise PackageError(f"package {self.what}: corrupt compressed data: {exc}") from exc

    # -- .tar.bz2 -------------------------------------------------------------------

    def _bz2_members(self) -> tuple[ChunkReader, Iterator[Member]]:
        import bz2  # lazily: a bootstrap python may lack libbz2 (self-extracting archives)

        self._raw.seek(0)
        raw, what = self._raw, self.what

        def chunks() -> Iterator[bytes]:
            decoded = bz2.BZ2File(raw)
            try:
                while chunk := decoded.read(_CHUNK):
                    yield chunk
            except (OSError, EOFError) as exc:
                raise PackageError(f"package {what}: corrupt bzip2 data: {exc}") from exc

        reader = ChunkReader(chunks(), f"package {what}")
        return reader, iter_members(reader)

    def _tar_bz2_info(self) -> bytes:
        """Reading stops after the contiguous run of ``info/`` members (first in packages
        written by conda-package-handling and rattler, in the middle of older ones)."""
        reader, members = self._bz2_members()
        out = bytearray()
        seen = False
        for member in members:
            if not _is_info(member.name):
                if seen:
                    break
                continue
            seen = True
            name = member.name.removeprefix("./")
            if member.is_file and name.count("/") == 1:
                out += _tar_header(member, member.size) + reader.read(member.size)
                out += bytes(-member.size % BLOCK)
                if len(out) > MAX_INFO_SIZE:
                    raise PackageError(f"package {self.what}: info/ is larger than allowed")
        return bytes(out + bytes(2 * BLOCK))

    def _tar_bz2_payload(self) -> Iterator[bytes]:
        reader, members = self._bz2_members()
        for member in members:
            if _is_info(member.name):
                continue
            size = member.size if member.is_file else 0
            yield _tar_header(member, size)
            for piece in reader.pieces(size):
                yield bytes(piece)
            if size % BLOCK:
                yield bytes(-size % BLOCK)
        yield bytes(2 * BLOCK)


def _is_info(name: str) -> bool:
    name = name.removeprefix("./")
    return name == "info" or name.startswith("info/")


def _tar_header(member: Member, size: int) -> bytes:
    import tarfile  # lazily: not imported at start-up (tests/test_cli.py)

    info = tarfile.TarInfo(member.name)
    info.type = tarfile.REGTYPE if member.is_file else member.type
    info.mode = member.mode
    info.size = size
    info.mtime = member.mtime
    info.linkname = member.linkname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


__all__ = ["MAX_INFO_SIZE", "PACKAGE_EXTENSIONS", "PackageFile"]
