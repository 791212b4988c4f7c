"""The one HTTP client: pooled connections, TLS, proxies and redirects (urllib3).

Every download portpack makes goes through :class:`Transport`: the package
fetcher (:mod:`portpack.net.fetch`), and through it the self-extractor's wheel
index and zstandard wheel.  Its settings come from
:class:`~portpack.net.config.NetworkConfig`: CA bundle (``--ca-bundle``,
``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi), hosts without verification,
proxies (the config file's ``[proxy-config]``, else ``HTTP(S)_PROXY``/``NO_PROXY``)
and the timeouts of :class:`~portpack.net.config.FetchPolicy`.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import threading
import urllib.parse
import weakref
from collections.abc import Mapping
from typing import Any

from portpack.errors import UsageError
from portpack.net.auth import redact
from portpack.net.config import FetchPolicy, NetworkConfig
from portpack.remote.proxy import environment_proxy

MAX_REDIRECTS = 10


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
    return environment_proxy(url)  # the unpack side's rule: one reading of the environment


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
        # urllib3 names the host without its port: "host:port" entries silence that host.
        name, colon, port = host.rpartition(":")
        bare = name if colon and port.isdigit() else host
        warnings.filterwarnings(
            "ignore", message=f".*host '{re.escape(bare)}'", category=InsecureRequestWarning
        )
