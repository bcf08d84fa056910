"""Foreign and newer databases are refused untouched; old schemas are upgraded."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from umlaut_sql import SqlTracker
from umlaut_sql._schema import CURRENT_VERSION

from umlaut_core.exceptions import SchemaError
from umlaut_core.records import RunQuery

# The first development schema (version 1), written out by hand: what an early
# database on disk looks like. Version 2 added runs.tags and the started_at index.
V1_DDL = [
    "CREATE TABLE umlaut_schema (version INTEGER PRIMARY KEY, applied_at VARCHAR(32) NOT NULL)",
    "CREATE TABLE umlaut_models (name VARCHAR(255) PRIMARY KEY, description TEXT, "
    "latest_version INTEGER NOT NULL, created_at VARCHAR(32) NOT NULL)",
    "CREATE TABLE umlaut_versions (name VARCHAR(255) NOT NULL REFERENCES umlaut_models(name), "
    "version INTEGER NOT NULL, digest VARCHAR(100) NOT NULL, flavor VARCHAR(100) NOT NULL, "
    "artifact_uri TEXT NOT NULL, manifest TEXT NOT NULL, params TEXT NOT NULL, "
    "metrics TEXT NOT NULL, tags TEXT NOT NULL, description TEXT, "
    "created_at VARCHAR(32) NOT NULL, created_by VARCHAR(255), PRIMARY KEY (name, version), "
    "CONSTRAINT uq_umlaut_versions_digest UNIQUE (name, digest))",
    "CREATE TABLE umlaut_aliases (model_name VARCHAR(255) NOT NULL, alias VARCHAR(255) NOT NULL, "
    "version INTEGER NOT NULL, updated_at VARCHAR(32) NOT NULL, PRIMARY KEY (model_name, alias))",
    "CREATE TABLE umlaut_stage_ledger (id {serial} PRIMARY KEY, model_name VARCHAR(255) NOT NULL, "
    "alias VARCHAR(255) NOT NULL, from_version INTEGER, to_version INTEGER NOT NULL, "
    "changed_at VARCHAR(32) NOT NULL, changed_by VARCHAR(255), reason TEXT)",
    "CREATE TABLE umlaut_runs (id VARCHAR(26) PRIMARY KEY, model_name VARCHAR(255) NOT NULL, "
    "version INTEGER NOT NULL, selector VARCHAR(300) NOT NULL, inputs TEXT NOT NULL, "
    "output TEXT, status VARCHAR(10) NOT NULL, error_type TEXT, error_message TEXT, "
    "reference_id VARCHAR(255), started_at VARCHAR(32) NOT NULL, "
    "duration_ms DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX ix_umlaut_runs_model_id ON umlaut_runs (model_name, id)",
    "INSERT INTO umlaut_schema VALUES (1, '2024-01-01T00:00:00.000000+00:00')",
    "INSERT INTO umlaut_models VALUES ('Old', 'from v1', 1, '2024-01-01T00:00:00.000000+00:00')",
    "INSERT INTO umlaut_versions VALUES ('Old', 1, 'sha256:ab', 'class', 'file:///x.zip', "
    "'{}', '{}', '{}', '{}', NULL, '2024-01-01T00:00:00.000000+00:00', 'ada')",
    "INSERT INTO umlaut_aliases VALUES ('Old', 'Production', 1, "
    "'2024-01-02T00:00:00.000000+00:00')",
    "INSERT INTO umlaut_runs VALUES ('01HQ0000000000000000000000', 'Old', 1, 'latest', "
    "'{\"x\":1}', '2', 'ok', NULL, NULL, 'ref-1', '2024-01-03T00:00:00.000000+00:00', 1.5)",
]


def v1_ddl(dialect: str) -> list[str]:
    serial = "SERIAL" if dialect == "postgresql" else "INTEGER"
    return [sql.replace("{serial}", serial) for sql in V1_DDL]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pg_tables(url: str) -> list[str]:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return sorted(r[0] for r in rows)


def _pg_exec(url: str, statements: list[str]) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for sql in statements:
            conn.execute(sql)  # type: ignore[arg-type]


def _run_indexes(url: str) -> list[str]:
    """The definitions of umlaut_runs' indexes, as the database itself reports them."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'umlaut_runs' AND sql IS NOT NULL ORDER BY name"
            ).fetchall()
        conn.close()
        return [" ".join(r[0].split()) for r in rows]
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'umlaut_runs' ORDER BY indexname"
        ).fetchall()
    return [r[0] for r in rows]


def _sqlite_exec(path: Path, statements: list[str]) -> None:
    with sqlite3.connect(path) as conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


