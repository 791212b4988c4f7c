"""What a failed download attempt means: retried, or an error that says what to do.

Transient failures (connection errors, timeouts, truncated bodies, HTTP 408/425/429
and 5xx) become :class:`Retry`; HTTP 401/403/404/410, TLS verification failures and
checksum mismatches become a :class:`~portpack.errors.FetchError` with a hint.
"""

from __future__ import annotations

import email.utils
import http
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from portpack.errors import FetchError
from portpack.net.auth import redact
from portpack.net.config import FetchPolicy
from portpack.net.request import Download

_PHRASES = {code.value: code.phrase for code in http.HTTPStatus}


class Cancelled(Exception):
    """Another download failed or the run was interrupted."""


class Retry(Exception):
    """A failure worth another attempt."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Candidate:
    """One URL to try for a download: the original or a mirror."""

    request_url: str
    """What is requested (may carry a conda token)."""
    display_url: str
    """What is shown and stored (no credentials)."""
    header: str | None
    """``Authorization`` header value, if any."""
    credential: str | None
    """Where its credentials come from (for hints), if it has any."""
    key: str
    """The mirror or origin it belongs to (for preferring healthy ones)."""


def status_reason(response: Any) -> str:
    status = int(response.status)
    return f"HTTP {status} {response.reason or _PHRASES.get(status, '')}".rstrip()


def is_transient(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


def range_start(content_range: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes 100-199/200``."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    start = content_range[len("bytes ") :].partition("-")[0]
    return int(start) if start.isdigit() else None


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def reason(exc: BaseException, policy: FetchPolicy | None = None) -> str:
    """A short account of a network failure."""
    import urllib3.exceptions as u3

    text = str(exc) or type(exc).__name__
    if isinstance(exc, u3.EmptyPoolError) and policy is not None:
        return f"no free connection within {policy.pool_timeout:g} s"
    if isinstance(exc, u3.NewConnectionError | u3.NameResolutionError | ConnectionRefusedError):
        return f"cannot connect ({text})"  # before timeouts: urllib3 makes it a subclass
    if isinstance(exc, u3.TimeoutError | TimeoutError):
        return f"timed out ({text})"
    if isinstance(exc, u3.ProxyError):
        return f"the proxy failed ({text})"
    if isinstance(exc, u3.ProtocolError | ConnectionError):
        return f"the connection broke ({text})"
    return f"{type(exc).__name__}: {text}"


def is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def network_error(
    exc: BaseException, download: Download, cand: Candidate, secrets: list[str], policy: FetchPolicy
) -> FetchError | Retry:
    """What a urllib3 or OS error of an attempt means: a final error, or worth a retry."""
    import urllib3.exceptions

    if is_tls_failure(exc):
        host = urllib.parse.urlsplit(cand.display_url).hostname or cand.display_url
        return FetchError(
            f"cannot download {download.what}: the TLS certificate of {host} "
            f"cannot be verified ({redact(reason(exc), secrets)})",
            url=cand.display_url,
            hint="For a private certificate authority give its certificate with "
            f"--ca-bundle FILE (or SSL_CERT_FILE); to skip verification for this "
            f"host only, use --insecure-host {host}.",
        )
    if isinstance(exc, urllib3.exceptions.LocationValueError):
        return FetchError(f"cannot download {download.what}: unsupported URL", url=cand.display_url)
    return Retry(redact(reason(exc, policy=policy), secrets))


def http_error(download: Download, cand: Candidate, status: int, why: str) -> FetchError:
    """The error of a final HTTP status, with what to do about it."""
    host = urllib.parse.urlsplit(cand.display_url).hostname or cand.display_url
    message = f"cannot download {download.what}: {why} from {cand.display_url}"
    hint: str | None = None
    if status == 401:
        if cand.credential:
            hint = f"The server rejected the credentials from {cand.credential}: renew them."
        else:
            hint = (
                "The channel needs credentials: give an auth file (--auth-file or "
                f"$RATTLER_AUTH_FILE) with an entry for {host}, e.g. "
                f'{{"{host}": {{"BearerToken": "<token>"}}}} '
                f'(or "BasicHTTP": {{"username": ..., "password": ...}}, or "CondaToken").'
            )
    elif status == 403:
        hint = (
            f"The credentials from {cand.credential} do not grant access to this file."
            if cand.credential
            else f"{host} refuses access without credentials: add an entry for it to the "
            "auth file (--auth-file or $RATTLER_AUTH_FILE)."
        )
    elif status in (404, 410):
        hint = (
            "The channel no longer serves this file: lock again, or list a mirror that "
            "has it in the config file (--config, [mirrors])."
        )
    return FetchError(message, url=cand.display_url, hint=hint)


def gave_up(
    download: Download, cand: Candidate, failure: Retry, rounds: int, policy: FetchPolicy
) -> FetchError:
    """The error after the last attempt (too many, or past the retry deadline)."""
    why = f"gave up after {rounds} attempts"
    if rounds <= policy.retries:
        why += f": the next would start after the {policy.deadline:g} s retry deadline"
    return FetchError(
        f"cannot download {download.what} from {cand.display_url}: {failure.reason} ({why})",
        url=cand.display_url,
        hint="The network or the server keeps failing: run again later (what "
        "was downloaded stays in the cache), or add a mirror (--config).",
    )


def combined(
    download: Download, candidates: list[Candidate], dead: dict[Candidate, FetchError]
) -> FetchError:
    """One error for a download every mirror failed for."""
    if len(candidates) == 1:
        return dead[candidates[0]]
    first = dead[candidates[0]]
    reasons = "".join(f"\n  - {error.message}" for error in dead.values())
    return FetchError(
        f"cannot download {download.what} from any of its mirrors:{reasons}",
        url=first.url,
        hint=first.hint,
    )


def digest_error(download: Download, digest: Any, url: str) -> FetchError | None:
    """None if ``digest`` is what ``download`` expects (or it is not verified)."""
    expected = download.expected
    actual = digest.hexdigest()
    if actual == expected or (expected is None and not download.verified):
        return None
    return FetchError(
        f"{download.what} from {url} does not match the checksum in {download.checksum_from} "
        f"({digest.name} {actual}, expected {expected})",
        url=url,
        hint="The server's file differs from the locked one: lock again or fix the channel."
        if download.checksum_from == "the lock"
        else f"The server's file differs from what {download.checksum_from} says.",
    )
