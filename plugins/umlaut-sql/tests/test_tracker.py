"""Store-specific behaviour: audit writes, SQLite settings, defaults, errors, restarts."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from umlaut_sql import SqlTracker, _audit

from umlaut_core import Umlaut
from umlaut_core.exceptions import BackendError, ConfigurationError
from umlaut_core.ids import encode_id
from umlaut_core.records import AuditRecord, RunQuery
from umlaut_core.testing.models import Threshold

T0 = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)


def _record(i: int, name: str = "m", **extra: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        # Ids carry their record's time, as the ones run_model makes do.
        "id": encode_id(int((T0.timestamp() + i) * 1000), i),
        "model_name": name, "version": 1, "selector": "latest",
        "inputs_json": f'{{"i":{i}}}', "output_json": "true", "status": "ok",
        "started_at": T0 + dt.timedelta(seconds=i), "duration_ms": 0.5,
    }  # fmt: skip
    return AuditRecord(**{**fields, **extra})


class TestRecordRuns:
    """Audit records are written lazily, in one transaction, idempotently."""

    def test_counts_only_new_records(self, any_tracker: SqlTracker) -> None:
        assert any_tracker.record_runs(_record(i) for i in range(2500)) == 2500
        again = (_record(i) for i in range(2400, 2600))  # 100 known, 100 new
        assert any_tracker.record_runs(again) == 100
        assert any_tracker.record_runs([_record(7)]) == 0
        assert len(any_tracker.query_runs(RunQuery(limit=10_000))) == 2600
        # A large batch (PostgreSQL: through COPY) skips what is held just the same.
        large = (_record(i) for i in range(2000, 3500))  # 600 known, 900 new
        assert any_tracker.record_runs(large) == 900
        assert len(any_tracker.query_runs(RunQuery(limit=10_000))) == 3500

    def test_failing_iterable_writes_nothing(self, any_tracker: SqlTracker) -> None:
        def records() -> Iterator[AuditRecord]:
            for i in range(1500):  # past the first chunk of 1000
                yield _record(i)
            raise RuntimeError("spill file vanished")

        with pytest.raises(RuntimeError, match="spill file vanished"):
            any_tracker.record_runs(records())
        assert any_tracker.query_runs(RunQuery()) == []
        assert any_tracker.record_runs([_record(1)]) == 1  # the connection still works

    def test_iterable_is_consumed_lazily(self, any_tracker: SqlTracker) -> None:
        pulled: list[int] = []

        def records() -> Iterator[AuditRecord]:
            for i in range(3000):
                pulled.append(i)
                yield _record(i)

        gen = records()
        assert any_tracker.record_runs(gen) == 3000
        assert len(pulled) == 3000

    def test_time_filters_and_paging(self, any_tracker: SqlTracker) -> None:
        any_tracker.record_runs(_record(i, tags={"k": str(i)}) for i in range(10))
        window = RunQuery(since=T0 + dt.timedelta(seconds=3), until=T0 + dt.timedelta(seconds=6))
        assert [r.inputs["i"] for r in any_tracker.query_runs(window)] == [5, 4, 3]
        page = any_tracker.query_runs(RunQuery(limit=4))
        rest = any_tracker.query_runs(RunQuery(limit=4, before=page[-1].id))
        assert [r.inputs["i"] for r in page + rest] == [9, 8, 7, 6, 5, 4, 3, 2]
        assert page[0].tags == {"k": "9"} and page[0].started_at == T0 + dt.timedelta(seconds=9)

    def test_timestamps_are_fixed_width_utc_text(self, any_tracker: SqlTracker) -> None:
        any_tracker.record_runs([_record(0)])
        with any_tracker._engine.connect() as conn:
            text = conn.exec_driver_sql("SELECT started_at FROM umlaut_runs").scalar()
        assert text == "2024-03-01T09:30:00.000000+00:00"


class TestScanRunColumns:
    """Column scans page by id, stop at the limit, and read like whole records."""

    def test_pages_and_limits(
        self, any_tracker: SqlTracker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_audit, "SCAN_PAGE", 3)
        any_tracker.record_runs(_record(i) for i in range(9))
        query = RunQuery(model_name="m")
        # A full last page is followed by an empty one, which yields no chunk.
        assert [len(c) for c in any_tracker.scan_run_columns(query)] == [3, 3, 3]
        for limit in (1, 3, 4, 8, 9, 10):
            chunks = list(any_tracker.scan_run_columns(query, limit))
            got = [json.loads(text)["i"] for c in chunks for text in c.inputs_json]
            assert got == list(range(min(limit, 9)))
            assert chunks[-1].latest == T0 + dt.timedelta(seconds=min(limit, 9) - 1)

    def test_a_drift_monitor_reads_the_same(self, any_tracker: SqlTracker) -> None:
        pytest.importorskip("numpy")
        from umlaut_core.datasets.monitor import DriftMonitor

        # "late" is null in the first 3,000 outputs: its kind comes from the first 2,000.
        any_tracker.record_runs(
            _record(i, output_json=json.dumps({"p": i % 7, "k": "ab"[i % 2],
                                               "late": "xy"[i % 2] if i >= 3_000 else None}),
                    duration_ms=i / 7)
            if i % 11 else
            _record(i, output_json=None, status="error", error_type="x.InputValidationError")
            for i in range(25_000)
        )  # fmt: skip
        query = RunQuery(model_name="m")
        by_columns, by_records = DriftMonitor(), DriftMonitor()
        by_columns.add_columns(any_tracker.scan_run_columns(query))
        by_columns.add_baseline_columns(any_tracker.scan_run_columns(query, 1_000))
        by_records.add(any_tracker.scan_runs(query))
        by_records.add_baseline(itertools.islice(any_tracker.scan_runs(query), 1_000))
        report = by_columns.report("m", 1)
        assert report == by_records.report("m", 1)
        assert [p.kind for p in report.predictions] == ["numeric", "categorical", "numeric"]
        assert (report.operations.calls, report.operations.refused) == (25_000, 2_273)
        assert report.baseline_calls == 1_000 - 91  # the first 1,000 records hold 91 errors


class TestRowText:
    """Records become rows with the same fixed-width time text whichever path they take."""

    def test_cached_second_text_matches_fmt_time(self) -> None:
        import random

        from umlaut_sql._rows import _utc_text, fmt_time

        rng = random.Random(7)
        moments = [
            dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
            dt.datetime(1970, 1, 1, 0, 0, 0, 0, tzinfo=dt.UTC),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 1, 1, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        ]
        t = T0
        for _ in range(5000):
            # Mostly neighbours within a second or two (the cache's case), some far jumps
            # (a replayed or migrated record: the same clock time on another day).
            step = rng.choice([rng.randrange(0, 2_000_000), rng.randrange(-(10**12), 10**12)])
            t += dt.timedelta(microseconds=step)
            moments.append(t)
            moments.append(t + dt.timedelta(days=1))
        assert [_utc_text(m) for m in moments] == [fmt_time(m) for m in moments]

    def test_a_zero_fraction_keeps_the_fixed_width(self) -> None:
        # That records written as field tuples store what records would is checked
        # for every backend by the conformance suite.
        from umlaut_sql._rows import run_row

        assert run_row(_record(0))[10] == "2024-03-01T09:30:00.000000+00:00"

    def test_tags_text_is_reused_only_for_equal_tags(self) -> None:
        from umlaut_sql._rows import _tags_text, dump

        shared = {"b": "1", "a": "2"}
        sequence = [shared, {"a": "2", "b": "1"}, {"a": "2"}, shared]
        assert [_tags_text(t) for t in sequence] == [dump(t) for t in sequence]
        shared["c"] = "3"  # the same dict, changed since it was last encoded
        assert _tags_text(shared) == dump(shared)


class TestReferenceIndex:
    """The partial reference-id index still serves history(reference_id=…)."""

    def test_lookup_by_reference_id_uses_the_index(self, tmp_path: Path) -> None:

        tracker = SqlTracker(f"sqlite:///{tmp_path / 'umlaut.db'}")
        try:
            tracker.record_runs(
                [_record(i, reference_id=f"ref-{i}" if i % 2 else None) for i in range(20)]
            )
            (found,) = tracker.query_runs(RunQuery(reference_id="ref-7"))
            assert found.reference_id == "ref-7"
            sql, params = tracker._runs_sql(RunQuery(reference_id="ref-7"))
            with sqlite3.connect(tmp_path / "umlaut.db") as conn:
                plan = " ".join(str(r) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            conn.close()
            assert "ix_umlaut_runs_reference_id" in plan
        finally:
            tracker.close()


class TestSqliteSettings:
    """WAL, busy timeout and the durability setting are applied and documented."""

    def test_wal_and_defaults(self, tmp_path: Path) -> None:
        tracker = SqlTracker(f"sqlite:///{tmp_path / 'u.db'}")
        try:
            with tracker._engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        finally:
            tracker.close()

    def test_full_durability_and_timeout_options(self, tmp_path: Path) -> None:
        tracker = SqlTracker(f"sqlite:///{tmp_path / 'u.db'}", synchronous="full", busy_timeout=2)
        try:
            with tracker._engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2000
        finally:
            tracker.close()

    def test_bad_options_are_configuration_errors(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'u.db'}"
        with pytest.raises(ConfigurationError, match="synchronous"):
            SqlTracker(url, synchronous="SOMETIMES")
        with pytest.raises(ConfigurationError, match=r"unknown tracker option.*'pool_sise'"):
            SqlTracker(url, pool_sise=3)
        with pytest.raises(ConfigurationError, match="in-memory"):
            SqlTracker("sqlite://")
        with pytest.raises(ConfigurationError, match="mssql"):
            SqlTracker("mssql+pyodbc://h/db")

    def test_locked_database_is_a_backend_error(self, tmp_path: Path) -> None:
        path = tmp_path / "u.db"
        tracker = SqlTracker(f"sqlite:///{path}", busy_timeout=0.2)
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(BackendError, match=r"(?s)locked.*busy_timeout"):
                tracker.record_runs([_record(1)])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert tracker.record_runs([_record(1)]) == 1
        tracker.close()


class TestDefaults:
    """The embedded default lives in ./.umlaut; PostgreSQL asks for an artifact store."""

    def test_embedded_default_locations(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        for var in ("UMLAUT_HOME", "UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI", "UMLAUT_PROFILE"):
            monkeypatch.delenv(var, raising=False)
        with Umlaut() as um:
            assert isinstance(um.tracker, SqlTracker)
            assert um.tracker.default_artifact_uri == ".umlaut/artifacts"
            um.track_model(Threshold(1), "Default")
            assert um.run_model("Default", {"x": 3}) == {"above": True, "limit": 1}
        assert (tmp_path / ".umlaut" / "umlaut.db").is_file()
        assert list((tmp_path / ".umlaut" / "artifacts" / "bundles").rglob("*.zip"))

    def test_artifacts_next_to_the_database(self, tmp_path: Path) -> None:
        tracker = SqlTracker(f"sqlite:///{tmp_path / 'deep' / 'er' / 'u.db'}")
        tracker.close()
        assert tracker.default_artifact_uri == str(tmp_path / "deep" / "er" / "artifacts")

    @pytest.mark.postgres
    def test_postgres_without_blobs_needs_an_artifact_uri(self, postgres_database: str) -> None:
        # By default PostgreSQL keeps bytes in the database (test_datasets.py); told
        # not to, it asks for a store instead of guessing one.
        with pytest.raises(ConfigurationError, match="artifact_uri"):
            Umlaut(postgres_database, tracker_options={"store_blobs": False})

    def test_plugin_import_is_cheap(self) -> None:
        code = (
            "import sys, umlaut_sql, umlaut_sql.plugin; "
            "from umlaut_core import get_plugin_manager; get_plugin_manager(); "
            "print('sqlalchemy' in sys.modules)"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.stdout.strip() == "False", done.stderr


class TestSecrets:
    """Passwords appear in no repr, URI or error message."""

    def test_unreachable_server_error_hides_password(self) -> None:
        with pytest.raises(BackendError) as info:
            SqlTracker("postgresql+psycopg://ada:s3cr3t-pw@127.0.0.1:9/umlaut")
        text = f"{info.value} {info.value!r}"
        assert "s3cr3t-pw" not in text
        assert "postgresql+psycopg://ada:***@127.0.0.1:9/umlaut" in text
        assert "server is running" in text

    def test_repr_and_uri_hide_password(self, postgres_server: Any) -> None:
        url = postgres_server.admin_url.replace("postgres@", "postgres:hunter2@")
        tracker = SqlTracker(url)  # trust auth: any password is accepted
        try:
            assert "hunter2" not in repr(tracker) + tracker.uri
            with Umlaut(tracker=tracker, artifact_store=None, artifact_uri="a") as um:
                assert "hunter2" not in repr(um)
        finally:
            tracker.close()


@pytest.mark.postgres
@pytest.mark.slow
class TestServerRestart:
    """A PostgreSQL restart costs at most one failed call; the tracker recovers."""

    @pytest.fixture
    def own_server(self) -> Iterator[Any]:
        from _services.postgres import PostgresServer, PostgresUnavailable

        server = PostgresServer()
        try:
            server.start()
        except PostgresUnavailable as exc:
            server.stop()
            if os.environ.get("CI"):
                pytest.fail(str(exc))
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        yield server
        server.stop()

    def test_recovers_without_a_new_tracker(self, own_server: Any, tmp_path: Path) -> None:
        um = Umlaut(own_server.create_database(), str(tmp_path / "artifacts"))
        try:
            um.track_model(Threshold(1), "R")
            um.promote("R", 1, "Production")
            assert um.run_model("R", {"x": 2}, stage="Production")["above"] is True
            um.list_models()  # a pooled (cold-path) connection exists too
            own_server.restart()
            for call in (
                lambda: um.run_model("R", {"x": 2}, stage="Production"),
                lambda: um.list_models(),
                lambda: um.track_model(Threshold(2), "R"),
            ):
                try:
                    call()
                except BackendError:
                    call()  # allowed to fail once; must work on the next try
            assert len(um.history("R")) >= 1
            assert [v.version for v in um.list_versions("R")] == [1, 2]
        finally:
            um.close()


class TestReadmeQueries:
    """The plain-SQL queries in the README run on both dialects and answer correctly."""

    def test_queries(self, any_tracker: SqlTracker) -> None:
        readme = (Path(__file__).parents[1] / "README.md").read_text()
        queries = [block.split("```")[0] for block in readme.split("```sql\n")[1:]]
        assert len(queries) == 3
        any_tracker.record_runs(
            [
                _record(1, reference_id="order-1042"),
                _record(
                    2, status="error", output_json=None, error_type="TypeError", error_message="bad"
                ),
                _record(3, reference_id="order-1042"),
            ]
        )
        with any_tracker._engine.connect() as conn:
            summary, trail, failures = (conn.exec_driver_sql(q).all() for q in queries)
        assert [tuple(r[:4]) for r in summary] == [("m", 1, 3, 1)]
        assert [r[4] for r in trail] == ["ok", "ok"]
        assert [(r[3], r[4]) for r in failures] == [("TypeError", "bad")]


class TestSqliteUrls:
    """SQLite URLs: a host part, ``~`` and an uncreatable folder are explained."""

    @pytest.mark.parametrize("uri", ["sqlite://relative", "sqlite://relative/x.db"])
    def test_host_part_is_refused(
        self, uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ConfigurationError, match="three slashes") as info:
            SqlTracker(uri)
        assert "four slashes" in str(info.value) and "in-memory" not in str(info.value)
        assert list(tmp_path.iterdir()) == []

    def test_tilde_is_the_home_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.chdir(tmp_path)
        tracker = SqlTracker("sqlite:///~/stores/u.db")
        tracker.close()
        assert (tmp_path / "home" / "stores" / "u.db").is_file()
        assert not (tmp_path / "~").exists()
        assert tracker.default_artifact_uri == str(tmp_path / "home" / "stores" / "artifacts")

    def test_uncreatable_folder_is_a_configuration_error(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("x")
        with pytest.raises(ConfigurationError, match="cannot create the folder") as info:
            SqlTracker(f"sqlite:///{tmp_path / 'file' / 'sub' / 'u.db'}")
        assert str(tmp_path / "file" / "sub") in str(info.value)


class TestMissingDriver:
    """Without psycopg, a PostgreSQL URL names the extra to install."""

    def test_missing_psycopg(self) -> None:
        code = (
            "import sys; sys.modules['psycopg'] = None\n"
            "from umlaut_sql import SqlTracker\n"
            "from umlaut_core.exceptions import ConfigurationError\n"
            "try:\n"
            "    SqlTracker('postgresql://ada:Zm9v/YmFy+cXV4@127.0.0.1:9/umlaut')\n"
            "except ConfigurationError as exc:\n"
            "    print('typed:', exc)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.stdout.startswith("typed:"), done.stdout + done.stderr
        assert "pip install 'umlaut-sql[postgresql]'" in done.stdout
        assert "Zm9v" not in done.stdout + done.stderr


class TestOddPasswords:
    """Passwords with unencoded / # ? @ + or in the query string never reach a message."""

    @pytest.mark.parametrize(
        ("uri", "secret"),
        [
            ("postgresql+psycopg://ada:Zm9v/YmFy+cXV4@127.0.0.1:9/umlaut", "Zm9v/YmFy+cXV4"),
            ("postgresql+psycopg://ada:pa#ss?w0rd@127.0.0.1:9/umlaut", "pa#ss?w0rd"),
            ("postgresql+psycopg://ada@127.0.0.1:9/umlaut?password=qS3cret", "qS3cret"),
        ],
    )
    def test_unreachable_server(self, uri: str, secret: str) -> None:
        with pytest.raises(BackendError) as info:
            SqlTracker(uri, connect_args={"connect_timeout": 2})
        text = f"{info.value} {info.value!r}"
        for part in {secret, secret[:4], secret[-4:]}:
            assert part not in text, text
        assert "127.0.0.1:9/umlaut" in text
