"""Input signatures and the checks ``run_model`` makes with them: every rule, each
coercion allowed and refused, soft findings, the policies, and derivation from a
dataset version and from fitted scikit-learn estimators."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from umlaut_core.datasets import validation
from umlaut_core.datasets.records import ColumnProfile, DatasetVersion
from umlaut_core.datasets.signature import (
    TABLE_FORMAT,
    check_signature,
    signature_from_dataset,
    signature_from_estimator,
)
from umlaut_core.datasets.validation import FINDINGS_TAG, make_checker
from umlaut_core.exceptions import ConfigurationError, InputValidationError, UmlautError
from umlaut_core.packer.flavors import SKLEARN

IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
       "petal width (cm)": 0.2}  # fmt: skip


def col(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


def table(*columns: dict[str, Any]) -> dict[str, Any]:
    return {"format": TABLE_FORMAT, "columns": list(columns), "source": "test"}


#: One column of each checked kind, for the rule tests.
MIXED = table(
    col("x", "float", min=0.0, max=10.0),
    col("n", "integer", nullable=True, min=0, max=5),
    col("color", "category", categories=["red", "green"]),
    col("when", "datetime", nullable=True),
    col("day", "date", nullable=True),
    col("flag", "boolean"),
)
GOOD = {"x": 1.0, "n": 2, "color": "red", "when": dt.datetime(2024, 1, 1),
        "day": dt.date(2024, 1, 1), "flag": True}  # fmt: skip


def refused(checker: Any, item: Any) -> InputValidationError:
    with pytest.raises(InputValidationError) as info:
        checker(item)
    return info.value


def findings(tags: dict[str, str] | None) -> list[dict[str, Any]]:
    assert tags is not None
    return json.loads(tags[FINDINGS_TAG])  # type: ignore[no-any-return]


@pytest.fixture
def strict() -> Any:
    return make_checker(MIXED, "strict")


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y


class TestSignatureFormat:
    """check_signature normalises a table signature, refuses a malformed one clearly
    and keeps any other mapping as a free-form note."""

    def test_normalised(self) -> None:
        out = check_signature(table(col("a", "float"), col("s", "string", categories=("p",))))
        assert out == {
            "format": TABLE_FORMAT,
            "columns": [
                {"name": "a", "type": "float", "nullable": False, "min": None, "max": None,
                 "categories": None},
                {"name": "s", "type": "string", "nullable": False, "min": None, "max": None,
                 "categories": ["p"]},
            ],
            "source": "test",
        }  # fmt: skip
        json.dumps(out, allow_nan=False)

    def test_free_form_is_kept_and_not_enforced(self) -> None:
        note = {"inputs": "four iris measurements", "columns": 4}
        assert check_signature(note) == note
        assert make_checker(note, "strict") is None
        assert make_checker({"format": "mlflow", "columns": []}, "strict") is None

    @pytest.mark.parametrize(
        ("signature", "says"),
        [
            ({"format": TABLE_FORMAT}, "non-empty list"),
            ({"format": TABLE_FORMAT, "columns": []}, "non-empty list"),
            ({"format": "umlaut.table/9", "columns": []}, "unknown signature format"),
            (table(col("a", "int")), "did you mean 'integer'"),
            (table(col("a", "flaot")), "did you mean 'float'"),
            (table({"name": "a", "type": "float", "nulable": True}), "did you mean 'nullable'"),
            (table(col("a", "float"), col("a", "integer")), "appears twice"),
            (table(col("a", "float", min=5, max=1)), "greater than"),
            (table(col("a", "string", min="a", max="b")), "apply to"),
            (table(col("a", "float", min=float("nan"), max=1.0)), "finite number"),
            (table(col("a", "datetime", min="yesterday", max="today")), "ISO 8601"),
            (table(col("a", "string", categories=[1, 2])), "list of strings"),
            (table(col("a", "float", categories=["x"])), "string and category"),
            (table(col("a", "float", nullable="yes")), "true or false"),
            (table({"type": "float"}), "needs a 'name'"),
            (table("a"), "must be an object"),  # type: ignore[arg-type]
            ({**table(col("a", "float")), "extra": 1}, "unknown key 'extra'"),
        ],
    )
    def test_malformed(self, signature: dict[str, Any], says: str) -> None:
        with pytest.raises(ConfigurationError, match=says):
            check_signature(signature)

    def test_not_a_mapping(self) -> None:
        with pytest.raises(ConfigurationError, match="must be a mapping"):
            check_signature(["a", "b"])  # type: ignore[arg-type]


def profile(name: str, kind: str, **extra: Any) -> ColumnProfile:
    base: dict[str, Any] = {"dtype": kind, "stored_type": kind, "nullable": False,
                            "null_count": 0, "distinct_count": 3}  # fmt: skip
    return ColumnProfile(name=name, logical_type=kind, **{**base, **extra})


class TestFromDataset:
    """A dataset version's feature columns become the signature."""

    def test_features_only_with_ranges_and_categories(self) -> None:
        dv = DatasetVersion(
            name="shop", version=3, digest="d", rows=10, artifact_uri="x", size_bytes=1,
            sha256="s", created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), target="bought",
            columns=(
                profile("price", "float", min=1.5, max=9.0),
                profile("qty", "integer", nullable=True, null_count=2, min=0, max=4),
                profile("kind", "category", categories=("a", "b")),
                profile("seen", "datetime", min="2024-01-01T00:00:00+00:00",
                        max="2024-02-01T00:00:00+00:00"),
                profile("empty", "float", min=float("nan"), max=float("nan")),
                profile("label", "string", categories=("x",)),
                profile("bought", "boolean", role="target"),
                profile("id", "integer", role="id"),
            ),
        )  # fmt: skip
        sig = signature_from_dataset(dv)
        assert sig["source"] == "dataset shop v3"
        assert [c["name"] for c in sig["columns"]] == [
            "price", "qty", "kind", "seen", "empty", "label",
        ]  # fmt: skip
        by = {c["name"]: c for c in sig["columns"]}
        assert by["price"] == {"name": "price", "type": "float", "nullable": False,
                               "min": 1.5, "max": 9.0, "categories": None}  # fmt: skip
        assert by["qty"]["nullable"] is True
        assert by["kind"]["categories"] == ["a", "b"]
        assert by["seen"]["min"] == "2024-01-01T00:00:00+00:00"
        assert (by["empty"]["min"], by["empty"]["max"]) == (None, None)  # NaN is not JSON
        assert check_signature(sig) == sig
        json.dumps(sig, allow_nan=False)

    def test_checks_with_it(self) -> None:
        dv = DatasetVersion(
            name="d", version=1, digest="d", rows=1, artifact_uri="x", size_bytes=1,
            sha256="s", created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            columns=(profile("kind", "category", categories=("a", "b")),),
        )  # fmt: skip
        check = make_checker(signature_from_dataset(dv), "strict")
        assert check is not None
        assert findings(check({"kind": "c"})[1])[0]["kind"] == "unseen_category"


