"""Training runs on SQL: the schema and its migration, plain-SQL reading, NaN and
infinities on both dialects, a million-point history, and writers in two processes.

The behaviour every experiment store shares is checked by the core's conformance
class (``test_conformance.py``); the search is compared with the reference on
random data in ``test_experiment_search.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from umlaut_sql import SqlTracker, _schema
from umlaut_sql import _experiments as experiments_module
from umlaut_sql._experiments import SqlExperimentStore, open_experiment_store
from umlaut_sql.plugin import SCHEMES

from umlaut_core import get_plugin_manager
from umlaut_core.exceptions import (
    BackendError,
    ConfigurationError,
    TrainingRunNotFoundError,
    UmlautError,
)
from umlaut_core.experiments.filters import RunSearch, parse_filter, parse_order_by
from umlaut_core.experiments.records import MetricPoint, RunStatus
from umlaut_core.experiments.writes import (
    MetricsLogged,
    ParamsLogged,
    RunEnded,
    RunStarted,
    RunWrite,
    TagsSet,
    VersionLinked,
)
from umlaut_core.ids import new_run_id
from umlaut_core.records import AuditRecord
from umlaut_core.registry import BackendRegistry
from umlaut_core.stores.memory import MemoryTracker

T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)
NAN, INF = math.nan, math.inf
TRAINING_TABLES = sorted(t.name for t in _schema.TRAINING_TABLES)


@pytest.fixture
def store(any_tracker: SqlTracker) -> Iterator[SqlExperimentStore]:
    store = open_experiment_store(any_tracker)
    yield store
    store.close()


def start(run_id: str, experiment: str = "exp", **fields: Any) -> RunStarted:
    return RunStarted(run_id, experiment, fields.pop("name", None), T0, **fields)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """What a user's plain SQL sees (no umlaut code on the way)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def sqlite_schema(path: Path) -> list[tuple[str, str]]:
    """(name, normalised DDL) of every training table and index in a SQLite file."""
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND "
            "(tbl_name LIKE 'umlaut_training%' OR tbl_name IN "
            "('umlaut_experiments', 'umlaut_metric_points')) ORDER BY name"
        ).fetchall()
    conn.close()
    return [(name, " ".join(sql.split())) for name, sql in found]


def pg_schema(url: str) -> list[tuple[str, ...]]:
    """Columns (with type and collation) and index definitions of the training tables."""
    tables = "', '".join(TRAINING_TABLES)
    return rows(
        url,
        "SELECT table_name, column_name, data_type, coalesce(collation_name, ''), is_nullable "
        f"FROM information_schema.columns WHERE table_name IN ('{tables}') "
        "ORDER BY table_name, column_name",
    ) + rows(url, f"SELECT indexdef FROM pg_indexes WHERE tablename IN ('{tables}') ORDER BY 1")


class TestRegistration:
    """The plugin registers the experiment store on every scheme of its tracker."""

    def test_every_tracker_scheme_has_the_store(self, any_tracker: SqlTracker) -> None:
        registry = BackendRegistry.from_plugins(get_plugin_manager())
        schemes = registry.experiment_schemes
        trackers = registry.tracker_schemes
        assert {s: schemes.get(s) for s in SCHEMES} == {s: trackers[s] for s in SCHEMES}
        store = registry.open_experiment_store(any_tracker)
        assert isinstance(store, SqlExperimentStore)
        assert store.uri == any_tracker.uri and store.capabilities == frozenset()
        store.close()
        any_tracker.list_models()  # closing the store leaves the tracker open

    def test_only_its_own_tracker(self) -> None:
        with pytest.raises(ConfigurationError, match="umlaut-sql"):
            open_experiment_store(MemoryTracker())

    def test_closed_tracker_raises_backend_error(self, tmp_path: Path) -> None:
        tracker = SqlTracker(f"sqlite:///{tmp_path / 'umlaut.db'}")
        store = open_experiment_store(tracker)
        tracker.close()
        with pytest.raises(BackendError, match="closed"):
            store.write([start("r")])


