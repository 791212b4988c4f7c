"""rattler's auth file, the one reader (standard library only).

The JSON that rattler, pixi and pixi-pack read: an object keyed by host
(``"repo.example.com"``, ``"*.example.com"``; portpack also accepts ``"host:port"``)
whose values are ``{"BearerToken": "..."}``, ``{"BasicHTTP": {"username": "...",
"password": "..."}}``, ``{"CondaToken": "..."}``, ``{"OAuth": {"access_token": ...}}``
(sent as a bearer token) or, keyed ``"s3://bucket"``, ``{"S3Credentials":
{"access_key_id": ..., "secret_access_key": ..., "session_token": ...}}``.

Every user of the file (channel downloads in :mod:`portpack.net.auth`, archive URLs
in :mod:`portpack.remote.netrc_auth`, registries in
:mod:`portpack.remote.registry_auth`) reads it here and takes the kinds it can send.
Errors name the file and the host, never a secret.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from portpack.errors import UsageError

Kind = Literal["bearer", "basic", "conda-token", "s3"]


@dataclass(frozen=True)
class AuthEntry:
    """One credential of the file."""

    kind: Kind
    token: str = field(default="", repr=False)
    """A bearer or conda token; an S3 session token."""
    username: str = ""
    """The user of basic auth; an S3 access key id."""
    password: str = field(default="", repr=False)
    """The password of basic auth; an S3 secret access key."""

    def secrets(self) -> list[str]:
        """The strings that must never be shown."""
        if self.kind == "basic":
            return [self.password, _basic_token(self.username, self.password)]
        return [s for s in (self.password, self.token) if s]

    def header(self) -> str | None:
        """The ``Authorization`` header value, if this credential is sent as one."""
        if self.kind == "bearer":
            return f"Bearer {self.token}"
        if self.kind == "basic":
            return f"Basic {_basic_token(self.username, self.password)}"
        return None


def _basic_token(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(frozen=True)
class AuthFile:
    """The entries of one auth file, keyed by lower-case host."""

    path: Path
    entries: dict[str, AuthEntry]

    def lookup(
        self, host: str, port: int | None = None, kinds: tuple[Kind, ...] | None = None
    ) -> tuple[str, AuthEntry] | None:
        """The entry for ``host``: ``host:port``, ``host``, then ``*.domain`` wildcards,
        as rattler looks them up; with ``kinds``, only entries of those kinds match."""
        for key in host_keys(host.lower(), port):
            entry = self.entries.get(key)
            if entry is not None and (kinds is None or entry.kind in kinds):
                return key, entry
        return None

    def secrets(self) -> list[str]:
        """Every secret string of every entry."""
        return [s for entry in self.entries.values() for s in entry.secrets() if s]


def host_keys(host: str, port: int | None = None) -> list[str]:
    """The keys an entry for ``host`` may have, most specific first."""
    keys = [f"{host}:{port}"] if port is not None else []
    keys.append(host)
    domain = host
    while domain:
        keys.append(f"*.{domain}")
        domain = domain.partition(".")[2]
    return keys


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; errors name ``what`` and the file, never its content."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8"
        raise UsageError(f"cannot read {what} {path}: {reason or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise UsageError(f"{what} {path} must hold a JSON object keyed by host")
    return doc


def read_auth_file(path: Path, what: str = "auth file") -> AuthFile:
    """Read and check every entry of ``path``."""
    return parse_auth_file(read_json_object(path, what), path, what)


def parse_auth_file(doc: dict[str, Any], path: Path, what: str = "auth file") -> AuthFile:
    """Check every entry of an auth file already read as ``doc``."""
    entries = {}
    for host, value in doc.items():
        entry = _entry(value)
        if entry is None:
            kinds = ", ".join(sorted(map(str, value))) if isinstance(value, dict) else "no object"
            raise UsageError(
                f"{what} {path}: the entry for {host!r} is not a BearerToken, BasicHTTP, "
                f"CondaToken, OAuth or S3Credentials credential (found: {kinds})"
            )
        entries[str(host).lower()] = entry
    return AuthFile(path, entries)


def _entry(value: Any) -> AuthEntry | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, data),) = value.items()
    if kind == "BearerToken" and isinstance(data, str):
        return AuthEntry("bearer", token=data)
    if kind == "CondaToken" and isinstance(data, str):
        return AuthEntry("conda-token", token=data)
    if kind == "BasicHTTP" and isinstance(data, dict):
        user, password = data.get("username"), data.get("password")
        if isinstance(user, str) and isinstance(password, str):
            return AuthEntry("basic", username=user, password=password)
        return None
    if kind == "OAuth" and isinstance(data, dict) and isinstance(data.get("access_token"), str):
        return AuthEntry("bearer", token=data["access_token"])
    if kind == "S3Credentials" and isinstance(data, dict):
        key, secret = data.get("access_key_id"), data.get("secret_access_key")
        session = data.get("session_token") or ""
        if isinstance(key, str) and isinstance(secret, str) and isinstance(session, str):
            return AuthEntry("s3", token=session, username=key, password=secret)
    return None
