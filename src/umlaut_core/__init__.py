"""umlaut-core: track models as immutable versions, run them with an audit trail.

    from umlaut_core import Umlaut

    umlaut = Umlaut()                       # embedded default: SQLite + local folder
    umlaut.track_model(model=ExampleModel(), model_name="Revenue Forecast", stage="Staging")
    umlaut.run_model(model_name="Revenue Forecast", input_config={"revenue": 3}, stage="Staging")

Backends are plugins found through the ``umlaut`` entry-point group; see
:mod:`umlaut_core.hookspecs` for the hooks and :mod:`umlaut_core.testing` for the
conformance suite a backend must pass.
"""

from ._api import Umlaut
from ._manager import get_plugin_manager
from .exceptions import (
    ArtifactError,
    BackendConflictError,
    BackendError,
    BackendNotFoundError,
    ClosedError,
    ConfigurationError,
    DeadlineExceededError,
    EncodingError,
    EnvironmentMismatchError,
    InputEncodingError,
    IntegrityError,
    InvalidNameError,
    ModelNotFoundError,
    NotFoundError,
    OutputEncodingError,
    PackingError,
    ParamConflictError,
    PluginError,
    PluginLoadError,
    SchemaError,
    StageNotFoundError,
    TrackingError,
    TrainingRunNotFoundError,
    UmlautError,
    UnsupportedModelError,
    VersionNotFoundError,
)
from .experiments import current_run, pipeline, step
from .hookspecs import hookimpl, hookspec
from .protocols import ArtifactStore, Capability, Tracker
from .records import AuditRecord, ModelInfo, ModelVersion, RunQuery, StageChange, VersionDraft
from .registry import BackendRegistry

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ArtifactStore",
    "AuditRecord",
    "BackendConflictError",
    "BackendError",
    "BackendNotFoundError",
    "BackendRegistry",
    "Capability",
    "ClosedError",
    "ConfigurationError",
    "DeadlineExceededError",
    "EncodingError",
    "EnvironmentMismatchError",
    "InputEncodingError",
    "IntegrityError",
    "InvalidNameError",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelVersion",
    "NotFoundError",
    "OutputEncodingError",
    "PackingError",
    "ParamConflictError",
    "PluginError",
    "PluginLoadError",
    "RunQuery",
    "SchemaError",
    "StageChange",
    "StageNotFoundError",
    "Tracker",
    "TrackingError",
    "TrainingRunNotFoundError",
    "Umlaut",
    "UmlautError",
    "UnsupportedModelError",
    "VersionDraft",
    "VersionNotFoundError",
    "__version__",
    "current_run",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "pipeline",
    "step",
]
