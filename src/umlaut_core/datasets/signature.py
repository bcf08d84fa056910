"""Input signatures: the columns a model version expects, kept in its bundle manifest.

A table signature is JSON (it is part of the manifest, so of the version's digest)::

    {
      "format": "umlaut.table/1",
      "columns": [
        {"name": "sepal length (cm)", "type": "float", "nullable": false,
         "min": 4.3, "max": 7.9, "categories": null},
        {"name": "species", "type": "category", "nullable": false,
         "min": null, "max": null, "categories": ["setosa", "versicolor"]}
      ],
      "source": "dataset iris v1"
    }

``type`` is a logical type of :data:`~umlaut_core.datasets.records.LOGICAL_TYPES`.
Every column is required (a nullable one must still be present, as a null). ``min`` /
``max`` (the training range: numbers, ISO 8601 strings for ``datetime`` and ``date``)
and ``categories`` (the known values of a ``string`` or ``category`` column) only
produce soft findings; ``source`` says where the signature came from, for people.

A signature comes from a version's training dataset (:func:`signature_from_dataset`),
else from a fitted scikit-learn estimator (:func:`signature_from_estimator`), else is
given to ``track_model(signature=...)`` (checked by :func:`check_signature`). A
mapping without ``"format": "umlaut.table/1"`` is a free-form note: stored, never
enforced. :mod:`umlaut_core.datasets.validation` checks inputs against a signature.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ..naming import looks_like
from .records import LOGICAL_TYPES

if TYPE_CHECKING:
    from .records import ColumnProfile, DatasetVersion

__all__ = [
    "RANGED_TYPES",
    "TABLE_FORMAT",
    "check_signature",
    "is_table_signature",
    "signature_from_dataset",
    "signature_from_estimator",
]

TABLE_FORMAT = "umlaut.table/1"
#: The types whose ``min``/``max`` are kept and compared (a training range).
RANGED_TYPES = frozenset({"integer", "float", "datetime", "date"})
#: The types whose ``categories`` are kept and compared (known values).
_CATEGORICAL_TYPES = frozenset({"string", "category"})
_COLUMN_KEYS = ("name", "type", "nullable", "min", "max", "categories")
_TOP_KEYS = ("format", "columns", "source")
#: Spellings from other libraries, so a refused type name gets a useful hint.
_TYPE_HINTS = {
    "int": "integer", "int64": "integer", "long": "integer", "double": "float",
    "float64": "float", "number": "float", "bool": "boolean", "str": "string",
    "object": "string", "timestamp": "datetime", "timedelta": "duration",
    "bytes": "binary",
}  # fmt: skip
#: More categories than this learned by an encoder are not kept (the signature is in
#: every manifest).
_MAX_CATEGORIES = 1_000


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """A did-you-mean for ``name``: one alike but for case, accents or spacing, else
    the closest by spelling (looser than model names: a column name is short, and
    one transposed letter already costs difflib a fifth of its ratio)."""
    choices = list(choices)
    hint = looks_like(name, choices)
    if hint is None:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
        hint = close[0] if close else None
    return hint


def is_table_signature(signature: Mapping[str, Any] | None) -> bool:
    """True when ``signature`` is in the table format (and so is enforced)."""
    return isinstance(signature, Mapping) and signature.get("format") == TABLE_FORMAT


# -- explicit signatures -------------------------------------------------------------


def check_signature(signature: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a signature given to ``track_model``; return what to store.

    A table signature comes back normalised (every column key present, categories as
    a list), or :class:`ConfigurationError` says what is wrong with it. Any other
    mapping is a free-form note (what ``signature=`` always accepted): returned as a
    plain dict, never enforced. A ``format`` of ``umlaut.*`` that this release does
    not know is refused rather than silently not enforced.
    """
    if not isinstance(signature, Mapping):
        raise ConfigurationError(
            f"signature must be a mapping (a table signature, or any JSON dict as a "
            f"note), not {type(signature).__name__}"
        )
    fmt = signature.get("format")
    if not (isinstance(fmt, str) and fmt.startswith("umlaut.")):
        return dict(signature)
    if fmt != TABLE_FORMAT:
        raise ConfigurationError(
            f"unknown signature format {fmt!r}; this release reads {TABLE_FORMAT!r}"
        )
    _refuse_unknown_keys(signature, _TOP_KEYS, "signature")
    columns = signature.get("columns")
    if not isinstance(columns, Sequence) or isinstance(columns, (str, bytes)) or not columns:
        raise ConfigurationError(
            "a table signature needs 'columns': a non-empty list of "
            "{'name': ..., 'type': ...} objects"
        )
    out = [_check_column(c, i) for i, c in enumerate(columns)]
    seen: set[str] = set()
    for column in out:
        if column["name"] in seen:
            raise ConfigurationError(f"signature column {column['name']!r} appears twice")
        seen.add(column["name"])
    source = signature.get("source")
    if source is not None and not isinstance(source, str):
        raise ConfigurationError(f"signature 'source' must be text, not {type(source).__name__}")
    return {"format": TABLE_FORMAT, "columns": out, "source": source}


