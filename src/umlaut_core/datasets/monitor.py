"""Drift reports from the audit trail (``Umlaut.drift_report``, ``umlaut drift``).

:func:`build_drift_report` resolves the version, finds the dataset it was trained on
(its ``train`` link, or ``dataset=``), loads that data for reference when it can, then
streams the window's audit records once (:mod:`umlaut_core.datasets.trail`): only the
columns a report reads where the tracker offers them (``Capability.SCAN_COLUMNS``),
else whole records, oldest first where the tracker can (``Capability.SCAN_RUNS``),
else newest first a page at a time. Nothing of a record is kept but the values
compared (:mod:`umlaut_core.datasets.drift_values`): per numeric feature its floats in
numpy arrays (8 bytes a value), per categorical feature counts per bucket, and one
float per call for latency, so 1,000,000 records of ten features hold about 90 MB.
The statistics then take one feature at a time and let its values go before the next.

Inputs are read as a model received them: one row (a dict of column → value), a list
of rows, or a DataFrame in its audit encoding (rows as dicts, in a list or keyed by
index label, see :mod:`umlaut_core.encoding`); any other input counts as
``unreadable``. A feature missing from a row, or a value of the wrong type, counts as
null. Every record of the window is read, refused and failed calls included: drift is
about what arrives. Records still waiting in the local spool are not in the tracker
yet (``Umlaut.flush()`` first).

Predictions come from successful calls: a scalar output is the series
``prediction``, a dict's scalar values are one series per key (at most 20 series), a
list holds one output per row. A series of numbers is compared like a numeric
feature (PSI on the baseline's deciles, KS, Wasserstein), one of strings or booleans
like a categorical one. The baseline is the version's first N successful calls, N the
number of successful calls in the window but at most :data:`BASELINE_MAX` (100,000:
enough that KS moves by less than 0.01 from sampling alone).
"""

from __future__ import annotations

import datetime as dt
import sys
from array import array
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._arguments import as_utc
from ..exceptions import BackendNotFoundError, ConfigurationError, UmlautError
from ..records import AuditRecord, RunColumns, RunQuery
from .drift import (
    TOP_CATEGORIES,
    CategoricalReference,
    DriftReport,
    FeatureDrift,
    NumericReference,
    Operations,
    Thresholds,
    compare_blocks,
    compare_categorical,
)
from .drift_values import (
    CHUNK,
    MAX_SERIES,
    Labels,
    Numbers,
    Outputs,
    input_rows,
    outputs_of,
    parse_json,
    widen,
)
from .records import ColumnProfile, DatasetVersion
from .trail import columns_of, first_records, scan_columns, scan_records

if TYPE_CHECKING:
    from .._api import Umlaut

__all__ = ["BASELINE_MAX", "DriftMonitor", "build_drift_report", "first_records", "scan_records"]

#: The most successful calls the prediction baseline holds.
BASELINE_MAX = 100_000
#: The most distinct training values of a categorical feature kept to spot unseen ones.
MAX_KNOWN = 100_000
_NUMERIC = frozenset({"integer", "float", "datetime", "date"})
_TIMES = frozenset({"datetime", "date"})
_CATEGORICAL = frozenset({"boolean", "string", "category"})


# -- the monitor ---------------------------------------------------------------------


