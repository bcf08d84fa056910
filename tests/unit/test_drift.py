"""Drift reports: the statistics against scipy, the judging rules, reading audit
records in every input form, prediction drift, operations, and the whole path
through ``Umlaut.drift_report`` and ``umlaut drift``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any, Literal

import numpy as np
import pytest

from umlaut_core import ConfigurationError, Umlaut
from umlaut_core.datasets.drift import (
    PSI_EPSILON,
    CategoricalReference,
    DriftReport,
    NumericReference,
    Thresholds,
    compare_categorical,
    compare_numeric,
    ks_statistic,
    ks_wasserstein,
    psi,
    wasserstein_distance,
)
from umlaut_core.datasets.monitor import DriftMonitor
from umlaut_core.datasets.records import ColumnProfile, DatasetVersion
from umlaut_core.datasets.trail import columns_of, first_records, scan_columns, scan_records
from umlaut_core.encoding import to_jsonable
from umlaut_core.ids import encode_id
from umlaut_core.protocols import Capability
from umlaut_core.records import AuditRecord, RunColumns, RunQuery
from umlaut_core.testing.models import Echo

pd = pytest.importorskip("pandas")
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


# -- helpers -------------------------------------------------------------------------


def profile_of(frame: Any, *, roles: dict[str, str] | None = None) -> tuple[ColumnProfile, ...]:
    """A profile as the ingest module makes one: deciles, min/max, top values."""
    out = []
    for name in frame.columns:
        col = frame[name]
        role = (roles or {}).get(name, "feature")
        nulls = int(col.isna().sum())
        present = col.dropna()
        if col.dtype.kind in "fi":
            kind = "float" if col.dtype.kind == "f" else "integer"
            deciles = tuple(float(q) for q in np.quantile(present, np.linspace(0, 1, 11)))
            out.append(
                ColumnProfile(
                    name,
                    kind,
                    str(col.dtype),
                    "double",
                    nulls > 0,
                    nulls,
                    int(present.nunique()),
                    min=present.min().item(),
                    max=present.max().item(),
                    mean=float(present.mean()),
                    std=float(present.std()),
                    quantiles=deciles,
                    role=role,
                )
            )
        else:
            counts = present.astype(str).value_counts()
            out.append(
                ColumnProfile(
                    name,
                    "string",
                    "object",
                    "string",
                    nulls > 0,
                    nulls,
                    int(present.nunique()),
                    top=tuple((k, int(v)) for k, v in counts.head(10).items()),
                    categories=tuple(sorted(counts.index)),
                    role=role,
                )
            )
    return tuple(out)


def dataset_of(frame: Any, *, loadable: bool = True, **kwargs: Any) -> DatasetVersion:
    return DatasetVersion(
        "train",
        1,
        "0" * 64,
        len(frame),
        profile_of(frame, **kwargs),
        "memory:x",
        0,
        "0" * 64,
        T0,
        loader=(lambda dv: frame.copy()) if loadable else None,
    )


_count = iter(range(10**9))


def record(
    inputs: Any,
    output: Any = None,
    *,
    status: Literal["ok", "error"] = "ok",
    error_type: str | None = None,
    duration: float = 1.0,
    at: dt.datetime = T0,
    version: int = 1,
) -> AuditRecord:
    n = next(_count)
    return AuditRecord(
        encode_id(int(at.timestamp() * 1000), n),
        "m",
        version,
        "latest",
        json.dumps(inputs),
        None if status == "error" else json.dumps(output),
        status,
        at,
        duration,
        error_type=error_type,
    )


def records(rows: Sequence[dict[str, Any]], outputs: Sequence[Any] | None = None) -> list[Any]:
    outs = outputs if outputs is not None else [None] * len(rows)
    return [record(r, o) for r, o in zip(rows, outs, strict=True)]


def feature(report: DriftReport, name: str) -> Any:
    return next(f for f in report.features if f.name == name)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260301)


# -- the statistics --------------------------------------------------------------------


class TestStatistics:
    """KS and Wasserstein match scipy to 1e-9; PSI follows its formula."""

    @pytest.mark.parametrize(
        ("n", "m", "shift", "scale", "decimals"),
        [
            (5_000, 3_000, 0.4, 1.0, None),
            (20_000, 70_000, 0.0, 2.0, None),
            (300, 5, 1.0, 1.0, None),
            (10_000, 10_000, 0.2, 1.0, 1),
            (1, 1, 3.0, 1.0, None),
        ],
    )
    def test_ks_and_wasserstein_match_scipy(
        self,
        rng: np.random.Generator,
        n: int,
        m: int,
        shift: float,
        scale: float,
        decimals: int | None,
    ) -> None:
        stats = pytest.importorskip("scipy.stats")
        a, b = rng.normal(0, 1, n), rng.normal(shift, scale, m)
        if decimals is not None:  # many ties
            a, b = np.round(a, decimals), np.round(b, decimals)
        ks, w1 = ks_wasserstein(a, b)
        assert abs(ks - stats.ks_2samp(a, b).statistic) <= 1e-9
        assert abs(w1 - stats.wasserstein_distance(a, b)) <= 1e-9
        assert ks_statistic(a, b) == ks and wasserstein_distance(a, b) == w1

    def test_pooled_steps_match_scipy_across_many_steps(self, rng: np.random.Generator) -> None:
        stats = pytest.importorskip("scipy.stats")
        a, b = rng.exponential(1.0, 150_000), rng.exponential(1.3, 90_000)
        ks, w1 = ks_wasserstein(a, b)
        assert abs(ks - stats.ks_2samp(a, b).statistic) <= 1e-9
        assert abs(w1 - stats.wasserstein_distance(a, b)) <= 1e-9

    @pytest.mark.parametrize("heavy", [0, 100_000])
    def test_ties_across_many_steps_match_scipy(self, rng: np.random.Generator, heavy: int) -> None:
        # Runs of tied values crossing step edges; with `heavy`, one run longer than a step.
        stats = pytest.importorskip("scipy.stats")
        a = np.r_[rng.integers(0, 12, 150_000), np.full(heavy, 5)].astype(float)
        b = rng.integers(0, 15, 90_000).astype(float)
        ks, w1 = ks_wasserstein(a, b)
        assert abs(ks - stats.ks_2samp(a, b).statistic) <= 1e-9
        assert abs(w1 - stats.wasserstein_distance(a, b)) <= 1e-9

    def test_bins_from_the_pool_match_binning_every_value(self, rng: np.random.Generator) -> None:
        # With a sample, the current values' bins come from positions in the sorted pool.
        ref = NumericReference.build(sample=rng.normal(0, 1, 5_000).round(1))
        assert ref is not None and ref.sample is not None
        current = np.r_[rng.normal(0.3, 1.5, 20_000).round(1), ref.edges, [ref.low, ref.high]]
        pooled = compare_numeric("x", ref, current, 21_000)
        binned = compare_numeric("x", dataclasses.replace(ref, sample=None), current, 21_000)
        assert pooled.psi == binned.psi and pooled.psi is not None
        assert pooled.out_of_range_share == binned.out_of_range_share
        assert pooled.out_of_range_share is not None and pooled.out_of_range_share > 0

    def test_empty_sample_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one value"):
            ks_wasserstein([], [1.0])

    def test_psi_formula_and_epsilon(self) -> None:
        assert psi([1, 1], [1, 1]) == 0.0
        want = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
        assert psi([5, 5], [7, 3]) == pytest.approx(want, rel=1e-12)
        # An empty bin counts as PSI_EPSILON, not zero: the index stays finite.
        want = (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5) + 0.5 * math.log(1 / 0.5)
        assert psi([1, 1], [0, 10]) == pytest.approx(want, rel=1e-12)

    def test_profile_deciles_with_ties_merge_bins(self) -> None:
        # 30% zeros: the first three deciles end at 0, so their 30% is one bin.
        edges = (0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
        profile = ColumnProfile(
            "x", "float", "float64", "double", False, 0, 9, min=0.0, max=7.0, quantiles=edges
        )
        ref = NumericReference.build(profile, rows=1000)
        assert ref is not None and ref.sample is None
        assert list(ref.edges) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        assert np.allclose(ref.expected, [0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
        current = np.r_[np.zeros(300), np.linspace(0.01, 6.99, 700)]
        got = compare_numeric("x", ref, current, 1000)
        assert got.psi is not None and got.psi < 0.01 and got.ks is None

    def test_constant_reference(self) -> None:
        profile = ColumnProfile(
            "k", "integer", "int64", "int64", False, 0, 1, min=3, max=3, quantiles=(3.0,) * 11
        )
        ref = NumericReference.build(profile, np.full(500, 3.0), rows=500)
        assert ref is not None and ref.std == 0.0
        same = compare_numeric("k", ref, np.full(200, 3.0), 200)
        assert (same.status, same.psi, same.ks, same.wasserstein_norm) == ("ok", 0.0, 0.0, None)
        moved = compare_numeric("k", ref, np.full(200, 4.0), 200)
        assert moved.status == "alert" and moved.out_of_range_share == 1.0
        assert moved.wasserstein == 1.0 and moved.wasserstein_norm is None


class TestJudging:
    """Thresholds, too few rows, and when a dataset drifts."""

    def test_known_shift_alerts_with_reasons(self, rng: np.random.Generator) -> None:
        train = rng.normal(0, 1, 20_000)
        profile = profile_of(pd.DataFrame({"x": train}))[0]
        ref = NumericReference.build(profile, train, rows=20_000)
        got = compare_numeric("x", ref, rng.normal(1.0, 1, 5_000), 5_000)
        assert got.status == "alert"
        assert got.psi is not None and got.psi > 0.25
        assert got.ks is not None and 0.3 < got.ks < 0.45  # Φ(0.5) − Φ(−0.5) ≈ 0.38
        assert got.wasserstein_norm == pytest.approx(1.0, abs=0.08)
        assert any(r.startswith("PSI") for r in got.reasons)

    def test_no_shift_stays_under_warn(self, rng: np.random.Generator) -> None:
        train = rng.normal(10, 3, 20_000)
        profile = profile_of(pd.DataFrame({"x": train}))[0]
        th = Thresholds()
        for ref in (
            NumericReference.build(profile, train, rows=20_000),
            NumericReference.build(profile, rows=20_000),
        ):
            got = compare_numeric("x", ref, rng.normal(10, 3, 5_000), 5_000)
            assert got.status == "ok", got.reasons
            assert got.psi is not None and got.psi < th.psi[0]
            if got.ks is not None:
                assert got.ks < th.ks[0]
                assert got.wasserstein_norm is not None
                assert got.wasserstein_norm < th.wasserstein[0]

    def test_too_few_rows_is_not_judged(self, rng: np.random.Generator) -> None:
        train = rng.normal(0, 1, 1_000)
        ref = NumericReference.build(profile_of(pd.DataFrame({"x": train}))[0], train, rows=1000)
        few = compare_numeric("x", ref, rng.normal(5, 1, 99), 99)
        assert (few.status, few.judged, few.psi, few.ks) == ("too few rows", False, None, None)
        enough = compare_numeric("x", ref, rng.normal(5, 1, 100), 100)
        assert enough.status == "alert" and enough.judged

    def test_mostly_null_feature_is_judged_on_its_null_rate(self) -> None:
        ref = NumericReference.build(sample=np.arange(1000.0))
        assert ref is not None
        ref = dataclasses.replace(ref, null_rate=0.0)
        got = compare_numeric("x", ref, np.arange(50.0), 500)
        assert got.status == "alert" and got.null_rate_change == pytest.approx(0.9)
        assert got.psi is None and got.note is not None and "non-null" in got.note

    def test_level_boundaries(self) -> None:
        th = Thresholds()
        assert [th.level("psi", v) for v in (0.0999, 0.1, 0.2499, 0.25)] == [
            "ok", "warn", "warn", "alert",
        ]  # fmt: skip

    def test_dataset_drifts_when_half_the_judged_features_alert(self) -> None:
        ref = NumericReference.build(sample=np.linspace(0, 1, 1000))
        ok = compare_numeric("a", ref, np.linspace(0, 1, 500), 500)
        alert = compare_numeric("b", ref, np.linspace(5, 6, 500), 500)
        few = compare_numeric("c", ref, np.linspace(5, 6, 10), 10)
        base = DriftReport("m", 1, None, None)
        assert base.drifted is None
        assert dataclasses.replace(base, features=(ok, alert, few)).drifted is True
        assert dataclasses.replace(base, features=(ok, ok, alert, few)).drifted is False
        assert dataclasses.replace(base, features=(ok, ok, alert, alert)).drifted is True


class TestCategorical:
    """PSI over categories with an other bucket, and the unseen share."""

    def test_unseen_share_and_psi(self) -> None:
        frame = pd.DataFrame({"c": ["a"] * 500 + ["b"] * 300 + ["c"] * 200})
        dv = dataset_of(frame)
        monitor = DriftMonitor(dv, frame)
        rows = [{"c": v} for v in ["a"] * 400 + ["b"] * 300 + ["z"] * 200 + ["y"] * 100]
        monitor.add(records(rows))
        got = feature(monitor.report("m", 1), "c")
        assert got.kind == "categorical" and got.status == "alert"
        assert got.unseen_share == pytest.approx(0.3)
        assert got.out_of_range_share == got.unseen_share
        shares_e = np.maximum([0.5, 0.3, 0.2, 0.0], PSI_EPSILON)
        shares_a = np.maximum([0.4, 0.3, 0.0, 0.3], PSI_EPSILON)
        assert got.psi == pytest.approx(
            float(np.sum((shares_a - shares_e) * np.log(shares_a / shares_e)))
        )

    def test_same_mix_from_profile_alone(self) -> None:
        frame = pd.DataFrame({"c": ["a"] * 500 + ["b"] * 300 + ["c"] * 200})
        monitor = DriftMonitor(dataset_of(frame, loadable=False))
        monitor.add(records([{"c": v} for v in ["a"] * 250 + ["b"] * 150 + ["c"] * 100]))
        report = monitor.report("m", 1)
        got = feature(report, "c")
        assert report.reference == "profile"
        assert (got.status, got.psi, got.unseen_share) == ("ok", 0.0, 0.0)

    def test_top_values_without_categories_leave_unseen_unknown(self) -> None:
        profile = ColumnProfile(
            "c", "string", "object", "string", False, 0, 50, top=(("a", 600), ("b", 300))
        )
        ref = CategoricalReference.build(profile, rows=1000)
        assert ref is not None and ref.known is None
        assert np.allclose(ref.expected / ref.expected.sum(), [0.6, 0.3, 0.1])
        got = compare_categorical("c", ref, [600, 300, 100], 0, 1000)
        assert got.psi == 0.0 and got.unseen_share is None

    def test_id_like_column_keeps_top_values_only(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from umlaut_core.datasets import monitor

        monkeypatch.setattr(monitor, "MAX_KNOWN", 50)
        frame = pd.DataFrame({"c": [f"id{i}" for i in range(1000)]})
        dv = dataclasses.replace(dataset_of(frame), columns=(
            dataclasses.replace(profile_of(frame)[0], categories=None, top=()),
        ))  # fmt: skip
        mon = DriftMonitor(dv, frame)
        mon.add(records([{"c": f"new{i}"} for i in range(500)]))
        got = feature(mon.report("m", 1), "c")
        assert got.unseen_share is None and got.status == "ok"

    def test_booleans_compare_with_profile_labels(self) -> None:
        profile = ColumnProfile(
            "b",
            "boolean",
            "bool",
            "bool",
            False,
            0,
            2,
            top=((True, 700), (False, 300)),
            categories=("False", "True"),
        )
        dv = dataclasses.replace(
            dataset_of(pd.DataFrame({"b": [True]})), columns=(profile,), rows=1000, loader=None
        )
        monitor = DriftMonitor(dv)
        monitor.add(records([{"b": v} for v in [True] * 70 + [False] * 30]))
        got = feature(monitor.report("m", 1), "b")
        assert (got.psi, got.unseen_share) == (0.0, 0.0)


# -- reading audit records ---------------------------------------------------------------


class TestReadingRecords:
    """Every input form becomes rows; missing keys are nulls; nothing else breaks."""

    def frame(self) -> Any:
        return pd.DataFrame({"x": np.arange(200.0), "c": ["a", "b"] * 100})

    def test_every_encoded_input_form(self) -> None:
        frame = self.frame()
        batch = frame.iloc[:4]
        indexed = batch.set_axis(["w", "x", "y", "z"])
        duplicated = batch.set_axis([7, 7, 8, 8])
        forms = [
            {"x": 1.0, "c": "a"},                     # one row
            to_jsonable(batch),                       # a list of rows (RangeIndex)
            to_jsonable(indexed),                     # {label: row}
            to_jsonable(duplicated),                  # [[label, row], ...]
            [1, 2, 3],                                # no rows: three unreadable items
            "text",                                   # unreadable
        ]  # fmt: skip
        assert isinstance(forms[2], dict) and isinstance(forms[3], list)
        monitor = DriftMonitor(dataset_of(frame), frame)
        monitor.add([record(f) for f in forms])
        report = monitor.report("m", 1)
        assert (report.rows, report.unreadable, report.operations.calls) == (13, 4, 6)

    def test_missing_and_wrongly_typed_values_count_as_null(self) -> None:
        frame = self.frame()
        rows: list[dict[str, Any]] = [{"x": float(i), "c": "a"} for i in range(160)]
        rows += [{"c": "a"}] * 20 + [{"x": "seven", "c": "a"}] * 10 + [{"x": None, "c": "a"}] * 10
        monitor = DriftMonitor(dataset_of(frame), frame)
        monitor.add(records(rows))
        got = feature(monitor.report("m", 1), "x")
        assert (got.rows, got.count) == (200, 160)
        assert got.null_rate_current == pytest.approx(0.2)
        assert got.null_rate_change == pytest.approx(0.2) and got.status == "alert"

    def test_times_compare_as_epoch_seconds(self) -> None:
        stamps = pd.date_range("2026-01-01", periods=500, freq="h", tz="UTC")
        frame = pd.DataFrame({"t": stamps})
        profile = ColumnProfile(
            "t",
            "datetime",
            "datetime64[ns, UTC]",
            "timestamp",
            False,
            0,
            500,
            min=stamps[0].isoformat(),
            max=stamps[-1].isoformat(),
            quantiles=tuple(
                float(q) for q in np.quantile(stamps.astype("int64") / 1e9, np.linspace(0, 1, 11))
            ),
        )
        dv = dataclasses.replace(dataset_of(frame), columns=(profile,))
        same = DriftMonitor(dv, frame)
        same.add(records([to_jsonable({"t": t}) for t in stamps[::2]]))
        got = feature(same.report("m", 1), "t")
        assert got.status == "ok" and got.out_of_range_share == 0.0
        later = DriftMonitor(dv, frame)
        later.add(records([{"t": (t + pd.Timedelta(days=60)).isoformat()} for t in stamps]))
        got = feature(later.report("m", 1), "t")
        assert got.status == "alert" and got.out_of_range_share == 1.0

    def test_unsupported_types_and_roles(self) -> None:
        frame = pd.DataFrame({"x": np.arange(200.0), "id": np.arange(200), "y": [0, 1] * 100})
        dv = dataset_of(frame, roles={"id": "id", "y": "target"})
        profile = dataclasses.replace(dv.columns[0], name="d", logical_type="duration")
        dv = dataclasses.replace(dv, columns=(*dv.columns, profile))
        monitor = DriftMonitor(dv, frame)
        monitor.add(records([{"x": 1.0, "id": 3, "d": "PT1S"}] * 150))
        report = monitor.report("m", 1)
        assert [f.name for f in report.features] == ["x", "d"]
        assert feature(report, "d").status == "not compared"

    def test_columns_read_like_records(self, rng: np.random.Generator) -> None:
        frame = self.frame()
        recs = [
            record({"x": float(v), "c": "ab"[i % 2]}, float(v) * 2, duration=i,
                   at=T0 + dt.timedelta(seconds=i))
            for i, v in enumerate(rng.normal(50, 30, 5_000))
        ]  # fmt: skip
        recs += [record({"x": 1.0}, status="error", error_type="x.InputValidationError")] * 3
        by_records = DriftMonitor(dataset_of(frame), frame)
        by_records.add(recs)
        by_columns = DriftMonitor(dataset_of(frame), frame)
        # Chunks of any size, in any order: what a tracker's scan_run_columns may give.
        chunks = list(columns_of(recs))
        assert [len(c) for c in chunks] == [2_000, 2_000, 1_003]
        by_columns.add_columns(chunks[::-1])
        report = by_columns.report("m", 1)
        assert report == by_records.report("m", 1)
        assert report.operations.refused == 3 and report.last_record == recs[4_999].started_at

    def test_reports_once(self) -> None:
        frame = self.frame()
        monitor = DriftMonitor(dataset_of(frame), frame)
        monitor.add(records([{"x": 1.0, "c": "a"}] * 150))
        first = monitor.report("m", 1)
        assert monitor.report("m", 1).features == first.features
        with pytest.raises(RuntimeError, match="has reported"):
            monitor.add(records([{"x": 1.0}]))


class TestPredictionsAndOperations:
    """Outputs against the first calls; calls, errors, refusals and latency."""

    def test_numeric_and_label_predictions(self, rng: np.random.Generator) -> None:
        monitor = DriftMonitor()
        first = [
            {"score": float(v), "label": "yes" if v > 0 else "no"} for v in rng.normal(0, 1, 2_000)
        ]
        later = [
            {"score": float(v), "label": "yes" if v > 0 else "no"} for v in rng.normal(1, 1, 2_000)
        ]
        monitor.add([record({}, out) for out in later])
        assert monitor.predicted == 2_000
        monitor.add_baseline([record({}, out) for out in first])
        report = monitor.report("m", 1)
        score, label = (
            next(p for p in report.predictions if p.name == k) for k in ("score", "label")
        )
        assert (score.kind, score.role, score.status) == ("numeric", "prediction", "alert")
        stats = pytest.importorskip("scipy.stats")
        a = [o["score"] for o in first]
        b = [o["score"] for o in later]
        assert score.ks is not None
        assert abs(score.ks - stats.ks_2samp(a, b).statistic) <= 1e-9
        assert (label.kind, label.status) == ("categorical", "alert")
        assert label.unseen_share == 0.0
        assert report.baseline_calls == 2_000 and report.features == ()

    def test_scalar_and_batch_outputs(self) -> None:
        monitor = DriftMonitor()
        monitor.add([record({}, 1.5)] * 150 + [record({}, [2.0, 2.5])] * 50)
        monitor.add_baseline([record({}, 1.5)] * 150)
        (prediction,) = monitor.report("m", 1).predictions
        assert (prediction.name, prediction.rows) == ("prediction", 250)
        assert prediction.status == "alert" and prediction.out_of_range_share == pytest.approx(0.4)

    def test_operations(self) -> None:
        durations = [float(d) for d in range(1, 101)]
        recs = [record({"x": 1}, 1, duration=d) for d in durations[:90]]
        recs += [
            record({"x": 1}, status="error", error_type="ValueError", duration=d)
            for d in durations[90:95]
        ]
        recs += [
            record(
                {"x": 1},
                status="error",
                duration=d,
                error_type="umlaut_core.exceptions.InputValidationError",
            )
            for d in durations[95:]
        ]
        monitor = DriftMonitor()
        monitor.add(recs)
        ops = monitor.report("m", 1).operations
        assert (ops.calls, ops.errors, ops.refused) == (100, 10, 5)
        assert (ops.error_rate, ops.refused_rate) == (0.1, 0.05)
        assert ops.latency_p50_ms == np.percentile(durations, 50)
        assert ops.latency_p95_ms == np.percentile(durations, 95)
        assert monitor.predicted == 90

    def test_report_formats(self, rng: np.random.Generator) -> None:
        frame = pd.DataFrame({"x": rng.normal(0, 1, 1000), "c | d": ["a", "b"] * 500})
        monitor = DriftMonitor(dataset_of(frame), frame)
        rows = [{"x": float(v), "c | d": "a"} for v in rng.normal(2, 1, 300)]
        monitor.add(records(rows, [1.0] * 300))
        monitor.add_baseline(records(rows, [1.0] * 300))
        report = monitor.report("m", 1, since=T0, notes=("a note",))
        data = report.to_dict()
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert data["drifted"] is True and data["window"]["since"] == T0.isoformat()
        assert data["features"][0]["name"] == "x" and data["thresholds"]["psi"] == [0.1, 0.25]
        table = report.to_pandas()
        assert list(table["name"]) == ["x", "c | d", "prediction"]
        assert list(table["role"]) == ["feature", "feature", "prediction"]
        text = report.to_markdown()
        assert text.startswith("# Drift report: m v1\n")
        assert "**Verdict: drift**" in text and "| c \\| d |" in text and "- a note" in text


# -- the trail and the facade ------------------------------------------------------------


class _Paging:
    """A tracker without ``Capability.SCAN_RUNS``: only newest-first pages."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities - {Capability.SCAN_RUNS}

    def query_runs(self, query: RunQuery) -> list[AuditRecord]:
        return self.inner.query_runs(query)  # type: ignore[no-any-return]


