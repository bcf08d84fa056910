"""Bounded, JSON-ready summaries of values: what the step decorator records of a
step's arguments (as params) and of its return value (as a tag).

A summary is small whatever it summarises, and never fails (a value whose summary
cannot be made is described by its type and the error):

==============================  ====================================================
value                           summary
==============================  ====================================================
None, bool, int, float          as is; NaN and ±inf as ``"nan"``/``"inf"``/``"-inf"``
                                (JSON has no such numbers); an int of more than
                                ``MAX_INT_BITS`` bits by its size
str                             as is up to ``MAX_TEXT`` characters, else cut there
                                with a marker saying how many were left out
bytes, bytearray, memoryview    ``{"type", "size", "sha256"}``
numpy array                     ``{"type", "shape", "dtype", "sha256"}``: the hash of
                                the C-ordered bytes (None for object arrays)
pandas DataFrame / Series /     ``{"type", "shape", "dtypes"/"dtype", "sha256"}``: the
Index                           hash of ``pandas.util.hash_pandas_object`` (columns
                                and index included), None if a cell is unhashable
other array (torch, jax, …)     ``{"type", "shape", "dtype"}``
numpy scalar                    as the Python scalar it holds
list, tuple, set, dict          item by item when small (``MAX_ITEMS`` items, nested
                                ``MAX_DEPTH`` deep, ``MAX_JSON`` characters in all),
                                else ``{"type", "len", "repr"}``
datetime, date, time            ISO 8601 text
function, class                 ``{"type": "function"|"class", "name"}``
anything else                   ``{"type", "repr"}``: a bounded ``repr``, memory
                                addresses removed so the same object reads the same
                                in every process
==============================  ====================================================

numpy and pandas are recognised through ``sys.modules``: a value can only be one of
theirs once its library is imported, so this module never imports either.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import inspect
import json
import math
import re
import reprlib
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_JSON", "MAX_TEXT", "bounded_text", "summarise", "summary_text"]

#: Characters of a string kept in a summary (more inside containers would multiply).
MAX_TEXT = 500
_INNER_TEXT = 100
#: Items of a container summarised one by one; a longer one is described whole.
MAX_ITEMS = 20
MAX_DEPTH = 2
#: The JSON text of one container's summary; a bigger one is described whole.
MAX_JSON = 2_000
MAX_INT_BITS = 256
_MAX_REPR = 200
_MAX_COLUMNS = 20
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class _Repr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxstring = _MAX_REPR
        self.maxother = _MAX_REPR
        self.maxlist = self.maxtuple = self.maxset = self.maxdict = 6


_repr = _Repr()


def bounded_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters with a marker, and made storable (a lone
    surrogate becomes its escape, which a UTF-8 store and JSON both accept)."""
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text) - limit} more characters]"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def summarise(value: Any) -> Any:
    """A small JSON value describing ``value`` (see the module docs); never raises."""
    try:
        return _summary(value, 0)
    except Exception as exc:  # a __repr__, a hash or a property that fails
        return {"type": _type_name(value), "error": bounded_text(f"{exc!r}", _MAX_REPR)}


def summary_text(value: Any, limit: int = MAX_JSON) -> str:
    """The summary of ``value`` as JSON text of at most ``limit`` (and a few) characters."""
    text = json.dumps(summarise(value), ensure_ascii=False, separators=(",", ":"))
    return bounded_text(text, limit)


def _summary(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            return {"type": "int", "bits": value.bit_length()}
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, str):
        return bounded_text(str(value), MAX_TEXT if depth == 0 else _INNER_TEXT)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = memoryview(value).cast("B")
        return {"type": _type_name(value), "size": data.nbytes, "sha256": _sha256(data)}
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    special = _library_value(value, depth)
    if special is not _NOTHING:
        return special
    if isinstance(value, (list, tuple, set, frozenset, Mapping)):
        return _container(value, depth)
    if inspect.isclass(value) or (callable(value) and hasattr(value, "__qualname__")):
        kind = "class" if inspect.isclass(value) else "function"
        name = f"{getattr(value, '__module__', None) or '?'}.{value.__qualname__}"
        return {"type": kind, "name": bounded_text(name, _MAX_REPR)}
    return {"type": _type_name(value), "repr": _bounded_repr(value)}


_NOTHING: Any = object()


def _library_value(value: Any, depth: int) -> Any:
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return _array(value, np)
        if isinstance(value, np.generic):
            return _summary(value.item(), depth)
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
        return _pandas(value, pd)
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None and not isinstance(value, type):
        # torch, jax, tensorflow, cupy …: their own bytes may live on a device, so
        # they are described, not hashed.
        return {"type": _type_name(value), "shape": [_dim(d) for d in shape], "dtype": str(dtype)}
    return _NOTHING


def _array(array: Any, np: Any) -> dict[str, Any]:
    digest = None
    if not array.dtype.hasobject:  # object arrays hold pointers, not content
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        digest = _sha256(memoryview(flat))
    return {
        "type": _type_name(array),
        "shape": [int(d) for d in array.shape],
        "dtype": str(array.dtype),
        "sha256": digest,
    }


def _pandas(value: Any, pd: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _type_name(value), "shape": [int(d) for d in value.shape]}
    if isinstance(value, pd.DataFrame):
        dtypes = {bounded_text(str(c), _INNER_TEXT): str(t) for c, t in value.dtypes.items()}
        if len(dtypes) > _MAX_COLUMNS:
            shown = dict(list(dtypes.items())[:_MAX_COLUMNS])
            shown["…"] = f"{len(dtypes) - _MAX_COLUMNS} more columns"
            dtypes = shown
        out["dtypes"] = dtypes
    else:
        out["dtype"] = str(value.dtype)
    try:
        rows = pd.util.hash_pandas_object(value, index=not isinstance(value, pd.Index))
        digest = hashlib.sha256(memoryview(rows.to_numpy()).cast("B"))
        if isinstance(value, pd.DataFrame):  # rows hash their values, not the names
            digest.update(repr([str(c) for c in value.columns]).encode("utf-8", "replace"))
        out["sha256"] = digest.hexdigest()
    except (TypeError, ValueError):  # a cell pandas cannot hash (a list, a dict)
        out["sha256"] = None
    return out


def _container(value: Any, depth: int) -> Any:
    size = len(value)
    if depth < MAX_DEPTH and size <= MAX_ITEMS:
        if isinstance(value, Mapping):
            small: Any = {
                bounded_text(k if isinstance(k, str) else repr(k), _INNER_TEXT): _summary(
                    v, depth + 1
                )
                for k, v in value.items()
            }
        else:
            items = [_summary(v, depth + 1) for v in value]
            if isinstance(value, (set, frozenset)):
                items = sorted(items, key=lambda i: json.dumps(i, sort_keys=True, default=str))
            small = items
        if len(json.dumps(small, ensure_ascii=False, default=str)) <= MAX_JSON:
            return small
    return {"type": _type_name(value), "len": size, "repr": _bounded_repr(value)}


def _bounded_repr(value: Any) -> str:
    return bounded_text(_ADDRESS.sub("", _repr.repr(value)), _MAX_REPR)


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__.partition(".")[0]
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _dim(d: Any) -> Any:
    try:
        return int(d)
    except (TypeError, ValueError):
        return None  # symbolic/unknown dimension (tensorflow's None)


def _sha256(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()