class TestSchema:
    """Schema 4 adds the training tables; a schema-3 database is upgraded in place."""

    def _make_v3(self, url: str) -> None:
        """A database as umlaut-sql 0.3 left it: today's schema minus the tables that
        schema 4 and later added."""
        tracker = SqlTracker(url)
        later = [*_schema.TRAINING_TABLES, *_schema.DATASET_TABLES, *_schema.BLOB_TABLES]
        try:
            with tracker._engine.begin() as conn:
                for table in reversed(later):
                    conn.exec_driver_sql(f"DROP TABLE {table.name}")
                conn.exec_driver_sql("UPDATE umlaut_schema SET version = 3")
                conn.exec_driver_sql(
                    "INSERT INTO umlaut_models VALUES "
                    "('Old', 'from v3', 0, '2024-01-01T00:00:00.000000+00:00')"
                )
        finally:
            tracker.close()

    def test_upgrade_from_schema_3(
        self, any_url: str, tmp_path: Path, request: pytest.FixtureRequest
    ) -> None:
        self._make_v3(any_url)
        assert rows(any_url, "SELECT version FROM umlaut_schema") == [(3,)]
        tracker = SqlTracker(any_url)
        try:
            applied = rows(any_url, "SELECT version FROM umlaut_schema ORDER BY version")
            assert applied == [(3,), (4,), (5,)]
            assert rows(any_url, "SELECT description FROM umlaut_models") == [("from v3",)]
            store = open_experiment_store(tracker)
            store.write([start("r1"), MetricsLogged("r1", (MetricPoint("m", 1.0, 0, T0_MS, 1),))])
            assert store.get_run("r1").metrics["m"].count == 1
        finally:
            tracker.close()
        # The upgraded database has exactly the tables and indexes of a new one.
        if any_url.startswith("sqlite"):
            fresh = tmp_path / "fresh.db"
            SqlTracker(f"sqlite:///{fresh}").close()
            assert sqlite_schema(tmp_path / "umlaut.db") == sqlite_schema(fresh)
        else:
            fresh_url = str(request.getfixturevalue("postgres_server").create_database())
            SqlTracker(fresh_url).close()
            assert pg_schema(any_url) == pg_schema(fresh_url)

    def test_names_keep_training_runs_apart_from_audit_records(
        self, any_tracker: SqlTracker
    ) -> None:
        assert "umlaut_runs" in sa.inspect(any_tracker._engine).get_table_names()
        for name in TRAINING_TABLES:
            assert name.startswith(("umlaut_training_", "umlaut_experiments", "umlaut_metric_"))

    @pytest.mark.postgres
    def test_text_orders_by_code_point_on_postgresql(self, postgres_database: str) -> None:
        """Columns searched by < and ORDER BY are collated "C", whatever the database's
        default, so PostgreSQL orders as Python and SQLite do."""
        SqlTracker(postgres_database).close()
        collated = set(
            rows(
                postgres_database,
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE collation_name = 'C'",
            )
        )
        for column in ("run_id", "name", "status", "user_name", "started_at", "ended_at"):
            assert ("umlaut_training_runs", column) in collated
        assert ("umlaut_training_params", "value_text") in collated
        assert ("umlaut_training_tags", "value") in collated


def documented_queries(path: Path, section: str) -> dict[str, str]:
    """The titled SQL blocks of a Markdown file's ``section`` (up to the next ``## ``
    heading), by title: the tests run what the documentation shows."""
    text = path.read_text(encoding="utf-8").split(section, 1)[1].split("\n## ", 1)[0]
    queries = {}
    for block in text.split('```sql title="')[1:]:
        title, rest = block.split('"\n', 1)
        queries[title] = rest.split("```", 1)[0]
    return queries


README = documented_queries(
    Path(__file__).parents[1] / "README.md", "### Plain-SQL queries over training runs"
)
DOCS = documented_queries(Path(__file__).parents[3] / "docs/backends/sql.md", "Training runs")


