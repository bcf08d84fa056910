"""Drift statistics and :class:`DriftReport`: numpy only (scipy is never needed).

Formulas, with *reference* the training data (or, for predictions, the model's first
audited outputs) and *current* the values audited in the report's window:

* **PSI** (population stability index) = Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ) over bins, with eᵢ
  the reference share and aᵢ the current share of bin i; both floored at
  :data:`PSI_EPSILON` (0.0001), so an empty bin counts as 0.01% instead of making the
  index infinite. Numeric bins are the reference deciles: the 9 inner edges of the 11
  quantile edges, duplicates merged (a value on an edge falls in the bin below it; the
  outer bins are open, so values outside the training range land there). Reference
  shares are counted on the training data when it can be loaded; from the profile
  alone each decile is 10%, and a decile whose edges coincide (ties) gives its 10% to
  the bin holding that value. Categorical bins are the reference's 20 most frequent
  values plus one ``other`` bucket for the rest, unseen values included.
* **KS** = sup |F_ref(x) − F_cur(x)| over the two empirical CDFs (equal to
  ``scipy.stats.ks_2samp(ref, cur).statistic``).
* **Wasserstein** W1 = ∫ |F_ref − F_cur| dx (``scipy.stats.wasserstein_distance``),
  reported raw and *normalised*: W1 divided by the reference's standard deviation
  (population, ddof=0), i.e. how many reference standard deviations the mass moved,
  comparable across features of any scale (None when the reference is constant).
* **Unseen share**: the share of current non-null values the reference never had.
* **Null rate change**: current null rate − reference null rate (a missing key is null).
* **Out-of-range share**: the share of current non-null values below the training
  minimum or above its maximum; for a categorical feature, the unseen share.

Thresholds (:class:`Thresholds`, warn / alert, a value at the threshold counts):
PSI 0.1 / 0.25; KS 0.1 / 0.2; normalised Wasserstein 0.25 / 0.5 (for a normal
feature a mean shift of a quarter / half a standard deviation, where KS is about
0.1 / 0.2 and PSI about 0.06 / 0.25); unseen share 0.05 / 0.2; |null rate change|
0.05 / 0.2. A feature's status is the worst level of its metrics; one with fewer than
100 current values (nulls included) is ``too few rows`` and not judged, and the
distribution metrics need 100 non-null values. The dataset drifts when at least half
of its judged features alert. Out-of-range share is reported, not judged: PSI's
outer bins already count those values.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .drift_report import LEVELS, DriftReport, FeatureDrift, Level, Operations, Status, Thresholds
from .records import ColumnProfile

__all__ = [
    "PSI_EPSILON",
    "TOP_CATEGORIES",
    "CategoricalReference",
    "DriftReport",
    "FeatureDrift",
    "NumericReference",
    "Operations",
    "Thresholds",
    "compare_blocks",
    "compare_categorical",
    "compare_numeric",
    "epoch_seconds",
    "label",
    "ks_statistic",
    "ks_wasserstein",
    "psi",
    "wasserstein_distance",
]

Floats = npt.NDArray[np.float64]

#: The floor of a bin's share in PSI, so an empty bin does not make it infinite.
PSI_EPSILON = 1e-4
#: How many of the most frequent reference values get a PSI bucket of their own.
TOP_CATEGORIES = 20


# -- statistics ----------------------------------------------------------------------


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """PSI of two histograms over the same bins (counts or shares; each is normalised)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


#: Pooled values handled per step of KS and Wasserstein: bounds their scratch memory.
_STEP = 65_536