class DriftMonitor:
    """Compares audit records with a training dataset: feed the window's records to
    :meth:`add`, the version's first calls to :meth:`add_baseline`, then call
    :meth:`report`. ``data`` is the training data as a DataFrame (None: the stored
    profile alone, so PSI on its deciles and no KS or Wasserstein)."""

    def __init__(
        self,
        dataset: DatasetVersion | None = None,
        data: Any = None,
        *,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.dataset = dataset
        self.reference: Literal["data", "profile"] | None = (
            None if dataset is None else "data" if data is not None else "profile"
        )
        self._features: list[tuple[ColumnProfile, Any, Numbers | Labels | None]] = []
        for profile in dataset.features if dataset is not None else ():
            column = None
            if data is not None and profile.name in data.columns:
                column = data[profile.name]
            self._features.append(_feature(profile, column, dataset.rows if dataset else None))
        self._window, self._baseline = Outputs(), Outputs()
        self._ops = [0, 0, 0]  # calls, errors, refused
        self._durations = array("d")
        self._rows = self._unreadable = 0
        self._span: list[dt.datetime] = []
        self._baseline_span: list[dt.datetime] = []
        self._results: (
            tuple[Operations, tuple[FeatureDrift, ...], tuple[FeatureDrift, ...]] | None
        ) = None

    @property
    def predicted(self) -> int:
        """Successful calls seen in the window (what sizes the baseline)."""
        return self._window.calls

    def add(self, records: Iterable[AuditRecord]) -> None:
        """Read the window's records (any order); none of them is kept."""
        self.add_columns(columns_of(records))

    def add_columns(self, chunks: Iterable[RunColumns]) -> None:
        """:meth:`add` for records given as their columns (``scan_columns``)."""
        self._check_open()
        sinks = [
            (p.name, itemgetter(p.name), sink) for p, _, sink in self._features if sink is not None
        ]
        for columns in chunks:
            status = columns.status
            self._ops[0] += len(status)
            if failed := status.count("error"):
                self._ops[1] += failed
                self._ops[2] += sum(
                    1 for s, t in zip(status, columns.error_type, strict=True)
                    if s == "error" and t is not None and t.endswith("InputValidationError")
                )  # fmt: skip
            self._durations.extend(columns.duration_ms)
            widen(self._span, columns.earliest, columns.latest)
            inputs, outputs = columns.inputs_json, columns.output_json
            # Slices of CHUNK: parsing stays bounded, and outputs are grouped as whole
            # records are (a new prediction series takes its kind from its first group).
            for start in range(0, len(status), CHUNK):
                end = start + CHUNK
                if sinks:
                    self._add_inputs(inputs[start:end], sinks)
                self._window.add(outputs_of(status[start:end], outputs[start:end]))

    def _add_inputs(
        self, texts: Sequence[str], sinks: list[tuple[str, Any, Numbers | Labels]]
    ) -> None:
        rows, unreadable = input_rows(parse_json(texts))
        self._rows += len(rows)
        self._unreadable += unreadable
        for name, pick, sink in sinks:
            try:  # itemgetter through map runs no bytecode per row; keys are rarely missing
                column = list(map(pick, rows))
            except KeyError:
                column = [row.get(name) for row in rows]
            sink.add(column)

    def add_baseline(self, records: Iterable[AuditRecord]) -> None:
        """Read the version's first successful calls, the reference of predictions."""
        self.add_baseline_columns(columns_of(records))

    def add_baseline_columns(self, chunks: Iterable[RunColumns]) -> None:
        """:meth:`add_baseline` for records given as their columns (``scan_columns``)."""
        self._check_open()
        for columns in chunks:
            widen(self._baseline_span, columns.earliest, columns.latest)
            status, outputs = columns.status, columns.output_json
            for start in range(0, len(status), CHUNK):
                end = start + CHUNK
                self._baseline.add(outputs_of(status[start:end], outputs[start:end]))

    def _check_open(self) -> None:
        if self._results is not None:
            raise RuntimeError("this DriftMonitor has reported; start a new one to read more")

    def report(
        self,
        model_name: str,
        version: int,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        notes: Sequence[str] = (),
    ) -> DriftReport:
        """The report of everything read. The first call hands the collected values to
        the statistics and lets them go, one feature at a time (memory stays what the
        scan needed): the monitor reads nothing more after it."""
        if self._results is None:
            self._results = self._operations(), self._compare_features(), self._predictions()
        ops, features, predictions = self._results
        out = list(notes)
        if self._baseline_span and self._span and self._baseline_span[1] >= self._span[0]:
            out.append(
                "the window overlaps the prediction baseline (the version's first calls): "
                "prediction drift compares the window partly with itself"
            )
        skipped = sorted(self._window.skipped)
        if skipped:
            out.append(f"outputs have more than {MAX_SERIES} keys; not compared: {skipped[:5]}")
        span: list[Any] = self._span or [None, None]
        base: list[Any] = self._baseline_span or [None, None]
        return DriftReport(
            model_name, version, since, until, features, predictions, ops,
            dataset=None if self.dataset is None else (self.dataset.name, self.dataset.version),
            reference=self.reference, rows=self._rows, unreadable=self._unreadable,
            first_record=span[0], last_record=span[1], baseline_calls=self._baseline.calls,
            baseline_first=base[0], baseline_last=base[1], thresholds=self.thresholds,
            notes=tuple(out),
        )  # fmt: skip

    def _operations(self) -> Operations:
        durations = np.frombuffer(self._durations, dtype=np.float64)
        p50 = p95 = None
        if durations.size:
            p50, p95 = (float(p) for p in np.percentile(durations, [50, 95]))
        del durations
        self._durations = array("d")
        calls, errors, refused = self._ops
        return Operations(calls, errors, refused, p50, p95)

    def _compare_features(self) -> tuple[FeatureDrift, ...]:
        th, out = self.thresholds, []
        for profile, ref, sink in self._features:
            if isinstance(sink, Numbers):
                out.append(compare_blocks(profile.name, ref, sink.take(), sink.rows, th))
            elif isinstance(sink, Labels):
                got = compare_categorical(
                    profile.name, ref, sink.buckets, sink.unseen, sink.rows, th
                )
                out.append(got)
            else:
                why = f"logical type {profile.logical_type} is not compared"
                out.append(FeatureDrift(profile.name, "other", "not compared", note=why))
        return tuple(out)

    def _predictions(self) -> tuple[FeatureDrift, ...]:
        th, out = self.thresholds, []
        for key, sink in self._window.series.items():
            base = self._baseline.series.get(key)
            if isinstance(sink, Numbers):
                blocks = base.take() if isinstance(base, Numbers) else []
                sample = np.concatenate(blocks) if blocks else None
                del blocks
                ref = NumericReference.build(sample=sample)
                del sample
                out.append(compare_blocks(key, ref, sink.take(), sink.rows, th, role="prediction"))
            else:
                cref = CategoricalReference.build(
                    counts=base.by_label if isinstance(base, Labels) else None
                )
                buckets, unseen = sink.against(cref) if cref else ([], 0)
                got = compare_categorical(key, cref, buckets, unseen, sink.rows, th,
                                          role="prediction")  # fmt: skip
                out.append(got)
        return tuple(out)


def _feature(
    profile: ColumnProfile, column: Any, rows: int | None
) -> tuple[ColumnProfile, Any, Numbers | Labels | None]:
    """A feature's reference (from its data column when there is one) and its sink."""
    if profile.logical_type in _NUMERIC:
        sample = None if column is None else _sample(column, profile.logical_type in _TIMES)
        ref = NumericReference.build(profile, sample, rows=rows)
        return profile, ref, Numbers(times=profile.logical_type in _TIMES)
    if profile.logical_type in _CATEGORICAL:
        counts, unlisted = None, 0
        if column is not None:
            found = column.dropna().astype(str).value_counts()
            if len(found) > MAX_KNOWN:  # an id-like column: keep its top values only
                unlisted = int(found.iloc[TOP_CATEGORIES:].sum())
                found = found.iloc[:TOP_CATEGORIES]
            counts = {str(k): int(v) for k, v in found.items()}
        cref = CategoricalReference.build(profile, counts, rows=rows, unlisted=unlisted)
        return profile, cref, Labels(cref) if cref is not None else Labels()
    return profile, None, None


def _sample(column: Any, times: bool) -> Any:
    """A DataFrame column's non-null values as floats (times as epoch seconds)."""
    import pandas as pd

    if times:
        stamps = pd.to_datetime(column, utc=True, errors="coerce").dropna()
        return ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
            dtype=np.float64
        )
    return pd.to_numeric(column, errors="coerce").dropna().to_numpy(dtype=np.float64)


