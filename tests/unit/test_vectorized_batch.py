"""run_batch on a flavor that runs many inputs at once (scikit-learn): one predict per
chunk, the same outputs and records as one call per input, errors still per input,
and per-input deadlines."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from umlaut_core import Umlaut
from umlaut_core._batch_calls import CHUNK
from umlaut_core.deadline import Deadline
from umlaut_core.exceptions import DeadlineExceededError, InputValidationError
from umlaut_core.packer.flavors import _Sklearn


class CountingRegression(LogisticRegression):  # type: ignore[misc]
    """Counts its predict calls and rows (in a file: the tracked copy is unpickled)."""

    log = ""

    def predict(self, x: Any) -> Any:
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{len(x)}\n")
        return super().predict(x)


def calls(log: str) -> list[int]:
    try:
        with open(log) as f:
            return [int(n) for n in f.read().split()]
    except FileNotFoundError:
        return []


@pytest.fixture(scope="module")
def rows() -> list[dict[str, float]]:
    iris = load_iris(as_frame=True)
    noise = np.random.default_rng(7).normal(0, 0.2, (2100, 4)).round(3)
    data = iris.data.to_numpy()[np.arange(2100) % 150] + noise
    return pd.DataFrame(data, columns=iris.data.columns).to_dict("records")  # type: ignore[no-any-return]


def tracked(tmp_path: Any, **options: Any) -> Umlaut:
    iris = load_iris(as_frame=True)
    final = CountingRegression(max_iter=500)
    model = make_pipeline(StandardScaler(), final).fit(iris.data, iris.target_names[iris.target])
    final.log = str(tmp_path / "predict.log")
    facade = Umlaut("memory:", "memory:", delivery="sync", **options)
    facade.track_model(model, "iris")
    return facade


@pytest.fixture
def umlaut(tmp_path: Any) -> Umlaut:
    return tracked(tmp_path)


def log_of(umlaut: Umlaut) -> str:
    return str(umlaut.load_model("iris")[-1].log)


def test_one_predict_per_chunk_with_the_outputs_of_single_calls(
    umlaut: Umlaut, rows: list[dict[str, float]]
) -> None:
    log = log_of(umlaut)
    outputs = umlaut.run_batch("iris", rows)
    assert calls(log) == [CHUNK, CHUNK, len(rows) - 2 * CHUNK]  # 2,100 rows
    singles = [umlaut.run_model("iris", r) for r in rows[:40]]
    for batched, single in zip(outputs, singles, strict=False):
        assert batched["prediction"] == single["prediction"]
        assert batched["probabilities"] == pytest.approx(single["probabilities"], abs=1e-12)
    records = umlaut.history("iris", limit=10_000)
    assert len(records) == len(rows) + 40
    assert all(r.status == "ok" for r in records)


def test_a_refused_input_fails_alone(umlaut: Umlaut, rows: list[dict[str, float]]) -> None:
    bad = {k: v for k, v in list(rows[3].items())[:3]}  # a feature missing
    inputs = [*rows[:3], bad, *rows[4:10]]
    outputs = umlaut.run_batch("iris", inputs, on_error="continue")
    assert [isinstance(o, Exception) for o in outputs] == [i == 3 for i in range(10)]
    assert all(o["prediction"] for i, o in enumerate(outputs) if i != 3)
    records = sorted(umlaut.history("iris", limit=100), key=lambda r: r.id)
    assert [r.status for r in records] == ["error" if i == 3 else "ok" for i in range(10)]


def test_raise_stops_at_the_first_error_and_runs_nothing_after(
    umlaut: Umlaut, rows: list[dict[str, float]]
) -> None:
    log = log_of(umlaut)
    wrong = {**rows[3], "petal width (cm)": "wide"}  # refused by the input checks
    with pytest.raises(InputValidationError):
        umlaut.run_batch("iris", [*rows[:3], wrong, *rows[4:10]])
    assert sum(calls(log)) == 3  # only the rows before it ran
    statuses = [r.status for r in sorted(umlaut.history("iris"), key=lambda r: r.id)]
    assert statuses == ["ok", "ok", "ok", "error"]


def test_a_call_refused_by_the_model_runs_one_by_one(
    tmp_path: Any, rows: list[dict[str, float]]
) -> None:
    umlaut = tracked(tmp_path, input_checks="off")  # the model itself refuses
    log = log_of(umlaut)
    frames = [pd.DataFrame([r]) for r in rows[:4]]
    frames[2] = frames[2].drop(columns=frames[2].columns[0])
    with pytest.raises(KeyError, match="lacks the features"):
        umlaut.run_batch("iris", frames)
    # The stacked call is refused before predict; then rows 0 and 1 run alone, 2 fails.
    assert calls(log) == [1, 1]
    statuses = [r.status for r in sorted(umlaut.history("iris"), key=lambda r: r.id)]
    assert statuses == ["ok", "ok", "error"]


def test_frames_of_several_rows_are_stacked_and_split_back(
    umlaut: Umlaut, rows: list[dict[str, float]]
) -> None:
    log = log_of(umlaut)
    frames = [pd.DataFrame(rows[:2]), pd.DataFrame(rows[2:3]), pd.DataFrame(rows[3:6])]
    outputs = umlaut.run_batch("iris", frames)
    assert calls(log) == [6]
    assert [len(o) for o in outputs] == [2, 1, 3]
    assert outputs[1][0]["prediction"] == umlaut.run_model("iris", rows[2])["prediction"]
    # Columns in another order: each frame is selected on its own, then stacked.
    frames[1] = frames[1][list(reversed(frames[1].columns))]
    assert umlaut.run_batch("iris", frames) == outputs
    assert calls(log)[-1] == 6


def test_lists_of_dict_rows_share_one_frame(
    umlaut: Umlaut, rows: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server's JSON requests (each a list of dict rows, or one dict) make one
    DataFrame for the chunk, not one per request, and come back in their shapes."""
    log = log_of(umlaut)
    frames: list[int] = []
    named = _Sklearn.named
    monkeypatch.setattr(_Sklearn, "named", lambda self, m: frames.append(len(m)) or named(self, m))
    inputs: list[Any] = [rows[:2], rows[2], [], rows[3:6]]
    outputs = umlaut.run_batch("iris", inputs)
    assert calls(log) == [6] and frames == [6]
    assert [len(o) for o in (outputs[0], outputs[2], outputs[3])] == [2, 0, 3]
    assert outputs[1]["prediction"] == umlaut.run_model("iris", rows[2])["prediction"]
    assert [o["prediction"] for o in outputs[3]] == [
        umlaut.run_model("iris", r)["prediction"] for r in rows[3:6]
    ]
    # A row lacking a feature refuses the stacked call: one by one, it fails alone.
    inputs[3] = [rows[3], {"sepal length (cm)": 1.0}]
    mixed = umlaut.run_batch("iris", inputs, on_error="continue")
    assert isinstance(mixed[3], Exception) and mixed[:3] == outputs[:3]


