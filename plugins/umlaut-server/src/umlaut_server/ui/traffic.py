"""Calls and errors per model over the last 24 hours, an hourly bucket each, for the
models page.

A tracker that declares ``Capability.SCAN_RUNS`` counts: two ``count_runs`` per hour
(all calls, errors), each an id range of one model, which umlaut-sql answers from
its ``(model_name, id)`` index without reading other hours. What a page costs is
bounded by caching:

* an hour that ended (plus :data:`SETTLE` for records still on their way from a
  spool) hardly changes: its counts are kept, and once older than ``ttl`` they are
  recounted at most :data:`REFRESH_PER_CALL` hours per model per page, the rest
  served as they were, so an expiry never lands on one page all at once;
* the current hour is recounted when its counts are older than ``live_ttl``.

Cold (a model seen for the first time) costs 48 small counts; warm, 0 to 6.
:meth:`Traffic.warm` does the cold work ahead of the first page.

A tracker without it (the MLflow server) is paged newest first through
``query_runs`` and stops after ``cap`` records; the counts are then lower bounds
(``capped``), and the whole result is kept for ``live_ttl`` seconds.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, cast

from umlaut_core import Capability, RunQuery
from umlaut_core.protocols import ScanningTracker

if TYPE_CHECKING:
    from umlaut_core import Umlaut

__all__ = ["DayTraffic", "Traffic", "hour_starts"]

HOURS = 24
_HOUR = dt.timedelta(hours=1)
#: An hour is taken as settled this long after it ended (spooled records arrive late).
SETTLE = dt.timedelta(minutes=2)
#: Expired settled hours recounted per model per page; the others wait their turn.
REFRESH_PER_CALL = 2


@dataclass(frozen=True, slots=True)
class DayTraffic:
    """Calls and errors per hour, oldest hour first; the last hour is the current one."""

    hours: tuple[dt.datetime, ...]
    calls: tuple[int, ...]
    errors: tuple[int, ...]
    #: Counted by paging and stopped at the cap: the totals are lower bounds.
    capped: bool = False

    @property
    def total(self) -> int:
        return sum(self.calls)

    @property
    def error_total(self) -> int:
        return sum(self.errors)

    @property
    def error_rate(self) -> float | None:
        return self.error_total / self.total if self.total else None


class _Count(NamedTuple):
    calls: int
    errors: int
    at: float  # time.monotonic() when counted
    settled: bool  # counted after the hour had settled (else: a live count)


def hour_starts(now: dt.datetime) -> tuple[dt.datetime, ...]:
    """The starts of the 24 hourly buckets ending with the one holding ``now``."""
    current = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return tuple(current - _HOUR * (HOURS - 1 - i) for i in range(HOURS))


class Traffic:
    """Hourly counts per model, with the cache described above (thread-safe)."""

    def __init__(
        self, umlaut: Umlaut, *, ttl: float = 900.0, live_ttl: float = 10.0, cap: int = 5000
    ) -> None:
        self.umlaut = umlaut
        self.ttl = ttl
        self.live_ttl = live_ttl
        self.cap = cap
        self._lock = threading.Lock()
        self._hours: dict[tuple[str, dt.datetime], _Count] = {}
        self._days: dict[str, tuple[DayTraffic, float]] = {}

    def day(self, model: str, now: dt.datetime) -> DayTraffic:
        tracker = self.umlaut.tracker
        if Capability.SCAN_RUNS in tracker.capabilities:
            return self._counted(cast(ScanningTracker, tracker), model, now)
        return self._paged(model, now)

    def warm(self, models: Iterable[str], now: dt.datetime) -> None:
        """Count ahead of the first page (at startup: :mod:`.warm`, which logs a
        failure; the page then counts what is missing itself)."""
        for model in models:
            self.day(model, now)

    def _counted(self, tracker: ScanningTracker, model: str, now: dt.datetime) -> DayTraffic:
        hours = hour_starts(now)
        clock = time.monotonic()
        refreshed = 0
        calls: list[int] = []
        errors: list[int] = []
        for start in hours:
            end = start + _HOUR
            settled = end + SETTLE <= now
            key = (model, start)
            with self._lock:
                hit = self._hours.get(key)
            if hit is not None and hit.settled == settled:
                age = clock - hit.at
                if age < (self.ttl if settled else self.live_ttl) or (
                    settled and refreshed >= REFRESH_PER_CALL
                ):
                    calls.append(hit.calls)
                    errors.append(hit.errors)
                    continue
                refreshed += settled
            query = RunQuery(model_name=model, since=start, until=end)
            n = tracker.count_runs(query)
            bad = tracker.count_runs(_with_status(query)) if n else 0
            with self._lock:
                self._hours[key] = _Count(n, bad, clock, settled)
            calls.append(n)
            errors.append(bad)
        self._forget(hours[0])
        return DayTraffic(hours, tuple(calls), tuple(errors))

    def _forget(self, oldest: dt.datetime) -> None:
        """Drop buckets that fell out of the window, so the cache stays 24 per model."""
        with self._lock:
            if len(self._hours) > 64 * HOURS:
                for key in [k for k in self._hours if k[1] < oldest]:
                    del self._hours[key]

    def _paged(self, model: str, now: dt.datetime) -> DayTraffic:
        clock = time.monotonic()
        with self._lock:
            hit = self._days.get(model)
        if hit is not None and clock - hit[1] < self.live_ttl and hit[0].hours[-1] <= now:
            return hit[0]
        hours = hour_starts(now)
        calls = [0] * HOURS
        errors = [0] * HOURS
        seen, before, capped = 0, None, False
        page = min(1000, self.cap)
        while True:
            records = self.umlaut.history(
                model, since=hours[0], limit=page, before=before, include_pending=False
            )
            for record in records:
                index = int((record.started_at - hours[0]) / _HOUR)
                if 0 <= index < HOURS:
                    calls[index] += 1
                    errors[index] += record.status == "error"
            seen += len(records)
            if len(records) < page:
                break
            if seen >= self.cap:
                capped = True
                break
            before = records[-1].id
        result = DayTraffic(hours, tuple(calls), tuple(errors), capped)
        with self._lock:
            self._days[model] = (result, clock)
        return result


def _with_status(query: RunQuery) -> RunQuery:
    return RunQuery(
        model_name=query.model_name, since=query.since, until=query.until, status="error"
    )
