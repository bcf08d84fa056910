"""``search_runs`` in SQL: the filter tree as conditions, the order as keyset segments.

The semantics are :func:`umlaut_core.experiments.filters.select_training_runs`; this
module only restates them so a database can run them with its indexes:

* Each comparison is a condition on one run, written relative to the run id of the
  row the query walks. Params, tags and metric summaries are ``EXISTS`` probes of
  their table's primary key ``(run_id, key)``; SQL's NULL logic (a comparison with a
  missing value is unknown, and unknown is neither kept by AND nor made true by OR)
  is the filters' "a missing value matches nothing", as long as no NOT wraps a
  comparison, and none does: ``is null`` is ``NOT EXISTS``.
* The order is split into *segments* that each follow one index: runs having the
  sort value (for a param: numbers, then strings), then runs missing it, ordered by
  run id. A page walks the first segment's index from the token's position and stops
  after ``limit + 1`` matching rows, moving to the next segment only when one runs
  out, so a page costs about the same however deep it is and whatever the table
  size, as long as the filter keeps a fair share of the rows it walks.
* A walk is short when matches are common, long when they are rare. On SQLite,
  whose planner has no statistics to tell the two apart, a filter ANDed at the top
  that an index answers (a param, tag or metric compared with a value, a run or
  parent id) is first probed for up to ``NARROW`` runs; if it has no more, the page
  looks up just those runs and sorts them instead of walking. PostgreSQL plans the
  ``EXISTS`` as semi-joins with its statistics and needs no help.
* The token is ``[segment, value]`` and the last run id (opaque base64 JSON).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from umlaut_core.exceptions import ConfigurationError
from umlaut_core.experiments.filters import (
    TIME_ATTRIBUTES,
    And,
    Comparison,
    Expr,
    Field,
    OrderBy,
    RunSearch,
    decode_page_token,
    encode_page_token,
)

from . import _schema as s
from ._rows import fmt_time

__all__ = ["NARROW", "Narrowed", "Searcher", "Segment", "decode_token", "encode_token"]

#: Most runs a probed filter may match for a page to look them up rather than walk.
NARROW = 2000
#: How a param logged as None is stored (``json.dumps(None)``).
JSON_NULL = "null"
#: Operators an index range or lookup answers, for probing.
_PROBED_OPS = ("=", "<", "<=", ">", ">=", "in")

_ATTRIBUTE_COLUMNS = {
    "run_id": "run_id",
    "name": "name",
    "status": "status",
    "parent_id": "parent_id",
    "user": "user_name",
    "started_at": "started_at",
    "ended_at": "ended_at",
}
_OPS = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _glob(pattern: str) -> str:
    """A LIKE pattern as an SQLite GLOB (case-sensitive, as the filters' LIKE is)."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(ch, ch) for ch in pattern)


def _double(value: Any) -> Any:
    if isinstance(value, str):
        return value
    try:
        return float(value)
    except OverflowError:  # an int beyond any double is beyond them all
        return math.inf if value > 0 else -math.inf


@dataclass(frozen=True)
class Segment:
    """One stretch of the order that one index can walk.

    ``table`` is walked (its rows with ``key``, for params, tags and metrics);
    ``value`` is the sort column (None: runs missing the key, by run id); ``where``
    picks the stretch's rows; ``kind`` is what a page token's value must be
    (``num``, ``text`` or None)."""

    table: sa.Table
    key: str | None
    value: sa.ColumnElement[Any] | None
    where: tuple[sa.ColumnElement[bool], ...]
    kind: str | None

    @property
    def run_id(self) -> sa.ColumnElement[Any]:
        return self.table.c.run_id


@dataclass(frozen=True)
class Narrowed:
    """Every run a top-level filter ``term`` matches: the page looks these up."""

    term: Expr
    run_ids: tuple[str, ...]


class Searcher:
    """Builds the statements of one dialect (``sqlite`` or ``postgresql``)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    # -- conditions ---------------------------------------------------------------

    def condition(
        self, expr: Expr, rid: sa.ColumnElement[Any], run: sa.FromClause | None
    ) -> sa.ColumnElement[bool]:
        """``expr`` for the run whose id is ``rid``; ``run`` is that run's row of
        ``umlaut_training_runs`` when the query walks it (else it is looked up)."""
        if isinstance(expr, And):
            return sa.and_(*(self.condition(e, rid, run) for e in expr.items))
        if not isinstance(expr, Comparison):
            return sa.or_(*(self.condition(e, rid, run) for e in expr.items))
        f = expr.field
        if f.kind == "attribute":
            if run is not None:
                return self._attribute(expr, run)
            r = s.training_runs.alias()
            return sa.exists().where(r.c.run_id == rid, self._attribute(expr, r))
        table = {"param": s.training_params, "tag": s.training_tags}.get(
            f.kind, s.training_metrics
        ).alias()
        found = sa.exists().where(table.c.run_id == rid, table.c.key == f.key)
        if f.kind == "param":
            # A param logged as JSON null has no value, as one never logged.
            found = found.where(table.c.value != JSON_NULL)
        if expr.op == "is null":
            return ~found
        if expr.op == "is not null":
            return found
        return found.where(self._value_test(expr, table))

    def _value_test(self, c: Comparison, t: sa.FromClause) -> sa.ColumnElement[bool]:
        f = c.field
        if f.kind == "tag":
            return self._compare(t.c.value, c.op, c.value)
        if f.kind == "metric":
            return self._compare(t.c[f.aggregate], c.op, c.value)
        # A param: numbers meet numeric literals, strings meet string literals.
        if c.op == "like":
            return self._compare(t.c.value_text, "like", c.value)
        if c.op == "in":
            nums = tuple(v for v in c.value if not isinstance(v, str))
            texts = tuple(v for v in c.value if isinstance(v, str))
            return sa.or_(
                self._compare(t.c.value_num, "in", nums),
                self._compare(t.c.value_text, "in", texts),
            )
        column = t.c.value_text if isinstance(c.value, str) else t.c.value_num
        return self._compare(column, c.op, c.value)

    def _attribute(self, c: Comparison, run: sa.FromClause) -> sa.ColumnElement[bool]:
        column = run.c[_ATTRIBUTE_COLUMNS[c.field.key]]
        if c.op == "is null":
            return column.is_(None)
        if c.op == "is not null":
            return column.is_not(None)
        if c.field.key in TIME_ATTRIBUTES:
            if c.op == "like":  # a moment is not text: LIKE matches none
                return sa.false()
            value = tuple(map(fmt_time, c.value)) if c.op == "in" else fmt_time(c.value)
            return self._compare(column, c.op, value)
        return self._compare(column, c.op, c.value)

    def _compare(self, column: Any, op: str, value: Any) -> sa.ColumnElement[bool]:
        """``column op value``; NULL in the column (missing, or NaN) is never kept."""
        if isinstance(column.type, sa.Double):
            # As doubles: SQLAlchemy would type a list led by an int as INTEGER, and
            # PostgreSQL would then cast 2.5 in (1, 2.5) to 2.
            value = tuple(map(_double, value)) if op == "in" else _double(value)
        if op == "like":
            if self.dialect == "sqlite":
                return column.op("GLOB")(_glob(value))  # type: ignore[no-any-return]
            # PostgreSQL's LIKE escapes with a backslash: make each one literal.
            return column.like(value.replace("\\", "\\\\"))  # type: ignore[no-any-return]
        if op == "in":
            # NaN equals nothing; a NULL-free list keeps IN exact on both dialects.
            kept = [v for v in value if not (isinstance(v, float) and math.isnan(v))]
            return column.in_(kept) if kept else sa.false()
        if isinstance(value, float) and math.isnan(value):
            # IEEE: only != holds against NaN, and only for a value that is a number.
            return column.is_not(None) if op == "!=" else sa.false()
        return _OPS[op](column, value)  # type: ignore[no-any-return]

    # -- order and pages ----------------------------------------------------------

    def segments(self, order: OrderBy) -> list[Segment]:
        f = order.field
        r = s.training_runs
        if f.kind == "attribute":
            column = r.c[_ATTRIBUTE_COLUMNS[f.key]]
            present = Segment(r, None, column, (column.is_not(None),), "text")
            if f.key in ("run_id", "status", "started_at"):  # never missing
                return [present]
            return [present, Segment(r, None, None, (column.is_(None),), None)]
        if f.kind == "param":
            p = s.training_params
            nums = Segment(p, f.key, p.c.value_num, (p.c.value_num.is_not(None),), "num")
            texts = Segment(p, f.key, p.c.value_text, (p.c.value_text.is_not(None),), "text")
            held = sa.or_(p.c.value_num.is_not(None), p.c.value_text.is_not(None))
            # Numbers come before strings ascending, after them descending.
            ordered = [texts, nums] if order.descending else [nums, texts]
            return [*ordered, self._missing(p, f, held)]
        if f.kind == "tag":
            t = s.training_tags
            return [Segment(t, f.key, t.c.value, (), "text"), self._missing(t, f, sa.true())]
        m = s.training_metrics
        column = m.c[f.aggregate]
        present = Segment(m, f.key, column, (column.is_not(None),), "num")
        return [present, self._missing(m, f, column.is_not(None))]

    def _missing(self, table: sa.Table, f: Field, held: sa.ColumnElement[bool]) -> Segment:
        r = s.training_runs
        probe = sa.exists().where(table.c.run_id == r.c.run_id, table.c.key == f.key, held)
        return Segment(r, None, None, (~probe,), None)

    def narrow(self, conn: sa.Connection, where: Expr | None) -> Narrowed | None:
        """The smallest set of runs a probed top-level term matches, if one has at
        most ``NARROW`` (SQLite only; see the module docstring)."""
        if self.dialect != "sqlite" or where is None:
            return None
        best: tuple[int, Expr, sa.Select[Any]] | None = None
        for term in where.items if isinstance(where, And) else (where,):
            probe = self._probe(term)
            if probe is None:
                continue
            # Counted inside the database first: only the winner's ids travel.
            bounded = probe.limit(NARROW + 1).subquery()
            count = conn.execute(sa.select(sa.func.count()).select_from(bounded)).scalar_one()
            if count <= NARROW and (best is None or count < best[0]):
                best = (count, term, probe)
        if best is None:
            return None
        _, term, probe = best
        return Narrowed(term, tuple(conn.execute(probe).scalars().all()))

    def _probe(self, term: Expr) -> sa.Select[Any] | None:
        """The run ids matching ``term`` from one index, or None if none answers it."""
        if not isinstance(term, Comparison) or term.op not in _PROBED_OPS:
            return None
        f = term.field
        if f.kind == "attribute":
            if f.key not in ("run_id", "parent_id"):
                return None
            r = s.training_runs
            return sa.select(r.c.run_id).where(self._attribute(term, r))
        if f.kind == "metric" and f.aggregate == "count":
            return None  # not indexed: the probe would read every summary
        table = {"param": s.training_params, "tag": s.training_tags}.get(f.kind, s.training_metrics)
        return sa.select(table.c.run_id).where(table.c.key == f.key, self._value_test(term, table))

    def page_query(
        self,
        search: RunSearch,
        segment: Segment,
        after: tuple[Any, str] | None,
        limit: int,
        narrowed: Narrowed | None = None,
    ) -> sa.Select[Any]:
        """Up to ``limit`` ``(run_id, sort value)`` rows of one segment, after the
        position ``after`` (the last row of the previous page) when given."""
        rid, table = segment.run_id, segment.table
        walks_runs = table is s.training_runs
        conditions = list(segment.where)
        if segment.key is not None:
            key = table.c.key
            # Looking up a few narrowed runs: hide the (key, value) index from
            # SQLite, or it would still walk it to spare the sort.
            conditions.append((key.concat("") if narrowed else key) == segment.key)
        items: Sequence[Expr] = ()
        if search.where is not None:
            items = search.where.items if isinstance(search.where, And) else (search.where,)
        if narrowed is not None:
            conditions.append(rid.in_(narrowed.run_ids))
            items = [e for e in items if e is not narrowed.term]  # the lookup is its test
        run_terms: list[Comparison] = []
        other: list[Expr] = []
        for item in items:
            on_run = isinstance(item, Comparison) and item.field.kind == "attribute"
            if on_run and not walks_runs:
                run_terms.append(item)  # type: ignore[arg-type]
            else:
                other.append(item)
        if walks_runs:
            if search.experiments:
                conditions.append(table.c.experiment.in_(search.experiments))
        else:
            # Conditions on the run row itself (its experiment, attributes ANDed at
            # the top) share one primary-key lookup when another table is walked.
            fr = s.training_runs.alias()
            on_row = [self._attribute(c, fr) for c in run_terms]
            if search.experiments:
                on_row.append(fr.c.experiment.in_(search.experiments))
            if on_row:
                conditions.append(sa.exists().where(fr.c.run_id == rid, *on_row))
        run = table if walks_runs else None
        conditions.extend(self.condition(e, rid, run) for e in other)
        desc = search.order_by.descending
        value = segment.value
        if after is not None:
            conditions.append(self._after(value, rid, after, desc))
        columns = [rid, value if value is not None else sa.null()]
        keys = [value, rid] if value is not None else [rid]
        stmt = sa.select(*columns).select_from(table).where(*conditions)
        return stmt.order_by(*(k.desc() if desc else k.asc() for k in keys)).limit(limit)

    @staticmethod
    def _after(
        value: sa.ColumnElement[Any] | None,
        rid: sa.ColumnElement[Any],
        after: tuple[Any, str],
        desc: bool,
    ) -> sa.ColumnElement[bool]:
        """Rows past the token's ``(value, run_id)`` in the page order."""
        last_value, last_id = after
        beyond = rid < last_id if desc else rid > last_id
        if value is None:
            return beyond
        if isinstance(value.type, sa.Double):
            last_value = _double(last_value)
        # Spelled out rather than as a row value (v, id) < (:v, :id), so the bound on
        # v alone seeks the index on every dialect.
        ahead = value < last_value if desc else value > last_value
        up_to = value <= last_value if desc else value >= last_value
        return sa.and_(up_to, sa.or_(ahead, sa.and_(value == last_value, beyond)))


def encode_token(segment: int, value: Any, run_id: str) -> str:
    return encode_page_token([segment, value], run_id)


def decode_token(token: str, segments: Sequence[Segment]) -> tuple[int, Any, str]:
    """``(segment, value, run_id)`` of a token this store made for this order."""
    held, run_id = decode_page_token(token)
    ok = isinstance(held, list) and len(held) == 2 and isinstance(held[0], int)
    if ok and 0 <= held[0] < len(segments):
        index, value = held
        kind = segments[index].kind
        if kind is None:
            ok = value is None
        elif kind == "num":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and not math.isnan(value)
        else:
            ok = isinstance(value, str)
        if ok:
            return index, value, run_id
    raise ConfigurationError(
        f"page_token {token!r} is not a token from a previous page of this search "
        f"(the order, or the store, differs)"
    )
