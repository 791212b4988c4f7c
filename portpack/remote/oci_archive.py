"""A portpack archive as an OCI artifact (image-spec 1.1), and back.

The blobs of the artifact, in layer order, concatenate to the archive byte for byte
(see docs/archive-format.md, "OCI artifacts").  Layers are the archive's own pieces:

* each verbatim segment (a package's ``info`` and ``payload`` zstd frames, a wheel's
  compressed bytes) is one layer whose digest is the ``zst_sha256`` the metadata
  records, so an unchanged package is the same blob in every artifact;
* each of portpack's small frames between them (the metadata frame, tar header and
  padding frames, the end-of-archive frame) is a small layer of its own, so that a
  package that changes does not change its neighbours' big blobs.

The config blob is the archive's ``portpack.json``.  Pushing reads the archive once,
front to back (a pipe works); pulling streams the layers in order, each checked
against its digest, into any reader of archives (the unpacker).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

from portpack.archive import format as fmt
from portpack.conda.tarstream import BLOCK
from portpack.errors import ArchiveError, UsageError
from portpack.remote._http import Body, RegistryError
from portpack.remote.oci import (
    DOCKER_LIST_MEDIA_TYPE,
    DOCKER_MANIFEST_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    Manifest,
    RegistryClient,
    TransferStats,
    sha256_digest,
)
from portpack.remote.oci_blob import BlobStream, is_digest
from portpack.remote.oci_layout import (
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    FRAME_MEDIA_TYPE,
    INFO_MEDIA_TYPE,
    MAX_FRAME_DECODED,
    MEMBER_ANNOTATION,
    PAYLOAD_MEDIA_TYPE,
    PLATFORM_ANNOTATION,
    WHEEL_MEDIA_TYPE,
    ArchiveCursor,
    LayerSpec,
    check_frame,
    layer_plan,
    metadata_of,
)
from portpack.remote.oci_ref import OciRef, parse_oci_ref
from portpack.remote.options import SourceOptions

#: A frame layer after the first is no larger than this.
_MAX_FRAME_LAYER = 1 << 16
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_archive` did."""

    ref: str
    """The reference pushed, e.g. ``oci://host/envs/app:1.4``."""
    digest: str
    """The manifest's digest (pull ``oci://host/envs/app@<digest>`` for exactly this)."""
    layers: int
    stats: TransferStats

    @property
    def uploaded_blobs(self) -> int:
        return self.stats.uploaded_blobs

    @property
    def uploaded_bytes(self) -> int:
        return self.stats.uploaded_bytes

    @property
    def skipped_blobs(self) -> int:
        return self.stats.skipped_blobs + self.stats.mounted_blobs

    @property
    def skipped_bytes(self) -> int:
        return self.stats.skipped_bytes + self.stats.mounted_bytes


def _client(ref: str | OciRef, options: SourceOptions | None) -> RegistryClient:
    """The registry client for ``ref``, as ``options`` say (``netrc_file`` and the
    transport knobs are the URL client's: the registry client keeps its own)."""
    options = options or SourceOptions()
    parsed = ref if isinstance(ref, OciRef) else parse_oci_ref(ref, options.insecure_hosts)
    return RegistryClient(parsed, auth_file=options.auth_file, ca_bundle=options.ca_file)


# -- push -----------------------------------------------------------------------------


