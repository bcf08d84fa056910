"""The sklearn flavor's array twin: named float rows reach an estimator fitted on a
DataFrame as a float64 array, with exactly the outputs of ``predict`` on the frame,
no warning, the fitted estimator untouched, and frames kept wherever an estimator
reads them."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    Normalizer,
    PolynomialFeatures,
    StandardScaler,
)
from sklearn.svm import SVC

from umlaut_core.packer.array_input import array_twin
from umlaut_core.packer.flavors import _Sklearn


class OwnScaler(StandardScaler):  # type: ignore[misc]
    """A subclass defined outside scikit-learn: it may read the frame, so it keeps it."""


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, Any]:
    data = load_iris(as_frame=True)
    return data.data, data.target_names[data.target]


@pytest.fixture(scope="module")
def rows(iris: tuple[pd.DataFrame, Any]) -> list[dict[str, float]]:
    x, _ = iris
    noise = np.random.default_rng(3).normal(0, 0.3, (40, 4)).round(3)
    frame = pd.DataFrame(x.to_numpy()[::3][:40] + noise, columns=x.columns)
    return frame.to_dict("records")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X does not have valid feature names, ..."
        yield


def expected(model: Any, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """What the flavor answered before it had a twin: the estimator on the frame."""
    predictions = [p.item() if hasattr(p, "item") else p for p in model.predict(frame)]
    if not hasattr(model, "predict_proba"):
        return [{"prediction": p} for p in predictions]
    names = [str(c) for c in model.classes_]
    return [
        {"prediction": p, "probabilities": dict(zip(names, map(float, pr), strict=True))}
        for p, pr in zip(predictions, model.predict_proba(frame), strict=True)
    ]


TWINNED: dict[str, Callable[[], Any]] = {
    "scaler + logistic regression": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=500)
    ),
    "logistic regression alone": lambda: LogisticRegression(max_iter=500),
    "random forest": lambda: RandomForestClassifier(n_estimators=20, random_state=0),
    "scaler + PCA + nearest neighbours": lambda: make_pipeline(
        StandardScaler(), PCA(n_components=3), KNeighborsClassifier()
    ),
    "support vectors": lambda: SVC(),
    "nested pipelines": lambda: make_pipeline(
        make_pipeline(StandardScaler(), PCA(n_components=3)), LogisticRegression(max_iter=2000)
    ),
}


@pytest.mark.parametrize("make", TWINNED.values(), ids=TWINNED.keys())
def test_the_twin_answers_what_the_frame_gets(
    make: Callable[[], Any], iris: tuple[pd.DataFrame, Any], rows: list[dict[str, float]]
) -> None:
    x, y = iris
    model = make().fit(x, y)
    flavor = _Sklearn(model)
    assert flavor.twin is not None
    frame = pd.DataFrame(rows)
    want = expected(model, frame)
    assert flavor.many(rows) == want  # exactly: the same float64 array either way
    assert flavor.many([rows[:3], rows[3], rows[4:]]) == [want[:3], want[3], want[4:]]
    assert flavor(rows[5]) == want[5]
    assert flavor(frame.to_numpy()) == want  # a float array, columns in fitted order


def test_a_regressor_and_polynomial_features(
    iris: tuple[pd.DataFrame, Any], rows: list[dict[str, float]]
) -> None:
    x, _ = iris
    target = x.iloc[:, 0] * 2 - x.iloc[:, 3]
    model = make_pipeline(PolynomialFeatures(2), Ridge()).fit(x.iloc[:, 1:], target)
    flavor = _Sklearn(model)
    assert flavor.twin is not None
    inputs = [{k: r[k] for k in x.columns[1:]} for r in rows]
    assert flavor.many(inputs) == expected(model, pd.DataFrame(inputs))


def test_the_receiving_step_gets_an_array_and_the_estimator_is_untouched(
    iris: tuple[pd.DataFrame, Any], rows: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    flavor = _Sklearn(model)
    seen: list[type] = []
    transform = StandardScaler.transform

    def spy(self: StandardScaler, data: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(type(data))
        return transform(self, data, *args, **kwargs)

    monkeypatch.setattr(StandardScaler, "transform", spy)
    flavor.many(rows)
    flavor.many([pd.DataFrame(rows)])  # a DataFrame given is a DataFrame passed
    assert seen == [np.ndarray, pd.DataFrame]
    assert list(model[0].feature_names_in_) == list(x.columns)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(x[list(reversed(x.columns))])  # the original still checks names


def test_missing_features_and_wrong_widths_are_still_refused(
    iris: tuple[pd.DataFrame, Any], rows: list[dict[str, float]]
) -> None:
    x, y = iris
    flavor = _Sklearn(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y))
    with pytest.raises(KeyError, match="lacks the features"):
        flavor.many([{k: v for k, v in rows[0].items() if k != x.columns[2]}])
    with pytest.raises(ValueError, match="features"):
        flavor(np.ones((2, 3)))


KEPT: dict[str, Callable[[list[str]], Any]] = {
    "columns selected by name": lambda columns: make_pipeline(
        ColumnTransformer([("scaled", StandardScaler(), columns[:2])], remainder="drop"),
        LogisticRegression(max_iter=2000),
    ),
    "a function of the frame": lambda columns: make_pipeline(
        FunctionTransformer(lambda frame: frame[columns] * 2), LogisticRegression(max_iter=2000)
    ),
    "pandas output": lambda columns: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000)
    ).set_output(transform="pandas"),
    "a subclass from elsewhere": lambda columns: make_pipeline(
        OwnScaler(), LogisticRegression(max_iter=2000)
    ),
    "histogram gradient boosting": lambda columns: HistGradientBoostingClassifier(max_iter=5),
}


@pytest.mark.parametrize("make", KEPT.values(), ids=KEPT.keys())
def test_estimators_that_may_read_the_frame_keep_it(
    make: Callable[[list[str]], Any],
    iris: tuple[pd.DataFrame, Any],
    rows: list[dict[str, float]],
) -> None:
    x, y = iris
    model = make(list(x.columns)).fit(x, y)
    flavor = _Sklearn(model)
    assert flavor.twin is None and array_twin(model) is None
    assert isinstance(flavor.named([list(rows[0].values())]), pd.DataFrame)
    assert flavor.many(rows) == expected(model, pd.DataFrame(rows))


def test_pandas_output_set_for_the_thread_keeps_frames(
    iris: tuple[pd.DataFrame, Any], rows: list[dict[str, float]]
) -> None:
    x, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    flavor = _Sklearn(model)
    with sklearn.config_context(transform_output="pandas"), warnings.catch_warnings():
        # scikit-learn's own: the scaler now hands its frame to a step fitted on arrays
        warnings.filterwarnings("ignore", "X has feature names", UserWarning)
        assert isinstance(flavor.named([list(rows[0].values())]), pd.DataFrame)
        assert flavor.many(rows) == expected(model, pd.DataFrame(rows))
    assert isinstance(flavor.named([list(rows[0].values())]), np.ndarray)


def test_estimators_fitted_without_names_have_no_twin(
    iris: tuple[pd.DataFrame, Any], rows: list[dict[str, float]]
) -> None:
    x, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x.to_numpy(), y)
    flavor = _Sklearn(model)
    assert flavor.twin is None
    matrix = [list(r.values()) for r in rows]
    assert flavor(matrix) == expected(model, pd.DataFrame(matrix).to_numpy())


WIDE: dict[str, Callable[[], Any]] = {
    "logistic regression": lambda: LogisticRegression(max_iter=2000),
    "scaler + ridge": lambda: make_pipeline(StandardScaler(), Ridge()),
    "naive Bayes": lambda: GaussianNB(),
    "discriminant analysis": lambda: LinearDiscriminantAnalysis(),
    "normalizer + perceptron": lambda: make_pipeline(
        Normalizer(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    ),
}


@pytest.mark.parametrize("make", WIDE.values(), ids=WIDE.keys())
def test_many_wide_rows_match_the_frame_to_the_last_bit(make: Callable[[], Any]) -> None:
    """Summed over 30 features, rows in another memory layout than the frame's would
    differ in the last bits (BLAS adds in layout order): the twin gets the frame's."""
    rng = np.random.default_rng(11)
    x = pd.DataFrame(rng.normal(size=(300, 30)), columns=[f"f{i}" for i in range(30)])
    y = (x.f0 + x.f1 > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make().fit(x, y)
    twinned, framed = _Sklearn(model), _Sklearn(model)
    framed.twin = None  # the flavor before the twin: every input a DataFrame
    assert twinned.twin is not None
    rows = x.iloc[:120].to_dict("records")
    assert twinned.many(rows) == framed.many(rows)
    assert twinned(x.iloc[:120].to_numpy()) == framed(x.iloc[:120].to_numpy())
    assert twinned(np.asfortranarray(x.to_numpy())) == framed(x.to_numpy())


def test_the_callers_array_is_never_scaled_in_place(iris: tuple[pd.DataFrame, Any]) -> None:
    x, y = iris
    model = make_pipeline(StandardScaler(copy=False), LogisticRegression(max_iter=500))
    flavor = _Sklearn(model.fit(x.copy(), y))
    given = x.to_numpy()[:5].copy()
    before = given.copy()
    first = flavor(given)
    assert np.array_equal(given, before) and flavor(given) == first
    given.setflags(write=False)  # a read-only array is read, never written
    assert flavor(given) == first


def test_arrays_and_frames_in_one_batch_are_stacked_as_frames(
    iris: tuple[pd.DataFrame, Any], rows: list[dict[str, float]]
) -> None:
    x, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    twinned, framed = _Sklearn(model), _Sklearn(model)
    framed.twin = None
    frame = pd.DataFrame(rows)
    inputs = [frame.iloc[:3].to_numpy(), frame.iloc[3:7], frame.iloc[7:9].to_numpy()]
    assert (
        twinned.many(inputs)
        == framed.many(inputs)
        == [
            expected(model, frame.iloc[:3]),
            expected(model, frame.iloc[3:7]),
            expected(model, frame.iloc[7:9]),
        ]
    )


def test_whole_numbers_written_without_a_point_reach_the_twin(
    iris: tuple[pd.DataFrame, Any], rows: list[dict[str, float]]
) -> None:
    """JSON writers drop ".0" (JavaScript's 5.0 is 5): with a float among them, the
    frame's array is float64 all the same, so such rows take the twin too; ints only,
    or ints beyond float64's exact range, keep the frame."""
    x, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    twinned, framed = _Sklearn(model), _Sklearn(model)
    framed.twin = None
    written = [{k: int(v) if i % 2 and k == x.columns[0] else v for k, v in r.items()}
               for i, r in enumerate(rows)]  # fmt: skip
    written[1][x.columns[0]] = round(written[1][x.columns[0]])
    assert any(type(v) is int for r in written for v in r.values())
    assert isinstance(twinned.named([list(written[1].values())]), np.ndarray)
    assert twinned.many(written) == framed.many(written)
    ints = [[5, 3, 1, 0], [6, 3, 5, 2]]
    assert isinstance(twinned.named(ints), pd.DataFrame)
    huge = [[5.1, 3.5, 1.4, 2**60], [6.7, 3.0, 5.2, 2.3]]
    assert isinstance(twinned.named(huge), pd.DataFrame)
