"""Audit records: one per call, errors included; batches; history queries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from ..._api import Umlaut
from ..._buffer import RecordBuffer
from ...ids import derived_id, new_run_id
from ...protocols import Tracker
from ...records import AuditRecord, RunQuery, fields_of
from ..models import Failing, Threshold
from ._base import TrackerTestBase

__all__ = ["RunModelTests"]


class RunModelTests(TrackerTestBase):
    """Every run_model call and batch item leaves exactly one audit record."""

    #: Records in the large-batch test: past every bundled tracker's write chunk
    #: (umlaut-sql's is 1,000, after which PostgreSQL writes through COPY). A backend
    #: whose writes are slow may lower it to just past its own chunk.
    large_batch = 1_200

    def test_record_holds_the_call(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(5), model_name)
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        out = umlaut.run_model(model_name, {"x": 9}, reference_id="req-1", tags={"k": "v"})
        (r,) = umlaut.history(model_name)
        assert out == {"above": True, "limit": 5}
        assert (r.model_name, r.version, r.selector, r.status) == (model_name, 1, "latest", "ok")
        assert (r.inputs, r.output, r.error, r.reference_id) == ({"x": 9}, out, None, "req-1")
        assert dict(r.tags) == {"k": "v"}
        assert len(r.id) == 26
        assert before <= r.started_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        assert 0 <= r.duration_ms < 60_000

    def test_model_error_reaches_caller_and_is_recorded(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Failing(), model_name)
        with pytest.raises(ValueError, match="x must be >= 0, got -4"):
            umlaut.run_model(model_name, {"x": -4}, reference_id="bad")
        (r,) = umlaut.history(model_name)
        assert (r.status, r.error_type, r.output, r.inputs) == (
            "error",
            "ValueError",
            None,
            {"x": -4},
        )
        assert r.error_message == "x must be >= 0, got -4"
        assert r.error == "ValueError: x must be >= 0, got -4"

    def test_call_past_its_deadline_is_one_error_record(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        from ...deadline import Deadline
        from ...exceptions import DeadlineExceededError

        umlaut.track_model(Threshold(5), model_name)
        deadline = Deadline(60)
        assert deadline.expire()  # the waiter gave up before the model ran
        with pytest.raises(DeadlineExceededError, match="did not run"):
            umlaut.run_model(model_name, {"x": 9}, reference_id="late", deadline=deadline)
        in_time = Deadline(60)
        assert umlaut.run_model(model_name, {"x": 1}, deadline=in_time) == {
            "above": False,
            "limit": 5,
        }
        late, ok = sorted(umlaut.history(model_name), key=lambda r: r.status)
        assert (late.status, late.output, late.reference_id) == ("error", None, "late")
        assert late.error_type == "umlaut_core.exceptions.DeadlineExceededError"
        assert ok.status == "ok" and in_time.record is not None and in_time.record.id == ok.id
        assert deadline.record is not None and deadline.record.id == late.id

    def test_batch_writes_one_record_per_input(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(2), model_name)
        outs = umlaut.run_batch(
            model_name, [{"x": i} for i in range(5)], reference_ids=[f"r{i}" for i in range(5)]
        )
        assert [o["above"] for o in outs] == [False, False, False, True, True]
        records = umlaut.history(model_name)
        assert sorted((r.reference_id, r.inputs["x"]) for r in records) == [
            (f"r{i}", i) for i in range(5)
        ]
        assert all(r.status == "ok" for r in records)

    def test_batch_from_generator(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(2), model_name)
        outs = umlaut.run_batch(model_name, ({"x": i} for i in range(3)))
        assert len(outs) == 3 and len(umlaut.history(model_name)) == 3

    def test_batch_stops_at_first_error_and_records_it(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Failing(), model_name)
        with pytest.raises(ValueError):
            umlaut.run_batch(model_name, [{"x": 4}, {"x": -1}, {"x": 9}])
        statuses = sorted((r.inputs["x"], r.status) for r in umlaut.history(model_name))
        assert statuses == [(-1, "error"), (4, "ok")]

    def test_batch_continue_runs_everything(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Failing(), model_name)
        outs = umlaut.run_batch(model_name, [{"x": 4}, {"x": -1}, {"x": 9}], on_error="continue")
        assert outs[0] == 2.0 and isinstance(outs[1], ValueError) and outs[2] == 3.0
        assert len(umlaut.history(model_name, status="error")) == 1
        assert len(umlaut.history(model_name, status="ok")) == 2

    def test_history_filters_and_pages(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Failing(), model_name)
        umlaut.track_model(Threshold(1), model_name)
        for i in range(6):
            umlaut.run_model(model_name, {"x": i}, version=1, reference_id=f"ref-{i % 2}")
        middle = dt.datetime.now(dt.UTC)
        time.sleep(0.01)
        with pytest.raises(ValueError):
            umlaut.run_model(model_name, {"x": -1}, version=1, reference_id="ref-x")
        umlaut.run_model(model_name, {"x": 3}, reference_id="ref-0")

        assert len(umlaut.history(model_name)) == 8
        assert len(umlaut.history(model_name, version=2)) == 1
        assert len(umlaut.history(model_name, reference_id="ref-0")) == 4
        assert [r.reference_id for r in umlaut.history(model_name, status="error")] == ["ref-x"]
        assert len(umlaut.history(model_name, since=middle)) == 2
        assert len(umlaut.history(model_name, until=middle)) == 6
        newest_first = umlaut.history(model_name)
        assert [r.id for r in newest_first] == sorted((r.id for r in newest_first), reverse=True)
        page1 = umlaut.history(model_name, limit=3)
        page2 = umlaut.history(model_name, limit=3, before=page1[-1].id)
        page3 = umlaut.history(model_name, limit=3, before=page2[-1].id)
        ids = [r.id for r in page1 + page2 + page3]
        assert ids == [r.id for r in newest_first] and len(page3) == 2

    def test_history_without_name_spans_models(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(1), model_name)
        umlaut.track_model(Threshold(1), model_name + " b")
        umlaut.run_model(model_name, {"x": 1}, reference_id=model_name)
        umlaut.run_model(model_name + " b", {"x": 1}, reference_id=model_name)
        names = {r.model_name for r in umlaut.history(reference_id=model_name)}
        assert names == {model_name, model_name + " b"}

    def test_a_batch_of_field_tuples_stores_what_the_records_would(
        self, umlaut: Umlaut, tracker: Tracker, model_name: str
    ) -> None:
        """``record_runs`` may read a batch's ``field_tuples()`` instead of its records
        (see the protocol); either way every field must come back the same."""
        umlaut.track_model(Threshold(1), model_name)
        started = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the zero-fraction case
        ok = AuditRecord(
            id=new_run_id(), model_name=model_name, version=1, selector="stage=Production",
            inputs_json='{"x":2}', output_json='{"above":true}', status="ok",
            started_at=started, duration_ms=0.25, reference_id="ref-ok",
            tags={"team": "risk"},
        )  # fmt: skip
        failed = dataclasses.replace(
            ok, id=new_run_id(), output_json=None, status="error", reference_id=None,
            error_type="ValueError", error_message="x must be >= 0", tags={},
            started_at=started + dt.timedelta(microseconds=123_456),
        )  # fmt: skip
        as_records = [ok, failed]
        as_batch = [dataclasses.replace(r, id=new_run_id()) for r in as_records]
        with RecordBuffer() as batch:
            for r in as_batch:
                batch.append(fields_of(r))
            assert tracker.record_runs(as_records) == 2
            assert tracker.record_runs(batch) == 2
        stored = {r.id: r for r in tracker.query_runs(RunQuery(model_name=model_name))}
        for direct, batched in zip(as_records, as_batch, strict=True):
            assert stored[direct.id] == direct
            assert stored[batched.id] == dataclasses.replace(direct, id=batched.id)

    def test_record_runs_is_idempotent_by_id(
        self, umlaut: Umlaut, tracker: Tracker, model_name: str
    ) -> None:
        umlaut.track_model(Threshold(1), model_name)
        record = AuditRecord(
            id=new_run_id(),
            model_name=model_name,
            version=1,
            selector="latest",
            inputs_json='{"x":1}',
            output_json='{"above":false}',
            status="ok",
            started_at=dt.datetime.now(dt.UTC),
            duration_ms=1.5,
        )
        other = dataclasses.replace(record, id=new_run_id())
        assert tracker.record_runs([record]) == 1
        assert tracker.record_runs([record, other]) == 1
        found = tracker.query_runs(RunQuery(model_name=model_name))
        assert sorted(r.id for r in found) == sorted([record.id, other.id])
        assert found[-1].duration_ms == pytest.approx(1.5)

    def test_large_batch_skips_held_ids(
        self, umlaut: Umlaut, tracker: Tracker, model_name: str
    ) -> None:
        """A large batch partly written before (a cluster's retried partition, its ids
        in no particular order) writes only what is new, whatever path a tracker
        takes for large batches."""
        umlaut.track_model(Threshold(1), model_name)
        ms = time.time_ns() // 1_000_000
        started = dt.datetime.now(dt.UTC)
        first = AuditRecord(
            id=derived_id(ms, "large", "0"), model_name=model_name, version=1,
            selector="latest", inputs_json='{"x":0}', output_json="true", status="ok",
            started_at=started, duration_ms=0.5,
        )  # fmt: skip
        batch = [
            dataclasses.replace(
                first, id=derived_id(ms, "large", str(i)), inputs_json=f'{{"x":{i}}}'
            )
            for i in range(self.large_batch)
        ]
        held = self.large_batch // 5
        assert tracker.record_runs(batch[:held]) == held
        assert tracker.record_runs(batch) == self.large_batch - held
        assert tracker.record_runs(batch) == 0
        found = tracker.query_runs(RunQuery(model_name=model_name, limit=10_000))
        assert sorted(r.id for r in found) == sorted(r.id for r in batch)

    def test_batch_with_record_ids_writes_nothing_twice(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        """A batch run again with the same ``record_ids`` (a retried task on a cluster)
        writes each record once, under the ids given, also when the re-run overlaps."""
        umlaut.track_model(Threshold(2), model_name)
        ms = time.time_ns() // 1_000_000
        ids = [derived_id(ms, "batch-1", str(i)) for i in range(6)]
        inputs = [{"x": i} for i in range(6)]
        umlaut.run_batch(model_name, inputs[:3], record_ids=ids[:3])
        umlaut.run_batch(model_name, inputs, record_ids=ids)
        umlaut.run_batch(model_name, inputs, record_ids=ids, return_outputs=False)
        records = umlaut.history(model_name, include_pending=False)
        assert sorted(r.id for r in records) == sorted(ids)
        assert sorted(r.inputs["x"] for r in records) == list(range(6))
        by_id = {r.id: r for r in records}
        assert [by_id[i].inputs for i in ids] == inputs  # each id names its own input
