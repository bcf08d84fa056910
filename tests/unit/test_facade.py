"""Facade behaviour that no backend changes: caching choices and the original API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from umlaut_core import Umlaut
from umlaut_core.protocols import Capability
from umlaut_core.stores.memory import MemoryTracker
from umlaut_core.testing.models import Echo, Threshold


class TestResolution:
    """stage=/latest are fresh by default; resolve_ttl trades freshness for speed."""

    def test_promotion_is_seen_on_the_next_call_by_default(self) -> None:
        umlaut = Umlaut("memory:")
        umlaut.track_model(Threshold(1), "m", stage="Production")
        assert umlaut.run_model("m", {"x": 0}, stage="Production")["limit"] == 1
        umlaut.track_model(Threshold(2), "m")
        umlaut.promote("m", 2, "Production")
        assert umlaut.run_model("m", {"x": 0}, stage="Production")["limit"] == 2

    def test_resolve_ttl_keeps_a_resolution_for_that_long(self) -> None:
        umlaut = Umlaut("memory:", resolve_ttl=0.3)
        umlaut.track_model(Threshold(1), "m", stage="Production")
        assert umlaut.run_model("m", {"x": 0}, stage="Production")["limit"] == 1
        other = Umlaut(tracker=umlaut.tracker)  # another process, promoting
        other.track_model(Threshold(2), "m")
        other.promote("m", 2, "Production")
        assert umlaut.run_model("m", {"x": 0}, stage="Production")["limit"] == 1
        time.sleep(0.35)
        assert umlaut.run_model("m", {"x": 0}, stage="Production")["limit"] == 2
        versions = [r.version for r in umlaut.history("m")]
        assert versions == [2, 1, 1]  # each record names the version that really ran


class TestOriginalApi:
    """Keywords of umlaut 0.3.4 keep their meaning."""

    def test_run_name_code_path_and_result_keys(self) -> None:
        umlaut = Umlaut("memory:")
        mv = umlaut.track_model(model=Echo(), model_name="e", run_name="Track", code_path=[])
        assert mv.tags["umlaut.run_name"] == "Track"
        out = umlaut.run_model(
            model_name="e", input_config={"a": 1, "b": 2}, result_keys=["a"], nested_run=True
        )
        assert out == {"a": 1}
        assert umlaut.history("e")[0].output == {"a": 1}

    def test_repr_hides_passwords(self) -> None:
        from umlaut_core.stores.memory import MemoryTracker

        tracker = MemoryTracker("memory://user:hunter2@somewhere/x")
        assert "hunter2" not in repr(Umlaut(tracker=tracker))


class TestStreamingBatch:
    """A generator batch with return_outputs=False keeps only the records."""

    def test_returns_the_count_and_records_everything(self) -> None:
        from umlaut_core._buffer import RecordBuffer
        from umlaut_core.records import fields_of

        umlaut = Umlaut("memory:")
        umlaut.track_model(Threshold(10), "stream")
        count = umlaut.run_batch("stream", ({"x": i} for i in range(25)), return_outputs=False)
        assert count == 25
        records = umlaut.history("stream", limit=100)
        assert sorted(r.inputs["x"] for r in records) == list(range(25))
        assert sum(r.output["above"] for r in records) == 14
        # The buffer behind it spills to disk and reads back in order, as records or
        # as their plain field tuples.
        ordered = sorted(records, key=lambda r: r.id)
        with RecordBuffer(spill_at=4) as buffer:
            for r in ordered:
                buffer.append(fields_of(r))
            assert list(buffer) == ordered
            assert list(buffer.field_tuples()) == [fields_of(r) for r in ordered]
            assert len(buffer) == 25


class TestBatchReferenceIds:
    """reference_ids pair with inputs in order; a generator may outrun them."""

    def test_generator_items_past_the_reference_ids_get_none(self) -> None:
        umlaut = Umlaut("memory:")
        umlaut.track_model(Threshold(1), "refs")
        outs = umlaut.run_batch("refs", ({"x": i} for i in range(3)), reference_ids=["a", "b"])
        assert [o["above"] for o in outs] == [False, False, True]
        got = {r.inputs["x"]: r.reference_id for r in umlaut.history("refs")}
        assert got == {0: "a", 1: "b", 2: None}

    def test_observers_see_every_item_before_it_runs(self) -> None:
        from umlaut_core import get_plugin_manager, hookimpl

        seen: list[tuple[str, Any]] = []

        class Observer:
            @hookimpl
            def umlaut_before_run(self, inputs: Any) -> None:
                seen.append(("before", inputs["x"]))

            @hookimpl
            def umlaut_after_run(self, record: Any) -> None:
                seen.append(("after", record.inputs["x"]))

        pm = get_plugin_manager()
        pm.register(Observer())
        umlaut = Umlaut("memory:", plugin_manager=pm)
        umlaut.track_model(Threshold(1), "seen")
        umlaut.run_batch("seen", [{"x": 0}, {"x": 2}])
        assert seen == [("before", 0), ("before", 2), ("after", 0), ("after", 2)]


class TestResolveTtlDefaults:
    """Remote trackers and spooled delivery reuse a stage resolution for 1 s; local
    trackers under sync delivery resolve every call."""

    def test_defaults_follow_the_delivery_mode(self, tmp_path: Path) -> None:
        spool = str(tmp_path / "spool.db")
        assert Umlaut("memory:").resolve_ttl == 0.0
        assert Umlaut("memory:", delivery="spooled", spool_path=spool).resolve_ttl == 1.0
        pinned = Umlaut("memory:", delivery="spooled", spool_path=spool, resolve_ttl=0)
        assert pinned.resolve_ttl == 0.0

    def test_a_remote_tracker_reuses_a_resolution_under_sync_delivery_too(self) -> None:
        remote = MemoryTracker()
        remote.capabilities = remote.capabilities | {Capability.REMOTE}
        umlaut = Umlaut(tracker=remote, delivery="sync")
        assert umlaut.resolve_ttl == 1.0
        umlaut.track_model(Threshold(1), "m", stage="Production")
        umlaut.run_model("m", {"x": 0}, stage="Production")
        # Another process promotes v2 behind this one's back (straight in the tracker).
        umlaut.track_model(Threshold(2), "m")
        remote.set_alias("m", "Production", 2, changed_by="other", reason=None)
        assert umlaut.run_model("m", {"x": 0}, stage="Production")["limit"] == 1
        strict = Umlaut(tracker=remote, delivery="sync", resolve_ttl=0)
        assert strict.run_model("m", {"x": 0}, stage="Production")["limit"] == 2

    def test_a_process_sees_its_own_promotion_at_once(self) -> None:
        umlaut = Umlaut("memory:", resolve_ttl=60)
        umlaut.track_model(Threshold(1), "m", stage="Production")
        assert umlaut.run_model("m", {"x": 0}, stage="Production")["limit"] == 1
        assert umlaut.run_model("m", {"x": 0})["limit"] == 1
        umlaut.track_model(Threshold(2), "m")
        assert umlaut.run_model("m", {"x": 0})["limit"] == 2  # latest, tracked here
        umlaut.promote("m", 2, "Production")
        assert umlaut.run_model("m", {"x": 0}, stage="Production")["limit"] == 2
