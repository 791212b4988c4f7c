"""Where an archive comes from: a path, a stream, an ``http(s)://`` URL or an ``oci://``
reference (standard library + zstandard).

:func:`open_archive_source` turns an archive argument into what the readers take (a
path, or a stream read front to back); :func:`inspect` summarizes any of them.  How
a remote one is reached is one :class:`~portpack.remote.options.SourceOptions`
(re-exported here).  The remote clients are imported only for a URL or a reference,
so unpacking a file starts as fast as before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, BinaryIO, TypeGuard, cast

from portpack.progress import Reporter
from portpack.remote.options import SourceOptions as SourceOptions  # the public name here

if TYPE_CHECKING:
    from portpack.archive import format as fmt
    from portpack.archive.segment_source import SegmentSource
    from portpack.archive.summary import ArchiveSummary

Archive = str | os.PathLike[str] | BinaryIO


def is_url(archive: object) -> TypeGuard[str]:
    """Whether ``archive`` names an ``http(s)://`` URL."""
    return isinstance(archive, str) and archive.lower().startswith(("http://", "https://"))


def is_oci(archive: object) -> TypeGuard[str]:
    """Whether ``archive`` names an ``oci://`` reference."""
    return isinstance(archive, str) and archive.lower().startswith("oci://")


def open_archive_source(
    archive: Archive,
    stack: ExitStack,
    options: SourceOptions | None = None,
    reporter: Reporter | None = None,
) -> str | os.PathLike[str] | BinaryIO:
    """``archive`` as a path or a stream: a URL or an OCI reference is opened (and
    closed by ``stack``), anything else is returned as it is.

    An OCI artifact's manifest and config are checked here, before the first layer
    is read; an HTTP(S) URL's first response is awaited here.  Both raise a
    :class:`~portpack.errors.PortpackError` naming the (masked) URL or reference.
    """
    if is_url(archive):
        from portpack.remote.http import open_url

        stream = open_url(archive, options, reporter=_retries_only(reporter))
        return cast(BinaryIO, stack.enter_context(stream))
    if is_oci(archive):
        from portpack.remote.oci_archive import open_artifact

        _, artifact = open_artifact(archive, options)
        return cast(BinaryIO, stack.enter_context(artifact))
    return archive


def open_segment_source(
    archive: Archive,
    stack: ExitStack,
    options: SourceOptions | None = None,
    reporter: Reporter | None = None,
) -> tuple[fmt.Metadata, SegmentSource]:
    """The metadata of ``archive`` and a source of only the segments an update wants
    (closed by ``stack``).

    An ``http(s)://`` URL is read by byte ranges (only the metadata and the wanted
    segments of a v2 archive), an ``oci://`` reference by the wanted layers' blobs;
    a path or a stream goes to :func:`open_local_segments`.
    """
    if is_url(archive):
        from portpack.remote.http_segments import open_http_segments

        http = open_http_segments(archive, options, reporter=_retries_only(reporter))
        stack.callback(http.close)
        return http.metadata, http
    if is_oci(archive):
        from portpack.remote.oci_archive import open_artifact
        from portpack.remote.oci_segments import OciSegmentSource

        meta, artifact = open_artifact(archive, options)
        oci = OciSegmentSource(meta, artifact)
        stack.callback(oci.close)
        return meta, oci
    return open_local_segments(archive, stack, reporter)


def open_local_segments(
    archive: Archive, stack: ExitStack, reporter: Reporter | None = None
) -> tuple[fmt.Metadata, SegmentSource]:
    """A path or a stream (:func:`portpack.archive.segment_read.open_local_segments`:
    a file seeks, a pipe is read forward), closed by ``stack``."""
    from portpack.archive.segment_read import open_local_segments as open_local

    if isinstance(archive, str | os.PathLike):
        name = os.fspath(archive)
    else:
        name = str(getattr(archive, "name", "<stream>"))
    meta, local = open_local(archive, name)
    stack.callback(local.close)
    return meta, local


def inspect(
    archive: Archive,
    *,
    ca_bundle: str | os.PathLike[str] | None = None,
    auth_file: str | os.PathLike[str] | None = None,
    netrc_file: str | os.PathLike[str] | None = None,
    insecure_hosts: Sequence[str] = (),
) -> ArchiveSummary:
    """Summarize an archive: a path, a stream, an ``http(s)://`` URL or an ``oci://``
    reference (the options as for :func:`~portpack.unpacker.streaming.unpack`).

    For OCI only the manifest and the config (the archive's metadata) are fetched, no
    layer.  A pixi-pack archive must be a file (it is read with seeks).
    """
    return inspect_with(archive, SourceOptions(ca_bundle, auth_file, netrc_file, insecure_hosts))


def inspect_with(archive: Archive, options: SourceOptions | None = None) -> ArchiveSummary:
    """:func:`inspect`, the remote archive reached as ``options`` say."""
    from portpack.archive.summary import inspect as inspect_archive
    from portpack.archive.summary import summarize_metadata

    if is_oci(archive):
        from portpack.remote.oci_archive import open_artifact

        meta, artifact = open_artifact(archive, options)
        with artifact:
            return summarize_metadata(meta, artifact.name, None)
    with ExitStack() as stack:
        return inspect_archive(open_archive_source(archive, stack, options))
    raise AssertionError("unreachable")  # pragma: no cover


class _RetriesOnly(Reporter):
    """Passes on retries only: the unpacker counts the bytes it reads itself."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    def on_download_retry(self, name: str, reason: str, delay: float) -> None:
        self._reporter.on_download_retry(name, reason, delay)


def _retries_only(reporter: Reporter | None) -> Reporter | None:
    return _RetriesOnly(reporter) if reporter else None