class TestForeignSqliteFile:
    """A SQLite file that is not umlaut's, or not SQLite at all, is refused untouched."""

    def test_other_applications_database(self, tmp_path: Path) -> None:
        path = tmp_path / "shop.db"
        _sqlite_exec(path, ["CREATE TABLE orders (id INTEGER)", "INSERT INTO orders VALUES (1)"])
        before = _sha(path)
        with pytest.raises(SchemaError, match=r"not an umlaut database.*orders"):
            SqlTracker(f"sqlite:///{path}")
        assert _sha(path) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.db"]

    def test_file_that_is_not_sqlite(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.db"
        path.write_bytes(b"these are my notes, not a database\n" * 200)
        before = _sha(path)
        with pytest.raises(SchemaError, match="not a SQLite database"):
            SqlTracker(f"sqlite:///{path}")
        assert _sha(path) == before

    def test_newer_schema(self, tmp_path: Path) -> None:
        path = tmp_path / "future.db"
        _sqlite_exec(path, [*V1_DDL[:1], "INSERT INTO umlaut_schema VALUES (99, 'later')"])
        before = _sha(path)
        with pytest.raises(SchemaError, match=rf"version 99, newer than the {CURRENT_VERSION}"):
            SqlTracker(f"sqlite:///{path}")
        assert _sha(path) == before


@pytest.mark.postgres
class TestForeignPostgresDatabase:
    """On PostgreSQL, half-umlaut or newer databases are refused; others' tables are fine."""

    def test_umlaut_tables_without_schema_version(self, postgres_database: str) -> None:
        _pg_exec(postgres_database, ["CREATE TABLE umlaut_runs (id TEXT)"])
        with pytest.raises(SchemaError, match="not an umlaut database"):
            SqlTracker(postgres_database)
        assert _pg_tables(postgres_database) == ["umlaut_runs"]

    def test_newer_schema(self, postgres_database: str) -> None:
        _pg_exec(postgres_database, [V1_DDL[0], "INSERT INTO umlaut_schema VALUES (7, 'x')"])
        with pytest.raises(SchemaError, match="version 7"):
            SqlTracker(postgres_database)
        assert _pg_tables(postgres_database) == ["umlaut_schema"]

    def test_shares_a_database_with_other_tables(self, postgres_database: str) -> None:
        _pg_exec(postgres_database, ["CREATE TABLE orders (id INTEGER)"])
        SqlTracker(postgres_database).close()
        assert "orders" in _pg_tables(postgres_database)
        assert "umlaut_runs" in _pg_tables(postgres_database)


class TestMigration:
    """A schema-1 database is upgraded in place and its history survives."""

    def _make_v1(self, any_url: str, tmp_path: Path) -> None:
        if any_url.startswith("sqlite"):
            _sqlite_exec(tmp_path / "umlaut.db", v1_ddl("sqlite"))
        else:
            _pg_exec(any_url, v1_ddl("postgresql"))

    def test_upgrade_keeps_data(self, any_url: str, tmp_path: Path) -> None:
        self._make_v1(any_url, tmp_path)
        tracker = SqlTracker(any_url)
        try:
            assert tracker.get_version("Old", alias="Production").digest == "sha256:ab"
            (old,) = tracker.query_runs(RunQuery(model_name="Old"))
            assert (old.inputs, old.output, old.reference_id, old.tags) == (
                {"x": 1},
                2,
                "ref-1",
                {},
            )
            assert old.started_at == dt.datetime(2024, 1, 3, tzinfo=dt.UTC)
            with tracker._engine.connect() as conn:
                applied = conn.exec_driver_sql(
                    "SELECT version FROM umlaut_schema ORDER BY version"
                ).scalars()
                assert list(applied) == list(range(1, CURRENT_VERSION + 1))
        finally:
            tracker.close()

    def test_upgraded_database_takes_new_data(self, any_url: str, tmp_path: Path) -> None:
        self._make_v1(any_url, tmp_path)
        from umlaut_core.records import AuditRecord

        record: Any = AuditRecord(
            id="01HQ0000000000000000000001", model_name="Old", version=1, selector="latest",
            inputs_json="{}", output_json="1", status="ok",
            started_at=dt.datetime(2024, 2, 1, tzinfo=dt.UTC), duration_ms=1.0,
            tags={"team": "ops"},
        )  # fmt: skip
        with_tracker = SqlTracker(any_url)
        try:
            assert with_tracker.record_runs([record]) == 1
            newest = with_tracker.query_runs(RunQuery(model_name="Old"))[0]
            assert newest.tags == {"team": "ops"}
            moved = with_tracker.set_alias("Old", "Staging", 1, changed_by="ada", reason="r")
            assert moved.from_version is None
        finally:
            with_tracker.close()
        # Reopening a current database runs no step again.
        SqlTracker(any_url).close()

    def test_upgraded_database_has_the_indexes_of_a_new_one(
        self, any_url: str, tmp_path: Path, request: pytest.FixtureRequest
    ) -> None:
        self._make_v1(any_url, tmp_path)
        SqlTracker(any_url).close()
        fresh_url = (
            f"sqlite:///{tmp_path / 'fresh' / 'umlaut.db'}"
            if any_url.startswith("sqlite")
            else str(request.getfixturevalue("postgres_server").create_database())
        )
        SqlTracker(fresh_url).close()
        upgraded = _run_indexes(any_url)
        assert upgraded == _run_indexes(fresh_url)
        assert any("reference_id" in d and "IS NOT NULL" in d.upper() for d in upgraded)
