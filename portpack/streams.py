"""Small helpers for forward-only binary streams (layer 0: they know no format)."""

from __future__ import annotations

import hashlib
import os
from typing import Any, BinaryIO


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


def hash_file(path: str | os.PathLike[str], digest: Any = None) -> str:
    """The hex digest of a file's bytes (sha256 unless a hashlib object is given)."""
    digest = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return str(digest.hexdigest())
