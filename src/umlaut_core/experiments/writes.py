"""Every change to a training run is one of these idempotent writes.

The facade never updates a run in place: it emits writes, which reach the store
directly (embedded stores) or through the durable spool and its shipper (remote
stores), possibly more than once and, after a crash, replayed. A store applies a
sequence of writes so that applying it twice has the effect of applying it once:

* :class:`RunStarted` creates the run (and its experiment, if new); a run that
  exists is left as it is.
* :class:`ParamsLogged`: a param's first value wins; the same value again is a no-op
  and a different one is ignored by the store (the facade refuses it before writing,
  with :class:`~umlaut_core.ParamConflictError`).
* :class:`MetricsLogged`: a point whose ``point_id`` the run already holds for that
  key is skipped; the summaries count each point once.
* :class:`TagsSet`: the last write wins.
* :class:`RunEnded`: sets the final status, end time and error. A final status is
  not changed by a later :class:`RunEnded`, except that KILLED (set by a reader that
  thought the process dead) gives way to the run's own FINISHED or FAILED.
* :class:`Heartbeat`: moves ``heartbeat_at`` forward (never back).
* :class:`ArtifactLogged`: records (or replaces) the artifact at ``path``.
* :class:`VersionLinked`: records a model version the run produced (once).

Writes carry JSON-ready values only, so the spool can hold them as text
(:func:`to_json` / :func:`from_json`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .records import MetricPoint, RunStatus

__all__ = [
    "ArtifactLogged",
    "Heartbeat",
    "MetricsLogged",
    "ParamsLogged",
    "RunEnded",
    "RunStarted",
    "RunWrite",
    "TagsSet",
    "VersionLinked",
    "from_json",
    "to_json",
]


def _empty() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    experiment: str
    name: str | None
    started_at: datetime
    parent_id: str | None = None
    user: str | None = None
    host: str | None = None
    tags: Mapping[str, str] = field(default_factory=_empty)
    environment: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class ParamsLogged:
    run_id: str
    #: name → any JSON value (already checked encodable by the facade).
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MetricsLogged:
    run_id: str
    points: tuple[MetricPoint, ...]


@dataclass(frozen=True, slots=True)
class TagsSet:
    run_id: str
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RunEnded:
    run_id: str
    status: RunStatus
    ended_at: datetime
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    run_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ArtifactLogged:
    run_id: str
    path: str
    uri: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class VersionLinked:
    run_id: str
    model_name: str
    version: int


RunWrite = (
    RunStarted
    | ParamsLogged
    | MetricsLogged
    | TagsSet
    | RunEnded
    | Heartbeat
    | ArtifactLogged
    | VersionLinked
)

_KINDS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        RunStarted,
        ParamsLogged,
        MetricsLogged,
        TagsSet,
        RunEnded,
        Heartbeat,
        ArtifactLogged,
        VersionLinked,
    )
}


def _float_out(value: float) -> float | str:
    # JSON has no NaN/inf; a diverging loss must survive the spool as itself.
    return value if math.isfinite(value) else repr(value)


def _float_in(value: float | str) -> float:
    return float(value)


def to_json(write: RunWrite) -> str:
    """The write as one line of JSON (what the spool stores). A metric point is the
    array ``[key, value, step, timestamp_ms, point_id]``."""
    body: dict[str, Any] = {"kind": type(write).__name__}
    for name in write.__slots__:
        value = getattr(write, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, RunStatus):
            value = value.value
        elif isinstance(value, Mapping):
            value = dict(value)
        body[name] = value
    try:
        # A MetricPoint is a tuple in that order, which json writes as that array
        # with no Python call per point (a busy loop logs tens of thousands a second).
        return _dumps(body)
    except ValueError:  # NaN or ±inf, which JSON lacks: spelled out point by point
        if "points" not in body:
            raise
    body["points"] = [
        [p.key, _float_out(p.value), p.step, p.timestamp_ms, p.point_id] for p in body["points"]
    ]
    return _dumps(body)


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def from_json(text: str) -> RunWrite:
    """The write :func:`to_json` encoded."""
    body = json.loads(text)
    cls = _KINDS[body.pop("kind")]
    for name in ("started_at", "ended_at", "at"):
        if name in body:
            body[name] = datetime.fromisoformat(body[name]).astimezone(UTC)
    if "status" in body:
        body["status"] = RunStatus(body["status"])
    if "points" in body:
        body["points"] = _points_in(body["points"])
    return cls(**body)  # type: ignore[no-any-return]


def _points_in(rows: list[list[Any]]) -> tuple[MetricPoint, ...]:
    if any(len(row) != 5 for row in rows):
        raise ValueError("a metric point is [key, value, step, timestamp_ms, point_id]")
    points = tuple(map(_point, rows))
    # A value arrives as a float unless to_json spelled it as a string (NaN, ±inf).
    if all(type(p[1]) is float for p in points):
        return points
    return tuple(p if type(p[1]) is float else p._replace(value=_float_in(p[1])) for p in points)


#: MetricPoint from a list of its five fields without a Python call per point.
_point = functools.partial(tuple.__new__, MetricPoint)
