"""Audit records in ``umlaut_runs``: writing (one transaction per batch, ids as
idempotency keys, a COPY path for imports on PostgreSQL) and reading (filtered pages,
oldest-first scans of records or of the columns a drift report reads, counts). A
mixin of :class:`~umlaut_sql._tracker.SqlTracker`, which supplies the connections
(``_hot``), the dialect and the prepared statements.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from umlaut_core.ids import id_floor
from umlaut_core.records import AuditRecord, RunColumns, RunQuery

from . import _schema as s
from ._rows import RUN_COLUMNS, fmt_time, parse_time, record_from_row, row_from_fields, run_row

__all__ = ["SqlAuditRecords"]

CHUNK = 1000
#: Rows per COPY in ``import_runs`` on PostgreSQL (held in memory while written).
COPY_BATCH = 20_000
#: Records per page of ``scan_runs`` and ``scan_run_columns``.
SCAN_PAGE = 10_000
#: What ``scan_run_columns`` selects: the id for the next page, then ``RunColumns``.
_LEAN_COLUMNS = (
    "id", "inputs", "output", "status", "error_type", "duration_ms", "started_at",
)  # fmt: skip
_COLUMN = [operator.itemgetter(k) for k in range(len(_LEAN_COLUMNS))]
_COPY_DIRECT = f"COPY umlaut_runs ({', '.join(RUN_COLUMNS)}) FROM STDIN"
_COPY_TEMP = f"COPY umlaut_runs_import ({', '.join(RUN_COLUMNS)}) FROM STDIN"
_TEMP_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS umlaut_runs_import "
    "(LIKE umlaut_runs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_MERGE_TEMP = (
    f"INSERT INTO umlaut_runs ({', '.join(RUN_COLUMNS)}) "
    f"SELECT {', '.join(RUN_COLUMNS)} FROM umlaut_runs_import ON CONFLICT (id) DO NOTHING"
)
_ID_SLACK = dt.timedelta(minutes=1)


class SqlAuditRecords:
    """``record_runs``, ``import_runs``, ``query_runs``, ``scan_runs``,
    ``scan_run_columns``, ``count_runs``."""

    dialect: str
    _sql: dict[str, str]
    _engine: Any
    _hot: Callable[..., Any]

    def record_runs(self, records: Iterable[AuditRecord]) -> int:
        tuples = getattr(records, "field_tuples", None)
        # A run_batch buffer hands over plain field tuples: no record objects to build.
        it = map(row_from_fields, tuples()) if callable(tuples) else map(run_row, records)
        first = list(itertools.islice(it, CHUNK))
        if not first:
            return 0
        if self.dialect != "sqlite" and len(first) == CHUNK:
            # A large batch (run_batch, a cluster's partition): COPY costs PostgreSQL
            # half what INSERTs do (7-9 against 14-17 µs a row), same semantics.
            return self._copy(itertools.chain(first, it), "recording audit records")
        sql = self._sql["run"]
        sqlite = self.dialect == "sqlite"
        consumed_more = False

        def work(conn: Any) -> int:
            nonlocal consumed_more
            cur = conn.cursor()
            try:
                if len(first) == 1:  # one statement is its own transaction: no BEGIN
                    cur.execute(sql, first[0])
                    return max(int(cur.rowcount), 0)
                before = conn.total_changes if sqlite else 0
                added = 0
                cur.execute("BEGIN IMMEDIATE" if sqlite else "BEGIN")
                try:
                    chunk = first
                    while chunk:
                        cur.executemany(sql, chunk)
                        added += 0 if sqlite else max(cur.rowcount, 0)
                        if len(chunk) < CHUNK:
                            break
                        consumed_more = True
                        chunk = list(itertools.islice(it, CHUNK))
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                return int(conn.total_changes - before) if sqlite else added
            finally:
                cur.close()

        # A retry after a dropped connection must not re-read a half-consumed iterable.
        return self._hot("recording audit records", work, retry=lambda: not consumed_more)

    def import_runs(self, records: Iterable[AuditRecord]) -> int:
        """``record_runs`` for replayed records; on PostgreSQL through ``COPY``.

        Each batch of ``COPY_BATCH`` rows is first COPied straight into the table under
        a savepoint (the fast path, a fresh copy); if any of its ids is already there,
        the savepoint is rolled back and the batch goes through a temporary table and
        ``INSERT … ON CONFLICT (id) DO NOTHING`` instead, so importing again (a resumed
        copy) skips what is held, exactly like ``record_runs``. One transaction.
        """
        if self.dialect == "sqlite":
            return self.record_runs(records)
        tuples = getattr(records, "field_tuples", None)
        return self._copy(
            map(row_from_fields, tuples()) if callable(tuples) else map(run_row, records)
        )

    def _copy(self, it: Iterator[tuple[Any, ...]], action: str = "importing audit records") -> int:
        """PostgreSQL: rows (``RUN_COLUMNS`` values) in one transaction through COPY,
        skipping ids already held."""
        first = list(itertools.islice(it, COPY_BATCH))
        if not first:
            return 0
        from psycopg import errors as pg_errors

        consumed_more = False

        def work(conn: Any) -> int:
            nonlocal consumed_more
            added = 0
            with conn.transaction():
                cur = conn.cursor()
                try:
                    batch = first
                    while batch:
                        added += _copy_batch(conn, cur, batch, pg_errors.UniqueViolation)
                        if len(batch) < COPY_BATCH:
                            break
                        consumed_more = True
                        batch = list(itertools.islice(it, COPY_BATCH))
                finally:
                    cur.close()
            return added

        return self._hot(action, work, retry=lambda: not consumed_more)

    def scan_runs(self, query: RunQuery, after: str | None = None) -> Iterator[AuditRecord]:
        """Keyset pages of ``SCAN_PAGE`` records in ascending id order; no connection is
        held between pages."""
        page = dataclasses.replace(query, limit=SCAN_PAGE)
        cursor = after
        while True:
            sql, params = self._runs_sql(page, ascending=True, after=cursor)
            rows = self._fetch_all("scanning audit records", sql, params)
            yield from map(record_from_row, rows)
            if len(rows) < SCAN_PAGE:
                return
            cursor = rows[-1][0]

    def _fetch_all(self, what: str, sql: str, params: Any) -> list[Any]:
        """Every row of one query, on the raw DBAPI cursor (retried like any hot read)."""

        def work(conn: Any) -> list[Any]:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                return list(cur.fetchall())
            finally:
                cur.close()

        result: list[Any] = self._hot(what, work)
        return result

    def scan_run_columns(self, query: RunQuery, limit: int | None = None) -> Iterator[RunColumns]:
        """Keyset pages like ``scan_runs``, of seven columns fetched on the raw DBAPI
        cursor: no record objects, no ``datetime`` per row (the stored times are
        fixed-width UTC text, so the text's order is their order and a page's first
        and last come from ``min``/``max`` of strings)."""
        left = limit
        cursor: str | None = None
        while left is None or left > 0:
            size = SCAN_PAGE if left is None else min(SCAN_PAGE, left)
            page = dataclasses.replace(query, limit=size)
            sql, params = self._runs_sql(page, ascending=True, after=cursor, columns=_LEAN_COLUMNS)
            rows = self._fetch_all("scanning audit records", sql, params)
            if not rows:
                return
            # A list per column through itemgetter: a third of what zip(*rows) costs.
            inputs, outputs, status, errors, durations = (
                list(map(_COLUMN[k], rows)) for k in range(1, 6)
            )
            started = _COLUMN[6]
            earliest, latest = min(map(started, rows)), max(map(started, rows))
            count, cursor = len(rows), rows[-1][0]
            del rows
            yield RunColumns(
                inputs, outputs, status, errors, durations, parse_time(earliest), parse_time(latest)
            )
            if count < size:
                return
            if left is not None:
                left -= count

    def count_runs(self, query: RunQuery) -> int:
        sql, params = self._runs_sql(query, count=True)

        def work(conn: Any) -> int:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                return int(cur.fetchone()[0])
            finally:
                cur.close()

        return self._hot("counting audit records", work)

    def query_runs(self, query: RunQuery) -> list[AuditRecord]:
        sql, params = self._runs_sql(query)

        def work(conn: Any) -> list[AuditRecord]:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                return list(map(record_from_row, cur.fetchall()))
            finally:
                cur.close()

        # A raw DBAPI connection, the page fetched at once: SQLAlchemy's Result builds
        # a Row per record, which cost more than the record itself (history exports
        # read millions of records a page at a time).
        return self._hot("querying audit records", work)

    def _runs_sql(
        self,
        query: RunQuery,
        *,
        ascending: bool = False,
        after: str | None = None,
        count: bool = False,
        columns: Sequence[str] = RUN_COLUMNS,
    ) -> tuple[str, Any]:
        """The SELECT of ``columns`` for ``query`` and its parameters, in the driver's
        style (``ascending``/``after``: a ``scan_runs`` page; ``count``: its count, no
        limit)."""
        r = s.runs
        stmt = (
            sa.select(sa.func.count()).select_from(r)
            if count
            else sa.select(*(r.c[c] for c in columns))
        )
        if query.model_name is not None:
            stmt = stmt.where(r.c.model_name == query.model_name)
        if query.version is not None:
            stmt = stmt.where(r.c.version == query.version)
        if query.status is not None:
            stmt = stmt.where(r.c.status == query.status)
        if query.reference_id is not None:
            stmt = stmt.where(r.c.reference_id == query.reference_id)
        # Ids sort by the time they were made (just before started_at), so a time
        # window is also an id range the primary key (or (model_name, id)) can seek;
        # the minute of slack covers clock steps, started_at keeps the result exact.
        if query.since is not None:
            stmt = stmt.where(r.c.started_at >= fmt_time(query.since))
            stmt = stmt.where(r.c.id >= id_floor(query.since, -_ID_SLACK))
        if query.until is not None:
            stmt = stmt.where(r.c.started_at < fmt_time(query.until))
            stmt = stmt.where(r.c.id < id_floor(query.until, _ID_SLACK))
        if query.before is not None:
            stmt = stmt.where(r.c.id < query.before)
        if after is not None:
            stmt = stmt.where(r.c.id > after)
        if not count:
            order = r.c.id.asc() if ascending else r.c.id.desc()
            stmt = stmt.order_by(order).limit(query.limit)
        compiled = stmt.compile(dialect=self._engine.dialect)
        positions = compiled.positiontup
        if positions is not None:
            return str(compiled), [compiled.params[k] for k in positions]
        return str(compiled), dict(compiled.params)


def _copy_batch(conn: Any, cur: Any, rows: list[tuple[Any, ...]], conflict: type[Exception]) -> int:
    """COPY ``rows`` into umlaut_runs; those whose id is held are skipped. Returns how
    many were new. Runs inside the caller's transaction."""
    try:
        # A savepoint: a conflict undoes only this attempt.
        with conn.transaction(), cur.copy(_COPY_DIRECT) as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)
    except conflict:
        pass
    cur.execute(_TEMP_TABLE)
    with cur.copy(_COPY_TEMP) as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(_MERGE_TEMP)
    added = max(int(cur.rowcount), 0)
    cur.execute("DELETE FROM umlaut_runs_import")
    return added
