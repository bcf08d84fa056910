"""Bounded-memory summaries a column profile is built from, one batch at a time.

* :class:`Moments`: count, mean and the sum of squared deviations, merged per batch
  with Chan et al.'s parallel update, which stays accurate where the textbook
  ``sum(x²) - n·mean²`` cancels catastrophically.
* :class:`Sample`: every value up to :data:`EXACT_VALUES` (so quantiles and distinct
  counts are exact), then a uniform reservoir sample of :data:`RESERVOIR_SIZE` values
  (Vitter's algorithm R, vectorised).
* :class:`Distinct`: the exact set of values up to :data:`EXACT_DISTINCT`, then a
  HyperLogLog estimate (2**14 registers: relative standard error 1.04/√16384 ≈ 0.81%).
* :class:`HyperLogLog`: the estimator itself, fed with 64-bit hashes.

Everything is numpy, no Python loop per value; numpy is imported by the modules that
import this one, never by ``import umlaut_core``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "EXACT_DISTINCT",
    "EXACT_VALUES",
    "HLL_PRECISION",
    "RESERVOIR_SIZE",
    "Distinct",
    "HyperLogLog",
    "Moments",
    "Sample",
    "hash64",
]

#: Distinct values counted exactly before the count becomes a HyperLogLog estimate.
EXACT_DISTINCT = 100_000
#: Non-null values kept whole, so quantiles and distinct counts stay exact.
EXACT_VALUES = 1_000_000
#: The uniform sample quantiles are estimated from past :data:`EXACT_VALUES`.
RESERVOIR_SIZE = 100_000
#: log2 of the number of HyperLogLog registers.
HLL_PRECISION = 14

_U64 = np.uint64
# A fixed seed: the same data gives the same profile, run after run.
_SEED = 0x756D6C6175


def hash64(values: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """64-bit hashes of fixed-width values (the splitmix64 finaliser on their bits).

    Floats are hashed by value: ``-0.0`` and ``0.0`` give one hash, as they are one
    value to a distinct count.
    """
    if values.dtype.kind == "f":
        values = values.astype(np.float64) + 0.0  # folds -0.0 into 0.0
    elif values.dtype.kind == "b":
        values = values.astype(np.uint8)
    bits = np.ascontiguousarray(values)
    wide = bits.dtype.itemsize == 8
    h = bits.view(_U64).copy() if wide else bits.astype(np.int64).view(_U64)
    with np.errstate(over="ignore"):
        h ^= h >> _U64(30)
        h *= _U64(0xBF58476D1CE4E5B9)
        h ^= h >> _U64(27)
        h *= _U64(0x94D049BB133111EB)
        h ^= h >> _U64(31)
    return h


class HyperLogLog:
    """Flajolet et al.'s cardinality estimator on 64-bit hashes.

    The top :data:`HLL_PRECISION` bits of a hash choose a register; the register
    keeps the largest rank (1 + leading zeros) of the remaining 50 bits. Those 50
    bits are below 2**53, so ``frexp`` on their float value gives the bit length
    exactly: no per-value loop and no precision loss. With 64-bit hashes the
    large-range correction of the 32-bit original is not needed; the small-range
    one (linear counting) is.
    """

    def __init__(self) -> None:
        self.registers = np.zeros(1 << HLL_PRECISION, dtype=np.uint8)

    def add(self, hashes: np.ndarray[Any, np.dtype[np.uint64]]) -> None:
        if not len(hashes):
            return
        rest_bits = 64 - HLL_PRECISION
        index = (hashes >> _U64(rest_bits)).astype(np.intp)
        rest = (hashes & _U64((1 << rest_bits) - 1)).astype(np.float64)
        _, bit_length = np.frexp(rest)  # 0 for a zero remainder
        rank = (rest_bits + 1 - bit_length).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)

    def estimate(self) -> int:
        m = float(len(self.registers))
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int32))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            return round(m * math.log(m / zeros))
        return round(raw)


@dataclass(slots=True)
class Moments:
    """Count, mean and M2 (sum of squared deviations) of the values seen so far."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray[Any, Any]) -> None:
        n = len(values)
        if not n:
            return
        x = values.astype(np.float64, copy=False)
        mean = float(x.mean())
        d = x - mean
        m2 = float(np.einsum("i,i->", d, d))  # not np.dot: BLAS threads cost more here
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def std(self) -> float | None:
        """The sample standard deviation (ddof=1, as pandas), None below 2 values."""
        if self.count < 2:
            return None
        return math.sqrt(max(self.m2, 0.0) / (self.count - 1))


