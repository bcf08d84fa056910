"""Metric summaries kept beside MLflow's metric history, and the history read back.

MLflow keeps every point (deduplicated on key, timestamp, step and value, also when
a ``log-batch`` is retried) but summarises only the latest value. umlaut's summary
(last, min, max, count) lives in the run tag ``umlaut.metric.<MLflow key>``, written
in the same request as the points and after them (MLflow applies a request's metrics
before its tags), so ``get_run`` and searches never read a history.

A summary records the latest (timestamp, step) it has counted (``mark``). Points
all past that mark cannot have been counted yet (MLflow's identity of a point
includes both), so they are folded in directly: the common case, one request per
write, also when a fast loop logs many steps within one millisecond. A batch with
older points may be a replay (or arrive out of order): then the points are sent,
the key's whole history is read once and the summary recomputed from it, which is
exact whatever happened before. The identities read are kept in process, so
further replays of that key cost no read. MLflow keeps no point ids: see
:func:`recount` for ties of (step, timestamp).
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from umlaut_core.experiments.records import MetricPoint, MetricSummary

from ._run_values import MAX_FLOAT, float_in, float_out

__all__ = [
    "SUMMARY",
    "Summary",
    "dump_summary",
    "fold",
    "identity",
    "load_summary",
    "read_history",
    "recount",
    "sorted_points",
]

SUMMARY = "umlaut.metric."
#: Points per page when reading a history.
HISTORY_PAGE = 25_000

Identity = tuple[int, int, float | str]
#: later_point's order: step, then timestamp, then point id.
_LATER = operator.itemgetter(2, 3, 4)
#: A summary's mark: timestamp, then step.
_MARK = operator.itemgetter(3, 2)


@dataclass(frozen=True, slots=True)
class Summary:
    """A metric summary plus what folding the next point needs."""

    summary: MetricSummary
    last_point_id: int
    #: The latest (timestamp_ms, step) counted.
    mark: tuple[int, int]

    def is_new(self, p: MetricPoint) -> bool:
        """Whether ``p`` lies past everything counted, so it cannot have been."""
        return (p.timestamp_ms, p.step) > self.mark


def identity(p: MetricPoint) -> Identity:
    """What MLflow deduplicates a point on (NaN is one value; ±inf is stored as the
    largest finite float)."""
    v = p.value
    if -MAX_FLOAT <= v <= MAX_FLOAT:  # false for NaN and ±inf
        return (p.step, p.timestamp_ms, v)
    return (p.step, p.timestamp_ms, "nan" if v != v else math.copysign(MAX_FLOAT, v))


def fold(previous: Summary | None, points: Iterable[MetricPoint]) -> Summary | None:
    """The summary after ``points`` (none of them counted before): what
    :func:`~umlaut_core.experiments.memory.apply_summary` gives point by point, in a
    few passes of builtins over the batch (a shipper folds tens of thousands of
    points per request round)."""
    pts = points if isinstance(points, list | tuple) else list(points)
    if not pts:
        return previous
    numbers = [p.value for p in pts if p.value == p.value]  # NaN only if all are NaN
    best = max(pts, key=_LATER)  # the first of equals, as a strict "later" keeps it
    mark = max(map(_MARK, pts))
    key = pts[-1].key
    if previous is None:
        nan = pts[0].value
        lo = min(numbers) if numbers else nan
        hi = max(numbers) if numbers else nan
        summary = MetricSummary(key, best.value, best.step, best.timestamp_ms, lo, hi, len(pts))
        return Summary(summary, best.point_id, mark)
    s = previous.summary
    lo, hi = _bound(min, s.min, numbers), _bound(max, s.max, numbers)
    if _LATER(best) > (s.last_step, s.last_timestamp_ms, previous.last_point_id):
        last, step, ts, point_id = best.value, best.step, best.timestamp_ms, best.point_id
    else:
        last, step, ts, point_id = s.last, s.last_step, s.last_timestamp_ms, previous.last_point_id
    summary = MetricSummary(key, last, step, ts, lo, hi, s.count + len(pts))
    return Summary(summary, point_id, max(previous.mark, mark))


def _bound(pick: Callable[..., float], held: float, numbers: list[float]) -> float:
    """``held`` (a min or max so far, ``pick`` being min or max) after ``numbers``; a
    NaN held gives way to any number, and on a tie the value held stays."""
    if not numbers:
        return held
    new = pick(numbers)
    return new if held != held else pick(held, new)


def recount(
    key: str,
    history: Sequence[MetricPoint],
    previous: Summary | None,
    arrived: Iterable[MetricPoint],
) -> Summary | None:
    """The summary of a whole history. MLflow keeps no point ids, so among points
    at the last (step, timestamp) the one with the highest id this process knows of
    wins (the points just sent, or the previous summary's last), else MLflow's
    order decides."""
    base = fold(None, (MetricPoint(key, p.value, p.step, p.timestamp_ms) for p in history))
    if base is None:
        return None
    s = base.summary
    top = (s.last_step, s.last_timestamp_ms)
    candidates = [p for p in arrived if (p.step, p.timestamp_ms) == top]
    if previous is not None:
        last = previous.summary
        if (last.last_step, last.last_timestamp_ms) == top:
            candidates.append(MetricPoint(key, last.last, *top, previous.last_point_id))
    if not candidates:
        return base
    best = max(candidates, key=lambda p: p.point_id)
    return Summary(dataclasses.replace(s, last=best.value), best.point_id, base.mark)


def dump_summary(s: Summary) -> str:
    m = s.summary
    body = {
        "count": m.count,
        "last": float_out(m.last),
        "step": m.last_step,
        "timestamp_ms": m.last_timestamp_ms,
        "min": float_out(m.min),
        "max": float_out(m.max),
        "point_id": s.last_point_id,
        "mark": list(s.mark),
    }
    return json.dumps(body, separators=(",", ":"))


def load_summary(key: str, text: str) -> Summary | None:
    """The summary in a tag; None if the tag is not one (edited by hand)."""
    try:
        b: dict[str, Any] = json.loads(text)
        summary = MetricSummary(
            key=key,
            last=float_in(b["last"]),
            last_step=int(b["step"]),
            last_timestamp_ms=int(b["timestamp_ms"]),
            min=float_in(b["min"]),
            max=float_in(b["max"]),
            count=int(b["count"]),
        )
        mark = (int(b["mark"][0]), int(b["mark"][1]))
        return Summary(summary, int(b.get("point_id", 0)), mark)
    except (ValueError, KeyError, TypeError):
        return None


def read_history(store: Any, mlflow_run_id: str, mlflow_key: str) -> list[MetricPoint]:
    """Every point MLflow holds for a key, in MLflow's order (timestamp, step,
    value), paged. ``key`` of the points is the MLflow key; ±inf restored."""
    out: list[MetricPoint] = []
    token = None
    while True:
        page = store.get_metric_history(
            mlflow_run_id, mlflow_key, max_results=HISTORY_PAGE, page_token=token
        )
        out.extend(
            MetricPoint(mlflow_key, float_in(m.value), int(m.step), int(m.timestamp)) for m in page
        )
        token = getattr(page, "token", None)
        if not token:
            return out


def sorted_points(key: str, points: list[MetricPoint]) -> Iterator[MetricPoint]:
    """Points by step, then timestamp (point id 0: MLflow has none); ties keep
    MLflow's order. Already ordered histories (the usual case) are not copied."""
    ordered = all((a.step, a.timestamp_ms) <= (b.step, b.timestamp_ms) for a, b in pairwise(points))
    seq = points if ordered else sorted(points, key=lambda p: (p.step, p.timestamp_ms))
    for p in seq:
        yield MetricPoint(key, p.value, p.step, p.timestamp_ms, 0)
