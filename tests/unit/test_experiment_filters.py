"""The search language of training runs: parsing, and the reference semantics
(``matches``, ``select_training_runs``) every experiment store is checked against."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from typing import Any

import pytest

from umlaut_core.exceptions import ConfigurationError, UmlautError
from umlaut_core.experiments.filters import (
    DEFAULT_ORDER,
    And,
    Comparison,
    Expr,
    Field,
    FilterSyntaxError,
    Or,
    OrderBy,
    RunSearch,
    decode_page_token,
    encode_page_token,
    matches,
    parse_filter,
    parse_order_by,
    select_training_runs,
)
from umlaut_core.experiments.records import MetricSummary, RunStatus, TrainingRun

NAN, INF = float("nan"), float("inf")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def P(key: str) -> Field:
    return Field("param", key)


def T(key: str) -> Field:
    return Field("tag", key)


def M(key: str, aggregate: Any = "last") -> Field:
    return Field("metric", key, aggregate)


def A(key: str) -> Field:
    return Field("attribute", key)


def C(field: Field, op: Any, value: Any = None) -> Comparison:
    return Comparison(field, op, value)


def summary(*values: float, key: str = "m") -> MetricSummary:
    """The summary of points logged at steps 0, 1, … (NaN ignored by min/max)."""
    real = [v for v in values if not math.isnan(v)]
    lo, hi = (min(real), max(real)) if real else (NAN, NAN)
    return MetricSummary(key, values[-1], len(values) - 1, len(values), lo, hi, len(values))


def run(run_id: str = "r", **fields: Any) -> TrainingRun:
    fields.setdefault("experiment", "e")
    fields.setdefault("name", None)
    fields.setdefault("status", RunStatus.FINISHED)
    fields.setdefault("started_at", T0)
    return TrainingRun(run_id=run_id, **fields)


# -- parsing ----------------------------------------------------------------------

a, b, c = C(P("a"), "=", 1), C(P("b"), "=", 2), C(P("c"), "=", 3)
FORMS: list[tuple[str, Expr]] = [
    ("params.alpha = 0.5", C(P("alpha"), "=", 0.5)),
    ("params.alpha == 1", C(P("alpha"), "=", 1)),
    ("params.alpha != 'x'", C(P("alpha"), "!=", "x")),
    ("params.alpha <> 'x'", C(P("alpha"), "!=", "x")),
    ("params.alpha < 1", C(P("alpha"), "<", 1)),
    ("params.alpha <= 1", C(P("alpha"), "<=", 1)),
    ("params.alpha > 1", C(P("alpha"), ">", 1)),
    ("params.alpha >= 1", C(P("alpha"), ">=", 1)),
    ("params.alpha>=1", C(P("alpha"), ">=", 1)),
    ("params.a like 'x%'", C(P("a"), "like", "x%")),
    ("params.a LIKE 'x_'", C(P("a"), "like", "x_")),
    ("params.a in (1, 'b', 2.5)", C(P("a"), "in", (1, "b", 2.5))),
    ("params.a IN ('only')", C(P("a"), "in", ("only",))),
    ("params.a is null", C(P("a"), "is null")),
    ("params.a IS NOT NULL", C(P("a"), "is not null")),
    ("param.a = 1", C(P("a"), "=", 1)),
    ("params.a.b = 1", C(P("a.b"), "=", 1)),
    ("params.learning-rate = 1", C(P("learning-rate"), "=", 1)),
    ("params.größe = 1", C(P("größe"), "=", 1)),
    ("params.`learning rate` > 0.1", C(P("learning rate"), ">", 0.1)),
    ("params.`a.b` = 1", C(P("a.b"), "=", 1)),
    ("params.`ключ/ñ` = 1", C(P("ключ/ñ"), "=", 1)),
    ("tags.team = 'vision'", C(T("team"), "=", "vision")),
    ('tag.team != "nlp"', C(T("team"), "!=", "nlp")),
    ("tags.`x/y` like '%z'", C(T("x/y"), "like", "%z")),
    ("tags.status = 'ok'", C(T("status"), "=", "ok")),  # a tag, not the status
    ("metrics.loss < 1", C(M("loss"), "<", 1.0)),
    ("metric.loss.last < 1", C(M("loss"), "<", 1.0)),
    ("metrics.loss.min < 0.2", C(M("loss", "min"), "<", 0.2)),
    ("metrics.loss.MAX >= 0.9", C(M("loss", "max"), ">=", 0.9)),
    ("metrics.loss.count >= 3", C(M("loss", "count"), ">=", 3)),
    ("metrics.loss.count < 2.5", C(M("loss", "count"), "<", 2.5)),
    ("metrics.loss.count < inf", C(M("loss", "count"), "<", INF)),
    ("metrics.a.b.max > 0", C(M("a.b", "max"), ">", 0.0)),
    ("metrics.`loss.min` > 0", C(M("loss.min"), ">", 0.0)),
    ("metrics.`val/loss`.min > 0", C(M("val/loss", "min"), ">", 0.0)),
    ("metrics.min > 0", C(M("min"), ">", 0.0)),
    ("metrics.loss in (1, 2)", C(M("loss"), "in", (1.0, 2.0))),
    ("metrics.loss = inf", C(M("loss"), "=", INF)),
    ("metrics.loss > -inf", C(M("loss"), ">", -INF)),
    ("status = 'finished'", C(A("status"), "=", "FINISHED")),
    ("status in ('failed', 'Killed')", C(A("status"), "in", ("FAILED", "KILLED"))),
    ("attributes.status = 'running'", C(A("status"), "=", "RUNNING")),
    ("attribute.name like 'sweep-%'", C(A("name"), "like", "sweep-%")),
    ("attr.user = 'alice'", C(A("user"), "=", "alice")),
    ("run_id = 'X1'", C(A("run_id"), "=", "X1")),
    ("parent_id is null", C(A("parent_id"), "is null")),
    ("NAME = 'n'", C(A("name"), "=", "n")),
    ("started_at >= '2026-01-01'", C(A("started_at"), ">=", T0)),
    ("started_at < '2026-01-01T02:00:00+02:00'", C(A("started_at"), "<", T0)),
    ("ended_at in ('2026-01-01T00:00')", C(A("ended_at"), "in", (T0,))),
    ("ended_at is not null", C(A("ended_at"), "is not null")),
    ("params.x = -1e3", C(P("x"), "=", -1000.0)),
    ("params.x = .5", C(P("x"), "=", 0.5)),
    ("params.x = +3", C(P("x"), "=", 3)),
    ("params.x = 1E2", C(P("x"), "=", 100.0)),
    ("params.x = 'it''s'", C(P("x"), "=", "it's")),
    ('params.x = "say ""hi"""', C(P("x"), "=", 'say "hi"')),
    ("params.x = ''", C(P("x"), "=", "")),
    ("  params.a=1  ", a),
    ("params.a = 1 or params.b = 2 and params.c = 3", Or((a, And((b, c))))),
    ("params.a = 1 and params.b = 2 or params.c = 3", Or((And((a, b)), c))),
    ("params.a = 1 and (params.b = 2 or params.c = 3)", And((a, Or((b, c))))),
    ("(params.a = 1 or params.b = 2) and params.c = 3", And((Or((a, b)), c))),
    ("((params.a = 1))", a),
    ("params.a = 1 OR params.b = 2 Or params.c = 3", Or((a, b, c))),
    ("params.a = 1 AND params.b = 2 and params.c = 3", And((a, b, c))),
    ("params.a = 1 and (params.b = 2 and params.c = 3)", And((a, And((b, c))))),
]


