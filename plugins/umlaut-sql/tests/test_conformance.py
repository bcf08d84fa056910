"""The SQL tracker passes the core's conformance suite on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from umlaut_sql import SqlTracker

from umlaut_core.testing import TrackerSuite


class TestSqliteTracker(TrackerSuite):
    """SqlTracker on a SQLite file in tmp_path."""

    @pytest.fixture
    def tracker(self, tmp_path: Path) -> Iterator[SqlTracker]:
        tracker = SqlTracker(f"sqlite:///{tmp_path / 'umlaut.db'}")
        yield tracker
        tracker.close()


@pytest.mark.postgres
class TestPostgresTracker(TrackerSuite):
    """SqlTracker on a real PostgreSQL server (one database shared by the session)."""

    @pytest.fixture
    def tracker(self, shared_pg_url: str) -> Iterator[SqlTracker]:
        tracker = SqlTracker(shared_pg_url)
        yield tracker
        tracker.close()
