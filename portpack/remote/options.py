"""How a remote archive is reached: the one options object of remote/ (standard library).

:class:`SourceOptions` is what every client of an archive URL or a registry takes
(:func:`~portpack.remote.http.open_url`,
:func:`~portpack.remote.http_segments.open_http_segments`,
:func:`~portpack.remote.oci_archive.open_artifact`,
:func:`~portpack.remote.oci_archive.push_archive`); the unpacker, ``inspect``,
``diff`` and ``push`` build it once from their keywords.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from portpack.errors import UsageError

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for a connection, and for each read."""
DEFAULT_RETRIES = 5
"""Failed attempts in a row (no byte arrived in between) that are retried."""
DEFAULT_BACKOFF = 0.5
"""Seconds before the first retry; doubled per failure in a row (capped)."""

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class SourceOptions:
    """How to reach a remote archive (ignored for files and streams); checked when made.

    ``timeout``, ``retries`` and ``backoff`` are those of an ``http(s)://`` URL; a
    registry's client keeps its own (:mod:`portpack.remote._http`).
    """

    ca_bundle: StrPath | None = None
    """Trust only this CA bundle (PEM) instead of the system store."""
    auth_file: StrPath | None = None
    """Credentials: rattler's JSON keyed by host, or a docker/containers auth file."""
    netrc_file: StrPath | None = None
    """A ``.netrc`` for ``http(s)://`` (default: ``$NETRC`` or ``~/.netrc``)."""
    insecure_hosts: Sequence[str] = ()
    """Hosts (``host`` or ``host:port``) whose TLS certificate is not verified; a
    registry there may also be spoken to over plain HTTP.  Kept as a tuple."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds to wait for a connection, and for each read."""
    retries: int = DEFAULT_RETRIES
    """Failed attempts in a row (no byte arrived in between) that are retried."""
    backoff: float = DEFAULT_BACKOFF
    """Seconds before the first retry; doubled per failure in a row (capped)."""

    def __post_init__(self) -> None:
        hosts = self.insecure_hosts
        # One host given as a string is that host, not its characters.
        hosts = (hosts,) if isinstance(hosts, str) else tuple(hosts)
        object.__setattr__(self, "insecure_hosts", hosts)
        if not (0 < self.timeout < math.inf and 0 <= self.backoff < math.inf):
            raise UsageError(
                f"timeout must be a positive and backoff a non-negative finite number of "
                f"seconds (got timeout={self.timeout!r}, backoff={self.backoff!r})"
            )
        if self.retries < 0:
            raise UsageError(f"retries must not be negative (got {self.retries!r})")

    @property
    def ca_file(self) -> str | None:
        """:attr:`ca_bundle` as a string (what the registry client takes)."""
        return None if self.ca_bundle is None else os.fspath(self.ca_bundle)
