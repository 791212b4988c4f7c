"""Registry credentials and the distribution spec's token flow (standard library only).

Where credentials come from, first match wins:

1. the file the caller names (``--auth-file``): rattler's JSON, an object keyed by host
   whose values are ``{"BasicHTTP": {"username", "password"}}`` or
   ``{"BearerToken": "..."}``; a docker/containers file (with ``auths``) works too;
2. ``$REGISTRY_AUTH_FILE``, then ``${XDG_RUNTIME_DIR}/containers/auth.json``, then
   ``~/.config/containers/auth.json`` (podman, skopeo, buildah);
3. ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``.

docker/containers files hold ``auths`` keyed by ``host[:port]`` (optionally with a
scheme or a ``/repository`` prefix), each with a base64 ``auth`` of ``user:password``
or ``username`` and ``password``.  ``credHelpers`` and ``credsStore`` name programs
that keep the secret elsewhere; portpack does not run them and says so.

With a credential, a registry that answers ``401`` with ``WWW-Authenticate: Basic``
gets HTTP basic auth; one that answers ``Bearer realm=...,service=...,scope=...``
gets a token from the realm (requested anonymously or with basic auth), cached per
scope until it expires.  Secrets appear in no error message and no ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portpack.errors import UsageError
from portpack.remote._http import RegistryAuthError, Response
from portpack.remote.auth_file import parse_auth_file, read_json_object

REGISTRY_AUTH_FILE_ENV = "REGISTRY_AUTH_FILE"
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"
#: Seconds a token lives when the realm does not say (the distribution spec's default).
DEFAULT_TOKEN_LIFE = 60
#: docker's key for Docker Hub in config.json.
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Credential:
    """A username and password, or a bearer token sent as it is."""

    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    source: str = ""
    """The file it came from (named in errors)."""

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


class CredentialSource:
    """Finds the credential for a registry host in the files listed above."""

    def __init__(
        self,
        auth_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
    ) -> None:
        self._env = os.environ if environ is None else environ
        self._home = home if home is not None else Path.home()
        self._explicit = Path(auth_file) if auth_file is not None else None

    def files(self) -> list[Path]:
        """The files searched, in order (whether they exist or not)."""
        out = [self._explicit] if self._explicit is not None else []
        if self._env.get(REGISTRY_AUTH_FILE_ENV):
            out.append(Path(self._env[REGISTRY_AUTH_FILE_ENV]))
        if self._env.get("XDG_RUNTIME_DIR"):
            out.append(Path(self._env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
        out.append(self._home / ".config" / "containers" / "auth.json")
        docker = self._env.get(DOCKER_CONFIG_ENV)
        docker_dir = Path(docker) if docker else self._home / ".docker"
        out.append(docker_dir / "config.json")
        return out

    def lookup(self, netloc: str, repository: str = "") -> Credential | None:
        """The credential for ``host[:port]`` (and ``repository``), or None (anonymous)."""
        for path in self.files():
            explicit = path == self._explicit
            if not explicit and not path.is_file():
                continue
            doc = _read_json(path)
            if "auths" in doc or "credHelpers" in doc or "credsStore" in doc or not explicit:
                found = _docker_lookup(doc, path, netloc.lower(), repository)
            else:
                found = _rattler_lookup(doc, path, netloc.lower())
            if found is not None:
                return found
        return None


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, "the auth file")


def _bare_host(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc.partition("]")[0] + "]"
    return netloc.partition(":")[0]


def _host_keys(netloc: str) -> list[str]:
    """Keys an entry for ``netloc`` may have: ``host:port``, then ``host`` (and Docker Hub's)."""
    host = _bare_host(netloc)
    keys = [netloc] if host == netloc else [netloc, host]
    if host in _DOCKER_HUB_HOSTS:
        keys += [_DOCKER_HUB_KEY, *_DOCKER_HUB_HOSTS]
    return keys


def _normalize_key(key: str) -> str:
    """A config key without scheme or trailing slash, lower-cased host (``/v1/`` kept for Hub)."""
    if key == _DOCKER_HUB_KEY:
        return key
    if "://" in key:
        key = key.partition("://")[2]
    host, _, path = key.partition("/")
    path = path.strip("/")
    if path in ("v1", "v2"):
        path = ""
    return host.lower() + (f"/{path}" if path else "")


def _docker_lookup(
    doc: dict[str, Any], path: Path, netloc: str, repository: str
) -> Credential | None:
    auths = doc.get("auths", {})
    helpers = doc.get("credHelpers", {})
    if not isinstance(auths, dict) or not isinstance(helpers, dict):
        raise UsageError(f"the auth file {path}: auths and credHelpers must be objects")
    entries = {_normalize_key(str(k)): v for k, v in auths.items()}
    for key in _host_keys(netloc):
        if key in helpers:
            raise _helper_error(path, key, str(helpers[key]), "credHelpers")
        # The longest matching /repository prefix first (containers' auth.json allows them).
        parts = repository.split("/") if repository else []
        for n in range(len(parts), -1, -1):
            scoped = "/".join([key, *parts[:n]]) if n else key
            if scoped in entries:
                return _docker_entry(entries[scoped], path, scoped, doc.get("credsStore"))
    return None


def _docker_entry(entry: Any, path: Path, key: str, store: Any) -> Credential | None:
    if not isinstance(entry, dict):
        raise UsageError(f"the auth file {path}: the entry for {key!r} is not an object")
    auth, user, pw = entry.get("auth"), entry.get("username"), entry.get("password")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise UsageError(
                f"the auth file {path}: the auth of {key!r} is not base64 of user:password"
            ) from None
        user, sep, pw = decoded.partition(":")
        if not sep:
            raise UsageError(f"the auth file {path}: the auth of {key!r} has no ':'")
        return Credential(user, pw, source=str(path))
    if isinstance(user, str) and isinstance(pw, str) and user:
        return Credential(user, pw, source=str(path))
    if entry.get("identitytoken"):
        raise UsageError(
            f"the auth file {path} holds an identity token for {key!r}, which portpack "
            "cannot use: log in with a username and password (or a token as password)"
        )
    if isinstance(store, str) and store:
        raise _helper_error(path, key, store, "credsStore")
    return None


def _helper_error(path: Path, key: str, helper: str, field_name: str) -> UsageError:
    return UsageError(
        f"the credentials for {key} are kept by the credential helper "
        f"docker-credential-{helper} ({field_name} in {path}), which portpack does not run",
        hint="Give them in a file portpack reads: --auth-file with "
        '{"HOST": {"BasicHTTP": {"username": "...", "password": "..."}}}, or a '
        "containers auth.json ($REGISTRY_AUTH_FILE) written by `skopeo login --authfile`.",
    )


def _rattler_lookup(doc: dict[str, Any], path: Path, netloc: str) -> Credential | None:
    parts = urllib.parse.urlsplit(f"//{netloc}")
    found = parse_auth_file(doc, path, "the auth file").lookup(parts.hostname or "", parts.port)
    if found is None:
        return None
    key, entry = found
    if entry.kind == "bearer":
        return Credential(token=entry.token, source=str(path))
    if entry.kind == "basic":
        return Credential(entry.username, entry.password, source=str(path))
    raise UsageError(
        f"the auth file {path}: the entry for {key!r} is not a BasicHTTP or "
        "BearerToken credential (the ones a registry accepts)"
    )


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``(scheme, params)`` of a ``WWW-Authenticate`` header (``Bearer``, ``Basic``)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _PARAM.finditer(rest):
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1).lower()] = value
    return scheme.lower(), params


