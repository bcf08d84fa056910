"""Hostile and careless use: what every backend must survive without losing a record.

Tried as a hostile user and as a careless one would: batches that are interrupted,
fed by failing generators or the wrong shapes, models that mutate what they share,
callers that change a loaded model, closed facades, time bounds at the edges of
what ``datetime`` holds, and names that look alike or cannot be seen. Each test
checks what is stored afterwards, not only what was raised.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..._api import Umlaut
from ...exceptions import (
    ClosedError,
    ConfigurationError,
    EncodingError,
    InputEncodingError,
    InvalidNameError,
    ModelNotFoundError,
)
from ..models import Echo, Threshold
from ._base import TrackerTestBase

__all__ = ["HostileInputTests", "Interrupting", "MarksShared", "Touch"]


class Interrupting:
    """Raises ``KeyboardInterrupt`` (a Ctrl-C mid-batch) when ``x`` equals ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def run(self, model_input: dict[str, Any]) -> int:
        if model_input["x"] == self.at:
            raise KeyboardInterrupt
        return int(model_input["x"])


class MarksShared:
    """Counts its calls in a ``box`` dict its inputs may share: ``box["seen"] += 1``."""

    def run(self, model_input: dict[str, Any]) -> int:
        model_input["box"]["seen"] += 1
        return int(model_input["box"]["seen"])


