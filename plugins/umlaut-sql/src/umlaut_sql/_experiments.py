"""``SqlExperimentStore``: training runs in the tables of the tracker's database.

It shares the tracker's engine, error mapping and transactions (SQLite's
``BEGIN IMMEDIATE``), so a store costs no connection of its own. Writes are in
:mod:`._experiment_writes`, the search in :mod:`._experiment_search`; this module
reads runs back (a page of runs in six queries, whatever its size) and streams a
metric's history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from umlaut_core.exceptions import ConfigurationError, TrainingRunNotFoundError
from umlaut_core.experiments.filters import RunSearch
from umlaut_core.experiments.records import (
    Experiment,
    LinkedVersion,
    MetricPoint,
    MetricSummary,
    RunArtifact,
    RunPage,
    RunStatus,
    TrainingRun,
)
from umlaut_core.experiments.writes import RunWrite
from umlaut_core.protocols import Capability

from . import _schema as s
from ._experiment_search import Searcher, decode_token, encode_token
from ._experiment_writes import write_batch
from ._rows import parse_time
from ._tracker import SqlTracker

__all__ = ["HISTORY_PAGE", "SqlExperimentStore", "open_experiment_store"]

#: Points per query of ``metric_history``: big enough that the per-query cost
#: vanishes, small enough to hold in memory.
HISTORY_PAGE = 20_000
_NAN = math.nan
_new = tuple.__new__
#: Keyset pages of one metric's history, in its order (step, time, point id). The
#: bound on ``step`` alone seeks the clustered primary key; the rest resolves ties.
_HISTORY = (
    "SELECT value, step, timestamp_ms, point_id FROM umlaut_metric_points "
    "WHERE run_id = ? AND key = ?{after} ORDER BY step, timestamp_ms, point_id LIMIT ?"
)
_AFTER = " AND step >= ? AND (step > ? OR timestamp_ms > ? OR (timestamp_ms = ? AND point_id > ?))"
_RUN_EXISTS = "SELECT 1 FROM umlaut_training_runs WHERE run_id = ?"


def open_experiment_store(tracker: Any) -> SqlExperimentStore:
    """Factory for the registry: the experiment store of an open SQL tracker."""
    if not isinstance(tracker, SqlTracker):
        raise ConfigurationError(
            f"umlaut-sql keeps training runs next to its own tracker, not {tracker!r}"
        )
    return SqlExperimentStore(tracker)


class SqlExperimentStore:
    """The ExperimentStore contract on the SQL tracker's database (SQLite, PostgreSQL).

    Artifacts are not kept here: the facade puts them in the artifact store and
    records them with an ``ArtifactLogged`` write.
    """

    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, tracker: SqlTracker) -> None:
        self.uri = tracker.uri
        self._tracker = tracker
        self._search = Searcher(tracker.dialect)
        mark = "?" if tracker.dialect == "sqlite" else "%s"
        self._history_sql = (
            _HISTORY.format(after="").replace("?", mark),
            _HISTORY.format(after=_AFTER).replace("?", mark),
        )
        self._exists_sql = _RUN_EXISTS.replace("?", mark)

    def __repr__(self) -> str:
        return f"SqlExperimentStore({self.uri!r})"

    def write(self, writes: Sequence[RunWrite]) -> None:
        if not writes:
            return
        t = self._tracker
        with t._write(f"writing {len(writes)} training-run changes") as conn:
            write_batch(conn, t._insert, writes, self.uri)

    def get_run(self, run_id: str) -> TrainingRun:
        with self._tracker._read(f"reading training run {run_id!r}") as conn:
            found = _load_runs(conn, [run_id])
        if not found:
            raise TrainingRunNotFoundError(f"no training run {run_id!r} in {self.uri}")
        return found[0]

    def search_runs(self, search: RunSearch) -> RunPage:
        searcher = self._search
        segments = searcher.segments(search.order_by)
        start, after = 0, None
        if search.page_token is not None:
            start, value, last_id = decode_token(search.page_token, segments)
            after = (value, last_id)
        wanted = search.limit + 1
        rows: list[tuple[int, str, Any]] = []
        with self._tracker._read("searching training runs") as conn:
            narrowed = searcher.narrow(conn, search.where)
            for index in range(start, len(segments)):
                if narrowed is not None and not narrowed.run_ids:
                    break
                query = searcher.page_query(
                    search,
                    segments[index],
                    after if index == start else None,
                    wanted - len(rows),
                    narrowed,
                )
                rows.extend((index, rid, value) for rid, value in conn.execute(query).all())
                if len(rows) >= wanted:
                    break
            page = rows[: search.limit]
            runs = _load_runs(conn, [rid for _, rid, _ in page])
        token = None
        if len(rows) > search.limit:
            index, rid, value = page[-1]
            token = encode_token(index, value, rid)
        return RunPage(runs, token)

    def metric_history(self, run_id: str, key: str) -> Iterator[MetricPoint]:
        t = self._tracker

        def exists(conn: Any) -> bool:
            cur = conn.cursor()
            try:
                cur.execute(self._exists_sql, (run_id,))
                return cur.fetchone() is not None
            finally:
                cur.close()

        # Checked now, not at the first next(): the caller learns of a wrong id where
        # it asked.
        if not t._hot(f"reading training run {run_id!r}", exists):
            raise TrainingRunNotFoundError(f"no training run {run_id!r} in {self.uri}")
        return self._history(run_id, key)

    def _history(self, run_id: str, key: str) -> Iterator[MetricPoint]:
        # Keyset pages on the tracker's raw connections: no connection or read
        # transaction is held while the caller works through a page, so an abandoned
        # iterator pins nothing, and raw tuples skip SQLAlchemy's row objects, which
        # would cost more than the points themselves.
        first, following = self._history_sql
        sql = first
        params: tuple[Any, ...] = (run_id, key, HISTORY_PAGE)
        action = f"reading the history of {key!r} of training run {run_id!r}"
        while True:
            rows = self._tracker._fetch_all(action, sql, params)
            # tuple.__new__ straight: a named tuple's own constructor costs twice as
            # much, and a million points are built here.
            yield from [
                _new(MetricPoint, (key, _NAN if value is None else value, step, ts, pid))
                for value, step, ts, pid in rows
            ]
            if len(rows) < HISTORY_PAGE:
                return
            _, step, ts, pid = rows[-1]
            sql, params = following, (run_id, key, step, step, ts, ts, pid, HISTORY_PAGE)

    def list_experiments(self) -> list[Experiment]:
        e, r = s.experiments, s.training_runs
        held = sa.exists().where(r.c.experiment == e.c.name)
        with self._tracker._read("listing experiments") as conn:
            rows = conn.execute(
                sa.select(e.c.name, e.c.created_at).where(held).order_by(e.c.name)
            ).all()
        return [Experiment(name, parse_time(created), name) for name, created in rows]

    def close(self) -> None:
        """Nothing to release: the connections are the tracker's."""


