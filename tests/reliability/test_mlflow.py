"""The concurrency checks against a real ``mlflow server`` (smaller numbers: every
registration is several HTTP requests plus MLflow's own run/model-file writes, and
the server runs one worker on this 2-core machine).

Needs ``umlaut-mlflow`` and ``mlflow``; skipped (loudly) without them.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("umlaut_mlflow", reason="umlaut-mlflow is not installed")
pytest.importorskip("mlflow", reason="mlflow is not installed")

import itertools

from umlaut_core import Umlaut
from umlaut_core.testing.models import Echo, Threshold

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

PROCS = 4
BUNDLES = 5
CALLS = 50


@pytest.fixture
def mlflow_setup(mlflow_server: str, umlaut_home: Path) -> dict[str, Any]:
    return {
        "tracking": f"mlflow+{mlflow_server}",
        "env": {"UMLAUT_HOME": str(umlaut_home)},
        "name": f"rel-{uuid.uuid4().hex[:8]}",
    }


def _job(setup: dict[str, Any], **job: Any) -> dict[str, Any]:
    return {"tracking": setup["tracking"], "artifact": None, "name": setup["name"], **job}


class TestMlflowConcurrency:
    """4 processes on one MLflow server: gap-free versions, every record, alias moves."""

    def test_versions_are_gap_free_and_digests_unique(
        self, mlflow_setup: dict[str, Any], workers: Any
    ) -> None:
        w = workers(
            [_job(mlflow_setup, op="track", worker=p, count=BUNDLES) for p in range(PROCS)],
            mlflow_setup["env"],
        )
        w.start()
        tracked = [row for r in w.results(timeout=300) for row in r["tracked"]]
        u = Umlaut(mlflow_setup["tracking"], delivery="sync")
        versions = u.list_versions(mlflow_setup["name"])
        assert [v.version for v in versions] == list(range(1, PROCS * BUNDLES + 1))
        assert len({v.digest for v in versions}) == PROCS * BUNDLES
        assert sorted((v, d) for v, d, _, _ in tracked) == [(v.version, v.digest) for v in versions]
        limit = next(lim for v, _, _, lim in tracked if v == PROCS * BUNDLES)
        assert u.run_model(mlflow_setup["name"], {"x": limit + 1})["above"] is True
        u.close()

    def test_every_call_leaves_exactly_one_record(
        self, mlflow_setup: dict[str, Any], workers: Any
    ) -> None:
        u = Umlaut(mlflow_setup["tracking"], delivery="sync")
        u.track_model(Echo(), mlflow_setup["name"])
        w = workers(
            [
                _job(mlflow_setup, op="run", worker=p, count=CALLS, options={"delivery": "sync"})
                for p in range(PROCS)
            ],
            mlflow_setup["env"],
        )
        w.start()
        assert all(r["wrong"] == 0 for r in w.results(timeout=300))
        records = u.history(mlflow_setup["name"], limit=10_000, include_pending=False)
        assert len(records) == len({r.id for r in records}) == PROCS * CALLS
        assert {(r.inputs["w"], r.inputs["i"]) for r in records} == {
            (w, i) for w in range(PROCS) for i in range(CALLS)
        }
        assert all(
            r.output == r.inputs and r.reference_id == "w{w}-{i}".format(**r.inputs)
            for r in records
        )
        u.close()

    def test_records_follow_the_alias(self, mlflow_setup: dict[str, Any], workers: Any) -> None:
        """One mover only: the plugin documents that two writers moving one alias at
        the same instant may both record the same from_version."""
        name = mlflow_setup["name"]
        u = Umlaut(mlflow_setup["tracking"], delivery="sync")
        u.track_model(Threshold(1), name)
        u.track_model(Threshold(2), name)
        u.promote(name, 1, "Production", reason="initial")
        jobs = [
            _job(
                mlflow_setup,
                op="move_alias",
                worker=0,
                alias="Production",
                versions=[2, 1],
                seconds=6.0,
                pause=0.3,
            )
        ] + [
            _job(
                mlflow_setup,
                op="run_alias",
                worker=r,
                alias="Production",
                seconds=6.0,
                # Every call asks MLflow (the default reuses a resolution for 1 s; that
                # window is checked on PostgreSQL in test_concurrency.py).
                options={"delivery": "sync", "resolve_ttl": 0},
            )
            for r in range(2)
        ]
        w = workers(jobs, mlflow_setup["env"])
        w.start()
        results = w.results(timeout=300)
        done = {k: dt.datetime.fromisoformat(v) for k, v in results[0]["done"].items()}
        ledger = u.stage_history(name, "Production")
        assert [c.reason for c in ledger[1:]] == results[0]["moves"]
        for before, after in itertools.pairwise(ledger):
            assert after.from_version == before.to_version != after.to_version
        never = dt.datetime.max.replace(tzinfo=dt.UTC)
        replaced = [done[c.reason] for c in ledger[1:]] + [never]
        records = u.history(name, limit=10_000, include_pending=False)
        assert len(records) == sum(r["calls"] for r in results[1:])
        for record in records:
            t0 = dt.datetime.fromisoformat(json.loads(record.inputs_json)["t0"])
            possible = {
                c.to_version
                for k, c in enumerate(ledger)
                if c.changed_at <= record.started_at and replaced[k] > t0
            }
            assert record.version in possible, (t0, record.started_at, record.version)
        assert {r.version for r in records} == {1, 2}
        u.close()
