"""Hook implementations of umlaut-mlflow; cheap to import (no MLflow here)."""

from __future__ import annotations

from typing import Any

from umlaut_core import hookimpl
from umlaut_core.packer import Flavor
from umlaut_core.registry import BackendRegistry

from ._flavor import FLAVOR_NAME, PYFUNC_FLAVOR

__all__ = ["umlaut_get_flavor", "umlaut_register_backends"]


def _open_tracker(uri: str, **options: Any) -> Any:
    from ._tracker import MlflowTracker

    return MlflowTracker(uri, **options)


def _open_experiments(tracker: Any) -> Any:
    from ._experiments import MlflowExperimentStore

    return MlflowExperimentStore(tracker)


def _open_datasets(tracker: Any) -> Any:
    from ._datasets import MlflowDatasetStore

    return MlflowDatasetStore(tracker)


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    registry.add_tracker("mlflow", _open_tracker)
    # Training runs share the tracker's client (one scheme covers mlflow+http…).
    registry.add_experiment_store("mlflow", _open_experiments)
    # Datasets too; their Parquet bytes are kept in MLflow (DATASET_BYTES).
    registry.add_dataset_store("mlflow", _open_datasets)


@hookimpl
def umlaut_get_flavor(name: str) -> Flavor | None:
    return PYFUNC_FLAVOR if name == FLAVOR_NAME else None