class TestParseFilter:
    """Every syntax form parses to the tree a store translates."""

    @pytest.mark.parametrize(("text", "tree"), FORMS, ids=[t for t, _ in FORMS])
    def test_form(self, text: str, tree: Expr) -> None:
        assert parse_filter(text) == tree

    @pytest.mark.parametrize("text", [None, "", "   \n"])
    def test_blank_is_no_filter(self, text: str | None) -> None:
        assert parse_filter(text) is None

    def test_nan_literal(self) -> None:
        parsed = parse_filter("metrics.loss = nan")
        assert isinstance(parsed, Comparison) and math.isnan(parsed.value)

    def test_numbers_keep_int_or_float(self) -> None:
        one, one_point_o = parse_filter("params.a = 1"), parse_filter("params.a = 1.0")
        assert isinstance(one, Comparison) and type(one.value) is int
        assert isinstance(one_point_o, Comparison) and type(one_point_o.value) is float


ERRORS = [
    ("params.a", "expected an operator"),
    ("params.a =", "expected a value"),
    ("params.a = unquoted", "expected a value"),
    ("params.a = 1 and", "expected a field"),
    ("params.a = 1)", "unexpected ')'"),
    ("(params.a = 1", "expected )"),
    ("()", "expected a field"),
    ("params.a in ()", "expected a value"),
    ("params.a in (1, 2", "expected )"),
    ("params.a in 1", "expected ("),
    ("params.a like 1", "expected a quoted string"),
    ("params.a not in (1)", "expected an operator"),
    ("params.a is 1", "expected NULL after IS"),
    ("params.a is not 1", "expected NULL after IS"),
    ("params.a = 1 params.b = 2", "unexpected 'params.b'"),
    ("foo = 1", "unknown field 'foo'; use params.<key>"),
    ("attributes.foo = 'x'", "unknown field"),
    ("nope.x = 1", "start it with params., tags. or metrics."),
    ("params.a = 'unterminated", "cannot read the filter at"),
    ("params.a ~ 1", "cannot read the filter at"),
    ("params.ñ = 1", "cannot read the filter at"),
    ("params.a = 1.2.3", "cannot read the filter at"),
    ("tags.t = 1", "compares with quoted strings"),
    ("status = 1", "compares with quoted strings"),
    ("name in ('a', 1)", "compares with quoted strings"),
    ("metrics.m = 'x'", "compares with numbers"),
    ("metrics.m like 'x%'", "compares with numbers"),
    ("started_at > 5", "ISO 8601"),
    ("started_at > 'yesterday'", "'yesterday' is not an ISO 8601 time"),
    ("started_at like '2026%'", "LIKE"),
]


