"""Searching training runs: a small filter language, its syntax tree, and the
reference semantics every store must match.

Syntax (case-insensitive keywords; MLflow's habits carry over, with OR and grouping
added)::

    params.alpha > 0.1 and (metrics.loss.min < 0.2 or tags.team = 'vision')
    status = 'FINISHED' and started_at >= '2026-01-01T00:00:00+00:00'
    parent_id is null      name like 'sweep-%'      status in ('FAILED', 'KILLED')

Fields: ``params.<key>``, ``tags.<key>``, ``metrics.<key>`` (the last value) or
``metrics.<key>.<last|min|max|count>``, and the attributes ``run_id``, ``name``,
``status``, ``parent_id``, ``user``, ``started_at``, ``ended_at`` (``attributes.``
may prefix them). Keys with other characters are quoted with backticks:
``params.`learning rate```. Operators: ``= != < <= > >= like in is null is not null``.

Exact meaning (what :func:`matches` executes and each store translates):

* A missing field (a param never logged, a tag not set) matches nothing, not even
  ``!=``; only ``is null`` matches it.
* A param is any JSON value. A number literal compares with numeric params (bools
  excluded), a string literal with string params; any other pairing is no match.
* Tags and attributes other than times compare as strings; ``started_at`` and
  ``ended_at`` compare as moments, given as ISO 8601 strings (naive means UTC).
* A comparison with a run's NaN value is false, even ``!=``; a ``nan`` literal
  compares as in IEEE 754 (only ``!=`` is true), so ``metrics.loss != nan`` finds the
  runs whose loss is a number. ``metrics.x.min``/``max`` ignore NaN points unless
  all are NaN.
* ``like`` is SQL's: ``%`` any run of characters, ``_`` one character,
  case-sensitive.

Ordering: one key (any field above, ``ASC`` or ``DESC``), then ``run_id`` in the same
direction as the tie-breaker; runs missing the key come last either way, and so do
NaN metric values and params that are not a number or a string. Ordered by a param,
numbers (by value) come before strings (by text) ascending, after them descending. The default
is ``started_at DESC``. Paging is by keyset: a page token holds the last row's sort
value and id, so a page costs the same however deep it is.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..exceptions import ConfigurationError
from .records import TrainingRun

__all__ = [
    "And",
    "Comparison",
    "Field",
    "Or",
    "OrderBy",
    "RunSearch",
    "decode_page_token",
    "encode_page_token",
    "field_value",
    "matches",
    "parse_filter",
    "parse_order_by",
    "select_training_runs",
    "sort_key",
]

Kind = Literal["param", "tag", "metric", "attribute"]
Aggregate = Literal["last", "min", "max", "count"]
Op = Literal["=", "!=", "<", "<=", ">", ">=", "like", "in", "is null", "is not null"]

ATTRIBUTES = ("run_id", "name", "status", "parent_id", "user", "started_at", "ended_at")
TIME_ATTRIBUTES = ("started_at", "ended_at")
AGGREGATES = ("last", "min", "max", "count")


class FilterSyntaxError(ConfigurationError):
    """A search filter or ordering that cannot be read; the message shows where."""


@dataclass(frozen=True, slots=True)
class Field:
    kind: Kind
    key: str
    #: For metrics: which summary (``last`` by default).
    aggregate: Aggregate = "last"

    def __str__(self) -> str:
        if self.kind == "attribute":
            return self.key
        tail = f".{self.aggregate}" if self.kind == "metric" and self.aggregate != "last" else ""
        return f"{self.kind}s.`{self.key}`{tail}"


@dataclass(frozen=True, slots=True)
class Comparison:
    field: Field
    op: Op
    #: A number, a string, a datetime (time attributes), a tuple (``in``), or None.
    value: Any = None


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


Expr = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class OrderBy:
    field: Field
    descending: bool


DEFAULT_ORDER = OrderBy(Field("attribute", "started_at"), descending=True)


@dataclass(frozen=True, slots=True)
class RunSearch:
    """What a store's ``search_runs`` receives (already parsed and checked).

    ``experiments``: names to search (empty: every experiment). ``limit`` is 1–10,000.
    ``page_token`` comes from a previous page of the same search.
    """

    experiments: tuple[str, ...] = ()
    where: Expr | None = None
    order_by: OrderBy = DEFAULT_ORDER
    limit: int = 100
    page_token: str | None = None


# -- parsing ----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)(?![\w.]))
      | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<op><=|>=|!=|<>|==|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>(?:[A-Za-z_][\w]*|`[^`]+`)(?:\.(?:[A-Za-z_][\w-]*|`[^`]+`|\d+))*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterSyntaxError(
                f"cannot read the filter at {text[pos : pos + 20]!r} ({text!r})"
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def _split_dotted(word: str) -> list[str]:
    parts = re.findall(r"`[^`]+`|[^.]+", word)
    return [p[1:-1] if p.startswith("`") else p for p in parts]


def _field(word: str) -> Field:
    parts = _split_dotted(word)
    head = parts[0].lower()
    if head in ("attribute", "attributes", "attr") and len(parts) == 2:
        head, parts = parts[1].lower(), parts[1:]
    if len(parts) == 1:
        if head in ATTRIBUTES:
            return Field("attribute", head)
        raise FilterSyntaxError(
            f"unknown field {word!r}; use params.<key>, tags.<key>, metrics.<key>[.min|.max|"
            f".last|.count] or one of {', '.join(ATTRIBUTES)}"
        )
    prefix = {"params": "param", "param": "param", "tags": "tag", "tag": "tag",
              "metrics": "metric", "metric": "metric"}.get(head)  # fmt: skip
    if prefix == "metric" and len(parts) >= 3 and parts[-1].lower() in AGGREGATES:
        return Field("metric", ".".join(parts[1:-1]), parts[-1].lower())  # type: ignore[arg-type]
    if prefix is None:
        raise FilterSyntaxError(f"unknown field {word!r}: start it with params., tags. or metrics.")
    return Field(prefix, ".".join(parts[1:]))  # type: ignore[arg-type]


def _literal(kind: str, text: str) -> Any:
    if kind == "num":
        value = float(text)
        return int(text) if re.fullmatch(r"[-+]?\d+", text) else value
    if kind == "str":
        quote = text[0]
        return text[1:-1].replace(quote * 2, quote)
    raise FilterSyntaxError(f"expected a number or a quoted string, got {text!r}")


#: What a token kind is called in a message.
_EXPECTED = {
    "op": "an operator (= != < <= > >= LIKE IN IS)",
    "word": "a field (params.<key>, tags.<key>, metrics.<key> or an attribute)",
    "str": "a quoted string",
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def word(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() in words:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, value: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            where = f"at {self.text[tok[2] :][:20]!r}" if tok else "at the end"
            wanted = value or _EXPECTED.get(kind, kind)
            raise FilterSyntaxError(f"filter {self.text!r}: expected {wanted} {where}")
        self.i += 1
        return tok

    def parse(self) -> Expr:
        expr = self.disjunction()
        if self.peek() is not None:
            raise FilterSyntaxError(
                f"filter {self.text!r}: unexpected {self.peek()[1]!r}"  # type: ignore[index]
            )
        return expr

    def disjunction(self) -> Expr:
        items = [self.conjunction()]
        while self.word("or"):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Expr:
        items = [self.atom()]
        while self.word("and"):
            items.append(self.atom())
        return items[0] if len(items) == 1 else And(tuple(items))

    def atom(self) -> Expr:
        tok = self.peek()
        if tok is not None and tok == ("punct", "(", tok[2]):
            self.i += 1
            inner = self.disjunction()
            self.expect("punct", ")")
            return inner
        field = _field(self.expect("word")[1])
        if self.word("is"):
            negate = self.word("not")
            if not self.word("null"):
                raise FilterSyntaxError(f"filter {self.text!r}: expected NULL after IS")
            return Comparison(field, "is not null" if negate else "is null")
        if self.word("like"):
            kind, text, _ = self.expect("str")
            return _check(Comparison(field, "like", _literal(kind, text)))
        if self.word("in"):
            self.expect("punct", "(")
            values = [self.value()]
            while self.peek() is not None and self.peek()[1] == ",":  # type: ignore[index]
                self.i += 1
                values.append(self.value())
            self.expect("punct", ")")
            return _check(Comparison(field, "in", tuple(values)))
        op = self.expect("op")[1]
        op = {"==": "=", "<>": "!="}.get(op, op)
        return _check(Comparison(field, op, self.value()))  # type: ignore[arg-type]

    def value(self) -> Any:
        tok = self.peek()
        if tok is None or tok[0] not in ("num", "str"):
            raise FilterSyntaxError(f"filter {self.text!r}: expected a value")
        self.i += 1
        return _literal(tok[0], tok[1])


def _check(c: Comparison) -> Comparison:
    """Normalise literal types per field so stores translate without guessing."""
    f = c.field
    values = c.value if c.op == "in" else (c.value,)
    if f.kind in ("tag",) or (f.kind == "attribute" and f.key not in TIME_ATTRIBUTES):
        if not all(isinstance(v, str) for v in values):
            raise FilterSyntaxError(f"{f} compares with quoted strings, e.g. {f} = 'x'")
        if f.kind == "attribute" and f.key == "status":  # not a tag named "status"
            values = tuple(v.upper() for v in values)
    elif f.kind == "metric":
        if not all(isinstance(v, int | float) for v in values) or c.op == "like":
            raise FilterSyntaxError(f"{f} compares with numbers, e.g. {f} > 0.5")
        values = tuple(float(v) for v in values)
        if f.aggregate == "count":  # int(2.5) would turn "< 2.5" into "< 2"
            values = tuple(int(v) if v.is_integer() else v for v in values)
    elif f.kind == "attribute":  # a time
        if c.op == "like":
            raise FilterSyntaxError(f"{f} is a time: compare it with = < <= > >=, not LIKE")
        values = tuple(_moment(v, f) for v in values)
    elif c.op == "like" and not isinstance(c.value, str):
        raise FilterSyntaxError(f"LIKE takes a quoted pattern, e.g. {f} like 'a%'")
    value = values if c.op == "in" else values[0]
    return Comparison(f, c.op, value)


def _moment(value: Any, f: Field) -> dt.datetime:
    if not isinstance(value, str):
        raise FilterSyntaxError(f"{f} compares with an ISO 8601 time, e.g. {f} >= '2026-01-01'")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FilterSyntaxError(f"{f}: {value!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def parse_filter(text: str | None) -> Expr | None:
    """The syntax tree of a filter string (None or blank: no filter)."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


