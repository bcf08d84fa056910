"""The ``mlflow-pyfunc`` flavor: run a model that was registered straight in MLflow.

Such a version has no umlaut bundle. ``MlflowTracker.load_bundle`` synthesizes one
with the core packer's format whose payload is only a reference
``("umlaut-mlflow/pyfunc-ref", source, run_id)``; its digest is therefore a stable
hash of the version's source and run id. The tracker downloads the model directory
before handing out the bundle and remembers where (``LOCAL_COPIES``); the runner
loads the pyfunc from there. In a process where the tracker did not download it,
the runner falls back to ``mlflow.pyfunc.load_model(source)`` with MLflow's global
configuration (``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from umlaut_core.packer import Flavor

__all__ = ["FLAVOR_NAME", "LOCAL_COPIES", "PYFUNC_FLAVOR", "REF_TAG"]

FLAVOR_NAME = "mlflow-pyfunc"
REF_TAG = "umlaut-mlflow/pyfunc-ref"
#: (source, run_id) → local folder holding the downloaded MLflow model.
LOCAL_COPIES: dict[tuple[str, str], str] = {}
_LOCK = threading.Lock()


def remember_copy(source: str, run_id: str, path: str) -> None:
    with _LOCK:
        LOCAL_COPIES[(source, run_id)] = path


def _runner(ref: Any) -> Callable[[Any], Any]:
    if not (isinstance(ref, tuple) and len(ref) == 3 and ref[0] == REF_TAG):
        raise TypeError(f"not an {FLAVOR_NAME} reference: {type(ref).__name__}")
    _, source, run_id = ref
    from ._compat import import_mlflow

    mlflow = import_mlflow()
    with _LOCK:
        where = LOCAL_COPIES.get((source, run_id), source)
    model = mlflow.pyfunc.load_model(where)
    columns = _input_columns(model)

    def run(data: Any) -> Any:
        return model.predict(_as_frame(data, columns))

    return run


def _input_columns(model: Any) -> list[str] | None:
    schema = getattr(getattr(model, "metadata", None), "get_input_schema", lambda: None)()
    if schema is None or getattr(schema, "is_tensor_spec", lambda: True)():
        return None
    return list(schema.input_names())


def _as_frame(data: Any, columns: list[str] | None) -> Any:
    """JSON records → a DataFrame when the model declares named input columns."""
    if columns is None:
        return data
    rows: Sequence[Any] | None = None
    if isinstance(data, Mapping):
        rows = [data]
    elif isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        rows = data
    if rows is None:
        return data
    import pandas as pd

    return pd.DataFrame(list(rows))


PYFUNC_FLAVOR = Flavor(FLAVOR_NAME, "predict", _runner)
