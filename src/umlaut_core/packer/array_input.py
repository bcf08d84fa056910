"""When a fitted scikit-learn estimator can take a float64 array where it was fitted on
a DataFrame, and the twin of it that takes one without a warning.

scikit-learn validates a DataFrame much more slowly than an array: for the iris
pipeline (``StandardScaler`` + ``LogisticRegression``) on 4 rows, ``predict`` takes
545 µs on a frame and 232 µs on the same values as an array (scikit-learn 1.9, pandas
3). On a frame, half the call is spent reading ``df.dtypes`` six times, in narwhals'
``from_native`` and in the feature-name check, before the values are copied into the
same float64 array. A served request is a few rows, so that overhead was a third of a
batched iris server's CPU.

The sklearn flavor maps named inputs (dict rows) to the fitted columns itself, in the
fitted order, and refuses missing ones before any estimator runs. What the frame still
carried to scikit-learn was the names for its own check, which that mapping makes
pass by construction. So when the input is numbers with at least one float (the
frame's array is then float64 whatever pandas makes of the int columns), the flavor
hands a float64 array to a *twin* of the estimator: a shallow copy whose first step
(the one that receives the input) has no ``feature_names_in_``, so scikit-learn
neither checks nor warns about names. The fitted arrays are shared, not copied. The
input array is always a copy in column-major order, the layout scikit-learn takes out
of a frame's float block: BLAS sums in layout order, so any other layout would change
the last bits of a wide model's outputs, and a ``copy=False`` step would scale the
caller's array.

Only where that is provably the same computation:

* the receiving step is a class defined in one of the scikit-learn modules below,
  whose estimators only turn their input into an array (no column selection by name,
  no per-column dtypes: ``ColumnTransformer``, ``FunctionTransformer`` and
  ``HistGradientBoosting*`` are not among them, nor is any subclass defined elsewhere);
* its output is scikit-learn's default (``set_output(transform="pandas")`` would name
  the next step's columns from ``feature_names_in_``). The process-wide (thread-local)
  ``transform_output`` setting is read on every call, by the flavor.

Anything else keeps the DataFrame, exactly as before.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["array_twin"]

#: Modules whose estimators' ``fit``/``predict``/``transform`` only validate their
#: input into a numeric array (``validate_data``/``check_array``).
_ARRAY_MODULES = (
    "sklearn.preprocessing._data.",
    "sklearn.preprocessing._polynomial.",
    "sklearn.linear_model.",
    "sklearn.svm.",
    "sklearn.tree.",
    "sklearn.ensemble._forest.",
    "sklearn.ensemble._gb.",
    "sklearn.neighbors.",
    "sklearn.naive_bayes.",
    "sklearn.discriminant_analysis.",
    "sklearn.decomposition.",
    "sklearn.neural_network.",
)


def _is_pipeline(estimator: Any) -> bool:
    return type(estimator).__module__ == "sklearn.pipeline" and isinstance(
        getattr(estimator, "steps", None), list
    )


def _takes_arrays(estimator: Any) -> bool:
    module = type(estimator).__module__ + "."
    if not module.startswith(_ARRAY_MODULES):
        return False
    output = getattr(estimator, "_sklearn_output_config", None) or {}
    return bool(output.get("transform", "default") == "default")


def array_twin(estimator: Any) -> Any | None:
    """A shallow copy of ``estimator`` that takes a float64 array in the fitted column
    order without a feature-name warning; None when it may not (see the module)."""
    if _is_pipeline(estimator):
        if not estimator.steps:
            return None
        name, first = estimator.steps[0]
        inner = array_twin(first)
        if inner is None:
            return None
        twin = copy.copy(estimator)  # Pipeline.__getitem__ shares steps the same way
        twin.steps = [(name, inner), *estimator.steps[1:]]
        return twin
    if not _takes_arrays(estimator) or not hasattr(estimator, "feature_names_in_"):
        return None
    try:
        twin = copy.copy(estimator)
        del twin.feature_names_in_
    except Exception:  # an estimator that cannot be copied keeps its frames
        return None
    return twin
