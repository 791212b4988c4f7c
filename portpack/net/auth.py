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

import base64
import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from portpack.errors import UsageError

# One masking rule for every URL and message: the unpack side's (a lower layer).
from portpack.remote.netrc_auth import MASK as MASK
from portpack.remote.netrc_auth import TOKEN_SEGMENT as _TOKEN_SEGMENT
from portpack.remote.netrc_auth import redact as redact

#: The environment variable rattler and pixi read the auth file's path from.
AUTH_FILE_ENV = "RATTLER_AUTH_FILE"
#: rattler's default auth file (used when it exists and nothing else is given).
DEFAULT_AUTH_FILE = Path("~/.rattler/credentials.json")


@dataclass(frozen=True)
class Authentication:
    """One credential: a bearer token, HTTP basic auth or a conda token."""

    kind: Literal["bearer", "basic", "conda-token"]
    token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)

    def secrets(self) -> list[str]:
        """The strings that must never be shown."""
        if self.kind == "basic":
            encoded = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return [self.password, encoded]
        return [self.token]

    def header(self) -> str | None:
        """The ``Authorization`` header value, if this credential is sent as one."""
        if self.kind == "bearer":
            return f"Bearer {self.token}"
        if self.kind == "basic":
            encoded = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {encoded}"
        return None


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
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno})"
            ) from None
        if not isinstance(doc, dict):
            raise UsageError(f"{what} {path} must hold a JSON object keyed by host")
        entries = {}
        for host, value in doc.items():
            valid, auth = _parse_entry(value)
            if not valid:
                kinds = (
                    ", ".join(sorted(value)) if isinstance(value, dict) else type(value).__name__
                )
                raise UsageError(
                    f"{what} {path}: the entry for {host!r} is not a BearerToken, BasicHTTP "
                    f"or CondaToken credential (found: {kinds})"
                )
            if auth is not None:
                entries[str(host)] = auth
        return cls(entries, path)

    def lookup(self, url: str) -> tuple[str, Authentication] | None:
        """The entry for ``url``'s host: ``host:port``, ``host``, then ``*.domain`` wildcards."""
        parsed = urllib.parse.urlsplit(url)
        host = (parsed.hostname or "").lower()
        if not host:
            return None
        keys = []
        if parsed.port is not None:
            keys.append(f"{host}:{parsed.port}")
        keys.append(host)
        domain = host
        while domain:
            keys.append(f"*.{domain}")
            domain = domain.partition(".")[2]
        lowered = {key.lower(): key for key in self.entries}
        for key in keys:
            if key in lowered:
                original = lowered[key]
                return original, self.entries[original]
        return None

    def secrets(self) -> list[str]:
        """Every secret string of every entry (for :func:`redact`)."""
        return [s for auth in self.entries.values() for s in auth.secrets() if s]


def _parse_entry(value: Any) -> tuple[bool, Authentication | None]:
    """``(valid, credential)``; a valid entry portpack cannot use gives ``None``."""
    if not isinstance(value, dict) or len(value) != 1:
        return False, None
    ((kind, data),) = value.items()
    if kind == "BearerToken" and isinstance(data, str):
        return True, Authentication("bearer", token=data)
    if kind == "CondaToken" and isinstance(data, str):
        return True, Authentication("conda-token", token=data)
    if kind == "BasicHTTP" and isinstance(data, dict):
        user, pw = data.get("username"), data.get("password")
        if isinstance(user, str) and isinstance(pw, str):
            return True, Authentication("basic", username=user, password=pw)
        return False, None
    if kind == "OAuth" and isinstance(data, dict) and isinstance(data.get("access_token"), str):
        return True, Authentication("bearer", token=data["access_token"])
    if kind == "S3Credentials":
        return True, None  # for s3:// channels, which portpack does not fetch
    return False, None


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
