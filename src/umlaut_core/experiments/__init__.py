"""Experiment tracking: training runs with params, metrics, tags and artifacts.

``Umlaut.start_run`` opens a training run; :mod:`.filters` is the search language;
:class:`ExperimentStore` is what a backend implements (its own contract, apart from
the ``Tracker`` that keeps versions and audit records). ``@step`` and ``@pipeline``
(:mod:`.decorator`) make each call of a function a training run.
"""

from .context import current_run
from .decorator import pipeline, set_default_umlaut, set_tracking_enabled, step
from .filters import FilterSyntaxError, OrderBy, RunSearch, parse_filter, parse_order_by
from .protocol import ArtifactKeepingStore, ExperimentStore
from .records import (
    Experiment,
    LinkedVersion,
    MetricPoint,
    MetricSummary,
    RunArtifact,
    RunPage,
    RunStatus,
    TrainingRun,
)

__all__ = [
    "ArtifactKeepingStore",
    "Experiment",
    "ExperimentStore",
    "FilterSyntaxError",
    "LinkedVersion",
    "MetricPoint",
    "MetricSummary",
    "OrderBy",
    "RunArtifact",
    "RunPage",
    "RunSearch",
    "RunStatus",
    "TrainingRun",
    "current_run",
    "parse_filter",
    "parse_order_by",
    "pipeline",
    "set_default_umlaut",
    "set_tracking_enabled",
    "step",
]
