"""Network settings: the config file, mirrors, proxies and TLS, for fetching and solving.

The config file (``--config``) is rattler's TOML, as pixi and pixi-pack read it; parsing
is left to py-rattler's :class:`rattler.Config`.  portpack uses its ``[mirrors]``,
``[concurrency] downloads``, ``[proxy-config]``, ``tls-no-verify`` and
``authentication-override-file`` keys, plus a ``[portpack]`` table of its own::

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
import re
import socket
import ssl
import threading
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# tomli, as for manifests (portpack/resolve/manifest.py): pixi's config files are TOML 1.1 too.
import tomli as tomllib

from portpack.errors import UsageError
from portpack.net.auth import redact
from portpack.progress import Reporter

if TYPE_CHECKING:
    import rattler

PORTPACK_TABLE = "portpack"
MAX_REDIRECTS = 10


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
        if key != PORTPACK_TABLE:
            reporter.warning(f"config file {path}: key {key!r} is not used by portpack")
    own = doc.get(PORTPACK_TABLE, {})
    if not isinstance(own, dict):
        raise UsageError(f"config file {path}: [{PORTPACK_TABLE}] must be a table")
    settings: dict[str, Any] = {"config_file": path}
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


def ssl_context(net: NetworkConfig) -> ssl.SSLContext:
    """A verifying context: ``ca_bundle``, else ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi."""
    cafile: str | None = str(net.ca_bundle) if net.ca_bundle else None
    capath: str | None = None
    if cafile is None:
        cafile = os.environ.get("SSL_CERT_FILE") or None
        capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        import certifi

        cafile = certifi.where()
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as exc:
        which = cafile or capath
        raise UsageError(f"cannot load CA certificates from {which}: {exc}") from exc


def proxy_for(url: str, net: NetworkConfig) -> str | None:
    """The proxy a request to ``url`` goes through: the config file's, else the environment's.

    ``NO_PROXY`` (host, ``.domain``, ``host:port`` or ``*``) and the config file's
    ``non-proxy-hosts`` (host or ``.domain``) name hosts reached directly.
    """
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    host = (parsed.hostname or "").lower()
    configured = net.proxy_https if scheme == "https" else net.proxy_http
    if configured:
        for pattern in net.non_proxy_hosts:
            pattern = pattern.lower().lstrip("*")
            if host == pattern.lstrip(".") or (pattern.startswith(".") and host.endswith(pattern)):
                return None
        return configured
    target = f"{host}:{parsed.port}" if parsed.port else host
    if urllib.request.proxy_bypass_environment(target):  # type: ignore[attr-defined]
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(scheme) or proxies.get("all") or None


class RedirectError(Exception):
    """A redirect that is not followed: too many of them, or to a URL that is not HTTP(S)."""


#: Headers that carry credentials: not sent on when a redirect leads to another origin.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class Transport:
    """Pooled HTTP/1.1 connections with these settings, shared by threads (urllib3).

    One connection pool per host (``connections`` connections each), per proxy and
    per TLS policy.  Separate connections rather than HTTP/2 streams on one, so that a
    server's per-connection bandwidth limit does not cap the whole download; urllib3
    rather than a pure-Python HTTP parser, because reading the body costs a few
    C calls per megabyte (see benchmarks/README.md).

    Every wait is bounded by ``policy``: opening a connection, each read, and getting
    a connection from its pool.  Every response must end in :meth:`release`, which
    gives its connection back to the pool whatever happened to it; :meth:`abort` ends
    the requests in progress from another thread.
    """

    def __init__(
        self, net: NetworkConfig, connections: int, policy: FetchPolicy | None = None
    ) -> None:
        import urllib3

        from portpack._version import __version__

        self.net = net
        self.policy = policy or net.policy
        self._verify = None if net.tls_no_verify else ssl_context(net)
        self._options: dict[str, Any] = {
            "maxsize": max(1, connections),
            "block": True,
            "timeout": urllib3.Timeout(
                connect=self.policy.connect_timeout, read=self.policy.read_timeout
            ),
            "retries": False,
            "headers": {"User-Agent": f"portpack/{__version__}", "Accept-Encoding": "identity"},
        }
        self._insecure = {h.lower() for h in net.insecure_hosts}
        self._managers: dict[tuple[str | None, bool], urllib3.PoolManager] = {}
        self._routes: dict[tuple[str, str], tuple[str | None, bool]] = {}
        """(scheme, netloc) -> (proxy, verify): the environment is read once per origin."""
        self._lock = threading.Lock()
        self._lent = _Lent()
        self._pool_classes = _pool_classes(self._lent)
        if self._insecure or net.tls_no_verify:
            _silence_insecure_warnings(sorted(self._insecure) if not net.tls_no_verify else [])

    def _manager(self, url: str) -> Any:
        import urllib3

        parsed = urllib.parse.urlsplit(url)
        origin = (parsed.scheme.lower(), parsed.netloc.lower())
        with self._lock:
            key = self._routes.get(origin)
        if key is None:
            host = (parsed.hostname or "").lower()
            verify = self._verify is not None and (
                host not in self._insecure and origin[1] not in self._insecure
            )
            key = (proxy_for(url, self.net), verify)
        proxy, verify = key
        with self._lock:
            self._routes[origin] = key
            manager = self._managers.get(key)
            if manager is None:
                tls: dict[str, Any] = (
                    {"ssl_context": self._verify}
                    if verify
                    else {"cert_reqs": "CERT_NONE", "assert_hostname": False}
                )
                options = {**self._options, **tls}
                if proxy is None:
                    manager = urllib3.PoolManager(num_pools=32, **options)
                else:
                    userinfo = urllib.parse.urlsplit(proxy)
                    headers = {}
                    if userinfo.username:
                        credentials = f"{userinfo.username}:{userinfo.password or ''}"
                        headers = urllib3.make_headers(
                            proxy_basic_auth=urllib.parse.unquote(credentials)
                        )
                    manager = urllib3.ProxyManager(
                        proxy, num_pools=32, proxy_headers=headers, **options
                    )
                manager.pool_classes_by_scheme = self._pool_classes
                self._managers[key] = manager
            return manager

    def get(self, url: str, headers: Mapping[str, str]) -> Any:
        """Start a GET; return urllib3's response with the body not read yet.

        Redirects are followed (up to :data:`MAX_REDIRECTS`, without reading their
        bodies; credential headers are dropped on the way to another origin); errors
        are urllib3's own exceptions, unwrapped, or :class:`RedirectError`.  The
        caller must :meth:`release` the response.
        """
        sent = dict(headers)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._open(url, sent)
            location = response.get_redirect_location()
            if not location:
                return response
            self.release(response, reuse=False)
            target = urllib.parse.urljoin(url, str(location))
            if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
                raise RedirectError(f"redirected to {redact(target)}, which is not HTTP(S)")
            if _origin_of(target) != _origin_of(url):
                sent = {k: v for k, v in sent.items() if k.lower() not in _CREDENTIAL_HEADERS}
            url = target
        raise RedirectError(f"more than {MAX_REDIRECTS} redirects")

    def _open(self, url: str, headers: Mapping[str, str]) -> Any:
        import urllib3

        try:
            return self._manager(url).urlopen(
                "GET",
                url,
                headers={**self._options["headers"], **headers},
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=False,
                pool_timeout=self.policy.pool_timeout,
            )
        except urllib3.exceptions.MaxRetryError as exc:  # pragma: no cover - retries=False
            if exc.reason is not None:
                raise exc.reason from None
            raise

    @staticmethod
    def release(response: Any, *, reuse: bool) -> None:
        """Give ``response``'s connection back to its pool, on every path.

        ``reuse`` says the body was read to its end; otherwise the connection is
        closed first (never reused half-read) and its pool opens a new one when
        needed.  A response that is closed but not released would take its slot
        in the pool with it, and once every slot is gone every download waits.
        """
        try:
            if not reuse:
                with contextlib.suppress(Exception):
                    response.close()
        finally:
            response.release_conn()

    def abort(self) -> None:
        """End every request in progress (from any thread): their reads fail at once."""
        self._lent.abort()

    def in_use(self) -> int:
        """Pool slots not given back: 0 once every response is released."""
        with self._lock:
            managers = list(self._managers.values())
        missing = 0
        for manager in managers:
            for key in manager.pools.keys():  # noqa: SIM118 (a container without __iter__)
                pool = manager.pools.get(key)
                if pool is not None and pool.pool is not None:
                    missing += self._options["maxsize"] - pool.pool.qsize()
        return missing

    def close(self) -> None:
        with self._lock:
            for manager in self._managers.values():
                manager.clear()
            self._managers.clear()


def _origin_of(url: str) -> tuple[str, str, int | None]:
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    return (
        scheme,
        (parsed.hostname or "").lower(),
        parsed.port or {"http": 80, "https": 443}.get(scheme),
    )


class _Lent:
    """The connections a pool has lent out (a request is using them) right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self.aborted = False

    def add(self, conn: Any) -> None:
        with self._lock:
            self._conns.add(conn)

    def discard(self, conn: Any) -> None:
        if conn is not None:
            with self._lock:
                self._conns.discard(conn)

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            conns = list(self._conns)
        for conn in conns:
            sock = getattr(conn, "sock", None)
            raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
            if isinstance(raw, socket.socket):
                # The plain socket's shutdown, also under TLS: the reader blocked in it
                # gets an error at once, and the TLS object is left to the reader.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(raw, socket.SHUT_RDWR)