def parse_order_by(text: str | None) -> OrderBy:
    """``"metrics.acc.max DESC"`` → :class:`OrderBy` (None: ``started_at DESC``)."""
    if text is None or not text.strip():
        return DEFAULT_ORDER
    parts = text.strip().rsplit(None, 1)
    descending = False
    if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
        descending = parts[1].lower() == "desc"
        text = parts[0]
    toks = _tokens(text)
    if len(toks) != 1 or toks[0][0] != "word":
        raise FilterSyntaxError(f"order_by takes one field and ASC/DESC, got {text!r}")
    return OrderBy(_field(toks[0][1]), descending)


# -- reference semantics ----------------------------------------------------------


def field_value(run: TrainingRun, f: Field) -> Any:
    """The run's value for a field, or None when it has none."""
    if f.kind == "param":
        return run.params.get(f.key)
    if f.kind == "tag":
        return run.tags.get(f.key)
    if f.kind == "metric":
        summary = run.metrics.get(f.key)
        return None if summary is None else getattr(summary, f.aggregate)
    value = getattr(run, f.key)
    return value.value if f.key == "status" else value


def _like(pattern: str) -> re.Pattern[str]:
    out = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile(out, re.DOTALL)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _comparable(value: Any, literal: Any) -> bool:
    if isinstance(literal, str):
        return isinstance(value, str)
    if isinstance(literal, dt.datetime):
        return isinstance(value, dt.datetime)
    return isinstance(value, int | float) and not isinstance(value, bool)


