"""Worker threads for a set of downloads: bounded waits, the first error stops them all."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from portpack.errors import FetchError
from portpack.net.failures import Cancelled

T = TypeVar("T")
R = TypeVar("R")

#: How long a failed or interrupted run waits for its other downloads to stop.
GRACE = 5.0


class _Run(Generic[T, R]):
    """Threads taking ``items`` in ``order``; the first error sets ``stop``."""

    def __init__(
        self,
        items: Sequence[T],
        one: Callable[[T], R],
        workers: int,
        stop: threading.Event,
        abort: Callable[[], None] | None,
        order: list[int],
    ) -> None:
        self.items = items
        self.one = one
        self.workers = workers
        self.stop_event = stop
        self.abort = abort
        self.results: list[R | None] = [None] * len(items)
        self.errors: list[BaseException] = []
        self.todo = iter(order)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.running = workers

    def work(self) -> None:
        try:
            while not self.stop_event.is_set():
                with self.lock:
                    index = next(self.todo, None)
                if index is None:
                    return
                try:
                    self.results[index] = self.one(self.items[index])
                except Cancelled:
                    return
                except BaseException as exc:
                    with self.lock:
                        self.errors.append(exc)
                    self.stop_event.set()
                    return
        finally:
            with self.lock:
                self.running -= 1
                if self.running == 0:
                    self.done.set()

    def stop(self) -> None:
        # Wake the workers: waits between attempts end on the event, and reads in
        # progress fail at once (abort); then give them a bounded time to clean up.
        self.stop_event.set()
        if self.abort is not None:
            self.abort()
        self.done.wait(GRACE)

    def run(self) -> list[R]:
        for number in range(self.workers):
            # Daemon threads: a worker that does not stop within the grace time cannot
            # keep the process alive.
            threading.Thread(target=self.work, name=f"portpack-fetch-{number}", daemon=True).start()
        try:
            while not self.done.wait(0.25):
                if self.stop_event.is_set():
                    self.stop()
                    break
        except BaseException:
            self.stop()
            raise
        if self.errors:
            raise self.errors[0]
        if self.stop_event.is_set():  # pragma: no cover - only set by errors above
            raise FetchError("fetching was interrupted")
        return [r for r in self.results if r is not None]


def run_parallel(
    items: Sequence[T],
    one: Callable[[T], R],
    *,
    workers: int,
    stop: threading.Event,
    abort: Callable[[], None] | None = None,
    key: Callable[[T], int] | None = None,
) -> list[R]:
    """``[one(item) for item in items]`` on ``workers`` threads, results in order.

    Items are taken sorted by ``key`` (largest first, for downloads: the small ones
    fill the gaps at the end, so no connection is left with a big download after the
    others finished).  The first exception stops the others (``stop`` is set,
    ``abort`` called, at most :data:`GRACE` seconds waited) and is raised; one that
    raises :class:`~portpack.net.failures.Cancelled` just ends its worker.
    """
    if workers <= 0 or not items:
        return []
    order = sorted(range(len(items)), key=(lambda i: key(items[i])) if key else None)
    return _Run(items, one, workers, stop, abort, order).run()
