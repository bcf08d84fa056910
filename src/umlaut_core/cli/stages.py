"""``umlaut promote`` and ``umlaut stages``: moving stages and reading the ledger."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from .context import CliContext
from .options import INSTANT
from .output import emit_object, emit_rows, format_option, iso, plain

__all__ = ["AT_FIELDS", "CHANGE_FIELDS", "pointed_at", "promote", "stages"]

#: Fields of a ledger entry (``promote``, ``stages history``), in order.
CHANGE_FIELDS = (
    "model_name",
    "stage",
    "from_version",
    "to_version",
    "changed_at",
    "changed_by",
    "reason",
)
#: Fields of ``stages history --at``, in order.
AT_FIELDS = ("model_name", "stage", "version", "since", "changed_by", "reason", "at")


@click.command()
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.argument("stage")
@click.option("--reason", help="Why: kept in the promotion ledger.")
@format_option()
@click.pass_obj
def promote(
    state: CliContext, name: str, version: int, stage: str, reason: str | None, fmt: str
) -> None:
    """Point STAGE of NAME at VERSION; the move goes to the promotion ledger."""
    change = state.umlaut().promote(name, version, stage, reason=reason)
    emit_object(plain(change), fmt)


@click.group()
def stages() -> None:
    """Stages: the promotion ledger, now or at a moment in the past."""


def pointed_at(changes: list[Any], at: dt.datetime) -> dict[str, Any]:
    """For each stage in ``changes`` (a ledger, oldest first), the entry in force at
    ``at``: the last one made at or before it (None: the stage was not set yet)."""
    in_force: dict[str, Any] = {}
    for change in changes:
        in_force.setdefault(change.stage, None)
        if change.changed_at <= at:
            in_force[change.stage] = change
    return in_force


@stages.command("history")
@click.argument("name")
@click.option("--stage", help="Only this stage.")
@click.option(
    "--at",
    type=INSTANT,
    help="Instead of the ledger: which version each stage pointed at on this date "
    "(ISO 8601; no offset means UTC; a bare date means its 00:00 UTC).",
)
@format_option()
@click.pass_obj
def history(
    state: CliContext, name: str, stage: str | None, at: dt.datetime | None, fmt: str
) -> None:
    """The promotion ledger of NAME, oldest first; with --at, the stages at that moment."""
    changes = state.umlaut().stage_history(name, stage)
    if at is None:
        emit_rows([plain(c) for c in changes], fmt, CHANGE_FIELDS)
        return
    rows = []
    wanted = [stage] if stage is not None and not changes else None
    in_force = pointed_at(changes, at)
    for alias in wanted or sorted(in_force):
        change = in_force.get(alias)
        rows.append(
            {
                "model_name": change.model_name if change else name,
                "stage": alias,
                "version": change.to_version if change else None,
                "since": iso(change.changed_at) if change else None,
                "changed_by": change.changed_by if change else None,
                "reason": change.reason if change else None,
                "at": iso(at),
            }
        )
    emit_rows(rows, fmt, AT_FIELDS)
