"""run_batch's record_ids (ids given per input) and deliver_to (records handed over)."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from umlaut_core import AuditRecord, ConfigurationError, Umlaut
from umlaut_core.ids import derived_id
from umlaut_core.testing.models import Failing, Threshold


@pytest.fixture
def umlaut() -> Umlaut:
    facade = Umlaut("memory:", "memory:", delivery="sync")
    facade.track_model(Threshold(2), "m")
    facade.track_model(Failing(), "f")
    return facade


IDS = [derived_id(1_000, "b", str(i)) for i in range(3)]
INPUTS = [{"x": i} for i in range(3)]


class TestRecordIds:
    """Given ids name the records; a repeated batch writes nothing twice."""

    def test_ids_name_the_records_and_repeat_writes_nothing(self, umlaut: Umlaut) -> None:
        umlaut.run_batch("m", INPUTS, record_ids=IDS)
        umlaut.run_batch("m", iter(INPUTS), record_ids=IDS)
        assert sorted(r.id for r in umlaut.history("m")) == sorted(IDS)

    @pytest.mark.parametrize(
        ("ids", "match"),
        [
            (IDS[:2], "2 ids for 3 inputs"),
            ([IDS[0], IDS[1], IDS[0]], "repeats an id"),
            (["nope", *IDS[1:]], "not umlaut ids"),
            ("0" * 26, "not a string"),
        ],
    )
    def test_bad_ids_refuse_the_batch_before_it_runs(
        self, umlaut: Umlaut, ids: list[str], match: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=match):
            umlaut.run_batch("m", INPUTS, record_ids=ids)
        assert umlaut.history("m") == []

    def test_a_generator_longer_than_its_ids_stops(self, umlaut: Umlaut) -> None:
        with pytest.raises(ConfigurationError, match="outnumber"):
            umlaut.run_batch("m", ({"x": i} for i in range(5)), record_ids=IDS)
        assert len(umlaut.history("m")) == 3


class TestDeliverTo:
    """deliver_to receives the records instead of the tracker."""

    def test_records_are_handed_over_not_written(self, umlaut: Umlaut) -> None:
        got: list[AuditRecord] = []

        def take(records: Collection[AuditRecord]) -> None:
            assert len(records) == 3
            got.extend(records)

        assert len(umlaut.run_batch("m", INPUTS, record_ids=IDS, deliver_to=take)) == 3
        assert [r.id for r in got] == IDS and umlaut.history("m") == []
        assert umlaut.tracker.record_runs(got) == 3
        assert umlaut.tracker.record_runs(got) == 0

    def test_a_model_error_hands_over_the_records_so_far(self, umlaut: Umlaut) -> None:
        got: list[AuditRecord] = []
        with pytest.raises(ValueError):
            umlaut.run_batch(
                "f", [{"x": 1}, {"x": -1}, {"x": 2}], record_ids=IDS, deliver_to=got.extend
            )
        assert [r.status for r in got] == ["ok", "error"] and [r.id for r in got] == IDS[:2]
