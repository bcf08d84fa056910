"""Searching training runs: filters, ordering and keyset paging, against the reference.

The tests search one experiment of 30 runs built to hit the language's corners
(params of mixed JSON types, missing fields, NaN and infinite metrics, runs that
start at the same moment, upper- and lower-case text), read back with ``get_run``,
and check that ``search_runs`` returns what
:func:`~umlaut_core.experiments.filters.select_training_runs` returns for those
runs: the same runs, in the same order, on the same pages. A failing test lists
every search that differed, with the runs by their index (``r7``) in the data set.

Writing the 30 runs is the slow part against a server (an MLflow server over HTTP),
so a store shared by several tests (same type and ``uri``) gets them once: a later
test reuses them after checking that the store still holds them unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from ...exceptions import ConfigurationError, TrainingRunNotFoundError
from ...experiments.filters import (
    RunSearch,
    parse_filter,
    parse_order_by,
    select_training_runs,
)
from ...experiments.protocol import ExperimentStore
from ...experiments.records import MetricPoint, RunStatus, TrainingRun
from ...experiments.writes import MetricsLogged, ParamsLogged, RunEnded, RunStarted, RunWrite
from ...ids import new_run_id
from .experiments import INF, NAN, ExperimentTestBase, at, plain_run, points

__all__ = ["TrainingRunSearchTests"]

RUNS = 30
#: 15 values, so each appears twice (ties): numbers, numeric text, text of both
#: cases, a bool (not a number here), and a list and an object (no order at all).
_ALPHAS: tuple[Any, ...] = (
    0.5, "0.5", 1, 1.0, 2, 0.1, "abc", "B", "a", True, [1, 2], {"x": 1}, 2.5, "10", "9",
)  # fmt: skip
_TEAMS = ("vision", "nlp", "Vision", None, "vision", "ärger")
_STATUSES = (
    RunStatus.FINISHED, RunStatus.FINISHED, RunStatus.FAILED, RunStatus.RUNNING, RunStatus.KILLED,
)  # fmt: skip
_USERS = ("alice", "bob", None)

PARAM_FILTERS = (
    "params.alpha = 0.5", "params.alpha = '0.5'", "params.alpha = 1", "params.alpha != 1",
    "params.alpha > 0.4", "params.alpha <= 1", "params.alpha >= 'a'", "params.alpha < 'a'",
    "params.alpha like 'a%'", "params.alpha like '_'", "params.alpha in (1, 'abc', 2.5)",
    "params.alpha is null", "params.alpha is not null", "params.alpha = nan",
    "params.alpha != nan", "params.n = 2", "params.n != 2", "params.n >= 1",
    "params.n is null", "params.n in (0, 3)", "params.`learning rate` > 0.002",
    "params.`learning rate` = 0.003", "params.flag = 1", "params.flag = 'True'",
    "params.flag != 0", "params.nested = 1", "params.nested is not null",
    "params.nested != 'x'", "params.never is null", "params.never != 1",
)  # fmt: skip
TAG_AND_ATTRIBUTE_FILTERS = (
    "tags.team = 'vision'", "tags.team != 'vision'", "tags.team < 'o'",
    "tags.team >= 'Vision'", "tags.team > 'w'", "tags.team like 'v%'",
    "tags.team like 'V_sion'", "tags.team in ('nlp', 'Vision')", "tags.team is null",
    "tags.team is not null", "tags.`with space` = 'x1'", "tags.status = 'ok'",
    "tags.team = 'ärger'", "status = 'FINISHED'", "status = 'finished'",
    "status != 'RUNNING'", "status in ('failed', 'KILLED')", "attributes.status like 'F%'",
    "parent_id is null", "parent_id is not null", "parent_id = '{r0}'", "run_id = '{r7}'",
    "run_id in ('{r1}', '{r2}', 'no such run')", "run_id > '{r15}'",
    "name like 'sweep-%'", "name like 'Sweep-%'", "name like 'sweep-_'", "name like 'sweep.%'",
    "name like '%-2%'", "name = 'sweep-3'", "name != 'sweep-3'", "name is null",
    "user != 'alice'", "user is null", "attributes.user in ('bob')",
    "started_at >= '{t5}'", "started_at < '{t5}'", "started_at = '{t5}'",
    "started_at <= '{t5_naive}'", "started_at > '{t5_plus2}'",
    "started_at < '2025-06-01T12:03'", "ended_at is null", "ended_at > '{t10}'",
)  # fmt: skip
METRIC_FILTERS = (
    "metrics.loss < 0.5", "metrics.loss >= 0.5", "metrics.loss != 0.5", "metrics.loss = 0.3",
    "metrics.loss.last > 0.3", "metrics.loss.min < 0.2", "metrics.loss.max >= 0.9",
    "metrics.loss.max > 1e300", "metrics.loss.min < -1e300", "metrics.loss = inf",
    "metrics.loss > -inf", "metrics.loss.count = 3", "metrics.loss.count >= 2",
    "metrics.loss.count < 2.5", "metrics.loss.count in (1, 4)", "metrics.loss is null",
    "metrics.loss is not null", "metrics.loss in (0.5, 0.3)", "metrics.loss = nan",
    "metrics.loss != nan", "metrics.`val/acc` > 0.5", "metrics.`val/acc`.max = 0.3",
    "metrics.`val/acc`.count = 1", "metrics.never < 1",
)  # fmt: skip
BOOLEAN_FILTERS = (
    "status = 'FINISHED' and params.n = 1",
    "status = 'FINISHED' or params.n = 1",
    "tags.team = 'vision' or tags.team = 'nlp' and params.n >= 1",
    "(tags.team = 'vision' or tags.team = 'nlp') and params.n >= 1",
    "params.alpha > 0.4 and (metrics.loss.min < 0.3 or tags.team = 'vision')",
    "((status = 'FAILED'))",
    "parent_id is null and (metrics.loss.count >= 2 or user = 'bob') and started_at >= '{t3}'",
    "status = 'RUNNING' OR status = 'KILLED' AND user IS NOT NULL",
    "tags.team is null or params.n is null or metrics.loss is null",
    "(params.n = 0 or params.n = 1) and (tags.status = 'ok' or metrics.loss > 0.5)"
    " or name like 'Sweep%'",
    "status != 'RUNNING' and status != 'KILLED' and (params.alpha < 1 or params.alpha > 'a')",
)
#: Both directions where missing values, NaN or mixed types meet ties; one elsewhere.
ORDERS = (
    "started_at ASC", "started_at DESC", "params.alpha ASC", "params.alpha DESC",
    "params.n ASC", "params.n DESC", "tags.team ASC", "tags.team DESC", "metrics.loss ASC",
    "metrics.loss DESC", "metrics.loss.min ASC", "metrics.loss.min DESC", "name ASC",
    "name DESC", "params.`learning rate` DESC", "params.nested ASC", "metrics.loss.max DESC",
    "metrics.loss.count ASC", "metrics.`val/acc` DESC", "status ASC", "ended_at DESC",
    "user ASC", "parent_id DESC", "run_id ASC",
)  # fmt: skip
PAGED_ORDERS = (
    "started_at DESC", "params.alpha ASC", "params.alpha DESC", "tags.team DESC",
    "metrics.loss ASC", "metrics.loss.count DESC", "name ASC",
)  # fmt: skip


@dataclasses.dataclass
class SearchData:
    """An experiment of runs written to the store, and the runs as ``get_run`` read them."""

    experiment: str
    runs: list[TrainingRun]
    #: Placeholders of the filters: ``r<i>`` run ids, ``t<…>`` times.
    values: dict[str, str]

    def label(self, runs: Sequence[TrainingRun]) -> str:
        index = {r.run_id: f"r{i}" for i, r in enumerate(self.runs)}
        return "[" + ", ".join(index.get(r.run_id, r.run_id) for r in runs) + "]"


#: The data set last written to each store shared between tests (see the docstring).
_WRITTEN: dict[tuple[type[Any], str], SearchData] = {}


def _metric_points(i: int, rng: random.Random) -> tuple[MetricPoint, ...]:
    loss: list[float] = []
    if i % 9 != 8:  # else no loss at all
        loss = [round(rng.uniform(0, 1), 1) for _ in range(1 + i % 4)]  # one decimal: ties
        if i % 7 == 3:
            loss[len(loss) // 2] = NAN  # mid-series, or the last, or the only value
        if i == 10:
            loss = [NAN] * len(loss)
        if i == 12:
            loss[-1] = INF
        if i == 19:
            loss[0] = -INF
    pts = list(points("loss", loss))
    rng.shuffle(pts)  # points arrive out of order; the summaries must not care
    if i % 4 != 3:
        pts.extend(points("val/acc", [round(rng.random(), 1)]))
    return tuple(pts)


def search_data_writes(experiment: str) -> tuple[list[str], list[RunWrite]]:
    """The writes of the data set (deterministic but for the run ids): parents first."""
    rng = random.Random(13)
    ids = [new_run_id() for _ in range(RUNS)]
    writes: list[RunWrite] = []
    for i, run_id in enumerate(ids):
        name = None if i % 5 == 0 else f"Sweep-{i}" if i % 7 == 0 else f"sweep-{i}"
        name = "sweep.29" if i == 29 else name
        started = at(60 * (i // 2))  # two runs per moment: ties broken by run_id
        tags = {"with space": f"x{i % 2}", "status": "ok" if i % 2 == 0 else "bad"}
        team = _TEAMS[i % len(_TEAMS)]
        if team is not None:
            tags["team"] = team
        parent = ids[0] if 1 <= i <= 5 else None
        writes.append(
            RunStarted(run_id, experiment, name, started, parent_id=parent,
                       user=_USERS[i % 3], host="host-a", tags=tags)
        )  # fmt: skip
        params = {
            "alpha": _ALPHAS[i % len(_ALPHAS)],
            "learning rate": round(0.001 * (i % 5 + 1), 4),
            "nested": {"depth": i % 3},
            "flag": i % 2 == 0,
        }
        if i % 3 != 2:
            params["n"] = i % 4
        writes += [ParamsLogged(run_id, params), MetricsLogged(run_id, _metric_points(i, rng))]
        status = _STATUSES[i % len(_STATUSES)]
        if status is not RunStatus.RUNNING:
            error = f"ValueError: bad {i}" if status is RunStatus.FAILED else None
            writes.append(RunEnded(run_id, status, started + dt.timedelta(seconds=30 + i), error))
    return ids, writes


def _placeholders(ids: Sequence[str]) -> dict[str, str]:
    t5 = at(300)
    values = {f"r{i}": run_id for i, run_id in enumerate(ids)}
    values |= {
        "t3": at(180).isoformat(),
        "t5": t5.isoformat(),
        "t5_naive": t5.replace(tzinfo=None).isoformat(),  # naive: UTC
        "t5_plus2": t5.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(),
        "t10": at(600 + 45).isoformat(),
    }
    return values


def _ids(runs: Sequence[TrainingRun]) -> list[str]:
    return [r.run_id for r in runs]


class TrainingRunSearchTests(ExperimentTestBase):
    """``search_runs`` returns what ``select_training_runs`` returns for the same runs."""

    @pytest.fixture
    def search_data(self, experiment_store: ExperimentStore, experiment: str) -> SearchData:
        """30 runs in a fresh experiment, written in one batch, read back one by one
        (or those a previous test wrote, if this store still holds them unchanged)."""
        key = (type(experiment_store), experiment_store.uri)
        written = _WRITTEN.get(key)
        if written is not None and self.still_held(experiment_store, written):
            return written
        ids, writes = search_data_writes(experiment)
        experiment_store.write(writes)
        runs = [experiment_store.get_run(run_id) for run_id in ids]
        if len(_WRITTEN) > 16:  # stores of finished classes: nothing will reuse them
            _WRITTEN.clear()
        _WRITTEN[key] = data = SearchData(experiment, runs, _placeholders(ids))
        return data

    @staticmethod
    def still_held(store: ExperimentStore, data: SearchData) -> bool:
        """Whether ``store`` is the one ``data`` was written to (a store opened anew
        on the same URI may be another, empty one: ``memory:``, a fresh file)."""
        first, last = data.runs[0], data.runs[-1]
        try:
            return all(plain_run(store.get_run(r.run_id)) == plain_run(r) for r in (first, last))
        except TrainingRunNotFoundError:
            return False

    @staticmethod
    def mismatches(
        store: ExperimentStore, data: SearchData, filters: Sequence[str], order: str | None = None
    ) -> list[str]:
        """Each filter whose result differs from the reference, described."""
        out = []
        for text in filters:
            where = text.format(**data.values)
            search = RunSearch((data.experiment,), parse_filter(where), parse_order_by(order))
            expected, _ = select_training_runs(data.runs, search)
            got = store.search_runs(search)
            if _ids(got.runs) != _ids(expected) or got.next_page_token is not None:
                out.append(
                    f"{where!r}: expected {data.label(expected)}, got {data.label(got.runs)}"
                    + (" and a next page" if got.next_page_token is not None else "")
                )
        return out

    def test_filters_on_params(
        self, experiment_store: ExperimentStore, search_data: SearchData
    ) -> None:
        """Numbers match numeric params, strings string params, bools and objects neither."""
        failed = self.mismatches(experiment_store, search_data, PARAM_FILTERS, "run_id")
        assert not failed, "\n".join(failed)

    def test_filters_on_tags_and_attributes(
        self, experiment_store: ExperimentStore, search_data: SearchData
    ) -> None:
        """Text compares case-sensitively by code point; times as moments."""
        failed = self.mismatches(experiment_store, search_data, TAG_AND_ATTRIBUTE_FILTERS)
        assert not failed, "\n".join(failed)

    def test_filters_on_metric_summaries(
        self, experiment_store: ExperimentStore, search_data: SearchData
    ) -> None:
        """last/min/max/count as kept; a run's NaN compares false, a ``nan`` literal as
        in IEEE 754 (only ``!=`` holds)."""
        failed = self.mismatches(experiment_store, search_data, METRIC_FILTERS, "run_id")
        assert not failed, "\n".join(failed)

    def test_and_or_and_parentheses(
        self, experiment_store: ExperimentStore, search_data: SearchData
    ) -> None:
        """AND binds tighter than OR; parentheses group."""
        failed = self.mismatches(experiment_store, search_data, BOOLEAN_FILTERS, "name asc")
        assert not failed, "\n".join(failed)

    def test_orderings_keep_missing_values_last(
        self, experiment_store: ExperimentStore, search_data: SearchData
    ) -> None:
        """Every field ascending and descending, ties by run_id, missing and NaN last;
        and the runs found are whole, as ``get_run`` returns them."""
        data, failed = search_data, []
        default = experiment_store.search_runs(RunSearch((data.experiment,)))
        by_id = {r.run_id: plain_run(r) for r in data.runs}
        assert [plain_run(r) for r in default.runs] == [by_id[r.run_id] for r in default.runs]
        for order in ["", *ORDERS]:
            search = RunSearch((data.experiment,), order_by=parse_order_by(order))
            expected, _ = select_training_runs(data.runs, search)
            got = default if not order else experiment_store.search_runs(search)
            if _ids(got.runs) != _ids(expected):
                failed.append(f"{order or 'default'}: expected {data.label(expected)}, "
                              f"got {data.label(got.runs)}")  # fmt: skip
        assert not failed, "\n".join(failed)

    def test_keyset_paging_visits_each_run_once(
        self, experiment_store: ExperimentStore, search_data: SearchData
    ) -> None:
        """Pages follow one another through ties and missing values, as the reference's."""
        data, failed = search_data, []
        searches = [
            RunSearch((data.experiment,), order_by=parse_order_by(order), limit=7)
            for order in PAGED_ORDERS
        ]
        searches.append(
            RunSearch((data.experiment,), parse_filter("status != 'RUNNING'"),
                      parse_order_by("params.alpha DESC"), limit=3)
        )  # fmt: skip
        for search in searches:
            expected = self.pages(data.runs, search, None)
            got = self.pages(data.runs, search, experiment_store)
            if got != expected:
                failed.append(f"{search.order_by} limit {search.limit}: expected pages "
                              f"{expected}, got {got}")  # fmt: skip
            seen = list(itertools.chain.from_iterable(got))
            assert len(seen) == len(set(seen)), f"a run seen twice: {got}"
        assert not failed, "\n".join(failed)

    @staticmethod
    def pages(
        runs: list[TrainingRun], search: RunSearch, store: ExperimentStore | None
    ) -> list[list[str]]:
        """Every page's run ids, following tokens (the reference's when no store)."""
        out: list[list[str]] = []
        token = None
        for _ in range(RUNS + 1):
            search = dataclasses.replace(search, page_token=token)
            if store is None:
                page, token = select_training_runs(runs, search)
            else:
                found = store.search_runs(search)
                page, token = found.runs, found.next_page_token
            out.append(_ids(page))
            if token is None:
                return out
        pytest.fail(f"more pages than runs: {out}")

    def test_experiments_narrow_the_search(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        marker = uuid.uuid4().hex
        other = experiment + " other"
        ids = [new_run_id() for _ in range(5)]
        experiment_store.write([
            RunStarted(run_id, experiment if i < 3 else other, f"n{i}", at(i),
                       tags={"marker": marker})
            for i, run_id in enumerate(ids)
        ])  # fmt: skip
        runs = [experiment_store.get_run(run_id) for run_id in ids]
        where = parse_filter(f"tags.marker = '{marker}'")
        for names in ((experiment,), (experiment, other), (other, "no such experiment"), ()):
            search = RunSearch(names, where)
            expected, _ = select_training_runs(runs, search)
            assert _ids(experiment_store.search_runs(search).runs) == _ids(expected), names
        nowhere = RunSearch(("no such experiment " + marker,))
        assert experiment_store.search_runs(nowhere).runs == []

    def test_page_edges(self, experiment_store: ExperimentStore, experiment: str) -> None:
        """A page that ends with the last run has no token; an empty search is one
        empty page; a token that is not one is a ConfigurationError."""
        ids = [new_run_id() for _ in range(3)]
        experiment_store.write([RunStarted(r, experiment, None, at(i)) for i, r in enumerate(ids)])
        newest_first = ids[::-1]

        def search(limit: int, token: str | None = None, where: str | None = None) -> Any:
            return experiment_store.search_runs(
                RunSearch((experiment,), parse_filter(where), limit=limit, page_token=token)
            )

        whole = search(3)
        assert (_ids(whole.runs), whole.next_page_token) == (newest_first, None)
        first = search(2)
        assert _ids(first.runs) == newest_first[:2] and first.next_page_token is not None
        rest = search(2, first.next_page_token)
        assert (_ids(rest.runs), rest.next_page_token) == (newest_first[2:], None)
        assert _ids(search(10_000).runs) == newest_first
        empty = search(5, where="status = 'FAILED'")
        assert (empty.runs, empty.next_page_token) == ([], None)
        with pytest.raises(ConfigurationError):
            search(2, "this is not a page token")
