"""Training runs through real outages and killed processes (issue 13).

A PostgreSQL server stops for a while in the middle of a training loop: the loop
never waits, and afterwards every metric point is in the store exactly once. A
process killed with SIGKILL mid-run leaves a run that the next reader reports as
KILLED, with the points it had logged kept; points still in its spool are shipped by
the next process that opens the spool.
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
from umlaut_core.experiments import RunStatus

pytestmark = [pytest.mark.slow]
OUTAGE_S = float(os.environ.get("UMLAUT_TEST_TRAINING_OUTAGE_S", "15"))
POINTS = 3_000


def _steps(um: Umlaut, run_id: str, key: str) -> list[int]:
    return [p.step for p in um.metric_history(run_id, key)]


@pytest.mark.postgres
class TestPostgresOutage:
    """The database goes away mid-training; the loop goes on and nothing is lost."""

    def test_every_point_arrives_once_and_logging_never_waits(
        self, postgres_server: Any, postgres_database: str, tmp_path: Path
    ) -> None:
        um = Umlaut(
            postgres_database,
            str(tmp_path / "artifacts"),
            spool_path=str(tmp_path / "spool.db"),
            spool_warn_after=2,
        )
        assert um.delivery_mode == "spooled"  # PostgreSQL: never wait on the server
        outage_over = threading.Event()

        def outage() -> None:
            postgres_server.pause()
            time.sleep(OUTAGE_S)
            postgres_server.resume()
            outage_over.set()

        run = um.start_run("outage", name="training loop")
        run.log_params({"lr": 0.01, "layers": [8, 4]})
        stopper = threading.Thread(target=outage)
        slowest = 0.0
        pace = (OUTAGE_S + 5) / POINTS
        for step in range(POINTS):
            if step == POINTS // 10:
                stopper.start()
            started = time.perf_counter()
            run.log_metric("loss", 1 / (step + 1), step=step)
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(pace)
        stopper.join()
        assert outage_over.is_set()
        run.end()
        assert um.flush(timeout=120), um.pending()
        # A call that had to wait for the server would take seconds; queuing takes µs.
        assert slowest < 0.5
        assert _steps(um, run.run_id, "loss") == list(range(POINTS))
        got = um.get_training_run(run.run_id)
        assert got.status is RunStatus.FINISHED
        assert got.metrics["loss"].count == POINTS
        assert got.params == {"lr": 0.01, "layers": [8, 4]}
        um.close()


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from umlaut_core import Umlaut
    uri, artifacts, spool = json.loads(sys.argv[1])
    um = Umlaut(uri, artifacts, spool_path=spool) if spool else Umlaut(uri, artifacts)
    run = um.start_run("killed", name="doomed")
    run.log_param("seed", 7)
    for step in range(1000):
        run.log_metric("loss", 1 / (step + 1), step=step)
    assert run.flush(timeout=60)   # into the store (or the spool when it is down)
    print(json.dumps(run.run_id), flush=True)
    sys.stdin.readline()           # the parent may stop the server now
    for step in range(1000, 1500):
        run.log_metric("loss", 1 / (step + 1), step=step)
    assert run.flush(timeout=60)
    print("flushed", flush=True)
    time.sleep(3600)               # killed here, the run still open
    """
)


def _kill_mid_run(uri: str, artifacts: str, spool: str | None, server: Any | None) -> str:
    """A child logs 1,500 points (the last 500 with ``server`` stopped, when given)
    and is killed with SIGKILL, its run still open; returns the run id."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps([uri, artifacts, spool])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        run_id: str = json.loads(child.stdout.readline())
        if server is not None:
            server.pause()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "flushed"
        os.killpg(child.pid, signal.SIGKILL)  # its shipper process too, as in a crash
        child.wait(timeout=30)
    finally:
        if server is not None:
            server.resume()
        if child.poll() is None:
            child.kill()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        child.wait(timeout=30)
    return run_id


class TestKilledProcess:
    """SIGKILL mid-run: the run reads as KILLED and its logged points are kept."""

    def test_embedded_sqlite(self, tmp_path: Path) -> None:
        uri = f"sqlite:///{tmp_path / 'umlaut.db'}"
        run_id = _kill_mid_run(uri, str(tmp_path / "artifacts"), None, None)
        um = Umlaut(uri, str(tmp_path / "artifacts"))
        got = um.get_training_run(run_id)
        assert got.status is RunStatus.KILLED and got.ended_at is not None
        assert got.params == {"seed": 7}
        assert _steps(um, run_id, "loss") == list(range(1500))
        um.close()

    @pytest.mark.postgres
    def test_postgres_points_left_in_the_spool_are_shipped_by_the_next_process(
        self, postgres_server: Any, postgres_database: str, tmp_path: Path
    ) -> None:
        spool = str(tmp_path / "spool.db")
        artifacts = str(tmp_path / "artifacts")
        run_id = _kill_mid_run(postgres_database, artifacts, spool, postgres_server)
        heir = Umlaut(postgres_database, artifacts, spool_path=spool)
        assert heir.flush(timeout=120), heir.pending()
        assert _steps(heir, run_id, "loss") == list(range(1500))
        assert heir.get_training_run(run_id).status is RunStatus.KILLED
        heir.close()
