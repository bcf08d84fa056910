"""Importing MLflow quietly.

``import mlflow.pyfunc`` (3.x) emits UserWarnings about type hints of its own
classes at import time; they say nothing about the caller's code, and under
``-W error`` they would break the import. They are silenced for the import only.
"""

from __future__ import annotations

import logging
import warnings
from types import ModuleType

__all__ = ["import_mlflow", "quiet_sqlalchemy_deprecations"]


def import_mlflow() -> ModuleType:
    """``mlflow`` with ``mlflow.pyfunc`` loaded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow
        import mlflow.pyfunc
    # MLflow logs a warning on every pyfunc save about cloudpickled python_models; our
    # wrapper is a stateless, importable class, so the warning is noise.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    return mlflow


def quiet_sqlalchemy_deprecations() -> None:
    """Ignore SQLAlchemy deprecation warnings raised *by MLflow's own store code*.

    With SQLAlchemy 2.1, MLflow 3.17's SQL store uses the deprecated ``noload``
    strategy on every query. The filter is process-wide (Python has no other kind)
    but matches only warnings attributed to ``mlflow.*`` modules.
    """
    from sqlalchemy.exc import SADeprecationWarning

    warnings.filterwarnings("ignore", category=SADeprecationWarning, module=r"mlflow\.")