def _descriptor(media_type: str, digest: str, size: int, member: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if member is not None:
        out["annotations"] = {MEMBER_ANNOTATION: member}
    return out


def push_archive(
    archive: str | os.PathLike[str] | BinaryIO,
    ref: str | OciRef,
    options: SourceOptions | None = None,
    *,
    mount_from: str | None = None,
) -> PushResult:
    """Upload a portpack archive (a path or a binary stream) as an artifact and tag it,
    reaching the registry as ``options`` say (``ca_bundle``, ``auth_file``,
    ``insecure_hosts``).

    Blobs the repository already has are not uploaded; with ``mount_from`` (another
    repository of the same registry, e.g. the previous version's) the registry is
    asked to link the blobs it holds there.  The manifest is put last, so a failed
    push tags nothing.
    """
    client = _client(ref, options)
    try:
        if isinstance(archive, str | os.PathLike):
            try:
                fh = open(archive, "rb")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise UsageError(f"cannot read {archive}: {exc.strerror or exc}") from exc
            with fh:
                return _push(ArchiveCursor(fh, str(archive)), client, mount_from)
        return _push(
            ArchiveCursor(archive, getattr(archive, "name", "<stream>")), client, mount_from
        )
    finally:
        client.close()


def _push(cursor: ArchiveCursor, client: RegistryClient, mount_from: str | None) -> PushResult:
    raw, decoded = cursor.frame(fmt.MAX_METADATA_SIZE + 4 * BLOCK)
    config = metadata_of(decoded, cursor.name)
    meta = fmt.Metadata.from_json(config)
    plan = layer_plan(meta)
    layers = [_push_small(client, raw, plan[0], mount_from)]
    sizes = _member_sizes(meta)
    for spec in plan[1:]:
        where = f"{cursor.name} at byte {cursor.offset}"
        if spec.segment is None:
            raw, decoded = cursor.frame(spec.pad + MAX_FRAME_DECODED)
            check_frame(decoded, spec, sizes.get(spec.member), where)
            layers.append(_push_small(client, raw, spec, mount_from))
            continue
        seg = spec.segment
        body, _ = cursor.segment(seg, spec.member)
        digest = "sha256:" + seg.zst_sha256
        outcome = client.push_blob(digest, body, mount_from)
        cursor.past(seg, sent=outcome == "uploaded")
        layers.append(_descriptor(spec.media_type, digest, seg.zst_size, spec.member))
    if not cursor.at_end():
        raise ArchiveError(f"{cursor.name}: unexpected data after the end of the archive")
    config_digest = sha256_digest(config)
    client.push_blob(config_digest, Body.of(config), mount_from)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": _descriptor(CONFIG_MEDIA_TYPE, config_digest, len(config), None),
        "layers": layers,
        "annotations": {PLATFORM_ANNOTATION: meta.platform},
    }
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    ref = client.ref
    if ref.digest and sha256_digest(data) != ref.digest:
        raise UsageError(
            f"{ref}: this archive's manifest has the digest {sha256_digest(data)}, not the "
            "one the reference names; push it to a tag instead"
        )
    digest = client.put_manifest(ref.digest or ref.reference, data, MANIFEST_MEDIA_TYPE)
    return PushResult(str(ref), digest, len(layers), client.stats)


def _member_sizes(meta: fmt.Metadata) -> dict[str, int]:
    sizes = {}
    for entry in meta.packages:
        sizes[fmt.member_name(entry.stem, fmt.INFO_MEMBER)] = entry.info.size
        sizes[fmt.member_name(entry.stem, fmt.PAYLOAD_MEMBER)] = entry.payload.size
    for wheel in meta.wheels:
        sizes[wheel.member] = wheel.size
    return sizes


def _push_small(
    client: RegistryClient, raw: bytes, spec: LayerSpec, mount_from: str | None
) -> dict[str, Any]:
    digest = sha256_digest(raw)
    client.push_blob(digest, Body.of(raw), mount_from)
    return _descriptor(spec.media_type, digest, len(raw), spec.member)


# -- pull -----------------------------------------------------------------------------


def open_artifact(
    ref: str | OciRef, options: SourceOptions | None = None
) -> tuple[fmt.Metadata, ArtifactStream]:
    """The metadata of a portpack artifact and a stream of its archive bytes, the
    registry reached as ``options`` say (as for :func:`push_archive`).

    Only the manifest and the config are read here (``inspect`` needs no more); the
    stream then reads the layers in order, each checked against its digest, and
    raises on the first byte that does not match.  Close it when done.
    """
    client = _client(ref, options)
    try:
        manifest = _portpack_manifest(client, client.get_manifest())
        config_desc = manifest.doc["config"]
        stream = client.open_blob(config_desc["digest"], config_desc["size"])
        config = stream.read()
        meta = fmt.Metadata.from_json(config)
        layers = _check_layers(client, manifest, meta)
        artifact = ArtifactStream(client, layers, config, manifest.digest)
        artifact.manifest_size = len(manifest.data)
        return meta, artifact
    except BaseException:
        client.close()
        raise


def _portpack_manifest(client: RegistryClient, manifest: Manifest) -> Manifest:
    """The manifest itself, or the one portpack manifest an index lists."""
    where = str(client.ref)
    if manifest.media_type in (INDEX_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE):
        entries = manifest.doc.get("manifests")
        ours = [
            m
            for m in entries or []
            if isinstance(m, dict) and m.get("artifactType") == ARTIFACT_TYPE
        ]
        if len(ours) != 1:
            raise UsageError(
                f"{where} is an index of {len(entries or [])} manifests, "
                f"{len(ours)} of them portpack environments: name one by its digest "
                "(oci://HOST/REPO@sha256:...)"
            )
        digest = ours[0].get("digest")
        if not is_digest(digest):
            raise RegistryError(f"{where}: the index lists an invalid digest", url=where)
        manifest = client.get_manifest(str(digest))
    artifact = manifest.doc.get("artifactType")
    config = manifest.doc.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    if (
        manifest.media_type == DOCKER_MANIFEST_MEDIA_TYPE
        or artifact not in (None, ARTIFACT_TYPE)
        or config_type != CONFIG_MEDIA_TYPE
    ):
        kind = artifact or config_type or manifest.media_type
        raise UsageError(
            f"{where} is not a portpack environment: its manifest is of type {kind!r} "
            f"(a portpack environment has artifactType {ARTIFACT_TYPE} and a "
            f"{CONFIG_MEDIA_TYPE} config)"
        )
    if manifest.media_type != MANIFEST_MEDIA_TYPE:
        raise UsageError(f"{where}: unsupported manifest type {manifest.media_type!r}")
    size = config.get("size") if isinstance(config, dict) else None
    if not is_digest(config.get("digest") if isinstance(config, dict) else None):
        raise RegistryError(f"{where}: the config descriptor has an invalid digest", url=where)
    if type(size) is not int or not 0 < size <= fmt.MAX_METADATA_SIZE:
        raise RegistryError(f"{where}: the config descriptor has an invalid size", url=where)
    return manifest


