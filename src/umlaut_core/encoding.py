"""How inputs and outputs become JSON in the audit trail.

The encoding, documented in the README and checked by the conformance suite:

==========================  =================================================
Python value                JSON
==========================  =================================================
dict (str keys), list,      as is (tuples and sets become lists; sets sorted
tuple, set, str, int,       when their items sort)
float, bool, None
``datetime``/``date``/      ISO 8601 string (``datetime`` keeps its offset)
``time``
``Decimal``, ``UUID``,      string
``Path``, ``Enum`` value    the value (an ``Enum`` member encodes its value)
numpy scalar / array        Python number / nested list
pandas Series / DataFrame   ``{index: value}`` / list of row dicts
dataclass instance          dict of its fields
==========================  =================================================

Refused, with :class:`InputEncodingError` before the model runs (or
:class:`OutputEncodingError` for a model's result): NaN and infinities (JSON has no
such numbers; pass None), ``bytes`` (encode them first, e.g. base64), dict keys that
are not strings, cyclic or too deeply nested structures, and any other type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import uuid
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from .exceptions import EncodingError, InputEncodingError, OutputEncodingError

__all__ = ["MAX_DEPTH", "encode_input", "encode_output", "to_jsonable"]

#: Deeper structures are refused rather than risking a RecursionError mid-write.
MAX_DEPTH = 100

_FLAT = frozenset({str, int, bool, type(None)})
_finite = math.isfinite
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


def _encoder(error: type[EncodingError], what: str) -> Callable[[Any], str]:
    """An encode function raising ``error``; the fast paths are inline because these
    run twice per audited call, where one more Python call is a measurable share."""

    def encode(value: Any) -> str:
        # Fast paths: plain scalars and flat dicts of them are the common case. (A
        # plain loop: all() over a generator costs a frame per key.)
        kind = type(value)
        if kind is dict:
            for k, v in value.items():
                vt = type(v)
                if type(k) is not str or (vt not in _FLAT and (vt is not float or not _finite(v))):
                    break
            else:
                text = _dumps(value)
                if text.isascii() or not _has_lone_surrogate(text):
                    return text
        elif kind in _FLAT and kind is not str:
            return "null" if value is None else _dumps(value)
        try:
            return _dumps(to_jsonable(value))
        except _Refused as exc:
            raise error(f"the {what} cannot be stored as JSON: {exc}") from None
        except (TypeError, ValueError, RecursionError) as exc:  # pragma: no cover - safety net
            raise error(f"the {what} cannot be stored as JSON: {exc}") from None

    return encode


#: Encode a model input; raise ``InputEncodingError`` naming the bad value.
encode_input = _encoder(InputEncodingError, "input")
#: Encode a model output; raise ``OutputEncodingError`` naming the bad value.
encode_output = _encoder(OutputEncodingError, "output")


class _Refused(Exception):
    pass


def to_jsonable(
    value: Any, _path: str = "$", _depth: int = 0, _seen: frozenset[int] = frozenset()
) -> Any:
    """Convert ``value`` into plain JSON types following the documented encoding."""
    if _depth > MAX_DEPTH:
        raise _Refused(f"nesting deeper than {MAX_DEPTH} levels at {_path}")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        if isinstance(value, str) and _has_lone_surrogate(value):
            raise _Refused(f"string at {_path} is not valid Unicode (lone surrogate)")
        return value
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        return int(value)
    if isinstance(value, float) and not isinstance(value, enum.Enum):
        if not math.isfinite(value):
            raise _Refused(f"{value!r} at {_path} has no JSON form; use None for missing")
        return float(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, _path, _depth + 1, _seen)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID, PurePath)):
        if isinstance(value, decimal.Decimal) and not value.is_finite():
            raise _Refused(f"{value!r} at {_path} has no JSON form")
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _Refused(f"bytes at {_path}; decode or base64-encode them first")
    if id(value) in _seen:
        raise _Refused(f"a cycle at {_path}: the structure contains itself")
    seen = _seen | {id(value)}
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Refused(f"key {k!r} at {_path} is not a string")
            out[k] = to_jsonable(v, f"{_path}.{k}", _depth + 1, seen)
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{_path}[{i}]", _depth + 1, seen) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(v, f"{_path}[]", _depth + 1, seen) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return to_jsonable(fields, _path, _depth + 1, seen)
    converted = _from_array_libraries(value)
    if converted is not _NOTHING:
        return to_jsonable(converted, _path, _depth + 1, seen)
    raise _Refused(f"{type(value).__qualname__} at {_path} has no JSON encoding")


_NOTHING = object()


def _from_array_libraries(value: Any) -> Any:
    """numpy and pandas values, recognised by module so neither is imported here."""
    module = type(value).__module__.split(".", 1)[0]
    if module == "numpy":
        if hasattr(value, "tolist"):
            return value.tolist()
    elif module == "pandas":
        name = type(value).__name__
        if name == "DataFrame":
            return value.to_dict(orient="records")
        if name == "Series":
            return {str(k): v for k, v in value.to_dict().items()}
        if name == "Timestamp":
            return value.isoformat()
        if name in {"NaTType", "NAType"}:
            return None
    return _NOTHING


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