def test_deadlines_per_input(umlaut: Umlaut, rows: list[dict[str, float]]) -> None:
    log = log_of(umlaut)
    deadlines = [Deadline(30) for _ in range(4)]
    assert deadlines[1].expire()  # its waiter gave up before it could run
    outputs = umlaut.run_batch("iris", rows[:4], deadlines=deadlines, on_error="continue")
    assert isinstance(outputs[1], DeadlineExceededError)
    assert calls(log) == [3]
    assert [d.record.status if d.record else None for d in deadlines] == [
        "ok", "error", "ok", "ok"
    ]  # fmt: skip
    assert deadlines[1].record is not None
    assert deadlines[1].record.error_type == "umlaut_core.exceptions.DeadlineExceededError"
    late = [Deadline(0.001) for _ in range(2)]
    time.sleep(0.01)
    outputs = umlaut.run_batch("iris", rows[:2], deadlines=late, on_error="continue")
    assert all(isinstance(o, DeadlineExceededError) for o in outputs)
    assert len(umlaut.history("iris")) == 6


@pytest.mark.parametrize(
    "matrix",
    [
        [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],  # floats only: built from one array
        [[5, 3.5, 1.4, 0.2], [6, 3.0, 5.2, 2.3]],  # an int64 column in a float64 array
        [[5, 3, 1, 0], [6, 3, 5, 2]],  # ints only: an int64 frame
        [[5.1, 3.5, 1.4, True], [6.7, 3.0, 5.2, False]],
        [[5.1, 3.5, 1.4, None], [6.7, 3.0, 5.2, 2.3]],
        [[5.1, "3.5", 1.4, 0.2], [6.7, "3.0", 5.2, 2.3]],
        [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0]],  # ragged: pandas pads it
    ],
)
def test_named_frames_are_pandas_own(matrix: list[list[Any]]) -> None:
    """The feature matrix of JSON rows is the frame pandas itself infers from them:
    same values, dtypes and column names, whichever way it is built (all-float rows
    reach the pipeline's array twin as that frame's one float64 block)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    iris = load_iris(as_frame=True)
    flavor = _Sklearn(model.fit(iris.data.iloc[:, :4], iris.target))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 deprecates the padding (Pandas4Warning)
        expected = pd.DataFrame(matrix, columns=list(iris.data.columns[:4]))
        named = flavor.named(matrix)
    if isinstance(named, np.ndarray):  # the array scikit-learn takes out of the frame
        assert np.asarray(expected).dtype == np.float64
        assert named.dtype == np.float64 and np.array_equal(named, np.asarray(expected))
    else:
        pd.testing.assert_frame_equal(named, expected, check_column_type=False)
