"""Applying a batch of training-run writes in one SQL transaction.

The batch is first sorted into what each table receives (in Python, following each
write kind's idempotency rule from :mod:`umlaut_core.experiments.writes`), then
written with one multi-row statement per table: ten thousand metric points are a
handful of statements, not ten thousand.

Concurrent writers (threads, processes, hosts on one PostgreSQL) stay correct
because every statement is idempotent on its own: points are inserted with
``ON CONFLICT DO NOTHING ... RETURNING``, so only the points this transaction really
added feed the summaries, and summaries are merged by an upsert whose ``SET`` reads
the row as it is when the row lock is held (``count = count + excluded.count``,
min/max/last by comparison). Rows are written in key order so two transactions
touching the same rows lock them in the same order and cannot deadlock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from umlaut_core.clock import utcnow
from umlaut_core.exceptions import TrainingRunNotFoundError
from umlaut_core.experiments.records import MetricPoint, RunStatus
from umlaut_core.experiments.writes import (
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

from . import _schema as s
from ._rows import fmt_time

__all__ = ["PG_POINT_CHUNK", "POINT_CHUNK", "Batch", "dump_json", "param_columns", "write_batch"]

#: Points per INSERT statement on SQLite: 6 bound parameters each stays far below
#: its limit of 32,766 per statement.
POINT_CHUNK = 2000
#: Points per INSERT on PostgreSQL, where they travel as six arrays.
PG_POINT_CHUNK = 20_000
#: Run ids per ``IN (...)`` when checking which runs exist.
_ID_CHUNK = 500


def dump_json(value: Any) -> str:
    # allow_nan: a param may be NaN or inf, and must come back as itself.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def param_columns(value: Any) -> tuple[float | None, str | None]:
    """The typed copies of a param to filter and order on: ``(number, string)``.

    Bools are not numbers here (as in the filter semantics), and NaN has no place
    among numbers, so both get neither copy and sort with the missing values. The
    number is a double: an int beyond ±2**53 is filtered and ordered by the nearest
    one (its JSON text stays exact)."""
    if isinstance(value, str):
        return None, value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, None
    try:
        number = float(value)
    except OverflowError:  # an int beyond a double: it still sorts past every double
        number = math.inf if value > 0 else -math.inf
    return (None if math.isnan(number) else number), None


def _db_float(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


@dataclass
class Batch:
    """What one ``write`` call does to each table, after the idempotency rules."""

    started: dict[str, RunStarted] = field(default_factory=dict)
    params: dict[tuple[str, str], Any] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    points: dict[tuple[str, str, int], MetricPoint] = field(default_factory=dict)
    ended: list[RunEnded] = field(default_factory=list)
    beats: dict[str, Heartbeat] = field(default_factory=dict)
    artifacts: dict[tuple[str, str], ArtifactLogged] = field(default_factory=dict)
    versions: set[tuple[str, str, int]] = field(default_factory=set)

    def add(self, w: RunWrite) -> None:
        if isinstance(w, RunStarted):
            self.started.setdefault(w.run_id, w)
        elif isinstance(w, ParamsLogged):
            for key, value in w.params.items():
                self.params.setdefault((w.run_id, key), value)  # the first value wins
        elif isinstance(w, MetricsLogged):
            for p in w.points:
                self.points.setdefault((w.run_id, p.key, p.point_id), p)
        elif isinstance(w, TagsSet):
            for key, value in w.tags.items():
                self.tags[(w.run_id, key)] = value  # the last value wins
        elif isinstance(w, RunEnded):
            self.ended.append(w)  # applied in order: each one's rule sees the last
        elif isinstance(w, Heartbeat):
            held = self.beats.get(w.run_id)
            if held is None or w.at > held.at:
                self.beats[w.run_id] = w
        elif isinstance(w, ArtifactLogged):
            self.artifacts[(w.run_id, w.path)] = w
        elif isinstance(w, VersionLinked):
            self.versions.add((w.run_id, w.model_name, w.version))


def write_batch(conn: sa.Connection, insert: Any, writes: Sequence[RunWrite], where: str) -> None:
    """Apply ``writes`` inside the caller's transaction.

    ``insert`` makes the dialect's INSERT (with ``on_conflict_*``). Raises
    TrainingRunNotFoundError, before writing anything, at the first write to a run
    that neither exists nor is started earlier in the batch.
    """
    held = _existing_runs(conn, {w.run_id for w in writes})
    batch = Batch()
    for w in writes:
        if isinstance(w, RunStarted):
            if w.run_id in held:
                continue  # a run that exists is left as it is
            held.add(w.run_id)
        elif w.run_id not in held:
            raise TrainingRunNotFoundError(
                f"no training run {w.run_id!r} in {where}; start it first (nothing of "
                f"this batch of {len(writes)} writes was applied)"
            )
        batch.add(w)
    new_runs = _start_runs(conn, insert, batch.started)
    _write_params(conn, insert, batch.params)
    _write_tags(conn, insert, batch, new_runs)
    _write_points(conn, insert, batch.points)
    _end_runs(conn, batch.ended)
    _beat(conn, batch.beats)
    _write_artifacts(conn, insert, batch.artifacts)
    if batch.versions:
        v = s.training_versions
        conn.execute(
            insert(v).on_conflict_do_nothing(),
            [{"run_id": r, "model_name": m, "version": n} for r, m, n in sorted(batch.versions)],
        )


def _existing_runs(conn: sa.Connection, run_ids: set[str]) -> set[str]:
    r = s.training_runs
    ids = sorted(run_ids)
    found: set[str] = set()
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        found.update(
            conn.execute(sa.select(r.c.run_id).where(r.c.run_id.in_(chunk))).scalars().all()
        )
    return found


def _start_runs(conn: sa.Connection, insert: Any, started: Mapping[str, RunStarted]) -> set[str]:
    """Insert the new runs (and experiments); the ids this transaction created (a
    concurrent writer may have created one first: its start then wins whole)."""
    if not started:
        return set()
    e, r = s.experiments, s.training_runs
    now = fmt_time(utcnow())
    names = sorted({w.experiment for w in started.values()})
    conn.execute(
        insert(e).on_conflict_do_nothing(),
        [{"name": name, "created_at": now} for name in names],
    )
    rows = [
        {
            "run_id": w.run_id,
            "experiment": w.experiment,
            "name": w.name,
            "status": RunStatus.RUNNING.value,
            "started_at": fmt_time(w.started_at),
            "ended_at": None,
            "parent_id": w.parent_id,
            "user_name": w.user,
            "host": w.host,
            "error": None,
            "heartbeat_at": fmt_time(w.started_at),
            "environment": dump_json(dict(w.environment)),
        }
        for _, w in sorted(started.items())
    ]
    stmt = insert(r).on_conflict_do_nothing().returning(r.c.run_id)
    return set(conn.execute(stmt, rows).scalars().all())


def _write_params(conn: sa.Connection, insert: Any, params: Mapping[tuple[str, str], Any]) -> None:
    if not params:
        return
    rows = []
    for (run_id, key), value in sorted(params.items(), key=lambda kv: kv[0]):
        number, text = param_columns(value)
        rows.append(
            {
                "run_id": run_id,
                "key": key,
                "value": dump_json(value),
                "value_num": number,
                "value_text": text,
            }
        )
    conn.execute(insert(s.training_params).on_conflict_do_nothing(), rows)


def _write_tags(conn: sa.Connection, insert: Any, batch: Batch, new_runs: set[str]) -> None:
    # A new run's starting tags first, so a TagsSet later in the batch overrides
    # them; a start that lost (the run existed) brings no tags.
    merged: dict[tuple[str, str], str] = {}
    for run_id in sorted(new_runs):
        for key, value in batch.started[run_id].tags.items():
            merged[(run_id, key)] = value
    merged.update(batch.tags)
    if not merged:
        return
    t = s.training_tags
    stmt = insert(t)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.c.run_id, t.c.key], set_={"value": stmt.excluded.value}
        ),
        [{"run_id": r, "key": k, "value": v} for (r, k), v in sorted(merged.items())],
    )


@dataclass
class _Delta:
    """The summary of the points one transaction added to one (run, key)."""

    last: MetricPoint
    low: float | None = None
    high: float | None = None
    count: int = 0

    def add(self, p: MetricPoint) -> None:
        self.count += 1
        if (p.step, p.timestamp_ms, p.point_id) > (
            self.last.step,
            self.last.timestamp_ms,
            self.last.point_id,
        ):
            self.last = p
        if not math.isnan(p.value):
            self.low = p.value if self.low is None else min(self.low, p.value)
            self.high = p.value if self.high is None else max(self.high, p.value)


_POINT_COLUMNS = "run_id, key, step, timestamp_ms, point_id, value"
#: PostgreSQL: six arrays unnested into rows, so one statement of any size is
#: planned in microseconds (a VALUES list of thousands of rows took 20 ms to plan).
_PG_POINTS = (
    f"INSERT INTO umlaut_metric_points ({_POINT_COLUMNS}) SELECT * FROM unnest("
    "%s::varchar[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::float8[]) "
    "ON CONFLICT DO NOTHING RETURNING run_id, key, point_id"
)


def _sqlite_points(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO umlaut_metric_points ({_POINT_COLUMNS}) VALUES {values} "
        "ON CONFLICT DO NOTHING RETURNING run_id, key, point_id"
    )


def _write_points(
    conn: sa.Connection, insert: Any, points: Mapping[tuple[str, str, int], MetricPoint]
) -> None:
    if not points:
        return
    sqlite = conn.dialect.name == "sqlite"
    ordered = sorted(points.items(), key=lambda kv: kv[0])
    size = POINT_CHUNK if sqlite else PG_POINT_CHUNK
    added: list[tuple[str, str, int]] = []
    # Written out, on the DBAPI cursor of the transaction's own connection: through
    # SQLAlchemy, turning 10,000 points into parameter dicts and Row objects and
    # back cost more than the database's own work on them.
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for i in range(0, len(ordered), size):
            chunk = ordered[i : i + size]
            columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
            run_ids, keys, steps, times, ids, values = columns
            for (run_id, key, point_id), p in chunk:
                run_ids.append(run_id)
                keys.append(key)
                steps.append(p.step)
                times.append(p.timestamp_ms)
                ids.append(point_id)
                value = float(p.value)  # psycopg refuses an array of ints and floats
                values.append(None if value != value else value)  # NaN is NULL
            if sqlite:
                flat = [v for row in zip(*columns, strict=True) for v in row]
                cursor.execute(_sqlite_points(len(chunk)), flat)
            else:
                cursor.execute(_PG_POINTS, columns)
            added += cursor.fetchall()
    finally:
        cursor.close()
    deltas: dict[tuple[str, str], _Delta] = {}
    for run_id, key, point_id in added:
        p = points[(run_id, key, point_id)]
        delta = deltas.get((run_id, key))
        if delta is None:
            delta = deltas[(run_id, key)] = _Delta(p)
        delta.add(p)
    if deltas:
        _merge_summaries(conn, insert, deltas)


def _merge_summaries(
    conn: sa.Connection, insert: Any, deltas: Mapping[tuple[str, str], _Delta]
) -> None:
    m = s.training_metrics
    stmt = insert(m)
    new = stmt.excluded

    def lower(a: Any, b: Any) -> Any:  # NULL (all NaN so far) gives way to a number
        return sa.case((a.is_(None), b), (b.is_(None), a), (b < a, b), else_=a)

    def higher(a: Any, b: Any) -> Any:
        return sa.case((a.is_(None), b), (b.is_(None), a), (b > a, b), else_=a)

    newer = sa.tuple_(new.last_step, new.last_timestamp_ms, new.last_point_id) > sa.tuple_(
        m.c.last_step, m.c.last_timestamp_ms, m.c.last_point_id
    )
    last_cols = ("last", "last_step", "last_timestamp_ms", "last_point_id")
    stmt = stmt.on_conflict_do_update(
        index_elements=[m.c.run_id, m.c.key],
        set_={
            "count": m.c.count + new.count,
            "min": lower(m.c.min, new.min),
            "max": higher(m.c.max, new.max),
            **{c: sa.case((newer, new[c]), else_=m.c[c]) for c in last_cols},
        },
    )
    conn.execute(
        stmt,
        [
            {
                "run_id": run_id,
                "key": key,
                "last": _db_float(d.last.value),
                "last_step": d.last.step,
                "last_timestamp_ms": d.last.timestamp_ms,
                "last_point_id": d.last.point_id,
                "min": _db_float(d.low),
                "max": _db_float(d.high),
                "count": d.count,
            }
            for (run_id, key), d in sorted(deltas.items(), key=lambda kv: kv[0])
        ],
    )


def _end_runs(conn: sa.Connection, ended: Iterable[RunEnded]) -> None:
    r = s.training_runs
    # Stable sort: lock order by run, each run's endings still in write order.
    for w in sorted(ended, key=lambda e: e.run_id):
        # A final status stays, except KILLED (a reader's guess that the process
        # died), which gives way to the run's own FINISHED or FAILED.
        movable = [RunStatus.RUNNING.value]
        if w.status is not RunStatus.KILLED:
            movable.append(RunStatus.KILLED.value)
        conn.execute(
            sa.update(r)
            .where(r.c.run_id == w.run_id, r.c.status.in_(movable))
            .values(status=w.status.value, ended_at=fmt_time(w.ended_at), error=w.error)
        )


def _beat(conn: sa.Connection, beats: Mapping[str, Heartbeat]) -> None:
    if not beats:
        return
    r = s.training_runs
    stmt = (
        sa.update(r)
        .where(
            r.c.run_id == sa.bindparam("b_run_id"),
            sa.or_(r.c.heartbeat_at.is_(None), r.c.heartbeat_at < sa.bindparam("b_at")),
        )
        .values(heartbeat_at=sa.bindparam("b_at"))
    )
    conn.execute(
        stmt,
        [{"b_run_id": run_id, "b_at": fmt_time(w.at)} for run_id, w in sorted(beats.items())],
    )


def _write_artifacts(
    conn: sa.Connection, insert: Any, artifacts: Mapping[tuple[str, str], ArtifactLogged]
) -> None:
    if not artifacts:
        return
    a = s.training_artifacts
    stmt = insert(a)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[a.c.run_id, a.c.path],
            set_={
                "uri": stmt.excluded.uri,
                "size": stmt.excluded.size,
                "sha256": stmt.excluded.sha256,
            },
        ),
        [
            {"run_id": w.run_id, "path": w.path, "uri": w.uri, "size": w.size, "sha256": w.sha256}
            for _, w in sorted(artifacts.items(), key=lambda kv: kv[0])
        ],
    )
