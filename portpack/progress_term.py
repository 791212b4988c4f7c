"""A progress display for terminals, used by the ``portpack`` command line.

The library never prints: it calls a :class:`~portpack.progress.Reporter`.  This one
draws one status line on standard error (packages done / total, bytes downloaded,
download rate) when standard error is a terminal, and stays silent otherwise or
when quiet.  Warnings are always printed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import TextIO

from ._cli_common import StderrReporter

_CLEAR = "\r\x1b[2K"
#: Seconds of history the rate is computed over.
_RATE_WINDOW = 3.0


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1024, as download tools show)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns


class TerminalReporter(StderrReporter):
    """Draws fetch progress on a terminal; safe to call from several threads."""

    def __init__(
        self, quiet: bool = False, stream: TextIO | None = None, interval: float = 0.1
    ) -> None:
        super().__init__(quiet)
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = not quiet and bool(isatty and isatty())
        self.interval = interval
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._cached = 0
        self._bytes = 0
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._line = False
        self._samples: deque[tuple[float, int]] = deque()

    # -- Reporter events ------------------------------------------------------------

    def on_fetch_start(self, total: int, total_bytes: int | None) -> None:
        with self._lock:
            self._total = total
            self._done = self._cached = self._bytes = 0
            self._started = time.monotonic()
            self._samples.clear()
            self._draw(force=True)

    def on_download_progress(self, name: str, nbytes: int) -> None:
        with self._lock:
            self._bytes += nbytes
            self._draw()

    def on_download_complete(self, name: str, cached: bool) -> None:
        with self._lock:
            self._done += 1
            self._cached += cached
            self._draw()

    def on_download_retry(self, name: str, reason: str, delay: float) -> None:
        self._print(f"portpack: {name}: {reason}; retrying in {delay:.1f} s")

    def on_fetch_complete(self) -> None:
        with self._lock:
            if not self.enabled:
                return
            elapsed = max(time.monotonic() - self._started, 1e-9)
            fresh = self._done - self._cached
            self.stream.write(
                f"{_CLEAR}Fetched {self._done} packages ({self._cached} from the cache, "
                f"{fresh} downloaded: {human_bytes(self._bytes)} in {elapsed:.1f} s, "
                f"{human_bytes(self._bytes / elapsed)}/s)\n"
            )
            self.stream.flush()
            self._line = False

    def warning(self, message: str) -> None:
        self._print(f"portpack: warning: {message}", always=True)

    # -- drawing --------------------------------------------------------------------

    def _print(self, text: str, always: bool = False) -> None:
        with self._lock:
            if not (self.enabled or always):
                return
            if self._line:
                self.stream.write(_CLEAR)
                self._line = False
            self.stream.write(text + "\n")
            if self.enabled:
                self._draw(force=True)
            self.stream.flush()

    def _rate(self, now: float) -> float:
        self._samples.append((now, self._bytes))
        while len(self._samples) > 2 and now - self._samples[0][0] > _RATE_WINDOW:
            self._samples.popleft()
        first_time, first_bytes = self._samples[0]
        if now - first_time <= 0:
            return 0.0
        return max(0.0, (self._bytes - first_bytes) / (now - first_time))

    def _draw(self, force: bool = False) -> None:
        if not self.enabled or not self._total:
            return
        now = time.monotonic()
        rate = self._rate(now)
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        width = len(str(self._total))
        line = (
            f"Fetching [{self._done:>{width}}/{self._total}] "
            f"{human_bytes(self._bytes)}  {human_bytes(rate)}/s"
        )
        if self._cached:
            line += f"  ({self._cached} cached)"
        self.stream.write(_CLEAR + line)
        self.stream.flush()
        self._line = True
