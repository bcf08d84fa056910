"""derived_id, is_id and decode_id: ids that are the same wherever they are made."""

from __future__ import annotations

import datetime as dt

import pytest

from umlaut_core.ids import (
    decode_id,
    derived_id,
    derived_ids,
    encode_id,
    id_floor,
    is_id,
    new_run_id,
)


class TestDerivedId:
    """Same parts, same id; the time part is the given millisecond."""

    def test_deterministic_and_well_formed(self) -> None:
        ms = 1_767_225_600_000
        first = derived_id(ms, "batch", "row-1")
        assert first == derived_id(ms, "batch", "row-1")
        assert is_id(first) and len(first) == 26
        assert decode_id(first)[0] == ms

    def test_parts_are_length_prefixed(self) -> None:
        assert derived_id(1, "a", "bc") != derived_id(1, "ab", "c")
        assert derived_id(1, "abc") != derived_id(1, "ab", "c")
        assert derived_id(1, "", "a") != derived_id(1, "a", "")

    def test_no_collisions_over_thousands_of_keys(self) -> None:
        ids = {derived_id(7, "batch", str(i)) for i in range(5_000)}
        assert len(ids) == 5_000
        assert len({derived_id(7, f"b{b}", "1") for b in range(2_000)}) == 2_000

    def test_sorts_by_millisecond_and_keeps_time_filters(self) -> None:
        moment = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
        ms = int(moment.timestamp() * 1000)
        ids = [derived_id(ms + d, "b", str(k)) for d in (0, 1, 2) for k in range(50)]
        assert [decode_id(i)[0] for i in sorted(ids)] == sorted(decode_id(i)[0] for i in ids)
        assert all(id_floor(moment) <= i < id_floor(moment, dt.timedelta(milliseconds=3))
                   for i in ids)  # fmt: skip

    def test_bulk_form_gives_the_same_ids(self) -> None:
        keys = [str(i) for i in range(3_000)] + ["", "ü", "a" * 300]
        for ms in (0, 1_767_225_600_000, (1 << 48) - 1):
            expected = [derived_id(ms, "batch", "x", k) for k in keys]
            assert derived_ids(ms, ["batch", "x"], keys) == expected
        with pytest.raises(TypeError):
            derived_ids(1, ["b"], [1])  # type: ignore[list-item]

    def test_refuses_bad_arguments(self) -> None:
        with pytest.raises(ValueError):
            derived_id(-1, "a")
        with pytest.raises(ValueError):
            derived_id(1 << 48, "a")
        with pytest.raises(TypeError):
            derived_id(1, 5)  # type: ignore[arg-type]


class TestIsIdAndDecode:
    """is_id accepts exactly what the id makers make; decode_id inverts encode_id."""

    def test_round_trip(self) -> None:
        for ms, rand in [(0, 0), (1, 2), ((1 << 48) - 1, (1 << 80) - 1)]:
            assert decode_id(encode_id(ms, rand)) == (ms, rand)
        assert is_id(new_run_id())

    @pytest.mark.parametrize(
        "text", ["", "x" * 26, "8" + "0" * 25, "0" * 25, "0" * 27, "I" + "0" * 25, "0" * 25 + "u"]
    )
    def test_refuses_what_is_not_an_id(self, text: str) -> None:
        assert not is_id(text)
        with pytest.raises(ValueError):
            decode_id(text)