class TestFromEstimator:
    """A fitted estimator's feature_names_in_ become a signature; anything else gives
    None, cheaply."""

    def test_logistic_regression(self, iris: tuple[pd.DataFrame, pd.Series]) -> None:
        model = LogisticRegression(max_iter=1000).fit(*iris)
        sig = signature_from_estimator(model)
        assert sig is not None
        assert [c["name"] for c in sig["columns"]] == IRIS
        assert {c["type"] for c in sig["columns"]} == {"float"}
        assert all(c["nullable"] for c in sig["columns"])
        assert sig["source"] == "estimator LogisticRegression (feature_names_in_)"
        assert check_signature(sig) == sig

    def test_pipeline_end_to_end(self, iris: tuple[pd.DataFrame, pd.Series]) -> None:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(*iris)
        sig = signature_from_estimator(model)
        assert sig is not None and [c["name"] for c in sig["columns"]] == IRIS
        check, run = make_checker(sig, "strict"), SKLEARN.runner(model)
        assert check is not None
        item, _ = check({**ROW, "sepal length (cm)": 5})  # an int, as JSON clients send
        assert run(item)["prediction"] == 0
        frame, _ = check(iris[0].head(3))
        assert len(run(frame)) == 3
        error = refused(check, {**ROW, "petal widht (cm)": 0.2})
        assert "did you mean 'petal width (cm)'" in str(error)

    def test_encoded_string_columns(self) -> None:
        x = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "color": ["r", "g", "r", "b"]})
        encode = ColumnTransformer(
            [("num", StandardScaler(), ["size"]), ("cat", OneHotEncoder(), ["color"])]
        )
        model = make_pipeline(encode, LogisticRegression()).fit(x, [0, 1, 0, 1])
        sig = signature_from_estimator(model)
        assert sig is not None
        by = {c["name"]: c for c in sig["columns"]}
        assert by["size"]["type"] == "float"
        assert (by["color"]["type"], by["color"]["categories"]) == ("string", ["b", "g", "r"])
        check = make_checker(sig, "strict")
        assert check is not None
        assert check({"size": 1.5, "color": "g"}) == ({"size": 1.5, "color": "g"}, None)
        search = GridSearchCV(model, {"logisticregression__C": [1.0]}, cv=2)
        fitted = search.fit(pd.concat([x] * 3, ignore_index=True), [0, 1, 0, 1] * 3)
        searched = signature_from_estimator(fitted)
        assert searched is not None and searched["columns"] == sig["columns"]

    def test_none_without_names_or_estimator(self, iris: tuple[pd.DataFrame, Any]) -> None:
        unnamed = LogisticRegression(max_iter=1000).fit(iris[0].to_numpy(), iris[1])
        assert unnamed.n_features_in_ == 4
        assert signature_from_estimator(unnamed) is None
        assert signature_from_estimator(LogisticRegression()) is None  # not fitted
        assert signature_from_estimator(LogisticRegression) is None  # a class

        class Model:
            feature_names_in_ = ("a",)

            def run(self, x: Any) -> Any:
                return x

        assert signature_from_estimator(Model()) is None
        assert signature_from_estimator(lambda x: x) is None


