"""The canonical encoding of a dataset, and its digest.

A dataset's digest is ``"sha256:" + hex`` (64 hex digits) over the column names,
their canonical types and every value, in this encoding (``u64`` is an unsigned
64-bit little-endian integer, ``lp(s)`` is ``u64(len(utf8(s))) + utf8(s)``)::

    sha256( b"umlaut.dataset/1\\n" + u64(columns) + u64(rows)
            + for each column, in order:
                lp(name) + lp(canonical type) + sha256(stream) for each stream )

Each column is one or more *streams*, each hashed on its own, so the digest does not
depend on how the rows were cut into batches. Every column has a validity stream
(one byte per row: 1 present, 0 missing); missing slots count as zero (or empty) in
the value streams.

==========================  ===================================================
canonical type              value streams (one entry per row)
==========================  ===================================================
``integer``                 int64 (any width, signed or not, nullable or not)
``integer:u64``             uint64, for an unsigned column with a value ≥ 2**63
``float``                   float64 (float16/32 widened exactly); NaN is missing
``boolean``                 uint8 0/1
``datetime``                int64 seconds, uint32 nanoseconds (naive wall time)
``datetime:utc``            the same of the UTC instant (zone-aware: the zone is
                            presentation, not content)
``date``                    int64 days since 1970-01-01
``duration``                int64 seconds, uint32 nanoseconds
``string``, ``binary``      int64 byte length, then the bytes of all values
``category<T>[:ordered]``   the category *values* as type ``T`` (codes and
                            unused categories are not content)
``null``                    none (every value is missing)
``other:<arrow type>``      the values' text (Arrow's cast to string, else JSON),
                            as ``string``
==========================  ===================================================

So the digest is the same across pandas versions, dtype spellings that hold the same
values (``int32``/``int64``/``Int64`` without nulls; ``float32`` values and the same
values as ``float64``; ``str``/``string``/``object`` strings; timestamp units), the
index (never included) and batch sizes. It changes with any value, a null against a
zero, a column name, its logical type, the column order, and the row order. ``-0.0``
and ``0.0`` are different bits and hash differently; a float NaN and a null are both
missing (pandas does not tell them apart).
"""

# (pyarrow ships no type information; it is Any here, as pandas is everywhere.)

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "FORMAT",
    "Chunk",
    "ColumnEncoder",
    "DigestBuilder",
    "column_kind",
    "logical_type",
]

FORMAT = b"umlaut.dataset/1\n"

_STREAMS = {
    "null": 0, "integer": 1, "float": 1, "boolean": 1, "date": 1,
    "datetime": 2, "duration": 2, "string": 2, "binary": 2, "other": 2,
}  # fmt: skip
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_LOGICAL = {"null": "other"}


def column_kind(t: pa.DataType) -> str:
    """The canonical kind of an Arrow type (a key of the table in the docstring)."""
    import pyarrow as pa

    types = pa.types
    if types.is_dictionary(t):
        return "category"
    if types.is_null(t):
        return "null"
    if types.is_boolean(t):
        return "boolean"
    if types.is_integer(t):
        return "integer"
    if types.is_floating(t):
        return "float"
    if types.is_timestamp(t):
        return "datetime"
    if types.is_date(t):
        return "date"
    if types.is_duration(t):
        return "duration"
    if types.is_string(t) or types.is_large_string(t) or _is(t, "is_string_view"):
        return "string"
    if types.is_binary(t) or types.is_large_binary(t) or types.is_fixed_size_binary(t):
        return "binary"
    if _is(t, "is_binary_view"):
        return "binary"
    return "other"


def _is(t: pa.DataType, test: str) -> bool:
    import pyarrow as pa

    check = getattr(pa.types, test, None)  # the view types arrived in pyarrow 16
    return bool(check is not None and check(t))


def logical_type(kind: str) -> str:
    """The logical type (:data:`~umlaut_core.datasets.records.LOGICAL_TYPES`)."""
    return _LOGICAL.get(kind, kind)


@dataclass(slots=True)
class Chunk:
    """One batch of one column in canonical form, shared by the digest and the profile.

    ``valid`` is None when every value is present. ``values`` are fixed-width
    canonical values (nulls as 0); for times they are whole seconds and ``nanos`` the
    rest, and ``raw`` the stored integers in ``unit``. Variable-width values have
    ``lengths`` and ``data``, and ``array`` is the Arrow array they came from (decoded
    from a dictionary, cast to text for ``other``). ``stats`` are the values a
    numeric statistic uses: present and, for floats, finite.
    """

    kind: str
    length: int
    valid: np.ndarray[Any, Any] | None = None
    values: np.ndarray[Any, Any] | None = None
    nanos: np.ndarray[Any, Any] | None = None
    raw: np.ndarray[Any, Any] | None = None
    unit: str = ""
    lengths: np.ndarray[Any, Any] | None = None
    data: Any = None
    array: Any = None
    dictionary: Any = None
    stats: np.ndarray[Any, Any] | None = None
    unsigned_high: bool = False

    @property
    def null_count(self) -> int:
        return 0 if self.valid is None else self.length - int(np.count_nonzero(self.valid))


