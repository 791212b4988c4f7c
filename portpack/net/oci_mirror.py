"""Conda packages from OCI mirrors, in the layout rattler (and so pixi) reads.

A mirror ``oci://ghcr.io/channel-mirrors/conda-forge`` of a channel holds each package
file ``<subdir>/<name>-<version>-<build>.conda`` as a one-layer artifact:

- repository ``<mirror path>/<subdir>/<name>``; a name starting with ``_`` gets a
  ``zzz`` prefix (repository names cannot start with ``_``);
- tag ``<version>-<build>``, with ``+`` written ``__p__``, ``!`` written ``__e__`` and
  ``=`` written ``__eq__`` (tags cannot hold them);
- the layer's media type ``application/vnd.conda.package.v2`` for ``.conda`` files and
  ``application/vnd.conda.package.v1`` for ``.tar.bz2`` files;
- ``repodata.json`` lives in the repository ``<mirror path>/<subdir>/repodata.json``,
  tag ``latest``, media type ``application/vnd.conda.repodata.v1+json``.

Because a blob is addressed by its sha256 digest, a package whose lock gives a sha256
is fetched as the blob ``sha256:<that digest>`` directly, and through its tag's
manifest only if the registry does not serve that blob (pull-through caches import a
blob only when its manifest is asked for).

The registry is spoken to with :class:`portpack.remote.oci.RegistryClient`, not the
fetcher's urllib3 transport: it already does the distribution spec's bearer-token flow
(anonymous, as ghcr.io wants, or with credentials from the auth file, docker's or
containers' files), follows the redirects to blob storage without sending credentials
there, and allows plain HTTP only for loopback and ``insecure-hosts``.  The bytes still
go through the fetcher: its checksum, cache entry, progress and retries (see
:mod:`portpack.net.fetch`).  Proxies of ``[proxy-config]`` are not applied to OCI mirrors.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portpack.errors import FetchError, UsageError
from portpack.net.failures import Retry
from portpack.net.request import Download
from portpack.net.transport import proxy_for
from portpack.remote.proxy import ProxyRule, environment_proxy

SCHEME = "oci://"
PACKAGE_V2 = "application/vnd.conda.package.v2"
PACKAGE_V1 = "application/vnd.conda.package.v1"
REPODATA = "application/vnd.conda.repodata.v1+json"
REPODATA_TAG = "latest"

if TYPE_CHECKING:
    from portpack.net.config import NetworkConfig
    from portpack.remote._http import Response
    from portpack.remote.oci import RegistryClient

#: Characters a conda version or build may hold but an OCI tag may not, in the order
#: they are replaced (the reverse replaces ``__eq__`` before ``__e__``).
_TAG_ESCAPES = (("+", "__p__"), ("!", "__e__"), ("=", "__eq__"))


def escape_tag(version_build: str) -> str:
    """The tag of ``<version>-<build>``: ``1.0+local-0`` -> ``1.0__p__local-0``."""
    for char, escape in _TAG_ESCAPES:
        version_build = version_build.replace(char, escape)
    return version_build


def unescape_tag(tag: str) -> str:
    """The ``<version>-<build>`` a tag was made from (the reverse of :func:`escape_tag`)."""
    for char, escape in (_TAG_ESCAPES[0], _TAG_ESCAPES[2], _TAG_ESCAPES[1]):
        tag = tag.replace(escape, char)
    return tag


def repository_name(name: str) -> str:
    """The last component of a package's repository: ``_openmp_mutex`` -> ``zzz_openmp_mutex``."""
    return "zzz" + name if name.startswith("_") else name


def is_oci_mirror(url: str) -> bool:
    return url.startswith(SCHEME)


@dataclass(frozen=True)
class MirrorTarget:
    """Where an OCI mirror keeps one file."""

    netloc: str
    """``host[:port]`` of the registry."""
    repository: str
    tag: str
    media_type: str

    @property
    def reference(self) -> str:
        """``oci://host/repository:tag``, as messages name it."""
        return f"{SCHEME}{self.netloc}/{self.repository}:{self.tag}"


def mirror_target(url: str) -> MirrorTarget:
    """Map ``oci://host/path/<subdir>/<file>`` (a mirror URL of a channel file) to its artifact.

    Raises :class:`UsageError` for a file name that is not a conda package or repodata.
    """
    parsed = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parsed.path).strip("/")
    directory, _, filename = path.rpartition("/")
    if not parsed.netloc or not directory or not filename:
        raise UsageError(f"{url} is not an OCI mirror URL of a channel file")
    if filename.startswith("repodata.json"):
        media = {
            "repodata.json": REPODATA,
            "repodata.json.gz": REPODATA + "+gzip",
            "repodata.json.bz2": REPODATA + "+bz2",
            "repodata.json.zst": REPODATA + "+zst",
        }.get(filename)
        if media is None:
            raise UsageError(f"{url}: OCI mirrors hold no {filename}")
        return MirrorTarget(parsed.netloc, f"{directory}/repodata.json", REPODATA_TAG, media)
    suffix = ".conda" if filename.endswith(".conda") else ".tar.bz2"
    package_media = PACKAGE_V2 if suffix == ".conda" else PACKAGE_V1
    stem = filename[: -len(suffix)]
    if not filename.endswith(suffix):
        raise UsageError(f"{url}: {filename} is not a conda package file (.conda or .tar.bz2)")
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"{url}: {filename} is not named <name>-<version>-<build>{suffix}")
    name, version, build = parts
    repository = f"{directory}/{repository_name(name)}"
    tag = escape_tag(f"{version}-{build}")
    return MirrorTarget(parsed.netloc, repository, tag, package_media)


