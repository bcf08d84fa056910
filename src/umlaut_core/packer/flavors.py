"""The builtin flavors: a class with ``run``, a plain function, a scikit-learn estimator.

Registered as the ``umlaut.flavors`` plugin with ``trylast`` so any installed plugin
can claim an object first.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import UnsupportedModelError
from ..hookspecs import hookimpl
from ..libraries import is_pandas
from .array_input import array_twin

__all__ = ["FUNCTION", "PYTHON_CLASS", "SKLEARN", "Flavor"]


@dataclass(frozen=True)
class Flavor:
    """How to run one kind of object.

    :param name: stored in the manifest; ``umlaut_get_flavor`` finds it again.
    :param entry: the method (or ``__call__``) that runs, shown in the manifest.
    :param make_runner: turns the unpickled object into ``run(input) -> output``.
    :param make_batch_runner: optional; turns it into ``run_many(inputs) -> outputs``,
        ``[run(x) for x in inputs]`` in one vectorized call (``run_batch`` uses it in
        chunks). It may raise when any input is refused: the chunk then runs input by
        input, so each error lands on its own input's record. Outputs may differ from
        ``run``'s in the last floating-point bits (numerical libraries pick kernels by
        array shape).
    """

    name: str
    entry: str
    make_runner: Callable[[Any], Callable[[Any], Any]]
    make_batch_runner: Callable[[Any], Callable[[Sequence[Any]], list[Any]]] | None = None

    def runner(self, obj: Any) -> Callable[[Any], Any]:
        return self.make_runner(obj)

    def batch_runner(self, obj: Any) -> Callable[[Sequence[Any]], list[Any]] | None:
        return None if self.make_batch_runner is None else self.make_batch_runner(obj)


_MANY_ROWS = "pass a dict for one row, a list of dicts/lists or a DataFrame for many"


class _Sklearn:
    """A fitted estimator as ``run(input)`` (``__call__``) and ``run_many(inputs)``."""

    def __init__(self, estimator: Any) -> None:
        features = getattr(estimator, "feature_names_in_", None)
        self.columns = [str(c) for c in features] if features is not None else None
        self._index: Any = None
        self.has_proba = callable(getattr(estimator, "predict_proba", None))
        classes = getattr(estimator, "classes_", []) if self.has_proba else []
        self.class_names = [str(_plain(c)) for c in classes]
        parts = _pipeline_parts(estimator) if self.has_proba else (None, estimator)
        self.head: Any = parts[0]
        self.final: Any = parts[1]
        # The same steps taking float64 arrays in the fitted column order, when that is
        # the same computation (see array_input): None keeps every input a DataFrame.
        self.twin: tuple[Any, Any] | None = None
        if self.columns is not None:
            receiver = array_twin(self.head if self.head is not None else self.final)
            if receiver is not None:
                self.twin = (receiver, self.final) if self.head is not None else (None, receiver)

    def __call__(self, data: Any) -> Any:
        x, single = self.matrix_of(data)
        if len(x) == 0:
            return []
        out = self.outputs(x)
        return out[0] if single else out

    def many(self, inputs: Sequence[Any]) -> list[Any]:
        """``[self(x) for x in inputs]`` with one ``predict`` (and ``predict_proba``)
        over all their rows: one call's fixed cost (input validation, a DataFrame
        per step: about a millisecond) shared by the whole chunk. Raises when any
        input is refused or the rows cannot be stacked; the caller then runs the
        inputs one by one, so each error is its own input's."""
        if all(isinstance(x, Mapping) for x in inputs):  # one row each: run_batch's case
            return self.outputs(self.from_rows(list(inputs)))
        dict_rows = _dict_rows(inputs)
        if dict_rows is not None:  # a server's JSON requests: one frame for all their rows
            flat, shapes = dict_rows
            out = self.outputs(self.from_rows(flat)) if flat else []
            ends = itertools.accumulate((n for n, _ in shapes), initial=0)
            return [
                out[a] if single else out[a:b]
                for (a, b), (_, single) in zip(itertools.pairwise(ends), shapes, strict=True)
            ]
        if _same_frames(inputs):  # a server's requests from one client: select once
            import pandas as pd

            out = self.outputs(self.from_frame(pd.concat(inputs, ignore_index=True)))
            ends = itertools.accumulate((len(x) for x in inputs), initial=0)
            return [out[a:b] for a, b in itertools.pairwise(ends)]
        parts = [self.matrix_of(x) for x in inputs]
        if any(is_pandas(x, "DataFrame") for x, _ in parts):
            # Frames and arrays together: all as frames, stacked as frames (pandas'
            # own conversion and errors, as when every input was a frame).
            parts = [(self.framed(x), single) for x, single in parts]
        sizes = [len(x) for x, _ in parts]
        stacked = _stack([x for x, _ in parts if len(x)])
        out = self.outputs(stacked) if stacked is not None else []
        results: list[Any] = []
        at = 0
        for (_, single), size in zip(parts, sizes, strict=True):
            rows = out[at : at + size]
            at += size
            results.append(rows[0] if single else rows)
        return results

    def outputs(self, x: Any) -> list[Any]:
        head, final = self.head, self.final
        if self.twin is not None and not is_pandas(x, "DataFrame"):
            head, final = self.twin  # named() gave the fitted columns as an array
            if hasattr(x, "__array__"):
                import numpy as np

                # A copy in column-major order: the array scikit-learn takes out of a
                # frame's float block. The same layout sums in the same order (BLAS),
                # so the outputs are the frame's to the last bit, and a step with
                # copy=False scales this copy, not the caller's array.
                x = np.array(x, dtype=np.float64, order="F")
        if head is not None:
            # What Pipeline.predict and .predict_proba each do, with the transforming
            # steps run once instead of twice (on one row, half the call's time).
            x = head.transform(x)
        predictions = [_plain(p) for p in final.predict(x)]
        if not self.has_proba:
            return [{"prediction": p} for p in predictions]
        names = self.class_names
        return [
            {"prediction": p, "probabilities": dict(zip(names, map(float, pr), strict=True))}
            for p, pr in zip(predictions, final.predict_proba(x), strict=True)
        ]

    def missing_error(self, missing: list[Any]) -> KeyError:
        return KeyError(f"input lacks the features {missing}; expected {self.columns}")

    def named(self, matrix: Any) -> Any:
        """A feature matrix, with the fitted column names when there are some (as a
        DataFrame, or implied by the order of a float64 array for the twin)."""
        columns = self.columns
        if columns is None:
            return matrix
        try:
            import pandas as pd
        except ImportError:
            return matrix
        width = getattr(matrix, "shape", (0, len(matrix[0]) if len(matrix) else 0))[1]
        if width != len(columns):
            return matrix  # the estimator explains the wrong width itself
        import numpy as np

        arrays = self._arrays()
        if type(matrix) is list:
            kinds = _number_kinds(matrix, width)
            if kinds == {float} or (kinds == {float, int} and arrays):
                # Rows of Python floats (JSON numbers with a point), all as wide: the
                # frame pandas would infer, float64 columns in one block, from one
                # array, not via object columns converted one by one (4 rows × 4
                # columns: 34 → 9 µs). With ints among them (JSON writers drop ".0")
                # pandas makes those columns int64, and the array scikit-learn takes
                # out of the frame is float64 all the same: only for the twin.
                # Ragged rows stay pandas' to pad or refuse.
                matrix = np.array(matrix, dtype=np.float64)
        if arrays and type(matrix) is np.ndarray and matrix.dtype == np.float64:
            return matrix
        return pd.DataFrame(matrix, columns=self.index())

    def framed(self, matrix: Any) -> Any:
        """``matrix`` as a DataFrame with the fitted columns, if ``named`` made it a
        float array for the twin."""
        if self.twin is None or is_pandas(matrix, "DataFrame") or not hasattr(matrix, "shape"):
            return matrix
        import pandas as pd

        return pd.DataFrame(matrix, columns=self.index())

    def _arrays(self) -> bool:
        """Whether the twin may take this call's array: it exists, and this thread's
        scikit-learn config leaves transformer outputs as arrays."""
        if self.twin is None:
            return False
        import sklearn

        return bool(sklearn.get_config()["transform_output"] == "default")

    def index(self) -> Any:
        """The fitted column names as one pandas ``Index``, made once: building it
        from strings was a tenth of a served call. Object dtype, not pandas 3's
        Arrow-backed strings: scikit-learn's frame validation reads it 11% faster
        (one iris pipeline call on a small frame, 904 → 800 µs)."""
        if self._index is None:
            import pandas as pd

            self._index = pd.Index(self.columns, dtype=object)
        return self._index

    def from_frame(self, frame: Any) -> Any:
        columns = self.columns
        if columns is None:
            return frame.to_numpy()  # fitted without names: columns in order
        present = {str(c): c for c in frame.columns}
        missing = [c for c in columns if c not in present]
        if missing:
            raise self.missing_error(missing)
        selected = frame[[present[c] for c in columns]]
        selected.columns = self.index()
        return selected

    def from_rows(self, rows: list[Any]) -> Any:
        columns = self.columns
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
                    raise self.missing_error(missing)
            return self.named([[row[c] for c in columns] for row in rows])
        if all(_is_row_sequence(r) for r in rows):
            return self.named([list(r) for r in rows])
        if not any(isinstance(r, Mapping) or _is_row_sequence(r) for r in rows):
            raise ValueError(
                f"got a flat list of {len(rows)} values: is it one row or many? {_MANY_ROWS}"
            )
        raise ValueError(f"rows mix dicts, lists and single values; {_MANY_ROWS}")

    def matrix_of(self, data: Any) -> tuple[Any, bool]:
        """The estimator's input for ``data``, and whether it was a single row."""
        if isinstance(data, Mapping):
            return self.from_rows([data]), True
        if is_pandas(data, "DataFrame"):
            return self.from_frame(data), False
        if isinstance(data, (str, bytes, bytearray)) or not _iterable(data):
            raise ValueError(f"cannot predict on a {type(data).__qualname__}; {_MANY_ROWS}")
        ndim = getattr(data, "ndim", None)
        if ndim is not None and ndim != 2:
            raise ValueError(
                f"got a {ndim}-D array; pass a 2-D array (rows × features). {_MANY_ROWS}"
            )
        if ndim == 2:
            return self.named(data), False
        return self.from_rows(list(data)), False


