"""How inputs and outputs become JSON in the audit trail.

The encoding, documented in the README and checked by the conformance suite:

==========================  =================================================
Python value                JSON
==========================  =================================================
dict (str keys), list,      as is (tuples and sets become lists; sets sorted
tuple, set, str, int,       when their items sort)
float, bool, None
``datetime``/``date``/      ISO 8601 string (``datetime`` keeps its offset);
``time``, pandas            pandas ``NaT`` and ``NA`` are ``null``
``Timestamp``
``timedelta``, pandas       ISO 8601 duration as pydantic v2 writes it:
``Timedelta``               ``P1DT2H3M4.5S``, ``-PT1S``, ``PT0S``, whole years
                            of 365 days as ``Y``; nanoseconds kept
``Decimal``, ``UUID``,      string
``Path``
``Enum`` member             its value
numpy scalar / array        Python number / nested list; ``datetime64`` as ISO
                            8601 strings (``date`` for day units, seconds and a
                            6- or 9-digit fraction when non-zero otherwise),
                            ``timedelta64`` as ISO durations, ``NaT`` as null
pandas ``Series``           ``{str(label): value}`` when the labels and their
                            ``str()`` forms are unique; otherwise a list of
                            ``[label, value]`` pairs (labels encoded as values)
pandas ``DataFrame``        rows as ``{str(column): value}`` dicts: a list of
                            them for a default ``RangeIndex`` (0, 1, …,
                            n-1); else ``{str(label): row}`` when the
                            labels and their ``str()`` forms are unique;
                            otherwise a list of ``[label, row]`` pairs; a
                            duplicate column name is refused
dataclass instance          dict of its fields
==========================  =================================================

Refused, with :class:`InputEncodingError` before the model runs (or
:class:`OutputEncodingError` for a model's result), with a message naming the JSON
path (keys that are not identifiers are shown escaped, e.g. ``$['\\ud800']``): NaN and
infinities (JSON has no such numbers; pass None), ``bytes`` (encode them first, e.g.
base64), dict keys that are not strings, lone surrogates in any string, dict keys
included (the stored text is always valid UTF-8), integers too long for ``str()``
(Python's digit limit, 4300 by default; pass them as strings), DataFrames with
duplicate column names or with column labels whose ``str()`` forms collide, cyclic or
too deeply nested structures, and any other type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import sys
import uuid
from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import Any, cast

from .exceptions import EncodingError, InputEncodingError, OutputEncodingError
from .libraries import is_pandas

#: Ints up to this many bits (602 digits) fit Python's int-to-text digit limit at any
#: setting (``sys.set_int_max_str_digits`` accepts no limit below 640).
_SAFE_INT_BITS = 2_000

__all__ = ["MAX_DEPTH", "check_input", "encode_input", "encode_output", "to_jsonable"]

#: Deeper structures are refused rather than risking a RecursionError mid-write.
MAX_DEPTH = 100

_FLAT = frozenset({str, int, bool, type(None)})
_finite = math.isfinite
#: What can escape the C encoder (a huge int, a deep stack): never raised raw.
_ENCODER_ERRORS = (TypeError, ValueError, RecursionError, OverflowError)
# One encoder for every call: json.dumps with options builds a new one each time, and
# JSONEncoder.encode builds a new C encoder each time too (half the cost of a small
# record), so the C encoder is made once here. No circular check: values reach it flat
# (the fast path) or rebuilt by to_jsonable, which refuses cycles itself.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_py_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_c_encode: Any = (
    None
    if _c_make_encoder is None  # interpreters without the C accelerator
    else _c_make_encoder(
        None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)


def _dumps(value: Any) -> str:
    if _c_encode is None:  # pragma: no cover
        return _py_dumps(value)
    return "".join(_c_encode(value, 0))


def _flat_dict(value: dict[Any, Any]) -> bool:
    """A dict of string keys and plain JSON scalars (finite floats)."""
    for k, v in value.items():
        vt = type(v)
        if type(k) is not str or (vt not in _FLAT and (vt is not float or not _finite(v))):
            return False
    return True


def _flat_list(value: list[Any]) -> bool:
    """A list of plain JSON scalars and flat dicts: the rows a scoring server parses
    from a request, and the outputs of models that return a list of labels."""
    for v in value:
        vt = type(v)
        if (
            vt not in _FLAT
            and (vt is not float or not _finite(v))
            and (vt is not dict or not _flat_dict(v))
        ):
            return False
    return True


def _encoder(error: type[EncodingError], what: str) -> Callable[[Any], str]:
    """An encode function raising ``error``; the fast paths are inline because these
    run twice per audited call, where one more Python call is a measurable share."""

    def encode(value: Any) -> str:
        # Fast paths: plain scalars and flat dicts of them are the common case. (A
        # plain loop: all() over a generator costs a frame per key.) Anything they
        # cannot vouch for (a lone surrogate, in a key or a value; an int too long
        # for str()) falls through to to_jsonable, which names the bad value.
        kind = type(value)
        try:
            if kind is dict:
                for k, v in value.items():
                    vt = type(v)
                    if type(k) is not str or (
                        vt not in _FLAT
                        and (vt is not float or not _finite(v))
                        # one level deeper: a classifier's {"probabilities": {…}}
                        and (vt is not dict or not _flat_dict(v))
                    ):
                        break
                else:
                    text = _dumps(value)
                    if text.isascii() or not _has_lone_surrogate(text):
                        return text
            elif kind is list:
                if _flat_list(value):
                    text = _dumps(value)
                    if text.isascii() or not _has_lone_surrogate(text):
                        return text
            elif kind in _FLAT and kind is not str:
                return "null" if value is None else _dumps(value)
        except _ENCODER_ERRORS:
            pass
        try:
            text = _dumps(to_jsonable(value))
        except _Refused as exc:
            raise error(f"the {what} cannot be stored as JSON: {exc}") from None
        except _ENCODER_ERRORS as exc:  # a library raising mid-conversion, a deep stack
            raise error(f"the {what} cannot be stored as JSON: {exc!r}") from None
        if text.isascii() or not _has_lone_surrogate(text):
            return text
        raise error(  # pragma: no cover - safety net: to_jsonable checks every string
            f"the {what} cannot be stored as JSON: it holds a lone surrogate"
        )

    return encode


#: Encode a model input; raise ``InputEncodingError`` naming the bad value.
encode_input = _encoder(InputEncodingError, "input")
#: Encode a model output; raise ``OutputEncodingError`` naming the bad value.
encode_output = _encoder(OutputEncodingError, "output")


def check_input(value: Any) -> None:
    """Raise ``InputEncodingError`` exactly when :func:`encode_input` would.

    For checking a whole batch before any model runs, where the text itself is not
    kept (each item is encoded again just before its model runs): a flat dict of
    plain values, or a list of such dicts and plain values, is vouched for without
    building any text, at about a quarter of the cost of encoding it. Anything else
    is encoded.
    """
    kind = type(value)
    if kind is dict:
        if _vouched_dict(value):
            return
    elif kind is list:
        for item in value:
            if not (_vouched_dict(item) if type(item) is dict else _vouched_scalar(item)):
                break
        else:
            return
    encode_input(value)


def _vouched_scalar(v: Any) -> bool:
    """A plain JSON scalar that certainly encodes: ASCII text (no lone surrogate), a
    finite float, an int within the digit limit, a bool or None."""
    vt = type(v)
    if vt is str:
        return bool(v.isascii())
    if vt is float:
        return _finite(v)
    if vt is int:
        return bool(v.bit_length() <= _SAFE_INT_BITS)
    return vt is bool or v is None


def _vouched_dict(value: dict[Any, Any]) -> bool:
    for k, v in value.items():
        vt = type(v)
        if type(k) is not str or not k.isascii():
            return False
        if vt is str:
            if not v.isascii():
                return False
        elif vt is float:
            if not _finite(v):
                return False
        elif vt is int:
            if v.bit_length() > _SAFE_INT_BITS:
                return False
        elif vt is not bool and v is not None:
            return False
    return True


class _Refused(Exception):
    """Why a value has no JSON form. Its path is collected on the way out (each
    container adds its step), so values that encode fine never pay for one."""

    def __init__(self, problem: str, advice: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.advice = advice
        self.steps: list[str] = []

    def __str__(self) -> str:
        return f"{self.problem} at ${''.join(reversed(self.steps))}{self.advice}"


def _key_step(key: str) -> str:
    # repr() escapes lone surrogates and control characters: the message stays text.
    return f".{key}" if key.isidentifier() else f"[{key!r}]"


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` into plain JSON types following the documented encoding.

    Every string in the result, dict keys included, is valid Unicode (no lone
    surrogates), so the JSON text is valid UTF-8.
    """
    return _plain(value, 0, frozenset())


