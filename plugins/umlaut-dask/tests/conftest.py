"""One LocalCluster (2 worker processes, 1 thread each) for the whole session; stores."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Worker processes are spawned with this process's sys.path: _task_helpers must be
# importable there by its plain name (see that module).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    """A ``distributed.Client`` on a real LocalCluster with 2 worker processes."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture(scope="session")
def pg_url(postgres_server: Any) -> str:
    """One PostgreSQL database for the session (tests use their own model names)."""
    return str(postgres_server.create_database())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(tracking URI, artifact folder): a SQLite file (the client writes) or
    PostgreSQL (the workers write)."""
    artifacts = str(tmp_path / "artifacts")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'umlaut.db'}", artifacts
    return str(request.getfixturevalue("pg_url")), artifacts
