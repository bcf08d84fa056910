"""Input checks of a pandas DataFrame's columns: one pandas operation per column, never
a Python loop per value.

:func:`check_frame_column` is the per-column step of
:mod:`umlaut_core.datasets.validation`'s frame check (which looks after the labels:
missing, unknown and duplicated columns). pandas is imported inside the functions,
only once a frame is checked.
"""

from __future__ import annotations

from typing import Any

from .coercions import Column
from .findings import Tally

__all__ = ["check_frame_column"]

#: logical type → pandas' inferred kinds a column may have as it is.
_FRAME_OK = {
    "integer": {"integer"}, "float": {"floating"}, "boolean": {"boolean"},
    "string": {"string"}, "date": {"date"}, "binary": {"bytes"},
    "category": {"string", "categorical", "integer", "boolean", "mixed-integer"},
    "datetime": {"datetime64", "datetime"}, "duration": {"timedelta64", "timedelta"},
}  # fmt: skip
_KIND_NAMES = {"i": "integer", "u": "integer", "f": "floating", "b": "boolean",
               "M": "datetime64", "m": "timedelta64"}  # fmt: skip


def check_frame_column(col: Column, s: Any, problems: Tally, findings: Tally) -> Any:
    """Check one column of a frame; return it, converted when a coercion applies."""
    import pandas as pd

    # numpy operations where the dtype is numpy's: a Series operation costs tens of
    # microseconds even on one row, and one-row frames are what a service sees.
    present = _flags(~pd.isna(s.to_numpy()) if _plain(s) else s.notna())
    nulls = len(s) - int(present.sum())
    if nulls and not col.nullable:
        problems.add_many("null", col.name, col.null_note, nulls, (~present).nonzero()[0][:5])
    if col.kind == "other" or nulls == len(s):
        return s
    new, bad, why = _frame_type(col, s, present)
    if why:
        text = f"column {col.name!r} must be {col.expected}, not {why}"
        flags = _flags(bad if bad is not None else present)
        at = flags.nonzero()[0][:5] if bad is not None else ()
        count = int(flags.sum()) if bad is not None else 1
        problems.add_many("wrong_type", col.name, text, count, at, s.iloc[flags].head(3).tolist())
        return s
    if col.low is not None:
        low, high = col.low, col.high
        values = new.to_numpy() if _plain(new) else new
        try:
            if getattr(new.dtype, "kind", "") == "M":
                low, high = pd.Timestamp(low), pd.Timestamp(high)
            if values is new:
                outside = _flags((new < low) | (new > high)) & present
            else:  # only the values present: None in an object array does not compare
                outside = present.copy()
                kept = values[present]
                outside[present] = (kept < low) | (kept > high)
        except (TypeError, ValueError):  # naive against aware, mixed objects: unknown
            outside = None
        if outside is not None:
            _found(findings, "out_of_range", col, col.range_note, new, outside)
    if col.categories is not None:
        text_values = new if _inferred(new) == "string" else new.astype(str)
        unseen = _flags(~text_values.isin(col.categories)) & present
        _found(findings, "unseen_category", col, col.category_note, new, unseen)
    return new


def _plain(s: Any) -> bool:
    """Whether a column's dtype is numpy's own (not a pandas extension dtype)."""
    return type(s.dtype).__module__.split(".")[0] == "numpy"


def _frame_type(col: Column, s: Any, present: Any) -> tuple[Any, Any, str]:
    """``(column, rows refused or None, why)``: ``why`` is empty when the column is
    accepted (``column`` converted when a coercion applies), else says what it is."""
    import pandas as pd

    inferred = _inferred(s, present)
    kind = col.kind
    if inferred in _FRAME_OK[kind]:
        return s, None, ""
    if kind == "string" and inferred == "categorical":
        if _inferred(s.cat.categories) in ("string", "empty"):
            return s, None, ""
    elif kind == "integer" and inferred in ("floating", "mixed-integer-float"):
        numeric = pd.to_numeric(s)
        fraction = (numeric % 1 != 0) & present
        if fraction.any():
            return s, fraction, "a float with a fractional part"
        # int64 holds no null: a float column with nulls stays float
        return (numeric.astype("int64") if bool(present.all()) else s), None, ""
    elif kind == "float" and inferred in ("integer", "mixed-integer-float"):
        numeric = pd.to_numeric(s)
        big = (numeric.abs() > 2**53) & present
        if big.any():  # rare: only these values are looked at one by one
            inexact = [float(v) != int(v) for v in numeric[big]]
            if any(inexact):
                flags = _flags(big).copy()  # to_numpy may give a read-only view
                flags[flags.nonzero()[0]] = inexact
                return s, flags, "an integer too large to be exactly a float"
        return numeric.astype("float64"), None, ""
    elif kind in ("datetime", "date") and inferred == "string":
        spelled = "ISO8601" if kind == "datetime" else "%Y-%m-%d"
        try:
            parsed = pd.to_datetime(s, format=spelled, errors="coerce")
        except ValueError:  # mixed time zones
            return s, None, "a column of ISO 8601 strings with mixed time zones"
        unparsed = parsed.isna() & present
        if unparsed.any():
            return s, unparsed, f"a string that is not an ISO 8601 {kind}"
        return (parsed if kind == "datetime" else parsed.dt.date), None, ""
    elif kind == "date" and inferred == "datetime64":
        timed = (s.dt.normalize() != s) & present
        return s, (timed if timed.any() else None), ("a datetime" if timed.any() else "")
    what = f"a column of dtype {str(s.dtype)!r}"
    return s, None, f"{what} holding {inferred} values" if s.dtype == object else what


def _inferred(s: Any, present: Any = None) -> str:
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        return "categorical"
    named = _KIND_NAMES.get(getattr(s.dtype, "kind", "O"))
    if named is not None:
        return named
    return str(pd.api.types.infer_dtype(s if present is None else s[present], skipna=True))


def _flags(mask: Any) -> Any:
    """A pandas mask as a numpy bool array (NA as False)."""
    return mask if type(mask).__module__ == "numpy" else mask.to_numpy(dtype=bool, na_value=False)


def _found(findings: Tally, kind: str, col: Column, text: str, s: Any, flags: Any) -> None:
    count = int(flags.sum())
    if count:
        values = s.iloc[flags].head(3).tolist()
        findings.add_many(kind, col.name, text, count, flags.nonzero()[0][:5], values)
