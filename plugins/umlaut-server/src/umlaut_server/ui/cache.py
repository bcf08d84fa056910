"""A stale-while-revalidate cache for results that take seconds to compute and are
fine to show a little late (drift reports).

A page never waits for a computation: :meth:`Revalidating.get` answers at once with
what the cache holds (:class:`Cached`) and, when that is missing or older than
``ttl``, starts one computation of the key in a small pool of background threads.
Per key:

    ============================  ==============================  =================
    the cache holds               a page gets                     and it starts
    ============================  ==============================  =================
    nothing                       "computing"                     the computation
    a value younger than ``ttl``  the value                       nothing
    a value older than ``ttl``    the value, refreshing           one refresh
    a failure not shown yet       the failure (and any value)     nothing
    a failure shown once          any value, else "computing"     a retry
    a computation on its way      any value, else "computing"     nothing
    ============================  ==============================  =================

So however many pages ask, one computation per key runs or waits, and the page the
"computing" state reloads into tells what went wrong. A value is never dropped for
being stale, only for being the least recently asked of ``size``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from umlaut_core.clock import utcnow

__all__ = ["Cached", "Revalidating"]

log = logging.getLogger("umlaut.ui")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """What the cache has for a key at the moment it was asked."""

    #: The last value computed, None until the first computation succeeds.
    value: T | None
    computed_at: dt.datetime | None
    #: The last computation failed (a value, if any, is the one before it).
    error: BaseException | None
    #: A computation of this key is running or waiting for a thread.
    computing: bool
    #: The value is older than the cache's ``ttl`` (a refresh is on its way).
    stale: bool


class _Entry(Generic[T]):
    __slots__ = ("at", "computed_at", "error", "running", "seen", "value")

    def __init__(self) -> None:
        self.value: T | None = None
        self.computed_at: dt.datetime | None = None
        self.at = 0.0  # time.monotonic() of the value
        self.error: BaseException | None = None
        self.seen = False  # the error was shown
        self.running = False


class Revalidating(Generic[T]):
    """The cache described above (thread-safe); ``workers`` computations at a time."""

    def __init__(self, ttl: float, *, size: int = 128, workers: int = 2) -> None:
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._items: OrderedDict[Hashable, _Entry[T]] = OrderedDict()
        self._busy = 0  # computations submitted and not yet done, warm-ups included
        self._closed = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="umlaut-ui-report")

    def get(self, key: Hashable, make: Callable[[], T]) -> Cached[T]:
        """What is kept for ``key``; starts ``make`` in the background when that is
        nothing, stale, or a failure already shown."""
        with self._lock:
            entry = self._entry(key)
            start = self._due(entry)
            answer = self._snapshot(entry, computing=entry.running or start)
            if entry.error is not None and not start:
                entry.seen = True
            if start:
                entry.running = True
                self._busy += 1
        if start and not self._submit(self._run, entry, make):
            with self._lock:
                entry.running = False
        return answer

    def warm(self, jobs: Iterable[tuple[Hashable, Callable[[], T]]]) -> None:
        """Compute ``jobs`` one after the other in one background thread, each unless
        it is fresh or computing already (pages asking meanwhile see it computing);
        the first failure stops them (logged, and kept for its page to show). The
        iterable is read in that thread, so listing what to warm costs no caller."""
        with self._lock:
            self._busy += 1
        self._submit(self._warm, jobs)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no computation runs or waits; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        """Start no more computations; those waiting are dropped, a running one ends
        on its own (it cannot be interrupted)."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- inside ----------------------------------------------------------------------

    def _entry(self, key: Hashable) -> _Entry[T]:
        entry = self._items.get(key)
        if entry is None:
            entry = self._items[key] = _Entry()
            while len(self._items) > self.size:
                self._items.popitem(last=False)  # a running one finishes unseen
        self._items.move_to_end(key)
        return entry

    def _due(self, entry: _Entry[T]) -> bool:
        if entry.running or self._closed:
            return False
        if entry.error is not None:
            return entry.seen
        return entry.computed_at is None or time.monotonic() - entry.at >= self.ttl

    def _snapshot(self, entry: _Entry[T], *, computing: bool) -> Cached[T]:
        stale = entry.computed_at is not None and time.monotonic() - entry.at >= self.ttl
        return Cached(entry.value, entry.computed_at, entry.error, computing, stale)

    def _submit(self, fn: Callable[..., object], *args: object) -> bool:
        try:
            future = self._pool.submit(fn, *args)
        except RuntimeError:  # closed meanwhile: it will not run
            self._done(None)
            return False
        future.add_done_callback(self._done)  # also called when close() drops it
        return True

    def _done(self, _: object) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def _run(self, entry: _Entry[T], make: Callable[[], T]) -> BaseException | None:
        try:
            value = make()
        except Exception as exc:  # kept for the page to show; it logs what it shows
            with self._lock:
                entry.error, entry.seen, entry.running = exc, False, False
            return exc
        with self._lock:
            entry.value, entry.computed_at, entry.at = value, utcnow(), time.monotonic()
            entry.error, entry.running = None, False
        return None

    def _warm(self, jobs: Iterable[tuple[Hashable, Callable[[], T]]]) -> None:
        try:
            for key, make in jobs:
                with self._lock:
                    if self._closed:
                        return
                    entry = self._entry(key)
                    if not self._due(entry):
                        continue
                    entry.running = True
                failed = self._run(entry, make)
                if failed is not None:  # the store is likely down for the others too
                    raise failed
        except Exception as exc:  # the pages compute what is missing when asked
            log.warning("warming the drift reports stopped: %s: %s", type(exc).__name__, exc)