class TestFilterErrors:
    """A filter that cannot be read is a FilterSyntaxError saying where and why."""

    @pytest.mark.parametrize(("text", "says"), ERRORS, ids=[t for t, _ in ERRORS])
    def test_error(self, text: str, says: str) -> None:
        with pytest.raises(FilterSyntaxError) as info:
            parse_filter(text)
        assert says in str(info.value)
        assert isinstance(info.value, ConfigurationError)
        assert isinstance(info.value, UmlautError)


class TestParseOrderBy:
    """One field and a direction; started_at DESC by default."""

    @pytest.mark.parametrize(
        ("text", "order"),
        [
            (None, DEFAULT_ORDER),
            ("", DEFAULT_ORDER),
            ("started_at", OrderBy(A("started_at"), False)),
            ("metrics.acc.max DESC", OrderBy(M("acc", "max"), True)),
            ("metrics.acc desc", OrderBy(M("acc"), True)),
            ("params.`learning rate`", OrderBy(P("learning rate"), False)),
            ("params.`learning rate` Desc", OrderBy(P("learning rate"), True)),
            ("tags.team asc", OrderBy(T("team"), False)),
            ("attributes.name desc", OrderBy(A("name"), True)),
        ],
    )
    def test_order(self, text: str | None, order: OrderBy) -> None:
        assert parse_order_by(text) == order

    def test_default_is_newest_first(self) -> None:
        assert OrderBy(A("started_at"), True) == DEFAULT_ORDER
        assert RunSearch().order_by == DEFAULT_ORDER

    @pytest.mark.parametrize("text", ["params.a desc extra", "params.a = 1", "foo", "desc"])
    def test_error(self, text: str) -> None:
        with pytest.raises(FilterSyntaxError):
            parse_order_by(text)


