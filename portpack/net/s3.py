"""``s3://bucket/path`` channels: their settings, credentials, downloads and repodata mirrors.

Configured as pixi configures them, in the ``--config`` file::

    [s3-options.my-bucket]
    endpoint-url = "https://minio.example.com"
    region = "eu-central-1"
    force-path-style = true      # http://endpoint/bucket/key, not http://bucket.endpoint/key

Credentials, in this order: an ``S3Credentials`` entry for ``s3://my-bucket`` in the auth
file (rattler's, as ``pixi auth login s3://my-bucket --s3-access-key-id ...`` writes it),
then the AWS chain: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the files in ``~/.aws``.  No message ever
shows a credential.

The S3 client is botocore's (through boto3, the optional extra ``portpack[s3]``),
imported only when an ``s3://`` URL is used.  py-rattler 0.28 cannot read ``s3://``
channels ("URL scheme is not allowed"), so for solving, :func:`mirror_channel` copies a
channel's ``repodata.json`` files into a local directory channel; the records solved
from it get their ``s3://`` URLs back (:func:`restore_urls`).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from portpack.errors import FetchError, UsageError
from portpack.net.s3_options import S3Options

_CHUNK = 256 << 10
_INSTALL = "pip install 'portpack[s3]'"


def split_url(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; a URL without a bucket is a UsageError."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() != "s3" or not parsed.netloc or "@" in parsed.netloc:
        raise UsageError(f"{url} is not an s3://bucket/path URL")
    return parsed.netloc, urllib.parse.unquote(parsed.path.lstrip("/"))


class S3Access:
    """botocore clients, one per bucket (made on first use; they are thread-safe).

    ``network`` is a :class:`portpack.net.config.NetworkConfig` (its ``s3_options``,
    auth file and fetch policy).
    """

    def __init__(self, network: Any, pool: int = 10) -> None:
        self.network = network
        self.pool = max(1, pool)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._secrets: list[str] = []

    def client(self, bucket: str, url: str) -> Any:
        with self._lock:
            if bucket not in self._clients:
                self._clients[bucket] = self._make(bucket, url)
            return self._clients[bucket]

    def secrets(self) -> list[str]:
        """The credentials in use (masked out of every message)."""
        return list(self._secrets)

    def _make(self, bucket: str, url: str) -> Any:
        boto3, config_type = _import_boto()
        options = self.network.s3_options.get(bucket, S3Options())
        policy = self.network.policy
        keys = _auth_file_keys(self.network.auth_file, bucket)
        session = boto3.session.Session(**keys)
        creds = session.get_credentials()
        if creds is None:
            raise FetchError(
                f"no S3 credentials for {url}",
                url=url,
                hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or add "
                f"an S3Credentials entry for s3://{bucket} to the auth file (--auth-file).",
            )
        frozen = creds.get_frozen_credentials()
        self._secrets += [s for s in (frozen.secret_key, frozen.token) if s]
        config = config_type(
            region_name=options.region or session.region_name or "us-east-1",
            s3={"addressing_style": "path" if options.force_path_style else "auto"},
            connect_timeout=policy.connect_timeout,
            read_timeout=policy.read_timeout,
            retries={"max_attempts": 1},  # retried here, with the fetch policy
            max_pool_connections=self.pool,
        )
        return session.client("s3", endpoint_url=options.endpoint_url, config=config)

    # -- one object ---------------------------------------------------------------------

    def download(
        self,
        url: str,
        sink: Any,
        stop: threading.Event,
        limit: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Stream object ``url`` into ``sink`` (``.write(bytes)``, ``.written``), resuming
        by Range after transient failures; the fetch policy bounds the attempts and the
        waits between them.  ``limit``: stop reading past this size."""
        policy = self.network.policy
        for attempt in range(policy.retries + 1):
            try:
                self._attempt(url, sink, stop, limit, progress)
                return
            except _Transient as exc:
                if attempt >= policy.retries:
                    raise FetchError(
                        f"cannot download {url}: {exc} (gave up after {attempt + 1} attempts)",
                        url=url,
                    ) from None
                delay = min(policy.max_wait, policy.backoff * 2.0**attempt)
                if stop.wait(delay * random.uniform(0.5, 1.0)):
                    _cancelled()

    def _attempt(
        self,
        url: str,
        sink: Any,
        stop: threading.Event,
        limit: int | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        bucket, key = split_url(url)
        client = self.client(bucket, url)
        extra = {"Range": f"bytes={sink.written}-"} if sink.written else {}
        body = None
        try:
            body = client.get_object(Bucket=bucket, Key=key, **extra)["Body"]
            while chunk := body.read(_CHUNK):
                if stop.is_set():
                    _cancelled()
                sink.write(chunk)
                if progress is not None:
                    progress(len(chunk))
                if limit is not None and sink.written > limit:
                    return  # longer than expected: the checksum will tell
        except Exception as exc:
            self._failure(url, exc)
        finally:
            if body is not None:
                body.close()

    def _failure(self, url: str, exc: Exception) -> None:
        """Raise what ``exc`` means: a FetchError, or _Transient to try again."""
        from portpack.net.failures import Cancelled

        if isinstance(exc, FetchError | Cancelled):
            raise exc
        import botocore.exceptions as bce

        if isinstance(exc, bce.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status >= 500 or status in (408, 429) or code in _TRANSIENT_CODES:
                raise _Transient(f"the server answered {status} {code}") from None
            raise FetchError(_client_message(url, code, status), url=url, hint=_hint(code))
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            raise FetchError(f"no usable S3 credentials for {url}", url=url) from None
        if isinstance(exc, bce.BotoCoreError | OSError) or _is_urllib3(exc):
            raise _Transient(self._redact(f"{type(exc).__name__}: {exc}")) from None
        raise exc

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _cancelled() -> None:
    from portpack.net.failures import Cancelled

    raise Cancelled


class _Transient(Exception):
    """A failure worth another attempt (network, timeouts, 5xx, throttling)."""


_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}


def _client_message(url: str, code: str, status: int) -> str:
    if code in ("NoSuchBucket",):
        return f"cannot download {url}: the bucket does not exist (S3 {code})"
    if code in ("NoSuchKey", "404") or status == 404:
        return f"cannot download {url}: no such object (S3 {code or status})"
    if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"cannot download {url}: access denied (S3 {code or status})"
    return f"cannot download {url}: S3 error {code or status}"


def _hint(code: str) -> str | None:
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
        return "Check the S3 credentials (AWS_* variables, AWS_PROFILE or the auth file)."
    if code == "NoSuchBucket":
        return "Check the bucket name and [s3-options.<bucket>] endpoint-url in --config."
    return None


def _is_urllib3(exc: Exception) -> bool:
    import urllib3.exceptions

    return isinstance(exc, urllib3.exceptions.HTTPError)


def _import_boto() -> tuple[Any, Any]:
    try:
        import boto3
        import boto3.session
        from botocore.config import Config
    except ImportError:
        raise UsageError(f"s3:// channels need boto3: {_INSTALL} (or pip install boto3)") from None
    return boto3, Config


def _auth_file_keys(auth_file: Path | None, bucket: str) -> dict[str, str]:
    """Session arguments from an ``S3Credentials`` entry for ``s3://bucket`` (else none)."""
    from portpack.net.auth import Credentials

    entry = Credentials.load(auth_file).entries.get(f"s3://{bucket}")
    if entry is None or entry.kind != "s3":
        return {}
    keys = {"aws_access_key_id": entry.username, "aws_secret_access_key": entry.password}
    if entry.token:
        keys["aws_session_token"] = entry.token
    return keys


# -- repodata mirrors for the solver ------------------------------------------------------


def mirror_channel(channel: str, subdirs: Sequence[str], network: Any, root: Path) -> Path:
    """Copy ``repodata.json`` of each of ``subdirs`` of ``channel`` under ``root``.

    A subdir the channel lacks gets an empty index (as conda treats a missing one);
    a channel with none of them is an error naming its URL.
    """
    bucket, prefix = split_url(channel.rstrip("/"))
    local = root / bucket / prefix
    access = S3Access(network)
    missing = []
    for subdir in dict.fromkeys(subdirs):
        url = (
            f"s3://{bucket}/{prefix}/{subdir}/repodata.json"
            if prefix
            else (f"s3://{bucket}/{subdir}/repodata.json")
        )
        target = local / subdir / "repodata.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _fetch_to(access, url, target)
        except FetchError as exc:
            if "no such object" not in str(exc):
                raise
            missing.append(url)
            _write_atomic(target, json.dumps({"info": {"subdir": subdir}, "packages": {}}))
    if len(missing) == len(set(subdirs)):
        raise FetchError(
            f"{channel} is not a conda channel: none of {', '.join(missing)} exists",
            url=channel,
            hint="Check the channel URL: its objects must be <subdir>/repodata.json.",
        )
    return local


def _fetch_to(access: S3Access, url: str, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            access.download(url, _Sink(fh), threading.Event())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Sink:
    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.written = 0

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.written += len(chunk)


def _write_atomic(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def restore_url(url: str, local: Path, channel: str) -> str:
    """The ``s3://`` URL of a record solved from mirror ``local`` of ``channel``."""
    parsed = urllib.parse.urlsplit(url)
    path = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme == "file" else Path(url)
    try:
        rest = path.relative_to(local)
    except ValueError:
        return url
    return f"{channel.rstrip('/')}/{rest.as_posix()}"
