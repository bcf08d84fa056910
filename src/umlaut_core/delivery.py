"""How audit records reach the tracker: ``sync``, ``spooled`` or ``off``.

* ``sync`` — the record is in the tracker before ``run_model`` returns (default for
  local trackers such as SQLite).
* ``spooled`` — the record goes to a local :class:`~umlaut_core.spool.Spool` and a
  background thread ships it in order, in batches, retrying with backoff while the
  tracker is unreachable (default for trackers that declare ``Capability.REMOTE``).
  Delivery is at least once; trackers skip ids they already hold, so nothing is
  doubled. ``Umlaut.flush()`` ships everything; interpreter exit waits up to
  ``exit_flush_timeout`` seconds; whatever remains is shipped by the next process that
  opens the same spool.
* ``off`` — records are dropped (tests and throwaway experiments only).

Only audit records are spooled: registering versions and moving stages always talk to
the tracker directly.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Sized
from typing import Literal

from .config import Settings, default_home
from .exceptions import UmlautError
from .protocols import Capability, Tracker
from .records import AuditRecord
from .registry import redact
from .spool import Spool, SpoolStatus

__all__ = ["Delivery", "DeliveryMode"]

DeliveryMode = Literal["sync", "spooled", "off"]
log = logging.getLogger("umlaut.delivery")
_BATCH = 500
_live: weakref.WeakSet[Delivery] = weakref.WeakSet()


class Delivery:
    """Owns the path from finished calls to stored audit records."""

    def __init__(
        self,
        tracker: Tracker,
        mode: DeliveryMode,
        *,
        spool_path: str | None = None,
        spool_limit: int = 1_000_000,
        spool_full: str = "block",
        warn_after_s: float = 60.0,
        exit_flush_timeout_s: float = 5.0,
        durable: bool = False,
    ) -> None:
        self.tracker = tracker
        self.mode = mode
        self.spool: Spool | None = None
        self._limit, self._policy = spool_limit, spool_full
        self._warn_after, self._exit_timeout = warn_after_s, exit_flush_timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._start_lock = threading.Lock()
        self.last_error: str | None = None
        self.unreachable_since: float | None = None
        self._last_warning = 0.0
        if mode == "spooled":
            assert spool_path is not None
            self.spool = Spool(spool_path, tracker_uri=tracker.uri, durable=durable)
            _live.add(self)
            if self.spool.status().depth:
                self._ensure_thread()  # a previous process left records: ship them

    @classmethod
    def from_settings(cls, tracker: Tracker, settings: Settings) -> Delivery:
        """The mode the settings ask for, else spooled for REMOTE trackers, else sync."""
        mode = settings.delivery or (
            "spooled" if Capability.REMOTE in tracker.capabilities else "sync"
        )
        spool_path = settings.spool_path
        if mode == "spooled" and spool_path is None:
            # One spool per tracker URI, so two registries never mix their records.
            tag = hashlib.sha256(tracker.uri.encode()).hexdigest()[:12]
            spool_path = str(default_home() / "spool" / f"audit-{tag}.db")
        return cls(
            tracker,
            mode,  # type: ignore[arg-type]
            spool_path=spool_path,
            spool_limit=settings.spool_limit,
            spool_full=settings.spool_full,
            warn_after_s=settings.spool_warn_after,
            exit_flush_timeout_s=settings.exit_flush_timeout,
            durable=settings.spool_durable,
        )

    # -- the hot path ------------------------------------------------------------------

    def deliver(self, records: Iterable[AuditRecord]) -> None:
        if self.mode == "sync":
            self.tracker.record_runs(records)
        elif self.mode == "spooled":
            assert self.spool is not None
            count = len(records) if isinstance(records, Sized) else None
            batch = records if count is not None else list(records)
            self.spool.append(
                batch,
                count if count is not None else len(batch),  # type: ignore[arg-type]
                limit=self._limit,
                policy=self._policy,
            )
            self._ensure_thread()
            self._wake.set()
        else:
            for _ in records:
                pass

    # -- shipping ----------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._thread_pid == os.getpid():
            return
        with self._start_lock:
            if (
                self._thread is None
                or not self._thread.is_alive()
                or self._thread_pid != os.getpid()
            ):
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="umlaut-audit-shipper", daemon=True
                )
                self._thread_pid = os.getpid()
                self._thread.start()

    def _run(self) -> None:
        assert self.spool is not None
        backoff = 0.1
        while not self._stop.is_set():
            try:
                batch = self.spool.claim(_BATCH)
            except Exception as exc:  # the spool file itself failed: keep trying
                self._failed(exc)
                self._stop.wait(backoff)
                continue
            if not batch:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            ids = [r.id for r in batch]
            try:
                self.tracker.record_runs(batch)
            except Exception as exc:
                self.spool.release(ids)
                self._failed(exc)
                self._wake.wait(backoff)
                self._wake.clear()
                backoff = min(backoff * 2, 5.0)
                continue
            self.spool.remove(ids)
            backoff = 0.1
            if self.unreachable_since is not None:
                log.warning(
                    "audit delivery to %s recovered after %.0f s",
                    redact(self.tracker.uri),
                    time.monotonic() - self.unreachable_since,
                )
            self.unreachable_since, self.last_error = None, None

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self.unreachable_since = self.unreachable_since or now
        self.last_error = (
            redact(f"{type(exc).__name__}: {exc}")
            if isinstance(exc, UmlautError)
            else f"{type(exc).__name__}"
        )
        down_for = now - self.unreachable_since
        # Warn once past the threshold, then at most every 10 thresholds: an outage of
        # hours must not write thousands of lines.
        if down_for >= self._warn_after and now - self._last_warning >= 10 * self._warn_after:
            self._last_warning = now
            log.warning(
                "audit records for %s are waiting in %s: the tracker has been unreachable "
                "for %.0f s (%s); calls keep working and records are kept",
                redact(self.tracker.uri),
                self.spool.path if self.spool else "?",
                down_for,
                self.last_error,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Ship everything queued; True when the spool is empty within ``timeout``."""
        if self.spool is None:
            return True
        self._ensure_thread()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.spool.status().depth:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.02)
        return True

    def status(self) -> SpoolStatus:
        if self.spool is None:
            return SpoolStatus(depth=0, oldest_age_s=None, dropped=0, path="")
        base = self.spool.status()
        since = None
        if self.unreachable_since is not None:
            since = dt.datetime.now(dt.UTC) - dt.timedelta(
                seconds=time.monotonic() - self.unreachable_since
            )
        return SpoolStatus(
            base.depth, base.oldest_age_s, base.dropped, base.path, self.last_error, since
        )

    def close(self, timeout: float | None = None) -> None:
        if self.spool is None:
            return
        self.flush(self._exit_timeout if timeout is None else timeout)
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread_pid == os.getpid():
            self._thread.join(timeout=2)
        self.spool.close()
        _live.discard(self)


@atexit.register
def _flush_at_exit() -> None:
    for delivery in list(_live):
        # Exit must not fail: whatever is not shipped stays in the spool for next time.
        with contextlib.suppress(Exception):
            delivery.close()
