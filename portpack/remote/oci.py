"""A small OCI distribution client on :mod:`http.client` (standard library only).

It does what pushing and pulling a portpack artifact needs: resolve a tag or digest to
a manifest, read blobs as streams that check their sha256 as they are read, ask
whether a blob exists, upload blobs (``POST`` then one ``PUT``, or a cross-repository
mount) and put a manifest.  Authentication is :mod:`portpack.remote.registry_auth`'s;
transport, TLS and retries are :mod:`portpack.remote._http`'s.  Blob ``GET`` follows
redirects (registries send them to storage) without sending credentials to another
origin, and a blob cut off mid-stream is resumed with a ``Range`` request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from portpack.remote._http import (
    BlobIntegrityError,
    Body,
    NotFoundError,
    RegistryAuthError,
    RegistryError,
    Response,
    Transport,
)
from portpack.remote.oci_blob import BlobStream, is_digest
from portpack.remote.oci_ref import OciRef, is_loopback
from portpack.remote.registry_auth import Authenticator, CredentialSource

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join(
    (MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE)
)
#: Manifests larger than this are refused (registries cap them at 4 MiB).
MAX_MANIFEST_SIZE = 4 << 20
_MAX_REDIRECTS = 5
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry sent it."""

    digest: str
    media_type: str
    data: bytes
    doc: dict[str, Any]


