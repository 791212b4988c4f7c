"""Channel credentials: rattler's auth-file format, credentials in URLs, and redaction.

The auth file is the JSON that rattler, pixi and pixi-pack read: an object keyed by
host (``"repo.example.com"``, ``"*.example.com"``; portpack also accepts
``"host:port"``) whose values are ``{"BearerToken": "..."}``,
``{"BasicHTTP": {"username": "...", "password": "..."}}`` or ``{"CondaToken": "..."}``
(sent as ``/t/<token>/`` in the URL).  It is found, in this order, at the path given
by the caller (``--auth-file``), at ``$RATTLER_AUTH_FILE``, or at rattler's default
``~/.rattler/credentials.json``.

Secrets never leave this module in readable form: :func:`redact` masks them in any
text shown to a user, and :func:`strip_credentials` removes them from URLs that are
written anywhere (lockfiles, archive metadata, ``conda-meta``).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portpack.remote.auth_file import AuthEntry, AuthFile, read_auth_file

# One masking rule for every URL and message: the unpack side's (a lower layer).
from portpack.remote.netrc_auth import MASK as MASK
from portpack.remote.netrc_auth import TOKEN_SEGMENT as _TOKEN_SEGMENT
from portpack.remote.netrc_auth import redact as redact

#: The environment variable rattler and pixi read the auth file's path from.
AUTH_FILE_ENV = "RATTLER_AUTH_FILE"
#: rattler's default auth file (used when it exists and nothing else is given).
DEFAULT_AUTH_FILE = Path("~/.rattler/credentials.json")


#: One credential of the auth file (:mod:`portpack.remote.auth_file`, the one reader).
Authentication = AuthEntry


class Credentials:
    """Credentials keyed by host, looked up the way rattler does."""

    def __init__(
        self, entries: Mapping[str, Authentication] | None = None, source: Path | None = None
    ) -> None:
        self.entries = dict(entries or {})
        self.source = source
        """The auth file these came from (named in hints), if any."""

    @classmethod
    def load(cls, auth_file: str | os.PathLike[str] | None = None) -> Credentials:
        """Read ``auth_file``, else ``$RATTLER_AUTH_FILE``, else rattler's default file."""
        if auth_file is not None:
            return cls.from_file(Path(auth_file))
        env = os.environ.get(AUTH_FILE_ENV)
        if env:
            return cls.from_file(Path(env), what=f"{AUTH_FILE_ENV} file")
        default = DEFAULT_AUTH_FILE.expanduser()
        if default.is_file():
            return cls.from_file(default)
        return cls()

    @classmethod
    def from_file(cls, path: Path, what: str = "auth file") -> Credentials:
        """Parse one auth file; errors name the file and host, never a secret."""
        return cls(read_auth_file(path, what).entries, path)

    def lookup(self, url: str) -> tuple[str, Authentication] | None:
        """The entry for ``url``'s host: ``host:port``, ``host``, then ``*.domain`` wildcards."""
        parsed = urllib.parse.urlsplit(url)
        host = (parsed.hostname or "").lower()
        if not host:
            return None
        return AuthFile(self.source or Path(), self.entries).lookup(
            host, parsed.port, ("bearer", "basic", "conda-token")
        )

    def secrets(self) -> list[str]:
        """Every secret string of every entry (for :func:`redact`)."""
        return [s for auth in self.entries.values() for s in auth.secrets() if s]


def url_secrets(url: str) -> list[str]:
    """Secrets embedded in ``url``: a ``/t/<token>/`` segment and a userinfo password."""
    found = []
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        found.append(parsed.password)
        found.append(urllib.parse.unquote(parsed.password))
    match = _TOKEN_SEGMENT.search(parsed.path)
    if match:
        found.append(match.group(0)[len("/t/") :])
    return [s for s in found if s]


def strip_credentials(url: str) -> str:
    """``url`` without userinfo or a conda ``/t/<token>`` segment (for anything written)."""
    if "://" not in url:
        return url
    parsed = urllib.parse.urlsplit(url)
    netloc = parsed.netloc.rpartition("@")[2]
    path = _TOKEN_SEGMENT.sub("", parsed.path, count=1) or "/"
    return urllib.parse.urlunsplit((parsed.scheme, netloc, path, parsed.query, parsed.fragment))


def with_conda_token(url: str, token: str) -> str:
    """``url`` with ``/t/<token>`` before its path, as rattler sends a CondaToken."""
    parsed = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parsed._replace(path=f"/t/{token}{parsed.path}"))


def strip_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a repodata record whose ``url`` and ``channel`` carry no credentials."""
    clean = dict(record)
    for key in ("url", "channel"):
        value = clean.get(key)
        if isinstance(value, str):
            clean[key] = strip_credentials(value)
    return clean
