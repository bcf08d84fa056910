"""What of a training-run search MLflow can narrow down on the server.

MLflow's filter is an AND of simple comparisons, and its metric comparisons see
only the latest value, so the server gets a *necessary* condition only: the kind
tag, plus each top-level AND term it can test exactly (string equality on tags,
string params and attributes, and start-time bounds). Every run it returns is then
checked against the whole filter with ``umlaut_core.experiments.filters.matches``,
and ordered and paged with ``select_training_runs``: a term left out only costs
transfer, never a wrong answer.
"""

from __future__ import annotations

import datetime as dt

from umlaut_core.experiments.filters import And, Comparison, Expr

from . import _codec as codec
from ._filters import quote
from ._run_layout import TRAINING, T
from ._run_values import PARAM_LIMIT, TAG_LIMIT, encode_key

__all__ = ["server_filter"]

_ATTRIBUTE_FIELDS = {
    "status": "attributes.status",
    "name": "attributes.run_name",
    "run_id": f"tags.`{T.RUN_ID}`",
    "parent_id": f"tags.`{T.PARENT}`",
    "user": f"tags.`{T.USER}`",
}


def server_filter(where: Expr | None) -> str:
    """An MLflow filter that every training run matching ``where`` passes."""
    parts = [f"tags.`{T.KIND}` = '{TRAINING}'"]
    for term in _conjuncts(where):
        clause = _clause(term)
        if clause is not None:
            parts.append(clause)
    return " and ".join(parts)


def _conjuncts(expr: Expr | None) -> list[Comparison]:
    if isinstance(expr, Comparison):
        return [expr]
    if isinstance(expr, And):
        return [c for item in expr.items for c in _conjuncts(item)]
    return []  # None, or an OR: nothing MLflow can be told


def _clause(c: Comparison) -> str | None:
    f = c.field
    if f.kind == "attribute" and f.key == "started_at" and isinstance(c.value, dt.datetime):
        # MLflow keeps whole milliseconds, rounded down: bounds stay necessary.
        ms = codec.to_ms(c.value)
        op = {"=": "=", ">": ">=", ">=": ">=", "<": "<=", "<=": "<="}.get(c.op)
        return None if op is None else f"attributes.start_time {op} {ms}"
    if c.op != "=" or not isinstance(c.value, str):
        return None
    literal = quote(c.value)
    if literal is None:
        return None
    if f.kind == "tag" and len(c.value) <= TAG_LIMIT:
        return f"tags.`{encode_key(f.key, {})}` = {literal}"
    if f.kind == "param" and len(c.value) <= PARAM_LIMIT:
        # A string param is stored as itself (see _run_values).
        return f"params.`{encode_key(f.key, {})}` = {literal}"
    if f.kind == "attribute" and f.key in _ATTRIBUTE_FIELDS:
        return f"{_ATTRIBUTE_FIELDS[f.key]} = {literal}"
    return None