def matches(expr: Expr | None, run: TrainingRun) -> bool:
    """Whether ``run`` satisfies ``expr`` (the semantics every store must match)."""
    if expr is None:
        return True
    if isinstance(expr, And):
        return all(matches(e, run) for e in expr.items)
    if isinstance(expr, Or):
        return any(matches(e, run) for e in expr.items)
    value = field_value(run, expr.field)
    if expr.op == "is null":
        return value is None
    if expr.op == "is not null":
        return value is not None
    if value is None:
        return False
    if expr.op == "in":
        return any(_comparable(value, v) and _OPS["="](value, v) for v in expr.value)
    if expr.op == "like":
        return isinstance(value, str) and _like(expr.value).fullmatch(value) is not None
    if not _comparable(value, expr.value):
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return _OPS[expr.op](value, expr.value)


def sort_key(run: TrainingRun, order: OrderBy) -> tuple[Any, ...]:
    """The key :func:`select_training_runs` sorts by ascending (it reverses for DESC
    itself, keeping missing values last): ``(missing, value, run_id)``."""
    value = field_value(run, order.field)
    if isinstance(value, dt.datetime):
        value = value.timestamp()
    if isinstance(value, float) and math.isnan(value):
        value = None  # NaN sorts as missing: it has no place among numbers
    if isinstance(value, bool) or not isinstance(value, str | int | float | None):
        value = None  # a param that is a bool, list or object has no order either
    if order.field.kind == "param" and value is not None:
        # Params mix types: numbers (by value) come before strings (by text).
        value = [1, value] if isinstance(value, str) else [0, value]
    return (value is None, value, run.run_id)


