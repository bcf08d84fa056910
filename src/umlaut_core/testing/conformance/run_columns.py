"""Scanning the columns of audit records: what drift reports read from a tracker that
declares ``Capability.SCAN_COLUMNS`` (see
:class:`umlaut_core.protocols.ColumnScanningTracker`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast

import pytest

from ...protocols import Capability, ColumnScanningTracker, Tracker
from ...records import AuditRecord, RunColumns, RunQuery
from ._base import TrackerTestBase
from .importing import _records

__all__ = ["ScanColumnsTests"]

Row = tuple[Any, ...]


def _scan(tracker: Tracker, query: RunQuery, limit: int | None = None) -> list[RunColumns]:
    return list(cast(ColumnScanningTracker, tracker).scan_run_columns(query, limit))


def _rows(chunks: list[RunColumns]) -> list[Row]:
    """The chunks' records, one tuple of the five columns each, in order."""
    out: list[Row] = []
    for c in chunks:
        assert len(c) > 0, "a chunk is never empty"
        columns = (c.inputs_json, c.output_json, c.status, c.error_type, c.duration_ms)
        assert {len(column) for column in columns} == {len(c)}, "columns of unequal length"
        out += zip(*columns, strict=True)
    return out


def _expected(records: list[AuditRecord]) -> list[Row]:
    return [
        (r.inputs_json, r.output_json, r.status, r.error_type, r.duration_ms)
        for r in sorted(records, key=lambda r: r.id)
    ]


class ScanColumnsTests(TrackerTestBase):
    """``scan_run_columns`` gives the columns of what ``scan_runs`` would, oldest first."""

    @pytest.fixture
    def stored(self, tracker: Tracker, model_name: str) -> list[AuditRecord]:
        self.require(tracker, Capability.SCAN_COLUMNS)
        records = _records(model_name, 40)
        tracker.record_runs(records)
        tracker.record_runs(_records(model_name + " other", 3))
        return records

    def test_columns_are_the_records_oldest_first(
        self, tracker: Tracker, stored: list[AuditRecord], model_name: str
    ) -> None:
        query = RunQuery(model_name=model_name, limit=3)  # the limit is ignored
        assert _rows(_scan(tracker, query)) == _expected(stored)

    def test_each_chunk_spans_its_own_records(
        self, tracker: Tracker, stored: list[AuditRecord], model_name: str
    ) -> None:
        # Start times out of id order: a chunk's first and last are its min and max.
        name = model_name + " shuffled"
        shuffled = [
            dataclasses.replace(r, model_name=name, started_at=r.started_at + dt.timedelta(
                seconds=(-5 if n % 2 else 5) * (n % 3)))
            for n, r in enumerate(_records(name, 40))
        ]  # fmt: skip
        tracker.record_runs(shuffled)
        chunks = _scan(tracker, RunQuery(model_name=name))
        assert _rows(chunks) == _expected(shuffled)
        done = 0
        for chunk in chunks:
            times = [r.started_at for r in shuffled[done : done + len(chunk)]]
            assert (chunk.earliest, chunk.latest) == (min(times), max(times))
            assert chunk.earliest.utcoffset() == dt.timedelta(0)
            done += len(chunk)

    @pytest.mark.parametrize("limit", [1, 7, 40, 100])
    def test_limit_takes_the_oldest(
        self, tracker: Tracker, stored: list[AuditRecord], model_name: str, limit: int
    ) -> None:
        got = _rows(_scan(tracker, RunQuery(model_name=model_name), limit))
        assert got == _expected(stored)[:limit]

    def test_column_filters_mean_what_they_mean_for_query_runs(
        self, tracker: Tracker, stored: list[AuditRecord], model_name: str
    ) -> None:
        since = stored[5].started_at
        until = stored[25].started_at
        for query in (
            RunQuery(model_name=model_name, since=since, until=until),
            RunQuery(model_name=model_name, status="error"),
            RunQuery(model_name=model_name, status="ok", before=stored[30].id),
            RunQuery(model_name=model_name, reference_id="ref-9"),
            RunQuery(model_name=model_name, version=1, since=since),
        ):
            matching = tracker.query_runs(dataclasses.replace(query, limit=1000))
            assert _rows(_scan(tracker, query)) == _expected(matching)
        window = RunQuery(model_name=model_name, since=since, until=until)
        assert len(_rows(_scan(tracker, window, 15))) == 15

    def test_unknown_model_has_no_columns(self, tracker: Tracker, model_name: str) -> None:
        self.require(tracker, Capability.SCAN_COLUMNS)
        assert _scan(tracker, RunQuery(model_name=model_name + " never")) == []
        assert _scan(tracker, RunQuery(model_name=model_name + " never"), 5) == []
