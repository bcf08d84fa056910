"""Moving spooled audit records to the tracker (and training-run writes to the
experiment store), from a thread or a process of its own.

One :class:`Shipper` loop serves both. In a thread it shares the interpreter (and its
GIL) with the code calling ``run_model``: while a slow remote tracker keeps it busy,
every call waits its turn for the GIL, and the call latency spooling promises is lost.
So for trackers that can be reopened from their URI, :class:`~umlaut_core.delivery.
Delivery` runs :func:`main` in a child process instead: the caller's interpreter only
appends to the spool.

The child reads one JSON line of settings on stdin (not argv: a tracking URI may hold
a password, and argv is visible to every user of the machine), answers ``ready`` on
stdout once its tracker is open, treats any later byte on stdin as "records are
waiting", and leaves after its current batch when stdin closes: when its parent closes
the facade, exits, or dies. It ignores SIGINT, so a Ctrl-C meant for the parent does
not cut a batch in half.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from .exceptions import UmlautError
from .protocols import Tracker
from .redaction import redact
from .spool import Spool

__all__ = ["Shipper", "describe_failure"]

log = logging.getLogger("umlaut.delivery")
#: Largest batch claimed at once; batches shrink towards ~1 s of work for slow trackers
#: so that a stopping shipper is never long in the middle of one.
MAX_BATCH = 500
#: How long the shipper waits after a short batch for more records to gather.
LINGER_S = 0.005
_BATCH_SECONDS = 1.0
#: How long a training-run write waits for its run to reach the store before it is
#: dropped (see Shipper._ship_writes).
ORPHAN_AFTER_S = 600.0


def describe_failure(exc: BaseException) -> str:
    # Only our own errors are known to carry no secrets in their message (they are
    # redacted where raised); of anything else only the type is kept.
    if isinstance(exc, UmlautError):
        return redact(f"{type(exc).__name__}: {exc}")
    return type(exc).__name__


class Shipper:
    """Claims the oldest records of a spool and writes them to a tracker, in order."""

    def __init__(
        self,
        spool: Spool,
        tracker: Tracker | None,
        *,
        warn_after_s: float = 60.0,
        experiments: Callable[[], Any] | None = None,
    ) -> None:
        """``tracker`` may be set later (a shipper process opens it after the spool);
        ``experiments`` returns the experiment store for training-run writes (opened
        through the registry from the tracker when not given)."""
        self.spool, self.tracker = spool, tracker
        self._experiments = experiments
        self.batch = MAX_BATCH
        self._warn_after = warn_after_s
        self._down_since: float | None = None
        self._last_warning = 0.0

    def ship_batch(self) -> int:
        """Ship one batch; how many records it held (0: nothing was waiting).

        A failed batch is given back to the spool for a retry and the tracker's error
        is raised.
        """
        assert self.tracker is not None
        batch = self.spool.claim(self.batch)
        if not batch:
            return 0
        ids = batch.ids
        started = time.monotonic()
        try:
            if batch.records:
                self.tracker.record_runs(batch.records)
            if batch.writes:
                ids = self._ship_writes(batch.writes, ids)
        except BaseException:
            self.spool.release(ids)
            raise
        self.spool.remove(ids)
        rate = len(ids) / max(time.monotonic() - started, 1e-6)
        self.batch = max(1, min(MAX_BATCH, int(rate * _BATCH_SECONDS)))
        if self._down_since is not None:
            self._recovered()
        return len(ids)

    def _ship_writes(self, rows: list[tuple[str, str, float]], ids: list[str]) -> list[str]:
        """Apply training-run writes; the ids to remove from the spool.

        A write to a run the store does not hold yet is retried (several shippers may
        deliver one run's writes out of order), but not forever: one still orphaned
        after ``ORPHAN_AFTER_S`` is dropped with an error in the log, so it cannot
        hold every audit record behind it. A write the store refuses outright (an
        ``UmlautError`` other than a backend outage) is dropped the same way.
        """
        from .exceptions import BackendError, TrainingRunNotFoundError
        from .experiments.writes import from_json

        store = self._experiment_store()
        writes = [from_json(body) for _, body, _ in rows]
        try:
            store.write(writes)
            return ids
        except TrainingRunNotFoundError:
            if time.time() - rows[0][2] < ORPHAN_AFTER_S:
                raise
            orphans = 0
            for write in writes:  # one at a time, so only the orphans are lost
                try:
                    store.write([write])
                except TrainingRunNotFoundError:
                    orphans += 1
            log.error(
                "dropped %d training-run writes for %s: their run never reached the store",
                orphans,
                redact(self.spool.tracker_uri),
            )
        except BackendError:
            raise
        except UmlautError as exc:
            log.error(
                "dropping %d training-run writes the store refused: %s",
                len(rows),
                describe_failure(exc),
            )
        return ids

    def _experiment_store(self) -> Any:
        if self._experiments is None:
            from ._manager import get_plugin_manager
            from .registry import BackendRegistry

            assert self.tracker is not None
            store = BackendRegistry.from_plugins(get_plugin_manager()).open_experiment_store(
                self.tracker
            )
            self._experiments = lambda: store
        return self._experiments()

    def run(self, wait: Callable[[float], bool], *, until_empty: bool = False) -> None:
        """Ship until ``wait(seconds)`` returns False (it sleeps up to ``seconds``, or
        less when woken, and says whether to go on), or, with ``until_empty``, until
        a claim finds nothing left."""
        backoff = 0.1
        while True:
            try:
                shipped = self.ship_batch()
            except Exception as exc:  # the tracker or the spool file: keep trying
                self.failed(exc)
                if not wait(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if shipped and not until_empty and shipped < self.batch:
                # Records arrive one call at a time: gather a few milliseconds of them
                # rather than paying three transactions per record.
                time.sleep(LINGER_S)
            if (until_empty and not shipped) or not wait(0.0 if shipped else 1.0):
                return

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_since = self._down_since or now
        error = describe_failure(exc)
        with contextlib.suppress(Exception):  # a failing spool file must not stop the loop
            self.spool.note_failure(error)
        down_for = now - self._down_since
        # Warn once past the threshold, then at most every 10 thresholds: an outage of
        # hours must not write thousands of lines.
        if down_for >= self._warn_after and now - self._last_warning >= 10 * self._warn_after:
            self._last_warning = now
            log.warning(
                "audit records for %s are waiting in %s: the tracker has been unreachable "
                "for %.0f s (%s); calls keep working and records are kept",
                redact(self.spool.tracker_uri),
                self.spool.path,
                down_for,
                error,
            )

    def _recovered(self) -> None:
        assert self._down_since is not None
        log.warning(
            "audit delivery to %s recovered after %.0f s",
            redact(self.spool.tracker_uri),
            time.monotonic() - self._down_since,
        )
        self._down_since = None
        self.spool.note_recovery()


def _stdin_waiter(fd: int) -> Callable[[float], bool]:
    def wait(seconds: float) -> bool:
        readable, _, _ = select.select([fd], [], [], seconds)
        if readable:
            try:
                data = os.read(fd, 65536)  # every wake-up byte sent so far
            except BlockingIOError:
                return True
            if not data:
                return False  # the parent closed the pipe or is gone
        return True

    return wait


def _read_settings(fd: int) -> dict[str, Any]:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise SystemExit(0)  # the parent left before sending anything
        line += chunk
    settings: dict[str, Any] = json.loads(line)
    return settings


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s umlaut-shipper[%(process)d] %(levelname)s %(message)s",
    )
    fd = sys.stdin.fileno()
    settings = _read_settings(fd)
    os.set_blocking(fd, False)
    wait = _stdin_waiter(fd)
    spool = Spool(
        settings["spool_path"], tracker_uri=settings["tracker_uri"], durable=settings["durable"]
    )
    shipper = Shipper(spool, None, warn_after_s=settings["warn_after_s"])
    tracker = _open_tracker(settings, shipper, wait)
    if tracker is None:
        return 0
    try:
        if redact(tracker.uri) != spool.tracker_uri:  # the spool keeps only the redacted URI
            log.error("opened %s, not %s: not shipping", redact(tracker.uri), spool.tracker_uri)
            return 1
        # What is alive now (the tracker's libraries: MLflow alone is several hundred
        # thousand objects) lives as long as this process. Frozen, it is left out of
        # full collections, which otherwise paused shipping 75-100 ms every few batches.
        gc.freeze()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        shipper.tracker = tracker
        shipper.run(wait)
        spool.close()
    finally:
        tracker.close()
    return 0


def _open_tracker(
    settings: dict[str, Any], shipper: Shipper, wait: Callable[[float], bool]
) -> Tracker | None:
    """The tracker, once reachable (None: the parent left first). The parent may have
    opened it just before an outage: an unreachable tracker is waited for, like a
    failing batch; any other error ends this process and the parent ships itself."""
    from ._manager import get_plugin_manager
    from .exceptions import BackendError
    from .registry import BackendRegistry

    registry = BackendRegistry.from_plugins(get_plugin_manager())
    backoff = 0.1
    while True:
        try:
            return registry.open_tracker(settings["tracking_uri"], **settings["tracker_options"])
        except BackendError as exc:
            shipper.failed(exc)
            if not wait(backoff):
                return None
            backoff = min(backoff * 2, 5.0)
