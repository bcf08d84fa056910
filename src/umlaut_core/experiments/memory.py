"""The ``memory:`` experiment store: the executable statement of the contract.

State belongs to the :class:`~umlaut_core.stores.memory.MemoryTracker` it was opened
for, so every facade sharing that tracker sees the same runs; it vanishes with it.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..clock import utcnow
from ..exceptions import ArtifactError, TrainingRunNotFoundError
from ..protocols import Capability
from .filters import RunSearch, select_training_runs
from .records import (
    Experiment,
    LinkedVersion,
    MetricPoint,
    MetricSummary,
    RunArtifact,
    RunPage,
    RunStatus,
    TrainingRun,
)
from .writes import (
    ArtifactLogged,
    Heartbeat,
    MetricsLogged,
    ParamsLogged,
    RunEnded,
    RunStarted,
    RunWrite,
    TagsSet,
    VersionLinked,
)

__all__ = ["MemoryExperimentStore", "apply_summary", "later_point"]


def later_point(a: MetricPoint, b: MetricPoint) -> bool:
    """Whether ``a`` is a later point than ``b``: higher step, then later time, then
    higher point id (the rule for a metric's ``last`` value)."""
    return (a.step, a.timestamp_ms, a.point_id) > (b.step, b.timestamp_ms, b.point_id)


def apply_summary(summary: MetricSummary | None, p: MetricPoint, newer: bool) -> MetricSummary:
    """The summary after one more point (``newer``: it is the latest so far).
    NaN never becomes min or max unless every value so far is NaN."""
    if summary is None:
        return MetricSummary(p.key, p.value, p.step, p.timestamp_ms, p.value, p.value, 1)
    lo, hi = summary.min, summary.max
    if not math.isnan(p.value):
        lo = p.value if math.isnan(lo) else min(lo, p.value)
        hi = p.value if math.isnan(hi) else max(hi, p.value)
    if newer:
        last, step, ts = p.value, p.step, p.timestamp_ms
    else:
        last, step, ts = summary.last, summary.last_step, summary.last_timestamp_ms
    return MetricSummary(p.key, last, step, ts, lo, hi, summary.count + 1)


@dataclass
class _Run:
    run: TrainingRun
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    summaries: dict[str, MetricSummary] = field(default_factory=dict)
    last_points: dict[str, MetricPoint] = field(default_factory=dict)
    history: dict[str, list[tuple[int, int, int, MetricPoint]]] = field(default_factory=dict)
    point_ids: dict[str, set[int]] = field(default_factory=dict)
    artifacts: dict[str, RunArtifact] = field(default_factory=dict)
    versions: list[LinkedVersion] = field(default_factory=list)

    def snapshot(self) -> TrainingRun:
        return dataclasses.replace(
            self.run,
            params=dict(self.params),
            tags=dict(self.tags),
            metrics=dict(self.summaries),
            artifacts=tuple(self.artifacts[p] for p in sorted(self.artifacts)),
            versions=tuple(self.versions),
        )


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.runs: dict[str, _Run] = {}
        self.experiments: dict[str, Experiment] = {}
        self.artifacts: dict[str, bytes] = {}


_STATES: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


class MemoryExperimentStore:
    """Training runs in plain dicts under one lock."""

    #: The memory tracker keeps bundles itself, so there may be no artifact store to
    #: put run artifacts in: this store keeps them too.
    capabilities: frozenset[Capability] = frozenset({Capability.RUN_ARTIFACTS})

    def __init__(self, tracker: Any) -> None:
        self.uri = tracker.uri
        with _STATES_LOCK:
            self._state = _STATES.setdefault(tracker, _State())

    def put_artifact(self, run_id: str, path: str, data: bytes) -> str:
        uri = f"memory:training/{run_id}/{path}"
        with self._state.lock:
            self._state.artifacts[uri] = bytes(data)
        return uri

    def get_artifact(self, uri: str) -> bytes:
        with self._state.lock:
            try:
                return self._state.artifacts[uri]
            except KeyError:
                raise ArtifactError(f"no artifact at {uri!r} in the memory store") from None

    def write(self, writes: Sequence[RunWrite]) -> None:
        state = self._state
        with state.lock:
            for w in writes:
                if isinstance(w, RunStarted):
                    self._start(w)
                    continue
                entry = state.runs.get(w.run_id)
                if entry is None:
                    raise TrainingRunNotFoundError(
                        f"no training run {w.run_id!r} in {self.uri}; start it first"
                    )
                _apply(entry, w)

    def _start(self, w: RunStarted) -> None:
        state = self._state
        if w.run_id in state.runs:
            return
        state.experiments.setdefault(w.experiment, Experiment(w.experiment, utcnow(), w.experiment))
        run = TrainingRun(
            run_id=w.run_id,
            experiment=w.experiment,
            name=w.name,
            status=RunStatus.RUNNING,
            started_at=w.started_at,
            parent_id=w.parent_id,
            user=w.user,
            host=w.host,
            environment=dict(w.environment),
            heartbeat_at=w.started_at,
        )
        state.runs[w.run_id] = _Run(run, tags=dict(w.tags))

    def get_run(self, run_id: str) -> TrainingRun:
        with self._state.lock:
            entry = self._state.runs.get(run_id)
            if entry is None:
                raise TrainingRunNotFoundError(f"no training run {run_id!r} in {self.uri}")
            return entry.snapshot()

    def search_runs(self, search: RunSearch) -> RunPage:
        with self._state.lock:
            runs = [e.snapshot() for e in self._state.runs.values()]
        page, token = select_training_runs(runs, search)
        return RunPage(page, token)

    def metric_history(self, run_id: str, key: str) -> Iterator[MetricPoint]:
        with self._state.lock:
            entry = self._state.runs.get(run_id)
            if entry is None:
                raise TrainingRunNotFoundError(f"no training run {run_id!r} in {self.uri}")
            points = [p for *_, p in entry.history.get(key, ())]
        return iter(points)

    def list_experiments(self) -> list[Experiment]:
        with self._state.lock:
            return sorted(self._state.experiments.values(), key=lambda e: e.name)

    def close(self) -> None:
        pass


def _apply(entry: _Run, w: RunWrite) -> None:
    run = entry.run
    if isinstance(w, ParamsLogged):
        for k, v in w.params.items():
            entry.params.setdefault(k, v)  # the first value wins
    elif isinstance(w, MetricsLogged):
        for p in w.points:
            seen = entry.point_ids.setdefault(p.key, set())
            if p.point_id in seen:
                continue
            seen.add(p.point_id)
            bisect.insort(
                entry.history.setdefault(p.key, []), (p.step, p.timestamp_ms, p.point_id, p)
            )
            last = entry.last_points.get(p.key)
            newer = last is None or later_point(p, last)
            if newer:
                entry.last_points[p.key] = p
            entry.summaries[p.key] = apply_summary(entry.summaries.get(p.key), p, newer)
    elif isinstance(w, TagsSet):
        entry.tags.update(w.tags)
    elif isinstance(w, RunEnded):
        if run.status is RunStatus.RUNNING or (
            run.status is RunStatus.KILLED and w.status is not RunStatus.KILLED
        ):
            entry.run = dataclasses.replace(
                run, status=w.status, ended_at=w.ended_at, error=w.error
            )
    elif isinstance(w, Heartbeat):
        if run.heartbeat_at is None or w.at > run.heartbeat_at:
            entry.run = dataclasses.replace(run, heartbeat_at=w.at)
    elif isinstance(w, ArtifactLogged):
        entry.artifacts[w.path] = RunArtifact(w.path, w.uri, w.size, w.sha256)
    elif isinstance(w, VersionLinked):
        link = LinkedVersion(w.model_name, w.version)
        if link not in entry.versions:
            entry.versions.append(link)