class _Columns:
    """A tracker declaring ``Capability.SCAN_COLUMNS``, counting its scans."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities | {Capability.SCAN_COLUMNS}
        self.scans = 0

    def scan_run_columns(self, query: RunQuery, limit: int | None = None) -> Iterator[RunColumns]:
        self.scans += 1
        records = self.inner.scan_runs(query)
        return columns_of(records if limit is None else islice(records, limit))


class TestTrail:
    """Every way of reading records gives the same ones; the baseline is the oldest."""

    @pytest.fixture
    def um(self) -> Iterator[Umlaut]:
        um = Umlaut("memory:")
        um.track_model(Echo(), "m")
        recs = [record({"i": i}, i, at=T0 + dt.timedelta(seconds=i)) for i in range(12_000)]
        um.tracker.record_runs(recs)
        yield um
        um.close()

    @pytest.mark.parametrize("n", [1, 4_999, 5_000, 5_001, 11_999, 12_000, 20_000])
    def test_first_records_are_the_oldest(self, um: Umlaut, n: int) -> None:
        query = RunQuery(model_name="m", version=1)
        for tracker in (um.tracker, _Paging(um.tracker)):
            got = sorted(json.loads(r.output_json or "") for r in first_records(tracker, query, n))  # type: ignore[arg-type]
            assert got == list(range(min(n, 12_000)))

    def test_scan_records_both_ways(self, um: Umlaut) -> None:
        query = RunQuery(model_name="m", version=1, since=T0 + dt.timedelta(seconds=100))
        direct = [r.id for r in scan_records(um.tracker, query)]
        paged = [r.id for r in scan_records(_Paging(um.tracker), query)]  # type: ignore[arg-type]
        assert direct == sorted(paged) and len(direct) == 11_900

    @pytest.mark.parametrize("limit", [None, 1, 5_001, 20_000])
    def test_scan_columns_every_way(self, um: Umlaut, limit: int | None) -> None:
        query = RunQuery(model_name="m", version=1, since=T0 + dt.timedelta(seconds=100))
        columns = _Columns(um.tracker)
        want = list(range(100, 12_000 if limit is None else min(100 + limit, 12_000)))
        for tracker in (um.tracker, _Paging(um.tracker), columns):
            chunks = list(scan_columns(tracker, query, limit))  # type: ignore[arg-type]
            got = sorted(json.loads(o or "") for c in chunks for o in c.output_json)
            assert got == want
            assert min(c.earliest for c in chunks) == T0 + dt.timedelta(seconds=want[0])
            assert max(c.latest for c in chunks) == T0 + dt.timedelta(seconds=want[-1])
        assert columns.scans == 1


class TestFacade:
    """``Umlaut.drift_report`` end to end on ``memory:``."""

    def test_tracked_dataset_shifted_traffic(self, rng: np.random.Generator) -> None:
        um = Umlaut("memory:")
        n = 3_000
        frame = pd.DataFrame(
            {"x": rng.normal(0, 1, n), "c": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n)}
        )
        try:
            dv = um.track_dataset(frame, "train", target="y")
        except ImportError:  # pragma: no cover - without pyarrow
            pytest.skip("track_dataset needs pyarrow")
        um.track_model(Echo(), "m", datasets={"train": dv}, stage="Production")
        xs, cs = rng.normal(0, 1, 500), rng.choice(["a", "b"], 500)
        first = [{"x": float(v), "c": str(c)} for v, c in zip(xs, cs, strict=True)]
        um.run_batch("m", first)
        until = dt.datetime.now(dt.UTC)
        steady = um.drift_report("m", stage="Production", until=until)
        assert steady.dataset == ("train", 1) and steady.reference == "data"
        assert feature(steady, "x").status == "ok" and not steady.drifted
        um.run_batch("m", [{"x": float(v), "c": "z"} for v in rng.normal(2, 1, 500)])
        report = um.drift_report("m", version=1, since=until.isoformat())
        assert report.operations.calls == 500 and report.drifted
        assert feature(report, "c").unseen_share == 1.0
        x = next(p for p in report.predictions if p.name == "x")
        assert x.status == "alert" and report.baseline_calls == 500
        assert not any("overlaps" in note for note in report.notes)

    def test_without_a_dataset_and_with_one_given(self, rng: np.random.Generator) -> None:
        um = Umlaut("memory:")
        um.track_model(Echo(), "m")
        um.run_batch("m", [{"x": float(v)} for v in rng.normal(0, 1, 300)])
        bare = um.drift_report("m")
        assert bare.features == () and bare.dataset is None and bare.drifted is None
        assert any("no 'train' dataset" in note for note in bare.notes)
        assert bare.operations.calls == 300 and bare.predictions
        frame = pd.DataFrame({"x": rng.normal(3, 1, 1000)})
        given = um.drift_report("m", dataset=dataset_of(frame, loadable=False))
        assert given.reference == "profile" and feature(given, "x").status == "alert"
        assert any("could not be loaded" in note for note in given.notes)

    def test_bad_window(self) -> None:
        um = Umlaut("memory:")
        um.track_model(Echo(), "m")
        with pytest.raises(ConfigurationError, match="since must be"):
            um.drift_report("m", since="last tuesday")


class TestCommand:
    """``umlaut drift`` prints the report as a table, JSON or Markdown."""

    @pytest.fixture
    def invoke(self, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> Any:
        from click.testing import CliRunner

        from umlaut_core.cli import make_cli
        from umlaut_core.cli.context import CliContext

        um = Umlaut("memory:")
        frame = pd.DataFrame({"x": rng.normal(0, 1, 1000)})
        try:
            dv = um.track_dataset(frame, "train")
        except ImportError:  # pragma: no cover - without pyarrow
            pytest.skip("track_dataset needs pyarrow")
        um.track_model(Echo(), "m", datasets={"train": dv}, stage="Production")
        um.run_batch("m", [{"x": float(v)} for v in rng.normal(3, 1, 200)])
        monkeypatch.setattr(CliContext, "umlaut", lambda self: um)
        runner, cli = CliRunner(), make_cli()
        return lambda *args: runner.invoke(cli, ["drift", *args])

    def test_json(self, invoke: Any) -> None:
        got = invoke("m", "--stage", "Production", "--since", "2000-01-01", "--format", "json")
        assert got.exit_code == 0, got.output
        data = json.loads(got.output)
        assert data["drifted"] is True and data["operations"]["calls"] == 200
        assert data["window"]["since"] == "2000-01-01T00:00:00+00:00"

    def test_table_and_markdown(self, invoke: Any) -> None:
        table = invoke("m", "--version", "1")
        assert table.exit_code == 0, table.output
        assert "DRIFT (1 of 1 judged features alert)" in table.output
        assert "200 (200 input rows)" in table.output and "PSI" in table.output
        markdown = invoke("m", "--format", "markdown")
        assert markdown.exit_code == 0 and markdown.output.startswith("# Drift report: m v1")

    def test_usage_errors(self, invoke: Any) -> None:
        both = invoke("m", "--stage", "Production", "--version", "1")
        assert both.exit_code == 2 and "not both" in both.output
        missing = invoke("nope")
        assert missing.exit_code == 1 and "ModelNotFoundError" in missing.output
