"""The segments an update wants, from a portpack artifact in an OCI registry.

Every verbatim segment of an archive is a layer of its artifact whose digest is the
segment's ``sha256:<zst_sha256>`` (:mod:`portpack.remote.oci_archive`), so fetching
only the changed packages means fetching only their layers' blobs; the manifest and
the config (the metadata) were read and checked by
:func:`~portpack.remote.oci_archive.open_artifact`.  Blobs come through the registry
client: its authentication, redirects to storage, and resumption of a cut blob.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import BinaryIO, cast

from portpack.archive import format as fmt
from portpack.archive.segment_read import SegmentStream
from portpack.archive.segment_source import SegmentRef
from portpack.errors import ArchiveError
from portpack.remote._http import RegistryError
from portpack.remote.oci_archive import ArtifactStream
from portpack.remote.oci_blob import BlobStream
from portpack.remote.oci_layout import layer_plan


class OciSegmentSource:
    """The wanted segments of an opened artifact, each one blob ``GET``."""

    def __init__(self, meta: fmt.Metadata, artifact: ArtifactStream) -> None:
        self.name = artifact.name
        self.metadata = meta
        self._artifact = artifact
        self._layers = {
            (spec.member, spec.segment) for spec in layer_plan(meta) if spec.segment is not None
        }
        self._read = artifact.manifest_size + len(artifact.config)
        self.bytes_read = self._read
        """The manifest, the config and every blob byte received."""
        self._blob: BlobStream | None = None

    def segments(self, wanted: Sequence[SegmentRef]) -> Iterator[tuple[SegmentRef, BinaryIO]]:
        for ref in wanted:
            if (ref.member, ref.segment) not in self._layers:
                raise ArchiveError(f"{self.name} has no layer for {ref.member} of {ref.owner}")
            digest = "sha256:" + ref.segment.zst_sha256
            blob = self._open(ref, digest)
            try:
                yield ref, cast(BinaryIO, SegmentStream(ref, _Pull(self, ref, blob), self.name))
            finally:
                self._done()

    def _open(self, ref: SegmentRef, digest: str) -> BlobStream:
        try:
            blob = self._artifact.client.open_blob(digest, ref.segment.zst_size)
        except RegistryError as exc:
            raise _naming(exc, ref) from None
        self._blob = blob
        self.count()
        return blob

    def count(self) -> None:
        """Bring :attr:`bytes_read` up to date."""
        self.bytes_read = self._read + (self._blob.received if self._blob is not None else 0)

    def _done(self) -> None:
        if self._blob is not None:
            self._read += self._blob.received
            self._blob.close()
            self._blob = None
            self.count()

    def close(self) -> None:
        """Close the blob being read and the registry connections."""
        self._done()
        self._artifact.close()

    def __enter__(self) -> OciSegmentSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pull:
    def __init__(self, source: OciSegmentSource, ref: SegmentRef, blob: BlobStream) -> None:
        self._source = source
        self._ref = ref
        self._blob = blob

    def __call__(self, n: int) -> bytes:
        try:
            data = self._blob.read(n)
        except RegistryError as exc:
            raise _naming(exc, self._ref) from None
        self._source.count()
        return data


def _naming(exc: RegistryError, ref: SegmentRef) -> RegistryError:
    """``exc`` again (same type), its message naming the package or wheel."""
    return type(exc)(f"{ref.owner}, {ref.member}: {exc.message}", url=exc.url, hint=exc.hint)
