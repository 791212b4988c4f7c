"""Progress reporting: the library reports through a :class:`Reporter`, it never prints."""

from __future__ import annotations

from collections.abc import Callable


class Reporter:
    """Receives progress events; the default implementation ignores them all."""

    def on_fetch_start(self, total: int, total_bytes: int | None) -> None:
        """Fetching ``total`` packages (``total_bytes`` when every size is known) starts."""

    def on_fetch_complete(self) -> None:
        """Every package is in the cache."""

    def on_download_start(self, name: str, size: int | None) -> None:
        """A package download starts (``size`` in bytes when known)."""

    def on_download_progress(self, name: str, nbytes: int) -> None:
        """``nbytes`` more bytes of a package arrived (negative: a download restarted)."""

    def on_download_retry(self, name: str, reason: str, delay: float) -> None:
        """A download failed for a reason worth retrying; it is retried in ``delay`` s.

        ``reason`` names the URL with its credentials masked.
        """

    def on_download_complete(self, name: str, cached: bool) -> None:
        """A package is in the cache (``cached``: it was there already)."""

    def on_package_start(self, name: str, index: int, total: int) -> None:
        """Packing or unpacking of one package starts."""

    def on_package_complete(self, name: str) -> None:
        """Packing or unpacking of one package is done."""

    def on_transfer_start(
        self,
        what: str,
        total: int | None,
        total_bytes: int | None,
        position: Callable[[], int] | None = None,
    ) -> None:
        """A stage that moves bytes starts: ``what`` is ``"Writing"`` (pack writes the
        archive) or ``"Unpacking"``; ``total`` packages and ``total_bytes`` bytes when
        known.  ``position`` (when given) returns the bytes done so far and may be
        called from any thread at any time; otherwise :meth:`on_transfer_progress`
        reports them.  :meth:`on_package_complete` counts the packages of an unpack.
        """

    def on_transfer_progress(self, nbytes: int, packages: int = 0) -> None:
        """``nbytes`` more bytes (and ``packages`` more packages) of the stage are done."""

    def on_transfer_complete(self) -> None:
        """The stage is over (it succeeded, failed or was interrupted)."""

    def warning(self, message: str) -> None:
        """Something the user should know about that does not stop the work."""


class RecordingReporter(Reporter):
    """Keeps warnings in a list (handy for library users and tests)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)
