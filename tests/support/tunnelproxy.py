"""A small forward HTTP proxy on 127.0.0.1 for the tests: ``CONNECT`` tunnels and
absolute-form requests, as corporate proxies (squid, ...) serve clients.

It records every request line it was sent (``method``, ``target``, and whether a
``Proxy-Authorization`` header came with it) and, when given ``credentials``, answers
``407`` to requests without the right one. Bytes are relayed both ways until either
side closes: a tunnel keeps its connection alive, an absolute-form request is sent on
with ``Connection: close``.
"""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import threading
import urllib.parse
from dataclasses import dataclass


@dataclass
class Seen:
    method: str
    target: str
    authorized: bool


class TunnelProxy:
    """Use as a context manager; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.seen: list[Seen] = []
        expected = None
        if credentials is not None:
            token = base64.b64encode(":".join(credentials).encode()).decode()
            expected = f"Basic {token}"
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request, expected)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TunnelProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, client: socket.socket, expected: str | None) -> None:
        client.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
        raw, _, rest = head.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        authorized = expected is not None and headers.get("proxy-authorization") == expected
        self.seen.append(Seen(method, target, authorized))
        if expected is not None and not authorized:
            client.sendall(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host, int(port)), timeout=30)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
        else:
            parsed = urllib.parse.urlsplit(target)
            upstream = socket.create_connection((parsed.hostname, parsed.port or 80), timeout=30)
            path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
            # One request per connection (the next one would come in absolute form too).
            dropped = ("proxy-authorization", "connection")
            kept = [h for h in lines[1:] if not h.lower().startswith(dropped)]
            kept.append("Connection: close")
            request = "\r\n".join([f"{method} {path} {version}", *kept]) + "\r\n\r\n"
            upstream.sendall(request.encode("latin-1") + rest)
        _relay(client, upstream)


def _relay(a: socket.socket, b: socket.socket) -> None:
    with a, b:
        while True:
            ready, _, _ = select.select([a, b], [], [], 30)
            if not ready:
                return
            for sock in ready:
                other = b if sock is a else a
                try:
                    data = sock.recv(1 << 16)
                except OSError:
                    return
                if not data:
                    return
                try:
                    other.sendall(data)
                except OSError:
                    return
