"""Inputs and outputs are stored as JSON under the documented encoding."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

from ..._api import Umlaut
from ...exceptions import InputEncodingError, OutputEncodingError
from ..models import BadErrorText, Echo, SurrogateKey, Unencodable
from ._base import TrackerTestBase

__all__ = ["EncodingTests"]


def _cyclic() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


class EncodingTests(TrackerTestBase):
    """Documented types round-trip; everything else is refused before the model runs."""

    def test_documented_types_round_trip(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Echo(), model_name)
        when = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
        value = {
            "when": when,
            "day": dt.date(2026, 3, 1),
            "price": decimal.Decimal("10.25"),
            "id": uuid.UUID(int=7),
            "pair": (1, 2),
            "tags": {"b", "a"},
            "text": "Grüße ✓ \u2028 '; DROP TABLE umlaut_runs; --",
            "nested": {"deep": [{"x": None, "y": True, "z": 1.5}]},
        }
        umlaut.run_model(model_name, value)
        (r,) = umlaut.history(model_name)
        assert r.inputs == {
            "when": "2026-03-01T12:30:00+00:00",
            "day": "2026-03-01",
            "price": "10.25",
            "id": str(uuid.UUID(int=7)),
            "pair": [1, 2],
            "tags": ["a", "b"],
            "text": "Grüße ✓ \u2028 '; DROP TABLE umlaut_runs; --",
            "nested": {"deep": [{"x": None, "y": True, "z": 1.5}]},
        }
        assert r.output == r.inputs

    def test_numpy_values_when_installed(self, umlaut: Umlaut, model_name: str) -> None:
        np = pytest.importorskip("numpy")
        umlaut.track_model(Echo(), model_name)
        umlaut.run_model(model_name, {"a": np.arange(3), "f": np.float64(0.5), "i": np.int32(4)})
        assert umlaut.history(model_name)[0].inputs == {"a": [0, 1, 2], "f": 0.5, "i": 4}

    def test_large_payload_is_not_truncated(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Echo(), model_name)
        big = {"text": "x" * 200_000, "rows": [{"i": i, "s": "é" * 10} for i in range(2000)]}
        umlaut.run_model(model_name, big)
        (r,) = umlaut.history(model_name)
        assert r.inputs == big and r.output == big

    @pytest.mark.parametrize(
        "bad",
        [
            {"x": float("nan")},
            {"x": float("inf")},
            {"x": b"\xff\xfe"},
            {1: "non-string key"},
            {"x": object()},
            {"x": "\udcff lone surrogate"},
            _cyclic(),
        ],
        ids=["nan", "inf", "bytes", "int-key", "object", "surrogate", "cycle"],
    )
    def test_unencodable_input_is_refused_before_running(
        self, umlaut: Umlaut, model_name: str, bad: Any
    ) -> None:
        umlaut.track_model(Echo(), model_name)
        with pytest.raises(InputEncodingError, match="cannot be stored as JSON"):
            umlaut.run_model(model_name, bad)
        assert umlaut.history(model_name) == []

    def test_too_deep_input_is_refused(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Echo(), model_name)
        deep: Any = 0
        for _ in range(500):
            deep = [deep]
        with pytest.raises(InputEncodingError, match="nesting deeper"):
            umlaut.run_model(model_name, {"deep": deep})
        assert umlaut.history(model_name) == []

    def test_unencodable_output_is_an_audited_error(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Unencodable(), model_name)
        with pytest.raises(OutputEncodingError, match="output cannot be stored"):
            umlaut.run_model(model_name, {"x": 1})
        (r,) = umlaut.history(model_name)
        assert (r.status, r.error_type) == ("error", "umlaut_core.exceptions.OutputEncodingError")

    def test_surrogate_in_input_key_is_refused_before_running(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(Echo(), model_name)
        for bad in ({"bad \ud800": 1}, {"x": [{"ok": {"\udcff": None}}]}):
            with pytest.raises(InputEncodingError, match="lone surrogate"):
                umlaut.run_model(model_name, bad)
        assert umlaut.history(model_name) == []

    def test_surrogate_in_output_key_is_an_audited_error(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        umlaut.track_model(SurrogateKey(), model_name)
        with pytest.raises(OutputEncodingError, match=r"\$\.nested\['bad \\ud800 key'\]"):
            umlaut.run_model(model_name, {"x": 1})
        (r,) = umlaut.history(model_name)
        assert (r.status, r.error_type, r.output) == (
            "error",
            "umlaut_core.exceptions.OutputEncodingError",
            None,
        )
        assert r.error_message is not None and "\\ud800" in r.error_message
        r.error_message.encode("utf-8")  # valid UTF-8

    def test_model_error_text_is_stored_escaped(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(BadErrorText(), model_name)
        with pytest.raises(ValueError) as info:
            umlaut.run_model(model_name, {"x": 1})
        assert info.value is BadErrorText.raised[-1]  # the model's own exception object
        (r,) = umlaut.history(model_name)
        assert (r.status, r.error_type) == ("error", "ValueError")
        assert r.error_message == "bad \\ud800 and \\x00 text"
        assert "\x00" not in r.error_message
        r.error_message.encode("utf-8")  # valid UTF-8

    def test_int_too_long_for_text_is_refused(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Echo(), model_name)
        for bad in (10**5000, {"x": 10**5000}, {"x": [-(10**5000)]}):
            with pytest.raises(InputEncodingError, match="pass it as a string"):
                umlaut.run_model(model_name, bad)
        assert umlaut.history(model_name) == []

    def test_pandas_labels_round_trip(self, umlaut: Umlaut, model_name: str) -> None:
        pd = pytest.importorskip("pandas")
        umlaut.track_model(Echo(), model_name)
        value = {
            "series": pd.Series([1, 2, 3], index=["a", "a", "b"]),
            "frame": pd.DataFrame({"x": [1.5, 2.5], "y": ["p", "q"]}, index=["r1", "r2"]),
            "plain": pd.DataFrame({"x": [1, 2]}),
            "when": pd.Series(pd.to_datetime(["2026-03-01 12:30", None])),
        }
        umlaut.run_model(model_name, value)
        (r,) = umlaut.history(model_name)
        assert r.inputs == {
            "series": [["a", 1], ["a", 2], ["b", 3]],
            "frame": {"r1": {"x": 1.5, "y": "p"}, "r2": {"x": 2.5, "y": "q"}},
            "plain": [{"x": 1}, {"x": 2}],
            "when": {"0": "2026-03-01T12:30:00", "1": None},
        }
        assert r.output == r.inputs
