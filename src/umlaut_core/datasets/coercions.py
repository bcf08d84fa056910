"""What each logical type accepts, and the coercions: the input checks' per-value rules.

:data:`ACCEPT` maps a logical type to its acceptor (a value → the value, a coerced
copy, or :data:`REFUSED`), what a message says the type must be, and the one Python
type the checker's fast path takes as it is. :func:`compile_column` binds them to one
column of a signature. The rules themselves are listed in
:mod:`umlaut_core.datasets.validation`.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .signature import parse_bound

__all__ = ["ACCEPT", "REFUSED", "Column", "compile_column", "is_bool"]

#: What an acceptor returns for a value it refuses.
REFUSED: Any = object()


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a signature, compiled for checking."""

    name: str
    kind: str
    nullable: bool
    low: Any
    high: Any
    categories: frozenset[str] | None
    accept: Callable[[Any], Any]
    expected: str
    exact: type | None  # the one Python type the fast path accepts
    # Messages, written once: a slow path taken on every call must stay cheap.
    null_note: str
    range_note: str
    category_note: str


def compile_column(spec: Mapping[str, Any]) -> Column:
    """The :class:`Column` of one checked column spec of a table signature."""
    name, kind, cats = spec["name"], spec["type"], spec["categories"]
    low, high, range_note = spec["min"], spec["max"], ""
    if low is not None and high is not None:
        low, high = parse_bound(low, kind), parse_bound(high, kind)
        shown = ", ".join(b.isoformat() if isinstance(b, dt.date) else repr(b) for b in (low, high))
        range_note = f"column {name!r} has a value outside the training range [{shown}]"
    accept, expected, exact = ACCEPT[kind]
    return Column(
        name, kind, spec["nullable"], low, high,
        frozenset(cats) if cats is not None else None, accept, expected, exact,
        f"column {name!r} is not nullable but has a null", range_note,
        f"column {name!r} has a value not among its {len(cats or ())} known categories",
    )  # fmt: skip


def is_bool(v: Any) -> bool:
    """Whether ``v`` is a bool, Python's or numpy's."""
    return type(v) is bool or (
        type(v).__name__ in ("bool_", "bool") and type(v).__module__ == "numpy"
    )


def _integer(v: Any) -> Any:
    if type(v) is int:
        return v
    if is_bool(v):
        return REFUSED
    if isinstance(v, numbers.Integral):
        return v
    if isinstance(v, numbers.Real):
        f = float(v)
        return int(f) if f.is_integer() else REFUSED
    return REFUSED


def _float(v: Any) -> Any:
    kind = type(v)
    if kind is float:
        return v
    if kind is not int:
        if is_bool(v) or not isinstance(v, numbers.Real):
            return REFUSED
        if not isinstance(v, numbers.Integral):
            return v  # numpy floats, Fraction: numbers already
        v = int(v)
    try:
        f = float(v)
    except OverflowError:
        return REFUSED
    return f if int(f) == v else REFUSED


def _numpy_time(v: Any, name: str) -> bool:
    return type(v).__name__ == name and type(v).__module__ == "numpy"


def _datetime(v: Any) -> Any:
    if isinstance(v, dt.datetime) or _numpy_time(v, "datetime64"):
        return v
    if isinstance(v, str):
        try:
            return dt.datetime.fromisoformat(v)
        except ValueError:
            return REFUSED
    return REFUSED


def _date(v: Any) -> Any:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            return REFUSED
    return REFUSED


def _only(*kinds: type) -> Callable[[Any], Any]:
    def accept(v: Any) -> Any:
        return v if isinstance(v, kinds) else REFUSED

    return accept


def _category(v: Any) -> Any:
    return v if isinstance(v, (str, numbers.Integral)) or is_bool(v) else REFUSED


def _duration(v: Any) -> Any:
    return v if isinstance(v, dt.timedelta) or _numpy_time(v, "timedelta64") else REFUSED


#: logical type → (acceptor, what a message says it must be, the fast path's type).
ACCEPT: dict[str, tuple[Callable[[Any], Any], str, type | None]] = {
    "integer": (_integer, "an integer (a float only when integral)", int),
    "float": (_float, "a number", float),
    "boolean": (lambda v: v if is_bool(v) else REFUSED, "a bool", bool),
    "string": (_only(str), "a string", str),
    "category": (_category, "a category (a string, int or bool)", str),
    "datetime": (_datetime, "a datetime or an ISO 8601 string", dt.datetime),
    "date": (_date, "a date or an ISO 8601 date string", dt.date),
    "duration": (_duration, "a timedelta", dt.timedelta),
    "binary": (_only(bytes, bytearray), "bytes", bytes),
    "other": (lambda v: v, "any value", None),
}