class TestPlainSql:
    """The tables are meant to be read with plain SQL; the documented queries run."""

    def test_every_documented_query_is_run(self) -> None:
        assert len(README) == 3 and len(DOCS) == 1

    @pytest.fixture
    def url(self, store: SqlExperimentStore, any_tracker: SqlTracker, any_url: str) -> str:
        writes: list[RunWrite] = []
        for i in range(4):
            run_id = f"run-{i}"
            writes += [
                start(run_id, "iris", name=f"sweep-{i}", user="ada", tags={"team": "vision"}),
                ParamsLogged(run_id, {"lr": (i + 1) / 10, "optimizer": "adam", "layers": [64]}),
                MetricsLogged(
                    run_id,
                    tuple(
                        MetricPoint(key, value, s, T0_MS + s, s)
                        for s in range(3)
                        for key, value in (("val_acc", 0.5 + 0.1 * i - 0.01 * s), ("loss", s - i))
                    ),
                ),
                RunEnded(run_id, RunStatus.FINISHED, T0 + dt.timedelta(minutes=i)),
            ]
        writes.append(VersionLinked("run-3", "Iris", 2))
        store.write(writes)
        call = AuditRecord(
            id=new_run_id(), model_name="Iris", version=2, selector="stage=Production",
            inputs_json="{}", output_json="1", status="ok", started_at=T0, duration_ms=1.0,
            reference_id="order-1042",
        )  # fmt: skip
        assert any_tracker.record_runs([call]) == 1
        return any_url

    def test_best_runs_with_their_params(self, url: str) -> None:
        (query,) = (q for title, q in README.items() if title.startswith("The best runs"))
        best = [(r[0], r[1], round(r[2], 6), json.loads(r[3])) for r in rows(url, query)]
        assert best[:2] == [("run-3", "sweep-3", 0.8, 0.4), ("run-2", "sweep-2", 0.7, 0.3)]

    def test_lowest_final_loss(self, url: str) -> None:
        (query,) = DOCS.values()
        lowest = [(r[0], r[2], json.loads(r[3])) for r in rows(url, query)]
        assert lowest == [("run-3", -1.0, 0.4), ("run-2", 0.0, 0.3), ("run-1", 1.0, 0.2),
                          ("run-0", 2.0, 0.1)]  # fmt: skip

    def test_history(self, url: str) -> None:
        (query,) = (q for title, q in README.items() if "history" in title)
        history = [(s, t - T0_MS, round(v, 6)) for s, t, v in rows(url, query)]
        assert history == [(0, 0, 0.6), (1, 1, 0.59), (2, 2, 0.58)]

    def test_from_an_audit_record_to_the_training_run(self, url: str) -> None:
        (query,) = (q for title, q in README.items() if title.startswith("From audit records"))
        assert [r[1:] for r in rows(url, query)] == [("Iris", 2, "run-3", "iris", "sweep-3")]

    def test_typed_param_columns(self, url: str) -> None:
        typed = rows(
            url,
            "SELECT key, value_num, value_text FROM umlaut_training_params "
            "WHERE run_id = 'run-0' ORDER BY key",
        )
        assert typed == [("layers", None, None), ("lr", 0.1, None), ("optimizer", None, "adam")]