def encode_page_token(value: Any, run_id: str) -> str:
    """An opaque token for keyset paging: the last row's sort value and id."""
    raw = json.dumps([value, run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[Any, str]:
    """The ``(value, run_id)`` a token holds; ConfigurationError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value, run_id = json.loads(raw)
        if not isinstance(run_id, str):
            raise ValueError(run_id)
        return value, run_id
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"page_token {token!r} is not a token from a previous page of this search"
        ) from exc


def select_training_runs(
    runs: Sequence[TrainingRun], search: RunSearch
) -> tuple[list[TrainingRun], str | None]:
    """The executable statement of a search: filter, order, page. Stores that hold
    runs in memory use it; the others must return the same runs in the same order."""
    wanted = set(search.experiments)
    hits = [r for r in runs if (not wanted or r.experiment in wanted) and matches(search.where, r)]
    order = search.order_by
    present = sorted(
        (r for r in hits if sort_key(r, order)[0] is False),
        key=lambda r: sort_key(r, order),
        reverse=order.descending,
    )
    missing = sorted(
        (r for r in hits if sort_key(r, order)[0] is True),
        key=lambda r: r.run_id,
        reverse=order.descending,
    )
    ordered = present + missing
    if search.page_token is not None:
        value, after_id = decode_page_token(search.page_token)
        ordered = [r for r in ordered if _after(sort_key(r, order), value, after_id, order)]
    page = ordered[: search.limit]
    token = None
    if len(ordered) > search.limit:
        last = page[-1]
        token = encode_page_token(sort_key(last, order)[1], last.run_id)
    return page, token


def _after(key: tuple[Any, ...], value: Any, after_id: str, order: OrderBy) -> bool:
    """Whether a row with sort ``key`` comes after the token's row."""
    missing, own, run_id = key
    if value is None:  # the token's row was among the runs missing the key
        return bool(missing) and (run_id < after_id if order.descending else run_id > after_id)
    if missing:
        return True
    if own == value:
        return bool(run_id < after_id) if order.descending else bool(run_id > after_id)
    return bool(own < value) if order.descending else bool(own > value)