class ColumnEncoder:
    """Turns one column's Arrow arrays into :class:`Chunk` s and hashes their streams."""

    def __init__(self, name: str, arrow_type: pa.DataType) -> None:
        self.name = name
        self.arrow_type = arrow_type
        self.kind = column_kind(arrow_type)
        self.value_kind = self.kind
        if self.kind == "category":
            self.value_kind = column_kind(arrow_type.value_type)
            if self.value_kind == "category":
                self.value_kind = "other"
        self._validity = hashlib.sha256()
        self._streams = [hashlib.sha256() for _ in range(_STREAMS[self.value_kind])]
        self._unsigned_high = False

    @property
    def canonical_type(self) -> str:
        kind = self.value_kind
        t = self.arrow_type.value_type if self.kind == "category" else self.arrow_type
        if kind == "integer" and self._unsigned_high:
            text = "integer:u64"
        elif kind == "datetime" and t.tz is not None:
            text = "datetime:utc"
        elif kind == "other":
            text = f"other:{t}"
        else:
            text = kind
        if self.kind == "category":
            ordered = ":ordered" if self.arrow_type.ordered else ""
            return f"category<{text}>{ordered}"
        return text

    def encode(self, array: pa.Array) -> Chunk:
        """The canonical chunk of ``array``, its streams added to the digest."""
        chunk = _encode(array, self.kind)
        self._unsigned_high |= chunk.unsigned_high
        validity: Any = _ones(chunk.length) if chunk.valid is None else chunk.valid
        self._validity.update(validity)
        parts: list[Any] = []
        if chunk.lengths is not None:
            parts = [chunk.lengths, chunk.data]
        elif chunk.nanos is not None:
            parts = [chunk.values, chunk.nanos]
        elif chunk.values is not None:
            parts = [chunk.values]
        for hasher, part in zip(self._streams, parts, strict=True):
            hasher.update(part)
        return chunk

    def stream_digests(self) -> list[bytes]:
        return [self._validity.digest()] + [h.digest() for h in self._streams]


class DigestBuilder:
    """The digest of a whole table, fed batch by batch (see the module docstring)."""

    def __init__(self, names: list[str], types: list[pa.DataType]) -> None:
        self.columns = [ColumnEncoder(n, t) for n, t in zip(names, types, strict=True)]
        self.rows = 0

    def encode(self, batch: pa.RecordBatch) -> list[Chunk]:
        self.rows += batch.num_rows
        return [c.encode(batch.column(i)) for i, c in enumerate(self.columns)]

    def hexdigest(self) -> str:
        h = hashlib.sha256(FORMAT)
        h.update(struct.pack("<QQ", len(self.columns), self.rows))
        for column in self.columns:
            h.update(_lp(column.name))
            h.update(_lp(column.canonical_type))
            for part in column.stream_digests():
                h.update(part)
        return "sha256:" + h.hexdigest()


