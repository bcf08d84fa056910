"""Reading values out of audit records for drift reports, without keeping records.

Each chunk of :data:`CHUNK` records has its JSON parsed in one call (orjson when it is
installed, else the standard library): one ``loads`` over ``[text,text,…]`` shares key
strings across records and costs about half of one call per record. Values then go to
sinks that keep only what the statistics need: :class:`Numbers` (floats in numpy
chunks, 8 bytes a value) and :class:`Labels` (counts per bucket).
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .drift import CategoricalReference, epoch_seconds, label

__all__ = [
    "CHUNK", "MAX_LABELS", "MAX_SERIES", "UNREADABLE", "Labels", "Numbers", "Outputs",
    "input_rows", "outputs_of", "parse_json", "widen",
]  # fmt: skip


def _json_loads() -> Callable[[str], Any]:
    try:  # optional: about three times faster than the standard library here
        loads: Callable[[str], Any] = importlib.import_module("orjson").loads
    except ImportError:
        import json

        loads = json.loads
    return loads


_loads = _json_loads()

#: The most prediction series (keys of a dict output) compared.
MAX_SERIES = 20
#: Distinct labels a prediction series counts before lumping the rest together.
MAX_LABELS = 1_000
#: Records parsed per ``loads`` call.
CHUNK = 2_000
#: Chunks of values gathered into one block (about 1 MB for a value per record).
_GATHER = 64
#: What :func:`parse_json` gives for a text that is not JSON.
UNREADABLE: Any = object()
_NUMBERS = frozenset({float, int, type(None)})
_SCALARS = frozenset({float, int, str, bool, type(None)})
_OVERFLOW = "\x00other"  # no label made by str() of a JSON value starts with NUL
Floats = npt.NDArray[np.float64]


class Numbers:
    """The non-null floats of one feature or series, in numpy chunks."""

    def __init__(self, times: bool = False) -> None:
        self.times = times
        self.rows = 0
        self.blocks: list[Floats] = []
        self.pending: list[Floats] = []

    def add(self, values: list[Any]) -> None:
        self.rows += len(values)
        a = None
        if not self.times and _NUMBERS.issuperset(map(type, values)):
            try:  # numpy turns None into NaN; JSON has no NaN, so NaN means null
                a = np.array(values, dtype=np.float64)
            except OverflowError:  # an int beyond float range
                a = None
        if a is None:
            a = np.array([self._one(v) for v in values], dtype=np.float64)
        a = a[~np.isnan(a)]
        if a.size:
            self.pending.append(a)
            if len(self.pending) >= _GATHER:
                self._gather()

    def _gather(self) -> None:
        # Small arrays live in the malloc heap, which keeps its size once they are
        # freed; large blocks are mapped apart and go back to the system when freed.
        self.blocks.append(np.concatenate(self.pending))
        self.pending = []

    def _one(self, value: Any) -> float:
        if self.times:
            got = epoch_seconds(value)
            return math.nan if got is None else got
        if type(value) is int:
            try:
                return float(value)
            except OverflowError:  # beyond float range: as far out of range as it gets
                return math.copysign(math.inf, value)
        return value if type(value) is float else math.nan

    def take(self) -> list[Floats]:
        """Every value collected, in blocks; the sink is empty afterwards (so the
        values are held once, by the caller)."""
        if self.pending:
            self._gather()
        blocks, self.blocks = self.blocks, []
        return blocks


class Labels:
    """Counts of one categorical feature per reference bucket (``other`` last) and of
    unseen values; without a reference (a prediction series), per label."""

    def __init__(self, reference: CategoricalReference | None = None) -> None:
        self.reference = reference
        self.index = {v: i for i, v in enumerate(reference.labels)} if reference else {}
        self.buckets = [0] * (len(self.index) + 1)
        self.by_label: Counter[str] = Counter()
        self.rows = 0
        self.unseen = 0

    def add(self, values: list[Any]) -> None:
        self.rows += len(values)
        try:
            counted = Counter(values)
        except TypeError:  # a list or dict where a category belongs
            counted = Counter(v if v is None else repr(v) for v in values)
        known = self.reference.known if self.reference else None
        for value, n in counted.items():
            if value is None:
                continue
            text = label(value)
            if self.reference is None:
                if text not in self.by_label and len(self.by_label) >= MAX_LABELS:
                    text = _OVERFLOW
                self.by_label[text] += n
                continue
            self.buckets[self.index.get(text, -1)] += n
            if known is not None and text not in known:
                self.unseen += n

    def against(self, reference: CategoricalReference) -> tuple[list[int], int]:
        """This series' label counts in ``reference``'s buckets, and the unseen count."""
        index = {v: i for i, v in enumerate(reference.labels)}
        buckets = [0] * (len(index) + 1)
        unseen = 0
        for text, n in self.by_label.items():
            buckets[index.get(text, -1)] += n
            if reference.known is not None and text not in reference.known:
                unseen += n
        return buckets, unseen


class Outputs:
    """The prediction series of a set of calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.series: dict[str, Numbers | Labels] = {}
        self.skipped: set[str] = set()

    def add(self, outputs: list[Any]) -> None:
        self.calls += len(outputs)
        if outputs and _NUMBERS.issuperset(map(type, outputs)):  # the common fast case
            sink = self._sink("prediction", outputs)
            if sink is not None:
                sink.add(outputs)
            return
        grouped: dict[str, list[Any]] = {}
        for output in outputs:
            for item in output if type(output) is list else (output,):
                if type(item) is dict:
                    for key, value in item.items():
                        if type(value) in _SCALARS:
                            grouped.setdefault(key, []).append(value)
                elif type(item) in _SCALARS:
                    grouped.setdefault("prediction", []).append(item)
        for key, values in grouped.items():
            sink = self._sink(key, values)
            if sink is not None:
                sink.add(values)

    def _sink(self, key: str, values: list[Any]) -> Numbers | Labels | None:
        sink = self.series.get(key)
        if sink is None:
            if len(self.series) >= MAX_SERIES:
                self.skipped.add(key)
                return None
            first = next((v for v in values if v is not None), None)
            sink = Labels() if type(first) in (str, bool) else Numbers()
            self.series[key] = sink
        return sink