def _check_layers(
    client: RegistryClient, manifest: Manifest, meta: fmt.Metadata
) -> list[tuple[str, int]]:
    """``(digest, size)`` of each layer, after checking them against the metadata."""
    where = str(client.ref)
    layers = manifest.doc.get("layers")
    plan = layer_plan(meta)
    if not isinstance(layers, list) or len(layers) != len(plan):
        raise ArchiveError(
            f"{where}: the artifact's layers do not match its metadata "
            f"({len(layers) if isinstance(layers, list) else 0} layers, {len(plan)} expected)"
        )
    out = []
    for i, (layer, spec) in enumerate(zip(layers, plan, strict=True)):
        digest = layer.get("digest") if isinstance(layer, dict) else None
        size = layer.get("size") if isinstance(layer, dict) else None
        media = layer.get("mediaType") if isinstance(layer, dict) else None
        limit = fmt.MAX_METADATA_SIZE if i == 0 else _MAX_FRAME_LAYER
        ok = is_digest(digest) and type(size) is int and media == spec.media_type
        if ok and spec.segment is not None:
            ok = digest == "sha256:" + spec.segment.zst_sha256 and size == spec.segment.zst_size
        elif ok:
            ok = 0 < size <= limit  # type: ignore[operator]
        if not ok:
            raise ArchiveError(
                f"{where}: layer {i} ({spec.member}) does not match the artifact's metadata"
            )
        out.append((str(digest), int(size)))  # type: ignore[arg-type]
    return out


class ArtifactStream:
    """The archive's bytes: the artifact's layers in order, each checked as it is read."""

    def __init__(
        self,
        client: RegistryClient,
        layers: list[tuple[str, int]],
        config: bytes,
        digest: str,
    ) -> None:
        self._client = client
        self._layers = list(layers)
        self.name = str(client.ref)
        self.digest = digest
        """The manifest's digest."""
        self._current: BlobStream | None = None
        self._index = 0
        self._config = config
        self.manifest_size = 0
        """Bytes of the manifest that was read (the config's are ``len(config)``)."""
        self._head = b""
        """The first layer, read and checked at the first read (inspect never needs it)."""

    @property
    def client(self) -> RegistryClient:
        """The registry client the artifact was read with."""
        return self._client

    @property
    def config(self) -> bytes:
        """The config blob: the archive's ``portpack.json``."""
        return self._config

    def _open(self, index: int) -> BlobStream:
        digest, size = self._layers[index]
        return self._client.open_blob(digest, size)

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        if self._index == 0:
            head = self._open(0).read()
            _check_first(head, self._config, self.name)
            self._head, self._index = head, 1
        if self._head:
            if n < 0:
                data, self._head = self._head + self._read_rest(), b""
            else:
                data, self._head = self._head[:n], self._head[n:]
            return data
        return self._read_rest() if n < 0 else self._read_some(n)

    def _read_some(self, n: int) -> bytes:
        while True:
            if self._current is None:
                if self._index >= len(self._layers):
                    return b""
                self._current = self._open(self._index)
                self._index += 1
            data = self._current.read(n)
            if data:
                return data
            self._current = None

    def _read_rest(self) -> bytes:
        return b"".join(iter(lambda: self._read_some(_CHUNK), b""))

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        self._index = len(self._layers)
        self._client.close()

    def __enter__(self) -> ArtifactStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_first(head: bytes, config: bytes, name: str) -> None:
    """The first layer must hold exactly the config as the archive's metadata."""
    try:
        decoded = zstandard.ZstdDecompressor().decompressobj().decompress(head)
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"{name}: the first layer is no zstd frame: {exc}") from exc
    if metadata_of(decoded, name) != config:
        raise ArchiveError(
            f"{name}: the artifact's config and the metadata in its first layer differ"
        )


__all__ = [
    "ARTIFACT_TYPE",
    "CONFIG_MEDIA_TYPE",
    "FRAME_MEDIA_TYPE",
    "INFO_MEDIA_TYPE",
    "PAYLOAD_MEDIA_TYPE",
    "WHEEL_MEDIA_TYPE",
    "ArtifactStream",
    "PushResult",
    "layer_plan",
    "open_artifact",
    "push_archive",
]
