"""The core conformance suite, unchanged, against an MLflow server and a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from umlaut_core.testing import TrackerSuite

pytest.importorskip("mlflow")

from umlaut_mlflow._tracker import MlflowTracker

pytestmark = pytest.mark.mlflow


class TestMlflowServerTracker(TrackerSuite):
    """The tracker on a real `mlflow server` over HTTP."""

    large_batch = 250  # past its 200-record chunk; a run per record is slow

    @pytest.fixture
    def tracker(self, mlflow_server: str) -> Iterator[MlflowTracker]:
        tracker = MlflowTracker(f"mlflow+{mlflow_server}")
        yield tracker
        tracker.close()


class TestMlflowSqliteTracker(TrackerSuite):
    """The tracker on an MLflow SQLite database, without a server."""

    large_batch = 250  # past its 200-record chunk; a run per record is slow

    @pytest.fixture
    def tracker(self, mlflow_sqlite_uri: str) -> Iterator[MlflowTracker]:
        tracker = MlflowTracker(mlflow_sqlite_uri)
        yield tracker
        tracker.close()