def _check_column(column: Any, index: int) -> dict[str, Any]:
    if not isinstance(column, Mapping):
        raise ConfigurationError(
            f"signature column {index} must be an object with 'name' and 'type', "
            f"not {type(column).__name__}"
        )
    name = column.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"signature column {index} needs a 'name' (non-empty text)")
    where = f"signature column {name!r}"
    _refuse_unknown_keys(column, _COLUMN_KEYS, where)
    kind = column.get("type")
    if kind not in LOGICAL_TYPES:
        hint = _TYPE_HINTS.get(str(kind).lower()) or suggest(str(kind), LOGICAL_TYPES)
        tip = f" (did you mean {hint!r}?)" if hint else ""
        raise ConfigurationError(
            f"{where} has type {kind!r}{tip}; types are {', '.join(LOGICAL_TYPES)}"
        )
    nullable = column.get("nullable", False)
    if not isinstance(nullable, bool):
        raise ConfigurationError(f"{where}: 'nullable' must be true or false")
    low, high = column.get("min"), column.get("max")
    if (low is not None or high is not None) and kind not in RANGED_TYPES:
        raise ConfigurationError(
            f"{where}: 'min'/'max' apply to {', '.join(sorted(RANGED_TYPES))} columns only"
        )
    _check_bound(low, kind, where, "min")
    _check_bound(high, kind, where, "max")
    if low is not None and high is not None and parse_bound(low, kind) > parse_bound(high, kind):
        raise ConfigurationError(f"{where}: 'min' is greater than 'max'")
    categories = column.get("categories")
    if categories is not None:
        if kind not in _CATEGORICAL_TYPES:
            raise ConfigurationError(
                f"{where}: 'categories' apply to string and category columns only"
            )
        if (
            isinstance(categories, (str, bytes))
            or not isinstance(categories, Sequence)
            or not all(isinstance(c, str) for c in categories)
        ):
            raise ConfigurationError(f"{where}: 'categories' must be a list of strings")
        categories = list(categories)
    return {
        "name": name, "type": kind, "nullable": nullable, "min": low, "max": high,
        "categories": categories,
    }  # fmt: skip


def _refuse_unknown_keys(value: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    for key in value:
        if key not in known:
            hint = suggest(str(key), known)
            tip = f" (did you mean {hint!r}?)" if hint else ""
            raise ConfigurationError(
                f"{where} has the unknown key {key!r}{tip}; keys are {', '.join(known)}"
            )


def _check_bound(value: Any, kind: str, where: str, key: str) -> None:
    if value is None:
        return
    if kind in ("integer", "float"):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ConfigurationError(f"{where}: {key!r} must be a finite number")
        return
    try:
        parse_bound(value, kind)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}: {key!r} must be an ISO 8601 {kind} string") from None


def parse_bound(value: Any, kind: str) -> Any:
    """A stored ``min``/``max`` as a comparable Python value (times are ISO text in
    JSON); raises ValueError or TypeError when it is not one."""
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    return value


# -- derived signatures --------------------------------------------------------------


def signature_from_dataset(dv: DatasetVersion) -> dict[str, Any]:
    """The table signature of a dataset version's feature columns (``dv.features``):
    their logical types, nullability, training range and known categories."""
    return {
        "format": TABLE_FORMAT,
        "columns": [_profile_column(c) for c in dv.features],
        "source": f"dataset {dv.name} v{dv.version}",
    }


def _profile_column(c: ColumnProfile) -> dict[str, Any]:
    kind = c.logical_type if c.logical_type in LOGICAL_TYPES else "other"
    low = high = None
    if kind in RANGED_TYPES:
        low, high = _json_bound(c.min, kind), _json_bound(c.max, kind)
        if low is None or high is None:
            low = high = None  # a range is kept whole or not at all
    categories = None
    if kind in _CATEGORICAL_TYPES and c.categories is not None:
        categories = [str(v) for v in c.categories]
    return {
        "name": c.name, "type": kind, "nullable": bool(c.nullable), "min": low, "max": high,
        "categories": categories,
    }  # fmt: skip


def _json_bound(value: Any, kind: str) -> Any:
    """A profile's min/max as a signature keeps it, or None when it is unusable (an
    all-null column's NaN, a type the profile did not write as documented)."""
    if kind in ("integer", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.date, dt.datetime)):
        value = value.isoformat()
    try:
        parse_bound(value, kind)
    except (TypeError, ValueError):
        return None
    return value