# -- matches ----------------------------------------------------------------------


def hits(text: str, *runs: TrainingRun) -> list[bool]:
    expr = parse_filter(text)
    return [matches(expr, r) for r in runs]


class TestMatches:
    """The exact meaning of a filter, as every store must reproduce it."""

    def test_no_filter_matches_everything(self) -> None:
        assert matches(None, run())

    @pytest.mark.parametrize(
        "text",
        ["params.p = 1", "params.p != 1", "params.p < 'z'", "params.p like '%'",
         "params.p in (1, 'x')", "tags.t != 'x'", "metrics.m != 0", "name != 'x'",
         "ended_at != '2026-01-01'", "parent_id like '%'", "params.p is not null"],
    )  # fmt: skip
    def test_a_missing_field_matches_nothing(self, text: str) -> None:
        assert hits(text, run()) == [False]

    @pytest.mark.parametrize(
        "text", ["params.p is null", "tags.t is null", "metrics.m.min is null", "name is null",
                 "parent_id is null", "ended_at is null", "user is null"],
    )  # fmt: skip
    def test_only_is_null_matches_a_missing_field(self, text: str) -> None:
        assert hits(text, run()) == [True]
        assert hits(text.replace("is null", "is not null"), run()) == [False]

    def test_params_compare_only_with_their_own_type(self) -> None:
        values: list[Any] = [1, 1.0, 2.5, "1", "b", "B", True, [1], {"a": 1}, None]
        runs = [run(f"r{i}", params={"p": v}) for i, v in enumerate(values)]
        assert hits("params.p = 1", *runs) == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        assert hits("params.p = '1'", *runs) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        assert hits("params.p != 1", *runs) == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        assert hits("params.p != 'b'", *runs) == [0, 0, 0, 1, 0, 1, 0, 0, 0, 0]
        assert hits("params.p >= 1", *runs) == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
        assert hits("params.p < 'a'", *runs) == [0, 0, 0, 1, 0, 1, 0, 0, 0, 0]  # by code point
        assert hits("params.p in (2.5, 'b')", *runs) == [0, 0, 1, 0, 1, 0, 0, 0, 0, 0]
        assert hits("params.p like '%'", *runs) == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
        assert hits("params.p is not null", *runs) == [1] * 9 + [0]

    def test_like_is_sqls_and_case_sensitive(self) -> None:
        names = ["sweep-1", "sweep-10", "Sweep-2", "sweepx1", "a.c", "abc", "two\nlines", "%_"]
        runs = [run(f"r{i}", name=n) for i, n in enumerate(names)]
        assert hits("name like 'sweep-%'", *runs) == [1, 1, 0, 0, 0, 0, 0, 0]
        assert hits("name like 'sweep-_'", *runs) == [1, 0, 0, 0, 0, 0, 0, 0]
        assert hits("name like 'sweep_1'", *runs) == [1, 0, 0, 1, 0, 0, 0, 0]
        assert hits("name like 'a.c'", *runs) == [0, 0, 0, 0, 1, 0, 0, 0]
        assert hits("name like 'two%'", *runs) == [0, 0, 0, 0, 0, 0, 1, 0]
        assert hits("name like '%'", *runs) == [1] * 8
        assert hits("name like 'SWEEP%'", *runs) == [0] * 8

    def test_a_nan_metric_value_compares_false(self) -> None:
        r = run(metrics={"m": summary(1.0, NAN)})
        for op in ("=", "!=", "<", "<=", ">", ">="):
            assert hits(f"metrics.m {op} 1", r) == [False], op
        assert hits("metrics.m in (1, 2)", r) == [False]
        assert hits("metrics.m is not null", r) == [True]  # NaN is a value, not a gap
        assert hits("metrics.m.min = 1 and metrics.m.max = 1 and metrics.m.count = 2", r) == [True]

    def test_a_nan_literal_compares_as_ieee(self) -> None:
        """Only ``!=`` is true, so ``!= nan`` finds the runs whose value is a number."""
        runs = [run("a", params={"p": 1.5}, metrics={"m": summary(1.5)}),
                run("b", params={"p": "x"}, metrics={"m": summary(NAN)})]  # fmt: skip
        for op in ("=", "<", "<=", ">", ">="):
            assert hits(f"metrics.m {op} nan or params.p {op} nan", *runs) == [False, False]
        assert hits("metrics.m != nan", *runs) == [True, False]
        assert hits("params.p != nan", *runs) == [True, False]

    def test_all_nan_metric_has_nan_min_and_max(self) -> None:
        r = run(metrics={"m": summary(NAN, NAN)})
        assert hits("metrics.m.min < inf or metrics.m.max > -inf", r) == [False]
        assert hits("metrics.m.count = 2", r) == [True]

    def test_infinities_are_values(self) -> None:
        r = run(metrics={"m": summary(-INF, 0.5, INF)})
        assert hits("metrics.m = inf", r) == [True]
        assert hits("metrics.m > 1e308", r) == [True]
        assert hits("metrics.m.min < -1e308", r) == [True]
        assert hits("metrics.m.max != inf", r) == [False]

    def test_count_compares_with_any_number(self) -> None:
        r = run(metrics={"m": summary(1.0, 2.0)})
        assert hits("metrics.m.count < 2.5", r) == [True]
        assert hits("metrics.m.count = 2.5", r) == [False]
        assert hits("metrics.m.count < inf", r) == [True]

    def test_times_compare_as_moments(self) -> None:
        r = run(started_at=T0 + dt.timedelta(hours=1), ended_at=T0 + dt.timedelta(hours=2))
        assert hits("started_at = '2026-01-01T01:00:00'", r) == [True]  # naive: UTC
        assert hits("started_at = '2026-01-01T03:00:00+02:00'", r) == [True]
        assert hits("started_at > '2026-01-01T01:00:00+00:00'", r) == [False]
        assert hits("ended_at > '2026-01-01T01:30' and ended_at < '2026-01-01T02:00:01'", r) == [
            True
        ]

    def test_attributes(self) -> None:
        r = run("ID1", name="n", status=RunStatus.KILLED, parent_id="P", user="alice")
        assert hits("status = 'killed' and status in ('FAILED', 'KILLED')", r) == [True]
        assert hits("status != 'KILLED' or status like 'R%'", r) == [False]
        assert hits("run_id = 'ID1' and parent_id = 'P' and user = 'alice' and name = 'n'", r) == [
            True
        ]
        assert hits("attributes.user > 'al' and attributes.user < 'am'", r) == [True]

    def test_tag_named_status_is_a_tag(self) -> None:
        r = run(tags={"status": "ok"})
        assert hits("tags.status = 'ok'", r) == [True]
        assert hits("tags.status = 'OK'", r) == [False]

    @pytest.mark.parametrize(
        "text",
        ["params.p = 1", "params.p != 'x'", "params.p != nan", "params.p >= inf",
         "params.p in (1, 'x')", "params.q != 1", "params.q = 'x'", "tags.t != 'x'",
         "metrics.m != 1", "metrics.m.max >= -inf", "metrics.m < nan", "metrics.m < inf"],
    )  # fmt: skip
    def test_a_value_without_a_pairing_is_no_match(self, text: str) -> None:
        """A list param, a missing one, a NaN metric: no match, and nothing raises."""
        assert hits(text, run(params={"p": [1]}, metrics={"m": summary(NAN)})) == [False]

    def test_and_or(self) -> None:
        runs = [run(f"r{i}", params={"a": i % 2, "b": i % 3}) for i in range(6)]
        assert hits("params.a = 1 and params.b = 0", *runs) == [0, 0, 0, 1, 0, 0]
        assert hits("params.a = 1 or params.b = 0", *runs) == [1, 1, 0, 1, 0, 1]
        assert hits("params.a = 0 or params.a = 1 and params.b = 2", *runs) == [1, 0, 1, 0, 1, 1]
        assert hits("(params.a = 0 or params.a = 1) and params.b = 2", *runs) == [0, 0, 1, 0, 0, 1]


