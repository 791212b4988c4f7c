"""References to OCI artifacts: ``oci://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]``.

Plain HTTP is allowed, as docker allows it, only for loopback hosts (``localhost``,
``127.0.0.0/8``, ``::1``) and for hosts the caller lists as insecure; every other
registry is spoken to over verified TLS.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from portpack.errors import UsageError

SCHEME = "oci://"
DEFAULT_TAG = "latest"
#: One path component of a repository name (distribution spec).
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_MAX_REPOSITORY = 255


@dataclass(frozen=True)
class OciRef:
    """A parsed ``oci://`` reference."""

    host: str
    """Host name or IP address (lower case; an IPv6 address without brackets)."""
    port: int | None
    repository: str
    tag: str | None
    digest: str | None
    """``sha256:<hex>`` when the reference names a digest (it wins over a tag)."""
    plain_http: bool
    """True for loopback and insecure hosts: plain HTTP may be used (after trying TLS)."""
    insecure: bool = False
    """Listed as insecure by the caller: its TLS certificate is not verified either
    (docker's ``insecure-registries``: one meaning of ``--insecure-host`` everywhere)."""

    @property
    def netloc(self) -> str:
        """``host[:port]`` as in a URL (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def reference(self) -> str:
        """What the manifest is fetched by: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> OciRef:
        """The same artifact, named by its manifest digest."""
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = f"{SCHEME}{self.netloc}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_oci_ref(text: object) -> bool:
    """True if ``text`` is a string starting with ``oci://``."""
    return isinstance(text, str) and text.startswith(SCHEME)


def parse_oci_ref(text: str, insecure_hosts: Iterable[str] = ()) -> OciRef:
    """Parse ``oci://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]``; raise :class:`UsageError`.

    ``insecure_hosts`` (``host`` or ``host:port``) may be spoken to over plain HTTP.
    Without a tag or digest the tag is ``latest``, as docker does.
    """

    def bad(why: str) -> UsageError:
        return UsageError(
            f"{text!r} is not a valid OCI reference: {why}",
            hint="Write oci://HOST[:PORT]/REPOSITORY[:TAG] or "
            "oci://HOST[:PORT]/REPOSITORY@sha256:DIGEST, e.g. oci://ghcr.io/org/envs/app:1.4.",
        )

    if not is_oci_ref(text):
        raise bad("it does not start with oci://")
    rest = text[len(SCHEME) :]
    if any(c in rest for c in "?#\\ \t\r\n\0") or "@" in rest.partition("/")[0]:
        raise bad("it holds a query, a fragment, whitespace or user information")
    netloc, slash, path = rest.partition("/")
    if not slash or not path:
        raise bad("it names no repository after the host")
    host, port = _split_netloc(netloc, bad)
    path, at, digest = path.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise bad(f"{digest!r} is not a sha256 digest (sha256: and 64 lower-case hex digits)")
    repository, tag = path, None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = path.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise bad(f"{tag!r} is not a valid tag (letters, digits, _ . -, at most 128)")
    if len(repository) > _MAX_REPOSITORY or not all(
        _COMPONENT.fullmatch(part) for part in repository.split("/")
    ):
        raise bad(
            f"{repository!r} is not a valid repository name (lower-case components of "
            "letters and digits separated by . _ - and /)"
        )
    if not at and tag is None:
        tag = DEFAULT_TAG
    listed = _listed(host, port, insecure_hosts)
    plain = is_loopback(host) or listed
    return OciRef(host, port, repository, tag, digest if at else None, plain, listed)


def _split_netloc(netloc: str, fail: Callable[[str], UsageError]) -> tuple[str, int | None]:
    if netloc.startswith("["):
        host, close, after = netloc[1:].partition("]")
        if not close or (after and not after.startswith(":")):
            raise fail(f"{netloc!r} is not a valid host")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise fail(f"{host!r} is not an IPv6 address") from None
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_ = netloc.partition(":")
        port_text = port_text_ if colon else None
        if not host or not _HOSTNAME.fullmatch(host):
            raise fail(f"{netloc!r} is not a valid host")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise fail(f"{port_text!r} is not a valid port")
        port = int(port_text)
    return host.lower(), port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (plain HTTP is allowed to them)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listed(host: str, port: int | None, insecure_hosts: Iterable[str]) -> bool:
    names = {h.strip().lower() for h in insecure_hosts}
    netloc = f"[{host}]" if ":" in host else host
    keys = {host, netloc} | ({f"{netloc}:{port}"} if port is not None else set())
    return bool(keys & names)
