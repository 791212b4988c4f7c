"""Background file writers: small in-memory files are created on worker threads.

Creating a file costs a handful of system calls (open, write, utime, close) that
release the GIL, so while the main thread parses the next tar members, workers
create the files already parsed.  Files travel in batches to keep the per-file
cost of handing them over to a list append.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

#: (absolute path, data, permission bits, fchmod needed, mtime or None, description)
Job = tuple[str, "bytes | memoryview", int, bool, "int | None", str]

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_file(
    path: str, data: bytes | memoryview, mode: int, chmod: bool, mtime: int | None
) -> None:
    """Create ``path`` (never following or replacing anything) holding ``data``."""
    fd = os.open(path, _OPEN_FLAGS, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if chmod:
            os.fchmod(fd, mode)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


class WriterPool:
    """Runs :func:`write_file` jobs on ``threads`` workers; errors surface on the caller."""

    def __init__(
        self,
        threads: int,
        on_error: Callable[[OSError, str, str], Exception],
        batch_files: int = 64,
        batch_bytes: int = 1 << 20,
        depth: int = 8,
    ) -> None:
        self._queue: queue.Queue[list[Job] | None] = queue.Queue(depth)
        self._on_error = on_error
        self._batch: list[Job] = []
        self._batch_bytes = 0
        self._limits = (batch_files, batch_bytes)
        self._error: Exception | None = None
        self._threads = [
            threading.Thread(target=self._work, name=f"portpack-writer-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        """Queue one file; raises the first error any worker met so far."""
        self._raise_error()
        self._batch.append(job)
        self._batch_bytes += len(job[1])
        if len(self._batch) >= self._limits[0] or self._batch_bytes >= self._limits[1]:
            self._send()

    def _send(self) -> None:
        if self._batch:
            self._queue.put(self._batch)
            self._batch, self._batch_bytes = [], 0

    def flush(self) -> None:
        """Wait until every queued file is written; raise the first error."""
        self._send()
        self._queue.join()
        self._raise_error()

    def close(self) -> None:
        """Stop the workers (after finishing or abandoning queued work)."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def abort(self) -> None:
        """Skip whatever is still queued, then stop the workers."""
        self._batch = []
        if self._error is None:
            self._error = InterruptedError("writing abandoned")
        self.close()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                if self._error is None:
                    for path, data, mode, chmod, mtime, what in batch:
                        try:
                            write_file(path, data, mode, chmod, mtime)
                        except OSError as exc:
                            self._error = self._on_error(exc, path, what)
                            break
            finally:
                self._queue.task_done()
        self._queue.task_done()