# -- ordering and paging ----------------------------------------------------------


def ids(runs: list[TrainingRun]) -> list[str]:
    return [r.run_id for r in runs]


def ordered(text: str, runs: list[TrainingRun], **search: Any) -> list[str]:
    page, token = select_training_runs(runs, RunSearch(order_by=parse_order_by(text), **search))
    assert token is None
    return ids(page)


class TestOrdering:
    """One key, ties by run_id, and whatever has no place among the values last."""

    def test_default_is_started_at_desc_ties_by_run_id(self) -> None:
        runs = [run(i, started_at=T0 + dt.timedelta(seconds=s)) for i, s in
                [("a", 1), ("b", 2), ("c", 1), ("d", 0)]]  # fmt: skip
        assert ordered("", runs) == ["b", "c", "a", "d"]
        assert ordered("started_at asc", runs) == ["d", "a", "c", "b"]

    def test_missing_and_nan_come_last_both_ways(self) -> None:
        runs = [
            run("a", metrics={"m": summary(2.0)}),
            run("b"),
            run("c", metrics={"m": summary(1.0, NAN)}),
            run("d", metrics={"m": summary(INF)}),
            run("e", metrics={"m": summary(-INF)}),
            run("f", metrics={"m": summary(2.0)}),
        ]
        assert ordered("metrics.m asc", runs) == ["e", "a", "f", "d", "b", "c"]
        assert ordered("metrics.m desc", runs) == ["d", "f", "a", "e", "c", "b"]
        assert ordered("metrics.m.min asc", runs) == ["e", "c", "a", "f", "d", "b"]

    def test_params_numbers_before_strings_ascending(self) -> None:
        values: list[Any] = [2, "10", 1.5, "9", True, [1], "B", "a", 1.5, None]
        runs = [run(f"r{i}", params={} if v is None else {"p": v}) for i, v in enumerate(values)]
        asc = ["r2", "r8", "r0", "r1", "r3", "r6", "r7", "r4", "r5", "r9"]
        assert ordered("params.p", runs) == asc
        desc = ["r7", "r6", "r3", "r1", "r0", "r8", "r2", "r9", "r5", "r4"]
        assert ordered("params.p desc", runs) == desc

    def test_experiments_narrow(self) -> None:
        runs = [run("a", experiment="x"), run("b", experiment="y"), run("c", experiment="z")]
        assert ordered("run_id", runs, experiments=("x", "z")) == ["a", "c"]
        assert ordered("run_id", runs) == ["a", "b", "c"]