#: Sends a GET to a token realm: ``(url, headers) -> Response``.
TokenGetter = Callable[[str, dict[str, str]], Response]


class Authenticator:
    """The ``Authorization`` header for one registry, answering its 401 challenges."""

    def __init__(self, netloc: str, credential: Credential | None, get: TokenGetter) -> None:
        self.netloc = netloc
        self.credential = credential
        self._get = get
        self._basic = False
        self._tokens: dict[str, tuple[str, float]] = {}

    def header(self, scope: str) -> str | None:
        """What to send before any challenge: a cached token, else basic once accepted."""
        cached = self._tokens.get(scope)
        if cached is not None and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        if self.credential is not None and self.credential.token:
            return f"Bearer {self.credential.token}"
        if self._basic and self.credential is not None:
            return self.credential.basic()
        return None

    def answer(self, challenge: str | None, scope: str, what: str) -> bool:
        """Handle a 401: True if a retry may now succeed (a new header is available)."""
        self._tokens.pop(scope, None)
        scheme, params = parse_challenge(challenge or "")
        cred = self.credential
        if scheme == "basic":
            if cred is None or cred.token or self._basic:
                return False
            self._basic = True
            return True
        if scheme != "bearer" or not params.get("realm"):
            return False
        if cred is not None and cred.token:
            return False  # the token was sent and refused
        self._tokens[scope] = self._fetch_token(params, scope, what)
        return True

    def _fetch_token(self, params: dict[str, str], scope: str, what: str) -> tuple[str, float]:
        realm = params["realm"]
        scopes = [s for s in dict.fromkeys([params.get("scope", ""), *scope.split(" ")]) if s]
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in scopes]
        sep = "&" if "?" in realm else "?"
        url = realm + (sep + urllib.parse.urlencode(query) if query else "")
        if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
            raise RegistryAuthError(f"{what}: the registry names a token realm that is no URL")
        headers = {"Accept": "application/json"}
        if self.credential is not None:
            headers["Authorization"] = self.credential.basic()
        response = self._get(url, headers)
        body = response.read_small()
        realm_name = _without_query(realm)
        if response.status in (401, 403):
            raise RegistryAuthError(
                f"{what}: the token service {realm_name} refused "
                + (
                    f"the credentials from {self.credential.source}"
                    if self.credential
                    else "an anonymous token"
                ),
                url=realm_name,
                hint=None if self.credential else _login_hint(self.netloc),
            )
        if response.status != 200:
            raise RegistryAuthError(
                f"{what}: the token service {realm_name} answered {response.status}",
                url=realm_name,
            )
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            life = doc.get("expires_in", DEFAULT_TOKEN_LIFE)
        except (ValueError, AttributeError):
            token, life = None, 0
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(
                f"{what}: the token service {realm_name} sent no token", url=realm_name
            )
        life = life if isinstance(life, int | float) and life > 0 else DEFAULT_TOKEN_LIFE
        # Renew a little early so a token does not expire between check and use.
        return token, time.monotonic() + max(float(life) - 5.0, 1.0)


def _without_query(url: str) -> str:
    return url.partition("?")[0]


def _login_hint(netloc: str) -> str:
    return (
        f"Give credentials for {netloc}: `skopeo login {netloc}` or `docker login {netloc}` "
        "(read from their auth files), or --auth-file."
    )


__all__ = [
    "Authenticator",
    "Credential",
    "CredentialSource",
    "parse_challenge",
]