class Touch:
    """Appends a line to a file on every call, so a test can tell whether it ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self, model_input: Any) -> str:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("ran\n")
        return "ran"


def _runs(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


class HostileInputTests(TrackerTestBase):
    """No call of a model goes unrecorded, and nothing a caller does changes a version."""

    # -- batches ------------------------------------------------------------------

    def test_a_keyboard_interrupt_stops_a_continue_batch(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Interrupting(at=2), model_name)
        with pytest.raises(KeyboardInterrupt):
            umlaut.run_batch(model_name, [{"x": i} for i in range(5)], on_error="continue")
        records = sorted(umlaut.history(model_name), key=lambda r: r.id)
        assert [(r.inputs["x"], r.status) for r in records] == [
            (0, "ok"),
            (1, "ok"),
            (2, "error"),
        ]
        assert records[-1].error_type == "KeyboardInterrupt"

    def test_a_failing_generator_keeps_the_records_of_the_items_that_ran(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Echo(), model_name)

        def five_then_fail() -> Iterator[dict[str, int]]:
            for i in range(5):
                yield {"i": i}
            raise RuntimeError("the source broke")

        with pytest.raises(RuntimeError, match="the source broke"):
            umlaut.run_batch(model_name, five_then_fail())
        assert sorted(r.inputs["i"] for r in umlaut.history(model_name)) == [0, 1, 2, 3, 4]

    def test_an_unencodable_item_mid_stream_keeps_the_earlier_records(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Echo(), model_name)
        stream = iter([{"v": 1.0}, {"v": 2.0}, {"v": float("nan")}, {"v": 4.0}])
        with pytest.raises(InputEncodingError, match="batch item 2"):
            umlaut.run_batch(model_name, stream, return_outputs=False)
        assert sorted(r.inputs["v"] for r in umlaut.history(model_name)) == [1.0, 2.0]

    def test_a_bad_item_in_a_list_refuses_the_batch_before_any_model_runs(
        self, umlaut: Umlaut, model_name: str, tmp_path: Path
    ) -> None:
        ran = tmp_path / "ran.txt"
        umlaut.track_model(Touch(str(ran)), model_name)
        with pytest.raises(InputEncodingError, match="batch item 2"):
            umlaut.run_batch(model_name, [{"v": 1}, {"v": 2}, {"v": float("inf")}])
        assert _runs(ran) == 0
        assert umlaut.history(model_name) == []

    @pytest.mark.parametrize(
        "inputs", [{"a": 1}, "abc", b"abc"], ids=["mapping", "string", "bytes"]
    )
    def test_a_mapping_or_a_string_is_not_a_batch(
        self, umlaut: Umlaut, model_name: str, tmp_path: Path, inputs: Any
    ) -> None:
        ran = tmp_path / "ran.txt"
        umlaut.track_model(Touch(str(ran)), model_name)
        with pytest.raises(ConfigurationError, match="run_batch takes an iterable"):
            umlaut.run_batch(model_name, inputs)
        assert _runs(ran) == 0
        assert umlaut.history(model_name) == []

    def test_a_data_frame_runs_once_per_row(self, umlaut: Umlaut, model_name: str) -> None:
        pd = pytest.importorskip("pandas")
        umlaut.track_model(Echo(), model_name)
        frame = pd.DataFrame({"x": [1, 2, 3], "name": ["a", "b", "c"]}, index=[10, 20, 30])
        outputs = umlaut.run_batch(model_name, frame, reference_ids=["r10", "r20", "r30"])
        rows = [{"x": 1, "name": "a"}, {"x": 2, "name": "b"}, {"x": 3, "name": "c"}]
        assert outputs == rows
        records = sorted(umlaut.history(model_name), key=lambda r: r.id)
        assert [(r.inputs, r.reference_id) for r in records] == list(
            zip(rows, ["r10", "r20", "r30"], strict=True)
        )

    def test_each_record_shows_what_its_model_received(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(MarksShared(), model_name)
        box = {"seen": 0}
        assert umlaut.run_batch(model_name, [{"box": box}, {"box": box}, {"box": box}]) == [
            1,
            2,
            3,
        ]
        records = sorted(umlaut.history(model_name), key=lambda r: r.id)
        assert [r.inputs["box"]["seen"] for r in records] == [0, 1, 2]

    # -- text no store can keep -------------------------------------------------

    def test_text_no_store_can_keep_is_refused_before_anything_runs(
        self, umlaut: Umlaut, model_name: str, tmp_path: Path
    ) -> None:
        ran = tmp_path / "ran.txt"
        umlaut.track_model(Touch(str(ran)), model_name)
        bad: dict[str, Callable[[], object]] = {
            "a run tag with a lone surrogate": lambda: umlaut.run_model(
                model_name, {}, tags={"k": "\ud800"}
            ),
            "a run tag with NUL": lambda: umlaut.run_model(model_name, {}, tags={"k": "a\x00"}),
            "a batch tag with a lone surrogate": lambda: umlaut.run_batch(
                model_name, [{}], tags={"k": "\udfff"}
            ),
            "a description with NUL": lambda: umlaut.track_model(
                Echo(), model_name, description="a\x00b"
            ),
            "a reason with a lone surrogate": lambda: umlaut.promote(
                model_name, 1, "Production", reason="\ud800"
            ),
            "a metric name with a lone surrogate": lambda: umlaut.track_model(
                Echo(), model_name, metrics={"\ud800": 1.0}
            ),
            "a reserved version tag": lambda: umlaut.track_model(
                Echo(), model_name, tags={"umlaut.bundle_sha256": "0" * 64}
            ),
        }
        for what, call in bad.items():
            with pytest.raises((InvalidNameError, EncodingError)):
                call()
                pytest.fail(f"{what} was accepted")
        assert _runs(ran) == 0
        assert umlaut.history(model_name) == []
        assert [v.version for v in umlaut.list_versions(model_name)] == [1]
        assert umlaut.stage_history(model_name) == []

    # -- what a version computes -------------------------------------------------

    def test_a_loaded_model_is_a_private_copy(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(1), model_name, stage="Production")
        assert umlaut.run_model(model_name, {"x": 2}, stage="Production")["above"] is True
        loaded = umlaut.load_model(model_name, stage="Production")
        loaded.limit = 100
        assert umlaut.load_model(model_name, stage="Production").limit == 1
        out = umlaut.run_model(model_name, {"x": 2}, stage="Production")
        assert out == {"above": True, "limit": 1}
        assert umlaut.history(model_name)[0].output == {"above": True, "limit": 1}

    # -- lifecycle ----------------------------------------------------------------

    def test_every_call_after_close_fails_before_the_model_runs(
        self, umlaut: Umlaut, model_name: str, tmp_path: Path
    ) -> None:
        ran = tmp_path / "ran.txt"
        umlaut.track_model(Touch(str(ran)), model_name, stage="Production")
        umlaut.run_model(model_name, {}, version=1)
        assert _runs(ran) == 1
        umlaut.close()
        umlaut.close()  # closing twice is harmless
        calls: dict[str, Callable[[], object]] = {
            "run_model(version=)": lambda: umlaut.run_model(model_name, {}, version=1),
            "run_model(stage=)": lambda: umlaut.run_model(model_name, {}, stage="Production"),
            "run_batch": lambda: umlaut.run_batch(model_name, [{}, {}], version=1),
            "track_model": lambda: umlaut.track_model(Echo(), model_name),
            "promote": lambda: umlaut.promote(model_name, 1, "Staging"),
            "history": lambda: umlaut.history(),
            "list_models": lambda: umlaut.list_models(),
            "load_model": lambda: umlaut.load_model(model_name, version=1),
        }
        for what, call in calls.items():
            with pytest.raises(ClosedError, match="was closed"):
                call()
                pytest.fail(f"{what} worked after close()")
        assert _runs(ran) == 1

    # -- time bounds --------------------------------------------------------------

    def test_history_time_bounds_at_the_edges_of_datetime(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Echo(), model_name)
        umlaut.run_batch(model_name, [{"i": 1}, {"i": 2}])
        far_east = dt.timezone(dt.timedelta(hours=14))
        far_west = dt.timezone(dt.timedelta(hours=-12))
        lowest, highest = dt.datetime.min, dt.datetime.max
        everything: dict[str, tuple[dt.datetime | None, dt.datetime | None]] = {
            "since 1960": (dt.datetime(1960, 1, 1), None),
            "since 1969-12-31 aware": (dt.datetime(1969, 12, 31, 23, tzinfo=dt.UTC), None),
            "since datetime.min": (lowest, None),
            "since datetime.min, +14:00": (lowest.replace(tzinfo=far_east), None),
            "until datetime.max": (None, highest),
            "until datetime.max, -12:00": (None, highest.replace(tzinfo=far_west)),
            "both extremes": (lowest, highest),
        }
        for what, (since, until) in everything.items():
            assert len(umlaut.history(model_name, since=since, until=until)) == 2, what
        nothing: dict[str, tuple[dt.datetime | None, dt.datetime | None]] = {
            "until 1960": (None, dt.datetime(1960, 1, 1)),
            "until datetime.min": (None, lowest),
            "since datetime.max": (highest, None),
        }
        for what, (since, until) in nothing.items():
            assert umlaut.history(model_name, since=since, until=until) == [], what

    # -- names --------------------------------------------------------------------

    def test_composed_and_decomposed_spellings_are_one_model(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        composed = unicodedata.normalize("NFC", f"Café {model_name}")
        decomposed = unicodedata.normalize("NFD", composed)
        assert composed != decomposed
        first = umlaut.track_model(Threshold(1), composed)
        again = umlaut.track_model(Threshold(1), decomposed)
        assert (again.name, again.version, again.created) == (composed, first.version, False)
        umlaut.run_model(decomposed, {"x": 2})
        assert [r.model_name for r in umlaut.history(composed)] == [composed]
        assert [m.name for m in umlaut.list_models() if model_name in m.name] == [composed]

    @pytest.mark.parametrize(
        "name",
        [
            "\u3164",  # Hangul filler: a letter that draws nothing
            "\u2800",  # blank Braille pattern
            "a\u3164b",
            "line\u2028break",
            "para\u2029break",
            "no\u00a0break",  # looks like a space
            "wide\u3000space",
            "tab\tname",
            "zero\u200bwidth",
            "variation\ufe0fselector",
            "\u0301accent first",
        ],
    )
    def test_names_a_reader_cannot_see_are_refused(
        self, umlaut: Umlaut, model_name: str, name: str
    ) -> None:
        before = [m.name for m in umlaut.list_models()]
        with pytest.raises(InvalidNameError):
            umlaut.track_model(Echo(), name)
        with pytest.raises(InvalidNameError):
            umlaut.run_model(name, {})
        assert [m.name for m in umlaut.list_models()] == before

    def test_not_found_points_at_a_lookalike(self, umlaut: Umlaut, model_name: str) -> None:
        stored = f"Café Scoring {model_name}"
        umlaut.track_model(Echo(), stored)
        with pytest.raises(ModelNotFoundError) as info:
            umlaut.run_model(f"Cafe scoring {model_name}", {})
        assert info.value.suggestion == stored
        assert f"Did you mean {stored!r}" in str(info.value)