def _plain(value: Any, depth: int, seen: frozenset[int]) -> Any:
    if depth > MAX_DEPTH:
        raise _Refused(f"nesting deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if value.isascii() or not _has_lone_surrogate(value):
            return value
        raise _Refused("string", " is not valid Unicode (lone surrogate)")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value, depth + 1, seen)
    if isinstance(value, int):
        if value.bit_length() > 2000:  # near the smallest digit limit Python allows
            try:
                str(value)
            except ValueError:
                raise _Refused(
                    "integer",
                    f" has more than {sys.get_int_max_str_digits()} digits, more than"
                    " Python converts to text; pass it as a string",
                ) from None
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused(f"{value!r}", " has no JSON form; use None for missing")
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        # pandas.NaT subclasses datetime; its isoformat() is the string "NaT".
        return None if is_pandas(value, "NaTType") else value.isoformat()
    if isinstance(value, dt.timedelta):
        if is_pandas(value, "Timedelta"):  # nanoseconds
            return _iso_duration(cast(Any, value).value, 9)
        return _iso_duration(
            (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds, 6
        )
    if isinstance(value, (decimal.Decimal, uuid.UUID, PurePath)):
        if isinstance(value, decimal.Decimal) and not value.is_finite():
            raise _Refused(f"{value!r}", " has no JSON form")
        return _plain(str(value), depth, seen)  # a path may hold lone surrogates
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _Refused("bytes", "; decode or base64-encode them first")
    if id(value) in seen:
        raise _Refused("a cycle", ": the structure contains itself")
    seen = seen | {id(value)}
    depth += 1
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Refused(f"key {k!r}", " is not a string")
            if not k.isascii() and _has_lone_surrogate(k):
                refused = _Refused("the key", " is not valid Unicode (lone surrogate)")
                refused.steps.append(_key_step(k))
                raise refused
            try:
                out[k] = _plain(v, depth, seen)
            except _Refused as exc:
                exc.steps.append(_key_step(k))
                raise
        return out
    if isinstance(value, (list, tuple)):
        return _items(value, depth, seen)
    if isinstance(value, (set, frozenset)):
        items = _items(value, depth, seen, "[]")
        try:
            return sorted(items)
        except TypeError:
            return items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _plain(fields, depth, seen)
    module = type(value).__module__.partition(".")[0]
    if module == "numpy":
        converted = _from_numpy(value)
    elif module == "pandas":
        converted = _from_pandas(value, depth, seen)
    else:
        converted = _NOTHING
    if converted is not _NOTHING:
        return _plain(converted, depth, seen)
    raise _Refused(f"{type(value).__qualname__}", " has no JSON encoding")


def _items(values: Iterable[Any], depth: int, seen: frozenset[int], step: str = "") -> list[Any]:
    out = []
    for i, v in enumerate(values):
        try:
            out.append(_plain(v, depth, seen))
        except _Refused as exc:
            exc.steps.append(step or f"[{i}]")
            raise
    return out


_NOTHING = object()


# -- numpy and pandas, recognised by module so neither is imported here --------------


def _from_numpy(value: Any) -> Any:
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind == "M" or kind == "m":
        return _numpy_times(value, kind)
    if hasattr(value, "tolist"):
        return value.tolist()
    return _NOTHING


def _numpy_times(value: Any, kind: str) -> Any:
    """``datetime64`` / ``timedelta64`` scalars or arrays as ISO 8601 text (``tolist``
    would give integers for nanoseconds)."""
    np: Any = sys.modules["numpy"]
    array = np.asarray(value)
    unit, count = np.datetime_data(array.dtype)
    flat = array.ravel()
    if kind == "M":
        if unit in ("Y", "M", "W", "D"):
            texts = np.datetime_as_string(flat, unit="D").tolist()
        else:
            shown = "s" if unit in ("h", "m", "s", "generic") else unit
            texts = [_trim_fraction(t) for t in np.datetime_as_string(flat, unit=shown).tolist()]
        out = [None if t == "NaT" else t for t in texts]
    else:
        missing = np.isnat(flat).tolist()
        counts = flat.astype("int64").tolist()
        out = [
            None if nat else _numpy_duration(n * count, unit)
            for n, nat in zip(counts, missing, strict=True)
        ]
    if array.ndim == 0:
        return out[0]
    holder = np.empty(len(out), dtype=object)
    holder[:] = out
    return holder.reshape(array.shape).tolist()


def _trim_fraction(text: str) -> str:
    # Like datetime.isoformat() and pandas: no fraction when it is zero, else 6
    # digits, or 9 when there are nanoseconds (more for finer numpy units).
    head, dot, fraction = text.partition(".")
    if not dot or text == "NaT":
        return text
    digits = fraction.rstrip("0")
    if not digits:
        return head
    width = 6 if len(digits) <= 6 else 9 if len(digits) <= 9 else len(digits)
    return f"{head}.{digits.ljust(width, '0')}"


#: timedelta64 units as (digits of second fraction, multiplier).
_DURATION_UNITS = {
    "W": (0, 7 * 86_400),
    "D": (0, 86_400),
    "h": (0, 3600),
    "m": (0, 60),
    "s": (0, 1),
    "ms": (3, 1),
    "us": (6, 1),
    "ns": (9, 1),
    "ps": (12, 1),
    "fs": (15, 1),
    "as": (18, 1),
}


def _numpy_duration(amount: int, unit: str) -> str:
    if unit in ("Y", "M"):  # calendar units: no fixed length in seconds
        return f"-P{-amount}{unit}" if amount < 0 else f"P{amount}{unit}"
    if unit == "generic":
        raise _Refused("timedelta64 without a unit", "; give it one, e.g. 's'")
    digits, factor = _DURATION_UNITS[unit]
    return _iso_duration(amount * factor, digits)


def _iso_duration(total: int, digits: int) -> str:
    """ISO 8601 duration of ``total`` units of ``10**-digits`` seconds, written the
    way pydantic v2 writes a ``timedelta``: ``P1Y35DT2H3M4.5S``, ``-PT1S``, ``PT0S``
    (a year is 365 days, as there)."""
    sign = "-" if total < 0 else ""
    seconds, fraction = divmod(abs(total), 10**digits)
    days, seconds = divmod(seconds, 86_400)
    years, days = divmod(days, 365)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{sign}P"
    if years:
        text += f"{years}Y"
    if days:
        text += f"{days}D"
    if hours or minutes or seconds or fraction:
        text += "T"
        if hours:
            text += f"{hours}H"
        if minutes:
            text += f"{minutes}M"
        if seconds or fraction:
            text += str(seconds)
            if fraction:
                text += "." + f"{fraction:0{digits}d}".rstrip("0")
            text += "S"
    return text if text[-1] != "P" else text + "T0S"


def _from_pandas(value: Any, depth: int, seen: frozenset[int]) -> Any:
    name = type(value).__name__
    if name == "Series":
        return _labelled(value.index, value.tolist(), depth, seen)
    if name == "DataFrame":
        return _frame(value, depth, seen)
    if name in ("NaTType", "NAType"):
        return None
    return _NOTHING


def _labelled(index: Any, values: list[Any], depth: int, seen: frozenset[int]) -> Any:
    """``{str(label): value}`` when that keeps every label apart, else pairs."""
    labels = list(index)
    keys = [str(label) for label in labels]
    if index.is_unique and len(set(keys)) == len(keys):
        return dict(zip(keys, values, strict=True))
    pairs = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        try:
            pairs.append([_plain(label, depth, seen), _plain(v, depth, seen)])
        except _Refused as exc:
            exc.steps.append(f"[{i}]")
            raise
    return pairs


def _frame(frame: Any, depth: int, seen: frozenset[int]) -> Any:
    columns = frame.columns
    if not columns.is_unique:
        repeated = sorted({repr(c) for c in columns[columns.duplicated()]})
        raise _Refused(
            "DataFrame", f" has duplicate column names ({', '.join(repeated)}); rename them"
        )
    names = [str(c) for c in columns]
    if len(set(names)) != len(names):
        clashing = sorted(
            {repr(c) for c, n in zip(columns, names, strict=True) if names.count(n) > 1}
        )
        raise _Refused(
            "DataFrame",
            f" has column labels that are the same as text ({', '.join(clashing)}); rename them",
        )
    rows = [dict(zip(names, row, strict=True)) for row in frame.itertuples(index=False, name=None)]
    index = frame.index
    if type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1:
        return rows
    return _labelled(index, rows, depth, seen)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
