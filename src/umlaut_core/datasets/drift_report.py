"""The drift report: per-feature results, prediction drift, operations, the verdict.

Built by :func:`umlaut_core.datasets.monitor.build_drift_report` (``Umlaut.drift_report``);
the statistics and thresholds are explained in :mod:`umlaut_core.datasets.drift`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DriftReport", "FeatureDrift", "Operations", "Status", "Thresholds"]

Level = Literal["ok", "warn", "alert"]
#: ``ok``/``warn``/``alert`` for a judged feature; otherwise why it was not judged.
Status = Literal["ok", "warn", "alert", "too few rows", "no reference", "not compared"]
LEVELS: dict[str, int] = {"ok": 0, "warn": 1, "alert": 2}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Warn and alert levels of each metric (a value at a threshold reaches it)."""

    psi: tuple[float, float] = (0.1, 0.25)
    ks: tuple[float, float] = (0.1, 0.2)
    #: W1 in reference standard deviations.
    wasserstein: tuple[float, float] = (0.25, 0.5)
    unseen: tuple[float, float] = (0.05, 0.2)
    #: The absolute change of the null rate (0.05: five percentage points).
    null_rate: tuple[float, float] = (0.05, 0.2)
    #: Fewer current values than this (nulls included): ``too few rows``, not judged;
    #: the distribution metrics need this many non-null values.
    min_rows: int = 100

    def level(self, metric: str, value: float) -> Level:
        warn, alert = getattr(self, metric)
        return "alert" if value >= alert else "warn" if value >= warn else "ok"


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature (or one prediction series) of a drift report.

    ``rows`` counts current values including nulls, ``count`` the non-null ones.
    ``wasserstein`` is W1 in the feature's unit, ``wasserstein_norm`` in reference
    standard deviations. ``reasons`` names each metric at warn or alert.
    """

    name: str
    kind: Literal["numeric", "categorical", "other"]
    status: Status
    rows: int = 0
    count: int = 0
    role: Literal["feature", "prediction"] = "feature"
    psi: float | None = None
    ks: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None
    unseen_share: float | None = None
    out_of_range_share: float | None = None
    null_rate_reference: float | None = None
    null_rate_current: float | None = None
    null_rate_change: float | None = None
    reasons: tuple[str, ...] = ()
    note: str | None = None

    @property
    def judged(self) -> bool:
        """True when the feature had enough rows and a reference to be judged."""
        return self.status in LEVELS

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values."""
        return {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class Operations:
    """How the model was called in the window. Rates are shares of ``calls`` (the
    error rate counts refused inputs too); latencies cover every call (numpy's
    linear-interpolation percentiles of ``duration_ms``)."""

    calls: int = 0
    errors: int = 0
    #: Calls refused by the input checks (``error_type`` ending ``InputValidationError``).
    refused: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def refused_rate(self) -> float | None:
        return self.refused / self.calls if self.calls else None

    def to_dict(self) -> dict[str, Any]:
        """The counts, rates and latencies as JSON-ready values."""
        out = {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out.update(error_rate=self.error_rate, refused_rate=self.refused_rate)
        return out


@dataclass(frozen=True, slots=True)
class DriftReport:
    """A model version's audited inputs and outputs in a window, compared with the
    data it was trained on and with its first outputs.

    ``since``/``until`` are the window as asked (None: open); ``first_record`` and
    ``last_record`` when its records started. ``reference`` says what the features
    were compared with: ``data`` (the training data, loaded), ``profile`` (the stored
    profile alone: PSI on its deciles, no KS or Wasserstein) or None (no dataset).
    Prediction drift compares the window's outputs with the version's first
    ``baseline_calls`` successful calls (``baseline_first`` to ``baseline_last``).
    """

    model_name: str
    version: int
    since: dt.datetime | None
    until: dt.datetime | None
    features: tuple[FeatureDrift, ...] = ()
    predictions: tuple[FeatureDrift, ...] = ()
    operations: Operations = field(default_factory=Operations)
    dataset: tuple[str, int] | None = None
    reference: Literal["data", "profile"] | None = None
    #: Input rows read (a batch input holds several), and inputs that held no rows.
    rows: int = 0
    unreadable: int = 0
    first_record: dt.datetime | None = None
    last_record: dt.datetime | None = None
    baseline_calls: int = 0
    baseline_first: dt.datetime | None = None
    baseline_last: dt.datetime | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    notes: tuple[str, ...] = ()

    @property
    def judged(self) -> int:
        """How many features were judged (enough rows, a reference)."""
        return sum(1 for f in self.features if f.judged)

    @property
    def alerts(self) -> int:
        """How many features are at ``alert``."""
        return sum(1 for f in self.features if f.status == "alert")

    @property
    def drifted(self) -> bool | None:
        """True when at least half of the judged features alert; None if none was judged."""
        return None if not self.judged else 2 * self.alerts >= self.judged

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready values (times as ISO 8601 text)."""
        return {
            "model_name": self.model_name,
            "version": self.version,
            "window": {
                "since": _iso(self.since), "until": _iso(self.until),
                "first_record": _iso(self.first_record), "last_record": _iso(self.last_record),
            },
            "dataset": None if self.dataset is None
            else {"name": self.dataset[0], "version": self.dataset[1]},
            "reference": self.reference,
            "drifted": self.drifted, "judged": self.judged, "alerts": self.alerts,
            "rows": self.rows, "unreadable": self.unreadable,
            "operations": self.operations.to_dict(),
            "features": [f.to_dict() for f in self.features],
            "baseline": {
                "calls": self.baseline_calls, "first_record": _iso(self.baseline_first),
                "last_record": _iso(self.baseline_last),
            },
            "predictions": [p.to_dict() for p in self.predictions],
            "thresholds": {f.name: _json(getattr(self.thresholds, f.name))
                           for f in dataclasses.fields(self.thresholds)},
            "notes": list(self.notes),
        }  # fmt: skip

    def to_pandas(self) -> Any:
        """One row per feature, then one per prediction series (``role`` tells them
        apart); ``reasons`` joined with ``; ``. Needs pandas."""
        import pandas as pd

        rows = []
        for item in (*self.features, *self.predictions):
            row = item.to_dict()
            row["reasons"] = "; ".join(item.reasons)
            rows.append(row)
        columns = [f.name for f in dataclasses.fields(FeatureDrift)]
        return pd.DataFrame(rows, columns=columns)

    def to_markdown(self) -> str:
        """The report for people: the verdict, tables of features, predictions and
        operations, and the notes."""
        ops = self.operations
        window = f"{_when(self.since, 'the first call')} to {_when(self.until, 'now')}"
        out = [f"# Drift report: {_cell(self.model_name)} v{self.version}", ""]
        rows = f", {self.rows:,} input rows" if self.features else ""
        out.append(f"Window: {window}; {ops.calls:,} calls{rows}.")
        if self.dataset is not None:
            how = "training data" if self.reference == "data" else "stored profile only"
            out.append(f"Reference: dataset {_cell(self.dataset[0])} v{self.dataset[1]} ({how}).")
        out.append("")
        if self.drifted is None:
            out.append("**Verdict: not judged** (no feature had a reference and enough rows).")
        else:
            word = "drift" if self.drifted else "no drift"
            out.append(
                f"**Verdict: {word}**: {self.alerts} of {self.judged} judged features alert "
                f"(drift when at least half do)."
            )
        if self.features:
            out += ["", "## Features", ""]
            out += _table(self.features, unseen=True)
        if self.predictions:
            out += ["", "## Predictions", ""]
            out.append(f"Compared with the version's first {self.baseline_calls:,} successful "
                       f"calls ({_when(self.baseline_first, '?')} to "
                       f"{_when(self.baseline_last, '?')}).")  # fmt: skip
            out += ["", *_table(self.predictions, unseen=False)]
        out += ["", "## Operations", "",
                "| calls | errors | error rate | refused | refused rate | p50 ms | p95 ms |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                f"| {ops.calls:,} | {ops.errors:,} | {_pct(ops.error_rate)} | {ops.refused:,} "
                f"| {_pct(ops.refused_rate)} | {_num(ops.latency_p50_ms)} "
                f"| {_num(ops.latency_p95_ms)} |"]  # fmt: skip
        if self.notes:
            out += ["", "## Notes", "", *(f"- {_cell(n)}" for n in self.notes)]
        t = self.thresholds
        out += ["", f"Thresholds (warn/alert): PSI {t.psi[0]}/{t.psi[1]}, KS {t.ks[0]}/{t.ks[1]}, "
                f"Wasserstein {t.wasserstein[0]}/{t.wasserstein[1]} σ, unseen share "
                f"{t.unseen[0]}/{t.unseen[1]}, null rate change {t.null_rate[0]}/"
                f"{t.null_rate[1]}; fewer than {t.min_rows} rows: not judged."]  # fmt: skip
        return "\n".join(out) + "\n"


def _table(items: tuple[FeatureDrift, ...], *, unseen: bool) -> list[str]:
    head = "| name | status | rows | PSI | KS | Wasserstein (σ) |"
    rule = "| --- | --- | ---: | ---: | ---: | ---: |"
    if unseen:
        head += " unseen | out of range | null rate Δ |"
        rule += " ---: | ---: | ---: |"
    lines = [head, rule]
    for f in items:
        line = (f"| {_cell(f.name)} | {f.status} | {f.rows:,} | {_num(f.psi)} | {_num(f.ks)} "
                f"| {_num(f.wasserstein_norm)} |")  # fmt: skip
        if unseen:
            line += (f" {_pct(f.unseen_share)} | {_pct(f.out_of_range_share)} "
                     f"| {_pct(f.null_rate_change, signed=True)} |")  # fmt: skip
        lines.append(line)
    return lines


def _cell(text: str) -> str:
    # A pipe would end a Markdown table cell; a line break would end the row.
    return " ".join(str(text).split()).replace("|", "\\|")


def _num(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _when(value: dt.datetime | None, default: str) -> str:
    return default if value is None else value.isoformat(timespec="seconds")


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return list(value) if isinstance(value, tuple) else value
