"""Input checks: a model version's inputs against its table signature.

``make_checker(signature, policy)`` compiles a signature once per version; the
checker it returns runs once per input item, before the model. An item is one row (a
mapping), rows (a list of mappings, or of lists in column order, or a 2-D array), or
a pandas DataFrame (checked per column with pandas operations, never per value).

Problems (the item is refused as a whole, every problem listed): a missing column, an
unknown column (with a did-you-mean; never dropped), a wrong type, a null in a column
that is not nullable, an input that is not rows at all. Soft findings (recorded, never
blocking): a value outside the training ``[min, max]``, an unseen category.

Coercions, the only ones: an int (or numpy integer) for a ``float`` column becomes a
float when exactly representable (a frame's int column, when every value is within
2**53 in magnitude or exactly representable); a float for an ``integer`` column
becomes an int only when integral (a frame's float column is converted when it has no
nulls, else left float, since int64 holds no null); an ISO 8601 string for a
``datetime`` column becomes a ``datetime`` (``datetime.fromisoformat``; a frame's
column via ``pandas.to_datetime(format="ISO8601")``), and for a ``date`` column a
``date``. Never: a bool as a number or a number as a bool, a string as a number, a
number as a string, a ``date`` as a ``datetime``. A ``category`` column takes strings,
ints and bools (compared with the known categories by their text); a frame's
``datetime64`` column of midnights passes for a ``date`` column. Coerced items are
copies: the caller's objects are never changed.

Messages name columns and types, never input values unless ``verbose`` (then at most
three values per problem, each cut at 40 characters).

The per-type rules live in :mod:`.coercions`, the checks of a DataFrame's columns in
:mod:`.frame_checks`, and the tally of problems and findings (and their audit tag) in
:mod:`.findings`; this module holds :func:`make_checker` and the checks of rows.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ..exceptions import ConfigurationError, InputValidationError
from ..libraries import is_pandas
from .coercions import REFUSED, Column, compile_column, is_bool
from .findings import FINDINGS_TAG, Tally, findings_tags
from .frame_checks import check_frame_column
from .signature import check_signature, is_table_signature, suggest

__all__ = ["FINDINGS_TAG", "POLICIES", "Checker", "Policy", "make_checker"]

log = logging.getLogger("umlaut.inputs")

Policy = Literal["strict", "warn", "off"]
POLICIES = ("strict", "warn", "off")
#: What a checker returns: the item to run (maybe a coerced copy) and tags to record.
Checker = Callable[[Any], tuple[Any, dict[str, str] | None]]

_SHAPES = (
    "a row (a dict of column → value) or rows (a list of dicts or of lists in "
    "column order, or a pandas DataFrame)"
)


def make_checker(
    signature: Mapping[str, Any] | None,
    policy: Policy,
    verbose: bool = False,
    *,
    label: str | None = None,
) -> Checker | None:
    """The input checker of a version with ``signature``, or None when there is
    nothing to check (policy ``off``, no signature, a free-form signature).

    ``policy="strict"`` raises :class:`InputValidationError` listing every problem
    of an item; ``"warn"`` never raises: problems are logged (once per kind per
    checker) and recorded as findings, and the model runs. ``label`` (``"model 'iris'
    v3"``) names the version in messages.
    """
    if policy not in POLICIES:
        raise ConfigurationError(f"input policy must be one of {POLICIES}, not {policy!r}")
    if policy == "off" or not is_table_signature(signature):
        return None
    assert signature is not None
    columns = tuple(compile_column(c) for c in check_signature(signature)["columns"])
    return _TableChecker(columns, policy == "strict", verbose, label)


class _TableChecker:
    __slots__ = ("_by_name", "_columns", "_fast", "_label", "_logged", "_nulls", "_seen",
                 "_strict", "_verbose", "_width")  # fmt: skip

    def __init__(
        self, columns: tuple[Column, ...], strict: bool, verbose: bool, label: str | None
    ) -> None:
        self._columns, self._strict, self._verbose = columns, strict, verbose
        self._label = f" of {label}" if label else ""
        self._by_name = {c.name: c for c in columns}
        self._width = len(columns)
        # Per column: (name, exact type, low, high, categories); a float column gets an
        # infinite range so that NaN (a float, and a null) leaves the fast path.
        fast = []
        for c in columns:
            if c.exact is None:
                continue
            low, high = c.low, c.high
            if low is None and c.kind == "float":
                low, high = float("-inf"), float("inf")
            fast.append((c.name, c.exact, low, high, c.categories))
        self._fast = tuple(fast)
        # "other" columns take any type: only a null can refuse their value.
        self._nulls = tuple(c.name for c in columns if c.exact is None and not c.nullable)
        self._logged: set[str] = set()
        self._seen: dict[tuple[tuple[str, str, str], ...], dict[str, str]] = {}

    def __call__(self, item: Any) -> tuple[Any, dict[str, str] | None]:
        if type(item) is dict and self._clean(item):
            return item, None
        problems, findings = Tally(), Tally()
        checked = self._item(item, problems, findings)
        if problems.entries:
            rendered = problems.render(self._verbose)
            if self._strict:
                raise self._error([text for *_, text in rendered])
            self._log(rendered)
            return checked, findings_tags(rendered + findings.render(self._verbose))
        if not findings.entries:
            return checked, None
        return checked, self._findings_tags(findings)

    def _findings_tags(self, findings: Tally) -> dict[str, str]:
        """Tags for soft findings; the same findings of one row (drifted traffic: the
        same column out of range call after call) reuse their text."""
        if self._verbose or any(rows for _, rows, _ in findings.entries.values()):
            return findings_tags(findings.render(self._verbose))
        key = tuple(findings.entries)
        tags = self._seen.get(key)
        if tags is None:
            tags = findings_tags(findings.render(False))
            if len(self._seen) < 1_000:
                self._seen[key] = tags
        return dict(tags)

    def _clean(self, row: dict[Any, Any]) -> bool:
        """The fast path: the keys are the columns and every value is exactly its
        column's Python type, within range, among the known categories."""
        # As many keys as columns and every column found: the same set of keys,
        # without building one.
        if len(row) != self._width:
            return False
        try:
            for name, exact, low, high, cats in self._fast:
                v = row[name]
                if (
                    type(v) is not exact
                    or (low is not None and not low <= v <= high)
                    or (cats is not None and v not in cats)
                ):
                    return False
            for name in self._nulls:
                if _is_null(row[name]):
                    return False
        except (KeyError, TypeError):  # TypeError: a naive time against an aware bound
            return False
        return True

    def _item(self, item: Any, problems: Tally, findings: Tally) -> Any:
        if type(item) is dict or isinstance(item, Mapping):
            return self._row(item, None, problems, findings)
        if is_pandas(item, "DataFrame"):
            return self._frame(item, problems, findings)
        ndim = getattr(item, "ndim", None)
        if ndim == 2 and type(item).__module__ == "numpy":
            return self._array(item, problems, findings)
        if isinstance(item, (list, tuple)) and ndim is None:
            return self._rows(item, problems, findings)
        what = type(item).__qualname__
        problems.add("not_rows", "", f"the input must be {_SHAPES}, not {what}", None, item)
        return item

    def _rows(self, rows: list[Any] | tuple[Any, ...], problems: Tally, findings: Tally) -> Any:
        if rows and not any(isinstance(r, Mapping) or _is_sequence(r) for r in rows):
            problems.add(
                "not_rows", "",
                f"got a flat list of {len(rows)} values: is it one row or many? The input "
                f"must be {_SHAPES}", None,
            )  # fmt: skip
            return rows
        out: list[Any] | None = None
        for i, row in enumerate(rows):
            if type(row) is dict and self._clean(row):
                continue
            if isinstance(row, Mapping):
                new = self._row(row, i, problems, findings)
            elif _is_sequence(row):
                new = self._positional(row, i, problems, findings)
            else:
                what = type(row).__qualname__
                problems.add("not_rows", "", f"a row must be a dict or a list, not {what}", i)
                continue
            if new is not row:
                out = list(rows) if out is None else out
                out[i] = new
        return rows if out is None else out

    def _row(self, row: Mapping[Any, Any], at: int | None, problems: Tally, findings: Tally) -> Any:
        missing = [c.name for c in self._columns if c.name not in row]
        for name in missing:
            problems.add("missing_column", name, f"column {name!r} is missing", at)
        for key in row:
            if key not in self._by_name:
                self._unknown(str(key), missing, problems, at)
        out: dict[Any, Any] | None = None
        for col in self._columns:
            if col.name in row:
                v = row[col.name]
                new = self._value(col, v, at, problems, findings)
                if new is not v:
                    out = dict(row) if out is None else out
                    out[col.name] = new
        return row if out is None else out

    def _positional(self, row: Any, at: int, problems: Tally, findings: Tally) -> Any:
        if len(row) != len(self._columns):
            names = ", ".join(repr(c.name) for c in self._columns[:10])
            names += ", …" if len(self._columns) > 10 else ""
            text = f"a row has {len(row)} values; the signature has {len(self._columns)} ({names})"
            problems.add("row_width", "", text, at)
            return row
        values = list(row)
        new = [
            self._value(c, v, at, problems, findings)
            for c, v in zip(self._columns, values, strict=True)
        ]
        changed = any(a is not b for a, b in zip(new, values, strict=True))
        return new if changed else row

    def _array(self, array: Any, problems: Tally, findings: Tally) -> Any:
        """A 2-D array is checked as a frame of its columns, and run as it is."""
        if array.shape[1] != len(self._columns):
            text = f"the array has {array.shape[1]} columns; the signature has {len(self._columns)}"
            problems.add("row_width", "", text, None)
            return array
        try:
            import pandas as pd
        except ImportError:
            return array  # the width is all that can be told without pandas
        frame = pd.DataFrame(array, columns=[c.name for c in self._columns], copy=False)
        self._frame(frame, problems, findings)
        return array

    def _frame(self, frame: Any, problems: Tally, findings: Tally) -> Any:
        labels: dict[str, Any] = {}
        for label in frame.columns.tolist():  # an arrow-backed Index iterates slowly
            if str(label) in labels:
                text = f"column {str(label)!r} appears more than once"
                problems.add("duplicate_column", str(label), text, None)
            labels[str(label)] = label
        missing = [c.name for c in self._columns if c.name not in labels]
        for name in missing:
            problems.add("missing_column", name, f"column {name!r} is missing", None)
        for key in labels:
            if key not in self._by_name:
                self._unknown(key, missing, problems, None)
        changed = {}
        for col in self._columns:
            if col.name in labels and len(frame):
                series = frame[labels[col.name]]
                if series.ndim == 1:  # else a duplicated label, reported above
                    new = check_frame_column(col, series, problems, findings)
                    if new is not series:
                        changed[labels[col.name]] = new
        if not changed:
            return frame
        out = frame.copy(deep=False)
        for label, new in changed.items():
            out[label] = new
        return out

    def _value(self, col: Column, v: Any, at: int | None, problems: Tally, findings: Tally) -> Any:
        if type(v) is col.exact and v == v:  # v == v: NaN is a float, and a null
            new = v
        elif _is_null(v):
            if not col.nullable:
                problems.add("null", col.name, col.null_note, at)
            return v
        else:
            new = col.accept(v)
            if new is REFUSED:
                problems.add("wrong_type", col.name, _type_text(col, v), at, v)
                return v
        if col.low is not None:
            try:
                outside = not col.low <= new <= col.high
            except TypeError:  # naive against aware, numpy against Python time: unknown
                outside = False
            if outside:
                findings.add("out_of_range", col.name, col.range_note, at, v)
        if (
            col.categories is not None
            and (new if type(new) is str else str(new)) not in col.categories
        ):
            findings.add("unseen_category", col.name, col.category_note, at, v)
        return new

    def _unknown(self, key: str, missing: list[str], problems: Tally, at: int | None) -> None:
        # The column a typo stands for is usually missing too: look there first.
        hint = suggest(key, missing) or suggest(key, self._by_name)
        tip = f" (did you mean {hint!r}?)" if hint else ""
        problems.add("unknown_column", key, f"unknown column {key!r}{tip}", at)

    def _error(self, problems: list[str]) -> InputValidationError:
        shown = "; ".join(problems[:20])
        if len(problems) > 20:
            shown += f"; … and {len(problems) - 20} more"
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        return InputValidationError(
            f"the input does not match the signature{self._label} ({count}): {shown}", problems
        )

    def _log(self, rendered: list[tuple[str, str, int, str]]) -> None:
        for kind, _, _, text in rendered:
            if kind not in self._logged:
                self._logged.add(kind)
                log.warning(
                    "input does not match the signature%s: %s; the model runs (input "
                    "policy 'warn'); further %r problems are recorded, not logged",
                    self._label, text, kind,
                )  # fmt: skip


def _type_text(col: Column, v: Any) -> str:
    what = type(v).__qualname__
    if col.kind == "integer" and isinstance(v, numbers.Real) and not is_bool(v):
        what = "a float with a fractional part"
    elif col.kind == "float" and isinstance(v, numbers.Integral) and not is_bool(v):
        what = "an integer too large to be exactly a float"
    elif col.kind in ("datetime", "date") and isinstance(v, str):
        what = f"a string that is not an ISO 8601 {col.kind}"
    return f"column {col.name!r} must be {col.expected}, not {what}"


# -- one value, one row: the row checks' own tests (a frame never calls them) ---------


def _is_null(v: Any) -> bool:
    if v is None:
        return True
    kind = type(v)
    if kind is float:
        return bool(v != v)
    if kind.__name__ in ("NAType", "NaTType"):
        return True
    if kind.__module__ == "numpy":  # numpy floats, NaT of datetime64 / timedelta64
        try:
            return bool(v != v)
        except (TypeError, ValueError):
            return False
    return False


def _is_sequence(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return True
    return getattr(v, "ndim", None) == 1 and type(v).__module__ == "numpy"
