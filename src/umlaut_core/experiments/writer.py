"""The buffer between a training loop and the store: logging costs microseconds.

``log_metric`` appends a tuple to a deque and returns; a background thread (one per
facade, started on first use) drains the deque every ``interval_s``, folds runs of
metric tuples into one :class:`~.writes.MetricsLogged` per run, adds a heartbeat for
each open run every ``HEARTBEAT_S``, and hands the batch to
``deliver``: the experiment store itself for embedded stores, the durable spool for
remote ones. A batch ``deliver`` refuses is kept, in order, and retried with backoff;
the failure is logged once per outage and never reaches the training code. Ending a
run, ``Umlaut.flush`` and interpreter exit flush with a bound.

What a killed process loses is what it logged in its last ``interval_s`` (0.2 s by
default): everything older already reached the store or the spool.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from ..clock import utcnow
from .records import MetricPoint
from .writes import Heartbeat, MetricsLogged, RunWrite

__all__ = ["TrainingWriter"]

log = logging.getLogger("umlaut.experiments")
#: How often a run that is still open says it is alive, at most.
HEARTBEAT_S = 30.0
_live: weakref.WeakSet[TrainingWriter] = weakref.WeakSet()
#: A metric point on its way: (run id, key, value, step, timestamp ms, point id).
MetricTuple = tuple[str, str, float, int, int, int]


class TrainingWriter:
    """Buffers one facade's training-run writes and delivers them in order."""

    def __init__(
        self,
        deliver: Callable[[list[RunWrite]], None],
        *,
        interval_s: float = 0.2,
        wake_at: int = 10_000,
        exit_timeout_s: float = 5.0,
    ) -> None:
        self._deliver = deliver
        self._interval = interval_s
        self._wake_at = wake_at
        self._exit_timeout = exit_timeout_s
        self._queue: deque[RunWrite | MetricTuple] = deque()
        #: A batch delivery refused, retried before anything newer.
        self._retry: list[RunWrite] = []
        self._lock = threading.Lock()  # one drain-and-deliver at a time keeps order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: Whether this process's flusher runs (reset in a forked child, which lacks
        #: the thread): checked per point instead of os.getpid(), a system call.
        self._running = False
        self._beats: dict[str, float] = {}
        self._failing_since: float | None = None
        # Point ids: a random 31-bit prefix per writer and a counter, so two processes
        # logging to one run never collide and a replay is recognised.
        self._ids = itertools.count(int.from_bytes(os.urandom(4), "big") >> 1 << 32)
        _live.add(self)

    # -- the hot path ------------------------------------------------------------------

    def point_id(self) -> int:
        return next(self._ids)

    def put(self, item: RunWrite | MetricTuple) -> None:
        self._queue.append(item)
        if not self._running:  # first use, or a forked child without the flusher
            self._start()
        elif len(self._queue) >= self._wake_at:
            self._wake.set()

    # -- delivery ----------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked child starts its own flusher
            self._running = True
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, daemon=True, name="umlaut-training-writer"
            )
            self._thread.start()

    def _loop(self) -> None:
        backoff = self._interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            ok = self._drain()
            backoff = self._interval if ok else min(max(backoff * 2, 0.5), 10.0)

    def _batch(self) -> list[RunWrite]:
        """Everything queued, as writes in order (metric tuples folded per run)."""
        out: list[RunWrite] = []
        points: list[MetricPoint] = []
        run_id: str | None = None
        queue = self._queue
        for _ in range(len(queue)):
            item = queue.popleft()
            if type(item) is tuple:
                if item[0] != run_id and points:
                    out.append(MetricsLogged(run_id, tuple(points)))  # type: ignore[arg-type]
                    points = []
                run_id = item[0]
                points.append(MetricPoint(*item[1:]))
                continue
            if points:
                out.append(MetricsLogged(run_id, tuple(points)))  # type: ignore[arg-type]
                points, run_id = [], None
            out.append(item)  # type: ignore[arg-type]
        if points:
            out.append(MetricsLogged(run_id, tuple(points)))  # type: ignore[arg-type]
        # Every open run says it is alive now and then, logging or not: a long step
        # that logs nothing must not look dead to a reader on another host.
        now, wall = time.monotonic(), utcnow()
        for rid, last in list(self._beats.items()):
            if now - last >= HEARTBEAT_S:
                self._beats[rid] = now
                out.append(Heartbeat(rid, wall))
        return out

    def _drain(self) -> bool:
        """Deliver what is queued (and any batch waiting for a retry); False when
        delivery failed and the writes wait for the next attempt."""
        with self._lock:
            batch = self._retry + self._batch()
            if not batch:
                return True
            try:
                self._deliver(batch)
            except Exception as exc:  # the store: keep the writes and try again later
                self._retry = batch
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning(
                        "training-run writes are waiting: the store refused them (%s); "
                        "training goes on and they are retried",
                        _describe(exc),
                    )
                return False
            self._retry = []
            if self._failing_since is not None:
                log.warning(
                    "training-run writes delivered again after %.0f s",
                    time.monotonic() - self._failing_since,
                )
                self._failing_since = None
            return True

    def opened(self, run_id: str) -> None:
        """A run is open in this process: beat for it (its start counts as a beat)."""
        self._beats[run_id] = time.monotonic()

    def forget(self, run_id: str) -> None:
        """A run ended: no more heartbeats for it."""
        self._beats.pop(run_id, None)

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything queued so far; False if it could not within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            if self._drain():
                return True
            if deadline is not None and time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    @property
    def failing(self) -> bool:
        """Whether the last delivery failed (the writes wait for a retry)."""
        return self._failing_since is not None

    def pending(self) -> int:
        """How many writes and points wait in this process."""
        return len(self._queue) + len(self._retry)

    def close(self, timeout: float | None = None) -> bool:
        """Flush (waiting up to ``timeout``, default ``exit_timeout_s``) and stop."""
        done = self.flush(self._exit_timeout if timeout is None else timeout)
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if (
            thread is not None
            and self._pid == os.getpid()
            and thread is not threading.current_thread()
        ):
            thread.join(timeout=2)
        if not done:
            log.error(
                "%d training-run writes could not be delivered before closing and are lost",
                self.pending(),
            )
        _live.discard(self)
        return done


def _describe(exc: BaseException) -> str:
    from ..shipping import describe_failure

    return describe_failure(exc)


def _forget_flushers_after_fork() -> None:
    for writer in list(_live):
        writer._running = False


os.register_at_fork(after_in_child=_forget_flushers_after_fork)


@atexit.register
def _flush_at_exit() -> None:
    for writer in list(_live):
        with contextlib.suppress(Exception):  # exit must not fail
            writer.close()
