"""Credentials for archive URLs, and masking them in anything shown.

Two sources, as the tools fleets already use read them:

* a netrc file (curl's and pip's convention): ``netrc_file``, else ``$NETRC``, else
  ``~/.netrc``; ``machine`` entries match the URL's host name, then ``default``;
* rattler's auth file (``--auth-file``): a JSON object keyed by ``host:port``, ``host``
  or ``*.domain``, whose values are ``{"BearerToken": "..."}`` or
  ``{"BasicHTTP": {"username": "...", "password": "..."}}``.  Other kinds
  (``CondaToken``, ``S3Credentials``) are for channels and are not sent here.

This is a small parser of its own: ``portpack.net.auth`` reads the same auth file but
is a higher layer (built on urllib3), and this module is for the unpack path, which
runs on targets with the standard library only.  A credential is looked up per host
and per request, so a redirect to another host never carries the first host's.
"""

from __future__ import annotations

import base64
import json
import netrc
import os
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from portpack.errors import UsageError

#: The environment variable curl and pip read the netrc file's path from.
NETRC_ENV = "NETRC"
MASK = "***"

# Query parameters of presigned URLs (S3, GCS, Azure SAS) and tokens in general.
_SECRET_QUERY = re.compile(r"sig|signature|token|key|credential|secret|password|auth", re.I)
URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
TOKEN_SEGMENT = re.compile(r"/t/[^/?#\s]+")


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
        self._auth = _read_auth_file(Path(auth_file)) if auth_file is not None else {}
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
        for key in _host_keys(host, parts.port):
            if key in self._auth:
                return self._auth[key]
        if self._netrc is not None:
            entry = self._netrc.authenticators(host)
            if entry is not None and (entry[0] or entry[2]):
                return basic(entry[0], entry[2] or "", f"netrc file {self._netrc_path}")
        return None

    def secrets(self) -> list[str]:
        """Every secret string these credentials hold (masked by :func:`redact`)."""
        found = [s for cred in self._auth.values() for s in cred.secrets]
        if self._netrc is not None:
            entries = list(self._netrc.hosts.values())
            found += [basic(login, pw or "", "").secrets[1] for login, _, pw in entries]
            found += [pw for _, _, pw in entries if pw]
        return found


def _host_keys(host: str, port: int | None) -> list[str]:
    keys = [f"{host}:{port}"] if port is not None else []
    keys.append(host)
    domain = host
    while domain:
        keys.append(f"*.{domain}")
        domain = domain.partition(".")[2]
    return keys


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


def _read_auth_file(path: Path) -> dict[str, Credential]:
    """rattler's auth file, keyed by lower-case host (errors name the file and host only)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read auth file {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"auth file {path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise UsageError(f"auth file {path} must hold a JSON object keyed by host")
    source = f"auth file {path}"
    entries: dict[str, Credential] = {}
    for host, value in doc.items():
        kind, data = next(iter(value.items())) if isinstance(value, dict) and value else ("", None)
        if kind == "BearerToken" and isinstance(data, str):
            entries[str(host).lower()] = bearer(data, source)
        elif kind == "BasicHTTP" and isinstance(data, dict):
            user, password = data.get("username"), data.get("password")
            if not (isinstance(user, str) and isinstance(password, str)):
                raise UsageError(
                    f"{source}: the BasicHTTP entry for {host!r} lacks a username "
                    "or password string"
                )
            entries[str(host).lower()] = basic(user, password, source)
        elif kind not in ("CondaToken", "S3Credentials", "OAuth") or len(value) != 1:
            raise UsageError(
                f"{source}: the entry for {host!r} is not a BearerToken or BasicHTTP credential"
            )
    return entries


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
