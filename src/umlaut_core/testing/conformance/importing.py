"""Copying between stores: original times kept, ledger imports, record scans.

``umlaut copy`` needs a destination that declares ``Capability.IMPORT`` and reads
sources faster when they declare ``Capability.SCAN_RUNS``; these are their contracts
(see :class:`umlaut_core.protocols.ImportingTracker` and ``ScanningTracker``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, cast

import pytest

from ..._api import Umlaut
from ..._buffer import RecordBuffer
from ..._manager import get_plugin_manager
from ...exceptions import UmlautError
from ...ids import derived_id, new_run_id
from ...keys import bundle_key
from ...packer import pack
from ...protocols import ArtifactStore, Capability, ImportingTracker, ScanningTracker, Tracker
from ...records import (
    BUNDLE_SHA256_TAG,
    AuditRecord,
    RunQuery,
    StageChange,
    VersionDraft,
    fields_of,
)
from ..models import Threshold
from ._base import TrackerTestBase

__all__ = ["ImportTests", "ScanRunsTests"]

_T0 = dt.datetime(2025, 3, 1, 9, 30, 0, 123456, tzinfo=dt.UTC)


def _record(name: str, at: dt.datetime, n: int, *, version: int = 1) -> AuditRecord:
    """A record made at ``at`` (its id carries that millisecond; unique per model, as
    stores may be shared between tests)."""
    ms = (at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    return AuditRecord(
        id=derived_id(ms, name, str(n)),
        model_name=name,
        version=version,
        selector="latest" if n % 2 else f"version={version}",
        inputs_json=json.dumps({"n": n}),
        output_json=json.dumps(n * 2),
        status="ok" if n % 5 else "error",
        started_at=at,
        duration_ms=1.25 + n,
        reference_id=f"ref-{n}" if n % 3 == 0 else None,
        error_type=None if n % 5 else "ValueError",
        error_message=None if n % 5 else f"bad {n}",
        tags={"n": str(n)} if n % 4 == 0 else {},
    )


def _records(name: str, count: int, start: dt.datetime = _T0) -> list[AuditRecord]:
    return [_record(name, start + dt.timedelta(seconds=7 * n), n) for n in range(count)]


def _imports(tracker: Tracker) -> ImportingTracker:
    return cast(ImportingTracker, tracker)


def _scans(tracker: Tracker) -> ScanningTracker:
    return cast(ScanningTracker, tracker)


class _Batch(list[AuditRecord]):
    """A batch that also offers ``field_tuples()``, like the ones ``run_batch`` writes."""

    def field_tuples(self) -> Any:
        return map(fields_of, self)


class ImportTests(TrackerTestBase):
    """A destination of ``umlaut copy`` keeps history as it was made elsewhere."""

    def test_register_version_keeps_created_at_and_created_by(
        self, tracker: Tracker, artifact_store: ArtifactStore | None, model_name: str
    ) -> None:
        bundle = pack(Threshold(11), get_plugin_manager())
        uri = None
        if artifact_store is not None:
            uri = artifact_store.put(bundle_key(bundle.sha256), bundle.data)
        when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
        draft = VersionDraft(
            name=model_name,
            digest=bundle.digest,
            flavor=bundle.flavor,
            manifest=bundle.manifest,
            artifact_uri=uri,
            created_at=when,
            created_by="original-author",
            tags={BUNDLE_SHA256_TAG: bundle.sha256},
        )
        mv = tracker.register_version(draft, bundle.data)
        for seen in (mv, tracker.get_version(model_name), tracker.list_versions(model_name)[0]):
            assert (seen.created_at, seen.created_by) == (when, "original-author")
            assert seen.bundle_sha256 == bundle.sha256

    @staticmethod
    def _three_versions(umlaut: Umlaut, name: str) -> None:
        for limit in (1, 2, 3):
            umlaut.track_model(Threshold(limit), name)

    @staticmethod
    def _ledger(name: str) -> list[StageChange]:
        return [
            StageChange(name, "Production", None, 1, _T0, "alice", "first"),
            StageChange(name, "Staging", None, 3, _T0 + dt.timedelta(hours=1), None, None),
            StageChange(name, "Production", 1, 2, _T0 + dt.timedelta(days=2), "bob", "AUC"),
        ]

    def test_import_ledger_keeps_entries_and_sets_aliases(
        self, tracker: Tracker, umlaut: Umlaut, model_name: str
    ) -> None:
        self.require(tracker, Capability.IMPORT)
        self._three_versions(umlaut, model_name)
        changes = self._ledger(model_name)
        added = _imports(tracker).import_ledger(
            model_name, changes, {"Production": 2, "Staging": 3}
        )
        assert added == 3
        assert tracker.stage_history(model_name) == changes
        assert tracker.stage_history(model_name, "Staging") == [changes[1]]
        assert tracker.get_version(model_name, alias="Production").version == 2
        assert tracker.get_version(model_name, alias="Staging").version == 3
        (info,) = [m for m in tracker.list_models() if m.name == model_name]
        assert dict(info.aliases) == {"Production": 2, "Staging": 3}

    def test_import_ledger_twice_adds_nothing(
        self, tracker: Tracker, umlaut: Umlaut, model_name: str
    ) -> None:
        self.require(tracker, Capability.IMPORT)
        self._three_versions(umlaut, model_name)
        changes = self._ledger(model_name)
        _imports(tracker).import_ledger(model_name, changes[:2], {"Production": 1})
        again = _imports(tracker).import_ledger(
            model_name, changes, {"Production": 2, "Staging": 3}
        )
        assert again == 1
        assert tracker.stage_history(model_name) == changes
        assert _imports(tracker).import_ledger(model_name, changes, {}) == 0

    def test_imported_entries_sort_by_time_among_local_ones(
        self, tracker: Tracker, umlaut: Umlaut, model_name: str
    ) -> None:
        self.require(tracker, Capability.IMPORT)
        self._three_versions(umlaut, model_name)
        umlaut.promote(model_name, 3, "Shadow")  # now: newer than every imported entry
        _imports(tracker).import_ledger(model_name, self._ledger(model_name), {})
        history = tracker.stage_history(model_name)
        assert [c.stage for c in history] == ["Production", "Staging", "Production", "Shadow"]
        # The aliases were left where they were: importing entries moves no pointer.
        assert tracker.get_version(model_name, alias="Shadow").version == 3
        with pytest.raises(UmlautError):
            tracker.get_version(model_name, alias="Production")

    def test_import_ledger_refuses_an_unknown_version(
        self, tracker: Tracker, umlaut: Umlaut, model_name: str
    ) -> None:
        self.require(tracker, Capability.IMPORT)
        umlaut.track_model(Threshold(1), model_name)
        bad = [StageChange(model_name, "Production", None, 9, _T0)]
        with pytest.raises(UmlautError):
            _imports(tracker).import_ledger(model_name, bad, {})
        with pytest.raises(UmlautError):
            _imports(tracker).import_ledger(model_name, [], {"Production": 9})
        assert tracker.stage_history(model_name) == []

    def test_import_runs_keeps_records_and_skips_held_ids(
        self, tracker: Tracker, model_name: str
    ) -> None:
        self.require(tracker, Capability.IMPORT)
        old = _records(model_name, 30)
        assert _imports(tracker).import_runs(_Batch(old[:20])) == 20
        # Half held already, half new; as plain objects this time. Fresh records too:
        # a copy replays records of any age, so every id is checked.
        fresh = [
            dataclasses.replace(r, id=new_run_id(), started_at=dt.datetime.now(dt.UTC))
            for r in old[:3]
        ]
        assert _imports(tracker).import_runs(iter(old[10:] + fresh)) == 13
        assert _imports(tracker).import_runs(iter(fresh)) == 0
        stored = tracker.query_runs(RunQuery(model_name=model_name, limit=100))
        assert sorted(stored, key=lambda r: r.id) == sorted(old + fresh, key=lambda r: r.id)

    def test_import_runs_takes_a_run_batch_buffer(self, tracker: Tracker, model_name: str) -> None:
        self.require(tracker, Capability.IMPORT)
        records = _records(model_name, 5)
        with RecordBuffer() as buffer:
            for r in records:
                buffer.append(fields_of(r))
            assert _imports(tracker).import_runs(buffer) == 5
        stored = tracker.query_runs(RunQuery(model_name=model_name))
        assert sorted(stored, key=lambda r: r.id) == records


class ScanRunsTests(TrackerTestBase):
    """``scan_runs`` streams records oldest first; ``count_runs`` counts the same."""

    @pytest.fixture
    def scanned(self, tracker: Tracker, model_name: str) -> list[AuditRecord]:
        self.require(tracker, Capability.SCAN_RUNS)
        records = _records(model_name, 40)
        tracker.record_runs(records)
        tracker.record_runs(_records(model_name + " other", 3))
        return records

    def test_scan_is_oldest_first_and_complete(
        self, tracker: Tracker, scanned: list[AuditRecord], model_name: str
    ) -> None:
        query = RunQuery(model_name=model_name, limit=3)  # the limit is ignored
        assert list(_scans(tracker).scan_runs(query)) == scanned
        assert _scans(tracker).count_runs(query) == 40

    def test_after_and_before_bound_the_ids(
        self, tracker: Tracker, scanned: list[AuditRecord], model_name: str
    ) -> None:
        query = RunQuery(model_name=model_name, before=scanned[30].id)
        got = list(_scans(tracker).scan_runs(query, after=scanned[9].id))
        assert got == scanned[10:30]
        assert _scans(tracker).count_runs(query) == 30

    def test_filters_mean_what_they_mean_for_query_runs(
        self, tracker: Tracker, scanned: list[AuditRecord], model_name: str
    ) -> None:
        since = scanned[5].started_at
        until = scanned[25].started_at
        for query in (
            RunQuery(model_name=model_name, since=since, until=until),
            RunQuery(model_name=model_name, status="error"),
            RunQuery(model_name=model_name, reference_id="ref-9"),
            RunQuery(model_name=model_name, version=1, since=since),
        ):
            expected = sorted(tracker.query_runs(dataclasses.replace(query, limit=1000)),
                              key=lambda r: r.id)  # fmt: skip
            assert list(_scans(tracker).scan_runs(query)) == expected
            assert _scans(tracker).count_runs(query) == len(expected)
        window = RunQuery(model_name=model_name, since=since, until=until)
        assert len(list(_scans(tracker).scan_runs(window))) == 20

    def test_unknown_model_scans_nothing(self, tracker: Tracker, model_name: str) -> None:
        self.require(tracker, Capability.SCAN_RUNS)
        query = RunQuery(model_name=model_name + " never")
        assert list(_scans(tracker).scan_runs(query)) == []
        assert _scans(tracker).count_runs(query) == 0