def value_of(r: TrainingRun, f: Field) -> Any:
    """The sort value by the documented rules, written out apart from ``sort_key``:
    None for what has no place (missing, NaN, bool, list, object)."""
    if f.kind == "param":
        v = r.params.get(f.key)
    elif f.kind == "tag":
        v = r.tags.get(f.key)
    elif f.kind == "metric":
        s = r.metrics.get(f.key)
        v = None if s is None else getattr(s, f.aggregate)
    else:
        v = getattr(r, f.key)
        v = v.value if isinstance(v, RunStatus) else v
    if v is None or isinstance(v, bool) or (isinstance(v, float) and math.isnan(v)):
        return None
    if not isinstance(v, int | float | str | dt.datetime):
        return None
    if f.kind == "param":
        return (1, v) if isinstance(v, str) else (0, v)
    return v


def brute_force(runs: list[TrainingRun], search: RunSearch) -> list[str]:
    hit = [r for r in runs if matches(search.where, r)]
    f, desc = search.order_by.field, search.order_by.descending
    present = sorted((r for r in hit if value_of(r, f) is not None),
                     key=lambda r: (value_of(r, f), r.run_id), reverse=desc)  # fmt: skip
    missing = sorted((r for r in hit if value_of(r, f) is None),
                     key=lambda r: r.run_id, reverse=desc)  # fmt: skip
    return ids(present + missing)