_EXACT_INT = 2**53  # ints up to this convert to float64 exactly (pandas' int64 too)


def _number_kinds(rows: list[Any], width: int) -> set[type] | None:
    """``{float}`` or ``{float, int}`` when ``rows`` are lists of ``width`` plain
    floats, with or without ints that float64 holds exactly; else None (booleans,
    None, text, ragged rows, only ints)."""
    kinds: set[type] = set()
    for row in rows:
        if type(row) is not list or len(row) != width:
            return None
        for value in row:
            kind = type(value)
            if kind is int:
                if not -_EXACT_INT <= value <= _EXACT_INT:
                    return None
            elif kind is not float:
                return None
            kinds.add(kind)
    return kinds if float in kinds else None


def _dict_rows(inputs: Sequence[Any]) -> tuple[list[Any], list[tuple[int, bool]]] | None:
    """Every input's dict rows in one list, and per input its row count and whether it
    was a single row (a dict); None unless every input is a dict or a list of dicts."""
    rows: list[Any] = []
    shape: list[tuple[int, bool]] = []
    for x in inputs:
        if isinstance(x, Mapping):
            rows.append(x)
            shape.append((1, True))
        elif type(x) is list and all(isinstance(r, Mapping) for r in x):
            rows += x
            shape.append((len(x), False))
        else:
            return None
    return rows, shape


def _same_frames(inputs: Sequence[Any]) -> bool:
    """Two or more DataFrames with the same columns in the same order (stacking them
    aligns nothing, so no missing column is ever filled in)."""
    if len(inputs) < 2 or not all(is_pandas(x, "DataFrame") for x in inputs):
        return False
    columns = inputs[0].columns
    return all(x.columns.equals(columns) for x in inputs[1:]) and columns.is_unique


def _stack(parts: list[Any]) -> Any:
    """The rows of several feature matrices as one (None when there are none)."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    if all(is_pandas(p, "DataFrame") for p in parts):
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    import numpy as np

    return np.vstack([np.asarray(p) for p in parts])  # a ragged width raises: one by one


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
SKLEARN = Flavor("sklearn", "predict", _Sklearn, lambda estimator: _Sklearn(estimator).many)
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