def _pool_classes(lent: _Lent) -> dict[str, Any]:
    """urllib3 pool classes that record which connections they lent out in ``lent``."""
    import urllib3
    from urllib3.exceptions import ClosedPoolError

    class HTTPPool(urllib3.HTTPConnectionPool):
        def _get_conn(self, timeout: float | None = None) -> Any:
            if lent.aborted:
                raise ClosedPoolError(self, "the downloads were cancelled")
            conn = super()._get_conn(timeout)
            lent.add(conn)
            return conn

        def _put_conn(self, conn: Any) -> None:
            lent.discard(conn)
            super()._put_conn(conn)

    # HTTPPool's methods first, then HTTPS's pool (its super() is HTTPSConnectionPool).
    class HTTPSPool(HTTPPool, urllib3.HTTPSConnectionPool):
        pass

    return {"http": HTTPPool, "https": HTTPSPool}


def _silence_insecure_warnings(hosts: list[str]) -> None:
    """The user chose no verification for ``hosts`` (all hosts when empty): don't nag."""
    import warnings

    from urllib3.exceptions import InsecureRequestWarning

    if not hosts:
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    for host in hosts:
        warnings.filterwarnings(
            "ignore", message=f".*host '{re.escape(host)}'", category=InsecureRequestWarning
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
    if not lines:
        return None
    import rattler

    return rattler.Client.from_config(rattler.Config.from_toml("\n".join(lines)))