# -- reading records -----------------------------------------------------------------


def parse_json(texts: Sequence[str]) -> list[Any]:
    """Each JSON text decoded; one that cannot be becomes ``UNREADABLE``."""
    try:
        got = _loads("[" + ",".join(texts) + "]")
        if type(got) is list and len(got) == len(texts):
            return got
    except ValueError:
        pass
    out: list[Any] = []
    for text in texts:  # some text is not one JSON value: find it
        try:
            out.append(_loads(text))
        except ValueError:
            out.append(UNREADABLE)
    return out


def input_rows(inputs: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """The rows of each input, and how many inputs (or list items) held none."""
    rows: list[dict[str, Any]] = []
    unreadable = 0
    for value in inputs:
        if type(value) is dict:
            # A DataFrame with an index is {label: row}: every value a dict, which a
            # row's values never are (the first one decides, cheaply, for most rows).
            first = next(iter(value.values()), None)
            if type(first) is dict and all(type(v) is dict for v in value.values()):
                rows.extend(value.values())
            else:
                rows.append(value)
        elif type(value) is list:
            for item in value:
                if type(item) is dict:
                    rows.append(item)
                elif type(item) is list and len(item) == 2 and type(item[1]) is dict:
                    rows.append(item[1])  # a [label, row] pair
                else:
                    unreadable += 1
        else:
            unreadable += 1
    return rows, unreadable


def outputs_of(status: Sequence[str], outputs: Sequence[str | None]) -> list[Any]:
    """The decoded outputs of the successful calls among these (columns of records)."""
    texts = [o for s, o in zip(status, outputs, strict=True) if s == "ok" and o is not None]
    return [v for v in parse_json(texts) if v is not UNREADABLE]


def widen(span: list[dt.datetime], earliest: dt.datetime, latest: dt.datetime) -> None:
    """Stretch ``[first, last]`` to cover ``earliest`` to ``latest``."""
    if not span:
        span += [earliest, latest]
    else:
        span[0], span[1] = min(span[0], earliest), max(span[1], latest)