def signature_from_estimator(model: Any) -> dict[str, Any] | None:
    """The table signature of a fitted scikit-learn-style estimator, or None.

    Only attributes are read (this runs on every ``track_model``; nothing is
    imported): ``feature_names_in_`` gives the columns, in order. Columns are
    ``float`` unless the fitted model says otherwise: a column a fitted encoder
    learned string categories for is ``string`` with those categories, and one that
    goes to a step of unknown input type (``passthrough``, a function, a
    categorical feature of a gradient-boosting model) is ``other``. Every column is
    nullable: scikit-learn does not record whether it saw nulls, and a pipeline with
    an imputer takes them. A model fitted without column names (only
    ``n_features_in_``) or that is not an estimator gives None.
    """
    if isinstance(model, type) or not all(
        callable(getattr(model, a, None)) for a in ("fit", "predict", "get_params")
    ):
        return None
    try:
        names = getattr(model, "feature_names_in_", None)
        if names is None:
            return None
        columns = [str(n) for n in names]
        if not columns or len(set(columns)) != len(columns):
            return None
        kinds: dict[str, tuple[str, list[str] | None]] = {}
        _column_kinds(model, columns, kinds)
    except Exception:  # an estimator's attributes are its own code: never fail tracking
        return None
    out = []
    for name in columns:
        kind, categories = kinds.get(name, ("float", None))
        out.append({
            "name": name, "type": kind, "nullable": True, "min": None, "max": None,
            "categories": categories,
        })  # fmt: skip
    return {
        "format": TABLE_FORMAT,
        "columns": out,
        "source": f"estimator {type(model).__qualname__} (feature_names_in_)",
    }


def _column_kinds(
    model: Any, columns: list[str], kinds: dict[str, tuple[str, list[str] | None]]
) -> None:
    """Fill ``kinds`` for the columns whose type the fitted model shows not to be
    float; the rest stay float. Recognised by attributes, never by import."""
    first = _first_step(model)
    mask = getattr(first, "is_categorical_", None)  # HistGradientBoosting*
    if mask is not None and len(mask) == len(columns):
        for name, categorical in zip(columns, mask, strict=True):
            if categorical:
                kinds[name] = ("other", None)
    _encoded_kinds(first, columns, kinds)
    for _, transformer, selected in getattr(first, "transformers_", ()) or ():
        names = _selected_names(selected, columns)
        if isinstance(transformer, str):  # "drop" or "passthrough": type unknown
            for name in names:
                kinds[name] = ("other", None)
            continue
        for step in _steps(transformer):
            if getattr(step, "categories_", None) is not None:
                _encoded_kinds(step, names, kinds)
                break
            if type(step).__name__ == "FunctionTransformer":
                for name in names:
                    kinds[name] = ("other", None)
                break


def _encoded_kinds(
    encoder: Any, names: list[str], kinds: dict[str, tuple[str, list[str] | None]]
) -> None:
    learned = getattr(encoder, "categories_", None)
    if learned is None or len(learned) != len(names):
        return
    for name, values in zip(names, learned, strict=True):
        if getattr(getattr(values, "dtype", None), "kind", "O") in "OUS":
            shown = [str(v) for v in values if v is not None and v == v]
            kinds[name] = ("string", shown if len(shown) <= _MAX_CATEGORIES else None)
        else:
            kinds[name] = ("other", None)  # numeric codes: an int or a float may do


def _first_step(model: Any) -> Any:
    # A fitted search (GridSearchCV…) predicts with its best estimator.
    best = getattr(model, "best_estimator_", None)
    steps = _steps(model if best is None else best)
    return steps[0] if steps else model


def _steps(model: Any) -> list[Any]:
    """A pipeline's fitted steps (nested pipelines flattened), else ``[model]``."""
    steps = getattr(model, "steps", None)
    if not isinstance(steps, list):
        return [model]
    out: list[Any] = []
    for step in steps:
        est = step[1] if isinstance(step, tuple) and len(step) == 2 else step
        if est is None or est == "passthrough":
            continue
        out.extend(_steps(est))
    return out


def _selected_names(selected: Any, columns: list[str]) -> list[str]:
    """A ColumnTransformer's column selection (names, positions or a mask) as names."""
    if isinstance(selected, (str, int)):
        selected = [selected]
    try:
        items = list(selected)
    except TypeError:
        return []
    if items and all(isinstance(i, bool) or type(i).__name__ == "bool_" for i in items):
        return [c for c, keep in zip(columns, items, strict=False) if keep]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif hasattr(item, "__index__") and 0 <= int(item) < len(columns):
            out.append(columns[int(item)])
    return out
