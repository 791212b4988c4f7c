"""Small helpers for forward-only binary streams."""

from __future__ import annotations

import hashlib
import os
from typing import Any, BinaryIO, cast

from portpack.conda.tarstream import BLOCK


class PeekedStream:
    """A read-only stream that returns ``head`` (bytes already read) before the rest."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream
        self.name = getattr(stream, "name", "<stream>")

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._stream.read(n)


def read_exactly(stream: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, fewer only at the end of the input (pipes return less per read)."""
    parts = []
    while n > 0:
        data = stream.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def sniff(stream: BinaryIO) -> tuple[BinaryIO, bytes]:
    """Read the first tar block of ``stream``; return a stream that still yields it, and it."""
    head = read_exactly(stream, BLOCK)
    return cast("BinaryIO", PeekedStream(head, stream)), head


def looks_like_tar(head: bytes) -> bool:
    """True if ``head`` (the first 512 bytes of a stream) is a ustar/GNU tar header."""
    return len(head) >= BLOCK and head[257:262] == b"ustar"


def hash_file(path: str | os.PathLike[str], digest: Any = None) -> str:
    """The hex digest of a file's bytes (sha256 unless a hashlib object is given)."""
    digest = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return str(digest.hexdigest())
