"""Spooled delivery through real outages: nothing lost, nothing doubled (issue 8).

A PostgreSQL server is stopped for 60 seconds while one process keeps calling
``run_model``; a process holding unshipped records is killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import Umlaut
from umlaut_core.testing.models import Threshold

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
OUTAGE_S = float(os.environ.get("UMLAUT_TEST_OUTAGE_S", "60"))
CALLS = int(os.environ.get("UMLAUT_TEST_OUTAGE_CALLS", "10000"))


def _count_runs(url: str) -> tuple[int, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            total, distinct = conn.execute(
                sa.text("SELECT count(*), count(DISTINCT id) FROM umlaut_runs")
            ).one()
    finally:
        engine.dispose()
    return int(total), int(distinct)


class TestPostgresOutage:
    """The database goes away for a minute; callers never notice, the trail is whole."""

    def test_calls_keep_returning_and_every_record_arrives_once(
        self, postgres_server: Any, postgres_database: str, tmp_path: Path
    ) -> None:
        umlaut = Umlaut(
            postgres_database,
            str(tmp_path / "artifacts"),
            delivery="spooled",
            spool_path=str(tmp_path / "spool.db"),
            spool_warn_after=5,
        )
        umlaut.track_model(Threshold(5), "outage", stage="Production")
        assert umlaut.run_model("outage", {"x": 9}, stage="Production")["above"] is True
        assert umlaut.flush(timeout=30)

        outage_over = threading.Event()

        def outage() -> None:
            postgres_server.pause()
            time.sleep(OUTAGE_S)
            postgres_server.resume()
            outage_over.set()

        stopper = threading.Thread(target=outage)
        stopper.start()
        pace = (OUTAGE_S + 10) / CALLS  # spread the calls across the whole outage
        wrong = 0
        during = []
        for i in range(CALLS):
            out = umlaut.run_model("outage", {"x": i % 10}, stage="Production")
            wrong += out != {"above": i % 10 > 5, "limit": 5}
            if i % 100 == 99 and not outage_over.is_set():
                during.append(umlaut.pending())
            time.sleep(pace)
        stopper.join()
        assert outage_over.is_set() and wrong == 0
        # The shipper noted the outage in the spool, where this process reads it.
        assert any(s.last_error and s.unreachable_since for s in during), during[-1:]
        assert umlaut.flush(timeout=180), umlaut.pending()
        assert umlaut.pending().last_error is None
        assert umlaut.pending().depth == 0 and umlaut.pending().dropped == 0
        assert _count_runs(postgres_database) == (CALLS + 1, CALLS + 1)
        assert len(umlaut.history("outage", status="ok", limit=CALLS)) == CALLS
        umlaut.close()


_CHILD = textwrap.dedent(
    """
    import json, sys
    from umlaut_core import Umlaut
    tracking, artifacts, spool = json.loads(sys.argv[1])
    u = Umlaut(tracking, artifacts, delivery="spooled", spool_path=spool)
    u.run_model("killed", {"x": 1}, stage="Production")
    u.flush(timeout=30)
    print("ready", flush=True)
    sys.stdin.readline()                      # the parent stopped the database
    for i in range(500):
        u.run_model("killed", {"x": i}, stage="Production", reference_id=f"k{i}")
    print("done", flush=True)
    sys.stdin.readline()                      # wait to be killed
    """
)


def _kill_with_unshipped_records(
    tracking: str, artifacts: str | None, spool: str, server: Any
) -> Umlaut:
    """A child spools 500 records while the store is down and is SIGKILLed; returns
    the heir (a new process's facade on the same spool) after it flushed."""
    setup = Umlaut(tracking, artifacts, delivery="sync")
    setup.track_model(Threshold(5), "killed", stage="Production")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps([tracking, artifacts, spool])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        server.pause()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        # The whole group, as when a container or machine dies: the child's shipper
        # process goes too. (A shipper orphaned alone finishes the batch in hand, which
        # would let it deliver records before the heir is even started.)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        server.resume()
        if child.poll() is None:
            child.kill()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        child.wait(timeout=30)
    assert len(setup.history("killed", include_pending=False)) == 1  # nothing shipped yet
    setup.close()
    heir = Umlaut(tracking, artifacts, delivery="spooled", spool_path=spool)
    assert heir.flush(timeout=300), heir.pending()
    records = heir.history("killed", include_pending=False, limit=1000)
    assert len(records) == 501 == len({r.id for r in records})
    assert {r.reference_id for r in records} >= {f"k{i}" for i in range(500)}
    return heir


class TestKilledProcess:
    """A process killed with unshipped records: the next process ships them, once."""

    def test_sigkill_loses_nothing_on_postgres(
        self, postgres_server: Any, postgres_database: str, tmp_path: Path
    ) -> None:
        heir = _kill_with_unshipped_records(
            postgres_database, str(tmp_path / "artifacts"), str(tmp_path / "spool.db"),
            postgres_server,
        )  # fmt: skip
        assert _count_runs(postgres_database) == (501, 501)
        heir.close()

    @pytest.mark.mlflow
    def test_sigkill_loses_nothing_on_mlflow(self, tmp_path: Path) -> None:
        pytest.importorskip("umlaut_mlflow", reason="umlaut-mlflow is not installed")
        from _services.mlflow_server import MlflowServer

        (tmp_path / "server").mkdir()
        server = MlflowServer(tmp_path / "server").start()
        try:
            heir = _kill_with_unshipped_records(
                f"mlflow+{server.url}", None, str(tmp_path / "spool.db"), server
            )
            heir.close()
        finally:
            server.stop()


class TestDefaults:
    """A database server gets spooled delivery by default; history still shows your call."""

    def test_records_ship_from_a_child_process(
        self, postgres_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        umlaut = Umlaut(
            postgres_database, str(tmp_path / "a"), spool_path=str(tmp_path / "spool.db")
        )
        assert umlaut.shipper == "process"
        umlaut.track_model(Threshold(1), "shipped")
        umlaut.run_model("shipped", {"x": 0})
        child = umlaut._delivery._proc
        assert child is not None and child.poll() is None
        # The tracking URI (which may hold a password) is not on the command line.
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes()
        assert postgres_database.encode() not in cmdline
        deadline = time.monotonic() + 60
        while umlaut.pending().depth and time.monotonic() < deadline:
            time.sleep(0.05)  # no flush: the child alone ships
        assert _count_runs(postgres_database) == (1, 1)

        child.kill()  # a shipper that dies: the facade carries on from a thread
        child.wait(timeout=30)
        for i in range(1, 200):
            umlaut.run_model("shipped", {"x": i})
        assert umlaut.shipper == "thread"
        assert "exited with code" in caplog.text
        assert umlaut.flush(timeout=60)
        assert _count_runs(postgres_database) == (200, 200)
        umlaut.close()

    def test_closing_stops_the_shipper_process(
        self, postgres_database: str, tmp_path: Path
    ) -> None:
        umlaut = Umlaut(
            postgres_database, str(tmp_path / "a"), spool_path=str(tmp_path / "spool.db")
        )
        umlaut.track_model(Threshold(1), "closing")
        umlaut.run_batch("closing", [{"x": i} for i in range(100)])
        child = umlaut._delivery._proc
        assert child is not None
        umlaut.close()
        assert child.poll() is not None
        assert _count_runs(postgres_database) == (100, 100)

    def test_postgres_spools_by_default_and_history_reads_your_writes(
        self, postgres_database: str, tmp_path: Path
    ) -> None:
        umlaut = Umlaut(
            postgres_database, str(tmp_path / "a"), spool_path=str(tmp_path / "spool.db")
        )
        assert umlaut.delivery_mode == "spooled"
        umlaut.track_model(Threshold(1), "defaults")
        umlaut.run_model("defaults", {"x": 3}, reference_id="mine")
        (record,) = umlaut.history("defaults", reference_id="mine")
        assert record.inputs == {"x": 3}
        assert umlaut.flush(timeout=30)
        (stored,) = umlaut.history("defaults", include_pending=False)
        assert stored.id == record.id and not stored.pending
        umlaut.close()
        assert Umlaut(f"sqlite:///{tmp_path / 'x.db'}").delivery_mode == "sync"


@pytest.mark.mlflow
class TestMlflowOutage:
    """The MLflow server goes away for a minute; callers never notice, the trail is whole."""

    def test_calls_keep_returning_and_every_record_arrives_once(self, tmp_path: Path) -> None:
        pytest.importorskip("umlaut_mlflow", reason="umlaut-mlflow is not installed")
        from _services.mlflow_server import MlflowServer

        (tmp_path / "server").mkdir()
        server = MlflowServer(tmp_path / "server").start()
        try:
            umlaut = Umlaut(
                f"mlflow+{server.url}", spool_path=str(tmp_path / "spool.db"), spool_warn_after=5
            )
            assert umlaut.delivery_mode == "spooled"
            umlaut.track_model(Threshold(5), "mlflow-outage", stage="Production")
            umlaut.run_model("mlflow-outage", {"x": 9}, stage="Production")
            assert umlaut.flush(timeout=60)

            def outage() -> None:
                server.pause()
                time.sleep(OUTAGE_S)
                server.resume()

            stopper = threading.Thread(target=outage)
            stopper.start()
            pace = (OUTAGE_S + 10) / CALLS
            wrong = 0
            for i in range(CALLS):
                out = umlaut.run_model("mlflow-outage", {"x": i % 10}, stage="Production")
                wrong += out != {"above": i % 10 > 5, "limit": 5}
                time.sleep(pace)
            stopper.join()
            assert wrong == 0
            assert umlaut.flush(timeout=900), umlaut.pending()
            records = umlaut.history("mlflow-outage", include_pending=False, limit=10_000)
            more = umlaut.history(
                "mlflow-outage", include_pending=False, limit=10_000, before=records[-1].id
            )
            ids = [r.id for r in records + more]
            assert len(ids) == CALLS + 1 == len(set(ids))
            umlaut.close()
        finally:
            server.stop()