def _pooled_ks_wasserstein(a: Floats, grid: Floats) -> tuple[float, float]:
    """KS and W1 of the sorted sample ``a`` and the sample ``b`` such that ``grid`` is
    the sorted pool of both: |F_a − F_b| at every pooled value, as scipy computes both,
    with F_b counted as F_pool − F_a so ``b`` itself need not be kept."""
    m, n = a.size, grid.size - a.size
    if not m or not n:
        raise ValueError("both samples need at least one value")
    # F_a at pooled value i counts the a-values whose first equal pooled value is at or
    # before i: one search per a-value and a running sum, instead of one search per
    # pooled value (the pool is the larger sample, ten times a reference's size).
    starts = np.searchsorted(grid, a, side="left")
    ties = bool(np.any(grid[1:] == grid[:-1]))
    ks = w1 = 0.0
    counted = 0  # a-values that start before this step
    for start in range(0, grid.size, _STEP):
        part = grid[start : start + _STEP]
        stop = start + part.size
        upto = int(np.searchsorted(starts, stop, side="left"))
        below_a = np.cumsum(np.bincount(starts[counted:upto] - start, minlength=part.size))
        below_a += counted
        counted = upto
        # F_pool at i is (i + 1) / (m + n) only at the last of a run of tied values; the
        # others are where the width to the next value is 0, so W1 takes nothing from
        # them, and KS looks at run ends only.
        gap = np.abs(below_a / m - (np.arange(start + 1, stop + 1) - below_a) / n)
        end = min(stop, grid.size - 1)  # no width after the last pooled value
        widths = np.diff(grid[start : end + 1])
        if ties:
            last = np.ones(part.size, dtype=bool)
            last[: widths.size] = part[: widths.size] != grid[start + 1 : end + 1]
            if last.any():
                ks = max(ks, float(gap[last].max()))
        else:
            ks = max(ks, float(gap.max()))
        if widths.size:
            # A plain sum, not np.dot: BLAS threads spin and cost more than they save here.
            w1 += float(np.sum(gap[: widths.size] * widths))
    return ks, w1