class TestNanAndInfinity:
    """NaN and ±inf round-trip on both dialects and follow the filter semantics."""

    def test_round_trip_and_storage(self, store: SqlExperimentStore, any_url: str) -> None:
        values = [1.0, NAN, INF, -INF, 0.0, -0.0, 5e-324, 1.7976931348623157e308]
        pts = tuple(MetricPoint("x", v, s, T0_MS + s, s) for s, v in enumerate(values))
        params = {"nan": NAN, "inf": INF, "neg": -INF, "bool": True, "big": 10**400}
        store.write([start("r"), ParamsLogged("r", params), MetricsLogged("r", pts)])
        got = [p.value for p in store.metric_history("r", "x")]
        # Equal as floats, NaN included (SQLite keeps -0.0 as 0.0: equal, sign lost).
        assert [v if v == v else "nan" for v in got] == [v if v == v else "nan" for v in values]
        assert math.isnan(got[1]) and isinstance(got[0], float)
        summary = store.get_run("r").metrics["x"]
        assert (summary.min, summary.max, math.isnan(summary.last)) == (-INF, INF, False)
        back = store.get_run("r").params
        assert math.isnan(back["nan"]) and (back["inf"], back["neg"]) == (INF, -INF)
        assert back["big"] == 10**400 and back["bool"] is True
        # NaN is NULL in every float column; infinities stay numbers.
        stored = rows(any_url, "SELECT step, value FROM umlaut_metric_points ORDER BY step")
        assert stored[1] == (1, None) and stored[2] == (2, INF) and stored[3] == (3, -INF)
        typed = dict(rows(any_url, "SELECT key, value_num FROM umlaut_training_params"))
        assert typed == {"nan": None, "inf": INF, "neg": -INF, "bool": None, "big": INF}

    def test_filters_and_order_treat_nan_as_no_value(self, store: SqlExperimentStore) -> None:
        series = {"a": [NAN], "b": [1.0, NAN], "c": [INF], "d": [-INF, 2.0], "e": [NAN, 3.0]}
        writes: list[RunWrite] = []
        for run_id, values in series.items():
            pts = tuple(MetricPoint("m", v, s, T0_MS + s, s) for s, v in enumerate(values))
            writes += [start(run_id), MetricsLogged(run_id, pts)]
        store.write(writes)

        def ids(where: str | None, order: str | None = "run_id") -> list[str]:
            search = RunSearch(("exp",), parse_filter(where), parse_order_by(order))
            return [r.run_id for r in store.search_runs(search).runs]

        assert ids("metrics.m > -inf") == ["c", "d", "e"]  # a: NaN, b: last is NaN
        assert ids("metrics.m != 1") == ["c", "d", "e"]
        assert ids("metrics.m != nan") == ["c", "d", "e"]
        assert ids("metrics.m = nan") == ids("metrics.m < nan") == []
        assert ids("metrics.m.min <= 1") == ["b", "d"]
        assert ids("metrics.m.max = inf") == ["c"]
        assert ids("metrics.m is not null") == ["a", "b", "c", "d", "e"]
        assert ids(None, "metrics.m DESC") == ["c", "e", "d", "b", "a"]  # NaN last
        assert ids(None, "metrics.m ASC") == ["d", "e", "c", "a", "b"]
        assert ids(None, "metrics.m.max DESC") == ["c", "e", "d", "b", "a"]


class TestWrites:
    """One transaction per batch; large batches; typed rejection of unknown runs."""

    def test_a_failing_batch_writes_nothing(self, store: SqlExperimentStore) -> None:
        store.write([start("known")])
        with pytest.raises(TrainingRunNotFoundError, match="ghost"):
            store.write(
                [
                    start("new"),
                    TagsSet("known", {"before": "x"}),
                    MetricsLogged("known", (MetricPoint("m", 1.0, 0, T0_MS, 1),)),
                    ParamsLogged("ghost", {"a": 1}),
                ]
            )
        assert dict(store.get_run("known").tags) == {}
        assert list(store.metric_history("known", "m")) == []
        with pytest.raises(TrainingRunNotFoundError):
            store.get_run("new")

    def test_large_batches_across_runs_and_keys(self, store: SqlExperimentStore) -> None:
        writes: list[RunWrite] = [start(f"r{i}") for i in range(3)]
        points = tuple(MetricPoint(f"k{i % 7}", float(i), i, T0_MS + i, i) for i in range(25_000))
        writes += [MetricsLogged(f"r{i}", points) for i in range(3)]
        store.write(writes)
        store.write(writes[3:])  # replayed: nothing counted twice
        for i in range(3):
            summaries = store.get_run(f"r{i}").metrics
            assert sum(s.count for s in summaries.values()) == 25_000
            assert summaries["k0"].last == 24_997.0 and summaries["k6"].min == 6.0
        steps = [p.step for p in store.metric_history("r1", "k3")]
        assert steps == list(range(3, 25_000, 7))

    def test_params_of_any_size(self, store: SqlExperimentStore) -> None:
        params = {"text": "ü" * 300_000, "list": list(range(50_000))}
        store.write([start("r"), ParamsLogged("r", params)])
        assert dict(store.get_run("r").params) == params
        page = store.search_runs(RunSearch(("exp",), parse_filter("params.text like 'üü%'")))
        assert [r.run_id for r in page.runs] == ["r"]


