"""Real registries for the OCI tests: Debian's ``docker-registry`` (CNCF distribution).

:class:`Registry` starts ``docker-registry serve`` on a free 127.0.0.1 port with a
config file and filesystem storage in a temporary folder, and stops it again.
:class:`TokenServer` is the token endpoint of the distribution spec's bearer flow
for a registry configured with ``auth: token``: it checks HTTP basic credentials
and signs JWTs (RS256, the certificate in ``x5c``) that the registry verifies
against the certificate it is given as ``rootcertbundle``.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REGISTRY_PROGRAM = "docker-registry"
_START_WAIT = 30.0


def require_registry() -> str:
    """The docker-registry program, or a failure saying how to install it."""
    found = shutil.which(REGISTRY_PROGRAM)
    if found is None:
        import pytest

        pytest.fail(
            f"{REGISTRY_PROGRAM} is not installed: the OCI tests run a real registry. "
            "Run ./dev/test --prepare (as root it installs the Debian packages "
            "docker-registry, skopeo and apache2-utils), or `apt-get install docker-registry "
            "skopeo apache2-utils`.",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    """One ``docker-registry serve`` process with its own storage."""

    def __init__(
        self, root: Path, auth: dict[str, Any] | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.root = root
        self.storage = root / "storage"
        self.port = free_port()
        self.netloc = f"127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}},
            "http": {"addr": self.netloc},
        }
        if auth:
            config["auth"] = auth
        if tls:  # (certificate, key) PEM files: the registry serves HTTPS only
            config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        root.mkdir(parents=True, exist_ok=True)
        # The registry reads YAML; JSON is YAML.
        (root / "config.yml").write_text(json.dumps(config))
        self._log = open(root / "registry.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [require_registry(), "serve", str(root / "config.yml")],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_WAIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        log = (self.root / "registry.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"docker-registry did not start on {self.netloc}:\n{log}")

    def ref(self, path: str) -> str:
        return f"oci://{self.netloc}/{path}"

    def blobs(self) -> dict[str, Path]:
        """Digest -> data file of every blob in the registry's storage."""
        base = self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
        if not base.is_dir():
            return {}
        return {f"sha256:{p.parent.name}": p for p in base.glob("*/*/data")}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@contextmanager
def running_registry(
    root: Path, auth: dict[str, Any] | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[Registry]:
    """A :class:`Registry` at ``root`` (failing clearly when docker-registry is not
    installed), stopped on the way out."""
    require_registry()
    registry = Registry(root, auth, tls)
    try:
        yield registry
    finally:
        registry.stop()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A token endpoint (``GET /token?service=&scope=``) on 127.0.0.1."""

    SERVICE = "portpack-test-registry"
    ISSUER = "portpack-test-issuer"

    def __init__(self, root: Path, users: dict[str, str]) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.users = users
        self.requests: list[dict[str, Any]] = []
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portpack test tokens")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.cert_path = root / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._key = key
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def auth_config(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": self.realm,
                "service": self.SERVICE,
                "issuer": self.ISSUER,
                "rootcertbundle": str(self.cert_path),
            }
        }

    def _user(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else ""

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        user = self._user(handler.headers.get("Authorization"))
        scopes = query.get("scope", [])
        self.requests.append({"user": user, "scopes": scopes, "service": query.get("service")})
        if user == "":  # wrong password
            handler.send_response(401)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            if kind == "repository" and user:  # anonymous users get no access
                access.append({"type": kind, "name": repo, "actions": actions.split(",")})
        body = json.dumps({"token": self._sign(user or "", access), "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.ISSUER,
            "sub": subject,
            "aud": self.SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


class FaultProxy:
    """A front on 127.0.0.1 that forwards to a registry and injects faults on request.

    * ``fail[(method, kind)] = n``: answer the next ``n`` such requests with
      ``fail_status`` (503 unless set; ``kind`` is ``"manifests"``, ``"blobs"`` or
      ``"uploads"``, or for any other server the path's next-to-last component);
    * ``cut_after = k``: cut the next large blob ``GET`` (no ``Range``) after ``k``
      bytes of its body, once;
    * ``redirect_blobs``: answer blob ``GET`` with 307 to ``/storage/...`` on the
      proxy (as registries send clients to their storage), served from the registry.
    ``log`` records ``(method, path, Range header)`` of every request.
    """

    def __init__(self, upstream: Registry | Any) -> None:
        self.upstream = upstream
        """Anything with the ``port`` of a server on 127.0.0.1 (S3's stand-in works too)."""
        self.fail: dict[tuple[str, str], int] = {}
        self.fail_status = 503
        self.cut_after: int | None = None
        self.redirect_blobs = False
        self.log: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_HEAD(self) -> None:
                proxy._handle(self, "HEAD")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

            def do_PUT(self) -> None:
                proxy._handle(self, "PUT")

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.netloc = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def ref(self, path: str) -> str:
        return f"oci://{self.netloc}/{path}"

    def _kind(self, path: str) -> str:
        return "uploads" if "/blobs/uploads/" in path else path.split("/")[-2]

    def _take_fault(self, method: str, path: str) -> bool:
        with self._lock:
            key = (method, self._kind(path))
            if self.fail.get(key, 0) > 0:
                self.fail[key] -= 1
                return True
            return False

    def _handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        rng = h.headers.get("Range")
        self.log.append((method, h.path, rng))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if self._take_fault(method, h.path):
            h.send_response(self.fail_status)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        path = h.path
        is_blob_get = method == "GET" and "/blobs/sha256:" in path
        if is_blob_get and self.redirect_blobs and not path.startswith("/storage/"):
            h.send_response(307)
            h.send_header("Location", "/storage" + path)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if path.startswith("/storage/"):
            path = path[len("/storage") :]
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("content-length",)}
        conn.request(
            method, path, body=body if method in ("POST", "PUT") else None, headers=headers
        )
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        h.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                h.send_header(name, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method == "HEAD":
            return
        cut = self.cut_after
        if is_blob_get and rng is None and cut is not None and len(data) > cut:
            self.cut_after = None
            h.wfile.write(data[:cut])
            h.wfile.flush()
            h.close_connection = True
            import socket as socket_module

            h.connection.shutdown(socket_module.SHUT_RDWR)
            return
        h.wfile.write(data)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
