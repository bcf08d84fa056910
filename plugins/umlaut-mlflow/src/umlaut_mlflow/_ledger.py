"""Aliases and their promotion ledger on MLflow: MLflow keeps only where an alias
points, so every move is also a ``promotion`` run in the experiment ``umlaut/<name>``,
which is the ledger ``stage_history`` reads. A mixin of
:class:`~umlaut_mlflow._tracker.MlflowTracker`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from umlaut_core.clock import utcnow
from umlaut_core.records import (
    StageChange,
)

from . import _codec as codec
from ._codec import K
from ._filters import safe

__all__ = ["MlflowLedger"]


class MlflowLedger:
    """``set_alias``, ``import_ledger``, ``stage_history``."""

    _client: Any

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        changed_by: str | None,
        reason: str | None,
    ) -> StageChange:
        """Move the alias; the ledger run is FINISHED only once the move is done.

        An alias already on ``version`` is left alone and no promotion run is
        written (the ledger records moves, not repeated requests).
        """
        self.get_version(name, version=version)
        model = self._require_model(name)
        previous = (model.aliases or {}).get(alias)
        change = StageChange(
            model_name=name,
            stage=alias,
            from_version=int(previous) if previous is not None else None,
            to_version=version,
            changed_at=utcnow(),
            changed_by=changed_by,
            reason=reason,
        )
        if change.from_version == version:
            return change
        tags = _promotion_tags(change)
        exp_id = self._experiment_id(name, create=True)
        assert exp_id is not None
        with self._errors(f"moving alias {alias!r} of {name!r}"):
            run = self._client.create_run(
                exp_id,
                start_time=codec.to_ms(change.changed_at),
                tags=tags,
                run_name=f"{alias} → v{version}",
            )
            try:
                self._client.set_registered_model_alias(name, alias, str(version))
            except BaseException:
                self._finish(run.info.run_id, "FAILED", None)
                raise
            self._finish(run.info.run_id, "FINISHED", None)
        return change

    def import_ledger(
        self, name: str, changes: Sequence[StageChange], aliases: Mapping[str, int]
    ) -> int:
        """One FINISHED promotion run per entry not yet present (identity: stage,
        changed_at, from and to version), started at its original time; then each
        alias set on the registered model, without a run."""
        wanted = {c.to_version for c in changes} | set(aliases.values())
        wanted |= {c.from_version for c in changes if c.from_version is not None}
        for number in sorted(wanted):
            self.get_version(name, version=number)
        self._require_model(name)
        held = {
            (c.stage, c.changed_at, c.from_version, c.to_version) for c in self.stage_history(name)
        }
        added = 0
        exp_id = self._experiment_id(name, create=True)
        assert exp_id is not None
        for c in changes:
            c = dataclasses.replace(c, model_name=name)
            identity = (c.stage, c.changed_at, c.from_version, c.to_version)
            if identity in held:
                continue
            held.add(identity)
            with self._errors(f"importing a ledger entry of {name!r}"):
                run = self._client.create_run(
                    exp_id,
                    start_time=codec.to_ms(c.changed_at),
                    tags=_promotion_tags(c),
                    run_name=f"{c.stage} → v{c.to_version}",
                )
                self._finish(run.info.run_id, "FINISHED", None)
            added += 1
        with self._errors(f"setting the aliases of {name!r}"):
            for alias, number in aliases.items():
                self._client.set_registered_model_alias(name, alias, str(number))
        return added

    def stage_history(self, name: str, alias: str | None = None) -> list[StageChange]:
        self._require_model(name)
        exp_id = self._experiment_id(name, create=False)
        if exp_id is None:
            return []
        flt = f"tags.`{K.KIND}` = 'promotion' and attributes.status = 'FINISHED'"
        if alias is not None:
            flt += f" and tags.`{K.STAGE}` = '{safe(alias)}'"
        changes = []
        with self._errors(f"reading the promotion ledger of {name!r}"):
            for run in self._search([exp_id], flt, order_by=["attributes.start_time ASC"]):
                t = run.data.tags
                changes.append(
                    StageChange(
                        model_name=name,
                        stage=t[K.STAGE],
                        from_version=int(t[K.FROM]) if K.FROM in t else None,
                        to_version=int(t[K.TO]),
                        changed_at=dt.datetime.fromisoformat(t[K.CHANGED_AT]),
                        changed_by=t.get(K.CHANGED_BY),
                        reason=codec.join_text(t, K.REASON),
                    )
                )
        return sorted(changes, key=lambda c: c.changed_at)


def _promotion_tags(change: StageChange) -> dict[str, str]:
    """The tags of a ledger entry's promotion run."""
    tags = {
        K.KIND: "promotion",
        K.MODEL: change.model_name,
        K.STAGE: change.stage,
        K.TO: str(change.to_version),
        K.CHANGED_AT: change.changed_at.isoformat(),
    }
    if change.from_version is not None:
        tags[K.FROM] = str(change.from_version)
    if change.changed_by is not None:
        tags[K.CHANGED_BY] = change.changed_by
    if change.reason is not None:
        codec.split_text(tags, K.REASON, change.reason[: codec.CHUNK * codec.MAX_CHUNKS])
    return tags
