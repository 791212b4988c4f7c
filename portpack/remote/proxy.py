"""HTTP proxies for the standard-library client (archive URLs, registries).

Which proxy a URL goes through: the caller's rule (the pack side passes its config
file's ``[proxy-config]``), else the environment as curl and pip read it:
``HTTPS_PROXY``/``https_proxy`` for https URLs, ``HTTP_PROXY``/``http_proxy`` for http
ones, ``ALL_PROXY`` for both, and ``NO_PROXY`` (host, ``.domain``, ``host:port``,
``*``) for hosts reached directly. An https URL goes through the proxy in a
``CONNECT`` tunnel, so TLS is still verified against the URL's own host; an http URL
is sent to the proxy in absolute form. Proxies are spoken to over plain HTTP
(``http://[user:password@]host[:port]``), the common case; the user information is
sent as ``Proxy-Authorization`` and never shown.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from portpack.errors import UsageError

#: url -> the proxy URL to use for it, or None to connect directly.
ProxyRule = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Proxy:
    """A proxy to connect to, and the header that authenticates to it."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``host:port``, for messages (no credentials)."""
        return f"{self.host}:{self.port}"


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (curl's and pip's variables)."""
    import urllib.request  # only when a URL is fetched: keeps the unpack start-up short

    parsed = urllib.parse.urlsplit(url)
    scheme, host = parsed.scheme.lower(), (parsed.hostname or "").lower()
    target = f"{host}:{parsed.port}" if parsed.port else host
    if urllib.request.proxy_bypass_environment(target):  # type: ignore[attr-defined]
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(scheme) or proxies.get("all") or None


def parse_proxy(value: str) -> Proxy:
    """``http://[user:password@]host[:port]`` (the scheme may be left out)."""
    raw = value if "://" in value else f"http://{value}"
    parsed = urllib.parse.urlsplit(raw)
    shown = f"{parsed.scheme}://{parsed.netloc.rpartition('@')[2]}"
    if parsed.scheme.lower() != "http":
        raise UsageError(
            f"proxy {shown}: only http:// proxies are supported here "
            "(https URLs still go through them encrypted, in a CONNECT tunnel)"
        )
    try:
        port = parsed.port or 80
    except ValueError:
        raise UsageError(f"proxy {shown}: invalid port") from None
    if not parsed.hostname:
        raise UsageError(f"proxy {shown}: no host")
    auth = None
    if parsed.username is not None:
        user = urllib.parse.unquote(parsed.username)
        password = urllib.parse.unquote(parsed.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return Proxy(parsed.hostname, port, auth)