class TestRules:
    """Each problem refuses the item, and one error lists them all."""

    def test_good_row_passes_unchanged(self, strict: Any) -> None:
        assert strict(GOOD) == (GOOD, None)
        assert strict(GOOD)[0] is GOOD

    def test_missing(self, strict: Any) -> None:
        error = refused(strict, {k: v for k, v in GOOD.items() if k != "x"})
        assert error.problems == ["column 'x' is missing"]

    def test_nullable_column_must_still_be_present(self, strict: Any) -> None:
        error = refused(strict, {k: v for k, v in GOOD.items() if k != "n"})
        assert error.problems == ["column 'n' is missing"]
        assert strict({**GOOD, "n": None})[1] is None

    def test_unknown_with_suggestion_never_dropped(self, strict: Any) -> None:
        error = refused(strict, {**{k: v for k, v in GOOD.items() if k != "color"}, "colour": 1})
        assert "unknown column 'colour' (did you mean 'color'?)" in error.problems
        error = refused(strict, {**GOOD, "zzz": 1})
        assert error.problems == ["unknown column 'zzz'"]

    def test_wrong_type(self, strict: Any) -> None:
        error = refused(strict, {**GOOD, "flag": "yes"})
        assert error.problems == ["column 'flag' must be a bool, not str"]

    @pytest.mark.parametrize("null", [None, float("nan"), pd.NA, pd.NaT, np.float64("nan")])
    def test_null_in_non_nullable(self, strict: Any, null: Any) -> None:
        error = refused(strict, {**GOOD, "x": null})
        assert error.problems == ["column 'x' is not nullable but has a null"]

    def test_every_problem_in_one_error(self, strict: Any) -> None:
        error = refused(strict, {"x": None, "n": "3", "colr": "red", "when": "soon", "day": None})
        assert isinstance(error, ValueError) and isinstance(error, UmlautError)
        assert len(error.problems) == 6
        assert str(error).startswith("the input does not match the signature (6 problems): ")
        for text in (
            "'color' is missing", "'flag' is missing", "'colr' (did you mean 'color'?)",
            "'x' is not nullable", "'n' must be an integer", "'when' must be",
        ):  # fmt: skip
            assert text in str(error)

    def test_label_names_the_version(self) -> None:
        check = make_checker(MIXED, "strict", label="model 'shop' v2")
        assert check is not None
        assert "signature of model 'shop' v2 (" in str(refused(check, {}))

    @pytest.mark.parametrize("item", [3, "text", None, 2.5, {1, 2}, pd.Series([1.0])])
    def test_not_rows(self, strict: Any, item: Any) -> None:
        error = refused(strict, item)
        assert "must be a row (a dict of column → value) or rows" in str(error)

    def test_flat_list(self, strict: Any) -> None:
        assert "flat list of 3 values" in str(refused(strict, [1.0, 2, "red"]))

    def test_python_class_model_with_scalar_input(self) -> None:
        class Doubler:
            def run(self, x: Any) -> Any:
                return x * 2

        check = make_checker(table(col("x", "float")), "strict")
        assert check is not None
        error = refused(check, 21)
        assert error.problems == [
            "the input must be a row (a dict of column → value) or rows (a list of dicts "
            "or of lists in column order, or a pandas DataFrame), not int"
        ]
        assert Doubler().run(check({"x": 21})[0]["x"]) == 42.0


