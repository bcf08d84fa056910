"""The audit spool and spooled delivery, on the core alone."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from umlaut_core import Umlaut
from umlaut_core.exceptions import ConfigurationError
from umlaut_core.ids import new_run_id
from umlaut_core.records import AuditRecord
from umlaut_core.spool import _DEPTH_BOUND, Spool, SpoolFullError
from umlaut_core.stores.memory import MemoryTracker
from umlaut_core.testing.models import Threshold


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        id=new_run_id(),
        model_name="m",
        version=1,
        selector="latest",
        inputs_json=f'{{"x":{i}}}',
        output_json="true",
        status="ok",
        started_at=dt.datetime.now(dt.UTC),
        duration_ms=0.5,
        reference_id=f"r{i}",
        tags={"k": "v"},
    )


class TestSpool:
    """Records wait in order, survive reopening, and obey the full-spool policy."""

    def test_round_trip_in_order(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "s.db", tracker_uri="memory:")
        records = [_record(i) for i in range(5)]
        spool.append(records, 5, limit=0, policy="block")
        again = Spool(tmp_path / "s.db", tracker_uri="memory:")
        assert again.claim(10).records == records
        assert again.claim(10).records == []  # claimed rows are leased, not handed out twice
        again.release([r.id for r in records[:2]])
        assert [r.id for r in again.claim(10).records] == [r.id for r in records[:2]]
        again.remove([r.id for r in records])
        assert again.status().depth == 0

    def test_duplicate_ids_are_stored_once(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "s.db", tracker_uri="memory:")
        record = _record(1)
        spool.append([record, record], 2, limit=0, policy="block")
        assert spool.status().depth == 1

    def test_raise_policy(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "s.db", tracker_uri="memory:")
        spool.append([_record(i) for i in range(3)], 3, limit=4, policy="raise")
        with pytest.raises(SpoolFullError, match="limit 4"):
            spool.append([_record(i) for i in range(2)], 2, limit=4, policy="raise")
        assert spool.status().depth == 3  # the refused batch left nothing behind

    def test_drop_oldest_policy_counts_what_it_dropped(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "s.db", tracker_uri="memory:")
        first = [_record(i) for i in range(3)]
        spool.append(first, 3, limit=4, policy="drop_oldest")
        spool.append([_record(i) for i in range(3, 6)], 3, limit=4, policy="drop_oldest")
        status = spool.status()
        assert (status.depth, status.dropped) == (4, 2)
        kept = {r.reference_id for r in spool.pending()}
        assert kept == {"r2", "r3", "r4", "r5"}

    def test_block_policy_gives_up_after_its_timeout(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "s.db", tracker_uri="memory:")
        spool.append([_record(0)], 1, limit=1, policy="block")
        with pytest.raises(SpoolFullError):
            spool.append([_record(1)], 1, limit=1, policy="block", block_timeout_s=0.2)

    def test_a_spool_belongs_to_one_tracker(self, tmp_path: Path) -> None:
        Spool(tmp_path / "s.db", tracker_uri="memory://a")
        with pytest.raises(Exception, match="holds records for memory://a"):
            Spool(tmp_path / "s.db", tracker_uri="memory://b")

    def test_spool_is_a_wal_sqlite_file(self, tmp_path: Path) -> None:
        Spool(tmp_path / "s.db", tracker_uri="memory:")
        mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"

    def test_the_full_spool_check_never_scans_the_backlog(self, tmp_path: Path) -> None:
        # Run on every spooled call: a scan would make each call slower the longer the
        # tracker is down (it did: 17 us per call at depth 1,000, 380 us at 6,000).
        spool = Spool(tmp_path / "s.db", tracker_uri="memory:")
        spool.append([_record(i) for i in range(100)], 100, limit=1000, policy="raise")
        conn = sqlite3.connect(tmp_path / "s.db")
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + _DEPTH_BOUND)]
        assert not [step for step in plan if step.startswith("SCAN spool")], plan
        assert conn.execute(_DEPTH_BOUND).fetchone()[0] == 100

    def test_processes_creating_one_spool_at_once_all_succeed(self, tmp_path: Path) -> None:
        # Several workers of one service start together and share the default spool;
        # CI once saw one of them die on "database is locked" while turning on WAL.
        worker = textwrap.dedent(
            """
            import os, sys, time
            from umlaut_core.spool import Spool
            folder, go = sys.argv[1], sys.argv[2]
            while not os.path.exists(go):
                time.sleep(0.001)
            for i in range(80):
                Spool(os.path.join(folder, f"{i}.db"), tracker_uri="memory://shared")
            """
        )
        go = tmp_path / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", worker, str(tmp_path), str(go)],
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        time.sleep(0.3)  # let every worker reach its wait loop
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errors
        for i in range(80):
            with sqlite3.connect(tmp_path / f"{i}.db") as conn:
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                assert conn.execute("SELECT value FROM spool_meta").fetchall() == [
                    ("memory://shared",)
                ]


class TestDeletedSpool:
    """A spool file deleted under a running process is noticed and started afresh."""

    def test_a_deleted_spool_is_recreated_and_the_loss_logged(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        folder = tmp_path / "spool"
        spool = Spool(folder / "audit.db", tracker_uri="memory:")
        spool.append([_record(1)], 1, limit=0, policy="block")
        assert spool.status().depth == 1
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
        second = _record(2)
        with caplog.at_level("ERROR", logger="umlaut.delivery"):
            spool.append([second], 1, limit=0, policy="block")
        assert "was deleted or replaced while in use" in caplog.text
        # The new record went to a file that exists, where a shipper will find it.
        assert (folder / "audit.db").exists()
        reopened = Spool(folder / "audit.db", tracker_uri="memory:")
        assert [r.id for r in reopened.pending()] == [second.id]
        reopened.close()
        spool.close()


class TestSpooledDelivery:
    """run_model returns after spooling; flush ships; history can show what waits."""

    def test_spooled_calls_reach_the_tracker_after_flush(self, tmp_path: Path) -> None:
        umlaut = Umlaut(
            tracker=MemoryTracker(), delivery="spooled", spool_path=str(tmp_path / "s.db")
        )
        assert umlaut.delivery_mode == "spooled"
        umlaut.track_model(Threshold(1), "m")
        for i in range(50):
            umlaut.run_model("m", {"x": i})
        assert umlaut.flush(timeout=30)
        assert umlaut.pending().depth == 0
        assert sorted(r.inputs["x"] for r in umlaut.history("m")) == list(range(50))
        umlaut.close()

    def test_history_can_include_pending_records(self, tmp_path: Path) -> None:
        tracker = MemoryTracker()
        other_process = Spool(tmp_path / "s.db", tracker_uri=tracker.uri)
        waiting = [_record(i) for i in range(3)]
        other_process.append(waiting, 3, limit=0, policy="block")
        other_process.claim(10)  # leased by "another process": not ours to ship yet
        umlaut = Umlaut(tracker=tracker, delivery="spooled", spool_path=str(tmp_path / "s.db"))
        umlaut.track_model(Threshold(1), "m")
        assert umlaut.history("m", include_pending=False) == []
        shown = umlaut.history("m")
        assert {r.id for r in shown} == {r.id for r in waiting} and all(r.pending for r in shown)
        assert umlaut.pending().depth == 3
        # The lease ends (that process died): this one ships what it left.
        other_process.release(r.id for r in waiting)
        assert umlaut.flush(timeout=30)
        stored = umlaut.history("m")
        assert {r.id for r in stored} == {r.id for r in waiting}
        assert not any(r.pending for r in stored)
        umlaut.close()

    def test_a_tracker_only_this_process_holds_ships_from_a_thread(self, tmp_path: Path) -> None:
        spool = str(tmp_path / "s.db")
        umlaut = Umlaut("memory:", delivery="spooled", spool_path=spool)
        assert umlaut.shipper == "thread"  # a child process would open another memory:
        umlaut.close()
        with pytest.raises(ConfigurationError, match="shipper='thread'"):
            Umlaut("memory:", delivery="spooled", spool_path=spool, shipper="process")
        with pytest.raises(ConfigurationError, match="not one of"):
            Umlaut("memory:", delivery="spooled", spool_path=spool, shipper="fork")
        assert Umlaut("memory:").shipper is None

    def test_sync_is_the_default_for_local_trackers(self) -> None:
        assert Umlaut("memory:").delivery_mode == "sync"

    def test_off_writes_nothing(self) -> None:
        umlaut = Umlaut("memory:", delivery="off")
        umlaut.track_model(Threshold(1), "m")
        umlaut.run_model("m", {"x": 1})
        assert umlaut.history("m") == []


class TestIds:
    """Audit ids sort by time and carry it, so time windows are id ranges."""

    def test_ids_sort_and_bracket_their_moment(self) -> None:
        from umlaut_core.ids import encode_id, id_floor

        before = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=2)
        ids = [new_run_id() for _ in range(1000)]
        after = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=2)
        assert ids == sorted(ids) and len(set(ids)) == 1000
        assert all(len(i) == 26 for i in ids)
        assert id_floor(before) <= ids[0] and ids[-1] < id_floor(after)
        assert encode_id(5, 0) < encode_id(5, 1) < encode_id(6, 0)

    def test_ids_within_one_millisecond_count_up_across_every_carry(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from umlaut_core import ids

        # A frozen clock: every id falls in one millisecond, so each is the previous
        # one's random part + 1, also where the cached head changes (every 1,024).
        monkeypatch.setattr(ids.time, "time_ns", lambda: 1_700_000_000_123_456_789)
        monkeypatch.setattr(ids, "_last_ms", -1)
        made = [ids.new_run_id() for _ in range(3000)]
        first = ids._last_rand - 2999
        assert made == [ids.encode_id(1_700_000_000_123, first + i) for i in range(3000)]
