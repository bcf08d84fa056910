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

from ..exceptions import UnsupportedModelError
from ..hookspecs import hookimpl
from ..libraries import is_pandas

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


_MANY_ROWS = "pass a dict for one row, a list of dicts/lists or a DataFrame for many"


def _sklearn_runner(estimator: Any) -> Callable[[Any], Any]:
    features = getattr(estimator, "feature_names_in_", None)
    columns = [str(c) for c in features] if features is not None else None
    has_proba = callable(getattr(estimator, "predict_proba", None))
    classes = [_plain(c) for c in getattr(estimator, "classes_", [])] if has_proba else []

    def missing_error(missing: list[Any]) -> KeyError:
        return KeyError(f"input lacks the features {missing}; expected {columns}")

    def named(matrix: Any) -> Any:
        """A feature matrix, with the fitted column names when there are some."""
        if columns is None:
            return matrix
        try:
            import pandas as pd
        except ImportError:
            return matrix
        width = getattr(matrix, "shape", (0, len(matrix[0]) if len(matrix) else 0))[1]
        if width != len(columns):
            return matrix  # the estimator explains the wrong width itself
        return pd.DataFrame(matrix, columns=columns)

    def from_frame(frame: Any) -> Any:
        if columns is None:
            return frame.to_numpy()  # fitted without names: columns in order
        present = {str(c): c for c in frame.columns}
        missing = [c for c in columns if c not in present]
        if missing:
            raise missing_error(missing)
        selected = frame[[present[c] for c in columns]]
        selected.columns = columns
        return selected

    def from_rows(rows: list[Any]) -> Any:
        if not rows:
            return []
        if all(isinstance(r, Mapping) for r in rows):
            if columns is None:
                raise ValueError(
                    "this estimator was fitted without feature names, so dict inputs "
                    "cannot be mapped to columns; pass a list of feature lists instead"
                )
            for row in rows:
                missing = [c for c in columns if c not in row]
                if missing:
                    raise missing_error(missing)
            return named([[row[c] for c in columns] for row in rows])
        if all(_is_row_sequence(r) for r in rows):
            return named([list(r) for r in rows])
        if not any(isinstance(r, Mapping) or _is_row_sequence(r) for r in rows):
            raise ValueError(
                f"got a flat list of {len(rows)} values: is it one row or many? {_MANY_ROWS}"
            )
        raise ValueError(f"rows mix dicts, lists and single values; {_MANY_ROWS}")

    def matrix_of(data: Any) -> tuple[Any, bool]:
        """The estimator's input for ``data``, and whether it was a single row."""
        if isinstance(data, Mapping):
            return from_rows([data]), True
        if is_pandas(data, "DataFrame"):
            return from_frame(data), False
        if isinstance(data, (str, bytes, bytearray)) or not _iterable(data):
            raise ValueError(f"cannot predict on a {type(data).__qualname__}; {_MANY_ROWS}")
        ndim = getattr(data, "ndim", None)
        if ndim is not None and ndim != 2:
            raise ValueError(
                f"got a {ndim}-D array; pass a 2-D array (rows × features). {_MANY_ROWS}"
            )
        if ndim == 2:
            return named(data), False
        return from_rows(list(data)), False

    head, final = _pipeline_parts(estimator) if has_proba else (None, estimator)

    def run(data: Any) -> Any:
        x, single = matrix_of(data)
        if len(x) == 0:
            return []
        if head is not None:
            # What Pipeline.predict and .predict_proba each do, with the transforming
            # steps run once instead of twice (on one row, half the call's time).
            x = head.transform(x)
        predictions = [_plain(p) for p in final.predict(x)]
        if has_proba:
            probabilities = final.predict_proba(x)
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


def _pipeline_parts(estimator: Any) -> tuple[Any, Any]:
    """``(the transforming steps, the final estimator)`` of a scikit-learn
    ``Pipeline`` of two or more steps, else ``(None, estimator)``."""
    steps = getattr(estimator, "steps", None)
    if (
        type(estimator).__module__.startswith("sklearn.pipeline")
        and isinstance(steps, list)
        and len(steps) > 1
    ):
        return estimator[:-1], estimator[-1]
    return None, estimator


def _is_row_sequence(value: Any) -> bool:
    if isinstance(value, (str, bytes, bytearray, Mapping)):
        return False
    ndim = getattr(value, "ndim", None)
    if ndim is not None:
        return bool(ndim == 1)
    return isinstance(value, (list, tuple))


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


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
    run = getattr(obj, "run", None)
    if callable(run):
        _refuse_async(run, f"{type(obj).__qualname__}.run")
        return PYTHON_CLASS
    if inspect.isfunction(obj) or isinstance(obj, functools.partial):
        _refuse_async(obj, getattr(obj, "__qualname__", None) or repr(obj))
        return FUNCTION
    return None


def _refuse_async(func: Any, name: str) -> None:
    """run_model calls the model and returns what it returns: it must be synchronous."""
    if inspect.isasyncgenfunction(func) or (
        isinstance(func, functools.partial) and inspect.isasyncgenfunction(func.func)
    ):
        kind = "an async generator function"
    elif inspect.iscoroutinefunction(func):
        kind = "a coroutine function (async def)"
    else:
        return
    raise UnsupportedModelError(
        f"{name} is {kind}, but run_model is synchronous: it calls the model and "
        f"returns its result, so it would only ever get an un-awaited coroutine or "
        f"generator. Track a synchronous run instead, e.g. "
        f"`def run(self, data): return asyncio.run(self._run(data))` (collect an async "
        f"generator's items into a list inside it)."
    )


@hookimpl(trylast=True)
def umlaut_get_flavor(name: str) -> Flavor | None:
    return _BY_NAME.get(name)
