"""Reading the promotion ledger: stage lanes for the timeline, and which version a
stage pointed at on a given day, both computed from ``stage_history`` alone (so
every backend answers the same way)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from umlaut_core import StageChange

from .svg import Segment

__all__ = ["StageOnDate", "lanes", "ordered_stages", "stage_on", "stages_of"]


def ordered_stages(stages: Iterable[str]) -> list[str]:
    """Production, Staging, Archived first (the seed API's order), then the rest by name."""
    order = {"Production": 0, "Staging": 1, "Archived": 2}
    return sorted(set(stages), key=lambda s: (order.get(s, len(order)), s))


def stages_of(aliases: Mapping[str, int], version: int) -> list[str]:
    """The stages pointing at ``version`` now."""
    return ordered_stages(s for s, v in aliases.items() if v == version)


def lanes(changes: Sequence[StageChange], now: dt.datetime) -> list[tuple[str, list[Segment]]]:
    """Per stage, the stretches of time it pointed at one version, oldest first."""
    by_stage: dict[str, list[StageChange]] = {}
    for change in changes:
        by_stage.setdefault(change.stage, []).append(change)
    out = []
    for stage in ordered_stages(by_stage):
        moves = sorted(by_stage[stage], key=lambda c: c.changed_at)
        segments = [
            Segment(stage, c.to_version, c.changed_at, nxt.changed_at if nxt else now)
            for c, nxt in zip(moves, [*moves[1:], None], strict=True)
        ]
        out.append((stage, segments))
    return out


@dataclass(frozen=True, slots=True)
class StageOnDate:
    """What a stage pointed at on one day (UTC): at its start, at its end, and the
    moves made during it."""

    stage: str
    day: dt.date
    at_start: int | None
    at_end: int | None
    moves: tuple[StageChange, ...]


def stage_on(changes: Sequence[StageChange], stage: str, day: dt.date) -> StageOnDate:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    at_start: int | None = None
    at_end: int | None = None
    moves = []
    for change in sorted(changes, key=lambda c: c.changed_at):
        if change.stage != stage:
            continue
        when = _aware(change.changed_at)
        if when < start:
            at_start = change.to_version
        if when < end:
            at_end = change.to_version
            if when >= start:
                moves.append(change)
    return StageOnDate(stage, day, at_start, at_end, tuple(moves))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