def ks_statistic(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """The two-sample Kolmogorov–Smirnov statistic (``ks_2samp(...).statistic``)."""
    return ks_wasserstein(reference, current)[0]


def wasserstein_distance(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """The 1-Wasserstein distance of two samples (``scipy.stats.wasserstein_distance``)."""
    return ks_wasserstein(reference, current)[1]


def ks_wasserstein(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """KS and W1 from one sort of the pooled samples."""
    a = np.sort(np.asarray(reference, dtype=np.float64))
    grid = np.concatenate((a, np.asarray(current, dtype=np.float64).ravel()))
    grid.sort()
    return _pooled_ks_wasserstein(a, grid)


def _ascending(values: Floats) -> Floats:
    """``values`` sorted: as given when they already are (a cheap check, no copy)."""
    if values.size < 2 or bool(np.all(values[:-1] <= values[1:])):
        return values
    return np.sort(values)


def epoch_seconds(value: Any) -> float | None:
    """A time (ISO 8601 text, ``datetime``, ``date``, or a number already in epoch
    seconds) as seconds since 1970 UTC; naive times are UTC. None if it is none."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# -- references ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NumericReference:
    """What a numeric feature is compared with: PSI bins (``edges``, the inner bin
    edges) and their expected shares, the sample for KS and Wasserstein (sorted; None
    from a profile alone), its standard deviation and the range."""

    edges: Floats
    expected: Floats
    sample: Floats | None = None
    std: float | None = None
    low: float | None = None
    high: float | None = None
    null_rate: float | None = None

    @classmethod
    def build(
        cls,
        profile: ColumnProfile | None = None,
        sample: npt.ArrayLike | None = None,
        *,
        rows: int | None = None,
    ) -> NumericReference | None:
        """From the training data's non-null values (``sample``) and/or the column's
        profile (its deciles and min/max; ``rows``, the dataset's row count, gives the
        null rate); None when neither says anything."""
        values = None if sample is None else _ascending(np.asarray(sample, dtype=np.float64))
        if values is not None and not values.size:
            values = None
        deciles: Floats | None = None
        if profile is not None and len(profile.quantiles) >= 2:
            deciles = np.asarray(profile.quantiles, dtype=np.float64)
        elif values is not None:
            deciles = np.quantile(values, np.linspace(0.0, 1.0, 11))
        if deciles is None:
            return None
        edges = np.unique(deciles[1:-1]) if deciles.size > 2 else np.unique(deciles[:1])
        if values is not None:
            expected = np.bincount(_bins(values, edges), minlength=edges.size + 1).astype(float)
        else:  # each decile's share goes to the bin holding its upper edge
            expected = np.bincount(_bins(deciles[1:], edges), minlength=edges.size + 1) / (
                deciles.size - 1
            )
        low = _bound(profile.min if profile else None, profile)
        high = _bound(profile.max if profile else None, profile)
        std = None
        if values is not None:
            std = float(values.std())
            low = float(values.min()) if low is None else low
            high = float(values.max()) if high is None else high
        return cls(edges, expected, values, std, low, high, _null_rate(profile, rows))


@dataclass(frozen=True, slots=True)
class CategoricalReference:
    """What a categorical feature is compared with: its bucket labels (the most
    frequent values), their expected shares with ``other`` last, the known values."""

    labels: tuple[str, ...]
    expected: Floats
    #: Every value the reference had; None when only the top values are known.
    known: frozenset[str] | None = None
    null_rate: float | None = None

    @classmethod
    def build(
        cls,
        profile: ColumnProfile | None = None,
        counts: Mapping[str, int] | None = None,
        *,
        rows: int | None = None,
        unlisted: int = 0,
    ) -> CategoricalReference | None:
        """From value counts of the training data (labels as :func:`label`; with
        ``unlisted`` values left out of them, so the known values are not all known),
        else from the profile's top values and category list (``rows``, the dataset's
        row count, gives the null rate and the share outside the top values)."""
        known: frozenset[str] | None
        if counts:
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            total = sum(counts.values()) + unlisted
            known = None if unlisted else frozenset(counts)
        elif profile is not None and profile.top:
            top = [(label(v), int(c)) for v, c in profile.top]
            total = max((rows or 0) - profile.null_count, sum(c for _, c in top))
            if profile.categories is not None:
                known = frozenset(profile.categories)
            elif sum(c for _, c in top) >= total:  # the top values are all of them
                known = frozenset(v for v, _ in top)
            else:
                known = None
        else:
            return None
        kept = top[:TOP_CATEGORIES]
        shares = [c for _, c in kept]
        shares.append(total - sum(shares))
        expected = np.asarray(shares, dtype=np.float64)
        return cls(tuple(v for v, _ in kept), expected, known, _null_rate(profile, rows))


def label(value: Any) -> str:
    """A categorical value as the text both sides are compared by (``True``, ``3``)."""
    return value if type(value) is str else str(value)


def _bins(values: Floats, edges: Floats) -> npt.NDArray[np.intp]:
    # side="left": a value equal to an edge counts in the bin that edge closes.
    return np.searchsorted(edges, values, side="left")


def _sorted_counts(values: Floats, edges: Floats) -> npt.NDArray[np.intp]:
    """``np.bincount(_bins(values, edges))`` of sorted ``values``, from positions alone."""
    # A value is in a bin up to edge k exactly when it is at most that edge.
    ends = np.searchsorted(values, edges, side="right")
    return np.diff(ends, prepend=0, append=values.size)


def _sorted_outside(values: Floats, low: float | None, high: float | None) -> int:
    """How many of the sorted ``values`` are below ``low`` or above ``high`` (0 unbounded)."""
    if low is None or high is None:
        return 0
    below = int(np.searchsorted(values, low, side="left"))
    return below + values.size - int(np.searchsorted(values, high, side="right"))


def _bound(value: Any, profile: ColumnProfile | None) -> float | None:
    if value is None or profile is None:
        return None
    if profile.logical_type in ("datetime", "date"):
        return epoch_seconds(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _null_rate(profile: ColumnProfile | None, rows: int | None) -> float | None:
    if profile is None or not rows:
        return None
    return float(profile.null_count) / rows


# -- comparisons ---------------------------------------------------------------------


@dataclass(slots=True)
class _Verdict:
    """The metrics of one feature as they are judged, worst level kept."""

    thresholds: Thresholds
    level: Level = "ok"
    reasons: list[str] = field(default_factory=list)

    def judge(self, metric: str, value: float | None, shown: str) -> None:
        if value is None:
            return
        got = self.thresholds.level(metric, abs(value))
        if got != "ok":
            self.reasons.append(f"{shown} {value:.3g} ({got})")
            if LEVELS[got] > LEVELS[self.level]:
                self.level = got

    def result(
        self,
        name: str,
        kind: Literal["numeric", "categorical"],
        rows: int,
        count: int,
        role: Literal["feature", "prediction"],
        metrics: dict[str, float | None],
        note: str | None = None,
    ) -> FeatureDrift:
        return FeatureDrift(
            name, kind, self.level, rows, count, role,
            reasons=tuple(self.reasons), note=note, **metrics,
        )  # fmt: skip


def _too_few(thresholds: Thresholds) -> str:
    return f"fewer than {thresholds.min_rows} non-null values: distribution not compared"


def _nulls(rows: int, count: int, reference: float | None) -> dict[str, float | None]:
    current = (rows - count) / rows if rows else None
    change = None if current is None or reference is None else current - reference
    return {
        "null_rate_reference": reference,
        "null_rate_current": current,
        "null_rate_change": change,
    }


def compare_numeric(
    name: str,
    reference: NumericReference | None,
    current: npt.ArrayLike,
    rows: int,
    thresholds: Thresholds | None = None,
    *,
    role: Literal["feature", "prediction"] = "feature",
) -> FeatureDrift:
    """Judge a numeric feature: ``current`` its non-null values, ``rows`` how many
    values it had in all (nulls included)."""
    values = np.asarray(current, dtype=np.float64).ravel()
    return compare_blocks(name, reference, [values], rows, thresholds, role=role)


def compare_blocks(
    name: str,
    reference: NumericReference | None,
    blocks: list[Floats],
    rows: int,
    thresholds: Thresholds | None = None,
    *,
    role: Literal["feature", "prediction"] = "feature",
) -> FeatureDrift:
    """:func:`compare_numeric` of values held in several arrays, which it takes: the
    list is emptied once they are pooled, so a large sample is never held twice."""
    thresholds = thresholds or Thresholds()
    count = sum(int(b.size) for b in blocks)
    nulls = _nulls(rows, count, reference.null_rate if reference else None)
    if reference is None or rows < thresholds.min_rows:
        status: Status = "no reference" if reference is None else "too few rows"
        return FeatureDrift(
            name, "numeric", status, rows, count, role, reasons=(), note=None, **nulls
        )
    verdict = _Verdict(thresholds)
    verdict.judge("null_rate", nulls["null_rate_change"], "null rate change")
    if count < thresholds.min_rows:
        return verdict.result(name, "numeric", rows, count, role, nulls, _too_few(thresholds))
    edges, low, high = reference.edges, reference.low, reference.high
    bounded = low is not None and high is not None
    ks = w1 = None
    if reference.sample is not None:
        sample = _ascending(reference.sample)
        grid = np.concatenate([sample, *blocks])
        blocks.clear()
        grid.sort()
        # Both sorted: a bin's count is a difference of two positions, and the current
        # values' count is the pool's less the sample's (no pass over every value).
        counts = _sorted_counts(grid, edges) - _sorted_counts(sample, edges)
        outside = _sorted_outside(grid, low, high) - _sorted_outside(sample, low, high)
        ks, w1 = _pooled_ks_wasserstein(sample, grid)
        del grid
    else:
        counts = np.zeros(edges.size + 1, dtype=np.int64)
        outside = 0
        for block in blocks:
            counts += np.bincount(_bins(block, edges), minlength=counts.size)
            if low is not None and high is not None:
                outside += int(np.count_nonzero((block < low) | (block > high)))
    metrics: dict[str, float | None] = {"psi": psi(reference.expected, counts)}
    if bounded:
        metrics["out_of_range_share"] = outside / count
    if ks is not None and w1 is not None:
        metrics.update(ks=ks, wasserstein=w1)
        if reference.std:
            metrics["wasserstein_norm"] = w1 / reference.std
    verdict.judge("psi", metrics["psi"], "PSI")
    verdict.judge("ks", metrics.get("ks"), "KS")
    verdict.judge("wasserstein", metrics.get("wasserstein_norm"), "Wasserstein")
    return verdict.result(name, "numeric", rows, count, role, {**nulls, **metrics})


def compare_categorical(
    name: str,
    reference: CategoricalReference | None,
    counts: Sequence[int],
    unseen: int,
    rows: int,
    thresholds: Thresholds | None = None,
    *,
    role: Literal["feature", "prediction"] = "feature",
) -> FeatureDrift:
    """Judge a categorical feature: ``counts`` of the current non-null values per
    reference bucket (``other`` last), ``unseen`` how many the reference never had."""
    thresholds = thresholds or Thresholds()
    count = int(sum(counts))
    nulls = _nulls(rows, count, reference.null_rate if reference else None)
    if reference is None or rows < thresholds.min_rows:
        status: Status = "no reference" if reference is None else "too few rows"
        return FeatureDrift(
            name, "categorical", status, rows, count, role, reasons=(), note=None, **nulls
        )
    verdict = _Verdict(thresholds)
    verdict.judge("null_rate", nulls["null_rate_change"], "null rate change")
    if count < thresholds.min_rows:
        return verdict.result(name, "categorical", rows, count, role, nulls, _too_few(thresholds))
    metrics: dict[str, float | None] = {"psi": psi(reference.expected, counts)}
    if reference.known is not None:
        metrics["unseen_share"] = metrics["out_of_range_share"] = unseen / count
    verdict.judge("psi", metrics["psi"], "PSI")
    verdict.judge("unseen", metrics.get("unseen_share"), "unseen share")
    return verdict.result(name, "categorical", rows, count, role, {**nulls, **metrics})
