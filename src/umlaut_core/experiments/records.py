"""The typed records of experiment tracking: experiments, training runs, metric points.

A *training run* is one execution of training code (params, metrics, tags, artifacts,
child runs). It is never called a bare "run" in this package: an *audit record* is one
call of a model (:class:`~umlaut_core.AuditRecord`), and the two stay apart in every
name. All records are frozen dataclasses; mappings are read-only views by convention.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

__all__ = [
    "Experiment",
    "LinkedVersion",
    "MetricPoint",
    "MetricSummary",
    "RunArtifact",
    "RunPage",
    "RunStatus",
    "TrainingRun",
]


def _empty() -> Mapping[str, Any]:
    return {}


class RunStatus(enum.StrEnum):
    """Where a training run is in its life. Only RUNNING is not final."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    #: The process died without ending the run; set by a later reader that noticed
    #: (same host: the process is gone; any host: no heartbeat for ``stale_after``).
    KILLED = "KILLED"

    @property
    def final(self) -> bool:
        return self is not RunStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of training runs (created on first use)."""

    name: str
    created_at: datetime
    #: The backend's own id where it has one (MLflow's experiment id), else the name.
    experiment_id: str


class MetricPoint(NamedTuple):
    """One value of a metric: a float (NaN and ±inf kept), an int step, a time.

    ``timestamp_ms`` is milliseconds since the epoch (UTC), as in MLflow.
    ``point_id`` identifies the point for idempotent delivery: a store that already
    holds ``(run_id, key, point_id)`` skips it (a backend without point ids, MLflow,
    deduplicates on ``(key, step, timestamp_ms, value)`` instead).

    A named tuple rather than a dataclass: a history of a million points is built
    in a tenth of the time, which is what keeps reading one under a second.
    """

    key: str
    value: float
    step: int
    timestamp_ms: int
    point_id: int = 0


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """What a store keeps per (run, metric) as points arrive, so no query scans a
    history: the last point (highest step, then latest time, then highest point id),
    min and max (NaN ignored unless every value is NaN), and the count."""

    key: str
    last: float
    last_step: int
    last_timestamp_ms: int
    min: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class RunArtifact:
    """A file attached to a training run: its path within the run and where it is."""

    path: str
    uri: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class LinkedVersion:
    """A model version the training run produced (``track_model(..., run=run)``)."""

    model_name: str
    version: int


@dataclass(frozen=True, slots=True)
class TrainingRun:
    """One execution of training code, as a store returns it.

    ``params`` are JSON values of any size, fixed once logged; ``tags`` are strings
    (the last value set wins); ``metrics`` are the summaries per key (the full history
    is ``metric_history``). ``environment`` holds the user, host, pid, source file,
    git commit/dirty flag, Python and key package versions recorded at start.
    """

    run_id: str
    experiment: str
    name: str | None
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    parent_id: str | None = None
    user: str | None = None
    host: str | None = None
    params: Mapping[str, Any] = field(default_factory=_empty)
    tags: Mapping[str, str] = field(default_factory=_empty)
    metrics: Mapping[str, MetricSummary] = field(default_factory=_empty)
    environment: Mapping[str, Any] = field(default_factory=_empty)
    artifacts: tuple[RunArtifact, ...] = ()
    versions: tuple[LinkedVersion, ...] = ()
    #: ``"Type: message"`` of the exception a FAILED run ended with.
    error: str | None = None
    #: The last sign of life from the process running it: its start or a
    #: ``Heartbeat`` write (the facade sends one with every flush of the run's writes).
    heartbeat_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a search: the runs, and the token of the next page (None: last)."""

    runs: list[TrainingRun]
    next_page_token: str | None

    def to_pandas(self) -> Any:
        """The page as a DataFrame (pandas is imported here, only here): one row per
        run, with ``params.<key>``, ``metrics.<key>`` (the last value) and
        ``tags.<key>`` columns, as MLflow's ``search_runs`` returns them."""
        try:
            import pandas as pd
        except ImportError:
            from ..exceptions import ConfigurationError

            raise ConfigurationError(
                "RunPage.to_pandas needs pandas: pip install pandas (or use .runs)"
            ) from None
        rows = []
        for r in self.runs:
            row: dict[str, Any] = {
                "run_id": r.run_id,
                "experiment": r.experiment,
                "name": r.name,
                "status": r.status.value,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "parent_id": r.parent_id,
                "user": r.user,
            }
            row.update({f"params.{k}": v for k, v in r.params.items()})
            row.update({f"metrics.{k}": m.last for k, m in r.metrics.items()})
            row.update({f"tags.{k}": v for k, v in r.tags.items()})
            rows.append(row)
        return pd.DataFrame(rows)
