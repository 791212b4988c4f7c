"""Blobs read from a registry, checked against their digest and size as they stream."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from portpack.remote._http import (
    NETWORK_ERRORS,
    BlobIntegrityError,
    RegistryError,
    Response,
    Transport,
)
from portpack.remote.oci_ref import OciRef


class BlobSource(Protocol):
    """What a blob stream needs of a registry client (:class:`~.oci.RegistryClient`)."""

    ref: OciRef
    repository: str
    transport: Transport

    def blob_response(self, digest: str, start: int = 0) -> Response:
        """``GET`` the blob from byte ``start`` (a 206 answer when ``start`` > 0)."""
        ...


#: Blobs up to this size are read whole and checked before their first byte is handed out.
SMALL_BLOB = 1 << 20
_CHUNK = 1 << 20
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


def is_digest(value: object) -> bool:
    """True for ``sha256:`` and 64 lower-case hex digits (the only digests used here)."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


class BlobStream:
    """A blob's bytes, checked against its digest and size as they are read.

    A small blob is read whole and checked before its first byte is returned; a large
    one is checked at its end, when :meth:`read` raises instead of returning ``b""``.
    A connection cut mid-blob is resumed with a ``Range`` request (bounded retries).
    """

    def __init__(self, client: BlobSource, digest: str, size: int) -> None:
        if not is_digest(digest):
            raise RegistryError(
                f"{client.ref}: unsupported digest {digest[:80]!r} (sha256 only)",
                url=str(client.ref),
            )
        self._client = client
        self.digest = digest
        self.size = size
        self._hash = hashlib.sha256()
        self._count = 0
        self._response: Response | None = None
        self._buffer = b""
        self._done = False
        self._resumes = 0
        if size <= SMALL_BLOB:
            self._buffer = self._read_whole()

    @property
    def received(self) -> int:
        """Bytes of the blob received so far."""
        return self._count

    def _error(self, why: str) -> BlobIntegrityError:
        return BlobIntegrityError(
            f"{self._client.ref}: blob {self.digest} of repository "
            f"{self._client.repository} {why}; nothing of it was kept",
            url=str(self._client.ref),
        )

    def _read_whole(self) -> bytes:
        parts = []
        while chunk := self._next(_CHUNK):
            parts.append(chunk)
        self._finish()
        return b"".join(parts)

    def _next(self, n: int) -> bytes:
        """Up to ``n`` more raw bytes (hashed), resuming a cut connection."""
        while True:
            if self._response is None:
                try:
                    self._response = self._client.blob_response(self.digest, self._count)
                except RegistryError:
                    if not self._count:
                        raise
                    raise self._error(
                        f"ended after {self._count} of its {self.size} bytes and could "
                        "not be resumed"
                    ) from None
                if self._count and self._response.status != 206:
                    self._response.close(reuse=False)
                    self._response = None
                    raise self._error("was cut off and the registry cannot resume it")
            want = max(1, min(n, self.size - self._count + 1))
            try:
                data = self._response.raw.read(want)
            except NETWORK_ERRORS:
                self._response.close(reuse=False)
                self._response = None
                self._resumes += 1
                if self._resumes > self._client.transport.retries:
                    raise self._error(f"was cut off {self._resumes} times") from None
                continue
            if not data and self._count < self.size:  # the connection ended early
                self._response.close(reuse=False)
                self._response = None
                self._resumes += 1
                if self._resumes > self._client.transport.retries:
                    raise self._error(f"ended after {self._count} of its {self.size} bytes")
                continue
            if not data:
                self._response.close()
                self._response = None
                return b""
            self._count += len(data)
            if self._count > self.size:
                raise self._error(f"is longer than the {self.size} bytes its descriptor gives")
            self._hash.update(data)
            return data

    def _finish(self) -> None:
        self._done = True
        if self._response is not None:
            self._response.close(reuse=False)
            self._response = None
        if self._count != self.size:
            raise self._error(f"ended after {self._count} of its {self.size} bytes")
        got = "sha256:" + self._hash.hexdigest()
        if got != self.digest:
            raise self._error(f"does not match its digest (its bytes hash to {got})")

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        if self._buffer:
            if n < 0:
                data, self._buffer = self._buffer, b""
            else:
                data, self._buffer = self._buffer[:n], self._buffer[n:]
            return data
        if self._done:
            return b""
        data = self._next(_CHUNK if n < 0 else n)
        if not data:
            self._finish()
        return data

    def close(self) -> None:
        if self._response is not None:
            self._response.close(reuse=False)
            self._response = None
        self._done = True
        self._buffer = b""
