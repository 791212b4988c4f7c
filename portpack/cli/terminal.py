"""A progress display for terminals, used by both command lines (standard library only).

The library never prints: it calls a :class:`~portpack.progress.Reporter`.  This one
draws one status line on standard error when standard error is a terminal, and stays
silent otherwise or when quiet: while fetching (packages done / total, bytes
downloaded, download rate), and while pack writes the archive or unpack installs it
(packages and bytes done / total, rate, time left).  Warnings are always printed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from portpack.cli.common import StderrReporter
from portpack.units import human_bytes

_CLEAR = "\r\x1b[2K"
#: Seconds of history the rate is computed over.
_RATE_WINDOW = 3.0


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
        # The stage that moves bytes (see on_transfer_start); None while fetching.
        self._what: str | None = None
        self._t_total: int | None = None
        self._t_bytes_total: int | None = None
        self._t_done = 0
        self._t_bytes = 0
        self._position: Callable[[], int] | None = None
        self._ticker: threading.Thread | None = None
        self._ticker_stop = threading.Event()

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

    def on_transfer_start(
        self,
        what: str,
        total: int | None,
        total_bytes: int | None,
        position: Callable[[], int] | None = None,
    ) -> None:
        with self._lock:
            self._what, self._t_total, self._t_bytes_total = what, total, total_bytes
            self._t_done = self._t_bytes = 0
            self._position = position
            self._started = time.monotonic()
            self._samples.clear()
            self._draw(force=True)
        if self.enabled and position is not None and self._ticker is None:
            # The work reports no bytes itself (its loop stays cheap): a ticker draws.
            self._ticker_stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="portpack-progress")
            self._ticker.daemon = True
            self._ticker.start()

    def on_transfer_progress(self, nbytes: int, packages: int = 0) -> None:
        with self._lock:
            self._t_bytes += nbytes
            self._t_done += packages
            self._draw()

    def on_package_complete(self, name: str) -> None:
        if self._what is not None:
            with self._lock:
                self._t_done += 1
                self._draw()

    def on_transfer_complete(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            self._ticker_stop.set()
            ticker.join(timeout=5)
        with self._lock:
            self._what = None
            self._position = None
            if self._line:
                self.stream.write(_CLEAR)
                self.stream.flush()
                self._line = False

    def _tick(self) -> None:
        while not self._ticker_stop.wait(self.interval):
            with self._lock:
                self._draw(force=True)

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

    def _rate(self, now: float, done: int | None = None) -> float:
        done = self._bytes if done is None else done
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > _RATE_WINDOW:
            self._samples.popleft()
        first_time, first_bytes = self._samples[0]
        if now - first_time <= 0:
            return 0.0
        return max(0.0, (done - first_bytes) / (now - first_time))

    def _draw(self, force: bool = False) -> None:
        if self._what is not None:
            self._draw_transfer(force)
            return
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

    def _draw_transfer(self, force: bool) -> None:
        if not self.enabled or self._what is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        done = self._position() if self._position is not None else self._t_bytes
        total = self._t_bytes_total
        if total is not None:
            done = min(done, total)
        rate = self._rate(now, done)
        line = self._what
        if self._t_total:
            width = len(str(self._t_total))
            line += f" [{min(self._t_done, self._t_total):>{width}}/{self._t_total}]"
        line += f" {human_bytes(done)}"
        if total:
            line += f" / {human_bytes(total)}"
        line += f"  {human_bytes(rate)}/s"
        if total and rate > 0 and now - self._started >= 1.0:
            line += f"  ETA {format_eta((total - done) / rate)}"
        self.stream.write(_CLEAR + line)
        self.stream.flush()
        self._line = True


def format_eta(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