class TestLongHistory:
    """A million points are streamed in keyset pages, never held at once."""

    def test_a_million_points(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        tracker = SqlTracker(f"sqlite:///{tmp_path / 'umlaut.db'}")
        store = open_experiment_store(tracker)
        try:
            store.write([start("big")])
            total, batch = 1_000_000, 100_000
            for first in range(0, total, batch):
                pts = tuple(
                    MetricPoint("loss", (i % 1000) / 1000, i, T0_MS + i, i)
                    for i in range(first, first + batch)
                )
                store.write([MetricsLogged("big", pts)])
            summary = store.get_run("big").metrics["loss"]
            assert (summary.count, summary.last_step, summary.max) == (total, total - 1, 0.999)
            pages: list[int] = []
            hot = tracker._hot

            def counting(action: str, work: Any, *args: Any) -> Any:
                pages.append(1)
                return hot(action, work, *args)

            monkeypatch.setattr(tracker, "_hot", counting)
            history = store.metric_history("big", "loss")
            assert next(history).step == 0
            assert len(pages) == 2  # the run's existence, then the first page only
            expected_step = 1
            for point in history:
                assert point.step == expected_step
                expected_step += 1
            assert expected_step == total
            # The existence check, the full pages, and the empty one that ends them.
            assert len(pages) == 1 + total // experiments_module.HISTORY_PAGE + 1
        finally:
            tracker.close()

    def test_pages_join_through_ties(
        self, store: SqlExperimentStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Pages cut inside runs of equal step and time resume at the right point."""
        monkeypatch.setattr(experiments_module, "HISTORY_PAGE", 7)
        pts = tuple(
            MetricPoint("m", float(i), i // 10, T0_MS + (i // 3) % 4, i) for i in range(100)
        )
        store.write([start("r"), MetricsLogged("r", pts)])
        got = [(p.step, p.timestamp_ms, p.point_id) for p in store.metric_history("r", "m")]
        assert got == sorted((p.step, p.timestamp_ms, p.point_id) for p in pts)


_WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from umlaut_sql import SqlTracker
    from umlaut_sql._experiments import open_experiment_store
    from umlaut_core.experiments.records import MetricPoint
    from umlaut_core.experiments.writes import MetricsLogged
    url, worker, go = json.loads(sys.argv[1])
    tracker = SqlTracker(url)
    store = open_experiment_store(tracker)
    while not os.path.exists(go):
        time.sleep(0.005)
    # Each worker writes its own points and replays its neighbour's, in batches.
    for first in range(0, 2000, 100):
        for owner in (worker, 1 - worker):
            points = tuple(
                MetricPoint("m", float(owner), owner * 10_000 + i, i, owner * 10_000 + i)
                for i in range(first, first + 100)
            )
            store.write([MetricsLogged("shared", points)])
    tracker.close()
    """
)


@pytest.mark.slow
class TestTwoProcesses:
    """Two processes writing one run's points (each also replaying the other's) lose
    none and count none twice."""

    def test_no_point_lost_or_counted_twice(
        self, any_url: str, store: SqlExperimentStore, tmp_path: Path
    ) -> None:
        store.write([start("shared")])
        go = tmp_path / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, json.dumps([any_url, w, str(go)])],
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in (0, 1)
        ]
        go.touch()
        errors = [p.communicate(timeout=300)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errors
        summary = store.get_run("shared").metrics["m"]
        assert (summary.count, summary.min, summary.max) == (4000, 0.0, 1.0)
        assert (summary.last_step, summary.last) == (11_999, 1.0)
        steps = [p.step for p in store.metric_history("shared", "m")]
        assert steps == [*range(2000), *range(10_000, 12_000)]


class TestPageTokens:
    """Tokens are the store's own; one from another order is refused cleanly."""

    def test_token_of_another_order(self, store: SqlExperimentStore) -> None:
        store.write(
            [start(f"r{i}") for i in range(3)]
            + [ParamsLogged(f"r{i}", {"p": "x" if i else 1}) for i in range(3)]
        )
        # Its second page starts after a string param: a segment the metric order
        # does not have.
        by_param = RunSearch(("exp",), order_by=parse_order_by("params.p"), limit=2)
        token = store.search_runs(by_param).next_page_token
        assert token is not None
        by_metric = dataclasses.replace(
            by_param, order_by=parse_order_by("metrics.m"), page_token=token
        )
        with pytest.raises(UmlautError, match="page_token"):
            store.search_runs(by_metric)
