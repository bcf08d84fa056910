"""Reading the audit trail for drift reports: whole records, or just their columns.

A report needs five columns of each record (inputs, output, status, error type,
duration) and the window's first and last start. :func:`scan_columns` asks a tracker
declaring ``Capability.SCAN_COLUMNS`` for exactly those; from any other tracker it
reads whole records (:func:`scan_records`, :func:`first_records`) and makes the
columns itself (:func:`columns_of`), which is also what the capability must return.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import cast

from ..protocols import Capability, ColumnScanningTracker, ScanningTracker, Tracker
from ..records import AuditRecord, RunColumns, RunQuery

__all__ = ["COLUMNS_CHUNK", "columns_of", "first_records", "scan_columns", "scan_records"]

#: Records per page of ``query_runs`` where the tracker cannot stream.
_PAGE = 5_000
#: Records per chunk :func:`columns_of` makes.
COLUMNS_CHUNK = 2_000


def scan_columns(
    tracker: Tracker, query: RunQuery, limit: int | None = None
) -> Iterator[RunColumns]:
    """The columns of every record matching ``query`` (the ``limit`` oldest, when
    given): the tracker's ``scan_run_columns`` where it declares
    ``Capability.SCAN_COLUMNS``, else made from whole records, in chunks of
    :data:`COLUMNS_CHUNK` (oldest first where the tracker streams, else in any order)."""
    if Capability.SCAN_COLUMNS in tracker.capabilities:
        return cast(ColumnScanningTracker, tracker).scan_run_columns(query, limit)
    if limit is None:
        return columns_of(scan_records(tracker, query))
    return columns_of(first_records(tracker, query, limit))


def columns_of(records: Iterable[AuditRecord]) -> Iterator[RunColumns]:
    """``records`` as :class:`RunColumns` of :data:`COLUMNS_CHUNK` records, in order."""
    it = iter(records)
    while chunk := list(islice(it, COLUMNS_CHUNK)):
        times = [r.started_at for r in chunk]
        yield RunColumns(
            [r.inputs_json for r in chunk], [r.output_json for r in chunk],
            [r.status for r in chunk], [r.error_type for r in chunk],
            [r.duration_ms for r in chunk], min(times), max(times),
        )  # fmt: skip


def scan_records(tracker: Tracker, query: RunQuery) -> Iterator[AuditRecord]:
    """Every record matching ``query``: oldest first through ``scan_runs``, else
    newest first through keyset pages of ``query_runs``."""
    if Capability.SCAN_RUNS in tracker.capabilities:
        # The tracker's own iterator, not wrapped: a generator frame per record costs.
        return cast(ScanningTracker, tracker).scan_runs(query)
    return _pages(tracker, query)


def _pages(tracker: Tracker, query: RunQuery) -> Iterator[AuditRecord]:
    before = query.before
    while True:
        page = tracker.query_runs(dataclasses.replace(query, limit=_PAGE, before=before))
        yield from page
        if len(page) < _PAGE:
            return
        before = page[-1].id


def first_records(tracker: Tracker, query: RunQuery, n: int) -> Iterator[AuditRecord]:
    """The ``n`` oldest records matching ``query`` (in any order)."""
    if Capability.SCAN_RUNS in tracker.capabilities:
        scan = cast(ScanningTracker, tracker).scan_runs(query)
        try:
            yield from islice(scan, n)
        finally:
            close = getattr(scan, "close", None)  # a generator may hold a connection
            if close is not None:
                close()
        return
    # Pages come newest first: remember where the last pages began (enough for n
    # records), then read those pages again, skipping the newer records at the start.
    pages: deque[tuple[str | None, int]] = deque(maxlen=n // _PAGE + 2)
    before = query.before
    while True:
        page = tracker.query_runs(dataclasses.replace(query, limit=_PAGE, before=before))
        pages.append((before, len(page)))
        if len(page) < _PAGE:
            break
        before = page[-1].id
    skip = max(sum(size for _, size in pages) - n, 0)
    again = dataclasses.replace(query, before=pages[0][0])
    yield from islice(scan_records(tracker, again), skip, None)