class TestCoercions:
    """Only the documented coercions apply, on copies."""

    @pytest.mark.parametrize(
        ("column", "given", "becomes"),
        [
            ("x", 3, 3.0),
            ("x", np.int64(3), 3.0),
            ("x", np.float32(1.5), np.float32(1.5)),
            ("n", 3.0, 3),
            ("n", np.float64(4.0), 4),
            ("n", np.int32(2), np.int32(2)),
            ("when", "2024-01-02T03:04:05+00:00", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
            ("when", "2024-01-02", dt.datetime(2024, 1, 2)),
            ("day", "2024-01-02", dt.date(2024, 1, 2)),
            ("color", 7, 7),
            ("flag", np.bool_(True), np.bool_(True)),
        ],
    )
    def test_allowed(self, strict: Any, column: str, given: Any, becomes: Any) -> None:
        row = {**GOOD, column: given}
        out, _ = strict(row)
        assert out[column] == becomes and type(out[column]) is type(becomes)
        assert row[column] is given  # the caller's dict is untouched

    @pytest.mark.parametrize(
        ("column", "given", "says"),
        [
            ("x", True, "must be a number, not bool"),
            ("x", "1.5", "must be a number, not str"),
            ("x", 2**53 + 1, "an integer too large to be exactly a float"),
            ("x", 10**400, "an integer too large to be exactly a float"),
            ("n", 2.5, "a float with a fractional part"),
            ("n", float("inf"), "a float with a fractional part"),
            ("n", False, "must be an integer (a float only when integral), not bool"),
            ("n", "3", "not str"),
            ("flag", 1, "must be a bool, not int"),
            ("color", 1.5, "not float"),
            ("when", "next tuesday", "a string that is not an ISO 8601 datetime"),
            ("when", dt.date(2024, 1, 1), "not date"),
            ("day", dt.datetime(2024, 1, 1), "not datetime"),
            ("x", Decimal("1.5"), "must be a number, not Decimal"),
            ("n", Decimal("1"), "not Decimal"),
        ],
    )
    def test_refused(self, strict: Any, column: str, given: Any, says: str) -> None:
        assert says in str(refused(strict, {**GOOD, column: given}))

    def test_exact_big_int_is_allowed(self, strict: Any) -> None:
        assert strict({**GOOD, "x": 2**60})[0]["x"] == float(2**60)


class TestFindings:
    """Soft findings are recorded as a tag, never blocking."""

    def test_out_of_range_and_unseen(self, strict: Any) -> None:
        out, tags = strict({**GOOD, "x": 11.0, "color": "blue"})
        assert out["x"] == 11.0
        assert findings(tags) == [
            {"kind": "out_of_range", "column": "x", "count": 1,
             "message": "column 'x' has a value outside the training range [0.0, 10.0]"},
            {"kind": "unseen_category", "column": "color", "count": 1,
             "message": "column 'color' has a value not among its 2 known categories"},
        ]  # fmt: skip

    def test_time_range(self) -> None:
        check = make_checker(
            table(col("t", "datetime", min="2024-01-01T00:00:00", max="2024-12-31T00:00:00")),
            "strict",
        )
        assert check is not None
        assert check({"t": dt.datetime(2024, 6, 1)})[1] is None
        assert findings(check({"t": "2025-01-01T00:00:00"})[1])[0]["kind"] == "out_of_range"
        aware = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # not comparable: no finding
        assert check({"t": aware}) == ({"t": aware}, None)

    def test_repeated_findings_are_fresh_dicts(self, strict: Any) -> None:
        first = strict({**GOOD, "x": 11.0})[1]
        assert first is not None
        first["extra"] = "mutated"
        assert strict({**GOOD, "x": 11.0})[1] == {FINDINGS_TAG: first[FINDINGS_TAG]}

    def test_tag_fits(self) -> None:
        names = [f"column_{i:03}" for i in range(300)]
        check = make_checker(table(*(col(n, "float") for n in names)), "warn")
        assert check is not None
        tags = check({})[1]
        assert tags is not None and len(tags[FINDINGS_TAG]) <= 5000
        entries = findings(tags)
        assert entries[-1]["kind"] == "truncated"
        assert len(entries) - 1 + entries[-1]["count"] == 300


class TestPolicies:
    """off checks nothing; warn logs once per kind, records, and lets the model run."""

    def test_nothing_to_check(self) -> None:
        assert make_checker(MIXED, "off") is None
        assert make_checker(None, "strict") is None
        assert make_checker({"anything": 1}, "strict") is None

    def test_unknown_policy(self) -> None:
        with pytest.raises(ConfigurationError, match="'strict', 'warn', 'off'"):
            make_checker(MIXED, "loose")  # type: ignore[arg-type]

    def test_warn(self, caplog: pytest.LogCaptureFixture) -> None:
        check = make_checker(MIXED, "warn", label="model 'shop' v2")
        assert check is not None
        caplog.set_level(logging.WARNING, logger="umlaut.inputs")
        bad = {**GOOD, "x": "secret-1", "flag": None}
        for _ in range(3):
            out, tags = check(bad)
            assert out == bad
        kinds = [f["kind"] for f in findings(tags)]
        assert kinds == ["wrong_type", "null"]
        assert len(caplog.records) == 2  # once per kind, not per call
        assert "model 'shop' v2" in caplog.text and "secret-1" not in caplog.text
        check(5)
        assert len(caplog.records) == 3
        out, tags = check({**GOOD, "x": 3})
        assert out["x"] == 3.0 and tags is None  # coercions still apply


class TestVerbose:
    """Values stay out of messages unless asked for, and then are bounded."""

    def test_values_absent_by_default(self, strict: Any) -> None:
        error = refused(strict, {**GOOD, "x": "secret-token", "n": "hunter2"})
        assert "secret" not in str(error) and "hunter2" not in str(error)
        _, tags = strict({**GOOD, "color": "confidential"})
        assert "confidential" not in json.dumps(findings(tags))

    def test_verbose(self) -> None:
        check = make_checker(MIXED, "strict", verbose=True)
        assert check is not None
        error = refused(check, {**GOOD, "x": "secret-token", "n": "y" * 100})
        assert "values: 'secret-token'" in str(error)
        assert "'" + "y" * 38 + "…" in str(error) and "y" * 40 not in str(error)
        rows = [{**GOOD, "x": f"v{i}"} for i in range(10)]
        message = str(refused(check, rows))
        assert "values: 'v0', 'v1', 'v2'" in message and "'v3'" not in message


class TestRows:
    """A list of rows: dicts, or lists in column order; problems say which rows."""

    def test_list_of_dicts(self, strict: Any) -> None:
        rows = [GOOD, {**GOOD, "x": 2}, GOOD]
        out, tags = strict(rows)
        assert tags is None and out is not rows and out[1]["x"] == 2.0 and rows[1]["x"] == 2
        assert strict([GOOD, GOOD])[0] == [GOOD, GOOD]
        assert strict([]) == ([], None)

    def test_problems_counted_over_rows(self, strict: Any) -> None:
        rows = [GOOD] + [{**GOOD, "flag": 0}] * 7
        error = refused(strict, rows)
        assert error.problems == [
            "column 'flag' must be a bool, not int (7 rows: 1, 2, 3, 4, 5, …)"
        ]
        assert refused(strict, [GOOD, {**GOOD, "x": None}]).problems == [
            "column 'x' is not nullable but has a null (row 1)"
        ]

    def test_findings_counted_over_rows(self, strict: Any) -> None:
        _, tags = strict([{**GOOD, "x": 50.0}, GOOD, {**GOOD, "x": -1.0}])
        (entry,) = findings(tags)
        assert entry["count"] == 2 and entry["message"].endswith("(2 rows: 0, 2)")

    def test_lists_in_column_order(self, strict: Any) -> None:
        row = list(GOOD.values())
        assert strict([row])[0] == [row]
        out, _ = strict([[3, *row[1:]]])
        assert out[0][0] == 3.0
        error = refused(strict, [row, row[:3]])
        assert error.problems == [
            "a row has 3 values; the signature has 6 ('x', 'n', 'color', 'when', 'day', "
            "'flag') (row 1)"
        ]

    def test_bad_rows(self, strict: Any) -> None:
        error = refused(strict, [GOOD, 5])
        assert error.problems == ["a row must be a dict or a list, not int (row 1)"]

    def test_array(self) -> None:
        check = make_checker(table(col("a", "float"), col("b", "float", min=0, max=1)), "strict")
        assert check is not None
        array = np.array([[1.0, 0.5], [2.0, 3.0]])
        out, tags = check(array)
        assert out is array and findings(tags)[0]["message"].endswith("(row 1)")
        assert "has 3 columns" in str(refused(check, np.ones((2, 3))))
        assert "is not nullable" in str(refused(check, np.array([[np.nan, 0.5]])))


class TestFrames:
    """A DataFrame is checked per column with pandas operations, never per value."""

    @pytest.fixture
    def check(self) -> Any:
        return make_checker(MIXED, "strict")

    @pytest.fixture
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "x": [1.0, 2.0, 3.0], "n": [1, None, 3], "color": ["red", "green", "red"],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", None]),
            "day": [dt.date(2024, 1, 1)] * 3, "flag": [True, False, True],
        })  # fmt: skip

    def test_good_frame_is_not_copied(self, check: Any, frame: pd.DataFrame) -> None:
        out, tags = check(frame)
        assert out is frame and tags is None

    def test_no_per_value_python(
        self, check: Any, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def boom(value: Any) -> bool:
            raise AssertionError("a frame was checked value by value")

        monkeypatch.setattr(validation, "_is_null", boom)
        big = pd.concat([frame] * 1000, ignore_index=True)
        big["x"] = np.arange(len(big), dtype="int64")  # coerced, and out of range
        out, tags = check(big)
        assert out["x"].dtype == "float64" and big["x"].dtype == "int64"
        assert findings(tags)[0]["count"] == len(big) - 11

    def test_problems(self, check: Any, frame: pd.DataFrame) -> None:
        bad = frame.rename(columns={"color": "colour"}).assign(
            x=["1", "2", "3"], flag=[True, None, True], n=[1.5, 2.0, None]
        )
        error = refused(check, bad)
        assert error.problems == [
            "column 'color' is missing",
            "unknown column 'colour' (did you mean 'color'?)",
            "column 'x' must be a number, not a column of dtype 'str'",
            "column 'n' must be an integer (a float only when integral), not a float with "
            "a fractional part (row 0)",
            "column 'flag' is not nullable but has a null (row 1)",
        ]
        assert "'1'" not in str(error)

    def test_coercions(self, check: Any, frame: pd.DataFrame) -> None:
        given = frame.assign(
            x=[1, 2, 3], n=[1.0, 2.0, 3.0], when=["2024-01-01T10:00:00", None, "2024-03-01"],
            day=["2024-01-01", "2024-01-02", "2024-01-03"],
        )  # fmt: skip
        out, tags = check(given)
        assert tags is None
        assert out["x"].dtype == "float64" and out["n"].dtype == "int64"
        assert out["when"].dtype.kind == "M" and out["day"].tolist()[1] == dt.date(2024, 1, 2)
        assert given["x"].dtype == "int64" and given["when"].dtype == frame["color"].dtype
        kept = frame.assign(n=[1.0, None, 3.0])  # int64 holds no null: stays float
        assert check(kept)[0]["n"].dtype == "float64"

    @pytest.mark.parametrize(
        ("column", "values", "says"),
        [
            ("x", [True, False, True], "not a column of dtype 'bool'"),
            ("n", [1, 2, 2**53 + 1], None),
            ("flag", [1, 0, 1], "not a column of dtype 'int64'"),
            ("color", [1.5, 2.5, 3.5], "not a column of dtype 'float64'"),
            ("when", ["2024-01-01", "soon", None], "not an ISO 8601 datetime (row 1)"),
            ("day", pd.to_datetime(["2024-01-01 10:00", "2024-01-02 00:00", "2024-01-03 00:00"]),
             "not a datetime (row 0)"),
        ],
    )  # fmt: skip
    def test_refused(
        self, check: Any, frame: pd.DataFrame, column: str, values: Any, says: str | None
    ) -> None:
        given = frame.assign(**{column: values})
        if says is None:
            check(given)  # a big int in an integer column is fine
        else:
            assert says in str(refused(check, given))

    def test_big_ints_for_float(self) -> None:
        check = make_checker(table(col("x", "float")), "strict")
        assert check is not None
        assert check(pd.DataFrame({"x": [1, 2**60]}))[0]["x"].dtype == "float64"
        error = refused(check, pd.DataFrame({"x": [1, 2**53 + 1]}))
        assert error.problems == [
            "column 'x' must be a number, not an integer too large to be exactly a float (row 1)"
        ]

    def test_findings(self, check: Any, frame: pd.DataFrame) -> None:
        given = frame.assign(x=[1.0, 20.0, -3.0], color=["red", "blue", "blue"])
        _, tags = check(given)
        assert [(f["kind"], f["column"], f["count"]) for f in findings(tags)] == [
            ("out_of_range", "x", 2), ("unseen_category", "color", 2),
        ]  # fmt: skip
        verbose = make_checker(MIXED, "strict", verbose=True)
        assert verbose is not None
        assert "values: 'blue', 'blue'" in json.dumps(findings(verbose(given)[1]))

    def test_object_columns(self, check: Any, frame: pd.DataFrame) -> None:
        mixed = frame.assign(x=pd.Series([1.0, "2", 3.0], dtype=object))
        assert "not a column of dtype 'object' holding mixed values" in str(refused(check, mixed))
        out, _ = check(frame.assign(x=pd.Series([1, 2, 3.5], dtype=object)))
        assert out["x"].dtype == "float64"
        assert "not nullable" in str(refused(check, frame.assign(x=[1.0, np.nan, 2.0])))

    def test_extension_dtypes(self, check: Any, frame: pd.DataFrame) -> None:
        given = frame.assign(
            n=pd.array([1, None, 9], dtype="Int64"),
            flag=pd.array([True, False, True], dtype="boolean"),
            color=pd.array(["red", "green", "red"], dtype="string"),
        )
        out, tags = check(given)
        assert out is given
        assert findings(tags) == [
            {"kind": "out_of_range", "column": "n", "count": 1,
             "message": "column 'n' has a value outside the training range [0, 5] (row 2)"},
        ]  # fmt: skip

    def test_incomparable_times_give_no_finding(self) -> None:
        sig = table(col("t", "datetime", min="2024-01-01T00:00:00", max="2024-02-01T00:00:00"))
        check = make_checker(sig, "strict")
        assert check is not None
        aware = pd.DataFrame({"t": pd.to_datetime(["2030-01-01"]).tz_localize("UTC")})
        assert check(aware)[1] is None
        naive = pd.DataFrame({"t": pd.to_datetime(["2030-01-01"])})
        assert findings(check(naive)[1])[0]["kind"] == "out_of_range"

    def test_categorical_and_empty(self, check: Any, frame: pd.DataFrame) -> None:
        given = frame.assign(color=pd.Categorical(["red", "green", "red"]))
        assert check(given)[1] is None
        out, tags = check(frame.iloc[:0])
        assert out.empty and tags is None
        assert "'x' is missing" in str(refused(check, frame.drop(columns="x").iloc[:0]))
