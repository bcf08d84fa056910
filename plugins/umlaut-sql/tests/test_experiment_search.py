"""``search_runs`` on SQL returns what the reference returns: random runs, random
filters, random orders, every page.

The reference is the ``memory:`` store given the same writes, i.e.
:func:`~umlaut_core.experiments.filters.select_training_runs`. Each failure names
the seed, the search and both answers, so it replays exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
from umlaut_sql import SqlTracker
from umlaut_sql import _experiment_search as search_module
from umlaut_sql._experiments import SqlExperimentStore, open_experiment_store

from umlaut_core.experiments.filters import (
    ATTRIBUTES,
    RunSearch,
    parse_filter,
    parse_order_by,
)
from umlaut_core.experiments.memory import MemoryExperimentStore
from umlaut_core.experiments.protocol import ExperimentStore
from umlaut_core.experiments.records import MetricPoint, RunStatus, TrainingRun
from umlaut_core.experiments.writes import (
    MetricsLogged,
    ParamsLogged,
    RunEnded,
    RunStarted,
    RunWrite,
)
from umlaut_core.stores.memory import MemoryTracker

T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)
EXPERIMENTS = ("alpha", "beta", "gamma")
#: Params of every JSON kind the language treats apart: numbers (ints, floats, NaN,
#: ±inf), strings (cases, digits, unicode, LIKE's and GLOB's special characters),
#: bools, null, lists and objects. Not ints beyond ±2**53: SQL compares numbers as
#: doubles, where Python compares such an int exactly (a documented difference).
PARAM_VALUES: tuple[Any, ...] = (
    0, 1, 2, -3, 0.5, 1.0, 2.5, 1e-9, 2**53, float("nan"), float("inf"), float("-inf"),
    "a", "A", "b", "ab", "abc", "1", "10", "9", "", "ä", "Ä", "日本", "a%b", "a_b", "a*b",
    "a?b", "[a]", "a\\b", "x y", True, False, None, [1, 2], {"k": 1},
)  # fmt: skip
TAG_VALUES = ("a", "A", "b", "ab", "abc", "", "ä", "a%b", "a_b", "[a]", "a*b", "a\\b", "9", "10")
METRIC_VALUES = (0.0, 0.1, 0.5, 0.5, 1.0, -1.0, 2.0, float("nan"), float("inf"), float("-inf"))
NUMBERS = ("0", "1", "2", "-3", "0.5", "1.0", "2.5", "1e-9", "1e30", "inf", "-inf", "nan")
STRINGS = ("'a'", "'A'", "'ab'", "'abc'", "'1'", "'10'", "''", "'ä'", "'b'", "'a%b'", "'[a]'")
PATTERNS = ("'a%'", "'%b'", "'_'", "'a_b'", "'%'", "'A%'", "'a\\b'", "'[a]'", "'a*%'", "'%?%'")
OPS = ("=", "!=", "<", "<=", ">", ">=")


def random_writes(rng: random.Random, count: int) -> tuple[list[str], list[RunWrite]]:
    ids = sorted(f"r{rng.randrange(10**6):06d}-{i}" for i in range(count))
    writes: list[RunWrite] = []
    for i, run_id in enumerate(ids):
        started = T0 + dt.timedelta(seconds=rng.randrange(count // 3 + 1))  # ties
        writes.append(
            RunStarted(
                run_id,
                rng.choice(EXPERIMENTS),
                rng.choice((None, f"sweep-{i}", f"Sweep-{i % 4}", "ä-run", "x_1")),
                started,
                parent_id=rng.choice((None, None, ids[0], ids[1])),
                user=rng.choice((None, "alice", "bob", "Bob")),
                tags={k: rng.choice(TAG_VALUES) for k in ("t", "u") if rng.random() < 0.7},
            )
        )
        params = {k: rng.choice(PARAM_VALUES) for k in ("p", "q", "n") if rng.random() < 0.8}
        writes.append(ParamsLogged(run_id, params))
        points = []
        for key in ("m", "k"):
            for step in range(rng.randrange(4)):
                value = rng.choice(METRIC_VALUES)
                points.append(MetricPoint(key, value, rng.randrange(3), T0_MS + step, step + 1))
        writes.append(MetricsLogged(run_id, tuple(points)))
        status = rng.choice(list(RunStatus))
        if status is not RunStatus.RUNNING:
            ended = started + dt.timedelta(seconds=rng.randrange(5))
            writes.append(RunEnded(run_id, status, ended, None))
    return ids, writes


def random_comparison(rng: random.Random, ids: list[str]) -> str:
    kind = rng.choice(("param", "param", "tag", "metric", "metric", "attribute"))
    if kind == "attribute":
        name = rng.choice(ATTRIBUTES)
        field = rng.choice((name, f"attributes.{name}"))
        if name in ("started_at", "ended_at"):
            moment = T0 + dt.timedelta(seconds=rng.randrange(10))
            text = rng.choice((moment.isoformat(), moment.replace(tzinfo=None).isoformat()))
            return rng.choice((f"{field} {rng.choice(OPS)} '{text}'", f"{field} is null"))
        values = {
            "run_id": [f"'{rng.choice(ids)}'", "'r5'"],
            "parent_id": [f"'{ids[0]}'", f"'{ids[1]}'"],
            "status": ["'FINISHED'", "'failed'", "'RUNNING'", "'KILLED'"],
            "name": ["'sweep-3'", "'Sweep-1'", "'ä-run'", "'x_1'"],
            "user": ["'alice'", "'bob'", "'Bob'"],
        }[name]
        pattern = rng.choice(("'%'", "'S%'", "'s%'", "'%1'", "'x_1'", "'R_%'", "'%N%'"))
    elif kind == "tag":
        field, values, pattern = f"tags.{rng.choice('tu')}", list(STRINGS), rng.choice(PATTERNS)
    elif kind == "param":
        field = f"params.{rng.choice('pqnz')}"  # z: never logged
        values, pattern = [*NUMBERS, *STRINGS], rng.choice(PATTERNS)
    else:
        aggregate = rng.choice(("", ".last", ".min", ".max", ".count"))
        field = f"metrics.{rng.choice('mkz')}{aggregate}"
        numbers = ("0", "1", "2", "3") if aggregate == ".count" else NUMBERS
        values, pattern = list(numbers), None
    shape = rng.random()
    if shape < 0.1:
        return f"{field} is {rng.choice(('null', 'not null'))}"
    if shape < 0.25:
        chosen = rng.sample(values, min(len(values), rng.randrange(1, 4)))
        return f"{field} in ({', '.join(chosen)})"
    if shape < 0.35 and pattern is not None:
        return f"{field} like {pattern}"
    return f"{field} {rng.choice(OPS)} {rng.choice(values)}"


def random_filter(rng: random.Random, ids: list[str], depth: int = 0) -> str:
    if depth >= 2 or rng.random() < 0.45:
        return random_comparison(rng, ids)
    joiner = rng.choice((" and ", " or "))
    parts = [random_filter(rng, ids, depth + 1) for _ in range(rng.randrange(2, 4))]
    return "(" + joiner.join(parts) + ")"


def random_order(rng: random.Random) -> str:
    field = rng.choice(
        (
            *ATTRIBUTES,
            "params.p", "params.q", "params.n", "params.z",
            "tags.t", "tags.u", "tags.z",
            "metrics.m", "metrics.m.min", "metrics.m.max", "metrics.m.count", "metrics.k",
            "metrics.z",
        )
    )  # fmt: skip
    return f"{field} {rng.choice(('ASC', 'DESC'))}"


def pages(store: ExperimentStore, search: RunSearch) -> list[list[str]]:
    out: list[list[str]] = []
    token = None
    for _ in range(200):
        found = store.search_runs(dataclasses.replace(search, page_token=token))
        out.append([r.run_id for r in found.runs])
        token = found.next_page_token
        if token is None:
            return out
    raise AssertionError(f"endless pages: {out}")


@pytest.fixture
def stores(any_tracker: SqlTracker) -> Iterator[tuple[SqlExperimentStore, MemoryExperimentStore]]:
    sql = open_experiment_store(any_tracker)
    yield sql, MemoryExperimentStore(MemoryTracker())
    sql.close()


class TestAgainstTheReference:
    """Random data and searches give the reference's runs, order and pages."""

    @pytest.mark.parametrize("narrow", [search_module.NARROW, 3, 0], ids=["probe", "mixed", "walk"])
    @pytest.mark.parametrize("seed", [1, 2])
    def test_random_searches(
        self,
        stores: tuple[SqlExperimentStore, MemoryExperimentStore],
        seed: int,
        narrow: int,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """``narrow``: SQLite looks up probed runs (large), mixes both plans (3), or
        always walks the order's index (0)."""
        sql, reference = stores
        if narrow != search_module.NARROW and sql._search.dialect != "sqlite":
            pytest.skip("the probe is SQLite's alone")
        monkeypatch.setattr(search_module, "NARROW", narrow)
        rng = random.Random(seed)
        ids, writes = random_writes(rng, 60)
        sql.write(writes)
        reference.write(writes)
        failed = []
        for _ in range(150):
            where = random_filter(rng, ids) if rng.random() < 0.9 else None
            experiments = tuple(rng.sample(EXPERIMENTS, rng.randrange(3)))
            search = RunSearch(
                experiments, parse_filter(where), parse_order_by(random_order(rng)),
                limit=rng.choice((1, 2, 3, 7, 100)),
            )  # fmt: skip
            expected, got = pages(reference, search), pages(sql, search)
            if got != expected:
                failed.append(
                    f"seed {seed}: {where!r} in {experiments} by {search.order_by} "
                    f"limit {search.limit}:\n  expected {expected}\n  got      {got}"
                )
        assert not failed, f"{len(failed)} of 150 searches differ:\n" + "\n".join(failed[:10])

    def test_runs_read_back_equal(
        self, stores: tuple[SqlExperimentStore, MemoryExperimentStore]
    ) -> None:
        """The page's runs are whole, as the reference holds them (NaN-safe)."""
        sql, reference = stores
        ids, writes = random_writes(random.Random(3), 40)
        sql.write(writes)
        reference.write(writes)
        for run_id in ids:
            assert plain(sql.get_run(run_id)) == plain(reference.get_run(run_id))


def plain(run: TrainingRun) -> str:
    """The run as text that compares fully: mappings sorted, NaN as ``nan``."""
    return repr(
        dataclasses.replace(
            run,
            params=dict(sorted(run.params.items())),
            tags=dict(sorted(run.tags.items())),
            metrics=dict(sorted(run.metrics.items())),
        )
    )
