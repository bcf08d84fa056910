"""Copying training runs between backends (the ``umlaut copy`` phase after audit
records), and checking the copy.

Each source run is replayed at the destination as the idempotent writes that made
it (:mod:`umlaut_core.experiments.writes`), with its own id, times and author:
start, params, tags, every metric point (ids kept; a source without point ids, such
as MLflow, gets ids derived from each point's content, the same on every re-run),
artifacts (bytes copied and checked), the versions it produced (numbers mapped as
the versions were), and its end. Runs go oldest first, so a parent is at the
destination before its children. Re-running a copy therefore adds nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exceptions import BackendNotFoundError, ConfigurationError
from .experiments.filters import Field, OrderBy, RunSearch
from .experiments.records import MetricPoint, RunStatus, TrainingRun
from .experiments.writes import (
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

if TYPE_CHECKING:
    from ._api import Umlaut

__all__ = ["TrainingCopy", "copy_training_runs", "has_experiments", "verify_training_runs"]

_PAGE = 500
_POINTS_PER_WRITE = 10_000
_OLDEST_FIRST = OrderBy(Field("attribute", "started_at"), descending=False)


@dataclass
class TrainingCopy:
    """What the training-run phase of a copy did (dry run: would do)."""

    runs: int = 0
    runs_added: int = 0
    points: int = 0
    artifacts: int = 0
    #: Why the phase was skipped, when it was.
    skipped: str | None = None
    problems: list[str] = field(default_factory=list)


def has_experiments(umlaut: Umlaut) -> bool:
    """Whether the backend keeps training runs (an experiment store is registered)."""
    try:
        umlaut._training.store  # noqa: B018
    except (BackendNotFoundError, ConfigurationError):
        # None registered, or the plugin's store cannot serve this tracker object
        # (a wrapper passed as tracker=): either way there are no runs to copy.
        return False
    return True


def _source_runs(umlaut: Umlaut) -> Iterator[TrainingRun]:
    store = umlaut._training.store
    token = None
    while True:
        page = store.search_runs(RunSearch(order_by=_OLDEST_FIRST, limit=_PAGE, page_token=token))
        yield from page.runs
        token = page.next_page_token
        if token is None:
            return


def _point_ids(points: list[MetricPoint]) -> list[MetricPoint]:
    """Points with ids: a source without ids (0) gets ids from each point's content
    and its rank among identical points, so a re-run derives the same ids."""
    if all(p.point_id for p in points):
        return points
    seen: dict[tuple[Any, ...], int] = {}
    out = []
    for p in points:
        identity = (p.key, p.step, p.timestamp_ms, repr(p.value))
        rank = seen[identity] = seen.get(identity, -1) + 1
        digest = hashlib.sha256(repr((*identity, rank)).encode()).digest()
        derived = int.from_bytes(digest[:8], "big") >> 1 or 1
        out.append(MetricPoint(p.key, p.value, p.step, p.timestamp_ms, derived))
    return out


def _replay(
    source: Umlaut,
    destination: Umlaut,
    run: TrainingRun,
    mappings: Mapping[str, Mapping[int, int]],
) -> tuple[list[RunWrite], int, int]:
    """The writes that rebuild ``run`` at the destination; (writes, points, artifacts)."""
    writes: list[RunWrite] = [
        RunStarted(
            run.run_id,
            run.experiment,
            run.name,
            run.started_at,
            run.parent_id,
            run.user,
            run.host,
            dict(run.tags),
            dict(run.environment),
        )
    ]
    if run.params:
        writes.append(ParamsLogged(run.run_id, dict(run.params)))
    if run.tags:
        writes.append(TagsSet(run.run_id, dict(run.tags)))
    points = 0
    for key in sorted(run.metrics):
        history = _point_ids(list(source._training.store.metric_history(run.run_id, key)))
        points += len(history)
        for at in range(0, len(history), _POINTS_PER_WRITE):
            chunk = tuple(history[at : at + _POINTS_PER_WRITE])
            writes.append(MetricsLogged(run.run_id, chunk))
    for artifact in run.artifacts:
        data = source._training.load_artifact(run.run_id, artifact.path)
        stored = destination._training.store_artifact(run.run_id, artifact.path, data)
        writes.append(
            ArtifactLogged(run.run_id, artifact.path, stored.uri, stored.size, stored.sha256)
        )
    for link in run.versions:
        number = mappings.get(link.model_name, {}).get(link.version, link.version)
        writes.append(VersionLinked(run.run_id, link.model_name, number))
    if run.heartbeat_at is not None:
        writes.append(Heartbeat(run.run_id, run.heartbeat_at))
    if run.status is not RunStatus.RUNNING and run.ended_at is not None:
        writes.append(RunEnded(run.run_id, run.status, run.ended_at, run.error))
    return writes, points, len(run.artifacts)


def copy_training_runs(
    source: Umlaut,
    destination: Umlaut,
    *,
    mappings: Mapping[str, Mapping[int, int]] | None = None,
    dry_run: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
) -> TrainingCopy:
    """Replay every training run of ``source`` at ``destination`` (see the module).

    Skipped, with the reason in ``skipped``, when the source keeps no training runs;
    a destination without experiments, when the source has runs, is a problem
    reported in ``problems`` (nothing is written then).
    """
    done = TrainingCopy()
    if not has_experiments(source):
        done.skipped = "the source keeps no training runs"
        return done
    runs = _source_runs(source)
    first = next(runs, None)
    if first is None:
        return done
    if not has_experiments(destination):
        done.problems.append(
            f"the source has training runs but {destination.tracker.uri} keeps none "
            f"(no experiment store is registered for it); they were not copied"
        )
        return done
    dst = destination._training.store
    tick = on_progress or (lambda phase, n: None)
    for run in _chain(first, runs):
        done.runs += 1
        if _held(dst, run.run_id):
            if dry_run:
                continue
        else:
            done.runs_added += 1
        if dry_run:
            continue
        writes, points, artifacts = _replay(source, destination, run, mappings or {})
        dst.write(writes)
        done.points += points
        done.artifacts += artifacts
        tick("training runs", 1)
    return done


def _chain(first: TrainingRun, rest: Iterator[TrainingRun]) -> Iterator[TrainingRun]:
    yield first
    yield from rest


def _held(store: Any, run_id: str) -> bool:
    from .exceptions import TrainingRunNotFoundError

    try:
        store.get_run(run_id)
    except TrainingRunNotFoundError:
        return False
    return True


def verify_training_runs(source: Umlaut, destination: Umlaut) -> list[str]:
    """Problems found comparing every source run with the destination's (empty: none).

    Compared per run: experiment, name, parent, status, times, params, tags, each
    metric's count, min, max and last value, artifacts (path and sha256), and the
    versions it produced (by model name).
    """
    if not has_experiments(source):
        return []
    if not has_experiments(destination):
        first = next(_source_runs(source), None)
        return [] if first is None else ["the destination keeps no training runs"]
    problems: list[str] = []
    dst = destination._training.store
    from .exceptions import TrainingRunNotFoundError

    for run in _source_runs(source):
        try:
            got = dst.get_run(run.run_id)
        except TrainingRunNotFoundError:
            problems.append(f"training run {run.run_id} is missing at the destination")
            continue
        problems += [f"training run {run.run_id}: {p}" for p in _differences(run, got)]
    return problems


def _ms(moment: Any) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _differences(a: TrainingRun, b: TrainingRun) -> list[str]:
    out = []
    for name in ("experiment", "name", "parent_id", "status"):
        if getattr(a, name) != getattr(b, name):
            out.append(f"{name} is {getattr(b, name)!r}, not {getattr(a, name)!r}")
    for name in ("started_at", "ended_at"):
        if _ms(getattr(a, name)) != _ms(getattr(b, name)):  # MLflow keeps milliseconds
            out.append(f"{name} is {getattr(b, name)}, not {getattr(a, name)}")
    if dict(a.params) != dict(b.params):
        out.append("params differ")
    # A backend may add tags of its own (MLflow's mlflow.*): the source's must be there.
    if any(b.tags.get(k) != v for k, v in a.tags.items()):
        out.append("tags differ")
    for key, summary in a.metrics.items():
        other = b.metrics.get(key)
        if other is None:
            out.append(f"metric {key!r} is missing")
        elif (summary.count, repr(summary.min), repr(summary.max), repr(summary.last)) != (
            other.count, repr(other.min), repr(other.max), repr(other.last),
        ):  # fmt: skip
            out.append(f"metric {key!r} differs (count {other.count}, not {summary.count})")
    if {(x.path, x.sha256) for x in a.artifacts} != {(x.path, x.sha256) for x in b.artifacts}:
        out.append("artifacts differ")
    if {v.model_name for v in a.versions} != {v.model_name for v in b.versions}:
        out.append("linked versions differ")
    return out
