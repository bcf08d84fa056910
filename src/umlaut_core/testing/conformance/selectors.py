"""Selectors and stages: version before stage before latest; the promotion ledger."""

from __future__ import annotations

import pytest

from ..._api import Umlaut
from ...exceptions import InvalidNameError, StageNotFoundError, VersionNotFoundError
from ...protocols import Tracker
from ..models import ExampleModel, Threshold
from ._base import TrackerTestBase

__all__ = ["StageTests"]


class StageTests(TrackerTestBase):
    """Stages are aliases; every move is ledgered; lookups fail with what exists."""

    def test_original_readme_example(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(model=ExampleModel(), model_name=model_name, stage="Staging")
        result = umlaut.run_model(
            model_name=model_name, input_config={"revenue": 3}, stage="Staging"
        )
        assert result is False
        (record,) = umlaut.history(model_name)
        assert (record.inputs, record.output, record.status) == ({"revenue": 3}, False, "ok")

    def test_version_beats_stage_beats_latest(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(10), model_name, stage="Production")
        umlaut.track_model(Threshold(20), model_name)
        umlaut.track_model(Threshold(30), model_name)
        assert umlaut.run_model(model_name, {"x": 0})["limit"] == 30
        assert umlaut.run_model(model_name, {"x": 0}, stage="Production")["limit"] == 10
        assert umlaut.run_model(model_name, {"x": 0}, stage="Production", version=2)["limit"] == 20
        selectors = [r.selector for r in umlaut.history(model_name)]
        assert selectors == ["version=2", "stage=Production", "latest"]

    def test_promote_moves_stage_and_writes_ledger(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(1), model_name, stage="Staging")
        umlaut.track_model(Threshold(2), model_name)
        change = umlaut.promote(model_name, 2, "Staging", reason="better recall")
        assert (change.from_version, change.to_version, change.reason) == (1, 2, "better recall")
        assert umlaut.get_version(model_name, stage="Staging").version == 2
        umlaut.promote(model_name, 1, "Production")
        ledger = umlaut.stage_history(model_name)
        assert [(c.stage, c.from_version, c.to_version) for c in ledger] == [
            ("Staging", None, 1),
            ("Staging", 1, 2),
            ("Production", None, 1),
        ]
        assert [c.to_version for c in umlaut.stage_history(model_name, "Staging")] == [1, 2]
        assert all(c.changed_at.tzinfo is not None for c in ledger)

    def test_repeated_promotion_writes_no_ledger_entry(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Threshold(1), model_name, stage="Production")
        umlaut.track_model(Threshold(1), model_name, stage="Production")
        same = umlaut.promote(model_name, 1, "Production")
        assert (same.from_version, same.to_version) == (1, 1)
        assert len(umlaut.stage_history(model_name)) == 1

    def test_set_alias_to_the_version_it_holds_writes_no_ledger_entry(
        self, tracker: Tracker, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Threshold(1), model_name, stage="Production")
        same = tracker.set_alias(model_name, "Production", 1, changed_by="suite", reason="again")
        assert (same.model_name, same.stage) == (model_name, "Production")
        assert (same.from_version, same.to_version) == (1, 1)
        assert [(c.from_version, c.to_version) for c in tracker.stage_history(model_name)] == [
            (None, 1)
        ]
        assert tracker.get_version(model_name, alias="Production").version == 1

    def test_any_alias_name_works(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(3), model_name)
        umlaut.promote(model_name, 1, "champion")
        assert umlaut.get_version(model_name, stage="champion").version == 1

    def test_unknown_stage_lists_existing_and_changes_nothing(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Threshold(1), model_name, stage="Staging")
        with pytest.raises(StageNotFoundError, match="Production") as info:
            umlaut.run_model(model_name, {"x": 1}, stage="Production")
        assert "Staging" in str(info.value)
        assert umlaut.history(model_name) == []

    def test_unknown_version_lists_existing(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(1), model_name)
        with pytest.raises(VersionNotFoundError, match="no version 9") as info:
            umlaut.run_model(model_name, {"x": 1}, version=9)
        assert "1" in str(info.value).split("Existing versions:")[1]

    def test_promote_to_missing_version_changes_nothing(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Threshold(1), model_name, stage="Staging")
        with pytest.raises(VersionNotFoundError):
            umlaut.promote(model_name, 5, "Staging")
        assert umlaut.get_version(model_name, stage="Staging").version == 1
        assert len(umlaut.stage_history(model_name)) == 1

    @pytest.mark.parametrize("bad", ["", "latest", "v2", "has space", "x" * 65, "1abc", "a/b"])
    def test_invalid_stage_names_are_refused(
        self, umlaut: Umlaut, model_name: str, bad: str
    ) -> None:
        umlaut.track_model(Threshold(1), model_name)
        with pytest.raises(InvalidNameError):
            umlaut.promote(model_name, 1, bad)
        assert umlaut.stage_history(model_name) == []
