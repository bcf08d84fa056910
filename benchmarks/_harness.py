"""Shared measuring code for benchmarks/bench_*.py.

Every scenario is measured as ``repeat`` rounds of ``number`` calls; a row reports
the median round with min and max, and its ratio to a baseline measured in the same
run (absolute times on a shared machine mean little, ratios measured side by side
do). A module ``bench_<name>.py`` exposes ``run(quick: bool) -> list[Row]``.
"""

from __future__ import annotations

import gc
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Row",
    "Stats",
    "faster_row",
    "latency_row",
    "machine",
    "measure",
    "each_stats",
    "measure_each",
    "measure_interleaved",
    "time_calls",
    "throughput_row",
]


@dataclass(frozen=True)
class Stats:
    """Seconds per call (or per unit of work): median, min and max over rounds."""

    median: float
    min: float
    max: float
    rounds: int


def measure(
    fn: Callable[[], Any], *, number: int = 100, repeat: int = 7, per: int = 1, warmup: int = 1
) -> Stats:
    """Time ``fn`` ``number`` times per round; ``per`` units of work per call."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / (number * per))
    return Stats(statistics.median(samples), min(samples), max(samples), repeat)


def measure_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    number: int = 100,
    repeat: int = 7,
    per: int = 1,
    warmup: int = 1,
) -> dict[str, Stats]:
    """Like :func:`measure` for several functions whose ratios matter: their rounds
    alternate (round i of every function before round i+1 of any, the order rotating),
    so a machine that slows down mid-run slows every side alike instead of whichever
    was measured last."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeat):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            fn = fns[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / (number * per))
    return {
        name: Stats(statistics.median(s), min(s), max(s), repeat) for name, s in samples.items()
    }


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    backend: str
    metric: str  # "µs/call", "ms/call" or "rows/s"
    median: float
    min: float
    max: float
    baseline: str = ""
    baseline_median: float | None = None
    ratio: float | None = None  # how many baselines one of ours costs (latency) or reaches
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_row(
    scenario: str,
    backend: str,
    ours: Stats,
    base: Stats | None = None,
    baseline: str = "",
    *,
    unit: str = "µs/call",
    max_ratio: float | None = None,
    max_value: float | None = None,
    **extra: Any,
) -> Row:
    """A latency row: ratio = our median / baseline median (lower is better)."""
    scale = 1e6 if unit.startswith("µs") else 1e3
    ratio = ours.median / base.median if base else None
    met: bool | None = None
    target = ""
    if max_ratio is not None and ratio is not None:
        met, target = ratio <= max_ratio, f"≤ {max_ratio:g}× {baseline}"
    if max_value is not None:
        met, target = ours.median * scale <= max_value, f"≤ {max_value:g} {unit.split('/')[0]}"
    return Row(
        scenario,
        backend,
        unit,
        ours.median * scale,
        ours.min * scale,
        ours.max * scale,
        baseline,
        base.median * scale if base else None,
        ratio,
        target,
        met,
        dict(extra),
    )


def throughput_row(
    scenario: str,
    backend: str,
    ours: Stats,
    base: Stats | None = None,
    baseline: str = "",
    *,
    min_ratio: float | None = None,
    **extra: Any,
) -> Row:
    """A throughput row from seconds-per-unit stats: ratio = ours / baseline (higher is better)."""
    ratio = base.median / ours.median if base else None
    met = ratio >= min_ratio if (min_ratio is not None and ratio is not None) else None
    target = f"≥ {min_ratio:.0%} of {baseline}" if min_ratio is not None else ""
    return Row(
        scenario,
        backend,
        "rows/s",
        1 / ours.median,
        1 / ours.max,
        1 / ours.min,
        baseline,
        1 / base.median if base else None,
        ratio,
        target,
        met,
        dict(extra),
    )


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def time_calls(fn: Callable[[], Any], number: int) -> list[float]:
    """Seconds taken by each of ``number`` calls of ``fn`` (one round)."""
    gc.collect()
    clock = time.perf_counter
    samples = []
    for _ in range(number):
        start = clock()
        fn()
        samples.append(clock() - start)
    return samples


def each_stats(rounds: list[list[float]]) -> tuple[Stats, float]:
    """Per-call rounds → (median over all calls with min/max of round medians, p99)."""
    every = sorted(s for r in rounds for s in r)
    medians = [statistics.median(r) for r in rounds]
    p99 = every[min(len(every) - 1, int(0.99 * len(every)))]
    return Stats(statistics.median(every), min(medians), max(medians), len(rounds)), p99


def measure_each(
    fn: Callable[[], Any], *, number: int = 1000, repeat: int = 5, warmup: int = 20
) -> tuple[Stats, float]:
    """Time every call: (median over all calls with min/max of round medians, p99)."""
    for _ in range(warmup):
        fn()
    return each_stats([time_calls(fn, number) for _ in range(repeat)])


def faster_row(
    scenario: str,
    backend: str,
    ours: Stats,
    base: Stats,
    baseline: str,
    *,
    min_speedup: float,
    unit: str = "ms/call",
    **extra: Any,
) -> Row:
    """A latency row whose target is a speed-up: met when base/ours ≥ ``min_speedup``.

    ``ratio`` keeps the table's meaning (our median / baseline median); the speed-up
    is in ``extra["speedup"]``.
    """
    row = latency_row(scenario, backend, ours, base, baseline, unit=unit, **extra)
    speedup = base.median / ours.median
    row.target = f"≥ {min_speedup:g}× faster than {baseline}"
    row.met = speedup >= min_speedup
    row.extra["speedup"] = round(speedup, 1)
    return row