def _load_runs(conn: sa.Connection, run_ids: list[str]) -> list[TrainingRun]:
    """The runs with these ids, in this order (unknown ids left out): one query per
    table, whatever the number of runs."""
    if not run_ids:
        return []
    r, p, t = s.training_runs, s.training_params, s.training_tags
    m, a, v = s.training_metrics, s.training_artifacts, s.training_versions
    ids = sorted(set(run_ids))
    params: dict[str, dict[str, Any]] = {}
    for rid, key, value in conn.execute(
        sa.select(p.c.run_id, p.c.key, p.c.value).where(p.c.run_id.in_(ids))
    ).all():
        params.setdefault(rid, {})[key] = json.loads(value)
    tags: dict[str, dict[str, str]] = {}
    for rid, key, value in conn.execute(
        sa.select(t.c.run_id, t.c.key, t.c.value).where(t.c.run_id.in_(ids))
    ).all():
        tags.setdefault(rid, {})[key] = value
    metrics: dict[str, dict[str, MetricSummary]] = {}
    for row in conn.execute(
        sa.select(
            m.c.run_id, m.c.key, m.c.last, m.c.last_step, m.c.last_timestamp_ms,
            m.c.min, m.c.max, m.c.count,
        ).where(m.c.run_id.in_(ids))
    ).all():  # fmt: skip
        rid, key, last, step, ts, low, high, count = row
        metrics.setdefault(rid, {})[key] = MetricSummary(
            key, _num(last), step, ts, _num(low), _num(high), count
        )
    artifacts: dict[str, list[RunArtifact]] = {}
    for rid, path, uri, size, sha in conn.execute(
        sa.select(a.c.run_id, a.c.path, a.c.uri, a.c.size, a.c.sha256)
        .where(a.c.run_id.in_(ids))
        .order_by(a.c.run_id, a.c.path)
    ).all():
        artifacts.setdefault(rid, []).append(RunArtifact(path, uri, size, sha))
    versions: dict[str, list[LinkedVersion]] = {}
    for rid, model, number in conn.execute(
        sa.select(v.c.run_id, v.c.model_name, v.c.version)
        .where(v.c.run_id.in_(ids))
        .order_by(v.c.run_id, v.c.model_name, v.c.version)
    ).all():
        versions.setdefault(rid, []).append(LinkedVersion(model, number))
    found: dict[str, TrainingRun] = {}
    for rec in conn.execute(sa.select(r).where(r.c.run_id.in_(ids))).mappings().all():
        rid = rec["run_id"]
        found[rid] = TrainingRun(
            run_id=rid,
            experiment=rec["experiment"],
            name=rec["name"],
            status=RunStatus(rec["status"]),
            started_at=parse_time(rec["started_at"]),
            ended_at=_time(rec["ended_at"]),
            parent_id=rec["parent_id"],
            user=rec["user_name"],
            host=rec["host"],
            params=params.get(rid, {}),
            tags=tags.get(rid, {}),
            metrics=metrics.get(rid, {}),
            environment=json.loads(rec["environment"]),
            artifacts=tuple(artifacts.get(rid, ())),
            versions=tuple(versions.get(rid, ())),
            error=rec["error"],
            heartbeat_at=_time(rec["heartbeat_at"]),
        )
    return [found[rid] for rid in run_ids if rid in found]


def _num(value: float | None) -> float:
    return _NAN if value is None else float(value)


def _time(text: str | None) -> Any:
    return None if text is None else parse_time(text)
