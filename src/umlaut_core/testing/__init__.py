"""Testing helpers for umlaut users and backend authors (``umlaut-core[testing]``).

* :class:`TrackerSuite` and :class:`ArtifactStoreSuite`: the conformance suite; see
  :mod:`umlaut_core.testing.conformance`. :class:`ExperimentStoreTests`, part of
  ``TrackerSuite``, checks a backend's experiment store (training runs).
* :mod:`umlaut_core.testing.models`: small models to track in tests.
* The ``umlaut`` pytest plugin (loaded automatically when the core is installed)
  provides the fixtures ``plugin_manager``, ``register_plugin`` and
  ``memory_tracker``.
"""

from .conformance import (
    ArtifactStoreSuite,
    BundleIntegrityTests,
    ConcurrencyTests,
    DatasetStoreTests,
    EncodingTests,
    ExperimentStoreTests,
    HostileInputTests,
    ImportTests,
    LineageTests,
    RunModelTests,
    ScanColumnsTests,
    ScanRunsTests,
    StageTests,
    TrackerSuite,
    TrackModelTests,
)

__all__ = [
    "ArtifactStoreSuite",
    "BundleIntegrityTests",
    "ConcurrencyTests",
    "DatasetStoreTests",
    "EncodingTests",
    "ExperimentStoreTests",
    "HostileInputTests",
    "ImportTests",
    "LineageTests",
    "RunModelTests",
    "ScanColumnsTests",
    "ScanRunsTests",
    "StageTests",
    "TrackModelTests",
    "TrackerSuite",
]
