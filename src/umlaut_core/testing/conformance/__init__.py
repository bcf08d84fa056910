"""The conformance suite: the behaviour every umlaut backend shares.

A backend author writes one class per store::

    import pytest
    from umlaut_core.testing import TrackerSuite

    class TestMyTracker(TrackerSuite):
        @pytest.fixture
        def tracker(self, tmp_path):
            tracker = MyTracker(f"mine://{tmp_path}/db")
            yield tracker
            tracker.close()

Optional overrides: ``artifact_store`` (defaults to a folder in ``tmp_path`` unless
the tracker declares ``Capability.STORES_BUNDLES``) and ``store_uris`` (URIs that
reopen the same stores: the reopen test with ``PERSISTENT``, and the process tests
with ``MULTI_PROCESS``, which open them in fresh interpreters through the installed
entry point, so install the plugin first). Tests use unique model names, so the
fixture may reuse one database or server across tests. Capabilities a tracker lacks
skip their tests with the reason.

:class:`DatasetStoreTests` and :class:`LineageTests` (also part of it) do the same for
the dataset store (``registry.add_dataset_store``); the lineage tests track real
data through the facade and need pandas and pyarrow.

:class:`ExperimentStoreTests` (part of :class:`TrackerSuite`) checks the experiment
store the installed plugins register for the tracker's scheme
(``registry.add_experiment_store``), opened from the same ``tracker`` fixture; it
skips when there is none. Its tests use fresh experiment names and run ids, so they
too may share a database or server.
"""

from .artifacts import ArtifactStoreSuite, BundleIntegrityTests
from .audit import RunModelTests
from .concurrency import ConcurrencyTests
from .datasets import DatasetStoreTests, LineageTests
from .encoding import EncodingTests
from .experiment_search import TrainingRunSearchTests
from .experiments import TrainingRunTests
from .hostile import HostileInputTests
from .importing import ImportTests, ScanRunsTests
from .run_columns import ScanColumnsTests
from .selectors import StageTests
from .versions import TrackModelTests

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


class ExperimentStoreTests(TrainingRunTests, TrainingRunSearchTests):
    """Every experiment store conformance test: writes, reads and searches of
    training runs. Runs from the ``tracker`` fixture (the store is opened through
    the installed plugins); override ``experiment_store`` to build it yourself."""


class TrackerSuite(
    TrackModelTests,
    StageTests,
    RunModelTests,
    EncodingTests,
    ConcurrencyTests,
    BundleIntegrityTests,
    HostileInputTests,
    ImportTests,
    ScanRunsTests,
    ScanColumnsTests,
    ExperimentStoreTests,
    DatasetStoreTests,
    LineageTests,
):
    """Every tracker conformance test; subclass it and provide ``tracker``."""
