"""Network settings: the config file, mirrors, proxies and TLS, for fetching and solving.

The HTTP client that applies them is :mod:`portpack.net.transport`.

The config file (``--config``) is rattler's TOML, as pixi and pixi-pack read it; parsing
is left to py-rattler's :class:`rattler.Config`.  portpack uses its ``[mirrors]``,
``[concurrency] downloads``, ``[proxy-config]``, ``tls-no-verify``,
``authentication-override-file`` and ``[s3-options]`` (:mod:`portpack.net.s3`) keys,
plus a ``[portpack]`` table of its own::

    [mirrors]
    "https://conda.anaconda.org/conda-forge" = [
        "https://mirror.example.com/conda-forge",
        "https://conda.anaconda.org/conda-forge",
    ]

    [portpack]
    insecure-hosts = ["conda.internal.example.com"]   # no TLS verification for these
    ca-bundle = "corporate-ca.pem"                     # relative to the config file
    retries = 5              # attempts after the first, per file
    retry-backoff = 1.0      # first wait in seconds, doubled after each failure
    retry-max-wait = 60      # longest wait between attempts (Retry-After included)
    retry-deadline = 600     # no new attempt this long after a file's first one
    connect-timeout = 30     # seconds to open a connection
    read-timeout = 60        # longest silence while a response or its body is awaited

Proxies also come from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY``
and CA certificates from ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# tomli, as for manifests (portpack/resolve/manifest.py): pixi's config files are TOML 1.1 too.
import tomli as tomllib

from portpack.errors import UsageError
from portpack.net.auth import redact
from portpack.net.s3_options import S3Options, parse_options
from portpack.progress import Reporter

if TYPE_CHECKING:
    import rattler

PORTPACK_TABLE = "portpack"


@dataclass(frozen=True)
class FetchPolicy:
    """How long the fetcher waits, and how often it tries again: every wait is bounded.

    A body that keeps arriving is never cut, however long it takes: only silence
    (``read_timeout``) ends an attempt.
    """

    retries: int = 5
    """Attempts after the first, per file (mirrors count as one attempt together)."""
    backoff: float = 1.0
    """The first wait between attempts; doubled after each failure, with jitter."""
    max_wait: float = 60.0
    """The longest wait between two attempts, a server's ``Retry-After`` included."""
    deadline: float = 600.0
    """No attempt starts later than this after the first attempt of a file."""
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    """The longest silence while the response headers or more of the body are awaited."""

    def __post_init__(self) -> None:
        for key, (attr, kind) in _POLICY_KEYS.items():
            value = getattr(self, attr)
            if not _in_range(value, kind, key.endswith("timeout")):
                raise UsageError(f"fetch policy: {attr} {_range_text(key, kind)} (got {value!r})")

    @property
    def pool_timeout(self) -> float:
        """How long a download waits for a free pooled connection.

        There is one connection per download, so none should ever wait: one that
        does means a connection was lost, and it fails instead of hanging.
        """
        return self.connect_timeout


#: ``[portpack]`` keys of the :class:`FetchPolicy` fields, with their types.
_POLICY_KEYS: dict[str, tuple[str, type]] = {
    "retries": ("retries", int),
    "retry-backoff": ("backoff", float),
    "retry-max-wait": ("max_wait", float),
    "retry-deadline": ("deadline", float),
    "connect-timeout": ("connect_timeout", float),
    "read-timeout": ("read_timeout", float),
}


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that shapes how portpack reaches channels."""

    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Channel URL prefix (ending in ``/``) -> mirrors tried in order (each ending in ``/``)."""
    auth_file: Path | None = None
    ca_bundle: Path | None = None
    insecure_hosts: tuple[str, ...] = ()
    """Hosts (``host`` or ``host:port``) whose TLS certificates are not verified."""
    tls_no_verify: bool = False
    """No TLS verification for any host (rattler's ``tls-no-verify``)."""
    proxy_http: str | None = None
    proxy_https: str | None = None
    non_proxy_hosts: tuple[str, ...] = ()
    concurrency: int | None = None
    """``[concurrency] downloads`` of the config file."""
    config_file: Path | None = None
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    """Timeouts and retries of downloads."""
    s3_options: Mapping[str, S3Options] = field(default_factory=dict)
    """``[s3-options.<bucket>]`` of the config file (see :mod:`portpack.net.s3`)."""

    def mirror_urls(self, url: str) -> list[tuple[str, str]]:
        """``(mirror, URL)`` pairs to try for ``url``, in order; ``("", url)`` without mirrors.

        The longest matching prefix wins; its mirrors replace it (list the original URL
        among them to keep it).
        """
        best = ""
        for prefix in self.mirrors:
            if url.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        if not best:
            return [("", url)]
        rest = url[len(best) :]
        return [(mirror, mirror + rest) for mirror in self.mirrors[best]]