def random_runs(rng: random.Random) -> list[TrainingRun]:
    params: list[Any] = [None, 1, 1.0, 2, 2.5, -1, "a", "B", "10", "", True, [1], {"k": 1}]
    tags = [None, "x", "y", "X", ""]
    values = [NAN, INF, -INF, 0.5, 1.0, 0.5, -2.0]
    out = []
    for run_id in rng.sample(range(10_000), rng.randint(0, 40)):
        metrics = {}
        if rng.random() < 0.8:
            metrics["m"] = summary(*rng.choices(values, k=rng.randint(1, 4)))
        p, t = rng.choice(params), rng.choice(tags)
        out.append(
            run(
                f"{run_id:05d}",
                name=rng.choice([None, "a", "b", "a"]),
                status=rng.choice(list(RunStatus)),
                started_at=T0 + dt.timedelta(seconds=rng.randint(0, 4)),
                ended_at=rng.choice([None, T0, T0 + dt.timedelta(seconds=1)]),
                params={} if p is None else {"p": p},
                tags={} if t is None else {"t": t},
                metrics=metrics,
            )
        )
    return out


ORDER_FIELDS = [
    "params.p", "tags.t", "metrics.m", "metrics.m.min", "metrics.m.max", "metrics.m.count",
    "started_at", "name", "status", "run_id", "ended_at",
]  # fmt: skip
WHERES = [None, "params.p >= 1 or params.p < 'b'", "metrics.m > 0", "status != 'RUNNING'",
          "tags.t is null or name = 'a'"]  # fmt: skip


class TestPaging:
    """Keyset pages visit every matching run once, in order, through ties and gaps."""

    @pytest.mark.parametrize("seed", range(60))
    def test_random_pages_match_a_brute_force_order(self, seed: int) -> None:
        rng = random.Random(seed)
        runs = random_runs(rng)
        for _ in range(8):
            order = f"{rng.choice(ORDER_FIELDS)} {rng.choice(['asc', 'desc'])}"
            where = rng.choice(WHERES)
            search = RunSearch(
                where=parse_filter(where), order_by=parse_order_by(order), limit=rng.randint(1, 7)
            )
            expected = brute_force(runs, search)
            pages, token = [], None
            for _ in range(len(runs) + 2):
                page, token = select_training_runs(runs, RunSearch(
                    where=search.where, order_by=search.order_by, limit=search.limit,
                    page_token=token))  # fmt: skip
                pages.append(ids(page))
                if token is None:
                    break
            assert list(itertools.chain(*pages)) == expected, (order, where, search.limit)
            assert all(len(p) == search.limit for p in pages[:-1])
            assert pages[-1] or len(pages) == 1  # no empty page after a token

    def test_a_page_that_ends_with_the_last_run_has_no_token(self) -> None:
        runs = [run(f"r{i}") for i in range(4)]
        page, token = select_training_runs(runs, RunSearch(limit=4))
        assert len(page) == 4 and token is None
        page, token = select_training_runs(runs, RunSearch(limit=3))
        assert len(page) == 3 and token is not None

    def test_token_round_trips_and_garbage_is_refused(self) -> None:
        for value in (None, 1.5, "x", [1, "a"], INF, -INF, 2**70):
            assert decode_page_token(encode_page_token(value, "R1")) == (value, "R1")
        for garbage in ("not a token", "", encode_page_token(1, "r")[:-3], "W10"):
            with pytest.raises(ConfigurationError):
                decode_page_token(garbage)
        with pytest.raises(ConfigurationError):
            select_training_runs([run()], RunSearch(page_token="garbage!"))
