"""Delayed calls on one long-lived thread per process (a thread started per call costs about a
millisecond of the caller's time, which hot paths such as flow runs cannot spare)."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T", bound=threading.Thread)


class Delayed:
    """A call scheduled by call_later; `cancel()` before it runs and it never will."""

    def __init__(self, due: float, function: Callable[[], None]):
        self.due = due
        self.function = function
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _TimerThread(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="engine-timers", daemon=True)
        self._queue: list[tuple[float, int, Delayed]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()

    def schedule(self, call: Delayed) -> None:
        with self._changed:
            heapq.heappush(self._queue, (call.due, next(self._order), call))
            self._changed.notify()

    def run(self) -> None:
        while True:
            with self._changed:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    self._changed.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                _, _, call = heapq.heappop(self._queue)
            if call.cancelled:
                continue
            try:
                call.function()
            except Exception:  # noqa: BLE001 - one failed call must not stop the others
                log.exception("delayed call %r failed", call.function)


class ProcessThread(Generic[T]):
    """One thread of a kind per process, started on first use, and again in a forked child (a
    fork copies the parent's thread objects, not the threads)."""

    def __init__(self, factory: Callable[[], T]):
        self.factory = factory
        self._current: tuple[int, T] | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """This process's thread, started if it is not running."""
        with self._lock:
            current = self._current
            if current is None or current[0] != os.getpid() or not current[1].is_alive():
                thread = self.factory()
                thread.start()
                current = self._current = (os.getpid(), thread)
            return current[1]


_timer_thread = ProcessThread(_TimerThread)


def call_later(delay_seconds: float, function: Callable[[], None]) -> Delayed:
    """Run function() on this process's timer thread after delay_seconds (unless cancelled)."""
    call = Delayed(time.monotonic() + delay_seconds, function)
    _timer_thread.get().schedule(call)
    return call
