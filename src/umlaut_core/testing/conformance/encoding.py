"""Inputs and outputs are stored as JSON under the documented encoding."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

from ..._api import Umlaut
from ...exceptions import InputEncodingError, OutputEncodingError
from ..models import Echo, Unencodable
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
