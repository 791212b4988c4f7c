"""``push``: a portpack archive into an OCI registry, as an artifact (issue 14).

:func:`push` uploads an archive (a path or a stream read front to back) with
:func:`portpack.remote.oci_archive.push_archive`; :func:`pack_and_push` is what
``pack -o oci://...`` runs: the archive is written to a temporary file in the package
cache (so a push that is retried can send it again), pushed, and removed.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from portpack.errors import UsageError
from portpack.remote.oci_archive import PushResult, push_archive
from portpack.remote.oci_ref import OciRef, parse_oci_ref
from portpack.remote.options import SourceOptions

if TYPE_CHECKING:
    from portpack.packer.options import PackOptions

_T = TypeVar("_T")

__all__ = ["PushResult", "pack_and_push", "push"]


def push(
    archive: str | os.PathLike[str] | BinaryIO,
    ref: str,
    *,
    mount_from: str | None = None,
    auth_file: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    insecure_hosts: Sequence[str] = (),
) -> PushResult:
    """Upload the portpack archive ``archive`` to ``ref`` (``oci://HOST[:PORT]/REPO[:TAG]``)
    and tag it.

    Blobs the repository has already are not sent again; ``mount_from`` names another
    repository of the registry to link blobs from.  The manifest is put last, so a
    push that fails tags nothing.  The result names the manifest digest and counts the
    blobs and bytes uploaded and skipped.
    """
    options = SourceOptions(ca_bundle=ca_bundle, auth_file=auth_file, insecure_hosts=insecure_hosts)
    return push_archive(archive, _reference(ref, options), options, mount_from=mount_from)


def _reference(ref: str, options: SourceOptions) -> OciRef:
    if not isinstance(ref, str) or not ref.lower().startswith("oci://"):
        raise UsageError(f"not an OCI reference (oci://HOST/REPOSITORY[:TAG]): {ref!r}")
    return parse_oci_ref(ref, options.insecure_hosts)


def pack_and_push(
    options: PackOptions, cache_dir: Path, pack_with: Callable[[PackOptions], _T]
) -> tuple[_T, PushResult]:
    """``pack_with`` into a temporary file under ``cache_dir``, then push that file to
    ``options.output.target`` (an ``oci://`` reference); the file is removed either way.

    The reference is checked before anything is fetched.  Returns what ``pack_with``
    returned and what the push did.
    """
    ref = str(options.output.target)
    net = options.network
    source = SourceOptions(
        ca_bundle=net.ca_bundle, auth_file=net.auth_file, insecure_hosts=net.insecure_hosts
    )
    parsed = _reference(ref, source)
    if options.output.archive_format != "portpack":
        raise UsageError(f"{ref}: only portpack archives can be pushed to a registry")
    if options.output.directory_only or options.output.executable is not None:
        raise UsageError(
            f"{ref}: a registry takes a plain portpack archive, not a folder or a "
            "self-extracting archive"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".push-", dir=cache_dir) as scratch:
        path = Path(scratch) / "environment.tar"
        output = dataclasses.replace(options.output, target=path)
        result = pack_with(dataclasses.replace(options, output=output))
        return result, push_archive(path, parsed, source)
