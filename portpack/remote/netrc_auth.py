"""Credentials for archive URLs, and masking them in anything shown.

Two sources, as the tools fleets already use read them:

* a netrc file (curl's and pip's convention): ``netrc_file``, else ``$NETRC``, else
  ``~/.netrc``; ``machine`` entries match the URL's host name, then ``default``;
* rattler's auth file (``--auth-file``): a JSON object keyed by ``host:port``, ``host``
  or ``*.domain``, whose values are ``{"BearerToken": "..."}`` or
  ``{"BasicHTTP": {"username": "...", "password": "..."}}``.  Other kinds
  (``CondaToken``, ``S3Credentials``) are for channels and are not sent here.

The auth file is read by :mod:`portpack.remote.auth_file`, the one reader, which
``portpack.net.auth`` (channels) and the registry client use too.  A credential is
looked up per host and per request, so a redirect to another host never carries the
first host's.
"""

from __future__ import annotations

import base64
import netrc
import os
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from portpack.errors import UsageError
from portpack.remote.auth_file import Kind, read_auth_file

#: The environment variable curl and pip read the netrc file's path from.
NETRC_ENV = "NETRC"
MASK = "***"

# Query parameters of presigned URLs (S3, GCS, Azure SAS) and tokens in general.
_SECRET_QUERY = re.compile(r"sig|signature|token|key|credential|secret|password|auth", re.I)
URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
TOKEN_SEGMENT = re.compile(r"/t/[^/?#\s]+")
#: The kinds of auth-file entry sent with archive downloads (the others are for channels).
_SENT: tuple[Kind, ...] = ("basic", "bearer")


@dataclass(frozen=True)
class Credential:
    """One credential for one host: the ``Authorization`` header and where it came from."""

    header: str = field(repr=False)
    source: str
    """``"the URL"``, ``"netrc file PATH"`` or ``"auth file PATH"`` (named in hints)."""
    secrets: tuple[str, ...] = field(default=(), repr=False)


def basic(username: str, password: str, source: str) -> Credential:
    """HTTP basic credentials."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return Credential(f"Basic {encoded}", source, (password, encoded))


def bearer(token: str, source: str) -> Credential:
    """A bearer token."""
    return Credential(f"Bearer {token}", source, (token,))


class Credentials:
    """The credentials of the netrc file and the auth file, looked up per URL."""

    def __init__(
        self,
        *,
        auth_file: str | os.PathLike[str] | None = None,
        netrc_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self._auth = read_auth_file(Path(auth_file)) if auth_file is not None else None
        self._netrc, self._netrc_path = _read_netrc(netrc_file)

    def for_url(self, url: str) -> Credential | None:
        """The credential for ``url``'s host: the URL's own, the auth file's, then netrc's."""
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            return basic(user, urllib.parse.unquote(parts.password or ""), "the URL")
        host = (parts.hostname or "").lower()
        if not host:
            return None
        auth = self._auth
        found = auth.lookup(host, parts.port, _SENT) if auth is not None else None
        if auth is not None and found is not None:
            entry, source = found[1], f"auth file {auth.path}"
            if entry.kind == "basic":
                return basic(entry.username, entry.password, source)
            return bearer(entry.token, source)
        if self._netrc is not None:
            machine = self._netrc.authenticators(host)
            if machine is not None and (machine[0] or machine[2]):
                return basic(machine[0], machine[2] or "", f"netrc file {self._netrc_path}")
        return None

    def secrets(self) -> list[str]:
        """Every secret string these credentials hold (masked by :func:`redact`)."""
        found = self._auth.secrets() if self._auth is not None else []
        if self._netrc is not None:
            entries = list(self._netrc.hosts.values())
            found += [basic(login, pw or "", "").secrets[1] for login, _, pw in entries]
            found += [pw for _, _, pw in entries if pw]
        return found


def _read_netrc(given: str | os.PathLike[str] | None) -> tuple[netrc.netrc | None, Path | None]:
    """The netrc file named by the caller or ``$NETRC`` (which must exist), or ~/.netrc."""
    if given is not None:
        path, required = Path(given), True
    elif os.environ.get(NETRC_ENV):
        path, required = Path(os.environ[NETRC_ENV]), True
    else:
        path, required = Path("~/.netrc").expanduser(), False
    if not required and not path.is_file():
        return None, None
    try:
        return netrc.netrc(str(path)), path
    except netrc.NetrcParseError as exc:
        # Not str(exc): its message quotes the offending token, which may be a password.
        raise UsageError(
            f"cannot read netrc file {path}: syntax error on line {exc.lineno}"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read netrc file {path}: {exc.strerror or exc}") from None


def redact_url(url: str) -> str:
    """``url`` with its userinfo, a conda ``/t/<token>`` and secret query values masked."""
    text = URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", url)
    text = TOKEN_SEGMENT.sub(f"/t/{MASK}", text)
    parts = urllib.parse.urlsplit(text)
    if not parts.query:
        return text
    pairs = []
    for item in parts.query.split("&"):
        key, eq, _ = item.partition("=")
        pairs.append(f"{key}={MASK}" if eq and _SECRET_QUERY.search(key) else item)
    return urllib.parse.urlunsplit(parts._replace(query="&".join(pairs)))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL credentials and every string of ``secrets`` (3+ chars) masked."""
    text = URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = TOKEN_SEGMENT.sub(f"/t/{MASK}", text)
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