# -- the facade's entry point --------------------------------------------------------


def build_drift_report(
    umlaut: Umlaut,
    model_name: str,
    *,
    stage: str | None = None,
    version: int | None = None,
    since: Any = None,
    until: Any = None,
    dataset: DatasetVersion | None = None,
    thresholds: Thresholds | None = None,
) -> DriftReport:
    """The drift report of a version (``version``, else ``stage``, else the latest)
    over ``since`` (inclusive) to ``until`` (exclusive; datetimes or ISO 8601 text,
    UTC when naive; None: open), against ``dataset`` or the version's ``train``
    dataset. Without either, only predictions and operations are reported."""
    mv = umlaut.get_version(model_name, version=version, stage=stage)
    notes: list[str] = []
    if dataset is None:
        dataset = _training_dataset(umlaut, mv.name, mv.version, notes)
    data = None if dataset is None else _load(dataset, notes)
    monitor = DriftMonitor(dataset, data, thresholds=thresholds)
    del data  # the references hold what they need; the frame can go before the scan
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:  # its allocator keeps freed pages for reuse; the scan needs none
        arrow.default_memory_pool().release_unused()
    window = RunQuery(
        model_name=mv.name, version=mv.version,
        since=_instant(since, "since"), until=_instant(until, "until"),
    )  # fmt: skip
    tracker = umlaut.tracker
    monitor.add_columns(scan_columns(tracker, window))
    wanted = min(monitor.predicted, BASELINE_MAX)
    if wanted:
        first = RunQuery(model_name=mv.name, version=mv.version, status="ok")
        monitor.add_baseline_columns(scan_columns(tracker, first, wanted))
    return monitor.report(mv.name, mv.version, since=window.since, until=window.until,
                          notes=notes)  # fmt: skip


def _training_dataset(
    umlaut: Umlaut, name: str, version: int, notes: list[str]
) -> DatasetVersion | None:
    try:
        links = umlaut.dataset_links(model=(name, version))
    except BackendNotFoundError:
        notes.append("the backend keeps no datasets: input features are not compared")
        return None
    train = [link for link in links if link.context == "train"]
    if not train:
        notes.append(f"{name} v{version} has no 'train' dataset: input features are not "
                     f"compared (pass dataset=)")  # fmt: skip
        return None
    return umlaut.get_dataset(train[-1].dataset_name, train[-1].dataset_version)


def _load(dataset: DatasetVersion, notes: list[str]) -> Any:
    try:
        return dataset.load()
    except (ImportError, OSError, ValueError, UmlautError) as exc:
        notes.append(
            f"the training data of {dataset.name} v{dataset.version} could not be loaded "
            f"({type(exc).__name__}: {exc}): numeric features use PSI on the stored "
            f"deciles, without KS or Wasserstein"
        )
        return None


def _instant(value: Any, name: str) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return as_utc(value)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            return as_utc(dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise ConfigurationError(
        f"{name} must be a datetime or ISO 8601 text (2026-03-01T09:30), not {value!r:.60}"
    )