class Sample:
    """Every value while there are at most :data:`EXACT_VALUES`, then a reservoir."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray[Any, Any]] = []
        self._reservoir: np.ndarray[Any, Any] | None = None
        self.seen = 0
        self._rng = np.random.default_rng(_SEED)

    @property
    def exact(self) -> bool:
        return self._reservoir is None

    def add(self, values: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]] | None:
        """Keep ``values``; return every value kept so far (in parts) when this call is
        the one that overflows the exact budget: a distinct count needs them once."""
        n = len(values)
        if not n:
            return None
        if self._reservoir is None:
            if self.seen + n <= EXACT_VALUES:
                # Kept as given: a view of a batch's own column buffer (what file
                # readers produce) pins nothing more than the values themselves.
                self._parts.append(values)
                self.seen += n
                return None
            # Part by part: one array of everything would double the peak memory.
            parts, self._parts = [*self._parts, values], []
            self.seen += n
            pick = np.sort(self._rng.choice(self.seen, RESERVOIR_SIZE, replace=False))
            starts = np.cumsum([0] + [len(p) for p in parts])
            cuts = np.searchsorted(pick, starts)
            self._reservoir = np.concatenate(
                [p[pick[cuts[i] : cuts[i + 1]] - starts[i]] for i, p in enumerate(parts)]
            )
            return parts
        # Algorithm R: the t-th value (1-based) is kept with probability size/t, in a
        # slot uniform in [0, size). numpy applies repeated indices in order, last one
        # winning, which is the sequential algorithm exactly. One uniform float per
        # value, and slots only for the few kept, is cheaper than an integer draw
        # bounded by t for each value.
        t = np.arange(self.seen + 1, self.seen + n + 1, dtype=np.float64)
        keep = self._rng.random(n) * t < RESERVOIR_SIZE
        slot = self._rng.integers(0, RESERVOIR_SIZE, int(np.count_nonzero(keep)))
        self._reservoir[slot] = values[keep]
        self.seen += n
        return None

    def sorted_values(self) -> np.ndarray[Any, Any]:
        if self._reservoir is not None:
            return np.sort(self._reservoir)
        if not self._parts:
            return np.empty(0)
        everything = np.concatenate(self._parts)  # a fresh array: sort it in place
        everything.sort()
        return everything


class Distinct:
    """The exact set of values up to :data:`EXACT_DISTINCT`, then HyperLogLog.

    Values are fixed-width numpy arrays (numbers, times) or, through
    :meth:`add_hashes`, anything already hashed; the exact set is a sorted array,
    merged per batch.
    """

    def __init__(self) -> None:
        self._set: np.ndarray[Any, Any] | None = None
        self._hll: HyperLogLog | None = None

    @property
    def exact(self) -> bool:
        return self._hll is None

    def add(self, values: np.ndarray[Any, Any]) -> None:
        if not len(values):
            return
        if self._hll is not None:
            self._hll.add(hash64(values))
            return
        unique = np.unique(values)
        self._set = unique if self._set is None else np.union1d(self._set, unique)
        if len(self._set) > EXACT_DISTINCT:
            self._hll = HyperLogLog()
            self._hll.add(hash64(self._set))
            self._set = None

    def count(self) -> int:
        if self._hll is not None:
            return self._hll.estimate()
        return 0 if self._set is None else len(self._set)


def sorted_distinct(sorted_values: np.ndarray[Any, Any]) -> int:
    """The number of distinct values in a sorted array."""
    if not len(sorted_values):
        return 0
    return 1 + int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1]))


def deciles(sorted_values: np.ndarray[Any, Any], scale: float = 1.0) -> tuple[float, ...]:
    """The 11 decile edges (min … max) of sorted values, by linear interpolation
    between order statistics (numpy's and pandas' default), times ``scale``."""
    n = len(sorted_values)
    if not n:
        return ()
    x = sorted_values.astype(np.float64)
    pos = np.linspace(0.0, n - 1.0, 11)
    low = np.floor(pos).astype(np.intp)
    high = np.minimum(low + 1, n - 1)
    frac = pos - low
    edges = x[low] + (x[high] - x[low]) * frac
    return tuple(float(v) * scale for v in edges)
