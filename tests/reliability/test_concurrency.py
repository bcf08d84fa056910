"""Many processes on one registry: version numbers, audit records and alias moves.

Every worker is a separate interpreter that opens its own ``Umlaut`` from URIs and
starts work at the same instant as the others (see ``conftest.Workers``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
from typing import Any

import pytest

from umlaut_core.testing.models import Echo, Threshold

pytestmark = pytest.mark.slow

PROCS = 8
BUNDLES = 25
CALLS = 500


class TestConcurrentTracking:
    """8 processes × 25 distinct bundles under one name: versions 1..200, each digest once."""

    def test_versions_are_gap_free_and_every_bundle_is_stored_once(
        self, backend: Any, workers: Any
    ) -> None:
        backend.open().close()  # create the schema once, as a deployment would
        w = workers(
            [backend.job(op="track", worker=p, name="race", count=BUNDLES) for p in range(PROCS)],
            backend.env,
        )
        w.start()
        results = w.results()
        tracked = [row for r in results for row in r["tracked"]]
        assert len(tracked) == PROCS * BUNDLES and all(created for _, _, created, _ in tracked)
        rows = backend.sql(
            "SELECT version, digest, artifact_uri FROM umlaut_versions WHERE name = 'race' "
            "ORDER BY version"
        )
        assert [r[0] for r in rows] == list(range(1, PROCS * BUNDLES + 1))
        assert len({r[1] for r in rows}) == PROCS * BUNDLES
        # What each worker was told matches the table: no version handed out twice.
        assert sorted((v, d) for v, d, _, _ in tracked) == [(r[0], r[1]) for r in rows]
        assert backend.sql("SELECT latest_version FROM umlaut_models WHERE name = 'race'") == [
            (PROCS * BUNDLES,)
        ]
        objects = backend.objects()
        bundles = {k: v for k, v in objects.items() if k.endswith(".zip")}
        assert len(bundles) == PROCS * BUNDLES == len(objects)
        reader = backend.open()
        for version in (1, 77, PROCS * BUNDLES):
            mv = reader.get_version("race", version=version)
            (limit,) = [lim for v, _, _, lim in tracked if v == version]
            assert reader.run_model("race", {"x": limit + 1}, version=version) == {
                "above": True,
                "limit": limit,
            }
            assert mv.digest == rows[version - 1][1]
        reader.close()

    def test_one_bundle_tracked_by_every_process_is_one_version(
        self, backend: Any, workers: Any
    ) -> None:
        backend.open().close()
        w = workers(
            [backend.job(op="track", worker=p, name="same", count=3, same=7) for p in range(PROCS)],
            backend.env,
        )
        w.start()
        tracked = [row for r in w.results() for row in r["tracked"]]
        assert {(v, d) for v, d, _, _ in tracked} == {(1, tracked[0][1])}
        assert sum(created for _, _, created, _ in tracked) == 1
        assert backend.sql("SELECT count(*) FROM umlaut_versions") == [(1,)]
        assert len(backend.objects()) == 1


def _check_records(backend: Any, name: str) -> None:
    rows = backend.sql(
        "SELECT id, inputs, output, status, reference_id, version FROM umlaut_runs "
        "WHERE model_name = :n",
        n=name,
    )
    assert len(rows) == PROCS * CALLS
    assert len({r[0] for r in rows}) == PROCS * CALLS
    seen = set()
    for rid, inputs, output, status, ref, version in rows:
        got = json.loads(inputs)
        assert json.loads(output) == got and status == "ok" and version == 1, rid
        assert ref == f"w{got['w']}-{got['i']}"
        seen.add((got["w"], got["i"]))
    assert seen == {(w, i) for w in range(PROCS) for i in range(CALLS)}


class TestConcurrentRuns:
    """8 processes × 500 run_model calls: exactly 4,000 records with the right inputs."""

    @pytest.mark.parametrize("delivery", ["sync", "default"])
    def test_every_call_leaves_exactly_one_record(
        self, backend: Any, workers: Any, delivery: str
    ) -> None:
        setup = backend.open()
        setup.track_model(Echo(), "busy")
        setup.close()
        options = {} if delivery == "default" else {"delivery": delivery}
        w = workers(
            [
                backend.job(op="run", worker=p, name="busy", count=CALLS, options=options)
                for p in range(PROCS)
            ],
            backend.env,
        )
        w.start()
        results = w.results()
        assert all(r["wrong"] == 0 and r["flushed"] for r in results)
        expected = "sync" if (delivery == "sync" or backend.name == "sqlite") else "spooled"
        assert {r["mode"] for r in results} == {expected}
        _check_records(backend, "busy")


class TestAliasUnderLoad:
    """An alias moving back and forth while others run by it: each record names a
    version the alias held while that call was resolving it; the ledger is whole.

    What "at that moment" can mean: ``run_model`` reads the alias, then stamps
    ``started_at``; the runner notes ``t0`` (in the input) just before calling, so the
    read happened at some instant in ``[t0, started_at]``. A move becomes visible at
    its commit, which lies between its ledger ``changed_at`` (stamped under the row
    lock) and the moment ``promote`` returned in the mover (``done``). So a version is
    explainable when some ledger entry set it, was possibly committed by
    ``started_at`` (``changed_at <= started_at``) and was possibly not yet replaced at
    ``t0`` (the next entry's ``done > t0``). All stamps come from one machine's clock;
    no other slack is allowed, except the one the runners were configured with:
    ``resolve_ttl`` lets a runner reuse a resolution it read up to that long before
    ``t0`` (the default for a remote tracker, 1 s), so there the entry need only have
    been current after ``t0 - resolve_ttl``.
    """

    SECONDS = 8.0

    @pytest.mark.parametrize("resolve_ttl", [0.0, None], ids=["every-call", "default-ttl"])
    def test_records_follow_the_alias_and_the_ledger_is_complete(
        self, backend: Any, workers: Any, resolve_ttl: float | None
    ) -> None:
        runner_options: dict[str, Any] = {"delivery": "sync"}
        if resolve_ttl is not None:
            runner_options["resolve_ttl"] = resolve_ttl
        elif not backend.remote:
            pytest.skip("a local tracker resolves every call by default: every-call covers it")
        setup = backend.open(delivery="sync")
        setup.track_model(Threshold(1), "flip")
        setup.track_model(Threshold(2), "flip")
        setup.promote("flip", 1, "Production", reason="initial")
        setup.close()
        jobs = [
            backend.job(
                op="move_alias",
                worker=m,
                name="flip",
                alias="Production",
                versions=[2, 1][:: 1 - 2 * m],
                seconds=self.SECONDS,
                pause=0.2,
            )
            for m in range(2)
        ] + [
            backend.job(
                op="run_alias",
                worker=r,
                name="flip",
                alias="Production",
                seconds=self.SECONDS,
                options=runner_options,
            )
            for r in range(4)
        ]
        w = workers(jobs, backend.env)
        w.start()
        results = w.results()
        moves = [m for r in results[:2] for m in r["moves"]]
        done = {k: dt.datetime.fromisoformat(v) for r in results[:2] for k, v in r["done"].items()}
        calls = sum(r["calls"] for r in results[2:])
        (ttl,) = {r["resolve_ttl"] for r in results[2:]}
        assert ttl == (1.0 if resolve_ttl is None else resolve_ttl)
        window = dt.timedelta(seconds=ttl)

        reader = backend.open(delivery="sync")
        ledger = reader.stage_history("flip", "Production")
        ids = [
            r[0]
            for r in backend.sql(
                "SELECT id FROM umlaut_stage_ledger WHERE model_name = 'flip' ORDER BY id"
            )
        ]
        # Complete and ordered: one chain from the first promotion, each entry moves the
        # alias, every move a mover saw succeed is there exactly once.
        assert ledger[0].from_version is None and ledger[0].reason == "initial"
        for before, after in itertools.pairwise(ledger):
            assert after.from_version == before.to_version != after.to_version
            assert after.changed_at >= before.changed_at
        reasons = [c.reason for c in ledger[1:]]
        assert len(set(reasons)) == len(reasons) and set(reasons) == set(moves)
        assert len(ids) == len(ledger) and ids == sorted(ids)
        assert reader.get_version("flip", stage="Production").version == ledger[-1].to_version
        assert len(moves) > 10

        rows = backend.sql("SELECT started_at, inputs, version FROM umlaut_runs")
        assert len(rows) == calls
        changed = [c.changed_at for c in ledger]
        # replaced[k]: latest instant entry k was certainly still current (its
        # successor committed by then); the last entry is never replaced.
        never = dt.datetime.max.replace(tzinfo=dt.UTC)
        replaced = [done[c.reason] for c in ledger[1:]] + [never]
        decided = 0
        for started_text, inputs, version in rows:
            started = dt.datetime.fromisoformat(started_text)
            t0 = dt.datetime.fromisoformat(json.loads(inputs)["t0"])
            assert t0 <= started
            last = bisect.bisect_right(changed, started)  # entries possibly committed
            possible = {ledger[k].to_version for k in range(last) if replaced[k] > t0 - window}
            assert version in possible, (t0, started, version, possible)
            decided += len(possible) == 1
        assert {v for _, _, v in rows} == {1, 2}
        if not ttl:
            # Most calls fall between moves, so the check pins them to a single version.
            assert decided > 0.5 * len(rows), (decided, len(rows), len(ledger))
        reader.close()
