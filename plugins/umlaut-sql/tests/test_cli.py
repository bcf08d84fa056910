"""``umlaut db upgrade``: added by umlaut-sql through ``umlaut_register_commands``."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner, Result
from umlaut_sql._schema import CURRENT_VERSION

from umlaut_core import Umlaut
from umlaut_core.cli import make_cli


def _schema_tests() -> ModuleType:
    """test_schema.py, for the schema-1 database it builds by hand."""
    path = Path(__file__).with_name("test_schema.py")
    spec = importlib.util.spec_from_file_location("umlaut_sql_test_schema", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


schema_tests = _schema_tests()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith("UMLAUT_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("UMLAUT_HOME", str(tmp_path / ".umlaut"))
    monkeypatch.chdir(tmp_path)


def db(url: str, *args: str) -> Result:
    return CliRunner().invoke(make_cli(), ["--tracking-uri", url, "db", "upgrade", *args])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_v1(url: str, tmp_path: Path) -> None:
    if url.startswith("sqlite"):
        schema_tests._sqlite_exec(tmp_path / "umlaut.db", schema_tests.v1_ddl("sqlite"))
    else:
        schema_tests._pg_exec(url, schema_tests.v1_ddl("postgresql"))


class TestDbUpgrade:
    """db upgrade --dry-run changes nothing; without it the schema is brought up to date."""

    def test_dry_run_on_schema_1_then_upgrade(self, any_url: str, tmp_path: Path) -> None:
        _make_v1(any_url, tmp_path)
        before = _sha(tmp_path / "umlaut.db") if any_url.startswith("sqlite") else None
        dry = db(any_url, "--dry-run")
        assert dry.exit_code == 0, dry.output
        lines = dry.stdout.splitlines()
        assert "schema version: 1" in lines
        assert f"target version: {CURRENT_VERSION}" in lines
        assert any(line.startswith("  1 -> 2: Schema 2: audit records gain tags") for line in lines)
        assert any(
            line.startswith(f"  {CURRENT_VERSION - 1} -> {CURRENT_VERSION}: ") for line in lines
        )
        assert lines[-1] == "dry run: nothing was changed"
        if before is not None:
            assert _sha(tmp_path / "umlaut.db") == before
        assert "schema version: 1" in db(any_url, "--dry-run").stdout  # still 1

        done = db(any_url)
        assert done.exit_code == 0, done.output
        assert done.stdout.splitlines()[-1] == f"upgraded to schema version {CURRENT_VERSION}"
        again = db(any_url, "--dry-run")
        assert "up to date: nothing to do" in again.stdout
        with Umlaut(any_url, str(tmp_path / "artifacts")) as umlaut:
            assert umlaut.history("Old")[0].reference_id == "ref-1"  # history survived

    def test_missing_database_is_not_created(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'new.db'}"
        result = db(url, "--dry-run")
        assert result.exit_code == 0, result.output
        assert "schema version: none (no umlaut tables yet)" in result.stdout
        assert not (tmp_path / "new.db").exists()

    def test_embedded_default(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(make_cli(), ["db", "upgrade", "--dry-run"])
        assert result.exit_code == 0, result.output
        assert "database: sqlite:///" in result.stdout

    def test_other_trackers_are_refused_in_one_line(self) -> None:
        result = db("memory:", "--dry-run")
        assert result.exit_code == 1
        (line,) = result.stderr.splitlines()
        assert line.startswith("ConfigurationError: umlaut db upgrade is for umlaut-sql")

    def test_foreign_database_is_refused_untouched(self, tmp_path: Path) -> None:
        path = tmp_path / "other.db"
        schema_tests._sqlite_exec(path, ["CREATE TABLE customers (id INTEGER)"])
        before = _sha(path)
        result = db(f"sqlite:///{path}")
        assert result.exit_code == 1
        assert result.stderr.startswith("SchemaError: ") and result.stderr.count("\n") == 1
        assert _sha(path) == before