@dataclass
class TransferStats:
    """What a push sent and what it did not need to send."""

    uploaded_blobs: int = 0
    uploaded_bytes: int = 0
    skipped_blobs: int = 0
    """Blobs the repository already had (``HEAD`` said so)."""
    skipped_bytes: int = 0
    mounted_blobs: int = 0
    """Blobs taken from another repository of the registry without uploading them."""
    mounted_bytes: int = 0


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    """Talks to the repository of one :class:`OciRef`."""

    def __init__(
        self,
        ref: OciRef,
        *,
        auth_file: str | os.PathLike[str] | None = None,
        credentials: CredentialSource | None = None,
        ca_bundle: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.ref = ref
        self.repository = ref.repository
        self.transport = transport or Transport(ca_bundle=ca_bundle)
        if ref.insecure:
            self.transport.skip_verification(ref.netloc)
        source = credentials or CredentialSource(auth_file)
        self._sources = source
        credential = source.lookup(ref.netloc, ref.repository)
        self.auth = Authenticator(ref.netloc, credential, self._token_get)
        self._scheme: str | None = None if ref.plain_http else "https"
        self.stats = TransferStats()

    # -- plumbing ---------------------------------------------------------------------

    def close(self) -> None:
        self.transport.close()

    def _base(self) -> str:
        if self._scheme is None:
            # A loopback or insecure host: TLS if it speaks TLS, else plain HTTP.
            self._scheme = "https" if self.transport.speaks_tls(self.ref.netloc) else "http"
        return f"{self._scheme}://{self.ref.netloc}"

    def url(self, path: str, repository: str | None = None) -> str:
        return f"{self._base()}/v2/{repository or self.repository}/{path}"

    def scope(self, push: bool = False, also_pull: str | None = None) -> str:
        own = f"repository:{self.repository}:{'pull,push' if push else 'pull'}"
        return own + (f" repository:{also_pull}:pull" if also_pull else "")

    def _token_get(self, url: str, headers: dict[str, str]) -> Response:
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname or ""
        if parsed.scheme != "https" and not (is_loopback(host) or self.ref.plain_http):
            raise RegistryAuthError(
                f"{self.ref}: the registry sends its token service to plain HTTP "
                f"({parsed.scheme}://{parsed.netloc}); portpack sends credentials only over TLS",
                url=f"{parsed.scheme}://{parsed.netloc}",
            )
        return self.transport.request("GET", url, headers, what=f"{self.ref}: token")

    def call(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        what: str,
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        retries: int | None = None,
    ) -> Response:
        """Send with credentials; answer the registry's 401 challenges (at most twice)."""
        for _ in range(3):
            sent = dict(headers or {})
            auth = self.auth.header(scope)
            if auth:
                sent["Authorization"] = auth
            response = self.transport.request(method, url, sent, body, what=what, retries=retries)
            if response.status != 401:
                return response
            challenge = response.header("WWW-Authenticate")
            response.read_small()
            if not self.auth.answer(challenge, scope, what):
                break
        raise self._auth_error(what)

    def _auth_error(self, what: str) -> RegistryAuthError:
        cred = self.auth.credential
        if cred is None:
            searched = ", ".join(str(p) for p in self._sources.files())
            return RegistryAuthError(
                f"{what}: {self.ref.netloc} requires credentials, and none were found for it "
                f"(searched: {searched})",
                url=str(self.ref),
                hint=f"Log in with `skopeo login {self.ref.netloc}` or `docker login "
                f"{self.ref.netloc}`, or give --auth-file.",
            )
        return RegistryAuthError(
            f"{what}: {self.ref.netloc} refused the credentials for {cred.username or 'the token'} "
            f"from {cred.source} (or they do not give access to {self.repository})",
            url=str(self.ref),
        )

    def fail(self, response: Response, what: str) -> RegistryError:
        """The typed error for an unexpected answer, with the registry's own error codes."""
        try:
            body = response.read_small()
            errors = json.loads(body).get("errors") or []
            codes = [str(e.get("code")) for e in errors if isinstance(e, dict)]
            messages = [str(e.get("message")) for e in errors if isinstance(e, dict)]
        except (RegistryError, ValueError, AttributeError):
            codes, messages = [], []
        detail = f" ({'; '.join(f'{c}: {m}' for c, m in zip(codes, messages, strict=False))})"
        detail = detail if codes else ""
        if response.status == 404 or "NAME_UNKNOWN" in codes or "MANIFEST_UNKNOWN" in codes:
            if "NAME_UNKNOWN" in codes:
                return NotFoundError(
                    f"{what}: the repository {self.repository} does not exist on "
                    f"{self.ref.netloc}{detail}",
                    url=str(self.ref),
                )
            where = str(self.ref)
            return NotFoundError(f"{what}: not found on {self.ref.netloc}{detail}", url=where)
        if response.status == 403 or "DENIED" in codes:
            return RegistryAuthError(
                f"{what}: {self.ref.netloc} denied access to {self.repository}{detail}",
                url=str(self.ref),
            )
        return RegistryError(
            f"{what}: {self.ref.netloc} answered HTTP {response.status}{detail}", url=str(self.ref)
        )

    # -- manifests --------------------------------------------------------------------

    def get_manifest(self, reference: str | None = None) -> Manifest:
        """The manifest (or index) a tag or digest names; a digest is checked."""
        reference = reference or self.ref.reference
        _check_reference(reference, self.ref)
        what = f"oci://{self.ref.netloc}/{self.repository}{_sep(reference)}{reference}"
        response = self.call(
            "GET",
            self.url(f"manifests/{reference}"),
            scope=self.scope(),
            what=what,
            headers={"Accept": ACCEPT},
        )
        if response.status != 200:
            error = self.fail(response, what)
            if isinstance(error, NotFoundError) and "does not exist" not in error.message:
                error = self._missing(reference, what)
            raise error
        data = response.read_small(MAX_MANIFEST_SIZE)
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise BlobIntegrityError(
                f"{what}: the registry sent a manifest whose digest is {digest}", url=what
            )
        try:
            doc = json.loads(data)
        except ValueError:
            raise RegistryError(f"{what}: the manifest is not JSON", url=what) from None
        if not isinstance(doc, dict):
            raise RegistryError(f"{what}: the manifest is not a JSON object", url=what)
        media = doc.get("mediaType") or (response.header("Content-Type") or "").split(";")[0]
        return Manifest(digest, str(media), data, doc)

    def tags(self, limit: int = 100) -> list[str] | None:
        """Up to ``limit`` tags of the repository; None if the repository does not exist."""
        what = f"{self.ref}: listing tags"
        response = self.call("GET", self.url(f"tags/list?n={limit}"), scope=self.scope(), what=what)
        if response.status == 404:
            response.read_small()
            return None
        if response.status != 200:
            raise self.fail(response, what)
        try:
            tags = json.loads(response.read_small(MAX_MANIFEST_SIZE)).get("tags") or []
        except (ValueError, AttributeError):
            return []
        return [str(t) for t in tags][:limit]

    def _missing(self, reference: str, what: str) -> NotFoundError:
        """A missing tag or manifest: say whether the repository exists, and its tags."""
        try:
            tags = self.tags()
        except RegistryError:
            tags = []
        if tags is None:
            return NotFoundError(
                f"{what}: the repository {self.repository} does not exist on {self.ref.netloc}",
                url=what,
            )
        kind = "manifest" if reference.startswith("sha256:") else "tag"
        shown = ", ".join(sorted(tags)[:20]) + (", ..." if len(tags) > 20 else "")
        return NotFoundError(
            f"{what}: the {kind} {reference} does not exist in {self.repository} "
            f"on {self.ref.netloc}",
            url=what,
            hint=f"Its tags: {shown}." if tags else None,
        )

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        """Upload a manifest under a tag (or its digest); return its digest."""
        _check_reference(reference, self.ref)
        what = f"oci://{self.ref.netloc}/{self.repository}{_sep(reference)}{reference}"
        response = self.call(
            "PUT",
            self.url(f"manifests/{reference}"),
            scope=self.scope(push=True),
            what=f"{what}: uploading the manifest",
            headers={"Content-Type": media_type},
            body=Body.of(data),
        )
        if response.status not in (200, 201):
            raise self.fail(response, f"{what}: uploading the manifest")
        response.read_small()
        digest = sha256_digest(data)
        sent = response.header("Docker-Content-Digest")
        if sent and sent != digest:
            raise RegistryError(
                f"{what}: the registry stored the manifest as {sent}, not {digest}", url=what
            )
        return digest

    # -- blobs ------------------------------------------------------------------------

    def blob_size(self, digest: str) -> int | None:
        """The size of the blob if the repository has it, else None (``HEAD``)."""
        _check_reference(digest, self.ref, digest_only=True)
        what = f"{self.ref}: blob {digest}"
        response = self.call("HEAD", self.url(f"blobs/{digest}"), scope=self.scope(), what=what)
        response.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise self.fail(response, what)
        length = response.header("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def open_blob(self, digest: str, size: int) -> BlobStream:
        """A stream of the blob's ``size`` bytes that checks ``digest`` as it is read."""
        return BlobStream(self, digest, size)

    def blob_response(self, digest: str, start: int = 0) -> Response:
        """``GET`` the blob (from byte ``start``), following redirects to storage."""
        _check_reference(digest, self.ref, digest_only=True)
        what = f"{self.ref}: blob {digest}"
        headers = {"Range": f"bytes={start}-"} if start else {}
        url = self.url(f"blobs/{digest}")
        response = self.call("GET", url, scope=self.scope(), what=what, headers=headers)
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS):
            if response.status not in (301, 302, 303, 307, 308):
                break
            location = response.header("Location")
            response.read_small()
            if not location:
                raise RegistryError(f"{what}: a redirect without Location", url=url)
            url = urllib.parse.urljoin(url, location)
            parsed = urllib.parse.urlsplit(url)
            if parsed.scheme != "https" and not (
                parsed.scheme == "http" and _origin(url) == origin
            ):
                raise RegistryError(
                    f"{what}: the registry redirects to {parsed.scheme}://{parsed.netloc}, "
                    "which is not HTTPS",
                    url=url,
                )
            if _origin(url) == origin:
                response = self.call("GET", url, scope=self.scope(), what=what, headers=headers)
            else:  # storage: its URL carries its own authorization, ours is not sent
                response = self.transport.request("GET", url, dict(headers), what=what)
        if response.status in (301, 302, 303, 307, 308):
            response.read_small()
            raise RegistryError(f"{what}: more than {_MAX_REDIRECTS} redirects", url=url)
        if response.status not in (200, 206):
            raise self.fail(response, what)
        return response

    def push_blob(self, digest: str, body: Body, mount_from: str | None = None) -> str:
        """Make the repository hold the blob: ``"skipped"``, ``"mounted"`` or ``"uploaded"``.

        ``HEAD`` first: a blob the repository has is not sent.  With ``mount_from``
        (another repository of the same registry) the registry is asked to link it
        from there; a registry that cannot answers with an upload session instead.
        """
        if self.blob_size(digest) is not None:
            self.stats.skipped_blobs += 1
            self.stats.skipped_bytes += body.size
            return "skipped"
        what = f"{self.ref}: uploading blob {digest}"
        attempts = 1 + (self.transport.retries if body.replayable else 0)
        for attempt in range(attempts):
            location = self._start_upload(digest, mount_from if attempt == 0 else None, what)
            if location is None:
                self.stats.mounted_blobs += 1
                self.stats.mounted_bytes += body.size
                return "mounted"
            sep = "&" if "?" in location else "?"
            url = f"{location}{sep}digest={urllib.parse.quote(digest)}"
            try:
                response = self.call(
                    "PUT",
                    url,
                    scope=self.scope(push=True),
                    what=what,
                    headers={"Content-Type": "application/octet-stream"},
                    body=body,
                    retries=0,
                )
            except RegistryError:
                if attempt + 1 == attempts:
                    raise
                continue
            if response.status >= 500 and attempt + 1 < attempts:
                response.read_small()
                continue
            if response.status not in (201, 204):
                raise self.fail(response, what)
            response.read_small()
            self.stats.uploaded_blobs += 1
            self.stats.uploaded_bytes += body.size
            return "uploaded"
        raise RegistryError(f"{what}: the registry kept failing", url=str(self.ref))

    def _start_upload(self, digest: str, mount_from: str | None, what: str) -> str | None:
        """``POST`` an upload session; its URL, or None when the blob was mounted."""
        query = ""
        if mount_from and mount_from != self.repository:
            query = "?" + urllib.parse.urlencode({"mount": digest, "from": mount_from})
        scope = self.scope(push=True, also_pull=mount_from if query else None)
        url = self.url("blobs/uploads/") + query
        response = self.call("POST", url, scope=scope, what=what)
        if response.status == 201 and query:
            response.read_small()
            return None
        if response.status != 202:
            raise self.fail(response, what)
        response.read_small()
        location = response.header("Location")
        if not location:
            raise RegistryError(f"{what}: the registry sent no upload location", url=url)
        joined = urllib.parse.urljoin(url, location)
        if _origin(joined) != _origin(url):
            raise RegistryError(
                f"{what}: the registry sends the upload to another host ({_origin(joined)})",
                url=url,
            )
        return joined


def _check_reference(reference: str, ref: OciRef, digest_only: bool = False) -> None:
    """Only digests and tags go into a URL path (a hostile manifest may name others)."""
    if is_digest(reference) or (not digest_only and _TAG.fullmatch(reference)):
        return
    raise RegistryError(f"{ref}: invalid reference {reference[:80]!r}", url=str(ref))


def _sep(reference: str) -> str:
    return "@" if reference.startswith("sha256:") else ":"


def _origin(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc}".lower()