def load_network_config(
    config: str | os.PathLike[str] | None = None,
    *,
    auth_file: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    insecure_hosts: Sequence[str] = (),
    reporter: Reporter | None = None,
) -> NetworkConfig:
    """Read the config file (if any); explicit options take precedence over it."""
    settings: dict[str, Any] = {}
    if config is not None:
        settings = _read_config(Path(config), reporter or Reporter())
    hosts = tuple(dict.fromkeys([*settings.pop("insecure_hosts", ()), *insecure_hosts]))
    for host in hosts:
        if not host or "/" in host:
            raise UsageError(f"--insecure-host expects a host name (or host:port), got {host!r}")
    if auth_file is not None:
        settings["auth_file"] = Path(auth_file)
    if ca_bundle is not None:
        settings["ca_bundle"] = Path(ca_bundle)
    bundle = settings.get("ca_bundle")
    if bundle is not None and not bundle.is_file():
        raise UsageError(f"CA bundle {bundle} does not exist")
    return NetworkConfig(insecure_hosts=hosts, **settings)


def _read_config(path: Path, reporter: Reporter) -> dict[str, Any]:
    import rattler

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        parsed, unused = rattler.Config.from_toml_with_unused_keys(text)
        doc = tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} is invalid: {redact(str(exc))}") from None
    for key in unused:
        if key != PORTPACK_TABLE and not key.startswith("s3-options"):  # read below
            reporter.warning(f"config file {path}: key {key!r} is not used by portpack")
    own = doc.get(PORTPACK_TABLE, {})
    if not isinstance(own, dict):
        raise UsageError(f"config file {path}: [{PORTPACK_TABLE}] must be a table")
    settings: dict[str, Any] = {"config_file": path, "s3_options": parse_options(path, doc)}
    settings["mirrors"] = {
        _slash(prefix): tuple(_slash(m) for m in mirrors)
        for prefix, mirrors in parsed.mirrors.items()
    }
    for prefix, mirrors in settings["mirrors"].items():
        if not mirrors:
            raise UsageError(f"config file {path}: mirror list of {prefix} is empty")
    if parsed.authentication_override_file is not None:
        settings["auth_file"] = _relative(path, parsed.authentication_override_file)
    settings["tls_no_verify"] = bool(parsed.tls_no_verify)
    settings["proxy_http"] = parsed.proxy_http
    settings["proxy_https"] = parsed.proxy_https
    settings["non_proxy_hosts"] = tuple(parsed.proxy_non_proxy_hosts)
    if "concurrency" in doc:
        settings["concurrency"] = int(parsed.concurrency_downloads)
    hosts = own.get("insecure-hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise UsageError(f"config file {path}: insecure-hosts must be a list of host names")
    settings["insecure_hosts"] = hosts
    if "ca-bundle" in own:
        if not isinstance(own["ca-bundle"], str):
            raise UsageError(f"config file {path}: ca-bundle must be a path")
        settings["ca_bundle"] = _relative(path, Path(own["ca-bundle"]))
    settings["policy"] = _policy(path, own)
    unknown = sorted(set(own) - {"insecure-hosts", "ca-bundle", *_POLICY_KEYS})
    if unknown:
        raise UsageError(
            f"config file {path}: unknown key(s) in [{PORTPACK_TABLE}]: {', '.join(unknown)}"
        )
    return settings


#: Upper bounds of the policy's values: a day for waits, a hundred retries.
_MAX_SECONDS = 86400.0
_MAX_RETRIES = 100


def _policy(path: Path, own: dict[str, Any]) -> FetchPolicy:
    values: dict[str, Any] = {}
    for key, (attr, kind) in _POLICY_KEYS.items():
        if key not in own:
            continue
        value = own[key]
        if not _in_range(value, kind, key.endswith("timeout")):
            raise UsageError(
                f"config file {path}: [{PORTPACK_TABLE}] {key} {_range_text(key, kind)} "
                f"(got {value!r})"
            )
        values[attr] = kind(value)
    return FetchPolicy(**values)


def _range_text(key: str, kind: type) -> str:
    what = "a whole number" if kind is int else "a number of seconds"
    low = "above 0" if key.endswith("timeout") else "from 0"
    high = _MAX_RETRIES if kind is int else _MAX_SECONDS
    return f"must be {what} {low} up to {high:g}"


def _in_range(value: Any, kind: type, positive: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if kind is int else int | float):
        return False
    high = _MAX_RETRIES if kind is int else _MAX_SECONDS
    return math.isfinite(value) and (value > 0 if positive else value >= 0) and value <= high


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _relative(config: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else config.parent / path


def _check_solver_oci_mirrors(net: NetworkConfig) -> None:
    """Refuse OCI mirrors the solver would get wrong.

    py-rattler 0.28 reads repodata from ``oci://`` mirrors itself, but always over
    HTTPS on port 443: a mirror with a port of its own would silently be asked on
    another one.
    """
    import urllib.parse

    for prefix, mirrors in net.mirrors.items():
        for mirror in mirrors:
            if mirror.startswith("oci://") and urllib.parse.urlsplit(mirror).port is not None:
                raise UsageError(
                    f"config file {net.config_file}: the OCI mirror {mirror} of {prefix} has a "
                    "port: solving (lock) reads repodata from OCI mirrors only on port 443 "
                    "over HTTPS; list an https:// mirror (or the channel) for solving, or "
                    "use this mirror for pack only"
                )


@contextlib.contextmanager
def solver_environment(net: NetworkConfig) -> Iterator[None]:
    """While solving: ``SSL_CERT_FILE`` names ``net.ca_bundle`` (py-rattler reads it)."""
    if net.ca_bundle is None:
        yield
        return
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(net.ca_bundle)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = before


def solver_client(net: NetworkConfig) -> rattler.Client | None:
    """A py-rattler client with these settings for the solver (``None``: rattler's default).

    rattler reads the auth file itself (``authentication-override-file``) and applies
    the mirrors; it cannot skip TLS verification per host, so insecure hosts turn it
    off for the whole solve.  It reads ``SSL_CERT_FILE`` for CA certificates (see
    :func:`solver_environment`).
    """
    lines = []
    if net.auth_file is not None:
        lines.append(f"authentication-override-file = {json.dumps(str(net.auth_file))}")
    if net.tls_no_verify or net.insecure_hosts:
        lines.append("tls-no-verify = true")
    if net.mirrors:
        lines.append("[mirrors]")
        lines += [
            f"{json.dumps(prefix)} = {json.dumps(list(mirrors))}"
            for prefix, mirrors in net.mirrors.items()
        ]
    if net.proxy_http or net.proxy_https:
        lines.append("[proxy-config]")
        if net.proxy_http:
            lines.append(f"http = {json.dumps(net.proxy_http)}")
        if net.proxy_https:
            lines.append(f"https = {json.dumps(net.proxy_https)}")
        lines.append(f"non-proxy-hosts = {json.dumps(list(net.non_proxy_hosts))}")
    _check_solver_oci_mirrors(net)
    if not lines:
        return None
    import rattler

    return rattler.Client.from_config(rattler.Config.from_toml("\n".join(lines)))
