"""The builtin flavors: a class with ``run``, a plain function, a scikit-learn estimator.

Registered as the ``umlaut.flavors`` plugin with ``trylast`` so any installed plugin
can claim an object first.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..hookspecs import hookimpl

__all__ = ["FUNCTION", "PYTHON_CLASS", "SKLEARN", "Flavor"]


@dataclass(frozen=True)
class Flavor:
    """How to run one kind of object.

    :param name: stored in the manifest; ``umlaut_get_flavor`` finds it again.
    :param entry: the method (or ``__call__``) that runs, shown in the manifest.
    :param make_runner: turns the unpickled object into ``run(input) -> output``.
    """

    name: str
    entry: str
    make_runner: Callable[[Any], Callable[[Any], Any]]

    def runner(self, obj: Any) -> Callable[[Any], Any]:
        return self.make_runner(obj)


def _sklearn_runner(estimator: Any) -> Callable[[Any], Any]:
    features = getattr(estimator, "feature_names_in_", None)
    columns = [str(c) for c in features] if features is not None else None
    has_proba = callable(getattr(estimator, "predict_proba", None))
    classes = [_plain(c) for c in getattr(estimator, "classes_", [])] if has_proba else []

    def frame(rows: list[Any]) -> Any:
        if not rows or not isinstance(rows[0], Mapping):
            return rows  # already a feature matrix: a list of lists
        if columns is None:
            raise ValueError(
                "this estimator was fitted without feature names, so dict inputs cannot "
                "be mapped to columns; pass a list of feature lists instead"
            )
        missing = [c for c in columns if c not in rows[0]]
        if missing:
            raise KeyError(f"input lacks the features {missing}; expected {columns}")
        try:
            import pandas as pd
        except ImportError:
            return [[row[c] for c in columns] for row in rows]
        return pd.DataFrame([[row[c] for c in columns] for row in rows], columns=columns)

    def run(data: Any) -> Any:
        single = isinstance(data, Mapping)
        rows = [data] if single else list(data)
        x = frame(rows)
        predictions = [_plain(p) for p in estimator.predict(x)]
        if has_proba:
            probabilities = estimator.predict_proba(x)
            out: list[Any] = [
                {
                    "prediction": p,
                    "probabilities": dict(zip(map(str, classes), map(float, pr), strict=True)),
                }
                for p, pr in zip(predictions, probabilities, strict=True)
            ]
        else:
            out = [{"prediction": p} for p in predictions]
        return out[0] if single else out

    return run


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


PYTHON_CLASS = Flavor("python-class", "run", lambda obj: obj.run)
FUNCTION = Flavor("python-function", "__call__", lambda obj: obj)
SKLEARN = Flavor("sklearn", "predict", _sklearn_runner)
_BY_NAME = {f.name: f for f in (PYTHON_CLASS, FUNCTION, SKLEARN)}


def _is_estimator(obj: Any) -> bool:
    return (
        not isinstance(obj, type)
        and callable(getattr(obj, "predict", None))
        and callable(getattr(obj, "fit", None))
        and callable(getattr(obj, "get_params", None))
    )


@hookimpl(trylast=True)
def umlaut_detect_flavor(obj: Any) -> Flavor | None:
    if isinstance(obj, type):
        return None  # a class rather than an instance: the facade explains
    if _is_estimator(obj):
        return SKLEARN
    if callable(getattr(obj, "run", None)):
        return PYTHON_CLASS
    if inspect.isfunction(obj) or isinstance(obj, functools.partial):
        return FUNCTION
    return None


@hookimpl(trylast=True)
def umlaut_get_flavor(name: str) -> Flavor | None:
    return _BY_NAME.get(name)
