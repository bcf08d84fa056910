"""Fixtures for the umlaut-sql tests: SQLite files in tmp_path, PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from umlaut_sql import SqlTracker


@pytest.fixture(scope="session")
def shared_pg_url(postgres_server: Any) -> str:
    """One database for the whole session (suite tests use unique model names)."""
    return str(postgres_server.create_database())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'umlaut.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def any_tracker(any_url: str) -> Iterator[SqlTracker]:
    tracker = SqlTracker(any_url)
    yield tracker
    tracker.close()