def _lp(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


_ONES: dict[int, bytes] = {}


def _ones(n: int) -> bytes:
    # Most batches share one length: build each run of ones once.
    got = _ONES.get(n)
    if got is None:
        if len(_ONES) > 64:
            _ONES.clear()
        got = _ONES[n] = b"\x01" * n
    return got


# -- per kind ------------------------------------------------------------------------


def _encode(array: pa.Array, kind: str) -> Chunk:
    if kind == "category":
        return _category(array)
    return _ENCODERS[kind](array)


def _validity(array: pa.Array) -> np.ndarray[Any, Any] | None:
    if array.null_count == 0:
        return None
    mask: np.ndarray[Any, Any] = array.is_valid().to_numpy(zero_copy_only=False)
    return mask


def _integer(array: pa.Array) -> Chunk:
    valid = _validity(array)
    filled = array if valid is None else array.fill_null(0)
    values = filled.to_numpy(zero_copy_only=False)
    high = False
    if values.dtype == np.uint64:
        high = bool(len(values)) and bool(values.max() > np.iinfo(np.int64).max)
        values = values.view(np.int64)
    values = values.astype("<i8", copy=False)
    stats = values if valid is None else values[valid]
    return Chunk("integer", len(array), valid, values, stats=stats, unsigned_high=high)


def _float(array: pa.Array) -> Chunk:
    x = array.to_numpy(zero_copy_only=False).astype("<f8", copy=False)  # nulls → NaN
    finite = np.isfinite(x)
    if finite.all():
        return Chunk("float", len(x), None, x, stats=x)
    nan = np.isnan(x)
    valid = ~nan if nan.any() else None
    values = np.where(nan, 0.0, x) if valid is not None else x
    return Chunk("float", len(x), valid, values, stats=x[finite])


def _boolean(array: pa.Array) -> Chunk:
    valid = _validity(array)
    filled = array if valid is None else array.fill_null(False)
    values = filled.to_numpy(zero_copy_only=False).view(np.uint8)
    stats = values if valid is None else values[valid]
    return Chunk("boolean", len(array), valid, values, stats=stats)


def _time(array: pa.Array, kind: str) -> Chunk:
    import pyarrow as pa

    unit = array.type.unit
    valid = _validity(array)
    raw_array = array.view(pa.int64())
    raw = (raw_array if valid is None else raw_array.fill_null(0)).to_numpy()
    per_second = _PER_SECOND[unit]
    seconds = np.floor_divide(raw, per_second).astype("<i8", copy=False)
    nanos = ((raw - seconds * per_second) * (1_000_000_000 // per_second)).astype("<u4")
    stats = raw if valid is None else raw[valid]
    return Chunk(kind, len(array), valid, seconds, nanos, raw, unit, stats=stats)


def _date(array: pa.Array) -> Chunk:
    import pyarrow as pa

    valid = _validity(array)
    if pa.types.is_date32(array.type):
        days = array.view(pa.int32())
        days = days if valid is None else days.fill_null(0)
        values = days.to_numpy().astype("<i8")
    else:  # date64: milliseconds, whole days by definition
        ms = array.view(pa.int64())
        ms = ms if valid is None else ms.fill_null(0)
        values = np.floor_divide(ms.to_numpy(), 86_400_000).astype("<i8")
    stats = values if valid is None else values[valid]
    return Chunk("date", len(array), valid, values, stats=stats)


def _bytes(array: pa.Array, kind: str) -> Chunk:
    import pyarrow as pa

    t = array.type
    if kind == "string" and not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        array = array.cast(pa.large_string())
    elif kind == "binary" and not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        array = array.cast(pa.large_binary())
    valid = _validity(array)
    # Arrow lets a null slot hold bytes; a filled copy makes them empty.
    dense = array if valid is None else array.fill_null(b"" if kind == "binary" else "")
    large = pa.types.is_large_string(dense.type) or pa.types.is_large_binary(dense.type)
    buffers = dense.buffers()
    n = len(dense)
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)
    offsets = offsets[dense.offset : dense.offset + n + 1]
    lengths = np.diff(offsets).astype("<i8") if n else np.zeros(0, "<i8")
    data: Any = b""
    if n and buffers[2] is not None:
        data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return Chunk(kind, n, valid, lengths=lengths, data=data, array=array)


def _other(array: pa.Array) -> Chunk:
    import pyarrow as pa

    try:
        text = array.cast(pa.large_string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        text = pa.array(
            [None if v is None else json.dumps(v, default=str) for v in array.to_pylist()],
            pa.large_string(),
        )
    chunk = _bytes(text, "string")
    chunk.kind = "other"
    return chunk


def _null(array: pa.Array) -> Chunk:
    return Chunk("null", len(array), np.zeros(len(array), dtype=np.uint8).view(bool))


def _category(array: pa.Array) -> Chunk:
    import pyarrow as pa

    value_kind = column_kind(array.type.value_type)
    if value_kind == "category":
        value_kind = "other"
    decoded = array.dictionary_decode()
    if pa.types.is_dictionary(decoded.type):  # a dictionary of dictionaries
        decoded = decoded.dictionary_decode()
    chunk = _encode(decoded, value_kind)
    chunk.kind = "category"
    chunk.array = decoded
    chunk.dictionary = array.dictionary
    return chunk


_ENCODERS = {
    "integer": _integer,
    "float": _float,
    "boolean": _boolean,
    "datetime": lambda a: _time(a, "datetime"),
    "duration": lambda a: _time(a, "duration"),
    "date": _date,
    "string": lambda a: _bytes(a, "string"),
    "binary": lambda a: _bytes(a, "binary"),
    "other": _other,
    "null": _null,
}