@dataclass(frozen=True)
class RegistrySettings:
    """What the registry client takes from the network settings."""

    auth_file: str | os.PathLike[str] | None = None
    ca_bundle: str | None = None
    insecure_hosts: tuple[str, ...] = ()
    proxy: ProxyRule = environment_proxy
    """Which proxy a registry URL goes through (the config file's ``[proxy-config]``)."""

    @classmethod
    def of(cls, net: NetworkConfig) -> RegistrySettings:
        """The registry client's share of the network settings, proxies included."""
        ca_bundle = str(net.ca_bundle) if net.ca_bundle else None
        rule: ProxyRule = lambda url: proxy_for(url, net)  # noqa: E731
        return cls(net.auth_file, ca_bundle, net.insecure_hosts, rule)


def fetch_blob(
    url: str,
    download: Download,
    offset: int,
    write: Callable[[bytes], None],
    settings: RegistrySettings,
) -> bool:
    """Stream the file of ``download`` from the OCI mirror URL ``url`` into ``write``.

    ``offset`` bytes were written by an earlier attempt: only the rest is asked for.
    False means the registry cannot resume and nothing was written: the caller starts
    over with offset 0.  A missing artifact, refused
    credentials or a bad reference raise :class:`FetchError` (the next mirror is then
    tried); network failures raise :class:`~portpack.net.failures.Retry`.
    """
    from portpack.remote._http import (
        NotFoundError,
        RegistryAuthError,
        RegistryError,
        Transport,
        read_chunks,
    )
    from portpack.remote.oci import RegistryClient
    from portpack.remote.oci_ref import parse_oci_ref

    target = _target(url, download)
    try:
        ref = parse_oci_ref(target.reference, settings.insecure_hosts)
    except UsageError as exc:
        raise FetchError(
            f"cannot download {download.what} from the OCI mirror: {exc.message}", url=url
        ) from None
    transport = Transport(ca_bundle=settings.ca_bundle, proxy=settings.proxy)
    client = RegistryClient(ref, auth_file=settings.auth_file, transport=transport)
    try:
        response = _blob(client, target, download, offset)
        resumed = offset > 0 and response.status == 206
        if offset and not resumed:
            response.close(reuse=False)
            return False
        for chunk in read_chunks(response):
            write(chunk)
        return resumed
    except NotFoundError as exc:
        raise FetchError(
            f"{download.what} is not in the OCI mirror: {exc.message}",
            url=target.reference,
            hint="Mirror the package to the registry, or list another mirror after this "
            "one in the config file (--config, [mirrors]).",
        ) from None
    except RegistryAuthError as exc:
        raise FetchError(exc.message, url=target.reference, hint=exc.hint) from None
    except RegistryError as exc:
        raise Retry(exc.message) from None
    except OSError as exc:  # the connection broke while the blob streamed
        raise Retry(f"{target.reference}: {exc.strerror or exc}") from None
    finally:
        client.close()


def _target(url: str, download: Download) -> MirrorTarget:
    try:
        return mirror_target(url)
    except UsageError as exc:
        raise FetchError(f"cannot download {download.what}: {exc.message}", url=url) from None


def _blob(
    client: RegistryClient, target: MirrorTarget, download: Download, offset: int
) -> Response:
    """The blob's response: by the lock's sha256 if it has one, else by the tag's layer."""
    from portpack.remote._http import NotFoundError

    if download.sha256:
        try:
            return client.blob_response(f"sha256:{download.sha256}", offset)
        except NotFoundError:
            pass  # not here under that digest: the manifest says which blob it is
    digest = _layer_digest(client, target, download)
    return client.blob_response(digest, offset)


def _layer_digest(client: RegistryClient, target: MirrorTarget, download: Download) -> str:
    from portpack.remote._http import NotFoundError
    from portpack.remote.oci_blob import is_digest

    manifest = client.get_manifest(target.tag)
    layers = manifest.doc.get("layers")
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("mediaType") == target.media_type:
            digest = layer.get("digest")
            if is_digest(digest):
                return str(digest)
    raise NotFoundError(
        f"{target.reference} has no layer of media type {target.media_type}", url=target.reference
    )


def oci_mirrors(mirrors: Iterable[Iterable[str]]) -> list[str]:
    """The OCI mirrors among mirror lists."""
    return [m for group in mirrors for m in group if is_oci_mirror(m)]
